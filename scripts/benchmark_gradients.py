"""Gradient benchmark: training-step time, peak memory and NFE of every
gradient method, as ratios to `backprop`.

For each standard problem (`scripts/standard_problems.py`), solver,
gradient method and step count, one child process builds the problem, runs
training steps of that method and reads its peak resident memory above the
process's baseline (peak RSS only grows, hence one process per
configuration). The same process then times `backprop` interleaved with the
method, so the time ratio is taken side by side.

    python scripts/benchmark_gradients.py --problems=mlp,conv
"""

import json
import os
import resource
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
import standard_problems  # noqa: E402
import tensorflow as tf  # noqa: E402

FLAGS = absl_flags.FLAGS

# (solver, method label, odeint settings) measured for every step count.
_CONFIGS = (
    ("euler", "backprop", {"adjoint": "backprop"}),
    ("euler", "anode", {"adjoint": "anode"}),
    ("euler", "anode K=4", {"adjoint": "anode", "checkpoints": 4}),
    ("euler", "continuous", {"adjoint": "continuous"}),
    ("euler", "reversible", {"adjoint": "reversible"}),
    ("rk4", "backprop", {"adjoint": "backprop"}),
    ("rk4", "anode", {"adjoint": "anode"}),
    ("rk4", "anode K=4", {"adjoint": "anode", "checkpoints": 4}),
    ("rk4", "continuous", {"adjoint": "continuous"}),
)
_ADAPTIVE_CONFIGS = (
    ("dopri5", "backprop", {"adjoint": "backprop"}),
    ("dopri5", "anode", {"adjoint": "anode"}),
    ("dopri5", "continuous", {"adjoint": "continuous"}),
    (
        "dopri5",
        "continuous+seminorm",
        {"adjoint": "continuous", "seminorm": True},
    ),
)


def define_flags():
    absl_flags.DEFINE_list("problems", ["mlp", "conv"], "Problems.")
    absl_flags.DEFINE_list("steps", ["8", "32", "128"], "Step counts.")
    absl_flags.DEFINE_float("tol", 1e-3, "rtol of the adaptive runs.")
    absl_flags.DEFINE_integer("repeats", 3, "Timed training steps.")
    absl_flags.DEFINE_integer("threads", 2, "Intra-op threads.")
    absl_flags.DEFINE_string("output", None, "Also write the rows as JSON.")
    absl_flags.DEFINE_enum(
        "group_norm",
        "tfnode",
        list(standard_problems.GROUP_NORMS),
        "GroupNorm layer of the conv field.",
    )
    absl_flags.DEFINE_string(
        "child", None, "Internal: run one configuration (JSON) and report."
    )


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _training_step(field, y0, settings, counter):
    optimizer = tf.keras.optimizers.SGD(1e-3)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            ys = tfnode.odeint(
                field, y0, [0.0, 1.0], nfe_counter=counter, **settings
            )
            loss = tf.reduce_mean(ys[-1] ** 2)
        grads = tape.gradient(loss, field.trainable_variables)
        optimizer.apply_gradients(
            zip(grads, field.trainable_variables, strict=True)
        )
        return loss

    return step


def _run_child(config):
    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
    field, y0 = standard_problems.make_problem(
        config["problem"], group_norm=FLAGS.group_norm
    )
    settings = {"solver": config["solver"], **config["settings"]}
    counter = tfnode.NFECounter()
    step = _training_step(field, y0, settings, counter)
    baseline = _peak_rss_mb()
    step().numpy()
    peak = _peak_rss_mb() - baseline
    counter.reset_state()
    times = []
    for _ in range(FLAGS.repeats):
        start = time.perf_counter()
        step().numpy()
        times.append(time.perf_counter() - start)
    nfe = {k: float(v) for k, v in counter.result().items()}
    result = {
        "peak_mb": peak,
        "nfe_forward": nfe["nfe_forward"],
        "nfe_backward": nfe["nfe_backward"],
        "time": statistics.median(times),
    }
    if config["settings"]["adjoint"] != "backprop":
        reference = {
            k: v
            for k, v in settings.items()
            if k not in ("adjoint", "checkpoints", "seminorm")
        }
        backprop = _training_step(field, y0, reference, tfnode.NFECounter())
        backprop().numpy()
        ours, theirs = [], []
        for _ in range(FLAGS.repeats):
            for fn, out in ((step, ours), (backprop, theirs)):
                start = time.perf_counter()
                fn().numpy()
                out.append(time.perf_counter() - start)
        result["time_ratio"] = statistics.median(ours) / statistics.median(
            theirs
        )
    else:
        result["time_ratio"] = 1.0
    print("RESULT" + json.dumps(result))


def _configurations():
    for problem in FLAGS.problems:
        for steps in (int(s) for s in FLAGS.steps):
            for solver, label, settings in _CONFIGS:
                yield (
                    problem,
                    solver,
                    label,
                    steps,
                    {"steps": steps, **settings},
                )
        for solver, label, settings in _ADAPTIVE_CONFIGS:
            yield problem, solver, label, None, {"tol": FLAGS.tol, **settings}


def _measure(problem, solver, settings):
    config = {"problem": problem, "solver": solver, "settings": settings}
    proc = subprocess.run(
        [
            sys.executable,
            os.path.abspath(__file__),
            f"--child={json.dumps(config)}",
            f"--repeats={FLAGS.repeats}",
            f"--threads={FLAGS.threads}",
            f"--group_norm={FLAGS.group_norm}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[len("RESULT") :])
    raise RuntimeError(f"{config} failed:\n{proc.stderr[-2000:]}")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError("Too many command-line arguments.")
    if FLAGS.child:
        _run_child(json.loads(FLAGS.child))
        return
    rows, backprop = [], {}
    print(
        "| problem | solver | steps | method | NFE fwd / bwd | step ms | "
        "time / backprop | peak MB | memory / backprop |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for problem, solver, label, steps, settings in _configurations():
        result = _measure(problem, solver, settings)
        key = (problem, solver, steps)
        if label == "backprop":
            backprop[key] = result
        memory_ratio = result["peak_mb"] / max(backprop[key]["peak_mb"], 1.0)
        row = {
            "problem": problem,
            "solver": solver,
            "steps": steps or f"tol {FLAGS.tol:g}",
            "method": label,
            **result,
            "memory_ratio": memory_ratio,
        }
        rows.append(row)
        print(
            f"| {problem} | {solver} | {row['steps']} | {label} | "
            f"{result['nfe_forward']:.0f} / {result['nfe_backward']:.0f} | "
            f"{1e3 * result['time']:.1f} | {result['time_ratio']:.2f} | "
            f"{result['peak_mb']:.0f} | {memory_ratio:.2f} |",
            flush=True,
        )
    if FLAGS.output:
        _reproduce.write_json(FLAGS.output, rows)


if __name__ == "__main__":
    define_flags()
    app.run(main)
