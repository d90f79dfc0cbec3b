"""Run flags: length, batch, seed, outputs, resumption, distribution."""

from absl import flags as absl_flags

from flags._define import defines
from tfnode.training import STRATEGIES

__all__ = ["define_run_flags"]

NAMES = (
    "epochs",
    "train_steps",
    "batch_size",
    "eval_batch_size",
    "seed",
    "model_dir",
    "resume",
    "overwrite",
    "strategy",
    "devices",
    "jit_compile",
    "deterministic",
    "verbose",
)


@defines(NAMES)
def define_run_flags(flag_values):
    """Defines the run flags on `flag_values`."""
    absl_flags.DEFINE_integer(
        "epochs",
        200,
        "Epochs (passes over the training set) to train.",
        lower_bound=1,
        flag_values=flag_values,
    )
    absl_flags.DEFINE_integer(
        "train_steps",
        None,
        "Train this many optimizer steps instead of --epochs (Ott et al.'s "
        "niter); the last epoch may end early.",
        lower_bound=1,
        flag_values=flag_values,
    )
    absl_flags.DEFINE_integer(
        "batch_size",
        128,
        "Global training batch, split equally over all replicas.",
        lower_bound=1,
        flag_values=flag_values,
    )
    absl_flags.DEFINE_integer(
        "eval_batch_size",
        None,
        "Global test batch (--batch_size when unset).",
        lower_bound=1,
        flag_values=flag_values,
    )
    absl_flags.DEFINE_integer(
        "seed",
        0,
        "Seed of the initialisation, the data order and the augmentation.",
        lower_bound=0,
        flag_values=flag_values,
    )
    absl_flags.DEFINE_string(
        "model_dir",
        None,
        "Folder of checkpoints, metrics.json, TensorBoard logs and "
        "model.keras; runs/<network>_<dataset>_<config hash> when unset.",
        flag_values=flag_values,
    )
    absl_flags.DEFINE_bool(
        "resume",
        True,
        "Continue the run of this configuration that --model_dir holds from "
        "its last checkpoint. With --noresume, such a run is an error.",
        flag_values=flag_values,
    )
    absl_flags.DEFINE_bool(
        "overwrite",
        False,
        "Delete whatever --model_dir holds and start afresh.",
        flag_values=flag_values,
    )
    absl_flags.DEFINE_enum(
        "strategy",
        "default",
        list(STRATEGIES),
        "Distribution: default (one device), mirrored (all local GPUs or "
        "--devices), multi_worker (the cluster in TF_CONFIG).",
        flag_values=flag_values,
    )
    absl_flags.DEFINE_list(
        "devices",
        [],
        "--strategy=mirrored: the devices, e.g. /gpu:0,/gpu:1 (all local "
        "GPUs when empty).",
        flag_values=flag_values,
    )
    absl_flags.DEFINE_bool(
        "jit_compile",
        False,
        "Compile the training step with XLA. On CPU it is refused for "
        "convolutional fields differentiated inside a loop (adjoint other "
        "than backprop, adaptive solvers, more than 32 fixed steps): XLA "
        "runs those train steps tens of times slower "
        "(docs/benchmarks/xla.md).",
        flag_values=flag_values,
    )
    absl_flags.DEFINE_bool(
        "deterministic",
        False,
        "Make TensorFlow ops deterministic (bit-identical reruns on GPU; "
        "slower).",
        flag_values=flag_values,
    )
    absl_flags.DEFINE_enum(
        "verbose",
        "1",
        ["0", "1", "2"],
        "Keras progress: 0 silent, 1 progress bar, 2 one line per epoch.",
        flag_values=flag_values,
    )
