"""tfnode: Neural ODEs for Keras 3 / TensorFlow 2 with exact gradients."""

from tfnode import adjoints
from tfnode import datasets
from tfnode import models
from tfnode import norms
from tfnode import robustness
from tfnode import solvers
from tfnode.diagnostics import NFECounter
from tfnode.layers import ODEBlock
from tfnode.layers import ode_blocks
from tfnode.layers import set_solver
from tfnode.odeint import odeint
from tfnode.settings import SolveSettings
from tfnode.stepping import SolveStats
from tfnode.stepping import Status

__version__ = "0.1.0"

__all__ = [
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
    "robustness",
    "set_solver",
    "solvers",
]
