"""Dense solutions: solve once, evaluate at any time of the span afterwards.

```python
solution = tfnode.solve_dense(func, y0, [0.0, 25.0], rtol=1e-6, atol=1e-8)
ys = solution.evaluate(tf.linspace(0.0, 25.0, 1000))
```

The solve steps freely and keeps, for every accepted step, its start, size,
state and the coefficients of the method's continuous extension
(`ButcherTableau.continuous_extension`); `evaluate` finds the step holding
each time and evaluates that step's polynomial. Works eagerly, in
`tf.function` and under XLA, and is differentiable by automatic
differentiation (`adjoint="backprop"`), with respect to `y0`, `args`, the
field's variables and the evaluation times.
"""

import tensorflow as tf

from tfnode import stepping
from tfnode.odeint import prepare
from tfnode.settings import resolve
from tfnode.stepping.observers import DenseRecorder
from tfnode.stepping.records import check_status

__all__ = ["DenseSolution", "prepare_sweep", "solve_dense"]


def solve_dense(func, y0, t_span, settings=None, *, args=(), **shorthand):
    """Solves `dy/dt = func(t, y)` over `t_span` as a `DenseSolution`.

    Args:
        func: The vector field, as for `tfnode.odeint`.
        y0: The initial state (a tensor or a nest of tensors).
        t_span: `[t0, t1]`; `t1 < t0` solves backwards.
        settings: A `tfnode.SolveSettings` of an adaptive tfnode
            Runge-Kutta solver with `adjoint="backprop"` (the default), or
            its keyword shorthand.
        args: Extra tensors passed to `func` after `y`.

    Returns:
        A `DenseSolution`.

    Raises:
        ValueError: for a fixed grid, a solver without tfnode's dense output
            (`tfp_dopri5`), or another gradient method than `backprop`.
    """
    settings = resolve(settings, **shorthand)
    if settings.adjoint.name != "backprop":
        raise ValueError(
            "A dense solution is differentiated by automatic "
            "differentiation through its steps: use adjoint='backprop'; got "
            f"adjoint={settings.adjoint.name!r}."
        )
    problem, span, unflatten = prepare_sweep(
        "solve_dense", func, y0, t_span, settings, args
    )
    solver = settings.solver
    xla = stepping.in_xla_context()
    size = settings.max_num_steps if xla else None
    recorder = DenseRecorder(solver, problem.y0, size)
    _, counters, carry = stepping.sweep(
        solver,
        problem.field(problem.args),
        problem.y0,
        problem.t,
        settings,
        recorder,
        recorder.initial(span.dtype),
    )
    stats, failure = stepping.stats_of(counters)
    times, sizes, states = recorder.stacked(carry)
    times = check_status([times], stats.status, xla, failure)[0]
    return DenseSolution(
        times=times,
        sizes=sizes,
        states=states,
        num_steps=stats.num_steps,
        span=span,
        unflatten=unflatten,
        stats=stats,
    )


def prepare_sweep(caller, func, y0, t_span, settings, args):
    """`prepare` for a free sweep over `t_span = [t0, t1]` (`solve_dense`,
    `odeint_event`): the settings must be adaptive, with a solver that has
    tfnode's dense output.

    Returns:
        `(problem, span, unflatten)` as `prepare` does.
    """
    solver = settings.solver
    if settings.fixed_grid or not solver.dense_output:
        raise ValueError(
            f"{caller} needs an adaptive tfnode Runge-Kutta solver with "
            "tolerances (e.g. solver='dopri5', 'tsit5', 'bosh3'); got "
            f"solver={solver.name!r}"
            + (" on a fixed grid." if settings.fixed_grid else ".")
        )
    problem, span, unflatten = prepare(func, y0, t_span, settings, args)
    if span.shape[0] != 2:
        raise ValueError(
            f"t_span must hold two times [t0, t1]; got shape {span.shape}."
        )
    return problem, span, unflatten


class DenseSolution:
    """A solve's continuous solution over its span.

    Attributes:
        t0, t1: The span.
        stats: The solve's `SolveStats`.
        num_steps: The accepted steps (int32 tensor).
    """

    def __init__(self, times, sizes, states, num_steps, span, unflatten, stats):
        self._times = times
        self._sizes = sizes
        self._states = states
        self._unflatten = unflatten
        self.num_steps = num_steps
        self.t0, self.t1 = span[0], span[1]
        self.stats = stats

    def evaluate(self, t):
        """The solution at `t` (a scalar or a 1-D tensor of times in the
        span); a 1-D `t` gives states stacked on a new leading axis."""
        t = tf.convert_to_tensor(t, self._times.dtype)
        if t.shape.rank not in (0, 1):
            raise ValueError(
                f"t must be a scalar or a 1-D tensor of times; got shape "
                f"{t.shape}."
            )
        times = tf.reshape(t, [-1])
        self._check_in_span(times)
        step, theta = self._locate(times)
        y, *coefficients = [
            [tf.gather(leaf, step) for leaf in value] for value in self._states
        ]
        out = []
        for leaf, y_leaf in enumerate(y):
            shape = [-1] + [1] * (y_leaf.shape.rank - 1)
            th = tf.reshape(tf.cast(theta, y_leaf.dtype), shape)
            # Horner: y + th (r_1 + th (r_2 + ...)).
            total = coefficients[-1][leaf]
            for r in reversed(coefficients[:-1]):
                total = r[leaf] + th * total
            out.append(y_leaf + th * total)
        if t.shape.rank == 0:
            out = [x[0] for x in out]
        return self._unflatten(out)

    def _locate(self, times):
        """The step holding each time, and its fraction of the step."""
        direction = tf.sign(self.t1 - self.t0)
        # Under XLA the arrays have room for max_num_steps steps; the
        # unused ones sort last.
        used = tf.range(tf.shape(self._times)[0]) < self.num_steps
        inf = tf.constant(float("inf"), self._times.dtype)
        starts = tf.where(used, direction * self._times, inf)
        step = tf.searchsorted(starts, direction * times, side="right") - 1
        step = tf.clip_by_value(step, 0, self.num_steps - 1)
        theta = (times - tf.gather(self._times, step)) / tf.gather(
            self._sizes, step
        )
        return step, theta

    def _check_in_span(self, times):
        lower = tf.minimum(self.t0, self.t1)
        upper = tf.maximum(self.t0, self.t1)
        static = [tf.get_static_value(x) for x in (times, lower, upper)]
        if all(v is not None for v in static):
            values, lo, hi = static
            outside = values[(values < lo) | (values > hi)]
            if outside.size:
                raise ValueError(
                    f"t must lie in the solution's span [{lo}, {hi}]; got "
                    f"{outside.tolist()}."
                )
            return
        tf.debugging.assert_less_equal(
            tf.reduce_max(times) - upper,
            tf.zeros([], times.dtype),
            message="t must lie in the solution's span.",
        )
        tf.debugging.assert_greater_equal(
            tf.reduce_min(times) - lower,
            tf.zeros([], times.dtype),
            message="t must lie in the solution's span.",
        )
