"""`TrainConfig`: every setting of a training run, as plain values.

`train.py` fills it from flags; library users build it directly. The
settings that decide a run's result are its *fingerprint*: a `--model_dir`
holding a run with another fingerprint is never resumed or overwritten.
Run-time options (where the data and outputs live, how the work is spread
over devices, how much is printed) are left out of the fingerprint, so a run
can be resumed on other hardware.
"""

import dataclasses
import hashlib
import json
import os

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

    `None` leaves a setting to the network (its paper's solver, grid,
    tolerance, width) or to the dataset.
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
    # ODE solve.
    solver: str | None = None
    adjoint: str = "backprop"
    steps: int | None = None
    step_size: float | None = None
    rtol: float | None = None
    atol: float | None = None
    tol: float | None = None
    checkpoints: int | None = None
    seminorm: bool = False
    max_num_steps: int | None = None
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

    def to_dict(self):
        """All fields, as JSON-friendly values."""
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(self).items()
        }

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


def _choice(argument, value, choices):
    if value not in choices:
        raise ValueError(
            f"Unknown {argument}={value!r}; choose one of: "
            f"{', '.join(str(c) for c in choices)}."
        )


def _at_least(argument, value, low, optional=False, integer=True):
    if value is None and optional:
        return
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or value < low:
        what = "an int" if integer else "a number"
        raise ValueError(f"{argument} must be {what} >= {low}; got {value!r}.")


def validate(config):
    """Checks a `TrainConfig` before anything is built or loaded.

    Raises:
        ValueError: naming the setting and its allowed values.
    """
    # Imported here: the registries pull in TensorFlow and the models.
    from tfnode import adjoints
    from tfnode import datasets
    from tfnode import models
    from tfnode import solvers

    models.get(config.network)
    if config.dataset is not None:
        datasets.get(config.dataset)
    if config.solver is not None:
        solvers.get(config.solver)
    adjoints.get(config.adjoint)
    for name in config.test_solvers:
        solvers.get(name)
    _choice("normalize", config.normalize, datasets.NORMALIZATIONS)
    _choice("augment", config.augment, datasets.AUGMENTATIONS)
    _choice("optimizer", config.optimizer, OPTIMIZERS)
    _choice("lr_schedule", config.lr_schedule, LR_SCHEDULES)
    _choice("strategy", config.strategy, STRATEGIES)
    _choice("verbose", config.verbose, (0, 1, 2))
    for argument in ("epochs", "batch_size"):
        _at_least(argument, getattr(config, argument), 1)
    for argument in (
        "train_steps",
        "eval_batch_size",
        "train_examples",
        "test_examples",
        "channels",
        "depth",
        "planes",
        "steps",
        "checkpoints",
        "max_num_steps",
    ):
        _at_least(argument, getattr(config, argument), 1, optional=True)
    for argument in ("seed", "data_seed"):
        _at_least(argument, getattr(config, argument), 0)
    if not (isinstance(config.lr, (int, float)) and config.lr > 0):
        raise ValueError(f"lr must be a number > 0; got {config.lr!r}.")
    _at_least("weight_decay", config.weight_decay, 0, integer=False)
    if not 0 <= config.momentum < 1:
        raise ValueError(
            f"momentum must be in [0, 1); got {config.momentum!r}."
        )
    if config.momentum and config.optimizer == "adam":
        raise ValueError(
            "momentum applies to optimizer=sgd or rmsprop; Adam has none "
            f"(got momentum={config.momentum})."
        )
    if config.nesterov and not (
        config.optimizer == "sgd" and config.momentum > 0
    ):
        raise ValueError("nesterov needs optimizer=sgd and momentum > 0.")
    if not 0 < config.lr_decay_factor <= 1:
        raise ValueError(
            f"lr_decay_factor must be in (0, 1]; got {config.lr_decay_factor}."
        )
    epochs = list(config.lr_decay_epochs)
    if config.lr_schedule == "step":
        if not epochs:
            raise ValueError(
                "lr_schedule=step needs lr_decay_epochs (e.g. 150,250)."
            )
        if any(
            isinstance(e, bool) or not isinstance(e, int) or e < 1
            for e in epochs
        ) or epochs != sorted(set(epochs)):
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
    if config.step_size is not None and not config.step_size > 0:
        raise ValueError(f"step_size must be > 0; got {config.step_size}.")
    for argument in ("rtol", "atol", "tol"):
        value = getattr(config, argument)
        if value is not None and not value > 0:
            raise ValueError(f"{argument} must be > 0; got {value}.")
    return config
