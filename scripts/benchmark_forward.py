"""Forward benchmark: time per solve, NFE and error of every solver.

For the standard problems (`scripts/standard_problems.py`), each solver
solves over [0, 1] inside `tf.function` (optionally with XLA). Fixed-step
solvers are timed against the same solve written out by hand in plain
TensorFlow, interleaved in the same process, and reported as a ratio (these
machines are noisy: only ratios taken side by side mean anything). Errors
are against a tight `tsit5` solve.

    python scripts/benchmark_forward.py --problems=mlp,conv --steps=16
"""

import os
import statistics
import sys
import time

from absl import app
from absl import flags as absl_flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# tfnode first: TensorFlow then loads with oneDNN (`tfnode._onednn`).
import tfnode  # noqa: E402

# isort: split
import standard_problems  # noqa: E402
import tensorflow as tf  # noqa: E402

FLAGS = absl_flags.FLAGS
_HAND_WRITTEN = ("euler", "midpoint", "heun", "rk4")


def define_flags():
    absl_flags.DEFINE_list("problems", ["mlp", "conv"], "Problems to run.")
    absl_flags.DEFINE_integer("steps", 16, "Steps of the fixed-step solves.")
    absl_flags.DEFINE_float("tol", 1e-3, "rtol = atol of adaptive solves.")
    absl_flags.DEFINE_integer("repeats", 15, "Timed repetitions.")
    absl_flags.DEFINE_boolean("xla", False, "Compile with jit_compile=True.")
    absl_flags.DEFINE_integer("threads", 2, "Intra-op threads.")


def _timed(fn, repeats):
    """Median seconds of `fn()` over interleavable single runs."""
    fn()  # trace and warm up
    return [_once(fn) for _ in range(repeats)]


def _once(fn):
    start = time.perf_counter()
    fn().numpy()
    return time.perf_counter() - start


def _compare(ours, reference, repeats):
    """Interleaved runs of two solves; returns median times."""
    ours(), reference()
    a, b = [], []
    for _ in range(repeats):
        a.append(_once(ours))
        b.append(_once(reference))
    return statistics.median(a), statistics.median(b)


def run_problem(name):
    field, y0 = standard_problems.make_problem(name)
    compile_kw = {"jit_compile": FLAGS.xla}
    exact = tfnode.odeint(field, y0, [0.0, 1.0], solver="tsit5", tol=1e-7)[-1]
    rows = []
    for solver in tfnode.solvers.names(aliases=False):
        adaptive = tfnode.solvers.get(solver).adaptive
        settings = {"tol": FLAGS.tol} if adaptive else {"steps": FLAGS.steps}
        solve = tf.function(
            lambda s=solver, kw=settings: tfnode.odeint(
                field, y0, [0.0, 1.0], solver=s, return_stats=True, **kw
            ),
            **compile_kw,
        )
        ys, stats = solve()
        error = float(tf.reduce_max(tf.abs(ys[-1] - exact)))
        ours = tf.function(lambda f=solve: f()[0][-1])
        if solver in _HAND_WRITTEN:
            reference = tf.function(
                lambda s=solver: standard_problems.hand_written_solve(
                    field, y0, s, FLAGS.steps
                ),
                **compile_kw,
            )
            t_ours, t_ref = _compare(ours, reference, FLAGS.repeats)
            ratio = f"{t_ours / t_ref:.2f}"
        else:
            t_ours = statistics.median(_timed(ours, FLAGS.repeats))
            ratio = "-"
        rows.append(
            (
                name,
                solver,
                "adaptive" if adaptive else f"{FLAGS.steps} steps",
                int(stats.num_fn_evals),
                f"{1e3 * t_ours:.1f}",
                ratio,
                f"{error:.1e}",
            )
        )
        print(" | ".join(str(x) for x in rows[-1]), file=sys.stderr)
    return rows


def main(argv):
    if len(argv) > 1:
        raise app.UsageError("Too many command-line arguments.")
    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
    print(
        "| problem | solver | grid | NFE | ms per solve | ratio to hand-"
        "written | max error vs tsit5 1e-7 |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in FLAGS.problems:
        for row in run_problem(name):
            print("| " + " | ".join(str(x) for x in row) + " |")
    print(f"xla={FLAGS.xla} threads={FLAGS.threads} tf={tf.__version__}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
