"""Gradient methods, looked up by name (`odeint(..., adjoint=NAME)`)."""

from tfnode.adjoints.backprop import Backprop
from tfnode.adjoints.base import GradientMethod
from tfnode.registry import Registry

__all__ = ["Backprop", "GradientMethod", "REGISTRY", "get", "names"]

REGISTRY = Registry("gradient method", "adjoint")
for _method in (Backprop(),):
    REGISTRY.register(_method.name, _method)

get = REGISTRY.get
names = REGISTRY.names
