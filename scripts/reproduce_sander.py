"""Reproduces the adjoint findings of Sander et al., "Do Residual Neural
Networks discretize Neural Ordinary Differential Equations?" (NeurIPS 2022).

(a) Gradient error. `tiny_resnet` (`tfnode.models`) at depth N is the
residual network `x_{n+1} = x_n + f_n(x_n) / N` (Euler) or its Heun
variant. Its gradient with `adjoint="reversible"` (activations rebuilt by
reversed steps, nothing stored) is compared with the exact one
(`adjoint="backprop"`) on one batch of real digits, at N = 4 ... 64. The
paper: the error is O(1/N) for Euler, and O(1/N^2) for Heun when the
weights are smooth in depth. Two weight families are compared: `smooth`,
`theta_n = (1 - n/N) A + (n/N) B` with A, B two independent default
initialisations, and `iid`, every layer its own independent draw. The
last BatchNorm of each residual function starts at gamma = 1 (the model's
`zero_init` makes every `f_n = 0`, for which the reversed steps are exact).

(b) Peak memory. One child process per (scheme, gradient method, depth)
runs one eager training step and reports the peak of its resident memory,
sampled every millisecond, above the value before the step: backprop
grows linearly with depth, the reversible adjoint stays flat (the paper's
`experiments/memory.py`, which samples the same way).

```shell
python scripts/reproduce_sander.py            # full: ~6 min on 2 CPU cores
python scripts/reproduce_sander.py --quick    # seconds
```

Writes `sander.json`, `sander.md`, `sander_gradient_error.png` and
`sander_memory.png` to `--output_dir`.
"""

import json
import os
import sys
import time

# tfnode first: TensorFlow then loads with oneDNN (`tfnode._onednn`).
import tfnode

# isort: split
import keras
import numpy as np
import tensorflow as tf
from absl import flags as absl_flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _reproduce  # noqa: E402

FLAGS = absl_flags.FlagValues()
define = _reproduce.flag_definer(FLAGS)
_reproduce.define_common_flags(FLAGS, seed_help="Initialisation seed.", seed=1)
define("list", "depths", ["4", "8", "16", "32", "64"], "Depths N.")
define("list", "weights", ["smooth", "iid"], "Weight families.")
define("integer", "batch_size", 32, "Digits in the gradient batch.")
define("list", "memory_depths", ["4", "8", "16", "32", "64"], "Depths of (b).")
define("integer", "memory_batch_size", 128, "Batch of the memory runs.")
define("bool", "memory", True, "Run part (b).")
define(
    "string", "child", None, "Internal: one memory run, 'method,adjoint,depth'."
)

SCHEMES = ("euler", "heun")
WEIGHT_FAMILIES = ("smooth", "iid")


# ------------------------------------------------------------------ models


def build(depth, method, adjoint, seed):
    """TinyResNet (32x32x3 inputs) with non-zero residual functions."""
    keras.utils.set_random_seed(seed)
    model = tfnode.models.get("tiny_resnet")(
        (32, 32, 3), 10, depth=depth, method=method, adjoint=adjoint
    )
    for field in residual_fields(model):
        field.bn2.gamma.assign(tf.ones_like(field.bn2.gamma))
    return model


def residual_fields(model):
    return tfnode.ode_blocks(model)[0].func.fields


def set_weights(model, family, seed):
    """`iid`: keep every layer's own draw; `smooth`: interpolate linearly
    in depth between two independent draws A and B."""
    if family not in WEIGHT_FAMILIES:
        raise ValueError(
            f"Unknown weights={family!r}; choose one of: "
            f"{', '.join(WEIGHT_FAMILIES)}."
        )
    if family == "iid":
        return
    fields = residual_fields(model)
    depth = len(fields)
    rng = np.random.default_rng(seed)
    ends = rng.choice(depth, 2, replace=False)
    first = [v.numpy() for v in fields[ends[0]].trainable_variables]
    last = [v.numpy() for v in fields[ends[1]].trainable_variables]
    for n, field in enumerate(fields):
        s = n / depth
        for v, a, b in zip(field.trainable_variables, first, last, strict=True):
            v.assign((1.0 - s) * a + s * b)


# ------------------------------------------------------- (a) gradient error


def gradient_errors(method, family, depth, x, y):
    model = build(depth, method, "backprop", FLAGS.seed)
    set_weights(model, family, FLAGS.seed)
    exact = _reproduce.loss_gradient(model, x, y)
    tfnode.set_solver(model, adjoint="reversible")
    approx = _reproduce.loss_gradient(model, x, y)
    stack = [
        i
        for i, v in enumerate(model.trainable_variables)
        if "residual_" in v.path
    ]
    pick = lambda g: [g[i] for i in stack]  # noqa: E731
    return dict(
        method=method,
        weights=family,
        depth=depth,
        relative_error=_reproduce.relative_error(approx, exact),
        residual_relative_error=_reproduce.relative_error(
            pick(approx), pick(exact)
        ),
        cosine=_reproduce.cosine(approx, exact),
    )


def run_gradients(depths):
    keras.config.set_floatx("float64")
    try:
        x, y = _reproduce.digits_as_cifar(FLAGS.batch_size, tf.float64)
        rows = []
        for family in FLAGS.weights:
            for method in SCHEMES:
                for depth in depths:
                    row = gradient_errors(method, family, depth, x, y)
                    print(
                        f"{family} {method} N={depth}: relative error "
                        f"{row['relative_error']:.3e}, cosine "
                        f"{row['cosine']:.6f}",
                        flush=True,
                    )
                    rows.append(row)
    finally:
        keras.config.set_floatx("float32")
    return rows


def slopes(rows):
    out = {}
    for family in FLAGS.weights:
        for method in SCHEMES:
            sel = [
                r
                for r in rows
                if r["weights"] == family and r["method"] == method
            ]
            out[f"{family},{method}"] = _reproduce.loglog_slope(
                [r["depth"] for r in sel], [r["relative_error"] for r in sel]
            )
    return out


def plot_gradients(rows, fitted, path):
    fig, axes = _reproduce.figure(len(FLAGS.weights), 1, 4.6, 3.6)
    for ax, family in zip(axes[0], FLAGS.weights, strict=True):
        depths = None
        for method, marker in zip(SCHEMES, "os", strict=True):
            sel = [
                r
                for r in rows
                if r["weights"] == family and r["method"] == method
            ]
            depths = np.array([r["depth"] for r in sel], float)
            errors = [r["relative_error"] for r in sel]
            ax.loglog(
                depths,
                errors,
                marker=marker,
                label=f"{method} (slope {fitted[f'{family},{method}']:.2f})",
            )
        # Reference slopes, anchored at the first Euler point.
        anchor = [
            r["relative_error"]
            for r in rows
            if r["weights"] == family and r["method"] == "euler"
        ][0]
        ax.loglog(
            depths, anchor * depths[0] / depths, "k--", lw=0.8, label="O(1/N)"
        )
        ax.loglog(
            depths,
            anchor * (depths[0] / depths) ** 2,
            "k:",
            lw=0.8,
            label="O(1/N^2)",
        )
        ax.set_xticks(depths, [f"{d:g}" for d in depths], minor=False)
        ax.set_xticks([], minor=True)
        ax.set_xlabel("depth N")
        ax.set_ylabel("relative gradient error")
        ax.set_title(f"{family} weights in depth", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    return _reproduce.save_figure(fig, path)


# ------------------------------------------------------------ (b) memory


def memory_child(spec):
    """One training step of one configuration; prints its peak memory."""
    method, adjoint, depth = spec.split(",")
    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(2)
    model = build(int(depth), method, adjoint, FLAGS.seed)
    rng = np.random.default_rng(0)
    x = tf.constant(
        rng.uniform(size=(FLAGS.memory_batch_size, 32, 32, 3)), tf.float32
    )
    y = tf.constant(rng.integers(0, 10, FLAGS.memory_batch_size), tf.int32)
    optimizer = keras.optimizers.SGD(1e-3)
    optimizer.build(model.trainable_variables)

    def step():
        with tf.GradientTape() as tape:
            loss = _reproduce.training_loss(model, x, y)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    model(x[:2], training=False)  # Creates kernels and caches.
    with _reproduce.RssSampler() as sampler:
        step().numpy()
    print("RESULT" + json.dumps({"peak_mb": sampler.peak_mb}), flush=True)


def run_memory(schemes, depths):
    configs = [
        (method, adjoint, depth)
        for method in schemes
        for adjoint in ("backprop", "reversible")
        for depth in depths
    ]
    results = _reproduce.run_children(
        __file__,
        [
            [
                f"--child={method},{adjoint},{depth}",
                f"--memory_batch_size={FLAGS.memory_batch_size}",
                f"--seed={FLAGS.seed}",
            ]
            for method, adjoint, depth in configs
        ],
    )
    rows = []
    for (method, adjoint, depth), result in zip(configs, results, strict=True):
        row = dict(method=method, adjoint=adjoint, depth=depth, **result)
        print(
            f"memory {method} {adjoint} N={depth}: {row['peak_mb']:.0f} MB",
            flush=True,
        )
        rows.append(row)
    return rows


def plot_memory(rows, path):
    fig, axes = _reproduce.figure(1, 1, 5.0, 3.6)
    ax = axes[0][0]
    schemes = [m for m in SCHEMES if any(r["method"] == m for r in rows)]
    for method, marker in zip(schemes, "os", strict=False):
        for adjoint, style in (("backprop", "-"), ("reversible", "--")):
            sel = [
                r
                for r in rows
                if r["method"] == method and r["adjoint"] == adjoint
            ]
            ax.plot(
                [r["depth"] for r in sel],
                [r["peak_mb"] for r in sel],
                marker=marker,
                linestyle=style,
                label=f"{method}, {adjoint}",
            )
    ax.set_xlabel("depth N")
    ax.set_ylabel("peak memory above baseline (MB)")
    ax.set_title(
        f"TinyResNet, one training step, batch {FLAGS.memory_batch_size}",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _reproduce.save_figure(fig, path)


# ------------------------------------------------------------------ report


def report(grad_rows, fitted, memory_rows):
    lines = [
        "Relative gradient error of the reversible adjoint vs backprop:",
        "",
    ]
    depths = sorted({r["depth"] for r in grad_rows})
    table = []
    for key, slope in fitted.items():
        family, method = key.split(",")
        by_depth = {
            r["depth"]: r
            for r in grad_rows
            if r["weights"] == family and r["method"] == method
        }
        table.append(
            [family, method]
            + [f"{by_depth[d]['relative_error']:.2e}" for d in depths]
            + [f"{slope:.2f}"]
        )
    lines.append(
        _reproduce.markdown_table(
            ["weights", "scheme"] + [f"N={d}" for d in depths] + ["slope"],
            table,
        )
    )
    if memory_rows:
        mdepths = sorted({r["depth"] for r in memory_rows})
        table = []
        schemes = {r["method"] for r in memory_rows}
        for method in [m for m in SCHEMES if m in schemes]:
            for adjoint in ("backprop", "reversible"):
                by_depth = {
                    r["depth"]: r["peak_mb"]
                    for r in memory_rows
                    if r["method"] == method and r["adjoint"] == adjoint
                }
                table.append(
                    [method, adjoint] + [f"{by_depth[d]:.0f}" for d in mdepths]
                )
        lines += ["", "Peak memory above baseline (MB), one training step:", ""]
        lines.append(
            _reproduce.markdown_table(
                ["scheme", "gradient"] + [f"N={d}" for d in mdepths], table
            )
        )
    return "\n".join(lines)


def main(argv):
    _reproduce.parse_flags(FLAGS, argv)
    if FLAGS.child:
        memory_child(FLAGS.child)
        return 0
    start = time.time()
    depths = [int(d) for d in FLAGS.depths]
    memory_depths = [int(d) for d in FLAGS.memory_depths]
    memory_schemes = SCHEMES
    if FLAGS.quick:
        FLAGS.weights = ["smooth"]
        FLAGS.memory_batch_size = 32
        depths, memory_depths, memory_schemes = [4, 8], [4, 16], ("euler",)
    grad_rows = run_gradients(depths)
    fitted = slopes(grad_rows)
    out = FLAGS.output_dir
    figures = [
        plot_gradients(
            grad_rows, fitted, os.path.join(out, "sander_gradient_error.png")
        )
    ]
    memory_rows = []
    if FLAGS.memory:
        memory_rows = run_memory(memory_schemes, memory_depths)
        figures.append(
            plot_memory(memory_rows, os.path.join(out, "sander_memory.png"))
        )
    markdown = report(grad_rows, fitted, memory_rows)
    seconds = time.time() - start
    results = dict(
        vars(_reproduce.settings(FLAGS, "batch_size memory_batch_size seed")),
        gradients=grad_rows,
        slopes=fitted,
        memory=memory_rows,
        figures=figures,
        seconds=seconds,
    )
    _reproduce.publish(out, "sander", results, markdown, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
