"""Reproduces the gradient finding of Gholami et al., "ANODE:
Unconditionally Accurate Memory-Efficient Gradients for Neural ODEs"
(IJCAI 2019): the continuous adjoint's gradient is not the gradient of what
the forward pass computed.

ANODE's networks (`anode_sqnxt`, `anode_resnet`; four ODE blocks each) are
solved with Euler, RK2 (midpoint) and RK4 at Nt steps per block. On one
batch of real digits (padded to 32x32x3), the gradient of the loss with
`adjoint="continuous"` (the adjoint ODE solved backwards on the same grid,
Chen et al.) is compared with the exact gradient of the discrete forward
map (`adjoint="anode"`, equal to backprop): relative error and cosine,
per ODE block (the parameters of that block's vector field) and over all
parameters. No training: the weights are the initial ones, the BatchNorm
layers in training mode, as in the first step of a training run.

```shell
python scripts/reproduce_anode.py             # full: see --help for scale
python scripts/reproduce_anode.py --quick     # seconds
```

Writes `anode_gradients.json`, `anode_gradients.md` and
`anode_gradients.png` to `--output_dir`.
"""

import os
import sys
import time

import keras
from absl import flags as absl_flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _reproduce  # noqa: E402

import tfnode  # noqa: E402

FLAGS = absl_flags.FlagValues()
absl_flags.DEFINE_bool(
    "quick", False, "Tiny run for the tests.", flag_values=FLAGS
)
absl_flags.DEFINE_list(
    "networks",
    ["anode_sqnxt", "anode_resnet"],
    "Networks.",
    flag_values=FLAGS,
)
absl_flags.DEFINE_list(
    "solvers",
    ["euler", "rk2", "rk4"],
    "Fixed-step solvers.",
    flag_values=FLAGS,
)
absl_flags.DEFINE_list(
    "steps", ["1", "2", "4", "8"], "Steps per block (Nt).", flag_values=FLAGS
)
absl_flags.DEFINE_list(
    "batch_sizes",
    ["8", "4"],
    "Batch per network (same order).",
    flag_values=FLAGS,
)
absl_flags.DEFINE_integer("seed", 0, "Initialisation seed.", flag_values=FLAGS)
absl_flags.DEFINE_string(
    "output_dir",
    _reproduce.DEFAULT_OUTPUT_DIR,
    "Output folder.",
    flag_values=FLAGS,
)

BLOCKS = 4


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
        for ax in (top, bottom):
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


def main(argv):
    _reproduce.parse_flags(FLAGS, argv)
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
        for solver in FLAGS.solvers:
            for n in steps:
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
    seconds = time.time() - start
    results = dict(
        quick=FLAGS.quick,
        networks=networks,
        batch_sizes=batch_sizes,
        seed=FLAGS.seed,
        rows=rows,
        figure=figure,
        seconds=seconds,
    )
    _reproduce.write_results(out, "anode_gradients", results, markdown)
    print(markdown)
    print(f"\nTotal {seconds:.0f}s; figure {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
