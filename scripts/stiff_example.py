"""Stiff problems: Robertson's chemical kinetics with `bdf` and `dopri5`.

```none
y1' = -0.04 y1 + 1e4 y2 y3
y2' =  0.04 y1 - 1e4 y2 y3 - 3e7 y2^2        y(0) = (1, 0, 0)
y3' =                        3e7 y2^2        t in [0, 4e5]
```

The rate constants span eleven orders of magnitude: `bdf` (TFP's implicit
BDF) solves it in a few hundred steps, while `dopri5`, whose steps are bound
by stability rather than accuracy, runs out of `max_num_steps`. Both run in
`tf.function`; the wall times are of the second call (the first one
traces). With `--gradients`, also measures how far the `continuous`
adjoint's gradients with `bdf` stay accurate as the stiffness grows (see
docs/stiff.md). Saves docs/stiff.png.

    python scripts/stiff_example.py [--gradients] [--figure=docs/stiff.png]
"""

import os
import sys
import time

from absl import app
from absl import flags as absl_flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# tfnode first: TensorFlow then loads with oneDNN (`tfnode._onednn`).
import tfnode  # noqa: E402

# isort: split
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _reproduce import figure  # noqa: E402
from _reproduce import save_figure  # noqa: E402

FLAGS = absl_flags.FLAGS
_RTOL, _ATOL = 1e-6, 1e-10
# y(40) from the literature (Hairer & Wanner; SUNDIALS' cvRoberts_dns).
_REFERENCE_40 = np.array([0.7158270687, 9.185534765e-6, 0.2841637457])


def define_flags():
    absl_flags.DEFINE_string(
        "figure", "docs/stiff.png", "Where to save the figure."
    )
    absl_flags.DEFINE_boolean(
        "gradients", False, "Also measure continuous-adjoint gradients."
    )


def robertson(t, y):
    y1, y2, y3 = tf.unstack(y, axis=-1)
    slow, fast, very_fast = 0.04 * y1, 1e4 * y2 * y3, 3e7 * y2 * y2
    return tf.stack([-slow + fast, slow - fast - very_fast, very_fast], axis=-1)


def _times():
    """0, then 61 log-spaced times from 1e-5 to 4e5, and 40."""
    times = np.logspace(-5, np.log10(4e5), 61)
    return tf.constant(np.sort(np.concatenate([[0.0, 40.0], times])))


def solve(solver):
    """`(t, ys, stats, seconds)` of the second call, or `(None, message,
    None, seconds)` when the first call fails."""
    y0 = tf.constant([1.0, 0.0, 0.0], tf.float64)
    t = _times()

    @tf.function
    def run():
        return tfnode.odeint(
            robertson,
            y0,
            t,
            solver=solver,
            rtol=_RTOL,
            atol=_ATOL,
            return_stats=True,
        )

    start = time.perf_counter()
    try:
        run()
    except tf.errors.InvalidArgumentError as e:
        seconds = time.perf_counter() - start
        lines = str(e).splitlines()
        line = next((s for s in lines if "odeint:" in s), lines[0])
        return None, line.strip(), None, seconds
    start = time.perf_counter()
    ys, stats = run()
    return t.numpy(), ys.numpy(), stats, time.perf_counter() - start


def gradient_errors(lambdas=(10.0, 20.0, 40.0, 100.0, 1000.0)):
    """Relative error of `continuous`'s gradient with `bdf` on `y' = A y`,
    A with eigenvalues -1 and -lambda, outputs 0.5 apart, against autodiff
    of the matrix exponential."""
    p = np.array([[1.0, 1.0], [1.0, -2.0]])
    y0 = tf.constant([1.0, 0.5], tf.float64)
    rows = []
    for lam in lambdas:
        a = tf.constant(p @ np.diag([-1.0, -lam]) @ np.linalg.inv(p))

        @tf.function
        def gradients(a):
            with tf.GradientTape(persistent=True) as tape:
                tape.watch(a)
                ys = tfnode.odeint(
                    lambda t, y, a: tf.linalg.matvec(a, y),
                    y0,
                    [0.0, 0.5, 1.0],
                    args=(a,),
                    solver="bdf",
                    rtol=1e-9,
                    atol=1e-11,
                    adjoint="continuous",
                )
                loss = tf.reduce_sum(ys[1] ** 2 + ys[2])
                exact = [
                    tf.linalg.matvec(tf.linalg.expm(a * s), y0)
                    for s in (0.5, 1.0)
                ]
                reference = tf.reduce_sum(exact[0] ** 2 + exact[1])
            return tape.gradient(loss, a), tape.gradient(reference, a)

        try:
            ours, theirs = gradients(a)
            error = np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs))
            rows.append((lam, 0.5 * lam, f"{error:.1e}"))
        except tf.errors.InvalidArgumentError:
            rows.append((lam, 0.5 * lam, "backward solve failed"))
    return rows


def plot(t, ys, path):
    fig, axes = figure(width=6.0, height=3.6)
    ax = axes[0, 0]
    keep = t > 0
    for values, label in (
        (ys[:, 0], "y1"),
        (1e4 * ys[:, 1], "1e4 * y2"),
        (ys[:, 2], "y3"),
    ):
        ax.plot(t[keep], values[keep], marker=".", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("t")
    ax.set_title(
        f"Robertson's kinetics, solver='bdf', rtol={_RTOL}, atol={_ATOL}"
    )
    ax.legend()
    return save_figure(fig, path)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError("Too many command-line arguments.")
    t, ys, stats, seconds = solve("bdf")
    at_40 = ys[np.argmin(np.abs(t - 40.0))]
    print(f"bdf:    NFE {int(stats.num_fn_evals)}, {seconds:.2f} s")
    print(f"        y(40) = {at_40[0]:.10f} {at_40[1]:.9e} {at_40[2]:.10f}")
    error = np.max(np.abs(at_40 - _REFERENCE_40) / _REFERENCE_40)
    print(f"        largest relative error vs the literature: {error:.1e}")
    drift = np.max(np.abs(ys.sum(axis=1) - 1.0))
    print(f"        largest |y1 + y2 + y3 - 1|: {drift:.1e}")
    print(f"        y(4e5) = {ys[-1, 0]:.6e} {ys[-1, 1]:.6e} {ys[-1, 2]:.6e}")
    _, message, _, seconds = solve("dopri5")
    print(f"dopri5: failed after {seconds:.2f} s (tracing included):")
    print(f"        {message}")
    print(f"figure: {plot(t, ys, FLAGS.figure)}")
    if FLAGS.gradients:
        print("continuous adjoint with bdf, y' = A y, eig(A) = -1, -lambda:")
        print("| lambda | lambda * gap | relative gradient error |")
        print("|---|---|---|")
        for row in gradient_errors():
            print("| " + " | ".join(str(x) for x in row) + " |")
    print(f"tf={tf.__version__}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
