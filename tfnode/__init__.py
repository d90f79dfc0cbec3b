"""tfnode: Neural ODEs for Keras 3 / TensorFlow 2 with exact gradients."""

from tfnode import adjoints
from tfnode import norms
from tfnode import solvers
from tfnode.odeint import odeint
from tfnode.stepping import SolveStats
from tfnode.stepping import Status

__version__ = "0.1.0"

__all__ = [
    "SolveStats",
    "Status",
    "adjoints",
    "norms",
    "odeint",
    "solvers",
]
