"""Vector fields `dy/dt = f(t, y)` of the reference Neural ODE networks.

Each field is a Keras layer called as `field(t, y, training=None)`, the
convention of `tfnode.odeint` and `tfnode.ODEBlock`, and returns a tensor of
the shape and dtype of `y` (the state keeps its shape along the solve). The
fields follow their papers layer for layer, initializers included:

| field | f(y) | paper |
|---|---|---|
| `ResNetField` | conv3x3-BN-ReLU-conv3x3-BN-ReLU, bias-free | ANODE |
| `SqueezeNextField` | five conv+BN+ReLU, bottleneck 1/2 | ANODE |
| `Conv1DField` | Conv1D k1, act, Conv1D k3, act, Conv1D k1 | Ott et al. |
| `Conv2DField` | conv1x1, act, conv3x3, act, conv1x1 | Ott et al. |
| `DenseField` | Dense, act, Dense, act, Dense | Ott et al. |
| `GroupNormConvField` | GN-ReLU-conv3x3-GN, one shared GN | MNIST blog |
| `TinyResidualField` | conv3x3-BN-ReLU-conv3x3-BN | Sander et al. |
| `DepthVaryingField` | sub-field `round(t * depth)` | Sander et al. |

With `time_channel=True` a field is time-dependent in the manner of
torchdiffeq's `ConcatConv2d`: `t`, broadcast to a constant channel (or
feature), is appended to the input of every convolution or dense layer, so
each of them sees one input channel more.

Their convolutions are `tfnode.layers.Conv1D` / `Conv2D`: Keras' layers,
computed as one product of patches inside loops that XLA compiles, where
XLA:CPU differentiates a native convolution slowly (`tfnode.layers.conv`).

The initializers reproduce those of the PyTorch originals (a port that
trains like the original must start from the same distribution):

```none
torch default   kernel U(+-1/sqrt(fan_in)), bias U(+-1/sqrt(fan_in))
kaiming normal  kernel N(0, 2/fan_in), bias 0          (Ott et al.)
xavier, gain g  kernel U(+-g sqrt(6/(fan_in+fan_out))), bias 0   (ANODE)
BatchNorm       momentum 0.1 in torch terms (0.9 here), epsilon 1e-5
```

#### References

[1]: Gholami, Keutzer, Biros. ANODE: Unconditionally Accurate
     Memory-Efficient Gradients for Neural ODEs. IJCAI, 2019.
[2]: Ott, Katiyar, Hennig, Tiemann. ResNet After All? Neural ODEs and Their
     Numerical Solution. ICLR, 2021.
[3]: Sander, Ablin, Peyre. Do Residual Neural Networks discretize Neural
     Ordinary Differential Equations? NeurIPS, 2022.
[4]: Chen, Rubanova, Bettencourt, Duvenaud. Neural Ordinary Differential
     Equations. NeurIPS, 2018.
[5]: A Simple Introduction to Neural ODEs (blog post): the MNIST ODENet.
"""

import functools
import math

import keras
import tensorflow as tf

from tfnode.layers.conv import Conv1D
from tfnode.layers.conv import Conv2D
from tfnode.layers.group_norm import GroupNormalization
from tfnode.validation import positive_int
from tfnode.vector_field import call_field

__all__ = [
    "ACTIVATIONS",
    "Conv1DField",
    "Conv2DField",
    "DenseField",
    "DepthVaryingField",
    "GroupNormConvField",
    "ResNetField",
    "SqueezeNextField",
    "TinyResidualField",
    "VectorField",
    "append_time",
    "kaiming_normal",
    "torch_batch_norm",
    "torch_default_bias",
    "torch_default_kernel",
    "xavier_uniform",
]

ACTIVATIONS = {
    "relu": tf.nn.relu,
    # torch.nn.LeakyReLU's default slope, as the 'ResNet After All' code uses.
    "lrelu": lambda x: tf.nn.leaky_relu(x, alpha=0.01),
    "sigmoid": tf.sigmoid,
}


# --- Initializers of the PyTorch originals -----------------------------------


def torch_default_kernel():
    """PyTorch's default Conv/Linear weight init, U(+-1/sqrt(fan_in)).

    That is `kaiming_uniform_(a=sqrt(5))`: variance `1 / (3 fan_in)`.
    """
    return keras.initializers.VarianceScaling(
        scale=1.0 / 3.0, mode="fan_in", distribution="uniform"
    )


def torch_default_bias(fan_in):
    """PyTorch's default Conv/Linear bias init, U(+-1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(-bound, bound)


def kaiming_normal():
    """`torch.nn.init.kaiming_normal_` (fan_in, a=0): N(0, 2/fan_in),
    untruncated."""
    return keras.initializers.VarianceScaling(
        scale=2.0, mode="fan_in", distribution="untruncated_normal"
    )


def xavier_uniform(gain=1.0):
    """`torch.nn.init.xavier_uniform_` with `gain`:
    U(+-gain sqrt(6/(fan_in+fan_out)))."""
    return keras.initializers.VarianceScaling(
        scale=gain**2, mode="fan_avg", distribution="uniform"
    )


def torch_batch_norm(zero_init=False, **kwargs):
    """`BatchNormalization` with `torch.nn.BatchNorm2d`'s defaults.

    Args:
        zero_init: Initialise gamma and beta to zero (the last BN of a
            residual function, so that it starts as the identity map).
        **kwargs: Passed to `keras.layers.BatchNormalization`.
    """
    init = "zeros" if zero_init else None
    if init:
        kwargs.setdefault("gamma_initializer", init)
        kwargs.setdefault("beta_initializer", init)
    return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, **kwargs)


def append_time(t, y):
    """Appends `t`, broadcast over every other axis, as a last channel.

    Args:
        t: Scalar time.
        y: Tensor of shape `(batch, ..., channels)`.

    Returns:
        Tensor of shape `(batch, ..., channels + 1)`, its last channel `t`.
    """
    t = tf.cast(t, y.dtype)
    shape = tf.concat([tf.shape(y)[:-1], [1]], axis=0)
    return tf.concat([y, tf.broadcast_to(t, shape)], axis=-1)


def _activation(activation):
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"Unknown activation={activation!r}; choose one of: "
            f"{', '.join(sorted(ACTIVATIONS))}."
        )
    return ACTIVATIONS[activation]


def _channels(y_shape, name):
    channels = y_shape[-1]
    if channels is None:
        raise ValueError(
            f"{name} needs a known last (channel) axis; got shape {y_shape}."
        )
    return int(channels)


# --- Base class --------------------------------------------------------------


class VectorField(keras.layers.Layer):
    """Base of the fields: `call(t, y, training=None) -> dy/dt`.

    Subclasses create their layers in `build_field(y_shape)` (so every
    weight exists as soon as the field is built, before any solve) and
    compute `f` in `field(t, y, training)`, applying their convolution or
    dense layers through `self.apply_layer(layer, t, x)`, which appends the
    time channel when `time_channel=True`.

    Args:
        time_channel: Feed `t` to every convolution or dense layer as an
            extra constant input channel (torchdiffeq's `ConcatConv2d`).
            Default value: `False` (autonomous field, as in the papers).
        **kwargs: Passed to `keras.layers.Layer`.
    """

    def __init__(self, time_channel=False, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(time_channel, bool):
            raise ValueError(
                f"time_channel must be True or False; got {time_channel!r}."
            )
        self.time_channel = time_channel
        # Lets `field(0.5, y)` pass a Python number as the time.
        self._allow_non_tensor_positional_args = True

    def extra_channels(self):
        """Input channels added to every layer by the time channel."""
        return int(self.time_channel)

    def sublayer_kwargs(self):
        """Keyword arguments shared by the layers of the field."""
        return {"dtype": self.dtype_policy}

    def build(self, y_shape, t_shape=None):
        del t_shape
        self.build_field(tuple(y_shape))

    def build_field(self, y_shape):
        """Creates and builds the layers of the field for states of
        `y_shape` (batch axis included)."""
        raise NotImplementedError

    def apply_layer(self, layer, t, x, **kwargs):
        """`layer(x)`, with `t` appended as a channel when `time_channel`."""
        if self.time_channel:
            x = append_time(t, x)
        return layer(x, **kwargs)

    def call(self, t, y, training=None):
        return self.field(t, y, training)

    def field(self, t, y, training):
        """Computes `dy/dt` at time `t` and state `y`."""
        raise NotImplementedError

    def compute_output_shape(self, y_shape, t_shape=None):
        del t_shape
        return tuple(y_shape)

    def get_config(self):
        config = super().get_config()
        config["time_channel"] = self.time_channel
        return config


def _build(layer, shape):
    layer.build(shape)
    return layer


def _with_channels(shape, channels):
    return (*shape[:-1], channels)


# --- ANODE (Gholami et al. 2019) ---------------------------------------------


@keras.saving.register_keras_serializable(package="tfnode")
class ResNetField(VectorField):
    """ANODE's ResNet ODE function, `BasicBlock2`.

    ```none
    f(y) = relu(bn2(conv2(relu(bn1(conv1(y))))))
    ```

    Both convolutions are 3x3, stride 1, `C -> C` and bias-free, with
    PyTorch's default init; the BatchNorms start at gamma 1, beta 0. There
    is no skip connection inside (the ODE block provides it), and `f >= 0`.

    Args:
        time_channel: Append `t` as an input channel of both convolutions.
        **kwargs: Passed to `keras.layers.Layer`.

    Input shape:
        `(batch, height, width, channels)`.

    Output shape:
        Same as the input.

    #### References

    [1]: Gholami, Keutzer, Biros. ANODE: Unconditionally Accurate
         Memory-Efficient Gradients for Neural ODEs. IJCAI, 2019.
    """

    def build_field(self, y_shape):
        channels = _channels(y_shape, "ResNetField")
        conv_in = _with_channels(y_shape, channels + self.extra_channels())
        out = _with_channels(y_shape, channels)
        common = self.sublayer_kwargs()
        self.conv1, self.conv2 = (
            _build(
                Conv2D(
                    channels,
                    3,
                    padding="same",
                    use_bias=False,
                    kernel_initializer=torch_default_kernel(),
                    name=f"conv{i}",
                    **common,
                ),
                conv_in,
            )
            for i in (1, 2)
        )
        self.bn1, self.bn2 = (
            _build(torch_batch_norm(name=f"bn{i}", **common), out)
            for i in (1, 2)
        )

    def field(self, t, y, training):
        x = self.apply_layer(self.conv1, t, y)
        x = tf.nn.relu(self.bn1(x, training=training))
        x = self.apply_layer(self.conv2, t, x)
        return tf.nn.relu(self.bn2(x, training=training))


@keras.saving.register_keras_serializable(package="tfnode")
class SqueezeNextField(VectorField):
    """ANODE's SqueezeNext ODE function (`BasicBlock2` of `sqnxt`).

    Five convolutions with bias, each followed by BatchNorm and ReLU, with
    `r = reduction`:

    ```none
    1x1: C -> rC      1x1: rC -> rC/2     1x3: rC/2 -> rC
    3x1: rC -> rC     1x1: rC -> C
    ```

    The convolutions are initialised as ANODE's `conv_init` does: Xavier
    uniform with gain sqrt(2), bias 0.

    Args:
        reduction: Bottleneck factor `r`. Default value: `0.5`.
        time_channel: Append `t` as an input channel of every convolution.
        **kwargs: Passed to `keras.layers.Layer`.

    Input shape:
        `(batch, height, width, channels)`, `channels * reduction / 2` a
        positive integer.

    Output shape:
        Same as the input.

    #### References

    [1]: Gholami, Keutzer, Biros. ANODE: Unconditionally Accurate
         Memory-Efficient Gradients for Neural ODEs. IJCAI, 2019.
    [2]: Gholami, Kwon, Wu, Tai, Yue, Jin, Zhao, Keutzer. SqueezeNext:
         Hardware-Aware Neural Network Design. CVPR Workshops, 2018.
    """

    def __init__(self, reduction=0.5, time_channel=False, **kwargs):
        super().__init__(time_channel=time_channel, **kwargs)
        if (
            isinstance(reduction, bool)
            or not isinstance(reduction, (int, float))
            or not 0 < reduction <= 1
        ):
            raise ValueError(
                f"reduction must be a number in (0, 1]; got {reduction!r}."
            )
        self.reduction = float(reduction)

    def build_field(self, y_shape):
        channels = _channels(y_shape, "SqueezeNextField")
        squeezed = int(channels * self.reduction)
        if int(squeezed * 0.5) < 1:
            raise ValueError(
                f"SqueezeNextField needs channels * reduction / 2 >= 1; got "
                f"channels={channels}, reduction={self.reduction}."
            )
        plan = (  # (filters, kernel) of the five convolutions
            (squeezed, (1, 1)),
            (int(squeezed * 0.5), (1, 1)),
            (squeezed, (1, 3)),
            (squeezed, (3, 1)),
            (channels, (1, 1)),
        )
        common = self.sublayer_kwargs()
        self.convs, self.norms = [], []
        in_channels = channels
        for i, (filters, kernel) in enumerate(plan, start=1):
            conv = Conv2D(
                filters,
                kernel,
                padding="same",
                kernel_initializer=xavier_uniform(math.sqrt(2.0)),
                bias_initializer="zeros",
                name=f"conv{i}",
                **common,
            )
            conv.build(
                _with_channels(y_shape, in_channels + self.extra_channels())
            )
            norm = torch_batch_norm(name=f"bn{i}", **common)
            norm.build(_with_channels(y_shape, filters))
            self.convs.append(conv)
            self.norms.append(norm)
            in_channels = filters

    def field(self, t, y, training):
        x = y
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = self.apply_layer(conv, t, x)
            x = tf.nn.relu(norm(x, training=training))
        return x

    def get_config(self):
        config = super().get_config()
        config["reduction"] = self.reduction
        return config


# --- 'ResNet After All?' (Ott et al. 2021) -----------------------------------


class _ThreeLayerField(VectorField):
    """`layer3(act(layer2(act(layer1(y)))))`, mapping `C -> width -> width
    -> C`, kaiming-normal weights (fan_in) and zero biases."""

    _kernel_sizes = None  # of layer1, layer2, layer3; None for Dense
    _rank = 2

    def __init__(
        self, channels=32, activation="relu", time_channel=False, **kwargs
    ):
        super().__init__(time_channel=time_channel, **kwargs)
        self.channels = positive_int("channels", channels)
        _activation(activation)
        self.activation = activation

    def make_layer(self, filters, kernel_size, name):
        raise NotImplementedError

    def build_field(self, y_shape):
        if len(y_shape) != self._rank:
            raise ValueError(
                f"{type(self).__name__} takes states of rank "
                f"{self._rank} (batch axis included); got shape "
                f"{y_shape}."
            )
        in_channels = _channels(y_shape, type(self).__name__)
        sizes = self._kernel_sizes or (None, None, None)
        widths = (self.channels, self.channels, in_channels)
        self.layer1, self.layer2, self.layer3 = (
            self.make_layer(width, size, f"layer{i}")
            for i, (width, size) in enumerate(
                zip(widths, sizes, strict=True), start=1
            )
        )
        inputs = (in_channels, self.channels, self.channels)
        for layer, channels in zip(
            (self.layer1, self.layer2, self.layer3), inputs, strict=True
        ):
            layer.build(
                _with_channels(y_shape, channels + self.extra_channels())
            )

    def field(self, t, y, training):
        del training
        act = _activation(self.activation)
        x = act(self.apply_layer(self.layer1, t, y))
        x = act(self.apply_layer(self.layer2, t, x))
        return self.apply_layer(self.layer3, t, x)

    def get_config(self):
        config = super().get_config()
        config.update(channels=self.channels, activation=self.activation)
        return config


class _ConvThreeLayerField(_ThreeLayerField):
    _conv = None

    def make_layer(self, filters, kernel_size, name):
        return self._conv(
            filters,
            kernel_size,
            padding="same",
            kernel_initializer=kaiming_normal(),
            bias_initializer="zeros",
            name=name,
            **self.sublayer_kwargs(),
        )


@keras.saving.register_keras_serializable(package="tfnode")
class Conv1DField(_ConvThreeLayerField):
    """'ResNet After All' `simple_odenet` field (`SimpleResidualBlock`).

    ```none
    f(y) = conv3(act(conv2(act(conv1(y)))))
    conv1: Conv1D(C -> channels, k=1)     conv2: Conv1D(channels, k=3, same)
    conv3: Conv1D(channels -> C, k=1)
    ```

    Weights are kaiming-normal (fan_in, gain sqrt(2)), biases zero, as the
    reference's `init_weights(kaiming)`.

    Args:
        channels: Hidden channels (the reference's `ch_residual_block`).
            Default value: `32`.
        activation: `"relu"`, `"lrelu"` (slope 0.01) or `"sigmoid"`.
            Default value: `"relu"`.
        time_channel: Append `t` as an input channel of every convolution.
        **kwargs: Passed to `keras.layers.Layer`.

    Input shape:
        `(batch, length, C)`; a `d`-dimensional point is `(batch, d, 1)`.

    Output shape:
        Same as the input.

    #### References

    [1]: Ott, Katiyar, Hennig, Tiemann. ResNet After All? Neural ODEs and
         Their Numerical Solution. ICLR, 2021.
    """

    _kernel_sizes = (1, 3, 1)
    _rank = 3
    _conv = Conv1D


@keras.saving.register_keras_serializable(package="tfnode")
class Conv2DField(_ConvThreeLayerField):
    """'ResNet After All' `odenet` field (`ResidualBlock`).

    ```none
    f(y) = conv3(act(conv2(act(conv1(y)))))
    conv1: 1x1, C -> channels    conv2: 3x3 same, channels -> channels
    conv3: 1x1, channels -> C
    ```

    Weights are kaiming-normal (fan_in, gain sqrt(2)), biases zero.

    Args:
        channels: Hidden channels (`ch_residual_block`). Default: `32`.
        activation: `"relu"`, `"lrelu"` (slope 0.01) or `"sigmoid"`.
            Default value: `"relu"`.
        time_channel: Append `t` as an input channel of every convolution.
        **kwargs: Passed to `keras.layers.Layer`.

    Input shape:
        `(batch, height, width, C)`.

    Output shape:
        Same as the input.

    #### References

    [1]: Ott, Katiyar, Hennig, Tiemann. ResNet After All? Neural ODEs and
         Their Numerical Solution. ICLR, 2021.
    """

    _kernel_sizes = (1, 3, 1)
    _rank = 4
    _conv = Conv2D


@keras.saving.register_keras_serializable(package="tfnode")
class DenseField(_ThreeLayerField):
    """'ResNet After All' `linear_odenet` field (`LinearResidualBlock`).

    ```none
    f(y) = dense3(act(dense2(act(dense1(y)))))
    dense1: d -> channels   dense2: channels -> channels   dense3: -> d
    ```

    Weights are kaiming-normal (fan_in, gain sqrt(2)), biases zero.

    Args:
        channels: Hidden units (`ch_residual_block`). Default value: `32`.
        activation: `"relu"`, `"lrelu"` (slope 0.01) or `"sigmoid"`.
            Default value: `"relu"`.
        time_channel: Append `t` as an input feature of every dense layer.
        **kwargs: Passed to `keras.layers.Layer`.

    Input shape:
        `(batch, d)`.

    Output shape:
        Same as the input.

    #### References

    [1]: Ott, Katiyar, Hennig, Tiemann. ResNet After All? Neural ODEs and
         Their Numerical Solution. ICLR, 2021.
    """

    def make_layer(self, filters, kernel_size, name):
        del kernel_size
        return keras.layers.Dense(
            filters,
            kernel_initializer=kaiming_normal(),
            bias_initializer="zeros",
            name=name,
            **self.sublayer_kwargs(),
        )


# --- GroupNorm field (Chen et al. 2018, 'A Simple Introduction') -------------


@keras.saving.register_keras_serializable(package="tfnode")
class GroupNormConvField(VectorField):
    """GroupNorm-ReLU-conv-GroupNorm, the MNIST ODENet's function.

    ```none
    f(y) = gn(conv(relu(gn(y))))
    ```

    As in the reference, ONE GroupNormalization (`min(32, C)` groups) is
    applied twice, so its `2 C` parameters are shared by both uses; the
    convolution is 3x3, same padding, with bias. Initializers are
    PyTorch's defaults (GroupNorm gamma 1, beta 0). The GroupNorm is
    `tfnode.layers.GroupNormalization`: Keras' layer (same weights and
    output), with a gradient written out for speed on CPU.

    Args:
        groups: Groups of the GroupNorm; `min(32, C)` when unset.
        time_channel: Append `t` as an input channel of the convolution.
        **kwargs: Passed to `keras.layers.Layer`.

    Input shape:
        `(batch, height, width, C)`.

    Output shape:
        Same as the input.

    #### References

    [1]: A Simple Introduction to Neural ODEs (blog post): its MNIST ODENet.
    [2]: Chen, Rubanova, Bettencourt, Duvenaud. Neural Ordinary Differential
         Equations. NeurIPS, 2018.
    [3]: Wu, He. Group Normalization. ECCV, 2018.
    """

    def __init__(self, groups=None, time_channel=False, **kwargs):
        super().__init__(time_channel=time_channel, **kwargs)
        self.groups = None if groups is None else positive_int("groups", groups)

    def build_field(self, y_shape):
        channels = _channels(y_shape, "GroupNormConvField")
        groups = self.groups or min(32, channels)
        if channels % groups:
            raise ValueError(
                f"groups must divide the channels; got groups={groups}, "
                f"channels={channels}."
            )
        common = self.sublayer_kwargs()
        in_channels = channels + self.extra_channels()
        self.norm = GroupNormalization(
            groups=groups, epsilon=1e-5, name="gn", **common
        )
        self.norm.build(y_shape)
        self.conv = Conv2D(
            channels,
            3,
            padding="same",
            kernel_initializer=torch_default_kernel(),
            bias_initializer=torch_default_bias(9 * in_channels),
            name="conv",
            **common,
        )
        self.conv.build(_with_channels(y_shape, in_channels))

    def field(self, t, y, training):
        del training
        x = tf.nn.relu(self.norm(y))
        x = self.apply_layer(self.conv, t, x)
        return self.norm(x)

    def get_config(self):
        config = super().get_config()
        config["groups"] = self.groups
        return config


# --- Sander et al. 2022 ------------------------------------------------------


@keras.saving.register_keras_serializable(package="tfnode")
class TinyResidualField(VectorField):
    """Sander et al.'s `TinyResidual`, one layer of their TinyResNet.

    ```none
    f(y) = bn2(conv2(relu(bn1(conv1(y)))))
    ```

    Both convolutions are 3x3, same padding, `C -> C`, with bias and
    PyTorch's default init. With `zero_init` (the reference default) the
    last BatchNorm starts at gamma = beta = 0, so `f = 0` at
    initialisation.

    Args:
        zero_init: Zero gamma and beta of the last BatchNorm.
            Default value: `True`.
        time_channel: Append `t` as an input channel of both convolutions.
        **kwargs: Passed to `keras.layers.Layer`.

    Input shape:
        `(batch, height, width, C)`.

    Output shape:
        Same as the input.

    #### References

    [1]: Sander, Ablin, Peyre. Do Residual Neural Networks discretize Neural
         Ordinary Differential Equations? NeurIPS, 2022.
    """

    def __init__(self, zero_init=True, time_channel=False, **kwargs):
        super().__init__(time_channel=time_channel, **kwargs)
        if not isinstance(zero_init, bool):
            raise ValueError(
                f"zero_init must be True or False; got {zero_init!r}."
            )
        self.zero_init = zero_init

    def build_field(self, y_shape):
        channels = _channels(y_shape, "TinyResidualField")
        in_channels = channels + self.extra_channels()
        common = self.sublayer_kwargs()
        self.conv1, self.conv2 = (
            _build(
                Conv2D(
                    channels,
                    3,
                    padding="same",
                    kernel_initializer=torch_default_kernel(),
                    bias_initializer=torch_default_bias(9 * in_channels),
                    name=f"conv{i}",
                    **common,
                ),
                _with_channels(y_shape, in_channels),
            )
            for i in (1, 2)
        )
        out = _with_channels(y_shape, channels)
        self.bn1 = _build(torch_batch_norm(name="bn1", **common), out)
        self.bn2 = _build(
            torch_batch_norm(zero_init=self.zero_init, name="bn2", **common),
            out,
        )

    def field(self, t, y, training):
        x = self.apply_layer(self.conv1, t, y)
        x = tf.nn.relu(self.bn1(x, training=training))
        x = self.apply_layer(self.conv2, t, x)
        return self.bn2(x, training=training)

    def get_config(self):
        config = super().get_config()
        config["zero_init"] = self.zero_init
        return config


@keras.saving.register_keras_serializable(package="tfnode")
class DepthVaryingField(keras.layers.Layer):
    """A field whose weights vary with depth: `f(t, y) = f_n(t, y)` with
    `n = clip(round(t * depth), 0, depth - 1)`.

    The `depth` sub-fields are the layers of a residual network read as a
    discretised ODE on `[0, 1]` with `theta(n / depth) = theta_n` (Sander et
    al.), piecewise constant in between. On the matching grids the solve IS
    the residual network:

    ```none
    euler, steps=depth on [0, 1]:
        x_{n+1} = x_n + f_n(x_n) / depth
    heun, steps=depth-1 on [0, (depth-1)/depth]:
        y = x_n + f_n(x_n) / depth
        x_{n+1} = x_n + (f_n(x_n) + f_{n+1}(y)) / (2 depth)
    ```

    The sub-field is chosen with `tf.switch_case`, so the traced graph holds
    each sub-field once whatever the number of steps, and only the chosen
    one runs.

    Args:
        fields: The sub-fields `f_0, ..., f_{depth-1}`, Keras layers taking
            `(t, y)` or only `y`, and optionally `training`.
        **kwargs: Passed to `keras.layers.Layer`.

    Input shape:
        Any shape the sub-fields accept.

    Output shape:
        Same as the input.

    #### References

    [1]: Sander, Ablin, Peyre. Do Residual Neural Networks discretize Neural
         Ordinary Differential Equations? NeurIPS, 2022.
    """

    def __init__(self, fields, **kwargs):
        super().__init__(**kwargs)
        fields = list(fields)
        if not fields or not all(
            isinstance(f, keras.layers.Layer) for f in fields
        ):
            raise ValueError(
                "fields must be a non-empty list of Keras layers (the "
                f"sub-fields f_0, ..., f_(depth-1)); got {fields!r}."
            )
        self.fields = fields
        self._allow_non_tensor_positional_args = True

    @property
    def depth(self):
        """The number of sub-fields."""
        return len(self.fields)

    def index(self, t):
        """The sub-field used at time `t`: `clip(round(t * depth))`."""
        t = tf.convert_to_tensor(t)
        scaled = tf.round(t * tf.cast(self.depth, t.dtype))
        return tf.cast(
            tf.clip_by_value(scaled, 0.0, float(self.depth - 1)), tf.int32
        )

    def build(self, y_shape, t_shape=None):
        del t_shape
        for field in self.fields:
            if not field.built:
                field.build(y_shape)

    def call(self, t, y, training=None):
        index = self.index(t)
        if not training:
            return tf.switch_case(
                index,
                [
                    functools.partial(
                        call_field, field, t, y, training=training
                    )
                    for field in self.fields
                ],
            )
        # In training, sub-fields update state (BatchNorm moving statistics)
        # inside their branch. Each branch runs in its own StatelessScope
        # and returns the new values, assigned here, outside the branches:
        # an enclosing StatelessScope (a recomputing gradient method, or
        # `stateless_call`) then records tensors of this graph, never of a
        # branch's.
        variables = self.variables
        values = [v.value for v in variables]
        state = self.non_trainable_variables

        def branch(field):
            def run():
                with keras.StatelessScope(
                    state_mapping=list(zip(variables, values, strict=True))
                ) as scope:
                    out = call_field(field, t, y, training=training)
                return out, [scope.get_current_value(v) for v in state]

            return run

        out, new_values = tf.switch_case(
            index, [branch(field) for field in self.fields]
        )
        for variable, value in zip(state, new_values, strict=True):
            variable.assign(value)
        return out

    def compute_output_shape(self, y_shape, t_shape=None):
        del t_shape
        return tuple(y_shape)

    def get_config(self):
        config = super().get_config()
        config["fields"] = [
            keras.saving.serialize_keras_object(f) for f in self.fields
        ]
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        fields = [
            keras.saving.deserialize_keras_object(
                f, custom_objects=custom_objects
            )
            for f in config.pop("fields")
        ]
        return cls(fields, **config)
