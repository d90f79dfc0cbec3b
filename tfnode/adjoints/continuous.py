"""`adjoint="continuous"`: the continuous adjoint of Chen et al. (2018).

The backward pass solves the augmented system

```none
dy/dt   =  f(t, y, theta)
da/dt   = -a^T df/dy
dg/dt   = -a^T df/dtheta      (parameters: variables and args)
```

from each output time to the previous one, backwards, with `y` reset to the
stored forward state and the incoming gradient added to `a` at every output
time. Nothing grows with the number of steps. The gradient is that of the
exact ODE solution up to the solver tolerances, not of the discrete map.

With `seminorm=True`, the parameter adjoints `g` are left out of the backward
step-size control (Kidger, Chen & Lyons 2021): they never feed back into the
dynamics, so their error need not restrict the step.
"""

import dataclasses

import tensorflow as tf

from tfnode import solvers
from tfnode.adjoints.base import CustomGradientMethod
from tfnode.adjoints.base import add
from tfnode.adjoints.base import at
from tfnode.adjoints.base import vjp
from tfnode.stepping import sequential_while_loop
from tfnode.stepping import unrolled_step_count
from tfnode.validation import positive_float
from tfnode.validation import positive_int

__all__ = ["Continuous"]


@dataclasses.dataclass(frozen=True)
class Continuous(CustomGradientMethod):
    """The continuous adjoint, solved backwards with any solver.

    Args:
        solver: Solver of the backward solve, a name or solver object
            (default: the forward's). Shorthand: `adjoint_solver=`.
        rtol, atol: Its tolerances (default: the forward's). Shorthand:
            `adjoint_rtol=`, `adjoint_atol=`.
        steps: Its fixed steps per interval (default: the forward's grid).
            Shorthand: `adjoint_steps=`.
        seminorm: Measure the backward error on the state and state adjoint
            only (default `False`: on the whole augmented state).

    #### References

    [1]: Chen, Rubanova, Bettencourt, Duvenaud. Neural Ordinary Differential
         Equations. NeurIPS, 2018.
    [2]: Kidger, Chen, Lyons. "Hey, that's not an ODE": Faster ODE Adjoints
         via Seminorms. ICML, 2021.
    """

    solver: object = None
    rtol: float | None = None
    atol: float | None = None
    steps: int | None = None
    seminorm: bool = False

    name = "continuous"
    shorthand = {
        "adjoint_solver": "solver",
        "adjoint_rtol": "rtol",
        "adjoint_atol": "atol",
        "adjoint_steps": "steps",
        "seminorm": "seminorm",
    }

    def __post_init__(self):
        if self.solver is not None and not isinstance(
            self.solver, solvers.Solver
        ):
            if self.solver not in solvers.names():
                raise ValueError(
                    f"Unknown solver adjoint_solver={self.solver!r}; choose "
                    f"one of: {', '.join(solvers.names())}."
                )
        for field in ("rtol", "atol"):
            value = getattr(self, field)
            if value is not None:
                checked = positive_float(f"adjoint_{field}", value)
                object.__setattr__(self, field, checked)
        if self.steps is not None:
            steps = positive_int("adjoint_steps", self.steps)
            object.__setattr__(self, "steps", steps)
        if not isinstance(self.seminorm, bool):
            raise TypeError(
                f"seminorm must be True or False; got {self.seminorm!r}."
            )

    def _serialize_option(self, value):
        if isinstance(value, solvers.Solver):
            return solvers.serialize(value)
        return value

    def validate(self, settings):
        self.backward_settings(settings)

    def grids_under_xla(self, settings):
        return [self.backward_settings(settings)]

    def backward_settings(self, settings):
        """The `SolveSettings` of the backward solve (plain autodiff-free
        `backprop` settings: it runs inside the custom gradient)."""
        backward = (
            settings.solver if self.solver is None else solvers.get(self.solver)
        )
        if self.steps is not None:
            grid = {"steps": self.steps, "step_size": None}
        else:
            grid = {"steps": settings.steps, "step_size": settings.step_size}
        fixed = grid["steps"] is not None or grid["step_size"] is not None
        if not fixed and not backward.adaptive:
            raise ValueError(
                f"adjoint_solver={backward.name!r} is fixed-step and the "
                "forward solve is adaptive: pass adjoint_steps= too."
            )
        if fixed and not backward.supports_fixed_grid:
            raise ValueError(
                f"adjoint_solver={backward.name!r} is adaptive only; the "
                "forward grid is fixed. Pick a tfnode Runge-Kutta solver."
            )
        tolerances = self._backward_tolerances(settings, fixed)
        if self.seminorm:
            self._check_seminorm(backward, fixed)
        return dataclasses.replace(
            settings,
            solver=backward,
            adjoint="backprop",
            # Each backward solve has two times: nothing to interpolate.
            interpolate=True,
            **grid,
            **tolerances,
        )

    def _backward_tolerances(self, settings, fixed):
        if fixed:
            given = [
                f"adjoint_{k}=" for k in ("rtol", "atol") if getattr(self, k)
            ]
            if given:
                raise ValueError(
                    f"{' and '.join(given)} set the tolerances of an adaptive "
                    "backward solve; the backward solve here is on a fixed "
                    "grid. Drop them, or use an adaptive adjoint_solver "
                    "without adjoint_steps=."
                )
            return {"rtol": None, "atol": None}
        return {
            "rtol": self.rtol or settings.rtol,
            "atol": self.atol or settings.atol,
        }

    def _check_seminorm(self, backward, fixed):
        if fixed:
            raise ValueError(
                "seminorm=True changes adaptive step-size control; the "
                "backward solve here is on a fixed grid. Use an adaptive "
                "solver, or seminorm=False."
            )
        if not backward.uses_tfnode_norm:
            adaptive = [
                n
                for n in solvers.names(aliases=False)
                if solvers.get(n).adaptive and solvers.get(n).uses_tfnode_norm
            ]
            raise ValueError(
                f"seminorm=True needs a tfnode error norm; "
                f"adjoint_solver={backward.name!r} uses its own. Pick one of "
                f"{', '.join(map(repr, adaptive))}."
            )

    def backward(self, problem, saved, ys, grad_ys, y0, args, variables):
        del saved
        n_y, n_args = len(y0), len(args)
        settings = self.backward_settings(problem.settings)
        if self.seminorm:
            settings = dataclasses.replace(
                settings, norm=_seminorm(settings.norm, n_y)
            )
        solver = settings.solver
        field = problem.field
        params = list(variables)

        def augmented(t, state):
            y, cotangent = state[:n_y], state[n_y : 2 * n_y]
            dy, (vjp_y, vjp_args, vjp_vars) = vjp(
                lambda y, a: field(a)(t, y), [y, args], params, cotangent
            )
            return (
                list(dy)
                + [-g for g in vjp_y]
                + [-g for g in vjp_args]
                + [-tf.cast(g, t.dtype) for g in vjp_vars]
            )

        def body(i, cotangent, grad_args, grad_vars, nfe):
            cotangent = add(cotangent, at(grad_ys, i))
            state = at(ys, i) + cotangent + grad_args + grad_vars
            times = _interval_times(problem.t, i)
            out, stats, _ = solver.integrate(
                augmented, state, times, settings, sequential=True
            )
            state = [s[-1] for s in out]
            cotangent = state[n_y : 2 * n_y]
            grad_args = state[2 * n_y : 2 * n_y + n_args]
            grad_vars = state[2 * n_y + n_args :]
            return i - 1, cotangent, grad_args, grad_vars, nfe + stats[0]

        state = (
            tf.shape(problem.t)[0] - 1,
            [tf.zeros_like(y) for y in y0],
            [tf.zeros_like(a) for a in args],
            [tf.zeros_like(v, dtype=problem.t.dtype) for v in params],
            tf.constant(0, tf.int32),
        )
        if unrolled_step_count(problem.t, settings) is None:
            state = sequential_while_loop(lambda i, *_: i > 0, body, state)
        else:
            # Under XLA on a short static grid: the intervals unrolled, and
            # (with static times) the steps inside each.
            for i in range(problem.t.shape[0] - 1, 0, -1):
                state = body(i, *state[1:])
        _, cotangent, grad_args, grad_vars, nfe = state
        cotangent = add(cotangent, at(grad_ys, 0))
        grad_vars = [
            tf.cast(g, v.dtype) for g, v in zip(grad_vars, params, strict=True)
        ]
        return cotangent, grad_args, grad_vars, nfe


def _interval_times(t, i):
    """`[t[i], t[i - 1]]`, constant when `t` and `i` are static (so that a
    fixed grid over them counts its steps when traced)."""
    static = tf.get_static_value(t)
    if static is not None and isinstance(i, int):
        return tf.constant(static[[i, i - 1]], t.dtype)
    return tf.stack([t[i], t[i - 1]])


def _seminorm(norm, n_y):
    """`max(norm(state), norm(state adjoint))`: the parameter adjoints get
    zero weight (Kidger et al. 2021, Sec. 3)."""

    def seminorm(scaled_errors):
        return tf.maximum(
            norm(scaled_errors[:n_y]), norm(scaled_errors[n_y : 2 * n_y])
        )

    return seminorm
