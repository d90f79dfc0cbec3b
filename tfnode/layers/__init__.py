"""Keras layers of tfnode: `ODEBlock` and the papers' vector fields."""

from tfnode.layers import vector_fields
from tfnode.layers.ode_block import ODEBlock
from tfnode.layers.ode_block import ode_blocks
from tfnode.layers.ode_block import set_solver

__all__ = ["ODEBlock", "ode_blocks", "set_solver", "vector_fields"]
