"""Reproduces the findings of Gholami et al., "ANODE: Unconditionally
Accurate Memory-Efficient Gradients for Neural ODEs" (IJCAI 2019): the
continuous adjoint's gradient is not the gradient of what the forward pass
computed, and training with it is worse.

(a) `--parts=gradients`. ANODE's networks (`anode_sqnxt`, `anode_resnet`;
four ODE blocks each, full width) are solved with Euler, RK2 (midpoint)
and RK4 at Nt steps per block (`anode_resnet`, 11M parameters: Euler and
RK2 at Nt <= 4 by default). On one batch of real digits (padded to
32x32x3), the gradient of the loss with `adjoint="continuous"` (the
adjoint ODE solved backwards on the same grid, Chen et al.) is compared
with the exact gradient of the discrete forward map (`adjoint="anode"`,
equal to backprop): relative error and cosine, per ODE block (the
parameters of that block's vector field) and over all parameters. No
training: the weights are the initial ones, the BatchNorm layers in
training mode, as in the first step of a training run.

(b) `--parts=training`. `--train_network` (`anode_sqnxt`) is trained with
`adjoint="anode"` and with `adjoint="continuous"`, same seeds, RK2 with
Nt = 2 (ANODE's README figure), ANODE's optimiser, on real digits that ship
in a package (`mnist_package`, 4,000 / 1,000); loss and accuracy curves.

```shell
python scripts/reproduce_anode.py             # full: see --help for scale
python scripts/reproduce_anode.py --quick     # seconds
```

Writes `anode_gradients.{json,md,png}` and `anode_training.{json,md,png}`
to `--output_dir`.
"""

import os
import sys
import time

# tfnode first: TensorFlow then loads with oneDNN (`tfnode._onednn`).
import tfnode

# isort: split
import keras
from absl import flags as absl_flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _reproduce  # noqa: E402

FLAGS = absl_flags.FlagValues()
define = _reproduce.flag_definer(FLAGS)
_reproduce.define_common_flags(FLAGS, seed_help="Initialisation seed.")
define("list", "networks", ["anode_sqnxt", "anode_resnet"], "Networks.")
define("list", "solvers", ["euler", "rk2", "rk4"], "Fixed-step solvers.")
define("list", "steps", ["1", "2", "4", "8"], "Steps per block (Nt).")
define(
    "list",
    "resnet_solvers",
    ["euler", "rk2"],
    "Solvers for anode_resnet (11M parameters: fewer settings).",
)
define(
    "list", "resnet_steps", ["1", "2", "4"], "Steps per block for anode_resnet."
)
define("list", "batch_sizes", ["8", "4"], "Batch per network (same order).")
define("list", "parts", ["gradients", "training"], "Parts to run.")
define(
    "string",
    "train_network",
    "anode_sqnxt",
    "Network of the training comparison.",
)
define(
    "string",
    "train_solver",
    "rk2",
    "Solver of the training comparison (ANODE's README figure: RK2).",
)
define("integer", "train_epochs", 6, "Epochs of the training comparison.")
define("list", "train_seeds", ["0"], "Seeds of the training comparison.")

BLOCKS = 4
PARTS = ("gradients", "training")
TRAIN_ADJOINTS = ("anode", "continuous")


def block_indices(model):
    """Indices into `trainable_variables` of each ODE block's field."""
    paths = [v.path for v in model.trainable_variables]
    return [
        [i for i, p in enumerate(paths) if f"stage{b}_func/" in p]
        for b in range(1, BLOCKS + 1)
    ]


def compare(network, solver, steps, x, y):
    """Continuous adjoint vs exact gradient for one solve setting."""
    keras.utils.set_random_seed(FLAGS.seed)
    model = tfnode.models.get(network)(
        (32, 32, 3), 10, solver=solver, steps=steps, adjoint="anode"
    )
    exact = _reproduce.loss_gradient(model, x, y)
    tfnode.set_solver(model, adjoint="continuous")
    approx = _reproduce.loss_gradient(model, x, y)
    row = dict(
        network=network,
        solver=solver,
        steps=steps,
        relative_error=_reproduce.relative_error(approx, exact),
        cosine=_reproduce.cosine(approx, exact),
        blocks=[],
    )
    for indices in block_indices(model):
        if not indices:
            raise RuntimeError(f"No ODE block variables found in {network}.")
        a = [approx[i] for i in indices]
        e = [exact[i] for i in indices]
        row["blocks"].append(
            dict(
                relative_error=_reproduce.relative_error(a, e),
                cosine=_reproduce.cosine(a, e),
            )
        )
    return row


def plot(rows, path):
    networks = list(dict.fromkeys(r["network"] for r in rows))
    fig, axes = _reproduce.figure(len(networks), 2, 4.4, 3.2)
    for col, network in enumerate(networks):
        top, bottom = axes[0][col], axes[1][col]
        for solver, marker in zip(FLAGS.solvers, "os^", strict=False):
            sel = [
                r
                for r in rows
                if r["network"] == network and r["solver"] == solver
            ]
            if not sel:
                continue
            steps = [r["steps"] for r in sel]
            (line,) = top.loglog(
                steps,
                [r["relative_error"] for r in sel],
                marker=marker,
                label=f"{solver}, all parameters",
            )
            for b in range(BLOCKS):
                top.loglog(
                    steps,
                    [r["blocks"][b]["relative_error"] for r in sel],
                    color=line.get_color(),
                    alpha=0.35,
                    lw=0.8,
                )
            bottom.semilogx(
                steps,
                [r["cosine"] for r in sel],
                marker=marker,
                color=line.get_color(),
                label=solver,
            )
        top.set_title(f"{network}: continuous adjoint vs exact", fontsize=10)
        top.set_ylabel("relative gradient error")
        bottom.set_ylabel("cosine similarity")
        grid = sorted({r["steps"] for r in rows if r["network"] == network})
        for ax in (top, bottom):
            ax.set_xticks(grid, [str(n) for n in grid], minor=False)
            ax.set_xticks([], minor=True)
            ax.set_xlabel("steps per block Nt")
            ax.grid(alpha=0.3, which="both")
        top.legend(fontsize=7, title="faint: blocks 1-4", title_fontsize=7)
        bottom.legend(fontsize=7)
    return _reproduce.save_figure(fig, path)


def report(rows):
    header = ["network", "solver", "Nt", "rel. error", "cosine"] + [
        f"block {b} rel. error" for b in range(1, BLOCKS + 1)
    ]
    table = [
        [
            r["network"],
            r["solver"],
            r["steps"],
            f"{r['relative_error']:.3f}",
            f"{r['cosine']:.3f}",
        ]
        + [f"{b['relative_error']:.3f}" for b in r["blocks"]]
        for r in rows
    ]
    return (
        "Continuous adjoint's gradient against the exact gradient "
        "(`anode`):\n\n" + _reproduce.markdown_table(header, table)
    )


# --------------------------------------------------------------- (b) training


def train(adjoint, seed, quick):
    """ANODE's optimiser (SGD 0.1, momentum 0.9, weight decay 5e-4, lr/10
    after two thirds of the epochs) and Nt = 2, batch 128, on the package
    digits, per-channel normalised and not augmented (digits must not be
    flipped). Returns the per-epoch rows."""
    epochs = 1 if quick else FLAGS.train_epochs
    batch_size = 16 if quick else 128
    data = tfnode.datasets.load(
        "mnist_package",
        normalize="per_channel",
        train_examples=32 if quick else None,
        test_examples=16 if quick else None,
    )
    keras.utils.set_random_seed(seed)
    model = tfnode.models.get(FLAGS.train_network)(
        data.info.input_shape,
        data.info.num_classes,
        solver=FLAGS.train_solver,
        steps=2,
        adjoint=adjoint,
    )
    steps = data.steps_per_epoch(batch_size)
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
        [steps * max(1, 2 * epochs // 3)], [0.1, 0.01]
    )
    optimizer = keras.optimizers.SGD(schedule, momentum=0.9, weight_decay=5e-4)
    return _reproduce.fit_classifier(
        model, data, optimizer, batch_size, epochs, seed, run_eagerly=quick
    )


def run_training(quick):
    runs = []
    seeds = [int(s) for s in FLAGS.train_seeds][: 1 if quick else None]
    for seed in seeds:
        for adjoint in TRAIN_ADJOINTS:
            began = time.time()
            rows = train(adjoint, seed, quick)
            seconds = time.time() - began
            runs.append(
                dict(adjoint=adjoint, seed=seed, metrics=rows, seconds=seconds)
            )
            last = rows[-1]
            print(
                f"training {adjoint} seed={seed}: train loss "
                f"{last['train_loss']:.4f}, test accuracy "
                f"{last['test_accuracy']:.4f} ({seconds:.0f}s)",
                flush=True,
            )
    return runs


def plot_training(runs, path):
    fig, axes = _reproduce.figure(2, 1, 4.2, 3.2)
    loss, accuracy = axes[0]
    colors = {"anode": "C0", "continuous": "C3"}
    for run in runs:
        epochs = [r["epoch"] for r in run["metrics"]]
        label = f"{run['adjoint']} (seed {run['seed']})"
        color = colors[run["adjoint"]]
        loss.semilogy(
            epochs,
            [r["train_loss"] for r in run["metrics"]],
            "o-",
            color=color,
            label=label,
        )
        accuracy.plot(
            epochs,
            [r["test_accuracy"] for r in run["metrics"]],
            "o-",
            color=color,
            label=label,
        )
    loss.set_ylabel("training loss")
    accuracy.set_ylabel("test accuracy")
    for ax in axes[0]:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(
        f"{FLAGS.train_network}, {FLAGS.train_solver} Nt=2, mnist_package",
        fontsize=10,
    )
    return _reproduce.save_figure(fig, path)


def report_training(runs):
    table = [
        [
            run["adjoint"],
            run["seed"],
            f"{run['metrics'][-1]['train_loss']:.4f}",
            f"{run['metrics'][-1]['train_accuracy']:.4f}",
            f"{run['metrics'][-1]['test_accuracy']:.4f}",
            f"{max(r['test_accuracy'] for r in run['metrics']):.4f}",
            f"{run['seconds']:.0f}",
        ]
        for run in runs
    ]
    return "Training comparison (final epoch):\n\n" + _reproduce.markdown_table(
        [
            "gradient",
            "seed",
            "train loss",
            "train acc",
            "test acc",
            "best test acc",
            "seconds",
        ],
        table,
    )


def main(argv):
    _reproduce.parse_flags(FLAGS, argv)
    unknown = set(FLAGS.parts) - set(PARTS)
    if unknown:
        raise ValueError(
            f"Unknown parts {sorted(unknown)}; choose from {', '.join(PARTS)}."
        )
    out = FLAGS.output_dir
    if "training" in FLAGS.parts:
        began = time.time()
        runs = run_training(FLAGS.quick)
        figure = plot_training(runs, os.path.join(out, "anode_training.png"))
        markdown = report_training(runs)
        _reproduce.write_results(
            out,
            "anode_training",
            dict(
                quick=FLAGS.quick,
                runs=runs,
                figure=figure,
                seconds=time.time() - began,
            ),
            markdown,
        )
        print(markdown)
    if "gradients" in FLAGS.parts:
        run_gradients()
    return 0


def run_gradients():
    start = time.time()
    networks = list(FLAGS.networks)
    batch_sizes = [int(b) for b in FLAGS.batch_sizes]
    steps = [int(s) for s in FLAGS.steps]
    if FLAGS.quick:
        networks, batch_sizes, steps = ["anode_sqnxt"], [2], [1, 2]
        FLAGS.solvers = ["euler"]
    if len(batch_sizes) < len(networks):
        raise ValueError(
            f"batch_sizes needs one value per network ({len(networks)}); "
            f"got {FLAGS.batch_sizes!r}."
        )
    rows = []
    for network, batch_size in zip(networks, batch_sizes, strict=False):
        x, y = _reproduce.digits_as_cifar(batch_size)
        solvers, grid = FLAGS.solvers, steps
        if network == "anode_resnet" and not FLAGS.quick:
            solvers = FLAGS.resnet_solvers
            grid = [int(s) for s in FLAGS.resnet_steps]
        for solver in solvers:
            for n in grid:
                row = compare(network, solver, n, x, y)
                rows.append(row)
                blocks = ", ".join(
                    f"{b['relative_error']:.3f}" for b in row["blocks"]
                )
                print(
                    f"{network} {solver} Nt={n}: relative error "
                    f"{row['relative_error']:.3f} (blocks {blocks}), cosine "
                    f"{row['cosine']:.3f}  [{time.time() - start:.0f}s]",
                    flush=True,
                )
    out = FLAGS.output_dir
    figure = plot(rows, os.path.join(out, "anode_gradients.png"))
    markdown = report(rows)
    results = dict(
        quick=FLAGS.quick,
        networks=networks,
        batch_sizes=batch_sizes,
        seed=FLAGS.seed,
        rows=rows,
        figure=figure,
        seconds=time.time() - start,
    )
    _reproduce.publish(out, "anode_gradients", results, markdown, figure)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
