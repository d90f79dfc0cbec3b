"""Convolutions that XLA:CPU compiles well inside `tf.while_loop`s.

`Conv1D` and `Conv2D` are Keras' layers (same arguments, weights, config
and output to float32 round-off) with one difference: while a graph
compiled by XLA builds a `while` loop body, a stride-1, undilated,
ungrouped, channels-last convolution is computed as one matrix product of
its patches,

```none
patches[n, p, (offset, c)] = padded_x[n, p + offset, c]
y[n, p, :] = patches[n, p, :] @ reshape(kernel, (prod(kernel_size) * C_in,
                                                  filters))
```

(im2col; Chellapilla et al., 2006). Its gradient is two more matrix
products and the slices' padding. Inside a loop, XLA:CPU compiles the
gradient of a native convolution into code up to 45x slower than the
graph-mode kernels, and that of the patches into code 1.4-3.5x slower
(docs/benchmarks/conv_patches.md), which what XLA fuses around them can
win back: a solve that adapts its steps, or a grid too long to unroll,
differentiates its field in such a loop. Everywhere
else (graph mode, eager, XLA outside loops, strides, dilations) the layers
run Keras' own convolution.

The papers' vector fields (`tfnode.layers.vector_fields`) use these layers.

#### References

[1]: Chellapilla, Puri, Simard. High Performance Convolutional Neural
     Networks for Document Processing. IWFHR, 2006.
"""

import itertools

import keras
import tensorflow as tf

from tfnode.stepping.xla import in_xla_loop_context

__all__ = ["Conv1D", "Conv2D", "patch_convolution"]


def patch_convolution(inputs, kernel, padding):
    """A stride-1 channels-last convolution as one product of patches.

    Args:
        inputs: `(batch, *spatial, C_in)` with static spatial sizes.
        kernel: `(*kernel_size, C_in, filters)`.
        padding: `"valid"` or `"same"` (TensorFlow's: for an even kernel the
            extra zero goes after).

    Returns:
        `(batch, *out_spatial, filters)`, what `tf.nn.convolution` gives.
    """
    kernel_size = kernel.shape[:-2]
    if padding == "same":
        pads = [[0, 0]]
        pads += [[(k - 1) // 2, k - 1 - (k - 1) // 2] for k in kernel_size]
        inputs = tf.pad(inputs, pads + [[0, 0]])
    out_sizes = [
        n - k + 1 for n, k in zip(inputs.shape[1:-1], kernel_size, strict=True)
    ]

    def patch(offset):
        starts = zip(offset, out_sizes, strict=True)
        return inputs[
            (slice(None),) + tuple(slice(o, o + n) for o, n in starts)
        ]

    offsets = itertools.product(*map(range, kernel_size))
    patches = tf.concat([patch(offset) for offset in offsets], axis=-1)
    filters = kernel.shape[-1]
    rows = tf.reshape(patches, [-1, patches.shape[-1]])
    outputs = tf.matmul(rows, tf.reshape(kernel, [-1, filters]))
    out_shape = tf.concat([tf.shape(patches)[:-1], [filters]], axis=0)
    return tf.reshape(outputs, out_shape)


class _PatchConvolution:
    """Mixin over a Keras convolution: patches inside XLA loops."""

    def _runs_on_patches(self, inputs):
        return (
            self.data_format == "channels_last"
            and self.padding in ("valid", "same")
            and self.groups == 1
            and all(s == 1 for s in self.strides)
            and all(d == 1 for d in self.dilation_rate)
            and None not in inputs.shape[1:]
            and in_xla_loop_context()
        )

    def convolution_op(self, inputs, kernel):
        if self._runs_on_patches(inputs):
            return patch_convolution(inputs, kernel, self.padding)
        return super().convolution_op(inputs, kernel)


@keras.saving.register_keras_serializable(package="tfnode")
class Conv1D(_PatchConvolution, keras.layers.Conv1D):
    """`keras.layers.Conv1D`, computed on patches inside XLA loops.

    Same arguments, weights and config as the Keras layer; see the module
    docstring for when the patch product replaces Keras' convolution.
    """

    def call(self, inputs):
        if self.padding == "causal":
            return super().call(inputs)
        # Keras' Conv1D.call convolves itself; its base's call goes
        # through `convolution_op`.
        return super(keras.layers.Conv1D, self).call(inputs)


@keras.saving.register_keras_serializable(package="tfnode")
class Conv2D(_PatchConvolution, keras.layers.Conv2D):
    """`keras.layers.Conv2D`, computed on patches inside XLA loops.

    Same arguments, weights and config as the Keras layer; see the module
    docstring for when the patch product replaces Keras' convolution.
    """
