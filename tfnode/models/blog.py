"""The MNIST ODENet of 'A Simple Introduction to Neural ODEs'.

```none
input (28, 28, 1)
conv3x3 valid, 1 -> 6 (bias); GroupNorm(6 groups); ReLU     (26, 26, 6)
ODEBlock(GroupNormConvField), dopri5, rtol = atol = 0.1     (26, 26, 6)
avg_pool 2; flatten; Linear(6 * 13 * 13 -> classes)
```

The ODE function applies ONE GroupNorm twice (its parameters counted once):
10,564 trainable parameters in all. Initializers are PyTorch's defaults.
The post reports 98.62% MNIST test accuracy after 10 epochs of SGD
(lr 0.001, momentum 0.9, batch 16) on inputs normalised to [-1, 1].

#### References

[1]: A Simple Introduction to Neural ODEs (blog post), with torchdiffeq's
     `odeint_adjoint`.
[2]: Chen, Rubanova, Bettencourt, Duvenaud. Neural Ordinary Differential
     Equations. NeurIPS, 2018.
"""

import keras

from tfnode.layers import ODEBlock
from tfnode.layers.group_norm import GroupNormalization
from tfnode.layers.vector_fields import GroupNormConvField
from tfnode.models import inputs
from tfnode.models.solve_settings import BLOG
from tfnode.models.solve_settings import block_arguments
from tfnode.models.torch_layers import conv2d
from tfnode.models.torch_layers import dense
from tfnode.validation import positive_int

__all__ = ["PAPER_SETTINGS", "mnist_odenet"]

PAPER_SETTINGS = BLOG


def mnist_odenet(
    input_shape=None, num_classes=None, *, channels=6, settings=None, **solve
):
    """The blog's MNIST ODENet (10,564 parameters).

    Args:
        input_shape: Image shape; MNIST's `(28, 28, 1)` when unset.
        num_classes: Number of classes. Default value: `10`.
        channels: Channels of the stem and of the ODE state (`dim`).
            Default value: `6`.
        settings: The ODE block's `tfnode.SolveSettings`; the post's
            `dopri5` at `rtol = atol = 0.1` when unset (a fixed-step solver
            needs a grid: the post has none).
        **solve: Keyword shorthand over it (`solver=`, `tol=`, `adjoint=`,
            ...; see `tfnode.models.solve_settings`). The post uses
            torchdiffeq's continuous adjoint (`adjoint="continuous"`).

    Returns:
        A `keras.Model` from images to logits `(batch, num_classes)`.

    Raises:
        ValueError: for a bad setting, naming the argument.
    """
    channels = positive_int("channels", channels)
    block_kwargs = block_arguments("mnist_odenet", BLOG, settings, solve)
    input_shape, num_classes = inputs.resolve("mnist", input_shape, num_classes)
    images = keras.Input(input_shape, name="images")
    x = conv2d(images, channels, 3, name="conv1")
    x = GroupNormalization(groups=min(32, channels), epsilon=1e-5, name="gn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = ODEBlock(
        GroupNormConvField(name="odefunc"), name="odeblock", **block_kwargs
    )(x)
    x = keras.layers.AveragePooling2D(2, name="pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    logits = dense(x, num_classes, name="fc")
    return keras.Model(images, logits, name="mnist_odenet")
