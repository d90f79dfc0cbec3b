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
python scripts/reproduce_fig4a.py --train_solver=rk4 --figure=docs/fig4b.png \
    --output_dir=experiments/fig4b --nostep_adaptation   # Figure 4b
python scripts/reproduce_fig4a.py --quick --output_dir=/tmp/fig4a  # seconds
```

The paper trains 10000 iterations per model with 5 seeds (Adam, learning
rate 1e-4, batch 128); the default here is 5000 iterations and one seed,
so that the whole figure takes under 30 minutes on 2 CPU cores. Figure 4b
is the same experiment with another training solver (`--train_solver`).
Models whose grid XLA runs unrolled (at most
`tfnode.stepping.grid.UNROLL_MAX_STEPS` steps) train under XLA
(`--jit_compile`; at h = 1/32 an iteration took 7.7 ms against 34 ms in
graph mode here); the others in graph mode.

Writes the figures (`--figure`, `--adaptation_figure`), every number
(`--output_dir/results.json`) and the tables (`results.md`, also printed:
accuracy averaged over seeds and its standard deviation, drawn as error
bars). `--replot=results.json` redraws the figure and tables of a run.
"""

import json
import os
import sys
import time

# tfnode first: TensorFlow then loads with oneDNN (`tfnode._onednn`).
import tfnode

# isort: split
import _reproduce
import keras
import numpy as np
import tensorflow as tf
from absl import flags as absl_flags

from tfnode import datasets
from tfnode import models
from tfnode import robustness
from tfnode import solvers as solvers_lib
from tfnode.stepping import grid

FLAGS = absl_flags.FlagValues()
define = _reproduce.flag_definer(FLAGS)


def define_flags():
    """Defines the script's flags in `FLAGS`."""
    define(
        "string",
        "train_solver",
        "euler",
        "Fixed-step training solver (Fig. 4b).",
    )
    define(
        "bool",
        "jit_compile",
        True,
        "Train under XLA the models whose grid tfnode unrolls under XLA.",
    )
    define(
        "bool",
        "quick",
        False,
        "A seconds-long smoke run: 20 iterations, h = 1 and 1/2, factors "
        "1 and 2, a short step adaptation; figures go to --output_dir.",
    )
    define(
        "integer",
        "iterations",
        5000,
        "Training iterations (batches) per model (the paper: 10000).",
    )
    define("float", "learning_rate", 1e-4, "Adam learning rate.")
    define("integer", "batch_size", 128, "Training batch size.")
    define("list", "seeds", ["0"], "Initialization seeds.")
    define("integer", "data_seed", 0, "Seed of the generated data.")
    define(
        "list",
        "inverse_step_sizes",
        ["1", "2", "4", "8", "16", "32", "64"],
        "Training steps 1/n, given as n.",
    )
    define(
        "list", "test_solvers", ["euler", "midpoint", "rk4"], "Test solvers."
    )
    define(
        "list",
        "test_factors",
        ["0.5", "0.75", "1", "1.5", "2"],
        "Test factors: h_test = h_train / factor.",
    )
    define(
        "bool",
        "step_adaptation",
        True,
        "Also train a model with step adaptation.",
    )
    define("float", "adaptation_threshold", 0.1, "Step adaptation threshold.")
    define(
        "integer", "adaptation_interval", 50, "Iterations between adaptations."
    )
    define(
        "integer",
        "adaptation_max_steps",
        500,
        "Most Euler steps in adaptation.",
    )
    define(
        "string", "output_dir", "experiments/fig4a", "Where results.json goes."
    )
    define(
        "string",
        "replot",
        None,
        "Draw the figure and print the tables of a results.json written "
        "before, without training.",
    )
    define("string", "figure", "docs/fig4a.png", "Figure 4a PNG.")
    define(
        "string",
        "adaptation_figure",
        "docs/fig4a_adaptation.png",
        "PNG of the adapted step size over training.",
    )


# ----------------------------------------------------------------- training


def compile_model(model, jit_compile=False):
    model.compile(
        optimizer=keras.optimizers.Adam(FLAGS.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=jit_compile,
    )


def unrolled_under_xla(h):
    """Whether XLA runs the training grid of step `h` on [0, 1] unrolled
    (a `tf.while_loop` gradient under XLA:CPU is slower than graph mode)."""
    settings = tfnode.SolveSettings(solver=FLAGS.train_solver, step_size=h)
    steps = grid.short_grid_steps(tf.constant([0.0, 1.0]), settings)
    return FLAGS.jit_compile and steps is not None


def train(model, data, callbacks=(), jit_compile=False):
    compile_model(model, jit_compile)
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


def accuracy_drop(table, train_solver):
    """Training-solver accuracy minus the worst accuracy with a more
    accurate test solve: a solver of at least the training solver's order
    at factor >= 1, other than the training setting itself."""
    order = solvers_lib.get(train_solver).order

    def finer(row):
        same = row["solver"] == train_solver
        return (
            solvers_lib.get(row["solver"]).order >= order
            and row["factor"] >= 1.0
            and not (same and row["factor"] == 1.0)
        )

    base = next(
        r["accuracy"]
        for r in table
        if r["solver"] == train_solver and r["factor"] == 1.0
    )
    return base, base - min(r["accuracy"] for r in table if finer(r))


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


def apply_quick():
    """`--quick`: a smoke run of every part in seconds."""
    FLAGS.iterations = 20
    FLAGS.inverse_step_sizes = ["1", "2"]
    FLAGS.test_factors = ["1", "2"]
    FLAGS.adaptation_interval = 10
    FLAGS.adaptation_max_steps = 8
    FLAGS.figure = os.path.join(FLAGS.output_dir, "fig4a.png")
    FLAGS.adaptation_figure = os.path.join(
        FLAGS.output_dir, "fig4a_adaptation.png"
    )


def train_and_test(build, data, h, seed, solvers, factors):
    """Trains one model at step `h` from `seed` and tests it with every
    solver and factor; returns the run's record."""
    keras.utils.set_random_seed(seed)
    model = build(solver=FLAGS.train_solver, step_size=h)
    seconds = train(
        model,
        data.train_batches(FLAGS.batch_size, seed=seed),
        jit_compile=unrolled_under_xla(h),
    )
    table = robustness.evaluate_with_solvers(
        model, data.test, solvers, factors, batch_size=1000
    )
    base, drop = accuracy_drop(table, FLAGS.train_solver)
    print(
        f"h={_fraction(h)} seed={seed}: trained in {seconds:.0f}s, "
        f"test accuracy {base:.3f} ({FLAGS.train_solver}, h), largest drop "
        f"with a finer test solve {drop:.3f}",
        flush=True,
    )
    return dict(step_size=h, seed=seed, seconds=seconds, table=table)


def adapt_step(build, data, seed, solvers, factors):
    """Trains with step adaptation from h = 1 and tests the result;
    returns the run's record."""
    keras.utils.set_random_seed(seed)
    model = build(solver=FLAGS.train_solver, step_size=1.0)
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
    base, drop = accuracy_drop(table, FLAGS.train_solver)
    visited = [e["num_steps"] for e in callback.history]
    print(
        f"\nStep adaptation ({seconds:.0f}s): Hairer's start "
        f"h={callback.history[0]['step_size']:.4f}; settled at "
        f"h={h_end:.4f} ({final['num_steps']} steps; steps "
        f"visited {min(visited)}-{max(visited)}); test accuracy "
        f"{base:.3f}, largest drop with a finer test solve {drop:.3f}"
    )
    plot_adaptation(callback.history, FLAGS.adaptation_figure)
    return dict(
        seed=seed,
        seconds=seconds,
        history=callback.history,
        final_step_size=h_end,
        table=table,
    )


def sweep_tables(runs):
    """The runs' tables averaged over seeds, one per training step."""
    by_step = {}
    for run in runs:
        by_step.setdefault(run["step_size"], []).append(run["table"])
    return {
        f"h={_fraction(h)}": mean_tables(tables)
        for h, tables in sorted(by_step.items(), reverse=True)
    }


def report(results, solvers, factors):
    """Draws the figure of `results` and returns its Markdown tables."""
    per_step = sweep_tables(results["runs"])
    seeds = len(results["seeds"])
    seeds = f"{seeds} seeds: mean and std" if seeds > 1 else "1 seed"
    robustness.plot_solver_sweep(
        per_step,
        FLAGS.figure,
        title=(
            f"simple_odenet, concentric_sphere2, {results['train_solver']} "
            f"training ({results['iterations']} iterations, {seeds})"
        ),
    )
    parts = [
        "Test accuracy (mean over seeds):",
        markdown_table(per_step, solvers, factors),
    ]
    if len(results["seeds"]) > 1:
        spread = {
            label: [dict(r, accuracy=r["accuracy_std"]) for r in table]
            for label, table in per_step.items()
        }
        parts += [
            "Standard deviation over seeds:",
            markdown_table(spread, solvers, factors),
        ]
    adaptation = results.get("adaptation")
    if adaptation:
        label = f"adapted h={adaptation['final_step_size']:.4f}"
        parts += [
            "Step adaptation:",
            markdown_table({label: adaptation["table"]}, solvers, factors),
        ]
    return "\n\n".join(parts)


def main(argv):
    _reproduce.parse_flags(FLAGS, argv)
    if FLAGS.quick:
        apply_quick()
    factors = [float(f) for f in FLAGS.test_factors]
    solvers = list(FLAGS.test_solvers)
    if FLAGS.replot:
        with open(FLAGS.replot) as f:
            results = json.load(f)
        print(report(results, solvers, factors))
        return 0
    start = time.time()
    data = datasets.load("concentric_sphere2", seed=FLAGS.data_seed)
    build = models.get("simple_odenet")
    seeds = [int(s) for s in FLAGS.seeds]
    results = dict(
        train_solver=FLAGS.train_solver,
        iterations=FLAGS.iterations,
        learning_rate=FLAGS.learning_rate,
        batch_size=FLAGS.batch_size,
        seeds=seeds,
        runs=[
            train_and_test(build, data, 1.0 / float(n), seed, solvers, factors)
            for n in FLAGS.inverse_step_sizes
            for seed in seeds
        ],
    )
    if FLAGS.step_adaptation:
        results["adaptation"] = adapt_step(
            build, data, seeds[0], solvers, factors
        )
    results["seconds"] = time.time() - start
    figures = [FLAGS.figure]
    if FLAGS.step_adaptation:
        figures.append(FLAGS.adaptation_figure)
    _reproduce.publish(
        FLAGS.output_dir,
        "results",
        results,
        report(results, solvers, factors),
        figures,
    )
    return 0


define_flags()

if __name__ == "__main__":
    sys.exit(main(sys.argv))
