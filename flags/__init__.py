"""Flags of `train.py`, grouped by concern, defined by functions.

Model Garden's layout: nothing is defined at import time; `define_flags()`
defines every group (tests call it on their own `FlagValues`), and
`get_config()` turns the parsed flags into a plain `TrainConfig`, the solve
flags into one `tfnode.SolveSettings` (flag values are never changed).

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

import dataclasses

from absl import flags as absl_flags

from flags.data import define_data_flags
from flags.model import define_model_flags
from flags.optimizer import define_optimizer_flags
from flags.robustness import define_robustness_flags
from flags.run import define_run_flags
from flags.solver import define_solver_flags
from flags.solver import solve_settings
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
    "solve_settings",
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
    """The `TrainConfig` of the parsed flags: every flag of the same name as
    a field, the solve flags as one `SolveSettings` (`settings`;
    `--train_steps`, when set, replaces `--epochs`).

    Raises:
        ValueError: for flags that contradict each other.
    """
    f = flag_values
    values = {
        field.name: f[field.name].value
        for field in dataclasses.fields(TrainConfig)
        if field.name in f
    }
    values.update(
        settings=solve_settings(f),
        data_dir=f.data_dir or None,
        model_dir=f.model_dir or None,
        lr_decay_epochs=tuple(int(e) for e in f.lr_decay_epochs),
        verbose=int(f.verbose),
    )
    return TrainConfig(**values)
