"""Each paper's default solve, and how a network's ODE blocks get theirs.

A network builder takes `solver`, `steps`, `step_size`, `rtol`, `atol`,
`tol` and `adjoint` like `tfnode.ODEBlock`. Left unset, they follow the
paper; set, they replace it:

- `solver=None` is the paper's solver.
- When none of `steps`, `step_size`, `rtol`, `atol`, `tol` is given, a
  fixed-step solver gets the paper's grid and an adaptive one the paper's
  tolerances (or `odeint`'s defaults when the paper has none). Once any of
  them is given, only the given ones are used.
"""

import dataclasses

from tfnode import solvers
from tfnode.layers.ode_block import OPTION_NAMES

__all__ = ["ODE_OPTIONS", "PaperSolve", "ode_options"]

# Keyword arguments a builder passes on to every ODE block.
ODE_OPTIONS = (*OPTION_NAMES, "track_nfe")


@dataclasses.dataclass(frozen=True)
class PaperSolve:
    """A paper's default solve.

    Attributes:
        solver: The paper's solver name.
        grid: Grid of fixed-step solves, e.g. `{"steps": 2}`.
        tolerances: Tolerances of adaptive solves, e.g. `{"tol": 1e-8}`.
    """

    solver: str
    grid: dict = dataclasses.field(default_factory=dict)
    tolerances: dict = dataclasses.field(default_factory=dict)

    def block_settings(
        self,
        solver=None,
        steps=None,
        step_size=None,
        rtol=None,
        atol=None,
        tol=None,
        adjoint="backprop",
    ):
        """The `ODEBlock` keyword arguments for the user's settings."""
        solver = self.solver if solver is None else solver
        given = {
            key: value
            for key, value in (
                ("steps", steps),
                ("step_size", step_size),
                ("rtol", rtol),
                ("atol", atol),
                ("tol", tol),
            )
            if value is not None
        }
        if not given:
            adaptive = solvers.get(solver).adaptive
            given = dict(self.tolerances if adaptive else self.grid)
        return {"solver": solver, "adjoint": adjoint, **given}


def ode_options(network, options):
    """Checks a builder's extra keyword arguments: `odeint` options passed
    to every `ODEBlock` (`checkpoints`, `seminorm`, `max_num_steps`, ...).

    Args:
        network: The network's name, for error messages.
        options: The builder's `**options`.

    Returns:
        The options, a dict.

    Raises:
        ValueError: naming the unknown arguments and the allowed ones.
    """
    unknown = sorted(set(options) - set(ODE_OPTIONS))
    if unknown:
        raise ValueError(
            f"Unknown argument(s) {', '.join(unknown)} of network "
            f"{network!r}; besides its own, it takes the ODE options "
            f"{', '.join(ODE_OPTIONS)}."
        )
    return dict(options)
