"""`TrainConfig`: every setting of a training run, as plain values.

`train.py` fills it from flags; library users build it directly. How the
ODE blocks solve is one `tfnode.SolveSettings` (`settings`), saved with its
`get_config()`. The settings that decide a run's result are its
*fingerprint*: a `--model_dir` holding a run with another fingerprint is
never resumed or overwritten. Run-time options (where the data and outputs
live, how the work is spread over devices, how much is printed) are left out
of the fingerprint, so a run can be resumed on other hardware.

```python
config = TrainConfig(
    network="anode_sqnxt",
    settings=tfnode.models.settings_for("anode_sqnxt", solver="rk4",
                                        adjoint="anode"),
)
```
"""

import dataclasses
import hashlib
import json
import os

from tfnode import validation
from tfnode.settings import SolveSettings
from tfnode.settings import resolve as resolve_settings

__all__ = [
    "LR_SCHEDULES",
    "OPTIMIZERS",
    "RUNTIME_FIELDS",
    "STRATEGIES",
    "TrainConfig",
    "default_model_dir",
    "validate",
]

# Fields that do not change what a run computes.
RUNTIME_FIELDS = (
    "data_dir",
    "download",
    "model_dir",
    "resume",
    "overwrite",
    "strategy",
    "devices",
    "verbose",
)


@dataclasses.dataclass
class TrainConfig:
    """The settings of one training run (see the flags for their meaning).

    `None` leaves a setting to the network (its paper's solve, width) or to
    the dataset. `settings` is a `tfnode.SolveSettings` (or its config
    dict); `tfnode.models.settings_for(network, ...)` applies solve options
    over the network's paper default as `train.py` does.
    """

    # Network.
    network: str = "simple_odenet"
    channels: int | None = None
    activation: str | None = None
    depth: int | None = None
    method: str | None = None
    planes: int | None = None
    # Data.
    dataset: str | None = None
    data_dir: str | None = None
    download: bool = True
    data_seed: int = 0
    train_examples: int | None = None
    test_examples: int | None = None
    normalize: str = "none"
    augment: str = "none"
    # ODE solve: the network's paper's when `None`.
    settings: SolveSettings | None = None
    # Optimization.
    optimizer: str = "adam"
    lr: float = 1e-4
    lr_schedule: str = "constant"
    lr_decay_epochs: tuple = ()
    lr_decay_factor: float = 0.1
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    epochs: int = 200
    train_steps: int | None = None
    batch_size: int = 128
    eval_batch_size: int | None = None
    seed: int = 0
    jit_compile: bool = False
    deterministic: bool = False
    # Solver robustness (Ott et al. 2021).
    test_solvers: tuple = ()
    test_factors: tuple = (0.5, 1.0, 2.0)
    step_adaptation: bool = False
    adaptation_threshold: float = 0.1
    adaptation_interval: int = 50
    adaptation_max_steps: int = 500
    # Run time.
    model_dir: str | None = None
    resume: bool = True
    overwrite: bool = False
    strategy: str = "default"
    devices: tuple = ()
    verbose: int = 1

    def __post_init__(self):
        for name in (
            "lr_decay_epochs",
            "test_solvers",
            "test_factors",
            "devices",
        ):
            setattr(self, name, tuple(getattr(self, name)))
        if self.settings is not None:
            self.settings = resolve_settings(self.settings)

    def to_dict(self):
        """All fields, as JSON values (`settings` as its `get_config()`)."""
        values = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, SolveSettings):
                value = value.get_config()
            values[field.name] = value
        return json.loads(json.dumps(values))

    def experiment(self):
        """The fields that decide the result (all but `RUNTIME_FIELDS`)."""
        return {
            key: value
            for key, value in self.to_dict().items()
            if key not in RUNTIME_FIELDS
        }

    def fingerprint(self):
        """A short hash of `experiment()`."""
        text = json.dumps(self.experiment(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:10]

    def replace(self, **changes):
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, values):
        """The config of `to_dict()`'s output; unknown keys are an error."""
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(
                f"Unknown TrainConfig field(s): {', '.join(unknown)}."
            )
        return cls(**values)


def default_model_dir(config, root="runs"):
    """`runs/<network>_<dataset>_<fingerprint>`: one folder per experiment,
    so rerunning a command resumes it and changing a setting does not
    collide with it."""
    dataset = config.dataset or "default"
    return os.path.join(
        root, f"{config.network}_{dataset}_{config.fingerprint()}"
    )


OPTIMIZERS = ("sgd", "adam", "rmsprop")
LR_SCHEDULES = ("constant", "step", "cosine")
STRATEGIES = ("default", "mirrored", "multi_worker")


def _optional(check, name, value):
    return None if value is None else check(name, value)


def validate(config):
    """Checks a `TrainConfig` before anything is built or loaded.

    Raises:
        ValueError: naming the setting and its allowed values.
    """
    # Imported here: the registries pull in TensorFlow and the models.
    from tfnode import datasets
    from tfnode import models
    from tfnode import solvers

    models.get(config.network)
    if config.dataset is not None:
        datasets.get(config.dataset)
    for name in config.test_solvers:
        solvers.get(name)
    for name, value, allowed in (
        ("normalize", config.normalize, datasets.NORMALIZATIONS),
        ("augment", config.augment, datasets.AUGMENTATIONS),
        ("optimizer", config.optimizer, OPTIMIZERS),
        ("lr_schedule", config.lr_schedule, LR_SCHEDULES),
        ("strategy", config.strategy, STRATEGIES),
        ("verbose", config.verbose, (0, 1, 2)),
    ):
        validation.choice(name, value, allowed)
    for name in ("epochs", "batch_size"):
        validation.positive_int(name, getattr(config, name))
    for name in (
        "train_steps",
        "eval_batch_size",
        "train_examples",
        "test_examples",
        "channels",
        "depth",
        "planes",
    ):
        _optional(validation.positive_int, name, getattr(config, name))
    for name in ("seed", "data_seed"):
        validation.non_negative_int(name, getattr(config, name))
    validation.positive_float("lr", config.lr)
    validation.non_negative_float("weight_decay", config.weight_decay)
    validation.in_interval("momentum", config.momentum, 0, 1, closed="left")
    validation.in_interval("lr_decay_factor", config.lr_decay_factor, 0, 1)
    for factor in config.test_factors:
        validation.positive_float("test_factors", factor)
    validation.in_interval(
        "adaptation_threshold",
        config.adaptation_threshold,
        0,
        1,
        closed="both",
    )
    for name in ("adaptation_interval", "adaptation_max_steps"):
        validation.positive_int(name, getattr(config, name))
    _check_combinations(config)
    return config


def _check_combinations(config):
    """Settings that only apply together with others."""
    if config.momentum and config.optimizer == "adam":
        raise ValueError(
            "momentum applies to optimizer=sgd or rmsprop; Adam has none "
            f"(got momentum={config.momentum})."
        )
    if config.nesterov and not (
        config.optimizer == "sgd" and config.momentum > 0
    ):
        raise ValueError("nesterov needs optimizer=sgd and momentum > 0.")
    epochs = list(config.lr_decay_epochs)
    if config.lr_schedule == "step":
        if not epochs:
            raise ValueError(
                "lr_schedule=step needs lr_decay_epochs (e.g. 150,250)."
            )
        for epoch in epochs:
            validation.positive_int("lr_decay_epochs", epoch)
        if epochs != sorted(set(epochs)):
            raise ValueError(
                "lr_decay_epochs must be increasing ints >= 1; got "
                f"{config.lr_decay_epochs}."
            )
    elif epochs:
        raise ValueError(
            f"lr_decay_epochs apply to lr_schedule=step; got "
            f"lr_schedule={config.lr_schedule!r}."
        )
    if config.devices and config.strategy != "mirrored":
        raise ValueError(
            "devices apply to strategy=mirrored; got "
            f"strategy={config.strategy!r}."
        )
