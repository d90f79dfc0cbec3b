"""Fixed grids: how many steps an interval takes, and the loop over them."""

import math

import numpy as np
import tensorflow as tf

from tfnode.stepping.records import record
from tfnode.stepping.xla import in_xla_context

# Under XLA, a fixed-grid interval of at most this many steps (known when
# the solve is traced) runs as a Python loop at trace time instead of a
# `tf.while_loop`. XLA:CPU compiles the gradient of a convolution inside a
# `while` loop about 50x slower than graph mode runs it, and the same steps
# unrolled faster than graph mode (docs/benchmarks/xla.md); tracing and
# compile time grow with the steps, hence the bound.
UNROLL_MAX_STEPS = 32

__all__ = [
    "UNROLL_MAX_STEPS",
    "fixed_grid",
    "fixed_interval_loop",
    "grid_step",
    "num_fixed_steps",
    "short_grid_steps",
    "static_step_counts",
    "unrolled_step_count",
]


def num_fixed_steps(span, settings):
    """Steps of a fixed-grid solve over an interval of length `|span|`.

    `steps` gives that many; `step_size` gives `ceil(|span| / h)` (the last
    step is clamped to the interval's end), with a relative slack of 1e-6 so
    that `span / h` landing a rounding error above an integer adds no step.

    Args:
        span: Length of the interval; a float or a scalar tensor.
        settings: `SolveSettings` with `steps` or `step_size` set.

    Returns:
        num_steps: A Python int when `span` is static, else an int32 tensor.
    """
    if settings.steps is not None:
        return settings.steps
    static = tf.get_static_value(span)
    if static is not None:
        ratio = abs(float(static)) / settings.step_size
        return max(1, int(math.ceil(ratio * (1.0 - 1e-6))))
    ratio = tf.abs(span) / tf.constant(settings.step_size, span.dtype)
    return tf.maximum(1, tf.cast(tf.math.ceil(ratio * (1.0 - 1e-6)), tf.int32))


def fixed_grid(t_a, t_b, settings):
    """The fixed grid on `[t_a, t_b]`: `(num_steps, step)`.

    Step `n` starts at `t_a + n * step`; the last one ends exactly at `t_b`
    (so with `step_size` it is clamped, and with `steps` it absorbs
    round-off).
    """
    num_steps = num_fixed_steps(t_b - t_a, settings)
    if settings.step_size is None:
        step = (t_b - t_a) / tf.cast(num_steps, t_a.dtype)
    else:
        step = tf.sign(t_b - t_a) * tf.constant(settings.step_size, t_a.dtype)
    return num_steps, step


def grid_step(t_a, t_b, n, num_steps, step):
    """Start time and signed size of step `n` of a `fixed_grid`."""
    t_n = t_a + tf.cast(n, t_a.dtype) * step
    return t_n, tf.where(n == num_steps - 1, t_b - t_n, step)


def static_step_counts(t, settings):
    """Steps of every interval of a fixed-grid solve, when known statically
    (a list of ints), else `None`."""
    num_times = t.shape[0]
    if settings.steps is not None and num_times is not None:
        return [settings.steps] * (num_times - 1)
    times = tf.get_static_value(t)
    if times is None:
        return None
    return [
        num_fixed_steps(np.float64(b - a), settings)
        for a, b in zip(times[:-1], times[1:], strict=True)
    ]


def short_grid_steps(t, settings):
    """The steps of a whole fixed-grid solve when they are known statically
    and at most `UNROLL_MAX_STEPS` (what XLA runs unrolled), else `None`."""
    if not settings.fixed_grid:
        return None
    counts = static_step_counts(t, settings)
    if counts is None or sum(counts) > UNROLL_MAX_STEPS:
        return None
    return sum(counts)


def unrolled_step_count(t, settings):
    """The steps of a whole fixed-grid solve when a pass over them runs
    unrolled: under XLA, on a `short_grid_steps` grid; else `None`."""
    return short_grid_steps(t, settings) if in_xla_context() else None


def _static_count(counts, i, num_steps):
    """The step count of interval `i` as an int when `counts` (the static
    counts of all intervals) tells it, else `num_steps`."""
    if isinstance(num_steps, int) or not counts:
        return num_steps
    if len(set(counts)) == 1:
        return counts[0]
    index = tf.get_static_value(i)
    return num_steps if index is None else counts[int(index) - 1]


def _unrolls(num_steps):
    """Whether an interval of `num_steps` steps runs unrolled: under XLA,
    with a static count of at most `UNROLL_MAX_STEPS`."""
    return (
        isinstance(num_steps, int)
        and num_steps <= UNROLL_MAX_STEPS
        and in_xla_context()
    )


def fixed_interval_loop(solver, func, t, settings, loop, max_steps):
    """The loop over the steps of one interval of a fixed grid.

    Under XLA an interval with a static step count of at most
    `UNROLL_MAX_STEPS` is unrolled (see `UNROLL_MAX_STEPS`).

    Args:
        solver: The Runge-Kutta method.
        func: `func(t, y)` on flat states.
        t: The output times.
        settings: `SolveSettings` with a grid.
        loop: `tf.while_loop` or its sequential variant.
        max_steps: Static bound on the steps of an interval, or `None`.

    Returns:
        `interval(i, y, f, h, counters, records)` advancing `y` from `t[i-1]`
        to `t[i]`; returns the same tuple less `i`.
    """
    dtype = t.dtype
    counts = static_step_counts(t, settings)

    def interval(i, y, f, h, counters, records):
        t_a, t_b = t[i - 1], t[i]
        n_steps, h_nominal = fixed_grid(t_a, t_b, settings)
        n_steps = _static_count(counts, i, n_steps)
        nfe, accepted, rejected, status = counters
        evals_per_step = []

        def body(n, y, f, records):
            if settings.step_size is None:
                # A uniform grid: no clamping, round-off aside.
                t_n, h_n = t_a + tf.cast(n, dtype) * h_nominal, h_nominal
            else:
                t_n, h_n = grid_step(t_a, t_b, n, n_steps, h_nominal)
            y1, f1, _, evals = solver.step(func, t_n, y, h_n, f or None)
            evals_per_step.append(evals)
            if records:
                out = tf.where(n == n_steps - 1, i, -1)
                records = record(records, accepted + n, t_n, h_n, y, out)
            return n + 1, y1, f1 or [], records

        if _unrolls(n_steps):
            # The same body, once per step at trace time: the states, the
            # records and the counters are those of the loop.
            for n in range(n_steps):
                _, y, f, records = body(tf.constant(n, tf.int32), y, f, records)
        else:
            _, y, f, records = loop(
                lambda n, *_: n < n_steps,
                body,
                (tf.constant(0, tf.int32), y, f, records),
                maximum_iterations=max_steps,
            )
        n_steps = tf.convert_to_tensor(n_steps, tf.int32)
        counters = (
            nfe + evals_per_step[0] * n_steps,
            accepted + n_steps,
            rejected,
            status,
        )
        return y, f, h, counters, records

    return interval
