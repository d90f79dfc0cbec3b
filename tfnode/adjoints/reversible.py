"""`adjoint="reversible"`: backpropagation through reconstructed states.

Sander, Ablin & Peyre (2022): keep only the final state; rebuild each earlier
state by the solver's reverse step (`tfnode.solvers.reverse_steps`) and take
the forward step's VJP there.

Memory does not grow with the number of steps. Each reconstruction is off
by O(h^2) (Euler) or O(h^3) (Heun), so the gradient is off by O(h) or O(h^2)
for a field Lipschitz in `y` and smooth in `t`.
"""

import dataclasses

import tensorflow as tf

from tfnode import solvers
from tfnode.adjoints.base import CustomGradientMethod
from tfnode.adjoints.base import add
from tfnode.adjoints.base import at
from tfnode.adjoints.base import step_vjp
from tfnode.stepping import fixed_grid
from tfnode.stepping import grid_step
from tfnode.stepping import sequential_while_loop

__all__ = ["Reversible"]

@dataclasses.dataclass(frozen=True)
class Reversible(CustomGradientMethod):
    """Reverse-step reconstruction for reversible solvers (`euler`, `heun`).

    #### References

    [1]: Sander, Ablin, Peyre. Do Residual Neural Networks discretize Neural
         Ordinary Differential Equations? NeurIPS, 2022.
    """

    name = "reversible"

    def validate(self, settings):
        if not settings.solver.reversible:
            reversible = [
                n for n in solvers.names(aliases=False)
                if solvers.get(n).reversible
            ]
            raise ValueError(
                f"adjoint='reversible' reconstructs states by reversed "
                f"steps of {' or '.join(reversible)}; got "
                f"solver={settings.solver.name!r}. Use solver="
                f"{' or '.join(map(repr, reversible))}, or another gradient "
                "method."
            )
        if not settings.fixed_grid:
            raise ValueError(
                "adjoint='reversible' needs a fixed grid: pass steps= or "
                "step_size=."
            )

    def backward(self, problem, saved, ys, grad_ys, y0, args, variables):
        del saved
        field = problem.field(args)
        t = problem.t

        def interval(i, cotangent, grad_args, grad_vars, nfe):
            t_a, t_b = t[i - 1], t[i]
            n_steps, h_nominal = fixed_grid(t_a, t_b, problem.settings)
            cotangent = add(cotangent, at(grad_ys, i))

            def step(n, y1, cotangent, grad_args, grad_vars, nfe):
                t_n, h = grid_step(t_a, t_b, n, n_steps, h_nominal)
                y_n, evals = problem.solver.reverse_step(field, t_n, h, y1)
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
