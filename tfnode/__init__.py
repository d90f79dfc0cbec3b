"""tfnode: Neural ODEs for Keras 3 / TensorFlow 2 with exact gradients."""

# First, before TensorFlow loads: asks for its oneDNN CPU kernels.
from tfnode import _onednn  # noqa: F401
from tfnode import adjoints
from tfnode import datasets
from tfnode import models
from tfnode import norms
from tfnode import robustness
from tfnode import solvers
from tfnode.dense import DenseSolution
from tfnode.dense import solve_dense
from tfnode.diagnostics import NFECounter
from tfnode.events import odeint_event
from tfnode.layers import ODEBlock
from tfnode.layers import ode_blocks
from tfnode.layers import set_solver
from tfnode.odeint import odeint
from tfnode.settings import SolveSettings
from tfnode.stepping import SolveStats
from tfnode.stepping import Status

__version__ = "0.2.0"

__all__ = [
    "DenseSolution",
    "NFECounter",
    "ODEBlock",
    "SolveSettings",
    "SolveStats",
    "Status",
    "adjoints",
    "datasets",
    "models",
    "norms",
    "ode_blocks",
    "odeint",
    "odeint_event",
    "robustness",
    "set_solver",
    "solve_dense",
    "solvers",
]
