"""Flags of `train.py`, grouped by concern, defined by functions.

Model Garden's layout: nothing is defined at import time; `define_flags()`
defines every group (tests call it on their own `FlagValues`), and
`get_config()` turns the parsed flags into a plain `TrainConfig` (flag
values are never changed).

```none
model       --network --channels --activation --depth --method --planes
data        --dataset --data_dir --download --data_seed --train_examples
            --test_examples --normalize --augment
solver      --solver --adjoint --steps (--Nt) --step_size --rtol --atol
            --tol --checkpoints --seminorm --max_num_steps
optimizer   --optimizer --lr --lr_schedule --lr_decay_epochs
            --lr_decay_factor --momentum --nesterov --weight_decay
run         --epochs --train_steps --batch_size --eval_batch_size --seed
            --model_dir --resume --overwrite --strategy --devices
            --jit_compile --deterministic --verbose
robustness  --test_solvers --test_factors --step_adaptation
            --adaptation_threshold --adaptation_interval
            --adaptation_max_steps
```

Each experiment of the reference papers is a flagfile here:
`python train.py --flagfile=flags/NAME.cfg`.
"""

from absl import flags as absl_flags

from flags.data import define_data_flags
from flags.model import define_model_flags
from flags.optimizer import define_optimizer_flags
from flags.robustness import adaptation_kwargs
from flags.robustness import define_robustness_flags
from flags.robustness import evaluation_kwargs
from flags.run import define_run_flags
from flags.solver import define_solver_flags
from tfnode.training import TrainConfig

__all__ = [
    "define_data_flags",
    "define_flags",
    "define_model_flags",
    "define_optimizer_flags",
    "define_robustness_flags",
    "define_run_flags",
    "define_solver_flags",
    "get_config",
]


def define_flags(flag_values=absl_flags.FLAGS):
    """Defines every flag of `train.py` on `flag_values` (once).

    Returns:
        The names of the flags.
    """
    names = []
    for define in (
        define_model_flags,
        define_data_flags,
        define_solver_flags,
        define_optimizer_flags,
        define_run_flags,
        define_robustness_flags,
    ):
        names.extend(define(flag_values))
    return names


def get_config(flag_values=absl_flags.FLAGS):
    """The `TrainConfig` of the parsed flags (`--train_steps`, when set,
    replaces `--epochs`).

    Raises:
        ValueError: for flags that contradict each other.
    """
    f = flag_values
    if f.steps is not None and f.step_size is not None:
        raise ValueError("Give --steps (--Nt) or --step_size, not both.")
    evaluation = evaluation_kwargs(f) or {}
    adaptation = adaptation_kwargs(f) or {}
    return TrainConfig(
        network=f.network,
        channels=f.channels,
        activation=f.activation,
        depth=f.depth,
        method=f.method,
        planes=f.planes,
        dataset=f.dataset,
        data_dir=f.data_dir or None,
        download=f.download,
        data_seed=f.data_seed,
        train_examples=f.train_examples,
        test_examples=f.test_examples,
        normalize=f.normalize,
        augment=f.augment,
        solver=f.solver,
        adjoint=f.adjoint,
        steps=f.steps,
        step_size=f.step_size,
        rtol=f.rtol,
        atol=f.atol,
        tol=f.tol,
        checkpoints=f.checkpoints,
        seminorm=f.seminorm,
        max_num_steps=f.max_num_steps,
        optimizer=f.optimizer,
        lr=f.lr,
        lr_schedule=f.lr_schedule,
        lr_decay_epochs=tuple(int(e) for e in f.lr_decay_epochs),
        lr_decay_factor=f.lr_decay_factor,
        momentum=f.momentum,
        nesterov=f.nesterov,
        weight_decay=f.weight_decay,
        epochs=f.epochs,
        train_steps=f.train_steps,
        batch_size=f.batch_size,
        eval_batch_size=f.eval_batch_size,
        seed=f.seed,
        jit_compile=f.jit_compile,
        deterministic=f.deterministic,
        test_solvers=tuple(evaluation.get("solvers", ())),
        test_factors=tuple(f.test_factors),
        step_adaptation=f.step_adaptation,
        adaptation_threshold=adaptation.get(
            "threshold", f.adaptation_threshold
        ),
        adaptation_interval=adaptation.get("interval", f.adaptation_interval),
        adaptation_max_steps=adaptation.get(
            "max_steps", f.adaptation_max_steps
        ),
        model_dir=f.model_dir or None,
        resume=f.resume,
        overwrite=f.overwrite,
        strategy=f.strategy,
        devices=tuple(f.devices),
        verbose=int(f.verbose),
    )
