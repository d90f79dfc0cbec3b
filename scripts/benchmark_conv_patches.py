"""A 3x3 convolution differentiated inside a `tf.while_loop`: graph mode,
XLA with Keras' convolution, and XLA on patches (`tfnode.layers.Conv2D`).

Each loop iteration applies the convolution (same padding, with bias) to a
`(batch, size, size, C)` state, takes its VJP with respect to the state,
the kernel and the bias, and steps the state with it: the work a solve does
per evaluation when it is differentiated in a loop (an adaptive solve, the
continuous adjoint's backward solve, a grid too long to unroll). Per
channel count, the variants alternate over `--rounds` rounds; the table
gives the median time per iteration (microseconds) and the ratio to graph
mode.

    python scripts/benchmark_conv_patches.py --channels=3,6,12,16,32
    python scripts/benchmark_conv_patches.py --quick       # seconds

writes `conv_patches.md` and `conv_patches.json` to `--output_dir`
(`docs/benchmarks`).

This is where `tfnode.training.trainer.XLA_LOOP_PATCH_WIDTH_MAX` comes
from: `train.py --jit_compile` refuses convolutions wider than it (kernel
area x input channels) in loops on CPU.
"""

import os
import sys

from absl import flags as absl_flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# tfnode first: TensorFlow then loads with oneDNN (`tfnode._onednn`).
import tfnode  # noqa: E402

# isort: split
import _reproduce  # noqa: E402
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

FLAGS = absl_flags.FlagValues()
define = _reproduce.flag_definer(FLAGS)
_reproduce.define_common_flags(FLAGS, output_dir="docs/benchmarks")
define("list", "channels", ["3", "6", "12", "16"], "C values.")
define("integer", "batch", 16, "Batch size.")
define("integer", "size", 26, "Height and width.")
define("integer", "iterations", 50, "Loop iterations per call.")
define("integer", "rounds", 5, "Timed calls per variant.")
define("integer", "threads", 2, "Intra/inter-op threads.")
# variant: (layer class, jit_compile)
VARIANTS = {
    "graph": (keras.layers.Conv2D, False),
    "xla_keras": (keras.layers.Conv2D, True),
    "xla_patches": (tfnode.layers.Conv2D, True),
}
_SIZES = "channels batch size iterations rounds"
_QUICK = {
    "channels": ["2"],
    "batch": 2,
    "size": 6,
    "iterations": 2,
    "rounds": 1,
}


def looped_vjp(layer, iterations, jit_compile):
    """A `tf.function`: `iterations` convolution VJPs in a while loop."""

    def body(i, y, kernel_grad):
        with tf.GradientTape() as tape:
            tape.watch(y)
            out = layer(y)
        dy, dkernel, _ = tape.gradient(
            out, [y] + layer.trainable_weights, output_gradients=y
        )
        return i + 1, y + 1e-3 * dy, kernel_grad + dkernel

    return _reproduce.while_loop_function(
        body,
        lambda y: (y, tf.zeros_like(layer.kernel)),
        iterations,
        jit_compile,
    )


def time_channels(channels, batch, size, iterations, rounds):
    """`{variant: [microseconds per iteration per round]}` for C."""
    shape = (batch, size, size, channels)
    y0 = tf.random.stateless_normal(shape, [0, channels])
    runs = {}
    for variant, (layer_cls, jit_compile) in VARIANTS.items():
        keras.utils.set_random_seed(0)
        layer = layer_cls(channels, 3, padding="same")
        layer.build(shape)
        runs[variant] = looped_vjp(layer, iterations, jit_compile)
        runs[variant](y0)  # trace and compile
    return _reproduce.time_functions(runs, [y0], rounds, iterations)


def table(results):
    return _reproduce.ratio_table(
        results,
        ["C", "patch width"],
        lambda channels: [str(channels), str(9 * int(channels))],
        "graph",
    )


def main(argv):
    _reproduce.parse_flags(FLAGS, argv)
    return _reproduce.run_loop_benchmark(
        FLAGS,
        "conv_patches",
        _SIZES.split(),
        _QUICK,
        lambda c, *sizes: time_channels(int(c), *sizes),
        table,
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv))
