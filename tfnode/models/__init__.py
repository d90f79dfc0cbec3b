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

Every builder is called as
`build(input_shape=None, num_classes=None, *, solver=None, steps=None,
step_size=None, rtol=None, atol=None, tol=None, adjoint="backprop",
**kwargs)` and returns a `keras.Model` from channels-last float32 inputs to
logits. Unset shapes and class counts are the default dataset's, unset solve
settings the paper's; the network's own keyword arguments (`channels`,
`activation`, `depth`, `method`, ...) come next, and any other `odeint`
option (`checkpoints`, `seminorm`, `max_num_steps`, ...) is passed to every
`tfnode.ODEBlock`.

```python
model = tfnode.models.get("tiny_resnet")(depth=16, method="heun",
                                         adjoint="reversible")
```
"""

from tfnode import datasets
from tfnode.models.anode import anode_resnet
from tfnode.models.anode import anode_sqnxt
from tfnode.models.blog import mnist_odenet
from tfnode.models.resnet_after_all import linear_odenet
from tfnode.models.resnet_after_all import odenet
from tfnode.models.resnet_after_all import simple_odenet
from tfnode.models.sander import tiny_resnet
from tfnode.registry import Registry

__all__ = [
    "DEFAULT_DATASETS",
    "REGISTRY",
    "anode_resnet",
    "anode_sqnxt",
    "default_dataset",
    "get",
    "linear_odenet",
    "mnist_odenet",
    "names",
    "odenet",
    "simple_odenet",
    "tiny_resnet",
]

REGISTRY = Registry("network", "network")

# network name -> the dataset it is trained on by default
DEFAULT_DATASETS = {}

for _build, _dataset in (
    (anode_resnet, "cifar10"),
    (anode_sqnxt, "cifar10"),
    (simple_odenet, "concentric_sphere2"),
    (linear_odenet, "concentric_sphere2"),
    (odenet, "cifar10"),
    (mnist_odenet, "mnist"),
    (tiny_resnet, "cifar10"),
):
    REGISTRY.register(_build.__name__, _build)
    DEFAULT_DATASETS[_build.__name__] = _dataset
    datasets.get(_dataset)  # a registered dataset

get = REGISTRY.get
names = REGISTRY.names


def default_dataset(network):
    """The dataset `network` (a name) is trained on by default.

    Raises:
        ValueError: listing the networks, for an unknown name.
    """
    return DEFAULT_DATASETS[REGISTRY.canonical_name(network)]
