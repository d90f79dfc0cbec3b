"""Learns a bouncing ball's coefficient of restitution from its observed
bounce times, through `tfnode.odeint_event`.

A ball dropped from height `h0` falls under gravity `g` (state `[h, v]`,
`h' = v`, `v' = -g`). At every impact (`h` falling through 0) its velocity
jumps to `v -> -e v`. The exact bounce times are

```none
t_1 = sqrt(2 h0 / g),   v_1 = g t_1,   t_{k+1} = t_k + 2 e**k v_1 / g
```

The script observes `--bounces` bounce times of the true `e` (with
Gaussian noise of `--noise` seconds), then learns `e = sigmoid(theta)`
(a `tf.Variable` `theta`) by gradient descent on the mean squared error of
the predicted bounce times. Every bounce is one call of
`tfnode.odeint_event(..., direction="falling")` on the height, started
from the previous event's time and state with the velocity reversed and
scaled by `e`, so the gradient reaches `e` through every event: the event
times are differentiated by the implicit function theorem.

It checks the simulated bounce times of the true `e` and the gradient
`d t_k / d e` at the initial guess against the closed forms, and compares
the learned `e` to the truth and to the least-squares `e` of the closed
form on the same noisy observations.

```shell
python scripts/example_bouncing_ball.py            # full: ~1 min on 2 CPU cores
python scripts/example_bouncing_ball.py --quick    # seconds
```

Writes `bouncing_ball.png` (height against time: true, initial guess,
learned; loss and `e` over the iterations), `bouncing_ball.json` and
`bouncing_ball.md` to `--output_dir`.
"""

import math
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
    FLAGS, output_dir="docs/examples", seed_help="Noise seed."
)
define("float", "h0", 10.0, "Drop height (m).")
define("float", "g", 9.81, "Gravity (m/s^2).")
define("float", "true_e", 0.8, "True coefficient of restitution.")
define("float", "initial_e", 0.5, "Initial guess of e.")
define("integer", "bounces", 5, "Observed bounces.")
define("float", "noise", 0.01, "Standard deviation of the observed times (s).")
define("integer", "iterations", 40, "Gradient steps.")
define("float", "learning_rate", 0.1, "SGD learning rate on theta.")
define(
    "bool",
    "eager",
    False,
    "Run the training step eagerly instead of in tf.function (tracing "
    "it costs ~30 s; an eager event costs ~1 s).",
)
define("float", "rtol", 1e-8, "Relative tolerance of the solves.")
define("float", "atol", 1e-10, "Absolute tolerance of the solves.")

# The flags the results record, and their values in the `--quick` run (two
# bounces: only the second depends on e, a flatter loss).
SETTINGS = (
    "h0 g true_e initial_e bounces noise iterations learning_rate eager rtol "
    "atol seed"
)
QUICK = dict(iterations=5, bounces=2, eager=True, learning_rate=1.0)
DTYPE = tf.float64


def analytic_bounce_times(e, h0, g, bounces):
    """The closed-form impact times `t_1 ... t_bounces` (NumPy)."""
    t1 = math.sqrt(2.0 * h0 / g)
    v1 = g * t1
    flights = [2.0 * e**k * v1 / g for k in range(1, bounces)]
    return t1 + np.concatenate([[0.0], np.cumsum(flights)])


def analytic_time_gradient(e, h0, g, bounces):
    """`d t_k / d e` of the closed form, `k = 1 ... bounces`."""
    v1 = g * math.sqrt(2.0 * h0 / g)
    terms = [2.0 * k * e ** (k - 1) * v1 / g for k in range(1, bounces)]
    return np.concatenate([[0.0], np.cumsum(terms)])


def least_squares_e(observed, h0, g):
    """The `e` minimising the squared error of the closed-form times to
    `observed` (golden-section search on (0, 1)), the best any fit of the
    model can do on these observations."""

    def loss(e):
        times = analytic_bounce_times(e, h0, g, len(observed))
        return float(np.sum((times - observed) ** 2))

    lo, hi = 1e-6, 1.0 - 1e-6
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    for _ in range(200):
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        if loss(a) < loss(b):
            hi = b
        else:
            lo = a
    return 0.5 * (lo + hi)


def make_field(g):
    def field(t, y):
        del t
        # y = [h, v]: h' = v, v' = -g.
        return tf.stack([y[1], -tf.constant(g, DTYPE) * tf.ones_like(y[1])])

    return field


def height(t, y):
    del t
    return y[0]


def simulate(e, h0, g, bounces, rtol, atol):
    """Bounce times and the states just after every bounce.

    Every flight is one `tfnode.odeint_event` from the previous event (its
    time and state, the velocity reversed and scaled by `e`), so the times
    are differentiable with respect to `e`.

    Returns:
        times: `(bounces,)` impact times.
        starts: list of `(t, [h, v])` at the start of each flight (the
            drop, then just after each bounce), for plotting.
    """
    field = make_field(g)
    t = tf.constant(0.0, DTYPE)
    y = tf.constant([h0, 0.0], DTYPE)
    # Any flight of this ball ends within 2 v_1 / g of its start.
    horizon = tf.constant(2.0 * math.sqrt(2.0 * h0 / g) + 1.0, DTYPE)
    times, starts = [], [(t, y)]
    for _ in range(bounces):
        t, y_hit = tfnode.odeint_event(
            field,
            y,
            tf.stack([t, t + horizon]),
            height,
            direction="falling",
            solver="dopri5",
            rtol=rtol,
            atol=atol,
        )
        times.append(t)
        y = tf.stack([y_hit[0], -e * y_hit[1]])
        starts.append((t, y))
    return tf.stack(times), starts


def heights(starts, g, t_end, points=2000):
    """The height on a grid of `[0, t_end]` from the flights' starts (the
    flights are exact parabolas), NaN after the last simulated impact."""
    grid = np.linspace(0.0, t_end, points)
    t_starts = np.array([float(t) for t, _ in starts])
    states = np.array([y.numpy() for _, y in starts])
    which = np.clip(np.searchsorted(t_starts, grid, side="right") - 1, 0, None)
    dt = grid - t_starts[which]
    h = states[which, 0] + states[which, 1] * dt - 0.5 * g * dt**2
    h = np.where(grid <= t_starts[-1], np.maximum(h, 0.0), np.nan)
    return grid, h


def plot(path, observed, curves, history, true_e):
    fig, axes = _reproduce.figure(ncols=2, width=5.5, height=3.8)
    ball, train = axes[0]
    styles = {
        "true": ("-", "tab:green"),
        "initial guess": (":", "tab:red"),
        "learned": ("--", "tab:blue"),
    }
    for name, (grid, h) in curves.items():
        style, color = styles[name]
        ball.plot(grid, h, style, color=color, lw=1.3, label=name)
    ball.plot(
        observed, np.zeros_like(observed), "kx", ms=7, label="observed bounces"
    )
    ball.set_xlabel("t (s)")
    ball.set_ylabel("height (m)")
    ball.set_title("Bouncing ball")
    ball.legend(fontsize=7)
    its = [h["iteration"] for h in history]
    train.semilogy(
        its, [h["loss"] for h in history], color="tab:blue", label="loss (s^2)"
    )
    train.set_xlabel("iteration")
    train.set_ylabel("mean squared bounce-time error")
    twin = train.twinx()
    twin.plot(its, [h["e"] for h in history], color="tab:orange", label="e")
    twin.axhline(true_e, color="tab:orange", ls=":", lw=1)
    twin.set_ylabel("e (dotted: truth)")
    train.set_title("Learning e")
    return _reproduce.save_figure(fig, path)


def report(results):
    lines = ["## Bouncing ball (`scripts/example_bouncing_ball.py`)", ""]
    lines.append(
        f"h0 = {results['h0']:g} m, g = {results['g']:g} m/s^2, true e = "
        f"{results['true_e']:g}, {results['bounces']} bounces observed with "
        f"noise sigma {results['noise']:g} s; e = sigmoid(theta) from "
        f"{results['initial_e']:g}, {results['iterations']} SGD steps "
        f"(lr {results['learning_rate']:g}); dopri5 rtol {results['rtol']:g} "
        f"atol {results['atol']:g}, float64, {results['seconds']:.0f} s."
    )
    lines += [
        "",
        "Bounce times of the true e, simulated by events against "
        "the closed form:",
        "",
    ]
    check = results["check"]
    lines.append(
        _reproduce.markdown_table(
            [
                "bounce",
                "closed form (s)",
                "odeint_event (s)",
                "abs diff",
                "observed (s)",
                "d t/d e closed form",
                f"d t/d e tfnode (e = {results['initial_e']:g})",
            ],
            [
                [
                    k + 1,
                    f"{check['analytic'][k]:.10f}",
                    f"{check['simulated'][k]:.10f}",
                    f"{abs(check['analytic'][k] - check['simulated'][k]):.1e}",
                    f"{results['observed'][k]:.4f}",
                    f"{check['analytic_gradient'][k]:.6f}",
                    f"{check['gradient'][k]:.6f}",
                ]
                for k in range(results["bounces"])
            ],
        )
    )
    lines += [
        "",
        f"Max |simulated - closed form| bounce time: "
        f"{check['max_time_error']:.2e} s; max relative error of "
        f"d t/d e: {check['max_gradient_error']:.2e}.",
        "",
        _reproduce.markdown_table(
            ["e", "value"],
            [
                ["truth", f"{results['true_e']:.4f}"],
                ["initial guess", f"{results['initial_e']:.4f}"],
                ["learned (odeint_event)", f"{results['learned_e']:.6f}"],
                [
                    "least squares of the closed form (same data)",
                    f"{results['least_squares_e']:.6f}",
                ],
            ],
        ),
        "",
        f"Loss {results['history'][0]['loss']:.3e} -> "
        f"{results['history'][-1]['loss']:.3e} s^2; |learned - truth| = "
        f"{abs(results['learned_e'] - results['true_e']):.4f}, |learned - "
        f"least squares| = "
        f"{abs(results['learned_e'] - results['least_squares_e']):.1e}.",
    ]
    return "\n".join(lines)


def main(argv):
    _reproduce.parse_flags(FLAGS, argv)
    start = time.time()
    run = _reproduce.settings(FLAGS, SETTINGS, QUICK)
    iterations, bounces, eager = run.iterations, run.bounces, run.eager
    h0, g, rtol, atol = run.h0, run.g, run.rtol, run.atol
    rng = np.random.default_rng(FLAGS.seed)
    exact = analytic_bounce_times(FLAGS.true_e, h0, g, bounces)
    observed = exact + FLAGS.noise * rng.standard_normal(bounces)
    target = tf.constant(observed, DTYPE)

    # Forward check at the true e, and the gradient at the initial guess.
    true_times, true_starts = simulate(
        tf.constant(FLAGS.true_e, DTYPE), h0, g, bounces, rtol, atol
    )
    e0 = tf.Variable(FLAGS.initial_e, dtype=DTYPE)
    with tf.GradientTape(persistent=True) as tape:
        guess_times, guess_starts = simulate(e0, h0, g, bounces, rtol, atol)
        per_bounce = tf.unstack(guess_times)
    gradient = np.array(
        [float(tape.gradient(t_k, e0) or 0.0) for t_k in per_bounce]
    )
    del tape
    analytic_gradient = analytic_time_gradient(FLAGS.initial_e, h0, g, bounces)
    scale = np.maximum(np.abs(analytic_gradient), 1e-12)
    check = dict(
        analytic=exact,
        simulated=true_times.numpy(),
        max_time_error=float(np.max(np.abs(true_times.numpy() - exact))),
        gradient=gradient,
        analytic_gradient=analytic_gradient,
        max_gradient_error=float(
            np.max(np.abs(gradient - analytic_gradient)[1:] / scale[1:])
        )
        if bounces > 1
        else 0.0,
    )
    print(
        f"bounce times at e = {FLAGS.true_e}: max |odeint_event - closed "
        f"form| {check['max_time_error']:.2e} s; d t/d e at e = "
        f"{FLAGS.initial_e}: max relative error "
        f"{check['max_gradient_error']:.2e}",
        flush=True,
    )

    # e = sigmoid(theta), learned from the observed times.
    theta = tf.Variable(
        math.log(FLAGS.initial_e / (1.0 - FLAGS.initial_e)), dtype=DTYPE
    )
    optimizer = keras.optimizers.SGD(run.learning_rate)

    def step():
        with tf.GradientTape() as tape:
            e = tf.sigmoid(theta)
            times, _ = simulate(e, h0, g, bounces, rtol, atol)
            loss = tf.reduce_mean((times - target) ** 2)
        grads = tape.gradient(loss, [theta])
        optimizer.apply_gradients(zip(grads, [theta], strict=True))
        return loss, e

    if not eager:
        step = tf.function(step)
    history = []
    for iteration in range(iterations):
        loss, e = step()  # loss and e before this step's update
        history.append(dict(iteration=iteration, loss=float(loss), e=float(e)))
        if iteration % max(1, iterations // 10) == 0:
            print(
                f"iter {iteration:4d}  loss {float(loss):.3e}  e "
                f"{float(e):.5f}",
                flush=True,
            )
    learned_e = float(tf.sigmoid(theta))
    learned_times, learned_starts = simulate(
        tf.constant(learned_e, DTYPE), h0, g, bounces, rtol, atol
    )
    history.append(
        dict(
            iteration=iterations,
            loss=float(np.mean((learned_times.numpy() - observed) ** 2)),
            e=learned_e,
        )
    )
    t_end = float(observed[-1]) + 0.5
    curves = {
        "true": heights(true_starts, g, t_end),
        "initial guess": heights(guess_starts, g, t_end),
        "learned": heights(learned_starts, g, t_end),
    }
    figure = plot(
        os.path.join(FLAGS.output_dir, "bouncing_ball.png"),
        observed,
        curves,
        history,
        FLAGS.true_e,
    )
    seconds = time.time() - start
    results = dict(
        vars(run),
        observed=observed,
        check=check,
        learned_e=learned_e,
        least_squares_e=least_squares_e(observed, h0, g),
        history=history,
        figure=figure,
        seconds=seconds,
    )
    markdown = report(results)
    _reproduce.publish(
        FLAGS.output_dir, "bouncing_ball", results, markdown, figure
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
