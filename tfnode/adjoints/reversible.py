"""`adjoint="reversible"`: backpropagation through reconstructed states.

Sander, Ablin & Peyre (2022): keep only the final state; rebuild each earlier
state by a step backwards in time and take the forward step's VJP there.

```none
euler:  y_n = y_{n+1} - h f(t_n, y_{n+1})
heun:   k1 = f(t_{n+1}, y_{n+1});  k2 = f(t_n, y_{n+1} - h k1)
        y_n = y_{n+1} - h (k1 + k2) / 2
```

Memory does not grow with the number of steps. Each reconstruction is off
by O(h^2) (Euler) or O(h^3) (Heun), so the gradient is off by O(h) or O(h^2)
for a field Lipschitz in `y` and smooth in `t`.
"""

import tensorflow as tf

from tfnode.adjoints.base import CustomGradientMethod
from tfnode.adjoints.base import add
from tfnode.adjoints.base import at
from tfnode.adjoints.base import step_vjp
from tfnode.stepping import fixed_grid
from tfnode.stepping import grid_step
from tfnode.stepping import sequential_while_loop

__all__ = ["Reversible"]

_REVERSE_STEPS = ("euler", "heun")


class Reversible(CustomGradientMethod):
    """Reverse-step reconstruction for the `euler` and `heun` solvers.

    #### References

    [1]: Sander, Ablin, Peyre. Do Residual Neural Networks discretize Neural
         Ordinary Differential Equations? NeurIPS, 2022.
    """

    name = "reversible"

    def validate(self, solver, options, adjoint_options):
        super().validate(solver, options, adjoint_options)
        if solver.name not in _REVERSE_STEPS:
            raise ValueError(
                f"adjoint='reversible' reconstructs states by reversed "
                f"steps of {' or '.join(_REVERSE_STEPS)}; got "
                f"solver={solver.name!r}. Use solver='euler' or 'heun', or "
                "another gradient method."
            )
        if not options.fixed_grid:
            raise ValueError(
                "adjoint='reversible' needs a fixed grid: pass steps= or "
                "step_size=."
            )

    def backward(self, problem, saved, ys, grad_ys, y0, args, variables):
        del saved
        field = problem.field(args)
        heun = problem.solver.name == "heun"
        t = problem.t

        def reconstruct(t_n, h, y1):
            k1 = field(t_n + h if heun else t_n, y1)
            if not heun:
                return [y - h * k for y, k in zip(y1, k1, strict=True)], 1
            guess = [y - h * k for y, k in zip(y1, k1, strict=True)]
            k2 = field(t_n, guess)
            return [
                y - 0.5 * h * (a + b)
                for y, a, b in zip(y1, k1, k2, strict=True)
            ], 2

        def interval(i, cotangent, grad_args, grad_vars, nfe):
            t_a, t_b = t[i - 1], t[i]
            n_steps, h_nominal = fixed_grid(t_a, t_b, problem.options)
            cotangent = add(cotangent, at(grad_ys, i))

            def step(n, y1, cotangent, grad_args, grad_vars, nfe):
                t_n, h = grid_step(t_a, t_b, n, n_steps, h_nominal)
                y_n, evals = reconstruct(t_n, h, y1)
                y_n = [tf.stop_gradient(y) for y in y_n]
                cotangent, d_args, d_vars, more = step_vjp(
                    problem, t_n, h, y_n, args, variables, cotangent
                )
                return (
                    n - 1,
                    y_n,
                    cotangent,
                    add(grad_args, d_args),
                    add(grad_vars, d_vars),
                    nfe + evals + more,
                )

            _, _, cotangent, grad_args, grad_vars, nfe = sequential_while_loop(
                lambda n, *_: n >= 0,
                step,
                (
                    tf.convert_to_tensor(n_steps - 1),
                    at(ys, i),
                    cotangent,
                    grad_args,
                    grad_vars,
                    nfe,
                ),
            )
            return i - 1, cotangent, grad_args, grad_vars, nfe

        _, cotangent, grad_args, grad_vars, nfe = sequential_while_loop(
            lambda i, *_: i > 0,
            interval,
            (
                tf.shape(t)[0] - 1,
                [tf.zeros_like(y) for y in y0],
                [tf.zeros_like(a) for a in args],
                [tf.zeros_like(v) for v in variables],
                tf.constant(0, tf.int32),
            ),
        )
        return add(cotangent, at(grad_ys, 0)), grad_args, grad_vars, nfe
