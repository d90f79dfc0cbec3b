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
- Each pass (the forward, and the gradient) is one function compiled by XLA,
  which fuses its dozen elementwise operations and reductions into a few
  loops over the tensor; in graph mode TensorFlow would run each as its own
  kernel, at a per-operation cost that dominates for the tensors of a
  vector field. On CPU, a forward and backward pass of the conv problem's
  GroupNorm (32 x 16 x 16 x 32, 8 groups) inside a `while` loop takes 0.70
  of the time of the same passes uncompiled and 0.35 of Keras' layer's
  (`scripts/benchmark_group_norm.py`, docs/benchmarks/group_norm.md); the
  conv problem's whole train step, 0.94-0.96. Inside a graph compiled by
  XLA, the passes are simply part of it.

The papers' vector fields (`tfnode.layers.vector_fields`) use this layer.

#### References

[1]: Wu, He. Group Normalization. ECCV, 2018.
"""

import functools

import keras
import tensorflow as tf

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


@functools.cache
def _passes(channels, groups, dtype, jit_compile):
    """`_forward_pass` and `_backward_pass` for `channels` and `groups` as
    `tf.function`s, `(batch, positions)` left free; `jit_compile`: each
    compiled by XLA into a few fused loops (see the module docstring)."""
    rows = tf.TensorSpec([None, None, channels], dtype)
    vector = tf.TensorSpec([channels], dtype)
    scalar = tf.TensorSpec([], dtype)
    forward = tf.function(
        functools.partial(_forward_pass, groups=groups),
        input_signature=[rows, vector, vector, scalar],
        jit_compile=jit_compile,
    )
    statistics = tf.TensorSpec([None, 1, channels], dtype)
    backward = tf.function(
        functools.partial(_backward_pass, groups=groups),
        input_signature=[rows, rows, vector, statistics, statistics],
        jit_compile=jit_compile,
    )
    return forward, backward


def _normalize(x, gamma, beta, groups, epsilon, jit_compile):
    """Group norm of `x` (batch, ..., channels) with its closed-form
    gradient; `gamma`, `beta` are `(channels,)` tensors."""
    channels = x.shape[-1]
    forward_pass, backward_pass = _passes(
        channels, groups, x.dtype, jit_compile
    )

    def as_rows(tensor):
        # The shape of the tensor at hand, in the forward and in the
        # backward pass alike: a shape carried from the forward pass into
        # the gradient of a loop is no compile-time constant for XLA.
        shape = tf.shape(tensor)
        return tf.reshape(tensor, tf.stack([shape[0], -1, channels])), shape

    @tf.custom_gradient
    def forward(x, gamma, beta):
        rows, shape = as_rows(x)
        y, mean, rstd = forward_pass(rows, gamma, beta, epsilon)

        def backward(dy):
            dy_rows, dy_shape = as_rows(dy)
            dx, dgamma, dbeta = backward_pass(dy_rows, rows, gamma, mean, rstd)
            return tf.reshape(dx, dy_shape), dgamma, dbeta

        return tf.reshape(y, shape), backward

    return forward(x, gamma, beta)


def group_norm(x, gamma, beta, groups, epsilon=1e-3, *, jit_compile=True):
    """Group normalization of channels-last `x`, as Keras computes it.

    Args:
        x: Tensor `(batch, ..., channels)`; float16 and bfloat16 inputs are
            normalised in float32 and returned in their own dtype.
        gamma: Scale, `(channels,)`, or `None` for none.
        beta: Offset, `(channels,)`, or `None` for none.
        groups: Number of groups; must divide `channels`.
        epsilon: Added to the variance.
        jit_compile: Compile the forward and the backward pass each with
            XLA (see the module docstring); `False` runs them as TensorFlow
            operations, for a platform without XLA.

    Returns:
        A tensor of the shape and dtype of `x`.

    Raises:
        ValueError: if the channel axis is unknown or `groups` does not
            divide it.
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
    y = _normalize(
        x, gamma, beta, groups, tf.cast(epsilon, compute), jit_compile
    )
    return tf.cast(y, dtype)


@keras.saving.register_keras_serializable(package="tfnode")
class GroupNormalization(keras.layers.GroupNormalization):
    """`keras.layers.GroupNormalization`, channels last, faster on CPU.

    Same arguments, weights and config as the Keras layer (see its
    documentation), and the same output to float32 round-off; only
    `axis=-1` (the last axis, channels last) is supported. The statistics
    are reduced over positions first and the gradient is written out in
    closed form (see the module docstring): on CPU, forward and backward
    together take a fraction of the Keras layer's time.

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
        outputs = group_norm(inputs, gamma, beta, self.groups, self.epsilon)
        return tf.cast(outputs, self.compute_dtype)
