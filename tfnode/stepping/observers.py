"""Observers of an adaptive sweep that step freely over a whole span.

`InterpolatedOutputs` evaluates the solver's dense output at every output
time a step passes, so the number of steps does not grow with the number of
output times; it also records which outputs each step holds, for `anode`'s
replay. `DenseRecorder` keeps every step's interpolant for a
`tfnode.DenseSolution`. `EventLocator` ends the sweep at an event.
"""

import tensorflow as tf

from tfnode.stepping.adaptive import Observer
from tfnode.stepping.records import per_step_array_options
from tfnode.stepping.records import record_outputs
from tfnode.stepping.xla import in_xla_context

__all__ = ["DenseRecorder", "EventLocator", "InterpolatedOutputs"]


class InterpolatedOutputs(Observer):
    """Writes `y(t[k])` for every output time inside an accepted step.

    An output at a step's end is the step's state itself; one inside it is
    the continuous extension `y + h sum_j b_j(theta) k_j` at
    `theta = (t[k] - t_n) / h` (Hairer et al. 1993, Sec. II.6).

    Args:
        solver: The Runge-Kutta method (its `interpolate`).
        t: The output times, strictly monotonic.
        direction: +1 or -1, the sign of `t[-1] - t[0]`.
    """

    def __init__(self, solver, t, direction):
        self.solver = solver
        self.t = t
        self.direction = direction
        self.num_times = t.shape[0] if t.shape[0] is not None else tf.size(t)

    def initial(self, y0, records):
        """The carried value: `(records, k, outputs)`, output 0 written."""
        outputs = [
            tf.TensorArray(
                y.dtype, size=self.num_times, element_shape=y.shape
            ).write(0, y)
            for y in y0
        ]
        return (records, tf.constant(1, tf.int32), outputs)

    def on_step(self, carry, step):
        records, k, outputs = carry
        write = self._write_looped if in_xla_context() else self._write_all
        end, outputs = write(k, outputs, step)
        if records:
            records = record_outputs(
                records, step.index, step.t, step.h, step.y, k, end
            )
        return records, end, outputs

    def _write_all(self, k, outputs, step):
        """All the outputs inside the step at once (one gather, one
        scatter): what XLA cannot compile, as their number is dynamic."""
        t_end = step.t + step.h
        passed = tf.searchsorted(
            self.direction * self.t[None], self.direction * t_end[None],
            side="right",
        )[0]
        end = tf.maximum(k, tf.cast(passed, tf.int32))
        index = tf.range(k, end)
        values = self._interpolate(step, tf.gather(self.t, index))
        outputs = [
            ta.scatter(index, v) for ta, v in zip(outputs, values, strict=True)
        ]
        return end, outputs

    def _write_looped(self, k, outputs, step):
        """The outputs inside the step one at a time (under XLA)."""
        t, n = self.t, self.num_times
        t_end = step.t + step.h

        def inside(k, outputs):
            t_k = t[tf.minimum(k, n - 1)]
            return (k < n) & (self.direction * (t_k - t_end) <= 0)

        def write(k, outputs):
            y_k = self._interpolate(step, t[k][None])
            outputs = [
                ta.write(k, v[0]) for ta, v in zip(outputs, y_k, strict=True)
            ]
            return k + 1, outputs

        return tf.while_loop(
            inside, write, (k, outputs), maximum_iterations=n
        )

    def _interpolate(self, step, times):
        theta = (times - step.t) / step.h
        return self.solver.interpolate(
            step.y, step.y1, step.h, step.stages, theta
        )

    @staticmethod
    def stacked(carry):
        """The records and the outputs `[len(t), ...]` of the final carry."""
        records, _, outputs = carry
        return records, [ta.stack() for ta in outputs]


class DenseRecorder(Observer):
    """Keeps each accepted step's start, size, state and interpolation
    coefficients `r_p` (`y(t + theta h) = y + sum_p theta**(p+1) r_p`).

    Args:
        solver: The Runge-Kutta method (its `dense_coefficients`).
        y0: The flat initial state (shapes and dtypes).
        size: Static number of steps to hold (under XLA), else `None`.
    """

    def __init__(self, solver, y0, size):
        self.solver = solver
        self.degree = len(solver.tableau.continuous_extension[0])
        self.kw = per_step_array_options(size)
        self.y0 = y0

    def initial(self, dtype):
        scalars = tuple(
            tf.TensorArray(dtype, element_shape=[], **self.kw)
            for _ in range(2)
        )
        states = [
            [
                tf.TensorArray(y.dtype, element_shape=y.shape, **self.kw)
                for y in self.y0
            ]
            for _ in range(self.degree + 1)
        ]
        return (scalars, states)

    def on_step(self, carry, step):
        (times, sizes), states = carry
        i = step.index
        values = [step.y, *self.solver.dense_coefficients(step.h, step.stages)]
        states = [
            [ta.write(i, v) for ta, v in zip(arrays, value, strict=True)]
            for arrays, value in zip(states, values, strict=True)
        ]
        return ((times.write(i, step.t), sizes.write(i, step.h)), states)

    @staticmethod
    def stacked(carry):
        """`(times [N], sizes [N], states [degree + 1][leaf] [N, ...])`."""
        (times, sizes), states = carry
        return (
            times.stack(),
            sizes.stack(),
            [[ta.stack() for ta in arrays] for arrays in states],
        )


class EventLocator(Observer):
    """Stops a sweep at the first zero of `event_fn(t, y)`.

    After each accepted step the event function is evaluated at the step's
    end; a sign change in the chosen direction is then located on the
    step's dense output by bisection, to the time resolution of the dtype,
    at no further cost in evaluations of the vector field.

    Args:
        solver: The Runge-Kutta method (its `interpolate`).
        event_fn: `event_fn(t, y_flat) -> scalar`.
        direction: `"rising"` (from negative to non-negative), `"falling"`
            or `"either"`.
    """

    _BISECTIONS = 64

    def __init__(self, solver, event_fn, direction):
        self.solver = solver
        self.event_fn = event_fn
        self.direction = direction

    def initial(self, t0, y0):
        """The carried value: `(g at the last step's end, found, time)`."""
        g0 = self._event(t0, y0)
        return (g0, tf.constant(False), t0)

    def _event(self, t, y):
        g = tf.convert_to_tensor(self.event_fn(t, y))
        return tf.reshape(tf.cast(g, t.dtype), [])

    def crossed(self, g0, g1):
        """Whether `g` changed sign from `g0` to `g1` in the direction."""
        rising = (g0 < 0) & (g1 >= 0)
        falling = (g0 > 0) & (g1 <= 0)
        if self.direction == "rising":
            return rising
        if self.direction == "falling":
            return falling
        return rising | falling

    def on_step(self, carry, step):
        g0, found, t_event = carry
        t_end = step.t + step.h
        g1 = self._event(t_end, step.y1)
        crossed = self.crossed(g0, g1)
        t_event = tf.cond(
            crossed, lambda: self._locate(step, g0), lambda: t_event
        )
        return (g1, found | crossed, t_event)

    def _locate(self, step, g0):
        """The first time of the step where `g` has crossed, by bisection
        on the fraction `theta` of the step."""
        dtype = step.t.dtype

        def g_at(theta):
            y = self.solver.interpolate(
                step.y, step.y1, step.h, step.stages, theta[None]
            )
            return self._event(step.t + theta * step.h, [v[0] for v in y])

        def body(lo, hi):
            mid = 0.5 * (lo + hi)
            past = self.crossed(g0, g_at(mid))
            return tf.where(past, lo, mid), tf.where(past, mid, hi)

        _, hi = tf.while_loop(
            lambda lo, hi: hi - lo > 0,
            body,
            (tf.zeros([], dtype), tf.ones([], dtype)),
            maximum_iterations=self._BISECTIONS,
        )
        return step.t + hi * step.h

    def stop(self, carry):
        return carry[1]
