"""tfnode's Conv1D/Conv2D against Keras': the patch product equals the
convolution; inside an XLA loop the layers compute on patches (outputs and
gradients equal to Keras' layer in graph mode), elsewhere Keras' own
convolution runs; serialisation and weights shared with Keras; the
benchmark of the patches in its `--quick` mode."""

import keras
import numpy as np
import tensorflow as tf

import tfnode
from tests import _script_runner
from tests import test_util
from tfnode.layers.conv import patch_convolution
from tfnode.stepping import in_xla_loop_context

# name, Keras class, tfnode class, input shape, kernel size, padding
_LAYERS = (
    (
        "conv2d_same",
        keras.layers.Conv2D,
        tfnode.layers.Conv2D,
        (3, 7, 6, 5),
        3,
        "same",
    ),
    (
        "conv2d_valid_rect",
        keras.layers.Conv2D,
        tfnode.layers.Conv2D,
        (2, 8, 7, 4),
        (3, 2),
        "valid",
    ),
    (
        "conv2d_same_even",
        keras.layers.Conv2D,
        tfnode.layers.Conv2D,
        (2, 6, 6, 3),
        4,
        "same",
    ),
    (
        "conv1d_same",
        keras.layers.Conv1D,
        tfnode.layers.Conv1D,
        (4, 9, 5),
        3,
        "same",
    ),
    (
        "conv1d_valid",
        keras.layers.Conv1D,
        tfnode.layers.Conv1D,
        (3, 8, 2),
        2,
        "valid",
    ),
)


def _pair(keras_cls, tfnode_cls, shape, kernel_size, padding):
    """A Keras layer and a tfnode layer, built, with the same weights."""
    kwargs = dict(filters=4, kernel_size=kernel_size, padding=padding)
    reference, layer = keras_cls(**kwargs), tfnode_cls(**kwargs)
    reference.build(shape)
    layer.build(shape)
    rng = np.random.default_rng(0)
    weights = [
        rng.normal(size=w.shape).astype("float32") for w in reference.weights
    ]
    reference.set_weights(weights)
    layer.set_weights(weights)
    return reference, layer


def _op_types(fn, x):
    """Every op type in the graph of `fn(x)` and the functions it calls
    (loop bodies included)."""
    graph_def = fn.get_concrete_function(x).graph.as_graph_def()
    types = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        types.update(node.op for node in function.node_def)
    return types


def _in_loop(layer, x, steps=2):
    """`steps` applications of `x + layer(x)` in a `tf.while_loop`, and the
    gradient of the sum of squares with respect to `x` and the weights."""

    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)

            def body(i, y):
                # A per-sample scalar of the output: "valid" changes shapes.
                out = tf.tanh(layer(y))
                axes = list(range(1, len(out.shape)))
                return i + 1, y + tf.reduce_mean(out, axes, keepdims=True)

            y = tf.while_loop(
                lambda i, y: i < steps, body, (0, x), maximum_iterations=steps
            )[1]
            loss = tf.reduce_sum(y**2)
        return y, tape.gradient(loss, [x] + layer.trainable_weights)

    return run


class PatchConvolutionTest(test_util.TestCase):
    @test_util.parameterized.named_parameters(
        ("2d_same_3", (2, 6, 5, 3), (3, 3), "SAME"),
        ("2d_same_even", (2, 6, 5, 3), (2, 4), "SAME"),
        ("2d_valid", (2, 6, 5, 3), (3, 2), "VALID"),
        ("1d_same", (3, 10, 2), (5,), "SAME"),
        ("1d_valid", (3, 10, 2), (3,), "VALID"),
        ("3d_same", (1, 4, 5, 3, 2), (3, 3, 3), "SAME"),
    )
    def test_equals_the_convolution(self, shape, kernel_size, padding):
        rng = np.random.default_rng(1)
        x = tf.constant(rng.normal(size=shape), tf.float32)
        kernel = tf.constant(
            rng.normal(size=kernel_size + (shape[-1], 4)), tf.float32
        )
        expected = tf.nn.convolution(x, kernel, padding=padding)
        actual = patch_convolution(x, kernel, padding.lower())
        self.assertAllClose(expected, actual, rtol=1e-5, atol=1e-5)


class ConvLayerTest(test_util.TestCase):
    @test_util.parameterized.named_parameters(*_LAYERS)
    def test_xla_loop_computes_on_patches_as_keras(
        self, keras_cls, tfnode_cls, shape, kernel_size, padding
    ):
        reference, layer = _pair(
            keras_cls, tfnode_cls, shape, kernel_size, padding
        )
        x = tf.random.stateless_normal(shape, [0, 2])
        expected = tf.function(_in_loop(reference, x))(x)
        xla = tf.function(_in_loop(layer, x), jit_compile=True)
        self.assertAllClose(expected, xla(x), rtol=1e-4, atol=1e-4)
        op_types = _op_types(xla, x)
        # Keras runs Conv1D as a Conv2D: neither is left in XLA's loop.
        self.assertNoCommonElements(
            {"Conv1D", "Conv2D", "Conv2DBackpropFilter"}, op_types
        )
        self.assertIn("MatMul", op_types)

    @test_util.parameterized.named_parameters(*_LAYERS[:1])
    def test_keras_convolution_elsewhere(
        self, keras_cls, tfnode_cls, shape, kernel_size, padding
    ):
        del keras_cls
        layer = tfnode_cls(filters=4, kernel_size=kernel_size, padding=padding)
        x = tf.random.stateless_normal(shape, [0, 3])
        layer.build(shape)
        for fn in (
            tf.function(_in_loop(layer, x)),  # graph mode
            tf.function(layer, jit_compile=True),  # XLA, no loop
        ):
            self.assertIn("Conv2D", _op_types(fn, x))

    def test_dilated_layer_runs_keras_convolution_in_xla_loop(self):
        layer = tfnode.layers.Conv2D(4, 3, dilation_rate=2, padding="same")
        layer.build((2, 8, 8, 4))
        x = tf.random.stateless_normal((2, 8, 8, 4), [0, 4])

        @tf.function(jit_compile=True)
        def dilated(x):
            return tf.while_loop(
                lambda i, y: i < 1, lambda i, y: (i + 1, layer(y)), (0, x)
            )[1]

        self.assertIn("Conv2D", _op_types(dilated, x))

    def test_causal_conv1d_equals_keras_in_xla_loop(self):
        reference, layer = _pair(
            keras.layers.Conv1D, tfnode.layers.Conv1D, (3, 8, 2), 3, "causal"
        )
        x = tf.random.stateless_normal((3, 8, 2), [0, 6])
        expected = tf.function(_in_loop(reference, x))(x)
        actual = tf.function(_in_loop(layer, x), jit_compile=True)(x)
        self.assertAllClose(expected, actual, rtol=1e-4, atol=1e-4)

    def test_in_xla_loop_context(self):
        seen = []

        def record(x):
            seen.append(in_xla_loop_context())
            return x

        def looped(x):
            return tf.while_loop(
                lambda i, y: i < 1, lambda i, y: (i + 1, record(y)), (0, x)
            )[1]

        x = tf.ones([2])
        tf.function(looped, jit_compile=True).get_concrete_function(x)
        tf.function(looped).get_concrete_function(x)
        tf.function(record, jit_compile=True).get_concrete_function(x)
        self.assertEqual([True, False, False], seen)

    def test_serialises_and_shares_weights_with_keras(self):
        reference, layer = _pair(
            keras.layers.Conv2D, tfnode.layers.Conv2D, (2, 5, 5, 3), 3, "same"
        )
        config = keras.saving.serialize_keras_object(layer)
        restored = keras.saving.deserialize_keras_object(config)
        self.assertIsInstance(restored, tfnode.layers.Conv2D)
        self.assertEqual(
            {**reference.get_config(), "name": None},
            {**restored.get_config(), "name": None},
        )
        restored.set_weights(reference.get_weights())
        x = tf.random.stateless_normal((2, 5, 5, 3), [0, 5])
        self.assertAllClose(reference(x), restored(x))


class ConvPatchesBenchmarkTest(_script_runner.ScriptTestCase):
    def test_quick_run_times_every_variant(self):
        self.assert_quick_run_times_every_variant(
            "benchmark_conv_patches", "conv_patches"
        )


if __name__ == "__main__":
    test_util.main()
