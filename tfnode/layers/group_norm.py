"""Group normalization with a hand-written gradient, fast on CPU.

`GroupNormalization` computes what `keras.layers.GroupNormalization`
computes (channels last), with the same arguments, weights (`gamma`,
`beta`, shape `(channels,)`) and config, so models and checkpoints move
between the two unchanged. It differs only in how the work is laid out:

- Statistics are reduced over the flattened spatial axis of a
  `(batch, positions, channels)` view first, then over the channels of each
  group on the small `(batch, channels)` result. Keras reduces a
  `(batch, ..., groups, channels / groups)` view over several non-adjacent
  axes at once, which TensorFlow's CPU kernels run several times slower.
- The gradient is written out (`tf.custom_gradient`) in closed form
  (Wu & He, 2018, eq. 1-4 differentiated):

  ```none
  x_hat = (x - mu) * r,   y = gamma * x_hat + beta,    r = 1 / sqrt(var + eps)
  dbeta  = sum_{n, positions} dy
  dgamma = sum_{n, positions} dy * x_hat
  dx     = r * (g - mean_group(g) - x_hat * mean_group(g * x_hat))
  g      = gamma * dy
  ```

  computed from the per-`(sample, channel)` sums of `dy` and `dy * x`: two
  reductions and four elementwise operations on full-size tensors, where
  autodiff through the forward operations takes about a dozen. It keeps
  only the input and the per-group statistics for the backward pass.
- Each pass (the forward, and the gradient) runs as one kernel, in one of
  three implementations (`group_norm`'s `implementation`):

  - `"native"`: C++ kernels (`tfnode/native/group_norm.cc`, built on first
    use by `tfnode.native`). Each sample is one contiguous block: its
    moments take one sweep each and its output one more while the block is
    in cache, and samples are spread over TensorFlow's threads. CPU and
    float32 only; XLA cannot compile them, and a SavedModel holding them
    would not load without them.
  - `"xla"`: each pass one function compiled by XLA, which fuses its dozen
    elementwise operations and reductions into a few loops over the tensor
    (XLA:CPU still writes out each product it sums before reducing it).
    Inside a graph compiled by XLA, the passes are simply part of it.
  - `"ops"`: the same passes as TensorFlow operations, each its own kernel
    at a per-operation cost that dominates for a vector field's tensors.

  `"auto"` (the layer's) takes `"native"` wherever it can run (float32,
  eagerly or in a graph, with no GPU visible, outside XLA and outside
  `tf.saved_model.save`/`model.export`), else `"xla"`. On CPU, a forward
  and backward pass of the conv problem's GroupNorm (32 x 16 x 16 x 32, 8
  groups) inside a `while` loop takes 0.73 of the XLA passes' time, which
  take 0.70 of the uncompiled passes' and 0.31 of Keras' layer's
  (`scripts/benchmark_group_norm.py`, docs/benchmarks/group_norm.md).

The papers' vector fields (`tfnode.layers.vector_fields`) use this layer.

#### References

[1]: Wu, He. Group Normalization. ECCV, 2018.
"""

import functools

import keras
import tensorflow as tf
from tensorflow.python.saved_model import save_context

from tfnode import native
from tfnode.stepping import xla

__all__ = ["GroupNormalization", "group_norm"]

_LOW_PRECISION = (tf.float16, tf.bfloat16)


def _group_sum(per_channel, groups):
    """Sums `(batch, 1, channels)` over the channels of each group,
    broadcast back to `(batch, 1, channels)`."""
    channels = per_channel.shape[-1]
    if groups == channels:  # one channel per group: nothing to sum
        return per_channel
    if groups == 1:
        summed = tf.reduce_sum(per_channel, axis=2, keepdims=True)
        return tf.broadcast_to(summed, tf.shape(per_channel))
    grouped_shape = [-1, groups, channels // groups]
    grouped = tf.reshape(per_channel, grouped_shape)
    summed = tf.reduce_sum(grouped, axis=2, keepdims=True)
    return tf.reshape(
        tf.broadcast_to(summed, tf.shape(grouped)), tf.shape(per_channel)
    )


def _group_size(rows, groups):
    """The number of values in a group of `rows` `(batch, positions,
    channels)`, in their dtype."""
    return tf.cast(tf.shape(rows)[1] * (rows.shape[-1] // groups), rows.dtype)


def _statistics(rows, epsilon, groups):
    """`(mean, rstd)` of `rows` `(batch, positions, channels)`: each
    group's mean and `1 / sqrt(var + epsilon)` on its channels,
    `(batch, 1, channels)`."""
    count = _group_size(rows, groups)
    total = _group_sum(tf.reduce_sum(rows, 1, keepdims=True), groups)
    mean = total / count
    squares = tf.reduce_sum(
        tf.math.squared_difference(rows, mean), 1, keepdims=True
    )
    rstd = tf.math.rsqrt(_group_sum(squares, groups) / count + epsilon)
    return mean, rstd


def _forward_pass(rows, gamma, beta, epsilon, groups):
    """`(y, mean, rstd)`: the group norm of `rows` `(batch, positions,
    channels)` and its statistics (`_statistics`)."""
    mean, rstd = _statistics(rows, epsilon, groups)
    scale = rstd * gamma
    return rows * scale + (beta - mean * scale), mean, rstd


def _backward_pass(dy, rows, gamma, mean, rstd, groups):
    """`(dx, dgamma, dbeta)` of `_forward_pass`, in closed form (module
    docstring), from its statistics `mean` and `rstd`."""
    count = _group_size(rows, groups)
    sum_dy = tf.reduce_sum(dy, 1, keepdims=True)
    sum_dy_x = tf.reduce_sum(dy * rows, 1, keepdims=True)
    # sum of dy * (x - mean) per (sample, channel).
    sum_dy_centered = sum_dy_x - mean * sum_dy
    dgamma = tf.reduce_sum(sum_dy_centered * rstd, axis=[0, 1])
    dbeta = tf.reduce_sum(sum_dy, axis=[0, 1])
    # Group means of g = gamma * dy and of g * x_hat.
    mean_g = _group_sum(gamma * sum_dy, groups) / count
    mean_g_xhat = _group_sum(gamma * sum_dy_centered, groups) * rstd / count
    x_coeff = -rstd * rstd * mean_g_xhat
    offset = rstd * (mean * rstd * mean_g_xhat - mean_g)
    dx = dy * (rstd * gamma) + (rows * x_coeff + offset)
    return dx, dgamma, dbeta


def _rows(x, channels):
    """`x` `(batch, ..., channels)` viewed as `(batch, positions, channels)`."""
    return tf.reshape(x, tf.stack([tf.shape(x)[0], -1, channels]))


def _forward(x, gamma, beta, epsilon, groups):
    """`_forward_pass` on `x` `(batch, ..., channels)`; `y` has its shape."""
    rows = _rows(x, gamma.shape[0])
    y, mean, rstd = _forward_pass(rows, gamma, beta, epsilon, groups)
    return tf.reshape(y, tf.shape(x)), mean, rstd


def _backward(dy, x, gamma, mean, rstd, groups):
    """`_backward_pass` for `x` `(batch, ..., channels)`; `dx` has its
    shape. The shape is `dy`'s own, not one carried from the forward pass:
    in the gradient of a loop, that is no compile-time constant for XLA."""
    channels = gamma.shape[0]
    dx, dgamma, dbeta = _backward_pass(
        _rows(dy, channels), _rows(x, channels), gamma, mean, rstd, groups
    )
    return tf.reshape(dx, tf.shape(dy)), dgamma, dbeta


@functools.cache
def _function_passes(channels, groups, dtype, jit_compile):
    """`_forward` and `_backward` for `channels` and `groups` as
    `tf.function`s, every axis but the channels' left free; `jit_compile`:
    each compiled by XLA into a few fused loops (see the module
    docstring)."""
    tensor = tf.TensorSpec(None, dtype)
    vector = tf.TensorSpec([channels], dtype)
    forward = tf.function(
        functools.partial(_forward, groups=groups),
        input_signature=[tensor, vector, vector, tf.TensorSpec([], dtype)],
        jit_compile=jit_compile,
    )
    statistics = tf.TensorSpec([None, 1, channels], dtype)
    backward = tf.function(
        functools.partial(_backward, groups=groups),
        input_signature=[tensor, tensor, vector, statistics, statistics],
        jit_compile=jit_compile,
    )
    return forward, backward


def _xla_passes(channels, groups, dtype, epsilon):
    """The passes, each compiled by XLA (the module docstring)."""
    del epsilon  # an argument of the forward pass
    return _function_passes(channels, groups, dtype, jit_compile=True)


def _ops_passes(channels, groups, dtype, epsilon):
    """The passes as TensorFlow operations, uncompiled."""
    del epsilon  # an argument of the forward pass
    return _function_passes(channels, groups, dtype, jit_compile=False)


def _native_passes(channels, groups, dtype, epsilon):
    """The passes as the C++ kernels of `tfnode/native/group_norm.cc`
    (float32, CPU), their statistics `(batch, groups)`."""
    del channels, dtype  # read from the tensors by the kernels
    kernels = native.load("group_norm")
    epsilon = float(tf.get_static_value(epsilon))

    def forward(x, gamma, beta, _):
        return kernels.tfnode_group_norm(
            x, gamma, beta, groups=groups, epsilon=epsilon
        )

    def backward(dy, x, gamma, mean, rstd):
        return kernels.tfnode_group_norm_grad(
            dy, x, gamma, mean, rstd, groups=groups
        )

    return forward, backward


def _per_channel(statistic, channels):
    """Native `(batch, groups)` statistics as `_backward_pass` takes them,
    `(batch, 1, channels)`."""
    per_group = channels // statistic.shape[-1]
    return tf.repeat(statistic, per_group, axis=1)[:, None, :]


def _autodiff(outputs_of, inputs, output_gradients):
    """The VJP of `outputs_of(*inputs)` by autodiff of TensorFlow ops."""
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        outputs = outputs_of(*inputs)
    output_gradients = [
        tf.zeros_like(output) if gradient is None else gradient
        for output, gradient in zip(outputs, output_gradients, strict=True)
    ]
    return tape.gradient(outputs, inputs, output_gradients=output_gradients)


# Second derivatives through the native kernels: first derivatives come
# from `_normalize`'s closed form, which calls the native gradient kernel;
# these make that kernel, and the statistics it reads, differentiable in
# turn, by autodiff of the same formulas written as TensorFlow ops.
@tf.RegisterGradient("TfnodeGroupNorm")
def _native_forward_gradient(op, *output_gradients):
    groups, epsilon = op.get_attr("groups"), op.get_attr("epsilon")

    def outputs_of(x, gamma, beta):
        y, mean, rstd = _forward(x, gamma, beta, epsilon, groups)
        per_group = gamma.shape[0] // groups  # each group's first channel
        return y, mean[:, 0, ::per_group], rstd[:, 0, ::per_group]

    return _autodiff(outputs_of, list(op.inputs), output_gradients)


@tf.RegisterGradient("TfnodeGroupNormGrad")
def _native_backward_gradient(op, *output_gradients):
    groups = op.get_attr("groups")

    def outputs_of(dy, x, gamma, mean, rstd):
        channels = gamma.shape[0]
        return _backward(
            dy,
            x,
            gamma,
            _per_channel(mean, channels),
            _per_channel(rstd, channels),
            groups,
        )

    return _autodiff(outputs_of, list(op.inputs), output_gradients)


# implementation: passes(channels, groups, dtype, epsilon) -> (forward,
# backward), with forward(x, gamma, beta, epsilon) -> (y, *statistics)
# and backward(dy, x, gamma, *statistics) -> (dx, dgamma, dbeta), `x`
# `(batch, ..., channels)`.
_IMPLEMENTATIONS = {
    "native": _native_passes,
    "xla": _xla_passes,
    "ops": _ops_passes,
}


def _native_unusable(x, epsilon):
    """Why the native kernels cannot normalise `x` here, or `None`."""
    if x.dtype != tf.float32:
        return f"they take float32, not {x.dtype.name}"
    if tf.get_static_value(epsilon) is None:
        return "they need epsilon as a constant"
    if xla.in_xla_context():
        return "XLA cannot compile them"
    if save_context.in_save_context():
        return "a SavedModel must load without them"
    if tf.config.list_logical_devices("GPU"):
        return "they run on CPU only, and a GPU is visible"
    if native.load("group_norm") is None:
        return "they could not be built (see the log)"
    return None


def _chosen_implementation(implementation, x, epsilon):
    """The implementation `implementation` names for `x` here: `"auto"` is
    `"native"` where usable, else `"xla"`."""
    if implementation not in ("auto", *_IMPLEMENTATIONS):
        raise ValueError(
            "implementation must be one of "
            f"{['auto', *_IMPLEMENTATIONS]}; got {implementation!r}."
        )
    if implementation not in ("auto", "native"):
        return implementation
    reason = _native_unusable(x, epsilon)
    if reason is None:
        return "native"
    if implementation == "native":
        raise ValueError(f"implementation='native' cannot run here: {reason}.")
    return "xla"


def _normalize(x, gamma, beta, groups, epsilon, implementation):
    """Group norm of `x` (batch, ..., channels) with its closed-form
    gradient; `gamma`, `beta` are `(channels,)` tensors."""
    channels = x.shape[-1]
    forward_pass, backward_pass = _IMPLEMENTATIONS[implementation](
        channels, groups, x.dtype, epsilon
    )

    @tf.custom_gradient
    def forward(x, gamma, beta):
        y, *statistics = forward_pass(x, gamma, beta, epsilon)

        def backward(dy):
            return backward_pass(dy, x, gamma, *statistics)

        return y, backward

    return forward(x, gamma, beta)


def group_norm(x, gamma, beta, groups, epsilon=1e-3, *, implementation="auto"):
    """Group normalization of channels-last `x`, as Keras computes it.

    Args:
        x: Tensor `(batch, ..., channels)`; float16 and bfloat16 inputs are
            normalised in float32 and returned in their own dtype.
        gamma: Scale, `(channels,)`, or `None` for none.
        beta: Offset, `(channels,)`, or `None` for none.
        groups: Number of groups; must divide `channels`.
        epsilon: Added to the variance.
        implementation: How the forward and the backward pass run:
            `"native"`, the C++ kernels of `tfnode.native` (CPU, float32;
            not inside a graph XLA compiles, nor one a SavedModel saves);
            `"xla"`, each pass compiled by XLA; `"ops"`, TensorFlow
            operations, for a platform without XLA; `"auto"`, `"native"`
            where it can run, else `"xla"` (see the module docstring).

    Returns:
        A tensor of the shape and dtype of `x`.

    Raises:
        ValueError: if the channel axis is unknown, `groups` does not
            divide it, `implementation` is unknown, or it is `"native"`
            where the kernels cannot run.
    """
    x = tf.convert_to_tensor(x)
    channels = x.shape[-1]
    if x.shape.rank is None or x.shape.rank < 2 or channels is None:
        raise ValueError(
            "group_norm needs x of known rank >= 2 and a known last "
            f"(channel) axis; got shape {x.shape}."
        )
    if (
        isinstance(groups, bool)
        or not isinstance(groups, int)
        or groups < 1
        or channels % groups
    ):
        raise ValueError(
            f"groups must be a positive int dividing the {channels} "
            f"channels; got groups={groups!r}."
        )
    dtype = x.dtype
    compute = tf.float32 if dtype in _LOW_PRECISION else dtype
    x = tf.cast(x, compute)
    gamma = (
        tf.ones([channels], compute)
        if gamma is None
        else tf.cast(gamma, compute)
    )
    beta = (
        tf.zeros([channels], compute)
        if beta is None
        else tf.cast(beta, compute)
    )
    epsilon = tf.cast(epsilon, compute)
    implementation = _chosen_implementation(implementation, x, epsilon)
    y = _normalize(x, gamma, beta, groups, epsilon, implementation)
    return tf.cast(y, dtype)


@keras.saving.register_keras_serializable(package="tfnode")
class GroupNormalization(keras.layers.GroupNormalization):
    """`keras.layers.GroupNormalization`, channels last, faster on CPU.

    Same arguments, weights and config as the Keras layer (see its
    documentation), and the same output to float32 round-off; only
    `axis=-1` (the last axis, channels last) is supported. The statistics
    are reduced over positions first and the gradient is written out in
    closed form (see the module docstring): on CPU, forward and backward
    together take a fraction of the Keras layer's time. Each pass runs as
    the `implementation` class attribute says (`group_norm`'s argument:
    `"auto"`, native C++ kernels on CPU where they can run); a subclass may
    set another, and the config stays Keras'.

    With a mixed precision policy (`mixed_float16`), variables stay float32,
    the normalisation runs in float32 and the output has the compute dtype,
    as in Keras.

    Args:
        groups: Number of groups, dividing the channels; `-1` for one group
            per channel (instance normalisation). Default value: `32`.
        axis: The channel axis: `-1`, or the last axis's positive index.
            Default value: `-1`.
        epsilon: Added to the variance. Default value: `1e-3`.
        center: Add the learned offset `beta`. Default value: `True`.
        scale: Multiply by the learned scale `gamma`. Default value: `True`.
        **kwargs: The Keras layer's other arguments (initializers,
            regularizers, constraints, `name`, `dtype`).

    Input shape:
        `(batch, ..., channels)`, rank 2 or more.

    Output shape:
        Same as the input.

    #### References

    [1]: Wu, He. Group Normalization. ECCV, 2018.
    """

    # `group_norm`'s `implementation`: a class attribute, not an argument,
    # so that the config stays Keras' (a subclass may choose another).
    implementation = "auto"

    def build(self, input_shape):
        rank = len(input_shape)
        if rank < 2 or self.axis not in (-1, rank - 1):
            raise ValueError(
                "tfnode GroupNormalization normalises channels-last inputs "
                f"of rank >= 2: axis must be -1 (or {rank - 1}); got "
                f"axis={self.axis!r} for input shape {tuple(input_shape)}."
            )
        super().build(input_shape)

    def call(self, inputs):
        gamma = None if self.gamma is None else self.gamma.value
        beta = None if self.beta is None else self.beta.value
        outputs = group_norm(
            inputs,
            gamma,
            beta,
            self.groups,
            self.epsilon,
            implementation=self.implementation,
        )
        return tf.cast(outputs, self.compute_dtype)
