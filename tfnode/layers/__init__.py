"""Keras layers of tfnode: `ODEBlock`, the papers' vector fields and a
fast `GroupNormalization`, and convolutions XLA compiles well in loops."""

from tfnode.layers import vector_fields
from tfnode.layers.conv import Conv1D
from tfnode.layers.conv import Conv2D
from tfnode.layers.group_norm import GroupNormalization
from tfnode.layers.ode_block import ODEBlock
from tfnode.layers.ode_block import ode_blocks
from tfnode.layers.ode_block import set_solver

__all__ = [
    "Conv1D",
    "Conv2D",
    "GroupNormalization",
    "ODEBlock",
    "ode_blocks",
    "set_solver",
    "vector_fields",
]
