"""What a solve reports: its status, its statistics and its accepted steps."""

import collections

import numpy as np
import tensorflow as tf

__all__ = [
    "Failure",
    "Recorder",
    "SolveStats",
    "Status",
    "Trajectory",
    "check_status",
    "failure_message",
    "per_step_array_options",
    "record",
    "record_outputs",
]


class Status:
    """Status codes of a solve, as found in `SolveStats.status`."""

    SUCCESS = 0
    MAX_NUM_STEPS = 1
    STEP_UNDERFLOW = 2
    NON_FINITE = 3


STATUS_MESSAGES = {
    Status.MAX_NUM_STEPS: (
        "odeint: the adaptive solve took max_num_steps steps without reaching "
        "the last time; raise max_num_steps or loosen rtol/atol. If the "
        "problem is stiff (fast decaying modes force tiny steps), use the "
        "implicit solver='bdf'."
    ),
    Status.STEP_UNDERFLOW: (
        "odeint: the adaptive step size underflowed (the error test keeps "
        "failing at the smallest representable step); the problem may be "
        "stiff (try solver='bdf') or singular. Loosen rtol/atol, set "
        "min_step, or use float64."
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
        "Trajectory",
        ["times", "steps", "states", "output_start", "output_end", "size"],
    )
):
    """The accepted steps of a solve, as recorded for the discrete adjoint.

    Attributes:
        times: `[N]` start time of each step.
        steps: `[N]` signed size of each step.
        states: One `tf.TensorArray` per state leaf, holding the state at
            the start of each step, or `None` when only the steps were
            recorded.
        output_start, output_end: `[N]` int32: the outputs `t[k]` with
            `output_start <= k < output_end` lie in the step (at its end when
            steps land on the outputs, anywhere in it when they are
            interpolated).
        size: N, the number of accepted steps (scalar int32 tensor).
    """

    __slots__ = ()


def per_step_array_options(size):
    """`tf.TensorArray` arguments for one entry per accepted step: `size`
    entries when known statically (under XLA), else growing; every entry
    readable more than once."""
    dynamic = size is None
    return dict(
        size=0 if dynamic else size,
        dynamic_size=dynamic,
        clear_after_read=False,
    )


class Recorder:
    """TensorArrays holding the accepted steps of a solve.

    Args:
        y0: The flat initial state (shapes and dtypes of the states).
        dtype: The time dtype.
        size: The number of steps when known statically, else `None`
            (the arrays then grow).
        states: Also record the state at the start of every step.
    """

    def __init__(self, y0, dtype, size, states):
        kw = per_step_array_options(size)
        self.times = tf.TensorArray(dtype, element_shape=[], **kw)
        self.steps = tf.TensorArray(dtype, element_shape=[], **kw)
        self.output_start = tf.TensorArray(tf.int32, element_shape=[], **kw)
        self.output_end = tf.TensorArray(tf.int32, element_shape=[], **kw)
        self.states = []
        if states:
            self.states = [
                tf.TensorArray(y.dtype, element_shape=y.shape, **kw) for y in y0
            ]

    def arrays(self):
        """The loop variables: `(times, steps, (output_start, output_end),
        states)`."""
        outputs = (self.output_start, self.output_end)
        return (self.times, self.steps, outputs, self.states)


def record(arrays, index, t, h, y, out):
    """Writes step `index` (start `t`, size `h`, start state `y`) ending on
    output `out` (an index in `t`, or -1 for none) into the
    `Recorder.arrays()` loop variables."""
    start = tf.maximum(out, 0)
    end = tf.where(out >= 0, out + 1, 0)
    return record_outputs(arrays, index, t, h, y, start, end)


def record_outputs(arrays, index, t, h, y, start, end):
    """Writes step `index` holding the outputs `start <= k < end`."""
    times, steps, (output_start, output_end), states = arrays
    times = times.write(index, t)
    steps = steps.write(index, h)
    output_start = output_start.write(index, start)
    output_end = output_end.write(index, end)
    if states:
        states = [ta.write(index, v) for ta, v in zip(states, y, strict=True)]
    return times, steps, (output_start, output_end), states


def trajectory_of(records, accepted):
    """The `Trajectory` of the recorded loop variables."""
    times, steps, (output_start, output_end), states = records
    return Trajectory(
        times=times.stack(),
        steps=steps.stack(),
        # Not stacked: stacking would copy every state once more.
        states=states or None,
        output_start=output_start.stack(),
        output_end=output_end.stack(),
        size=accepted,
    )


class Failure(
    collections.namedtuple("Failure", ["t_reached", "step_size", "attempts"])
):
    """Where a failed solve stopped: the time it reached, its last step
    size and the steps it attempted (tensors)."""

    __slots__ = ()


def failure_message(status, failure=None):
    """The message of a failed solve, with where it stopped when known."""
    message = STATUS_MESSAGES[int(status)]
    if failure is None:
        return message
    return (
        f"{message} It stopped at t = {float(failure.t_reached):.9g} after "
        f"{int(failure.attempts)} attempted steps, the last of size "
        f"{float(failure.step_size):.3g}."
    )


def check_status(ys, status, xla, failure=None):
    """Raises on a failed solve; under XLA, where asserts are no-ops, the
    states turn to NaN so a failure is never silent.

    Eagerly the error is raised here with a clean message saying where the
    solve stopped (`failure`); in a graph it comes from an assert whose
    message TF prefixes with "assertion failed:", then the same data.
    """
    if xla:
        ok = status == Status.SUCCESS
        return [tf.where(ok, y, tf.constant(np.nan, y.dtype)) for y in ys]
    if tf.executing_eagerly():
        if int(status) != Status.SUCCESS:
            raise tf.errors.InvalidArgumentError(
                None, None, failure_message(status, failure)
            )
        return ys
    messages = tf.constant(
        ["odeint: solved."]
        + [STATUS_MESSAGES[code] for code in sorted(STATUS_MESSAGES)]
    )
    data = [tf.gather(messages, status)]
    if failure is not None:
        data += [
            "It stopped at t =",
            failure.t_reached,
            "after attempted steps:",
            failure.attempts,
            "the last of size",
            failure.step_size,
        ]
    check = tf.debugging.Assert(status == Status.SUCCESS, data, summarize=1)
    with tf.control_dependencies([check]):
        return [tf.identity(y) for y in ys]
