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

import tensorflow as tf

from tfnode import solvers
from tfnode.adjoints.base import CustomGradientMethod
from tfnode.adjoints.base import add
from tfnode.adjoints.base import at
from tfnode.adjoints.base import vjp
from tfnode.norms import rms_norm
from tfnode.stepping import sequential_while_loop
from tfnode.validation import positive_float
from tfnode.validation import positive_int

__all__ = ["Continuous"]


class Continuous(CustomGradientMethod):
    """The continuous adjoint, solved backwards with any solver.

    Options:
        adjoint_solver: Solver of the backward solve (default: the forward's).
        adjoint_rtol, adjoint_atol: Its tolerances (default: the forward's).
        adjoint_steps: Its fixed steps per interval (default: the forward's
            grid).
        seminorm: Measure the backward error on the state and state adjoint
            only (default `False`: on the whole augmented state).

    #### References

    [1]: Chen, Rubanova, Bettencourt, Duvenaud. Neural Ordinary Differential
         Equations. NeurIPS, 2018.
    [2]: Kidger, Chen, Lyons. "Hey, that's not an ODE": Faster ODE Adjoints
         via Seminorms. ICML, 2021.
    """

    name = "continuous"
    option_names = (
        "adjoint_solver",
        "adjoint_rtol",
        "adjoint_atol",
        "adjoint_steps",
        "seminorm",
    )

    def validate(self, solver, options, adjoint_options):
        super().validate(solver, options, adjoint_options)
        self._backward_setup(solver, options, adjoint_options)

    def _backward_setup(self, solver, options, adjoint_options):
        """The backward solver and its `IntegrationOptions`."""
        name = adjoint_options["adjoint_solver"]
        backward = solver if name is None else solvers.get(name)
        changes = {}
        for key in ("adjoint_rtol", "adjoint_atol"):
            value = adjoint_options[key]
            if value is not None:
                changes[key[len("adjoint_") :]] = positive_float(key, value)
        steps = adjoint_options["adjoint_steps"]
        if steps is not None:
            steps = positive_int("adjoint_steps", steps)
            changes.update(steps=steps, step_size=None)
        backward_options = options.replace(**changes)
        if not backward_options.fixed_grid and not backward.adaptive:
            raise ValueError(
                f"adjoint_solver={backward.name!r} is fixed-step and the "
                "forward solve is adaptive: pass adjoint_steps= too."
            )
        if backward_options.fixed_grid and backward.tableau is None:
            raise ValueError(
                f"adjoint_solver={backward.name!r} is adaptive only; the "
                "forward grid is fixed. Pick a tfnode Runge-Kutta solver."
            )
        if adjoint_options["seminorm"]:
            if backward_options.fixed_grid:
                raise ValueError(
                    "seminorm=True changes adaptive step-size control; the "
                    "backward solve here is on a fixed grid. Use an "
                    "adaptive solver, or seminorm=False."
                )
            if backward.tableau is None:
                raise ValueError(
                    f"seminorm=True needs a tfnode error norm; "
                    f"adjoint_solver={backward.name!r} uses its own. Pick "
                    "'dopri5', 'tsit5', 'bosh3' or 'fehlberg2'."
                )
        return backward, backward_options

    def backward(self, problem, saved, ys, grad_ys, y0, args, variables):
        del saved
        solver, options = self._backward_setup(
            problem.solver, problem.options, problem.adjoint_options
        )
        n_y, n_args = len(y0), len(args)
        field = problem.field
        params = list(variables)
        if problem.adjoint_options["seminorm"]:
            options = options.replace(norm=_seminorm(options.norm, n_y))

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
            times = tf.stack([problem.t[i], problem.t[i - 1]])
            out, stats, _ = solver.integrate(
                augmented, state, times, options, sequential=True
            )
            state = [s[-1] for s in out]
            cotangent = state[n_y : 2 * n_y]
            grad_args = state[2 * n_y : 2 * n_y + n_args]
            grad_vars = state[2 * n_y + n_args :]
            return i - 1, cotangent, grad_args, grad_vars, nfe + stats[0]

        num_times = tf.shape(problem.t)[0]
        _, cotangent, grad_args, grad_vars, nfe = sequential_while_loop(
            lambda i, *_: i > 0,
            body,
            (
                num_times - 1,
                [tf.zeros_like(y) for y in y0],
                [tf.zeros_like(a) for a in args],
                [tf.zeros_like(v, dtype=problem.t.dtype) for v in params],
                tf.constant(0, tf.int32),
            ),
        )
        cotangent = add(cotangent, at(grad_ys, 0))
        grad_vars = [
            tf.cast(g, v.dtype) for g, v in zip(grad_vars, params, strict=True)
        ]
        return cotangent, grad_args, grad_vars, nfe


def _seminorm(norm, n_y):
    """`max(norm(state), norm(state adjoint))`: the parameter adjoints get
    zero weight (Kidger et al. 2021, Sec. 3)."""
    norm = norm or rms_norm

    def seminorm(scaled_errors):
        return tf.maximum(
            norm(scaled_errors[:n_y]), norm(scaled_errors[n_y : 2 * n_y])
        )

    return seminorm
