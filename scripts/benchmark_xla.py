"""XLA on CPU: formulations of the conv train step, timed against graph mode.

The conv problem (`scripts/standard_problems.py`: 32 x 16 x 16 x 32,
conv3x3-GroupNorm(8)-ReLU-conv3x3-GroupNorm(8)), rk4 with 16 steps on
[0, 1], loss mean(y(1)^2), gradient with respect to the field's weights
and one SGD update, in each of these formulations:

```none
tfnode_graph           tfnode.odeint (backprop) in tf.function: the reference
tfnode_xla             the same step under jit_compile=True
tfnode_anode_graph     tfnode.odeint, adjoint="anode", tf.function
tfnode_anode_xla       the same under jit_compile=True
tfnode_field_xla       tfnode_graph with the field alone compiled
                       (tf.function(jit_compile=True) around each call)
while_graph            the RK4 loop written by hand as one tf.while_loop
while_xla              the same under jit_compile=True
unrolled_xla           the 16 RK4 steps unrolled in Python (no loop), XLA
unrolled_graph         the same, graph mode
while_nchw_xla         the while loop under XLA with the field written
                       channels-first (NCHW convolutions and group norm)
```

Each variant is compiled and run once, then timed over `--repeats` steps
(median), in one process; the table gives each median over tfnode_graph's.

    python scripts/benchmark_xla.py --variants=tfnode_graph,unrolled_xla
"""

import os
import statistics
import sys
import time

from absl import app
from absl import flags as absl_flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import standard_problems  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfnode  # noqa: E402

FLAGS = absl_flags.FLAGS
STEPS = 16
VARIANTS = (
    "tfnode_graph",
    "tfnode_xla",
    "tfnode_anode_graph",
    "tfnode_anode_xla",
    "tfnode_field_xla",
    "while_graph",
    "while_xla",
    "unrolled_graph",
    "unrolled_xla",
    "while_nchw_xla",
)


def define_flags():
    absl_flags.DEFINE_list("variants", list(VARIANTS), "Variants to run.")
    absl_flags.DEFINE_integer("repeats", 3, "Timed steps per variant.")
    absl_flags.DEFINE_integer("threads", 2, "Intra/inter-op threads.")


def _rk4_step(field, y, h):
    k1 = field(y)
    k2 = field(y + 0.5 * h * k1)
    k3 = field(y + 0.5 * h * k2)
    k4 = field(y + h * k3)
    return y + h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


def _unrolled(field, y0):
    y = y0
    for _ in range(STEPS):
        y = _rk4_step(field, y, 1.0 / STEPS)
    return y


def _nchw_field(field):
    """The conv field's weights applied channels-first (XLA only: TF's CPU
    kernels have no NCHW convolution)."""
    conv1, norm1, _, conv2, norm2 = field.layers

    def conv(layer, x):
        y = tf.nn.conv2d(x, layer.kernel, 1, "SAME", data_format="NCHW")
        return y + tf.reshape(layer.bias, [1, -1, 1, 1])

    def group_norm(layer, x):
        shape = tf.shape(x)
        grouped = tf.reshape(x, [shape[0], layer.groups, -1])
        mean, var = tf.nn.moments(grouped, axes=[2], keepdims=True)
        y = tf.reshape(
            (grouped - mean) * tf.math.rsqrt(var + layer.epsilon), shape
        )
        return y * tf.reshape(layer.gamma, [1, -1, 1, 1]) + tf.reshape(
            layer.beta, [1, -1, 1, 1]
        )

    def apply(y):
        x = tf.nn.relu(group_norm(norm1, conv(conv1, y)))
        return group_norm(norm2, conv(conv2, x))

    return apply


def _solver(variant, field):
    """`solve(y0) -> y(1)` of the variant, and whether to compile."""
    xla = variant.endswith("_xla") and variant != "tfnode_field_xla"
    if variant.startswith("tfnode"):
        adjoint = "anode" if "anode" in variant else "backprop"
        func = field
        if variant == "tfnode_field_xla":
            func = tf.function(field, jit_compile=True)

        def solve(y0):
            return tfnode.odeint(
                lambda t, y: func(y),
                y0,
                [0.0, 1.0],
                solver="rk4",
                steps=STEPS,
                adjoint=adjoint,
            )[-1]

    elif variant.startswith("while_nchw"):
        nchw = _nchw_field(field)

        def solve(y0):
            y = tf.transpose(y0, [0, 3, 1, 2])
            y = standard_problems.hand_written_solve(nchw, y, "rk4", STEPS)
            return tf.transpose(y, [0, 2, 3, 1])

    elif variant.startswith("while"):

        def solve(y0):
            return standard_problems.hand_written_solve(field, y0, "rk4", STEPS)

    else:

        def solve(y0):
            return _unrolled(field, y0)

    return solve, xla


def _train_step(variant, field, y0):
    solve, xla = _solver(variant, field)
    optimizer = keras.optimizers.SGD(1e-3)
    variables = field.trainable_variables

    @tf.function(jit_compile=xla)
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(solve(y0) ** 2)
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss

    return step


def _measure(variant):
    field, y0 = standard_problems.make_problem("conv")
    step = _train_step(variant, field, y0)
    start = time.perf_counter()
    loss = float(step())
    first = time.perf_counter() - start
    times = []
    for _ in range(FLAGS.repeats):
        start = time.perf_counter()
        step().numpy()
        times.append(time.perf_counter() - start)
    return {"first": first, "median": statistics.median(times), "loss": loss}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError("Too many command-line arguments.")
    unknown = sorted(set(FLAGS.variants) - set(VARIANTS))
    if unknown:
        raise app.UsageError(f"Unknown variants {unknown}; of {VARIANTS}.")
    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
    variants = list(FLAGS.variants)
    if "tfnode_graph" not in variants:
        variants.insert(0, "tfnode_graph")
    results = {}
    print(
        "| variant | first call (trace + compile) s | step s | / tfnode_graph |"
    )
    print("|---|---|---|---|")
    for variant in variants:
        results[variant] = _measure(variant)
        r = results[variant]
        ratio = r["median"] / results["tfnode_graph"]["median"]
        print(
            f"| {variant} | {r['first']:.1f} | {r['median']:.3f} | "
            f"{ratio:.2f} |",
            flush=True,
        )
    print(f"threads={FLAGS.threads} tf={tf.__version__}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
