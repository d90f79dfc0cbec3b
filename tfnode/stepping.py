"""The stepping loops of every Runge-Kutta solve: fixed grid and adaptive.

States are flat lists of tensors here (`odeint` flattens nested states).
Both loops are `tf.while_loop`s over the intervals between output times, each
holding a `tf.while_loop` over steps, so the traced graph does not depend on
the number of steps. Adaptive steps are clamped to land exactly on every
output time, so no interpolation is involved and the accepted steps form a
discrete map that the `anode` gradient can replay.

Step-size control follows Hairer, Norsett & Wanner (1993), Sec. II.4: the
scaled error `ratio = norm(err / (atol + rtol * max(|y0|, |y1|)))` accepts a
step when `ratio <= 1` and proposes `h * clip(safety * ratio**(-1/(q+1)),
dfactor, ifactor)`. The controller is not differentiated: the accepted steps
are constants of the discrete forward map.
"""

import collections
import dataclasses
import math

import numpy as np
import tensorflow as tf

from tfnode.norms import rms_norm

__all__ = [
    "IntegrationOptions",
    "SolveStats",
    "Status",
    "Trajectory",
    "fixed_grid",
    "grid_step",
    "initial_step_size",
    "integrate",
    "num_fixed_steps",
]


class Status:
    """Status codes of a solve, as found in `SolveStats.status`."""

    SUCCESS = 0
    MAX_NUM_STEPS = 1
    STEP_UNDERFLOW = 2
    NON_FINITE = 3


_STATUS_MESSAGES = {
    Status.MAX_NUM_STEPS: (
        "odeint: the adaptive solve took max_num_steps steps without reaching "
        "the last time; raise max_num_steps, loosen rtol/atol, or check the "
        "problem for stiffness."
    ),
    Status.STEP_UNDERFLOW: (
        "odeint: the adaptive step size underflowed (the error test keeps "
        "failing at the smallest representable step); the problem may be "
        "stiff or singular. Loosen rtol/atol, set min_step, or use float64."
    ),
    Status.NON_FINITE: (
        "odeint: the state or its derivative became NaN or Inf; check func "
        "and y0, or use a smaller step."
    ),
}


class SolveStats(
    collections.namedtuple(
        "SolveStats",
        ["num_fn_evals", "num_steps", "num_rejected_steps", "status"],
    )
):
    """Diagnostics of one forward solve.

    Attributes:
        num_fn_evals: Calls of `func` (int32 scalar tensor).
        num_steps: Accepted steps.
        num_rejected_steps: Rejected steps (adaptive solvers only).
        status: A `Status` code; anything but `Status.SUCCESS` raises in eager
            and graph mode, and turns the returned states into NaN under XLA.
    """

    __slots__ = ()


class Trajectory(
    collections.namedtuple(
        "Trajectory", ["times", "steps", "states", "output_index", "size"]
    )
):
    """The accepted steps of a solve, as recorded for the discrete adjoint.

    Attributes:
        times: `[N]` start time of each step.
        steps: `[N]` signed size of each step.
        states: One `tf.TensorArray` per state leaf, holding the state at
            the start of each step, or `None` when only the steps were
            recorded.
        output_index: `[N]` int32, the index in `t` of the output time that
            the step ends on, or -1.
        size: N, the number of accepted steps (scalar int32 tensor).
    """

    __slots__ = ()


@dataclasses.dataclass(frozen=True)
class IntegrationOptions:
    """Step-size settings shared by every solver (validated by `odeint`).

    Fixed-grid solves use `steps` (steps per interval between output times)
    or `step_size`; adaptive solves use the others.
    """

    steps: int | None = None
    step_size: float | None = None
    rtol: float = 1e-3
    atol: float = 1e-6
    first_step: float | None = None
    min_step: float = 0.0
    max_step: float = math.inf
    safety: float = 0.9
    ifactor: float = 10.0
    dfactor: float = 0.2
    max_num_steps: int = 10_000
    norm: object = rms_norm

    @property
    def fixed_grid(self):
        return self.steps is not None or self.step_size is not None

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def sequential_while_loop(cond, body, loop_vars, **kwargs):
    """`tf.while_loop` running one iteration at a time.

    Every loop of a solve carries a state each iteration depends on, so
    running iterations in parallel gains nothing; it only lets the executor
    keep several iterations' temporaries alive at once, which makes peak
    memory grow with the number of steps until the default parallelism (10)
    is reached.
    """
    return tf.while_loop(cond, body, loop_vars, parallel_iterations=1, **kwargs)


def num_fixed_steps(span, options):
    """Steps of a fixed-grid solve over an interval of length `|span|`.

    `steps` gives that many; `step_size` gives `ceil(|span| / h)` (the last
    step is clamped to the interval's end), with a relative slack of 1e-6 so
    that `span / h` landing a rounding error above an integer adds no step.

    Args:
        span: Length of the interval; a float or a scalar tensor.
        options: `IntegrationOptions` with `steps` or `step_size` set.

    Returns:
        num_steps: A Python int when `span` is static, else an int32 tensor.
    """
    if options.steps is not None:
        return options.steps
    static = tf.get_static_value(span)
    if static is not None:
        ratio = abs(float(static)) / options.step_size
        return max(1, int(math.ceil(ratio * (1.0 - 1e-6))))
    ratio = tf.abs(span) / tf.cast(options.step_size, span.dtype)
    return tf.maximum(1, tf.cast(tf.math.ceil(ratio * (1.0 - 1e-6)), tf.int32))


def fixed_grid(t_a, t_b, options):
    """The fixed grid on `[t_a, t_b]`: `(num_steps, step)`.

    Step `n` starts at `t_a + n * step`; the last one ends exactly at `t_b`
    (so with `step_size` it is clamped, and with `steps` it absorbs
    round-off).
    """
    num_steps = num_fixed_steps(t_b - t_a, options)
    if options.step_size is None:
        step = (t_b - t_a) / tf.cast(num_steps, t_a.dtype)
    else:
        step = tf.sign(t_b - t_a) * tf.cast(options.step_size, t_a.dtype)
    return num_steps, step


def grid_step(t_a, t_b, n, num_steps, step):
    """Start time and signed size of step `n` of a `fixed_grid`."""
    t_n = t_a + tf.cast(n, t_a.dtype) * step
    return t_n, tf.where(n == num_steps - 1, t_b - t_n, step)


def _scaled_error_ratio(error, y0, y1, options):
    scaled = []
    for e, a, b in zip(error, y0, y1, strict=True):
        tol = options.atol + options.rtol * tf.maximum(tf.abs(a), tf.abs(b))
        scaled.append(tf.stop_gradient(e) / tol)
    return options.norm(scaled)


def initial_step_size(func, t0, y0, f0, direction, order, options):
    """Hairer's initial step-size selection (Hairer et al. 1993, p. 169).

    Args:
        func: `func(t, y)` on flattened states.
        t0: Initial time.
        y0: Flattened initial state.
        f0: `func(t0, y0)`.
        direction: +1 or -1 (tensor of the time dtype).
        order: The error order `q` of the method.
        options: `IntegrationOptions` (rtol, atol and norm are used).

    Returns:
        h: The proposed magnitude of the first step.
        num_evals: Calls of `func` made (1).
    """
    dtype = t0.dtype
    y0 = [tf.stop_gradient(y) for y in y0]
    f0 = [tf.stop_gradient(f) for f in f0]
    scale = [options.atol + tf.abs(y) * options.rtol for y in y0]
    d0 = options.norm([y / s for y, s in zip(y0, scale, strict=True)])
    d1 = options.norm([f / s for f, s in zip(f0, scale, strict=True)])
    small = (d0 < 1e-5) | (d1 < 1e-5)
    h0 = tf.where(small, tf.constant(1e-6, dtype), 0.01 * d0 / d1)
    y1 = [y + direction * h0 * f for y, f in zip(y0, f0, strict=True)]
    f1 = [tf.stop_gradient(f) for f in func(t0 + direction * h0, y1)]
    d2 = (
        options.norm(
            [(b - a) / s for a, b, s in zip(f0, f1, scale, strict=True)]
        )
        / h0
    )
    dmax = tf.maximum(d1, d2)
    h1 = tf.where(
        dmax <= 1e-15,
        tf.maximum(tf.constant(1e-6, dtype), h0 * 1e-3),
        (0.01 / dmax) ** (1.0 / (order + 1)),
    )
    return tf.minimum(100 * h0, h1), 1


def _static_len(t):
    n = t.shape[0]
    return n if n is not None else tf.shape(t)[0]


def _all_finite(y):
    return tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in y])


def _in_xla_context():
    try:
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # pragma: no cover - layout of TF internals changed
        return False
    graph = tf.compat.v1.get_default_graph()
    return control_flow_util.GraphOrParentsInXlaContext(graph)


def _static_step_counts(t, options):
    """Steps of every interval of a fixed-grid solve, when known statically
    (a list of ints), else `None`."""
    num_times = t.shape[0]
    if options.steps is not None and num_times is not None:
        return [options.steps] * (num_times - 1)
    times = tf.get_static_value(t)
    if times is None:
        return None
    return [
        num_fixed_steps(np.float64(b - a), options)
        for a, b in zip(times[:-1], times[1:], strict=True)
    ]


class _Recorder:
    """TensorArrays holding the accepted steps of a solve."""

    def __init__(self, y0, dtype, size, states):
        dynamic = size is None
        size = 0 if dynamic else size
        kw = dict(size=size, dynamic_size=dynamic, clear_after_read=False)
        self.times = tf.TensorArray(dtype, element_shape=[], **kw)
        self.steps = tf.TensorArray(dtype, element_shape=[], **kw)
        self.output_index = tf.TensorArray(tf.int32, element_shape=[], **kw)
        self.states = []
        if states:
            self.states = [
                tf.TensorArray(y.dtype, element_shape=y.shape, **kw) for y in y0
            ]

    def arrays(self):
        return (self.times, self.steps, self.output_index, self.states)


def _record(arrays, index, t, h, y, out):
    times, steps, output_index, states = arrays
    times = times.write(index, t)
    steps = steps.write(index, h)
    output_index = output_index.write(index, out)
    if states:
        states = [ta.write(index, v) for ta, v in zip(states, y, strict=True)]
    return times, steps, output_index, states


def integrate(
    solver,
    func,
    y0,
    t,
    options,
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
        options: `IntegrationOptions`.
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
    dtype = t.dtype
    num_times = _static_len(t)
    fixed = options.fixed_grid
    record_steps = record_steps or record_states
    xla = _in_xla_context()

    if fixed:
        counts = _static_step_counts(t, options)
        inner_max = options.steps if counts is None else max(counts)
        record_size = None if counts is None else sum(counts)
    else:
        inner_max = options.max_num_steps if xla else None
        record_size = options.max_num_steps + 1 if xla else None

    fsal = solver.fsal
    fixed_loop = sequential_while_loop if sequential else tf.while_loop
    nfe = tf.constant(0, tf.int32)
    f0 = None
    if fsal or not fixed:
        f0 = func(t[0], y0)
        nfe += 1
    direction = tf.sign(t[-1] - t[0])
    h0 = tf.zeros([], dtype)
    if not fixed:
        if options.first_step is not None:
            h0 = tf.constant(options.first_step, dtype)
        else:
            h0, evals = initial_step_size(
                func, t[0], y0, f0, direction, solver.error_order, options
            )
            nfe += evals
        h0 = direction * tf.clip_by_value(
            h0, options.min_step, options.max_step
        )
    if not fsal:
        f0 = []

    recorder = None
    if record_steps:
        recorder = _Recorder(y0, dtype, record_size, record_states)

    counters = (
        nfe,
        tf.constant(0, tf.int32),  # accepted
        tf.constant(0, tf.int32),  # rejected
        tf.constant(Status.SUCCESS, tf.int32),
    )

    def fixed_interval(i, y, f, h, counters, records):
        t_a, t_b = t[i - 1], t[i]
        n_steps, h_nominal = fixed_grid(t_a, t_b, options)
        nfe, accepted, rejected, status = counters
        evals_per_step = []

        def body(n, y, f, records):
            if options.step_size is None:
                # A uniform grid: no clamping, round-off aside.
                t_n, h_n = t_a + tf.cast(n, dtype) * h_nominal, h_nominal
            else:
                t_n, h_n = grid_step(t_a, t_b, n, n_steps, h_nominal)
            y1, f1, _, evals = solver.step(func, t_n, y, h_n, f or None)
            evals_per_step.append(evals)
            if records:
                out = tf.where(n == n_steps - 1, i, -1)
                records = _record(records, accepted + n, t_n, h_n, y, out)
            return n + 1, y1, f1 or [], records

        _, y, f, records = fixed_loop(
            lambda n, *_: n < n_steps,
            body,
            (tf.constant(0, tf.int32), y, f, records),
            maximum_iterations=inner_max,
        )
        n_steps = tf.convert_to_tensor(n_steps, tf.int32)
        counters = (
            nfe + evals_per_step[0] * n_steps,
            accepted + n_steps,
            rejected,
            status,
        )
        return y, f, h, counters, records

    def adaptive_interval(i, y, f, h, counters, records):
        t_a, t_b = t[i - 1], t[i]
        q = solver.error_order
        tiny = 4 * np.finfo(dtype.as_numpy_dtype).eps
        ifactor = tf.constant(options.ifactor, dtype)
        dfactor = tf.constant(options.dfactor, dtype)
        one = tf.constant(1.0, dtype)

        def body(t_n, y, f, h, counters, records):
            nfe, accepted, rejected, status = counters
            remaining = t_b - t_n
            last = tf.abs(h) >= tf.abs(remaining)
            h_eff = tf.stop_gradient(tf.where(last, remaining, h))
            y1, f1, error, evals = solver.step(func, t_n, y, h_eff, f or None)
            ratio = _scaled_error_ratio(error, y, y1, options)
            finite = tf.math.is_finite(ratio)
            accept = finite & (
                (ratio <= 1.0) | (tf.abs(h_eff) <= options.min_step)
            )
            safe_ratio = tf.where(finite & (ratio > 0), ratio, one)
            factor = options.safety * safe_ratio ** (-1.0 / (q + 1))
            factor = tf.where(ratio == 0, ifactor, factor)
            factor = tf.clip_by_value(factor, dfactor, ifactor)
            factor = tf.where(finite, factor, dfactor)
            h_new = tf.abs(h_eff) * factor
            h_new = tf.where(accept & last, tf.maximum(h_new, tf.abs(h)), h_new)
            h_new = direction * tf.clip_by_value(
                h_new, options.min_step, options.max_step
            )
            if records:
                out = tf.where(last, i, -1)
                records = tf.cond(
                    accept,
                    lambda: _record(records, accepted, t_n, h_eff, y, out),
                    lambda: records,
                )
            t_next = tf.where(accept, tf.where(last, t_b, t_n + h_eff), t_n)
            y = [tf.where(accept, b, a) for a, b in zip(y, y1, strict=True)]
            if f:
                f = [tf.where(accept, b, a) for a, b in zip(f, f1, strict=True)]
            accept_i = tf.cast(accept, tf.int32)
            attempts = accepted + rejected + 1
            floor = tiny * tf.maximum(tf.abs(t_n), tf.abs(t_b))
            underflow = ~tf.math.is_finite(h_new) | (
                (tf.abs(h_new) <= floor) & ~accept
            )
            status = tf.where(
                underflow,
                tf.where(finite, Status.STEP_UNDERFLOW, Status.NON_FINITE),
                status,
            )
            status = tf.where(
                (attempts >= options.max_num_steps)
                & (status == Status.SUCCESS)
                & ~(accept & last),
                Status.MAX_NUM_STEPS,
                status,
            )
            counters = (
                nfe + evals,
                accepted + accept_i,
                rejected + 1 - accept_i,
                status,
            )
            return t_next, y, f, h_new, counters, records

        _, y, f, h, counters, records = sequential_while_loop(
            lambda t_n, *c: (t_n != t_b) & (c[3][3] == Status.SUCCESS),
            body,
            (t_a, y, f, h, counters, records),
            maximum_iterations=inner_max,
        )
        return y, f, h, counters, records

    interval = fixed_interval if fixed else adaptive_interval

    def advance(i, y, f, h, counters, records):
        y, f, h, counters, records = interval(i, y, f, h, counters, records)
        status = counters[3]
        status = tf.where(
            (status == Status.SUCCESS) & ~_all_finite(y),
            Status.NON_FINITE,
            status,
        )
        return y, f, h, (*counters[:3], status), records

    records = recorder.arrays() if recorder is not None else ()
    if num_times == 2:
        # One interval (the common case of a Neural ODE block): no loop
        # over output times.
        y1, _, _, counters, records = advance(
            tf.constant(1, tf.int32), y0, f0, h0, counters, records
        )
        ys = [tf.stack([a, b]) for a, b in zip(y0, y1, strict=True)]
    else:
        outputs = [
            tf.TensorArray(
                y.dtype, size=num_times, element_shape=y.shape
            ).write(0, y)
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
        ys = [ta.stack() for ta in outputs]
    nfe, accepted, rejected, status = counters
    ys = _check_status(ys, status, xla)
    stats = SolveStats(nfe, accepted, rejected, status)
    trajectory = None
    if records:
        times, steps, output_index, states = records
        trajectory = Trajectory(
            times=times.stack(),
            steps=steps.stack(),
            # Not stacked: stacking would copy every state once more.
            states=states or None,
            output_index=output_index.stack(),
            size=accepted,
        )
    return ys, stats, trajectory


def _check_status(ys, status, xla):
    """Raises on a failed solve; under XLA, where asserts are no-ops, the
    states turn to NaN so a failure is never silent."""
    if xla:
        ok = status == Status.SUCCESS
        return [tf.where(ok, y, tf.constant(np.nan, y.dtype)) for y in ys]
    messages = tf.constant(
        ["odeint: solved."]
        + [_STATUS_MESSAGES[code] for code in sorted(_STATUS_MESSAGES)]
    )
    check = tf.debugging.Assert(
        status == Status.SUCCESS, [tf.gather(messages, status)], summarize=1
    )
    with tf.control_dependencies([check]):
        return [tf.identity(y) for y in ys]
