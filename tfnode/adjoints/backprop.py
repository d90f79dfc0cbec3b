"""`adjoint="backprop"`: automatic differentiation through the solver loop."""

import dataclasses

import tensorflow as tf

from tfnode.adjoints.base import GradientMethod

__all__ = ["Backprop"]


@dataclasses.dataclass(frozen=True)
class Backprop(GradientMethod):
    """Differentiates the discrete solve by autodiff through its loops.

    Exact for the discretised forward map (discretise-then-optimise), the
    truth the other methods are tested against. Memory grows with the number
    of steps: every stage of every step is kept for the backward pass. The
    backward pass differentiates each evaluation of `func` once, so its NFE
    equals the forward's.
    """

    name = "backprop"

    def grids_under_xla(self, settings):
        return [settings]

    def solve(self, problem):
        func = problem.field(problem.args)
        ys, stats, _ = problem.solver.integrate(
            func, problem.y0, problem.t, problem.settings
        )
        if not problem.solver.replayable:
            ys = _no_autodiff(problem.solver.name, ys)
        elif problem.nfe_counter is not None:
            ys = _record_backward_nfe(problem, stats.num_fn_evals, ys)
        return ys, stats


def _record_backward_nfe(problem, nfe, ys):
    """Identity on `ys` whose gradient records `nfe` backward evaluations."""

    @tf.custom_gradient
    def identity(*ys):
        def grad(*grad_ys):
            problem.record_backward_nfe(nfe)
            return list(grad_ys)

        return list(ys), grad

    return list(identity(*ys))


def _no_autodiff(solver_name, ys):
    @tf.custom_gradient
    def identity(*ys):
        def grad(*grad_ys):
            raise ValueError(
                f"solver={solver_name!r} runs a loop that tfnode cannot "
                "differentiate through; use adjoint='continuous' with it, or "
                "a tfnode solver such as 'dopri5' with adjoint='backprop'."
            )

        return list(ys), grad

    return list(identity(*ys))
