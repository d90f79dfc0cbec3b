"""GroupNorm differentiated inside a `tf.while_loop`: Keras' layer, and
tfnode's with its passes run as TensorFlow operations, compiled by XLA, or
as its native C++ kernels.

Each loop iteration normalises a `(batch, size, size, C)` state, takes the
VJP with respect to the state, `gamma` and `beta`, and steps the state with
it: the work a solve does per GroupNorm per evaluation when it is
differentiated. The loop runs in graph mode (the graph itself is not
compiled). Per shape, the variants alternate over `--rounds` rounds; the
table gives the median time per iteration (microseconds) and the ratio to
tfnode's XLA-compiled passes; `tfnode_native` (the default on CPU) runs
where the native kernels can be built.

    python scripts/benchmark_group_norm.py
    python scripts/benchmark_group_norm.py --quick       # seconds

writes `group_norm.md` and `group_norm.json` to `--output_dir`
(`docs/benchmarks`). The default shapes are the conv problem's
(32 x 16 x 16 x 32, 8 groups) and the blog MNIST ODENet's (16 x 26 x 26 x
6, 6 groups).
"""

import functools
import os
import sys

from absl import flags as absl_flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# tfnode first: TensorFlow then loads with oneDNN (`tfnode._onednn`).
import tfnode  # noqa: E402, F401

# isort: split
import _reproduce  # noqa: E402
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfnode import native  # noqa: E402
from tfnode.layers.group_norm import group_norm  # noqa: E402

FLAGS = absl_flags.FlagValues()
define = _reproduce.flag_definer(FLAGS)
_reproduce.define_common_flags(FLAGS, output_dir="docs/benchmarks")
define(
    "list",
    "shapes",
    ["32x16x16x32:8", "16x26x26x6:6"],
    "BATCHxHxWxC:GROUPS per shape.",
)
define("integer", "iterations", 50, "Loop iterations per call.")
define("integer", "rounds", 7, "Timed calls per variant.")
define("integer", "threads", 2, "Intra/inter-op threads.")


def _tfnode_norm(implementation):
    def norm(layer, x):
        return group_norm(
            x,
            layer.gamma,
            layer.beta,
            layer.groups,
            layer.epsilon,
            implementation=implementation,
        )

    return norm


# variant: normalisation `norm(keras_layer, x)` with the layer's weights
VARIANTS = {
    "keras": lambda layer, x: layer(x),
    "tfnode_ops": _tfnode_norm("ops"),
    "tfnode_xla": _tfnode_norm("xla"),
}
if native.load("group_norm") is not None:  # where they can be built
    VARIANTS["tfnode_native"] = _tfnode_norm("native")
_SIZES = "shapes iterations rounds"
_QUICK = {"shapes": ["2x4x4x4:2"], "iterations": 2, "rounds": 1}


def parse_shape(text):
    """`"BxHxWxC:G"` -> `((B, H, W, C), G)`."""
    dims, groups = text.split(":")
    return tuple(int(d) for d in dims.split("x")), int(groups)


def looped_vjp(norm, weights, iterations):
    """A graph-mode `tf.function`: `iterations` VJPs of `norm(y)` with
    respect to `y` and `weights` (`[gamma, beta]`) in a while loop."""

    def body(i, y, weight_grad):
        with tf.GradientTape() as tape:
            tape.watch(y)
            out = norm(y)
        dy, dgamma, dbeta = tape.gradient(
            out, [y, *weights], output_gradients=y
        )
        return i + 1, y + 1e-3 * (dy + out), weight_grad + dgamma + dbeta

    return _reproduce.while_loop_function(
        body, lambda y: (y, tf.zeros(y.shape[-1:])), iterations
    )


def time_shape(shape, groups, iterations, rounds):
    """`{variant: [microseconds per iteration per round]}` for a shape."""
    y0 = tf.random.stateless_normal(shape, [0, shape[-1]])
    layer = keras.layers.GroupNormalization(groups)
    layer.build(shape)
    runs = {}
    for variant, norm in VARIANTS.items():
        runs[variant] = looped_vjp(
            functools.partial(norm, layer),
            [layer.gamma, layer.beta],
            iterations,
        )
        runs[variant](y0)  # trace and compile
    return _reproduce.time_functions(runs, [y0], rounds, iterations)


def table(results):
    return _reproduce.ratio_table(
        results, ["shape:groups"], lambda shape: [shape], "tfnode_xla"
    )


def main(argv):
    _reproduce.parse_flags(FLAGS, argv)
    return _reproduce.run_loop_benchmark(
        FLAGS,
        "group_norm",
        _SIZES.split(),
        _QUICK,
        lambda text, *sizes: time_shape(*parse_shape(text), *sizes),
        table,
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv))
