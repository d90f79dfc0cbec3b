"""Optimizer flags: optimizer, learning rate and its schedule, momentum,
weight decay (coupled, as PyTorch's SGD)."""

from absl import flags as absl_flags

from flags._define import defines
from tfnode.training import LR_SCHEDULES
from tfnode.training import OPTIMIZERS

__all__ = ["define_optimizer_flags"]

NAMES = (
    "optimizer",
    "lr",
    "lr_schedule",
    "lr_decay_epochs",
    "lr_decay_factor",
    "momentum",
    "nesterov",
    "weight_decay",
)


def _epochs_list(value):
    try:
        epochs = [int(v) for v in value]
    except (TypeError, ValueError):
        return False
    return all(e >= 1 for e in epochs) and epochs == sorted(set(epochs))


@defines(NAMES)
def define_optimizer_flags(flag_values):
    """Defines the optimizer flags on `flag_values`."""
    absl_flags.DEFINE_enum(
        "optimizer",
        "adam",
        list(OPTIMIZERS),
        "Optimizer (PyTorch's defaults: SGD and RMSprop without momentum "
        "unless --momentum is set).",
        flag_values=flag_values,
    )
    absl_flags.DEFINE_float(
        "lr",
        1e-4,
        "Learning rate (at the start of the schedule).",
        flag_values=flag_values,
    )
    absl_flags.register_validator(
        "lr",
        lambda value: value is not None and value > 0,
        message="--lr must be > 0.",
        flag_values=flag_values,
    )
    absl_flags.DEFINE_enum(
        "lr_schedule",
        "constant",
        list(LR_SCHEDULES),
        "Learning-rate schedule: constant; step (times --lr_decay_factor "
        "after each of --lr_decay_epochs); cosine (to 0 over the run).",
        flag_values=flag_values,
    )
    absl_flags.DEFINE_list(
        "lr_decay_epochs",
        [],
        "--lr_schedule=step: the epochs after which the learning rate is "
        "cut, increasing (ANODE: 150,250).",
        flag_values=flag_values,
    )
    absl_flags.register_validator(
        "lr_decay_epochs",
        _epochs_list,
        message="--lr_decay_epochs must be increasing ints >= 1, e.g. 150,250.",
        flag_values=flag_values,
    )
    absl_flags.DEFINE_float(
        "lr_decay_factor",
        0.1,
        "--lr_schedule=step: factor of each cut, in (0, 1].",
        lower_bound=0.0,
        upper_bound=1.0,
        flag_values=flag_values,
    )
    absl_flags.DEFINE_float(
        "momentum",
        0.0,
        "Momentum of sgd or rmsprop, in [0, 1).",
        lower_bound=0.0,
        upper_bound=1.0,
        flag_values=flag_values,
    )
    absl_flags.DEFINE_bool(
        "nesterov",
        False,
        "Nesterov momentum (sgd).",
        flag_values=flag_values,
    )
    absl_flags.DEFINE_float(
        "weight_decay",
        0.0,
        "L2 weight decay coupled into the gradient, as in PyTorch's SGD "
        "(ANODE, Sander et al.: 5e-4).",
        lower_bound=0.0,
        flag_values=flag_values,
    )
