"""The stepping loops of every Runge-Kutta solve.

| module | owns |
|---|---|
| `integrate.py` | `integrate`: the loop over output times, start and status |
| `grid.py` | fixed grids and the fixed-grid loop |
| `adaptive.py` | the adaptive loop |
| `controllers.py` | error measure, first step, step-size controller |
| `observers.py` | what a free sweep does on each step: dense outputs |
| `xla.py` | whether the graph being built is compiled by XLA (in a loop) |
| `records.py` | `Status`, `SolveStats`, the recorded `Trajectory` |
"""

from tfnode.stepping.adaptive import sequential_while_loop
from tfnode.stepping.controllers import IntegralController
from tfnode.stepping.controllers import initial_step_size
from tfnode.stepping.grid import fixed_grid
from tfnode.stepping.grid import grid_step
from tfnode.stepping.grid import num_fixed_steps
from tfnode.stepping.grid import unrolled_step_count
from tfnode.stepping.integrate import integrate
from tfnode.stepping.integrate import interpolates
from tfnode.stepping.integrate import stats_of
from tfnode.stepping.integrate import sweep
from tfnode.stepping.records import SolveStats
from tfnode.stepping.records import Status
from tfnode.stepping.records import Trajectory
from tfnode.stepping.xla import in_xla_context
from tfnode.stepping.xla import in_xla_loop_context

__all__ = [
    "IntegralController",
    "SolveStats",
    "Status",
    "Trajectory",
    "fixed_grid",
    "grid_step",
    "in_xla_context",
    "in_xla_loop_context",
    "initial_step_size",
    "integrate",
    "interpolates",
    "num_fixed_steps",
    "sequential_while_loop",
    "stats_of",
    "sweep",
    "unrolled_step_count",
]
