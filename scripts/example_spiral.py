"""Fits a Neural ODE to an irregularly sampled, noisy spiral (the time-series
version of torchdiffeq's `ode_demo`).

The true system is

```none
y' = (y**3) @ A,   A = [[-0.1, 2.0], [-2.0, -0.1]],   y(0) = [[2., 0.]]
```

observed at `--num_points` sorted random times in `[0, --t_max]` with
Gaussian noise of standard deviation `--noise`. The model is a small MLP
vector field on `y**3` (2 -> 50 -> 2, tanh), trained as `ode_demo` trains
it: every iteration draws `--batch_size` random windows of `--batch_time`
consecutive observations and, from each window's first observation,
predicts the rest with `dopri5`. (`--long_from` switches to windows of
`--long_batch_time` observations late in training; off by default.)

Because the observation times are irregular, every window has its own time
offsets. The system is autonomous, so all windows are solved in one call of
`tfnode.odeint`: the 20 window starts form a batch of states, the output
times are the union of all windows' offsets (about 180 times), and each
window reads its own offsets from the result. The adaptive solver steps
freely and evaluates the outputs on the Dormand-Prince dense output, so the
number of function evaluations (NFE) does not depend on how many output
times there are; the script measures this.

```shell
python scripts/example_spiral.py            # full: ~3 min on 2 CPU cores
python scripts/example_spiral.py --quick    # seconds
```

Writes `spiral.png` (phase portrait and `y` against `t`: observations, true
and learned trajectories; the loss curve), `spiral.json` and `spiral.md` to
`--output_dir`.
"""

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
_reproduce.define_common_flags(
    FLAGS, output_dir="docs/examples", seed_help="Data and model seed."
)
define("integer", "num_points", 1000, "Observation times.")
define("float", "t_max", 25.0, "Observations lie in [0, t_max].")
define("float", "noise", 0.01, "Standard deviation of the observation noise.")
define("integer", "iterations", 2000, "Training iterations.")
define("integer", "batch_time", 10, "Consecutive observations per window.")
define(
    "integer",
    "long_from",
    0,
    "If positive, from this iteration on, windows of --long_batch_time "
    "observations (a curriculum; it did not help at the defaults).",
)
define("integer", "long_batch_time", 50, "Observations per long window.")
define("integer", "batch_size", 20, "Windows per iteration.")
define("integer", "hidden", 50, "Hidden units.")
define(
    "float",
    "learning_rate",
    3e-3,
    "Initial RMSprop learning rate (cosine decay to 1% of it).",
)
define("float", "rtol", 1e-6, "Relative tolerance of the solves.")
define("float", "atol", 1e-8, "Absolute tolerance of the solves.")
define("integer", "test_every", 100, "Iterations between evaluations.")
define(
    "enum",
    "solve",
    "dense",
    ["dense", "odeint"],
    "Training solves: 'dense' (tfnode.solve_dense, then evaluate at the "
    "window offsets) or 'odeint' (interpolated outputs).",
)
define(
    "bool",
    "eager",
    False,
    "Run the training step eagerly instead of in tf.function (tracing "
    "its gradient costs ~20 s; worth it beyond ~50 iterations).",
)

# The flags the results record, and their values in the `--quick` run (an
# eager step: tracing its gradient costs more than 30 steps).
SETTINGS = (
    "num_points t_max solve eager noise iterations batch_time long_from "
    "long_batch_time batch_size learning_rate rtol atol seed"
)
QUICK = dict(
    num_points=100,
    iterations=20,
    t_max=5.0,
    eager=True,
    learning_rate=1e-2,
    rtol=1e-4,
    atol=1e-6,
    batch_size=10,
    long_from=0,
)
DTYPE = tf.float64
TRUE_MATRIX = np.array([[-0.1, 2.0], [-2.0, -0.1]])
TRUE_Y0 = np.array([[2.0, 0.0]])


def reference_solution(times, y0=TRUE_Y0, rtol=1e-11, atol=1e-12):
    """The true states at `times` (sorted, from 0), `(len(times), 2)`, by
    SciPy's DOP853 (independent of tfnode)."""
    from scipy.integrate import solve_ivp

    solution = solve_ivp(
        lambda t, y: (y**3) @ TRUE_MATRIX,
        (0.0, float(times[-1])),
        np.ravel(y0),
        method="DOP853",
        t_eval=times,
        rtol=rtol,
        atol=atol,
    )
    return solution.y.T


def make_data(num_points, t_max, noise, seed):
    """Sorted random times (the first one 0) and the true and noisy states
    there, each of shape `(num_points, 2)`."""
    rng = np.random.default_rng(seed)
    times = np.sort(rng.uniform(0.0, t_max, num_points - 1))
    times = np.concatenate([[0.0], times])
    true = reference_solution(times)
    observed = true + noise * rng.standard_normal(true.shape)
    return times, true, observed


class SpiralField(keras.Model):
    """`f(t, y) = W2 tanh(W1 y**3 + b1) + b2`, as `ode_demo`'s `ODEFunc`."""

    def __init__(self, hidden, **kwargs):
        super().__init__(**kwargs)
        init = keras.initializers.RandomNormal(stddev=0.1)
        self.hidden_layer = keras.layers.Dense(
            hidden, activation="tanh", kernel_initializer=init, dtype=DTYPE
        )
        self.output_layer = keras.layers.Dense(
            2, kernel_initializer=init, dtype=DTYPE
        )

    def call(self, y):
        return self.output_layer(self.hidden_layer(y**3))


def window_batch(times, observed, rng, batch_time, batch_size):
    """`batch_size` random windows of `batch_time` observations.

    Returns:
        y0: `(batch_size, 2)` first observation of every window.
        offsets: sorted union of the windows' time offsets (0 first).
        index: `(batch_size, batch_time)` position of every window's offsets
            in `offsets`.
        targets: `(batch_size, batch_time, 2)` the windows' observations.
    """
    starts = rng.choice(len(times) - batch_time, batch_size, replace=False)
    rows = starts[:, None] + np.arange(batch_time)[None, :]
    window_offsets = times[rows] - times[starts][:, None]
    offsets, index = np.unique(window_offsets, return_inverse=True)
    return (
        observed[starts],
        offsets,
        index.reshape(rows.shape).astype(np.int32),
        observed[rows],
    )


def _solve(field, y0, t, solve, rtol, atol):
    """The learned field's states at `t` (dense output) and the NFE.

    `solve="dense"`: one `tfnode.solve_dense` over `[t[0], t[-1]]`, then
    `evaluate(t)` (vectorised). `solve="odeint"`: `tfnode.odeint` with its
    default `interpolate=True`. Both step freely and read the outputs off
    the Dormand-Prince continuous extension.
    """
    settings = dict(solver="dopri5", rtol=rtol, atol=atol)
    if solve == "dense":
        solution = tfnode.solve_dense(
            lambda t, y: field(y), y0, tf.stack([t[0], t[-1]]), **settings
        )
        return solution.evaluate(t), solution.stats.num_fn_evals
    ys, stats = tfnode.odeint(
        lambda t, y: field(y), y0, t, return_stats=True, **settings
    )
    return ys, stats.num_fn_evals


def _compile(fn, eager, signature):
    if eager:
        return fn
    return tf.function(fn, input_signature=signature)


def build_step(field, optimizer, solve, rtol, atol, eager=False):
    """A training step over any number of output times (a `tf.function`
    unless `eager`)."""

    def step(y0, offsets, index, targets):
        with tf.GradientTape() as tape:
            ys, nfe = _solve(field, y0, offsets, solve, rtol, atol)
            # ys: (num_offsets, batch, 2); window b reads ys[index[b], b].
            batch = tf.range(tf.shape(index)[0])[:, None]
            batch = tf.broadcast_to(batch, tf.shape(index))
            pred = tf.gather_nd(ys, tf.stack([index, batch], axis=-1))
            loss = tf.reduce_mean(tf.abs(pred - targets))
        variables = field.trainable_variables
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss, nfe

    return _compile(
        step,
        eager,
        [
            tf.TensorSpec([None, 2], DTYPE),
            tf.TensorSpec([None], DTYPE),
            tf.TensorSpec([None, None], tf.int32),
            tf.TensorSpec([None, None, 2], DTYPE),
        ],
    )


def build_trajectory(field, rtol, atol):
    """A `tf.function` solve of the learned field from `y0` at times `t` by
    `odeint` (interpolated outputs), returning the states and the forward
    NFE. (Tracing a forward solve is cheap; running one eagerly is not.)"""

    def trajectory(y0, t):
        return _solve(field, y0, t, "odeint", rtol, atol)

    return _compile(
        trajectory,
        False,
        [tf.TensorSpec([None, 2], DTYPE), tf.TensorSpec([None], DTYPE)],
    )


def field_error(field, true):
    """RMS of `f_learned(y) - f_true(y)` over the true states, relative to
    the RMS of `f_true(y)`: how well the dynamics themselves are learned."""
    learned = field(tf.constant(true, DTYPE)).numpy()
    exact = (true**3) @ TRUE_MATRIX
    return float(np.sqrt(np.mean((learned - exact) ** 2) / np.mean(exact**2)))


def trajectory_errors(trajectory, times, true, observed):
    ys, nfe = trajectory(tf.constant(TRUE_Y0, DTYPE), tf.constant(times, DTYPE))
    ys = ys.numpy()[:, 0, :]
    error = np.abs(ys - true)
    return dict(
        max_error=float(error.max()),
        mean_error=float(error.mean()),
        rms_to_observations=float(np.sqrt(np.mean((ys - observed) ** 2))),
        nfe=int(nfe),
    ), ys


def nfe_against_outputs(trajectory, t_max, counts, times):
    """NFE of one solve of the learned field over `[0, t_max]` against the
    number of output times: evenly spaced grids and the observation
    times."""
    y0 = tf.constant(TRUE_Y0, DTYPE)
    rows = []
    for count in counts:
        grid = np.linspace(0.0, t_max, count)
        _, nfe = trajectory(y0, tf.constant(grid, DTYPE))
        rows.append(dict(outputs=count, times="evenly spaced", nfe=int(nfe)))
    _, nfe = trajectory(y0, tf.constant(times, DTYPE))
    rows.append(dict(outputs=len(times), times="observations", nfe=int(nfe)))
    return rows


def plot(path, times, true, observed, learned, initial, history):
    fig, axes = _reproduce.figure(ncols=3, width=4.6, height=4.0)
    phase, series, curve = axes[0]
    phase.plot(
        observed[:, 0],
        observed[:, 1],
        ".",
        ms=2,
        color="0.6",
        label="observations",
    )
    for states, style, color, lw, label in (
        (true, "-", "tab:green", 1.2, "true"),
        (initial, ":", "tab:red", 1, "initial model"),
        (learned, "--", "tab:blue", 1.2, "learned"),
    ):
        phase.plot(
            states[:, 0], states[:, 1], style, color=color, lw=lw, label=label
        )
    low = np.minimum(observed.min(axis=0), true.min(axis=0)) - 0.3
    high = np.maximum(observed.max(axis=0), true.max(axis=0)) + 0.3
    phase.set_xlim(low[0], high[0])
    phase.set_ylim(low[1], high[1])
    phase.set_xlabel("y[0]")
    phase.set_ylabel("y[1]")
    phase.set_title("Phase portrait")
    phase.legend(fontsize=7, loc="upper right")
    for k in (0, 1):
        series.plot(times, observed[:, k], ".", ms=1.5, color="0.6")
        series.plot(times, true[:, k], "-", color="tab:green", lw=1)
        series.plot(times, learned[:, k], "--", color="tab:blue", lw=1)
    series.set_xlabel("t")
    series.set_ylabel("y[0], y[1]")
    series.set_title("y against t (dots: observations)")
    its = [h["iteration"] for h in history]
    curve.semilogy(
        its,
        [h["window_loss"] for h in history],
        color="tab:blue",
        label="window loss (train)",
    )
    curve.semilogy(
        its,
        [h["mean_error"] for h in history],
        color="tab:orange",
        label="trajectory mean |error|",
    )
    curve.set_xlabel("iteration")
    curve.set_title("Training")
    curve.legend(fontsize=7)
    return _reproduce.save_figure(fig, path)


def report(results):
    lines = ["## Spiral fit (`scripts/example_spiral.py`)", ""]
    lines.append(
        f"{results['num_points']} observations at sorted random times in "
        f"[0, {results['t_max']:g}], noise sigma {results['noise']:g}; "
        f"{results['iterations']} iterations of {results['batch_size']} "
        f"windows x {results['batch_time']} observations"
        + (
            f" (x {results['long_batch_time']} after iteration "
            f"{results['long_from']})"
            if results["long_from"] > 0
            else ""
        )
        + ", solved by "
        f"`{results['solve']}`; dopri5 rtol "
        f"{results['rtol']:g} atol {results['atol']:g}, float64, "
        f"{results['seconds']:.0f} s."
    )
    lines.append("")
    rows = [
        [
            h["iteration"],
            f"{h['window_loss']:.4f}",
            f"{h['max_error']:.4f}",
            f"{h['mean_error']:.4f}",
            f"{h['rms_to_observations']:.4f}",
            f"{h['field_error']:.4f}",
            h["nfe"],
            f"{h['train_nfe']:.0f}",
            f"{h['train_outputs']:.0f}",
        ]
        for h in results["history"]
    ]
    lines.append(
        _reproduce.markdown_table(
            [
                "iteration",
                "window loss",
                "trajectory max abs error",
                "mean abs error",
                "RMS to observations",
                "field rel. error",
                f"NFE ({results['num_points']} outputs)",
                "train NFE / solve",
                "train outputs / solve",
            ],
            rows,
        )
    )
    lines += ["", "NFE of one solve of the learned field over the span:", ""]
    lines.append(
        _reproduce.markdown_table(
            ["output times", "times", "NFE"],
            [
                [r["outputs"], r["times"], r["nfe"]]
                for r in results["nfe_vs_outputs"]
            ],
        )
    )
    final = results["final"]
    lines += [
        "",
        f"Final trajectory from y0 against the true one: max abs error "
        f"{final['max_error']:.4f}, mean abs error {final['mean_error']:.4f}; "
        f"RMS to the observations {final['rms_to_observations']:.4f} "
        f"(noise sigma {results['noise']:g}); relative RMS error of the "
        f"learned vector field on the true states {final['field_error']:.4f}.",
    ]
    return "\n".join(lines)


def main(argv):
    _reproduce.parse_flags(FLAGS, argv)
    start = time.time()
    run = _reproduce.settings(FLAGS, SETTINGS, QUICK)
    test_every = 10 if FLAGS.quick else FLAGS.test_every
    num_points, iterations, t_max = run.num_points, run.iterations, run.t_max
    rtol, atol, batch_size = run.rtol, run.atol, run.batch_size
    eager, long_from = run.eager, run.long_from
    keras.utils.set_random_seed(FLAGS.seed)
    times, true, observed = make_data(
        num_points, t_max, FLAGS.noise, FLAGS.seed
    )
    field = SpiralField(FLAGS.hidden)
    field(tf.zeros([1, 2], DTYPE))
    # Cosine decay to 1% sharpens the long-horizon phase late in training.
    optimizer = keras.optimizers.RMSprop(
        keras.optimizers.schedules.CosineDecay(
            run.learning_rate, iterations, alpha=0.01
        )
    )
    step = build_step(field, optimizer, FLAGS.solve, rtol, atol, eager)
    trajectory = build_trajectory(field, rtol, atol)
    rng = np.random.default_rng(FLAGS.seed + 1)

    initial_errors, initial = trajectory_errors(
        trajectory, times, true, observed
    )
    initial_errors["field_error"] = field_error(field, true)
    history = []
    losses, train_nfe, train_outputs = [], [], []
    for iteration in range(1, iterations + 1):
        batch_time = (
            FLAGS.long_batch_time
            if 0 < long_from < iteration
            else FLAGS.batch_time
        )
        y0, offsets, index, targets = window_batch(
            times, observed, rng, batch_time, batch_size
        )
        loss, nfe = step(
            tf.constant(y0, DTYPE),
            tf.constant(offsets, DTYPE),
            tf.constant(index),
            tf.constant(targets, DTYPE),
        )
        losses.append(float(loss))
        train_nfe.append(int(nfe))
        train_outputs.append(len(offsets))
        if iteration % test_every == 0 or iteration == iterations:
            errors, _ = trajectory_errors(trajectory, times, true, observed)
            errors["field_error"] = field_error(field, true)
            row = dict(
                iteration=iteration,
                window_loss=float(np.mean(losses[-test_every:])),
                train_nfe=float(np.mean(train_nfe[-test_every:])),
                train_outputs=float(np.mean(train_outputs[-test_every:])),
                **errors,
            )
            history.append(row)
            print(
                f"iter {iteration:5d}  window loss {row['window_loss']:.4f}  "
                f"trajectory max|err| {row['max_error']:.4f}  mean|err| "
                f"{row['mean_error']:.4f}  field err {row['field_error']:.4f}  "
                f"NFE {row['nfe']}  train NFE "
                f"{row['train_nfe']:.0f} for {row['train_outputs']:.0f} "
                "outputs",
                flush=True,
            )
    final, learned = trajectory_errors(trajectory, times, true, observed)
    final["field_error"] = field_error(field, true)
    counts = sorted({2, 10, 100, num_points})
    nfe_rows = nfe_against_outputs(trajectory, t_max, counts, times)
    # The same check on one training batch: the union of the ~180 offsets
    # of 20 windows of 10 observations against the two ends only.
    y0, offsets, _, _ = window_batch(
        times, observed, rng, FLAGS.batch_time, batch_size
    )
    _, nfe_all = trajectory(tf.constant(y0, DTYPE), tf.constant(offsets, DTYPE))
    _, nfe_ends = trajectory(
        tf.constant(y0, DTYPE), tf.constant(offsets[[0, -1]], DTYPE)
    )
    figure = plot(
        os.path.join(FLAGS.output_dir, "spiral.png"),
        times,
        true,
        observed,
        learned,
        initial,
        history,
    )
    seconds = time.time() - start
    results = dict(
        vars(run),
        initial=initial_errors,
        final=final,
        first_window_loss=float(np.mean(losses[: min(10, len(losses))])),
        last_window_loss=float(np.mean(losses[-min(10, len(losses)) :])),
        history=history,
        nfe_vs_outputs=nfe_rows,
        batch_nfe=dict(
            outputs=len(offsets), nfe=int(nfe_all), ends_only_nfe=int(nfe_ends)
        ),
        figure=figure,
        seconds=seconds,
    )
    markdown = report(results)
    markdown += (
        f"\n\nOne training batch solved at its {len(offsets)} window offsets: "
        f"NFE {int(nfe_all)}; at its two ends only: NFE {int(nfe_ends)}."
        f"\nInitial model: trajectory max abs error "
        f"{initial_errors['max_error']:.4f}, mean abs error "
        f"{initial_errors['mean_error']:.4f}, field relative error "
        f"{initial_errors['field_error']:.4f}."
    )
    _reproduce.publish(FLAGS.output_dir, "spiral", results, markdown, figure)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
