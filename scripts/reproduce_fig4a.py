"""Reproduces Figure 4a of Ott et al., "ResNet After All? Neural ODEs and
Their Numerical Solution" (ICLR 2021) on a CPU.

`simple_odenet` (`tfnode.models`) is trained on concentric_sphere2
(`tfnode.datasets`) with Euler's method at h = 1, 1/2, ..., 1/64, and each
trained model is tested with euler, midpoint and rk4 at `h / factor` for
factors 0.5 to 2 (`tfnode.robustness.evaluate_with_solvers`). Models trained
with a coarse step lose their accuracy under the more accurate test solvers;
models trained below a critical step do not. A last run trains with step
adaptation (`tfnode.robustness.StepAdaptation`) and reports where the step
settles.

```shell
python scripts/reproduce_fig4a.py       # 5000 iterations, 1 seed: ~17 min
python scripts/reproduce_fig4a.py --iterations=10000 --seeds=0,1,2,3,4
```

The paper trains 10000 iterations per model with 5 seeds (Adam, learning
rate 1e-4, batch 128); the default here is 5000 iterations and one seed,
so that the whole figure takes under 30 minutes on 2 CPU cores.

Writes the figure (`--figure`, `--adaptation_figure`) and every number
(`--output_dir/results.json`), and prints the tables in Markdown.
"""

import json
import os
import sys
import time

import keras
import numpy as np
from absl import app
from absl import flags as absl_flags

from tfnode import datasets
from tfnode import models
from tfnode import robustness

FLAGS = absl_flags.FLAGS


def define_flags():
    absl_flags.DEFINE_integer(
        "iterations",
        5000,
        "Training iterations (batches) per model (the paper: 10000).",
    )
    absl_flags.DEFINE_float("learning_rate", 1e-4, "Adam learning rate.")
    absl_flags.DEFINE_integer("batch_size", 128, "Training batch size.")
    absl_flags.DEFINE_list("seeds", ["0"], "Initialization seeds.")
    absl_flags.DEFINE_integer("data_seed", 0, "Seed of the generated data.")
    absl_flags.DEFINE_list(
        "inverse_step_sizes",
        ["1", "2", "4", "8", "16", "32", "64"],
        "Training steps 1/n, given as n.",
    )
    absl_flags.DEFINE_list(
        "test_solvers", ["euler", "midpoint", "rk4"], "Test solvers."
    )
    absl_flags.DEFINE_list(
        "test_factors",
        ["0.5", "0.75", "1", "1.5", "2"],
        "Test factors: h_test = h_train / factor.",
    )
    absl_flags.DEFINE_bool(
        "step_adaptation", True, "Also train a model with step adaptation."
    )
    absl_flags.DEFINE_float(
        "adaptation_threshold", 0.1, "Step adaptation threshold."
    )
    absl_flags.DEFINE_integer(
        "adaptation_interval", 50, "Iterations between adaptations."
    )
    absl_flags.DEFINE_integer(
        "adaptation_max_steps", 500, "Most Euler steps in adaptation."
    )
    absl_flags.DEFINE_string(
        "output_dir", "experiments/fig4a", "Where results.json goes."
    )
    absl_flags.DEFINE_string("figure", "docs/fig4a.png", "Figure 4a PNG.")
    absl_flags.DEFINE_string(
        "adaptation_figure",
        "docs/fig4a_adaptation.png",
        "PNG of the adapted step size over training.",
    )


# ----------------------------------------------------------------- training


def compile_model(model):
    model.compile(
        optimizer=keras.optimizers.Adam(FLAGS.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def train(model, data, callbacks=()):
    compile_model(model)
    start = time.time()
    model.fit(
        data,
        steps_per_epoch=FLAGS.iterations,
        epochs=1,
        callbacks=list(callbacks),
        verbose=0,
    )
    return time.time() - start


# ------------------------------------------------------------------ reports


def _fraction(h):
    n = 1.0 / h
    return f"1/{n:g}" if n > 1 else f"{h:g}"


def mean_tables(tables):
    """Accuracy averaged over seeds, row by row (tables share layout)."""
    rows = []
    for group in zip(*tables, strict=True):
        row = dict(group[0])
        accuracies = [r["accuracy"] for r in group]
        row["accuracy"] = float(np.mean(accuracies))
        row["accuracy_std"] = float(np.std(accuracies))
        rows.append(row)
    return rows


def markdown_table(tables, solvers, factors):
    header = "| trained h | " + " | ".join(
        f"{s} x{f:g}" for s in solvers for f in factors
    )
    lines = [header + " |", "|---" * (1 + len(solvers) * len(factors)) + "|"]
    for label, table in tables.items():
        by_key = {(r["solver"], r["factor"]): r for r in table}
        cells = [
            f"{by_key[s, f]['accuracy']:.3f}" for s in solvers for f in factors
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def accuracy_drop(table):
    """Training-solver accuracy minus the worst accuracy with a more
    accurate test solve (midpoint/rk4 at factor >= 1, euler at > 1)."""
    base = next(
        r["accuracy"]
        for r in table
        if r["solver"] == "euler" and r["factor"] == 1.0
    )
    finer = [
        r["accuracy"]
        for r in table
        if (r["solver"] != "euler" and r["factor"] >= 1.0)
        or (r["solver"] == "euler" and r["factor"] > 1.0)
    ]
    return base, base - min(finer)


def plot_adaptation(history, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.5, 3.2))
    axes = figure.subplots()
    iterations = [e["iteration"] for e in history]
    steps = [e["num_steps"] for e in history]
    axes.step(iterations, steps, where="post")
    axes.set_yscale("log", base=2)
    axes.set_xlabel("training iteration")
    axes.set_ylabel("Euler steps (1/h)")
    axes.set_title("step adaptation on concentric_sphere2", fontsize=10)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    FigureCanvasAgg(figure)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    figure.savefig(path, dpi=100)


# --------------------------------------------------------------------- main


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    start = time.time()
    data = datasets.load("concentric_sphere2", seed=FLAGS.data_seed)
    build = models.get("simple_odenet")
    steps = [1.0 / float(n) for n in FLAGS.inverse_step_sizes]
    factors = [float(f) for f in FLAGS.test_factors]
    solvers = list(FLAGS.test_solvers)
    seeds = [int(s) for s in FLAGS.seeds]
    results = dict(
        iterations=FLAGS.iterations,
        learning_rate=FLAGS.learning_rate,
        batch_size=FLAGS.batch_size,
        seeds=seeds,
        runs=[],
    )
    per_step = {}
    for h in steps:
        tables = []
        for seed in seeds:
            keras.utils.set_random_seed(seed)
            model = build(solver="euler", step_size=h)
            seconds = train(
                model, data.train_batches(FLAGS.batch_size, seed=seed)
            )
            table = robustness.evaluate_with_solvers(
                model, data.test, solvers, factors, batch_size=1000
            )
            tables.append(table)
            base, drop = accuracy_drop(table)
            print(
                f"h={_fraction(h)} seed={seed}: trained in {seconds:.0f}s, "
                f"test accuracy {base:.3f} (euler, h), largest drop with a "
                f"finer test solve {drop:.3f}",
                flush=True,
            )
            results["runs"].append(
                dict(step_size=h, seed=seed, seconds=seconds, table=table)
            )
        per_step[f"h={_fraction(h)}"] = mean_tables(tables)
    robustness.plot_solver_sweep(
        per_step,
        FLAGS.figure,
        title=(
            f"simple_odenet, concentric_sphere2, Euler training "
            f"({FLAGS.iterations} iterations, {len(seeds)} seed(s))"
        ),
    )
    print("\nTest accuracy (mean over seeds):\n")
    print(markdown_table(per_step, solvers, factors))

    if FLAGS.step_adaptation:
        seed = seeds[0]
        keras.utils.set_random_seed(seed)
        model = build(solver="euler", step_size=1.0)
        batches = data.train_batches(FLAGS.batch_size, seed=seed)
        callback = robustness.StepAdaptation(
            batches,
            threshold=FLAGS.adaptation_threshold,
            interval=FLAGS.adaptation_interval,
            max_steps=FLAGS.adaptation_max_steps,
        )
        seconds = train(model, batches, [callback])
        final = callback.history[-1]
        h_end = callback.step_size
        table = robustness.evaluate_with_solvers(
            model, data.test, solvers, factors, batch_size=1000
        )
        base, drop = accuracy_drop(table)
        visited = [e["num_steps"] for e in callback.history]
        print(
            f"\nStep adaptation ({seconds:.0f}s): Hairer's start "
            f"h={callback.history[0]['step_size']:.4f}; settled at "
            f"h={h_end:.4f} ({final['num_steps']} Euler steps; steps "
            f"visited {min(visited)}-{max(visited)}); test accuracy "
            f"{base:.3f}, largest drop with a finer test solve {drop:.3f}"
        )
        print(
            markdown_table({f"adapted h={h_end:.4f}": table}, solvers, factors)
        )
        plot_adaptation(callback.history, FLAGS.adaptation_figure)
        results["adaptation"] = dict(
            seed=seed,
            seconds=seconds,
            history=callback.history,
            final_step_size=h_end,
            table=table,
        )
    results["seconds"] = time.time() - start
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    with open(os.path.join(FLAGS.output_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(f"\nTotal {results['seconds']:.0f}s; figure {FLAGS.figure}")


if __name__ == "__main__":
    define_flags()
    sys.exit(app.run(main))
