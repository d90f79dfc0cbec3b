"""The adaptive loop: steps chosen by a controller, clamped to land on the
end of the interval, and an observer that sees every accepted step.

The accepted steps form a discrete map that the `anode` gradient replays.
What happens on an accepted step besides advancing the state (recording it,
writing the outputs that fall inside it, looking for an event) is the
observer's business (`StepRecorder` and `tfnode.stepping.observers`).
"""

import collections

import numpy as np
import tensorflow as tf

from tfnode.stepping.controllers import IntegralController
from tfnode.stepping.controllers import scaled_error_ratio
from tfnode.stepping.records import Status
from tfnode.stepping.records import record

__all__ = [
    "AcceptedStep",
    "Observer",
    "StepRecorder",
    "adaptive_interval_loop",
    "sequential_while_loop",
]


class AcceptedStep(
    collections.namedtuple(
        "AcceptedStep", ["index", "t", "h", "y", "y1", "stages", "lands_on"]
    )
):
    """What an observer is told of an accepted step.

    Attributes:
        index: Its number among the accepted steps (int32).
        t, h: Its start time and signed size.
        y, y1: The states at its start and end.
        stages: Its stages `k_j`, for the dense output.
        lands_on: The index of the output time it was clamped to end on,
            else -1.
    """

    __slots__ = ()


class Observer:
    """What an adaptive loop tells of its accepted steps.

    `on_step(observed, step) -> observed` is called on every
    `AcceptedStep` with the observer's carried value; `stop(observed)` is
    a bool tensor ending the loop early, or `None` (the default: never).
    """

    def on_step(self, observed, step):
        raise NotImplementedError

    def stop(self, observed):
        del observed
        return None


class StepRecorder(Observer):
    """The default observer: records each accepted step (for `anode`) into
    `Recorder.arrays()`, or does nothing when given no arrays."""

    def on_step(self, records, step):
        if not records:
            return records
        return record(
            records, step.index, step.t, step.h, step.y, step.lands_on
        )


def sequential_while_loop(cond, body, loop_vars, **kwargs):
    """`tf.while_loop` running one iteration at a time.

    Every loop of a solve carries a state each iteration depends on, so
    running iterations in parallel gains nothing; it only lets the executor
    keep several iterations' temporaries alive at once, which makes peak
    memory grow with the number of steps until the default parallelism (10)
    is reached.
    """
    return tf.while_loop(cond, body, loop_vars, parallel_iterations=1, **kwargs)


def _select(accept, new, old):
    return [tf.where(accept, b, a) for a, b in zip(old, new, strict=True)]


def _status_after(status, step, settings):
    """The status after one attempt: underflow, non-finite or out of
    attempts, else unchanged."""
    accept, finite, h_next, floor, attempts, landed = step
    underflow = ~tf.math.is_finite(h_next) | (
        (tf.abs(h_next) <= floor) & ~accept
    )
    status = tf.where(
        underflow,
        tf.where(finite, Status.STEP_UNDERFLOW, Status.NON_FINITE),
        status,
    )
    return tf.where(
        (attempts >= settings.max_num_steps)
        & (status == Status.SUCCESS)
        & ~(accept & landed),
        Status.MAX_NUM_STEPS,
        status,
    )


def adaptive_interval_loop(
    solver, func, t, settings, direction, max_steps, observer=None
):
    """The loop over the adaptive steps of one interval between outputs.

    Args:
        solver: The Runge-Kutta method (with an error estimate).
        func: `func(t, y)` on flat states.
        t: The output times.
        settings: `SolveSettings` with tolerances.
        direction: +1 or -1.
        max_steps: Static bound on the attempts (under XLA), or `None`.
        observer: An `Observer` of the accepted steps; a `StepRecorder` by
            default.

    Returns:
        `interval(i, y, f, h, counters, observed)` advancing `y` from
        `t[i-1]` to `t[i]`; returns the same tuple less `i`, then the time
        reached (`t[i]`, unless the solve failed or the observer stopped it).
    """
    observer = observer or StepRecorder()
    dtype = t.dtype
    controller = IntegralController(settings, solver.error_order, dtype)
    tiny = 4 * np.finfo(dtype.as_numpy_dtype).eps

    def running(t_n, t_b, status, observed):
        going = (t_n != t_b) & (status == Status.SUCCESS)
        stop = observer.stop(observed)
        return going if stop is None else going & ~stop

    def interval(i, y, f, h, counters, observed):
        t_a, t_b = t[i - 1], t[i]

        def body(t_n, y, f, h, counters, observed):
            nfe, accepted, rejected, status = counters
            remaining = t_b - t_n
            landed = tf.abs(h) >= tf.abs(remaining)
            h_eff = tf.stop_gradient(tf.where(landed, remaining, h))
            y1, f1, error, evals, stages = solver.step_with_stages(
                func, t_n, y, h_eff, f or None
            )
            ratio = scaled_error_ratio(error, y, y1, settings)
            accept, h_new = controller.propose(
                ratio, h_eff, h, landed, direction
            )
            if observed:
                step = AcceptedStep(
                    accepted, t_n, h_eff, y, y1, stages,
                    tf.where(landed, i, -1),
                )
                observed = tf.cond(
                    accept,
                    lambda: observer.on_step(observed, step),
                    lambda: observed,
                )
            t_next = tf.where(accept, tf.where(landed, t_b, t_n + h_eff), t_n)
            y = _select(accept, y1, y)
            if f:
                f = _select(accept, f1, f)
            accept_i = tf.cast(accept, tf.int32)
            floor = tiny * tf.maximum(tf.abs(t_n), tf.abs(t_b))
            attempts = accepted + rejected + 1
            finite = tf.math.is_finite(ratio)
            status = _status_after(
                status,
                (accept, finite, h_new, floor, attempts, landed),
                settings,
            )
            counters = (
                nfe + evals,
                accepted + accept_i,
                rejected + 1 - accept_i,
                status,
            )
            return t_next, y, f, h_new, counters, observed

        t_n, y, f, h, counters, observed = sequential_while_loop(
            lambda t_n, y, f, h, c, obs: running(t_n, t_b, c[3], obs),
            body,
            (t_a, y, f, h, counters, observed),
            maximum_iterations=max_steps,
        )
        return y, f, h, counters, observed, t_n

    return interval
