"""`integrate`: one solve of a Runge-Kutta method over all output times.

States are flat lists of tensors here (`odeint` flattens nested states).
A fixed-grid solve, or an adaptive one with `interpolate=False`, is a
`tf.while_loop` over the intervals between output times, each holding the
fixed-grid or adaptive loop over steps (`grid.py`, `adaptive.py`). An
adaptive solve with `interpolate=True` is one sweep over the whole span whose
observer evaluates the dense output at the output times
(`observers.py`). Either way the traced graph does not depend on the number
of steps.
"""

import tensorflow as tf

from tfnode.stepping.adaptive import adaptive_interval_loop
from tfnode.stepping.adaptive import sequential_while_loop
from tfnode.stepping.controllers import initial_step_size
from tfnode.stepping.grid import fixed_interval_loop
from tfnode.stepping.grid import static_step_counts
from tfnode.stepping.observers import InterpolatedOutputs
from tfnode.stepping.records import Failure
from tfnode.stepping.records import Recorder
from tfnode.stepping.records import SolveStats
from tfnode.stepping.records import Status
from tfnode.stepping.records import check_status
from tfnode.stepping.records import trajectory_of
from tfnode.stepping.xla import in_xla_context

__all__ = [
    "in_xla_context",
    "integrate",
    "interpolates",
    "stats_of",
    "sweep",
]


def _static_len(t):
    n = t.shape[0]
    return n if n is not None else tf.shape(t)[0]


def _all_finite(y):
    return tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in y])


def _loop_bounds(t, settings, xla):
    """`(max steps per interval, record size)`, static where known."""
    if settings.fixed_grid:
        counts = static_step_counts(t, settings)
        if counts is None:
            return settings.steps, None
        return max(counts), sum(counts)
    if xla:
        return settings.max_num_steps, settings.max_num_steps + 1
    return None, None


def _start(solver, func, y0, t, settings):
    """The first derivative (when used), the first step and the NFE so far."""
    dtype = t.dtype
    nfe = tf.constant(0, tf.int32)
    f0 = None
    if solver.fsal or not settings.fixed_grid:
        f0 = func(t[0], y0)
        nfe += 1
    direction = tf.sign(t[-1] - t[0])
    h0 = tf.zeros([], dtype)
    if not settings.fixed_grid:
        if settings.first_step is not None:
            h0 = tf.constant(settings.first_step, dtype)
        else:
            h0, evals = initial_step_size(
                func, t[0], y0, f0, direction, solver.error_order, settings
            )
            nfe += evals
        h0 = direction * tf.clip_by_value(
            h0, settings.min_step, settings.max_step
        )
    return (f0 if solver.fsal else []), h0, nfe, direction


def _interval_loop(solver, func, t, settings, direction, max_steps, sequential):
    """The loop over one interval; it returns the time it reached last."""
    if settings.fixed_grid:
        loop = sequential_while_loop if sequential else tf.while_loop
        grid = fixed_interval_loop(solver, func, t, settings, loop, max_steps)
        return lambda i, *carry: (*grid(i, *carry), t[i])
    return adaptive_interval_loop(
        solver, func, t, settings, direction, max_steps
    )


def _over_outputs(advance, y0, f0, h0, counters, records, num_times):
    """Runs `advance` over every interval; returns the stacked states."""
    if isinstance(num_times, int) and num_times == 2:
        # One interval (the common case of a Neural ODE block): no loop
        # over output times.
        y1, _, _, counters, records = advance(
            tf.constant(1, tf.int32), y0, f0, h0, counters, records
        )
        ys = [tf.stack([a, b]) for a, b in zip(y0, y1, strict=True)]
        return ys, counters, records
    outputs = [
        tf.TensorArray(y.dtype, size=num_times, element_shape=y.shape).write(
            0, y
        )
        for y in y0
    ]

    def outer_body(i, y, f, h, counters, records, outputs):
        y, f, h, counters, records = advance(i, y, f, h, counters, records)
        outputs = [ta.write(i, v) for ta, v in zip(outputs, y, strict=True)]
        return i + 1, y, f, h, counters, records, outputs

    _, _, _, _, counters, records, outputs = sequential_while_loop(
        lambda i, *c: (i < num_times) & (c[3][3] == Status.SUCCESS),
        outer_body,
        (tf.constant(1, tf.int32), y0, f0, h0, counters, records, outputs),
        maximum_iterations=(
            num_times - 1 if isinstance(num_times, int) else None
        ),
    )
    return [ta.stack() for ta in outputs], counters, records


def interpolates(t, settings):
    """Whether the outputs come from the dense output: an adaptive solve
    asked to interpolate, with outputs between its ends."""
    num_times = t.shape[0]
    return (
        settings.interpolate
        and not settings.fixed_grid
        and (num_times is None or num_times > 2)
    )


def integrate(
    solver,
    func,
    y0,
    t,
    settings,
    record_steps=False,
    record_states=False,
    sequential=False,
):
    """Solves `dy/dt = func(t, y)` from `y(t[0]) = y0`; returns `y` at `t`.

    Args:
        solver: An `ExplicitRungeKutta` method.
        func: `func(t, y) -> dy/dt` on flattened states (lists of tensors).
        y0: Flattened initial state.
        t: 1-D tensor of output times, strictly monotonic.
        settings: `SolveSettings`.
        record_steps: Record the accepted steps (times, sizes, output marks).
        record_states: Also record the state at the start of every step.
        sequential: Run the fixed-grid loop one iteration at a time, so no
            temporaries of later iterations are alive early (for solves in
            a backward pass, where memory must not grow with the steps).

    Returns:
        ys: List of `[len(t), ...]` tensors, the states at `t`.
        stats: `SolveStats`.
        trajectory: A `Trajectory`, or `None` unless `record_steps`.
    """
    xla = in_xla_context()
    max_steps, record_size = _loop_bounds(t, settings, xla)
    records = ()
    if record_steps or record_states:
        recorder = Recorder(y0, t.dtype, record_size, record_states)
        records = recorder.arrays()
    if interpolates(t, settings):
        return _integrate_interpolated(
            solver, func, y0, t, settings, records, xla
        )
    f0, h0, nfe, direction = _start(solver, func, y0, t, settings)
    interval = _interval_loop(
        solver, func, t, settings, direction, max_steps, sequential
    )

    def advance(i, y, f, h, counters, records):
        y, f, h, counters, records, t_reached = interval(
            i, y, f, h, counters[:4], records
        )
        return y, f, h, _counted(counters, y, t_reached, h), records

    ys, counters, records = _over_outputs(
        advance, y0, f0, h0, _counters(nfe, t[0], h0), records, _static_len(t)
    )
    return _finish(ys, counters, records, xla)


def _counters(nfe, t0, h0):
    """`(nfe, accepted, rejected, status, t_reached, last step size)`."""
    zero = tf.constant(0, tf.int32)
    return (nfe, zero, zero, tf.constant(Status.SUCCESS, tf.int32), t0, h0)


def _counted(counters, y, t_reached, h):
    """The counters after an interval: NaN/Inf states fail the solve."""
    nfe, accepted, rejected, status = counters[:4]
    status = tf.where(
        (status == Status.SUCCESS) & ~_all_finite(y),
        Status.NON_FINITE,
        status,
    )
    return (nfe, accepted, rejected, status, t_reached, h)


def stats_of(counters):
    """The `SolveStats` and `Failure` of a solve's final counters."""
    nfe, accepted, rejected, status, t_reached, h = counters
    failure = Failure(t_reached, h, accepted + rejected)
    return SolveStats(nfe, accepted, rejected, status), failure


def _finish(ys, counters, records, xla):
    stats, failure = stats_of(counters)
    ys = check_status(ys, stats.status, xla, failure)
    trajectory = trajectory_of(records, stats.num_steps) if records else None
    return ys, stats, trajectory


def sweep(solver, func, y0, span, settings, observer, observed):
    """One adaptive solve over `span = [t0, t1]`, stepping freely (clamped
    only to end on `t1`), with `observer` told of every accepted step.

    Args:
        solver: An adaptive `ExplicitRungeKutta` method.
        func: `func(t, y)` on flat states.
        y0: The flat initial state.
        span: `[t0, t1]`, a tensor of two times.
        settings: `SolveSettings` with tolerances.
        observer: See `adaptive_interval_loop`.
        observed: The observer's initial carried value (not empty).

    Returns:
        y: The state where the sweep ended (`t1`, or where the observer
            stopped it).
        counters: `(nfe, accepted, rejected, status, t_reached, h)`, for
            `stats_of`.
        observed: The observer's final carried value.
    """
    max_steps = settings.max_num_steps if in_xla_context() else None
    f0, h0, nfe, direction = _start(solver, func, y0, span, settings)
    interval = adaptive_interval_loop(
        solver, func, span, settings, direction, max_steps, observer
    )
    counters = _counters(nfe, span[0], h0)
    y, _, h, counters, observed, t_reached = interval(
        tf.constant(1, tf.int32), y0, f0, h0, counters[:4], observed
    )
    return y, _counted(counters, y, t_reached, h), observed


def _integrate_interpolated(solver, func, y0, t, settings, records, xla):
    """`integrate` with the outputs taken from the dense output."""
    direction = tf.sign(t[-1] - t[0])
    outputs = InterpolatedOutputs(solver, t, direction)
    span = tf.stack([t[0], t[-1]])
    _, counters, carry = sweep(
        solver, func, y0, span, settings, outputs, outputs.initial(y0, records)
    )
    records, ys = outputs.stacked(carry)
    return _finish(ys, counters, records, xla)
