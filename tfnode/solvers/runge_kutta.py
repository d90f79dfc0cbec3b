"""One generic explicit Runge-Kutta step, driven by a `ButcherTableau`."""

import dataclasses

import tensorflow as tf

from tfnode import stepping
from tfnode.solvers.base import Solver
from tfnode.solvers.tableau import ButcherTableau

__all__ = ["ExplicitRungeKutta", "linear_combination"]


def linear_combination(y, h, coefficients, stages):
    """Returns `y + h * sum_j coefficients[j] * stages[j]`, leaf by leaf.

    Zero coefficients are skipped at trace time, so sparse rows cost nothing.

    Args:
        y: A list of tensors (the flattened state), or `None` for zero.
        h: The step size, a scalar tensor.
        coefficients: Python floats, one per stage.
        stages: A list of flattened stage derivatives (lists of tensors).

    Returns:
        combination: A list of tensors shaped like the stages.
    """
    terms = [
        (c, k) for c, k in zip(coefficients, stages, strict=True) if c != 0.0
    ]
    out = []
    for leaf in range(len(stages[0])):
        parts = [k[leaf] if c == 1.0 else c * k[leaf] for c, k in terms]
        if not parts:
            total = tf.zeros_like(stages[0][leaf])
        else:
            total = parts[0] if len(parts) == 1 else tf.add_n(parts)
        total = h * total
        out.append(total if y is None else y[leaf] + total)
    return out


def _of_tableau(field, doc=None):
    """A read-only property forwarding the tableau's `field`."""
    return property(lambda self: getattr(self.tableau, field), doc=doc)


class ExplicitRungeKutta(Solver):
    """An explicit Runge-Kutta method defined by its Butcher tableau.

    Any tableau works wherever a solver name does:
    `odeint(f, y0, t, solver=ExplicitRungeKutta(my_tableau), steps=8)`.
    Two solvers with equal tableaux are equal.

    Args:
        tableau: The method's `ButcherTableau`.
        reverse_step: `reverse_step(func, t_n, h, y1) -> (y_n, num_evals)`
            rebuilding a step's start from its end, for
            `adjoint="reversible"`; `None` when the method has none.
    """

    def __init__(self, tableau, reverse_step=None):
        if not isinstance(tableau, ButcherTableau):
            raise TypeError(
                f"tableau must be a tfnode.solvers.ButcherTableau; got "
                f"{tableau!r}."
            )
        self.tableau = tableau
        self._reverse_step = reverse_step

    def __eq__(self, other):
        return (
            isinstance(other, ExplicitRungeKutta)
            and self.tableau == other.tableau
            and self._reverse_step is other._reverse_step
        )

    def __hash__(self):
        return hash((self.tableau, self._reverse_step))

    dense_output = True

    @property
    def reversible(self):
        return self._reverse_step is not None

    def reverse_step(self, func, t_n, h, y1):
        if self._reverse_step is None:
            return super().reverse_step(func, t_n, h, y1)
        return self._reverse_step(func, t_n, h, y1)

    def get_config(self):
        """The tableau as plain data (for solvers that are not registered)."""
        return {"tableau": dataclasses.asdict(self.tableau)}

    @classmethod
    def from_config(cls, config):
        fields = dict(config["tableau"])
        for key in ("a", "b", "c", "b_error", "dense"):
            if fields.get(key) is not None:
                fields[key] = _as_tuples(fields[key])
        return cls(ButcherTableau(**fields))

    name = _of_tableau("name")
    order = _of_tableau("order")
    adaptive = _of_tableau(
        "adaptive",
        "Whether the method has an error estimate for step-size control.",
    )
    fsal = _of_tableau("fsal")
    num_stages = _of_tableau("num_stages")

    @property
    def error_order(self):
        """Order `q` in the step-size rule `h_new = h * ratio**(-1/(q+1))`."""
        return min(self.tableau.order, self.tableau.embedded_order)

    def integrate(self, func, y0, t, settings, **loop_settings):
        """Solves the ODE; see `tfnode.stepping.integrate`."""
        return stepping.integrate(self, func, y0, t, settings, **loop_settings)

    def step(self, func, t, y, h, f0=None):
        """Takes one step of size `h` from `(t, y)`; see `step_with_stages`.

        Returns:
            `(y1, f1, error, num_evals)`.
        """
        return self.step_with_stages(func, t, y, h, f0)[:4]

    def step_with_stages(self, func, t, y, h, f0=None):
        """Takes one step of size `h` from `(t, y)`, keeping its stages.

        Args:
            func: `func(t, y) -> dy/dt` on flattened states.
            t: Scalar time.
            y: The flattened state, a list of tensors.
            h: Scalar step size (negative when integrating backwards).
            f0: `func(t, y)` when the caller already has it (first same as
                last), else `None`.

        Returns:
            y1: The state after the step.
            f1: `func(t + h, y1)` when the method is FSAL, else `None`.
            error: The local error estimate `y1 - y1_embedded`, or `None`.
            num_evals: The number of calls of `func` made, a Python int.
            stages: The stage derivatives `k_j` (lists of tensors), which
                the dense output combines.
        """
        tab = self.tableau
        num_evals = 0
        if f0 is None:
            f0 = func(t, y)
            num_evals += 1
        stages = [f0]
        stage_input = y
        for i in range(1, tab.num_stages):
            stage_input = linear_combination(y, h, tab.a[i], stages)
            stages.append(func(t + tab.c[i] * h, stage_input))
            num_evals += 1
        if tab.fsal:
            # The last stage was evaluated at the solution itself.
            y1, f1 = stage_input, stages[-1]
        else:
            y1, f1 = linear_combination(y, h, tab.b, stages), None
        error = None
        if tab.b_error is not None:
            error = linear_combination(None, h, tab.b_error, stages)
        return y1, f1, error, num_evals, stages

    def dense_weights(self, theta):
        """The weights `b_j(theta)` of the continuous extension.

        Args:
            theta: Fractions of the step, a tensor of any shape.

        Returns:
            A tensor `[*theta.shape, num_stages]`.
        """
        coefficients = self.tableau.continuous_extension
        powers = tf.stack(
            [theta ** (p + 1) for p in range(len(coefficients[0]))], -1
        )
        matrix = tf.constant(coefficients, theta.dtype)
        return tf.tensordot(powers, matrix, [[-1], [1]])

    def interpolate(self, y, y1, h, stages, theta):
        """The dense output `y + h sum_j b_j(theta) k_j` inside a step.

        Args:
            y, y1: The states at the start and the end of the step (lists
                of tensors).
            h: The step's signed size.
            stages: Its stages, as `step_with_stages` returns them.
            theta: Fractions of the step in [0, 1], a 1-D tensor `[m]`.

        Returns:
            The states at `t + theta h`, `[m, ...]` per leaf; `y1` itself
            where `theta >= 1`.
        """
        weights = self.dense_weights(theta)
        at_end = theta >= 1
        out = []
        for leaf, (y_leaf, y1_leaf) in enumerate(zip(y, y1, strict=True)):
            stacked = tf.stack([k[leaf] for k in stages])
            moved = tf.tensordot(
                tf.cast(weights, stacked.dtype), stacked, [[1], [0]]
            )
            inner = y_leaf[None] + h * moved
            shape = [-1] + [1] * y_leaf.shape.rank
            end = tf.reshape(at_end, shape)
            out.append(tf.where(end, y1_leaf[None], inner))
        return out

    def dense_coefficients(self, h, stages):
        """`r_p = h sum_j dense[j][p] k_j`: the step's interpolant is
        `y + sum_p theta**(p + 1) r_p` (what a `DenseSolution` stores)."""
        rows = self.tableau.continuous_extension
        return [
            linear_combination(None, h, [row[p] for row in rows], stages)
            for p in range(len(rows[0]))
        ]


def _as_tuples(value):
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuples(v) for v in value)
    return value
