"""Functional-API layers with PyTorch's padding and default initializers.

The reference networks are PyTorch models; these helpers give their Keras
ports the same arithmetic: explicit zero padding (Keras' `"same"` pads
stride-2 convolutions asymmetrically, PyTorch symmetrically) and, unless
told otherwise, PyTorch's default `U(+-1/sqrt(fan_in))` weights and biases.
"""

import math

import keras

from tfnode.layers.vector_fields import torch_default_bias
from tfnode.layers.vector_fields import torch_default_kernel

__all__ = ["conv2d", "dense"]


def conv2d(
    x,
    filters,
    kernel_size,
    *,
    name,
    strides=1,
    padding=0,
    use_bias=True,
    kernel_initializer=None,
    bias_initializer=None,
):
    """`torch.nn.Conv2d(in, filters, kernel_size, strides, padding, bias)`
    applied to the channels-last `x`.

    Args:
        x: Input tensor `(batch, height, width, channels)`.
        filters: Output channels.
        kernel_size: Int or `(height, width)`.
        name: Layer name.
        strides: Int or `(height, width)`. Default value: `1`.
        padding: Zeros added on both sides: int or `(height, width)`.
            Default value: `0`.
        use_bias: Whether the convolution has a bias. Default: `True`.
        kernel_initializer: PyTorch's default when unset.
        bias_initializer: PyTorch's default when unset.

    Returns:
        The output tensor.
    """
    kh, kw = (
        (kernel_size, kernel_size)
        if isinstance(kernel_size, int)
        else kernel_size
    )
    fan_in = kh * kw * x.shape[-1]
    if padding:
        x = keras.layers.ZeroPadding2D(padding, name=f"{name}_pad")(x)
    return keras.layers.Conv2D(
        filters,
        (kh, kw),
        strides=strides,
        padding="valid",
        use_bias=use_bias,
        kernel_initializer=kernel_initializer or torch_default_kernel(),
        bias_initializer=bias_initializer or torch_default_bias(fan_in),
        name=name,
    )(x)


def dense(x, units, *, name, kernel_initializer=None, bias_initializer=None):
    """`torch.nn.Linear(in, units)` applied to `x` of shape `(batch, in)`,
    PyTorch's default initializers unless told otherwise."""
    fan_in = math.prod(x.shape[1:])
    return keras.layers.Dense(
        units,
        kernel_initializer=kernel_initializer or torch_default_kernel(),
        bias_initializer=bias_initializer or torch_default_bias(fan_in),
        name=name,
    )(x)
