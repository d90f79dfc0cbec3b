"""Keras layers of tfnode."""

from tfnode.layers.ode_block import ODEBlock
from tfnode.layers.ode_block import ode_blocks
from tfnode.layers.ode_block import set_solver

__all__ = ["ODEBlock", "ode_blocks", "set_solver"]
