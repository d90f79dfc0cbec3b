"""ANODE's CIFAR-10 networks: ResNet18 and SqueezeNext with ODE blocks.

Each of the four stages is one ordinary (transition) block, which changes
width and resolution, followed by one `ODEBlock`, so each network holds four
ODE blocks. The default solve is ANODE's: Euler with `Nt = 2` steps on
`[0, 1]` (`solver="euler", steps=2`).

```none
anode_resnet  conv3x3 64, BN, ReLU
              [BasicBlock, ODEBlock(ResNetField)] x widths 64/128/256/512
              avg_pool 4, Linear 512 -> classes
anode_sqnxt   conv3x3 64 (bias), BN, ReLU
              [SqueezeNext block, ODEBlock(SqueezeNextField)]
                  x widths 32/64/128/256
              conv1x1 128 (bias), BN, ReLU, avg_pool 4, Linear 128 -> classes
```

Strides are 1/2/2/2. Initializers are the reference's: PyTorch defaults for
the bias-free ResNet convolutions and the linear layers, Xavier uniform
(gain sqrt(2)) with zero bias for every convolution with bias (`conv_init`).

#### References

[1]: Gholami, Keutzer, Biros. ANODE: Unconditionally Accurate
     Memory-Efficient Gradients for Neural ODEs. IJCAI, 2019.
[2]: He, Zhang, Ren, Sun. Deep Residual Learning for Image Recognition.
     CVPR, 2016.
[3]: Gholami, Kwon, Wu, Tai, Yue, Jin, Zhao, Keutzer. SqueezeNext:
     Hardware-Aware Neural Network Design. CVPR Workshops, 2018.
"""

import math

import keras

from tfnode.layers import ODEBlock
from tfnode.layers.vector_fields import ResNetField
from tfnode.layers.vector_fields import SqueezeNextField
from tfnode.layers.vector_fields import torch_batch_norm
from tfnode.layers.vector_fields import xavier_uniform
from tfnode.models import inputs
from tfnode.models.solve_settings import ANODE
from tfnode.models.solve_settings import block_arguments
from tfnode.models.torch_layers import conv2d
from tfnode.models.torch_layers import dense

__all__ = ["PAPER_SETTINGS", "anode_resnet", "anode_sqnxt"]

PAPER_SETTINGS = ANODE

_STRIDES = (1, 2, 2, 2)
_RESNET_WIDTHS = (64, 128, 256, 512)
_SQNXT_WIDTHS = (32, 64, 128, 256)


def _resnet_block(x, filters, stride, name):
    """ResNet's BasicBlock: conv-BN-ReLU-conv-BN plus a (projected)
    shortcut, then ReLU; bias-free convolutions."""
    main = conv2d(
        x,
        filters,
        3,
        strides=stride,
        padding=1,
        use_bias=False,
        name=f"{name}_conv1",
    )
    main = torch_batch_norm(name=f"{name}_bn1")(main)
    main = keras.layers.ReLU(name=f"{name}_relu1")(main)
    main = conv2d(
        main, filters, 3, padding=1, use_bias=False, name=f"{name}_conv2"
    )
    main = torch_batch_norm(name=f"{name}_bn2")(main)
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = conv2d(
            x,
            filters,
            1,
            strides=stride,
            use_bias=False,
            name=f"{name}_shortcut_conv",
        )
        shortcut = torch_batch_norm(name=f"{name}_shortcut_bn")(shortcut)
    x = keras.layers.Add(name=f"{name}_add")([main, shortcut])
    return keras.layers.ReLU(name=f"{name}_relu2")(x)


def _sqnxt_conv(x, filters, kernel_size, name, strides=1, padding=0):
    """Convolution with bias (Xavier, gain sqrt(2); bias 0), BN, ReLU."""
    x = conv2d(
        x,
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        kernel_initializer=xavier_uniform(math.sqrt(2.0)),
        bias_initializer="zeros",
        name=f"{name}_conv",
    )
    x = torch_batch_norm(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _sqnxt_block(x, filters, stride, name):
    """SqueezeNext's block: five convolutions squeezing `in` to `r in`,
    `r` = 1 at stride 2, 0.25 when narrowing, else 0.5, and a projected
    shortcut; `relu(main + relu(shortcut))`."""
    in_channels = x.shape[-1]
    if stride == 2:
        reduction = 1.0
    elif in_channels > filters:
        reduction = 0.25
    else:
        reduction = 0.5
    squeezed = int(in_channels * reduction)
    main = _sqnxt_conv(x, squeezed, 1, f"{name}_1", strides=stride)
    main = _sqnxt_conv(main, int(squeezed * 0.5), 1, f"{name}_2")
    main = _sqnxt_conv(main, squeezed, (1, 3), f"{name}_3", padding=(0, 1))
    main = _sqnxt_conv(main, squeezed, (3, 1), f"{name}_4", padding=(1, 0))
    main = _sqnxt_conv(main, filters, 1, f"{name}_5")
    if stride == 2 or in_channels != filters:
        shortcut = _sqnxt_conv(
            x, filters, 1, f"{name}_shortcut", strides=stride
        )
    else:
        shortcut = keras.layers.ReLU(name=f"{name}_shortcut_relu")(x)
    x = keras.layers.Add(name=f"{name}_add")([main, shortcut])
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _network(name, stem, stages, head, shapes, settings, solve):
    """Stem, four stages of a transition block and an `ODEBlock`, head,
    average pooling and the linear classifier."""
    block_kwargs = block_arguments(name, ANODE, settings, solve)
    input_shape, num_classes = inputs.resolve("cifar10", *shapes)
    widths, block, field_class = stages
    images = keras.Input(input_shape, name="images")
    x = stem(images)
    for i, (width, stride) in enumerate(
        zip(widths, _STRIDES, strict=True), start=1
    ):
        x = block(x, width, stride, f"stage{i}_block")
        x = ODEBlock(
            field_class(name=f"stage{i}_func"),
            name=f"stage{i}_ode_block",
            **block_kwargs,
        )(x)
    x = head(x)
    x = keras.layers.AveragePooling2D(4, name="avg_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    logits = dense(x, num_classes, name="linear")
    return keras.Model(images, logits, name=name)


def _resnet_stem(images):
    x = conv2d(images, 64, 3, padding=1, use_bias=False, name="conv1")
    x = torch_batch_norm(name="bn1")(x)
    return keras.layers.ReLU(name="relu1")(x)


def anode_resnet(input_shape=None, num_classes=None, *, settings=None, **solve):
    """ANODE's `resnet`: ResNet18 whose second block per stage is an ODE
    block (11,173,962 parameters on CIFAR-10).

    Args:
        input_shape: Image shape; CIFAR-10's `(32, 32, 3)` when unset.
        num_classes: Number of classes. Default value: `10`.
        settings: A `tfnode.SolveSettings` for every ODE block; ANODE's
            (`solver="euler", steps=2`) when unset.
        **solve: The keyword shorthand (`solver=`, `steps=` (ANODE's
            `Nt`), `adjoint=`, `checkpoints=`, ...) over it, as in
            `tfnode.models.solve_settings`; `adjoint="anode"` is the
            paper's gradient.

    Returns:
        A `keras.Model` from images to logits `(batch, num_classes)`.
    """
    return _network(
        "anode_resnet",
        _resnet_stem,
        (_RESNET_WIDTHS, _resnet_block, ResNetField),
        lambda x: x,
        (input_shape, num_classes),
        settings,
        solve,
    )


def anode_sqnxt(input_shape=None, num_classes=None, *, settings=None, **solve):
    """ANODE's `sqnxt`: SqueezeNext 23 (width 1.0) whose second block per
    stage is an ODE block (461,466 parameters on CIFAR-10).

    Args:
        input_shape: Image shape; CIFAR-10's `(32, 32, 3)` when unset.
        num_classes: Number of classes. Default value: `10`.
        settings: The `tfnode.SolveSettings` of every ODE block; ANODE's
            Euler with `Nt = 2` when unset.
        **solve: Its keyword shorthand, as for `anode_resnet`.

    Returns:
        A `keras.Model` from images to logits `(batch, num_classes)`;
        a bad setting raises `ValueError` naming it.
    """
    return _network(
        "anode_sqnxt",
        lambda images: _sqnxt_conv(images, 64, 3, "stem", padding=1),
        (_SQNXT_WIDTHS, _sqnxt_block, SqueezeNextField),
        lambda x: _sqnxt_conv(x, 128, 1, "head"),
        (input_shape, num_classes),
        settings,
        solve,
    )
