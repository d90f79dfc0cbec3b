"""Sander et al.'s TinyResNet: a residual network solved as an ODE.

```none
input (32, 32, 3)
conv5x5 stride 3 pad 1, 3 -> planes, no bias; BN; ReLU        (10, 10, planes)
ODEBlock(DepthVaryingField(depth x TinyResidualField))        (10, 10, planes)
avg_pool 4; flatten; Linear(4 planes -> classes)
```

`method="euler"` solves with Euler, `depth` steps on `[0, 1]`: exactly
`x_{n+1} = x_n + f_n(x_n) / depth`. `method="heun"` solves with Heun,
`depth - 1` steps on `[0, (depth-1)/depth]`, step `1/depth`, each step using
`f_n` and `f_{n+1}`. Both train with `adjoint="backprop"` or, without storing
activations, `adjoint="reversible"` (the paper's adjoint method).

#### References

[1]: Sander, Ablin, Peyre. Do Residual Neural Networks discretize Neural
     Ordinary Differential Equations? NeurIPS, 2022.
"""

import keras

from tfnode.layers import ODEBlock
from tfnode.layers.vector_fields import DepthVaryingField
from tfnode.layers.vector_fields import TinyResidualField
from tfnode.layers.vector_fields import torch_batch_norm
from tfnode.models import inputs
from tfnode.models.solve_settings import block_arguments
from tfnode.models.solve_settings import sander
from tfnode.models.torch_layers import conv2d
from tfnode.models.torch_layers import dense
from tfnode.validation import choice
from tfnode.validation import positive_int

__all__ = ["METHODS", "paper_settings", "tiny_resnet"]

METHODS = ("euler", "heun")


def paper_settings(depth=8, method="euler"):
    """Sander et al.'s solve of `tiny_resnet(depth=, method=)`: `depth`
    Euler steps, or `depth - 1` Heun steps."""
    return sander(depth, method)


def tiny_resnet(
    input_shape=None,
    num_classes=None,
    *,
    depth=8,
    method="euler",
    planes=16,
    settings=None,
    **solve,
):
    """Sander et al.'s `iTinyResnet` on CIFAR-10, its residual stack one
    `ODEBlock`.

    Trainable parameters: `1,882 + 4,704 depth` at `planes=16` (39,514 at
    depth 8, 77,146 at depth 16), plus as many BatchNorm moving statistics
    as BatchNorm parameters (non-trainable).

    Args:
        input_shape: Image shape; CIFAR-10's `(32, 32, 3)` when unset.
        num_classes: Number of classes. Default value: `10`.
        depth: Number of residual functions `f_0, ..., f_{depth-1}`.
            Default value: `8`.
        method: `"euler"` (`depth` Euler steps on `[0, 1]`) or `"heun"`
            (`depth - 1` Heun steps on `[0, (depth-1)/depth]`).
            Default value: `"euler"`.
        planes: Channels of the residual stack. Default value: `16`.
        settings: The block's `tfnode.SolveSettings`; `paper_settings(depth,
            method)` when unset.
        **solve: Keyword shorthand over it (see
            `tfnode.models.solve_settings`): e.g. `adjoint="reversible"`,
            the paper's memory-free adjoint.

    Returns:
        A `keras.Model` from images to logits `(batch, num_classes)`.

    Raises:
        ValueError: for a `method` other than `"euler"` or `"heun"`, a
            `depth` below 1 (2 for Heun), or an unknown option.
    """
    choice("method", method, METHODS)
    depth = positive_int("depth", depth)
    if method == "heun" and depth < 2:
        raise ValueError(f"method='heun' needs depth >= 2; got depth={depth}.")
    planes = positive_int("planes", planes)
    block_kwargs = block_arguments(
        "tiny_resnet", paper_settings(depth, method), settings, solve
    )
    input_shape, num_classes = inputs.resolve(
        "cifar10", input_shape, num_classes
    )
    images = keras.Input(input_shape, name="images")
    x = conv2d(
        images, planes, 5, strides=3, padding=1, use_bias=False, name="conv1"
    )
    x = torch_batch_norm(name="bn1")(x)
    x = keras.layers.ReLU(name="relu1")(x)
    field = DepthVaryingField(
        [TinyResidualField(name=f"residual_{n}") for n in range(depth)],
        name="residual_functions",
    )
    x = ODEBlock(
        field,
        t1=1.0 if method == "euler" else (depth - 1) / depth,
        name="residual_stack",
        **block_kwargs,
    )(x)
    x = keras.layers.AveragePooling2D(4, name="avg_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    logits = dense(x, num_classes, name="linear")
    return keras.Model(images, logits, name="tiny_resnet")
