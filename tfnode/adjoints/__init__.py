"""Gradient methods, looked up by name or passed configured.

`odeint(..., adjoint="anode", checkpoints=4)` and
`odeint(..., adjoint=tfnode.adjoints.Anode(checkpoints=4))` are the same.
"""

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
    "deserialize",
    "get",
    "names",
    "option_names",
]

REGISTRY = Registry("gradient method", "adjoint")
for _method in (Backprop(), Anode(), Continuous(), Reversible()):
    REGISTRY.register(_method.name, _method)

get = REGISTRY.get
names = REGISTRY.names


def option_names():
    """Every gradient method's flat `odeint` options, sorted."""
    return sorted(
        {key for name in names() for key in get(name).shorthand}
    )


def deserialize(config):
    """The configured gradient method that `method.get_config()` gave."""
    config = dict(config)
    method = get(config.pop("name"))
    return type(method)(**config)
