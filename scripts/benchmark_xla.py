"""XLA on CPU: the train step of a problem, compiled and not, side by side.

A problem of `scripts/standard_problems.py` (`conv`: 32 x 16 x 16 x 32,
conv3x3-GroupNorm(8)-ReLU-conv3x3-GroupNorm(8); `mlp`: 256 x 32,
Dense(64, tanh)-Dense(32)), rk4 with 16 steps on [0, 1], loss mean(y(1)^2),
gradient with respect to the field's weights and one SGD update, in each of
these formulations:

```none
tfnode_graph               tfnode.odeint (backprop), tf.function: the reference
tfnode_xla                 the same step under jit_compile=True (the steps
                           unrolled: tfnode.stepping.grid.UNROLL_MAX_STEPS)
tfnode_xla_loop            the same with UNROLL_MAX_STEPS = 0: the steps in a
                           tf.while_loop under XLA (tfnode before unrolling)
tfnode_anode_graph         tfnode.odeint, adjoint="anode", tf.function
tfnode_anode_xla           the same under jit_compile=True
tfnode_anode_xla_loop      the same with UNROLL_MAX_STEPS = 0
tfnode_continuous_graph    adjoint="continuous" (16 rk4 steps back), graph
tfnode_continuous_xla      the same under jit_compile=True
tfnode_field_xla           tfnode_graph with the field alone compiled
                           (tf.function(jit_compile=True) around each call)
while_graph                the RK4 loop written by hand as one tf.while_loop
while_xla                  the same under jit_compile=True
unrolled_graph             the 16 RK4 steps unrolled in Python (no loop), graph
unrolled_xla               the same, XLA
while_nchw_xla             the while loop under XLA with the field written
                           channels-first (conv only)
```

Every variant runs in its own process (`--processes` of them, the variants
alternating, in reverse order every other round): the first call (trace +
compile) is timed, then `--repeats` steps, whose median is the process's
step time. The table gives, per variant, the min/median/max over the
processes of the step time, and of its ratio to `tfnode_graph`'s process of
the same round.

    python scripts/benchmark_xla.py --problem=conv --processes=3 \
        --variants=tfnode_graph,tfnode_xla,tfnode_xla_loop
"""

import json
import os
import statistics
import subprocess
import sys
import time

from absl import app
from absl import flags as absl_flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# tfnode first: TensorFlow then loads with oneDNN (`tfnode._onednn`).
import tfnode  # noqa: E402

# isort: split
import _reproduce  # noqa: E402
import keras  # noqa: E402
import standard_problems  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfnode.stepping import grid  # noqa: E402

FLAGS = absl_flags.FLAGS
STEPS = 16
VARIANTS = (
    "tfnode_graph",
    "tfnode_xla",
    "tfnode_xla_loop",
    "tfnode_anode_graph",
    "tfnode_anode_xla",
    "tfnode_anode_xla_loop",
    "tfnode_continuous_graph",
    "tfnode_continuous_xla",
    "tfnode_field_xla",
    "while_graph",
    "while_xla",
    "unrolled_graph",
    "unrolled_xla",
    "while_nchw_xla",
)
REFERENCE = "tfnode_graph"


def define_flags():
    absl_flags.DEFINE_list("variants", list(VARIANTS), "Variants to run.")
    absl_flags.DEFINE_enum(
        "problem", "conv", standard_problems.PROBLEMS, "The problem."
    )
    absl_flags.DEFINE_integer("repeats", 3, "Timed steps per process.")
    absl_flags.DEFINE_integer("processes", 3, "Processes per variant.")
    absl_flags.DEFINE_integer("threads", 2, "Intra/inter-op threads.")
    absl_flags.DEFINE_string(
        "output", None, "Also writes the processes' results to this JSON."
    )
    absl_flags.DEFINE_integer(
        "timeout",
        None,
        "Seconds a process may take; one that takes longer is reported as "
        "such (a lower bound for the variants that are traps).",
    )
    absl_flags.DEFINE_string("child", None, "Internal: the variant to time.")


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
    xla = "_xla" in variant and variant != "tfnode_field_xla"
    if variant.startswith("tfnode"):
        adjoint = "backprop"
        for method in ("anode", "continuous"):
            if f"_{method}_" in variant:
                adjoint = method
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


def _time_variant(variant):
    """Runs in the child: first call and `--repeats` timed steps."""
    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
    if variant.endswith("_loop"):
        grid.UNROLL_MAX_STEPS = 0
    field, y0 = standard_problems.make_problem(FLAGS.problem)
    step = _train_step(variant, field, y0)
    start = time.perf_counter()
    loss = float(step())
    first = time.perf_counter() - start
    times = []
    for _ in range(FLAGS.repeats):
        start = time.perf_counter()
        step().numpy()
        times.append(time.perf_counter() - start)
    return {
        "variant": variant,
        "first": first,
        "steps": times,
        "median": statistics.median(times),
        "loss": loss,
        "unroll_max_steps": grid.UNROLL_MAX_STEPS,
    }


def _run_process(variant):
    command = [
        sys.executable,
        os.path.abspath(__file__),
        f"--child={variant}",
        f"--problem={FLAGS.problem}",
        f"--repeats={FLAGS.repeats}",
        f"--threads={FLAGS.threads}",
    ]
    load = os.getloadavg()[0]
    try:
        proc = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=False,
            timeout=FLAGS.timeout,
        )
    except subprocess.TimeoutExpired:
        return {
            "variant": variant,
            "error": f"no result within --timeout={FLAGS.timeout} s "
            "(first call and steps)",
            "load_before": load,
        }
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT"):
            result = json.loads(line[len("RESULT") :])
            result["load_before"] = load
            return result
    errors = [
        line for line in proc.stderr.splitlines() if "Error" in line
    ] or proc.stderr.splitlines()[-1:]
    print(f"{variant} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
    return {"variant": variant, "error": errors[-1][:300], "load_before": load}


def _spread(values, fmt):
    values = sorted(values)
    return (
        f"{fmt.format(statistics.median(values))} "
        f"({fmt.format(values[0])} - {fmt.format(values[-1])})"
    )


def _table(runs, variants):
    lines = [
        f"| variant | first call s | step s, median (min - max) | "
        f"step / {REFERENCE}, median (min - max) | load average |",
        "|---|---|---|---|---|",
    ]
    reference = [r.get("median") for r in runs[REFERENCE]]
    for variant in variants:
        failed = [r for r in runs[variant] if "error" in r]
        if failed:
            lines.append(
                f"| `{variant}` | fails: {failed[0]['error'][:120]} | - | - "
                f"| - |"
            )
            continue
        results = runs[variant]
        ratios = [
            r["median"] / ref
            for r, ref in zip(results, reference, strict=False)
        ]
        loads = [r["load_before"] for r in results]
        lines.append(
            f"| `{variant}` | "
            f"{statistics.median(r['first'] for r in results):.1f} | "
            f"{_spread([r['median'] for r in results], '{:.3f}')} | "
            f"**{_spread(ratios, '{:.2f}')}** | "
            f"{statistics.median(loads):.1f} |"
        )
    return "\n".join(lines)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError("Too many command-line arguments.")
    if FLAGS.child:
        print("RESULT" + json.dumps(_time_variant(FLAGS.child)), flush=True)
        return
    unknown = sorted(set(FLAGS.variants) - set(VARIANTS))
    if unknown:
        raise app.UsageError(f"Unknown variants {unknown}; of {VARIANTS}.")
    variants = list(FLAGS.variants)
    if REFERENCE not in variants:
        variants.insert(0, REFERENCE)
    runs = {variant: [] for variant in variants}
    for round_ in range(FLAGS.processes):
        order = variants if round_ % 2 == 0 else variants[::-1]
        for variant in order:
            runs[variant].append(_run_process(variant))
            r = runs[variant][-1]
            if "error" in r:
                continue
            print(
                f"  round {round_} {variant}: first {r['first']:.1f} s, "
                f"step {r['median']:.3f} s, load {r['load_before']:.1f}",
                file=sys.stderr,
                flush=True,
            )
    print(
        f"problem={FLAGS.problem} steps={STEPS} repeats={FLAGS.repeats} "
        f"processes={FLAGS.processes} threads={FLAGS.threads} "
        f"tf={tf.__version__} unroll_max_steps={grid.UNROLL_MAX_STEPS}"
    )
    print(_table(runs, variants))
    if FLAGS.output:
        _reproduce.write_json(FLAGS.output, runs)


if __name__ == "__main__":
    define_flags()
    app.run(main)
