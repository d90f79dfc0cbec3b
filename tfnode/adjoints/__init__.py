"""Gradient methods, looked up by name (`odeint(..., adjoint=NAME)`)."""

from tfnode.adjoints.anode import Anode
from tfnode.adjoints.backprop import Backprop
from tfnode.adjoints.base import GradientMethod
from tfnode.adjoints.continuous import Continuous
from tfnode.adjoints.reversible import Reversible
from tfnode.registry import Registry

__all__ = [
    "Anode",
    "Backprop",
    "Continuous",
    "GradientMethod",
    "REGISTRY",
    "Reversible",
    "get",
    "names",
]

REGISTRY = Registry("gradient method", "adjoint")
for _method in (Backprop(), Anode(), Continuous(), Reversible()):
    REGISTRY.register(_method.name, _method)

get = REGISTRY.get
names = REGISTRY.names
