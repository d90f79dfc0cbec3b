"""The reference networks, looked up by name (`train.py --network NAME`).

| name | paper | default dataset |
|---|---|---|
| `anode_resnet` | ANODE (Gholami et al. 2019) | cifar10 |
| `anode_sqnxt` | ANODE (Gholami et al. 2019) | cifar10 |
| `simple_odenet` | ResNet After All? (Ott et al. 2021) | concentric_sphere2 |
| `linear_odenet` | ResNet After All? (Ott et al. 2021) | concentric_sphere2 |
| `odenet` | ResNet After All? (Ott et al. 2021) | cifar10 |
| `mnist_odenet` | A Simple Introduction to Neural ODEs | mnist |
| `tiny_resnet` | Sander et al. 2022 | cifar10 |

Every builder is called as `build(input_shape=None, num_classes=None, *,
<its own arguments>, settings=None, **solve)` and returns a `keras.Model`
from channels-last float32 inputs to logits. Unset shapes and class counts
are the default dataset's. The network's own arguments (`channels`,
`activation`, `depth`, `method`, `planes`) come next; `settings` (a
`tfnode.SolveSettings`) and the keyword shorthand of `tfnode.ODEBlock`
(`solver=`, `steps=`, `tol=`, `adjoint=`, `checkpoints=`, `track_nfe=`...)
set the solve of every ODE block over the paper's default (the rule is in
`tfnode.models.solve_settings`; `settings_for` gives the result without
building the network).

```python
model = tfnode.models.get("tiny_resnet")(depth=16, method="heun",
                                         adjoint="reversible")
model = tfnode.models.anode_sqnxt(
    settings=tfnode.SolveSettings(solver="rk4", steps=4, adjoint="anode"))
```
"""

import inspect

from tfnode import datasets
from tfnode.models import anode
from tfnode.models import blog
from tfnode.models import resnet_after_all
from tfnode.models import sander
from tfnode.models.anode import anode_resnet
from tfnode.models.anode import anode_sqnxt
from tfnode.models.blog import mnist_odenet
from tfnode.models.resnet_after_all import linear_odenet
from tfnode.models.resnet_after_all import odenet
from tfnode.models.resnet_after_all import simple_odenet
from tfnode.models.sander import tiny_resnet
from tfnode.models.solve_settings import network_settings
from tfnode.registry import Registry

__all__ = [
    "DEFAULT_DATASETS",
    "PAPER_SETTINGS",
    "REGISTRY",
    "anode_resnet",
    "anode_sqnxt",
    "default_dataset",
    "get",
    "linear_odenet",
    "mnist_odenet",
    "names",
    "odenet",
    "paper_settings",
    "settings_for",
    "simple_odenet",
    "tiny_resnet",
]

REGISTRY = Registry("network", "network")

# network name -> the dataset it is trained on by default
DEFAULT_DATASETS = {}
# network name -> its paper's default solve (a value, or a function of the
# builder's own arguments)
PAPER_SETTINGS = {}

for _build, _dataset, _paper in (
    (anode_resnet, "cifar10", anode.PAPER_SETTINGS),
    (anode_sqnxt, "cifar10", anode.PAPER_SETTINGS),
    (simple_odenet, "concentric_sphere2", resnet_after_all.PAPER_SETTINGS),
    (linear_odenet, "concentric_sphere2", resnet_after_all.PAPER_SETTINGS),
    (odenet, "cifar10", resnet_after_all.PAPER_SETTINGS),
    (mnist_odenet, "mnist", blog.PAPER_SETTINGS),
    (tiny_resnet, "cifar10", sander.paper_settings),
):
    REGISTRY.register(_build.__name__, _build)
    DEFAULT_DATASETS[_build.__name__] = _dataset
    PAPER_SETTINGS[_build.__name__] = _paper
    datasets.get(_dataset)  # a registered dataset

get = REGISTRY.get
names = REGISTRY.names


def default_dataset(network):
    """The dataset `network` (a name) is trained on by default.

    Raises:
        ValueError: listing the networks, for an unknown name.
    """
    return DEFAULT_DATASETS[REGISTRY.canonical_name(network)]


def paper_settings(network, **network_kwargs):
    """The paper's default solve of `network` (a name): a `SolveSettings`,
    or a tuple of them (see `tfnode.models.solve_settings`).

    Args:
        network: A network name.
        **network_kwargs: The builder's own arguments; those the default
            depends on (`tiny_resnet`'s `depth` and `method`) are used,
            `None` meaning the builder's default.
    """
    paper = PAPER_SETTINGS[REGISTRY.canonical_name(network)]
    if not callable(paper):
        return paper
    takes = inspect.signature(paper).parameters
    return paper(
        **{
            k: v
            for k, v in network_kwargs.items()
            if k in takes and v is not None
        }
    )


def settings_for(network, settings=None, network_kwargs=None, **solve):
    """The `SolveSettings` that `get(network)(**network_kwargs,
    settings=settings, **solve)` gives its ODE blocks, without building
    the network (`train.py`'s flags use it).

    Raises:
        ValueError, TypeError: for a bad setting, naming it.
    """
    paper = paper_settings(network, **(network_kwargs or {}))
    return network_settings(paper, settings, **solve)
