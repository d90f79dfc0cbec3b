"""What a solver is, and the capabilities it declares.

Gradient methods and settings ask a solver what it can do through these
attributes, never by its name or type:

- `adaptive`: has an error estimate for step-size control
  (`SolveSettings`).
- `supports_fixed_grid`: can run on `steps=` / `step_size=` grids
  (`SolveSettings`).
- `replayable`: exposes its steps, for autodiff through the loop and step
  replay (`backprop`, `anode`).
- `reversible`: has a reverse step rebuilding `y_n` from `y_{n+1}`
  (`reversible`).
- `uses_tfnode_norm`: measures its error with `SolveSettings.norm`
  (`continuous`'s seminorm).
- `dense_output`: has tfnode's continuous extension (`interpolate`,
  `dense_weights`), for `solve_dense` and `odeint_event`.
- `can_land_on_outputs`: can clamp its adaptive steps to end on every
  output time (`SolveSettings(interpolate=False)`); solvers that always
  interpolate their outputs cannot.
"""

import abc

__all__ = ["Solver"]


class Solver(abc.ABC):
    """Base of every solver object in `tfnode.solvers`."""

    name = None
    order = None
    error_order = None
    adaptive = False
    supports_fixed_grid = True
    replayable = True
    reversible = False
    uses_tfnode_norm = True
    can_land_on_outputs = True
    dense_output = False

    @abc.abstractmethod
    def integrate(self, func, y0, t, settings, **loop_settings):
        """Solves `dy/dt = func(t, y)` on flat states.

        Returns:
            `(ys, stats, trajectory)` as `tfnode.stepping.integrate` does.
        """

    def check_settings(self, settings):
        """Raises `ValueError` for settings this solver cannot honour (called
        when a `SolveSettings` is built); accepts everything by default."""
        del settings

    def reverse_step(self, func, t_n, h, y1):
        """Rebuilds `y_n` from `y_{n+1} = y1` (reversible solvers only).

        Returns:
            `(y_n, num_evals)`.
        """
        raise NotImplementedError(f"solver {self.name!r} is not reversible.")

    def __repr__(self):
        return f"<tfnode solver {self.name!r}>"
