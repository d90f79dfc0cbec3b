"""tfnode's GroupNormalization against Keras': outputs and gradients (input,
gamma, beta) under eager, tf.function and XLA; serialisation; mixed
precision; argument checks."""

import os

import keras
import numpy as np
import tensorflow as tf

import tfnode
from tests import _script_runner
from tests import test_util
from tfnode import native
from tfnode.layers.group_norm import GroupNormalization
from tfnode.layers.group_norm import group_norm

# name, input shape (batch first), groups
_CASES = (
    ("conv_8_groups", (4, 6, 5, 16), 8),
    ("one_group", (3, 5, 4, 6), 1),
    ("groups_equal_channels", (2, 7, 7, 6), 6),
    ("rank2", (5, 12), 3),
    ("rank3", (3, 9, 8), 2),
    ("rank5", (2, 3, 4, 5, 8), 4),
)


def _pair(shape, groups, seed=0, **kwargs):
    """A Keras layer and a tfnode layer, built, with the same random
    gamma and beta."""
    rng = np.random.default_rng(seed)
    layers = (
        keras.layers.GroupNormalization(groups, **kwargs),
        GroupNormalization(groups, **kwargs),
    )
    weights = None
    for layer in layers:
        layer.build(shape)
        if weights is None:
            weights = [
                rng.normal(1.0, 0.5, w.shape).astype("float32")
                for w in layer.weights
            ]
        layer.set_weights(weights)
    return layers


def _inputs(shape, seed=0):
    rng = np.random.default_rng(seed + 100)
    # Offset and spread that differ per channel: a mean far from zero
    # checks the variance is not computed as E[x^2] - E[x]^2.
    x = rng.normal(3.0, 2.0, shape) * rng.uniform(0.5, 2.0, shape[-1:])
    w = rng.normal(size=shape)
    return tf.constant(x, tf.float32), tf.constant(w, tf.float32)


def _value_and_gradients(layer, x, w):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(tf.cast(y, tf.float32) * w)
    return (y, *tape.gradient(loss, [x, *layer.trainable_weights]))


def _looped_gradients(norm, x, w, weights):
    """Gradients with respect to `x` and `weights` of `sum(y * w)`, `y`
    three steps `y + 0.1 * norm(y)` from `x` in a `tf.while_loop` (as in a
    solve: XLA needs every shape of the loop's gradient static)."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        _, y = tf.while_loop(
            lambda i, y: i < 3,
            lambda i, y: (i + 1, y + 0.1 * norm(y)),
            (0, x),
            maximum_iterations=3,
        )
        loss = tf.reduce_sum(y * w)
    return tape.gradient(loss, [x, *weights])


class GroupNormalizationTest(test_util.TestCase):
    @test_util.parameterized.named_parameters(
        [
            (f"{case}_eager", shape, groups, "eager")
            for case, shape, groups in _CASES
        ]
        + [
            (f"{case}_{mode}", shape, groups, mode)
            for case, shape, groups in _CASES[:3]
            for mode in ("tf_function", "xla")
        ]
    )
    def test_output_and_gradients_equal_keras(self, shape, groups, mode):
        keras_layer, layer = _pair(shape, groups, epsilon=1e-5)
        x, w = _inputs(shape)
        expected = test_util.run_in_mode(
            lambda: _value_and_gradients(keras_layer, x, w), mode
        )
        actual = test_util.run_in_mode(
            lambda: _value_and_gradients(layer, x, w), mode
        )
        self.assertLen(actual, 4)  # y, dx, dgamma, dbeta
        for name, a, e in zip(
            ("y", "dx", "dgamma", "dbeta"), actual, expected, strict=True
        ):
            with self.subTest(name):
                self.assertAllCloseRelative(a, e, rtol=2e-6)
        # An independent truth: the normalised groups have mean 0, var 1.
        scaled = (actual[0] - layer.beta) / layer.gamma
        grouped = np.reshape(
            scaled, (shape[0], -1, groups, shape[-1] // groups)
        )
        self.assertAllClose(
            grouped.mean(axis=(1, 3)), np.zeros((shape[0], groups)), atol=1e-5
        )
        self.assertAllClose(
            grouped.var(axis=(1, 3)), np.ones((shape[0], groups)), atol=1e-3
        )

    @test_util.parameterized.named_parameters(
        ("tf_function", "tf_function"), ("xla", "xla")
    )
    def test_gradient_through_a_while_loop(self, mode):
        # As in a solve: the layer inside a loop body, differentiated
        # through the loop (XLA needs every shape of the gradient static).
        shape = (3, 4, 4, 8)
        keras_layer, layer = _pair(shape, 4, epsilon=1e-5)
        x, w = _inputs(shape, seed=3)

        def run(norm):
            return _looped_gradients(norm, x, w, norm.trainable_weights)

        expected = test_util.run_in_mode(lambda: run(keras_layer), "eager")
        actual = test_util.run_in_mode(lambda: run(layer), mode)
        for a, e in zip(actual, expected, strict=True):
            self.assertAllCloseRelative(a, e, rtol=1e-5)

    def test_gradient_matches_finite_differences(self):
        shape = (2, 3, 3, 4)
        x, _ = _inputs(shape, seed=2)
        x = tf.cast(x, tf.float64)
        gamma = tf.constant([0.5, 1.5, -1.0, 2.0], tf.float64)
        beta = tf.constant([0.1, -0.2, 0.3, 0.0], tf.float64)
        theoretical, numerical = tf.test.compute_gradient(
            lambda x, g, b: group_norm(x, g, b, groups=2, epsilon=1e-5),
            [x, gamma, beta],
        )
        for t, n in zip(theoretical, numerical, strict=True):
            self.assertAllClose(t, n, atol=1e-6, rtol=1e-6)

    @test_util.parameterized.named_parameters(
        ("compiled", "xla"), ("uncompiled", "ops")
    )
    def test_second_derivatives_match_finite_differences(self, implementation):
        # The gradient is itself differentiable: a Hessian-vector product
        # through the closed-form backward pass, along a direction, against
        # central differences of the gradient. (Keras' layer, checked the
        # same way on a case like this one, was 14% off.)
        shape = (2, 3, 3, 4)
        _, layer = _pair(shape, 2, dtype="float64")
        x, w = (tf.cast(t, tf.float64) for t in _inputs(shape, seed=4))
        v, e = (tf.cast(_inputs(shape, seed)[1], tf.float64) for seed in (5, 6))

        def directional(x):  # <d loss / dx, v>
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = group_norm(
                    x,
                    layer.gamma,
                    layer.beta,
                    groups=2,
                    implementation=implementation,
                )
                loss = tf.reduce_sum(y * w)
            return tf.reduce_sum(tape.gradient(loss, x) * v)

        @tf.function
        def hessian_vector_product():
            with tf.GradientTape() as tape:
                tape.watch(x)
                value = directional(x)
            return tape.gradient(value, x)

        actual = tf.reduce_sum(hessian_vector_product() * e)
        step = 1e-6
        expected = (directional(x + step * e) - directional(x - step * e)) / (
            2 * step
        )
        self.assertGreater(abs(float(expected)), 1e-2)
        self.assertAllClose(actual, expected, rtol=1e-6, atol=0)

    def test_each_pass_is_one_xla_compiled_function(self):
        # Graph mode: the forward and the backward pass each run as one
        # call of a function XLA must compile; uncompiled, as plain ops.
        shape = (2, 4, 4, 8)
        _, layer = _pair(shape, 4)
        x, w = _inputs(shape)

        def compiled_calls(implementation):
            def step():
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    y = group_norm(
                        x,
                        layer.gamma,
                        layer.beta,
                        4,
                        implementation=implementation,
                    )
                    loss = tf.reduce_sum(y * w)
                return tape.gradient(loss, x)

            graph = tf.function(step).get_concrete_function().graph
            return [
                op.type
                for op in graph.get_operations()
                if op.node_def.attr["_XlaMustCompile"].b
            ]

        self.assertLen(compiled_calls("xla"), 2)
        self.assertEmpty(compiled_calls("ops"))
        # Both ways compute the same.
        a, b = (
            group_norm(x, layer.gamma, layer.beta, 4, implementation=i)
            for i in ("xla", "ops")
        )
        self.assertAllCloseRelative(a, b, rtol=2e-6)

    def test_center_and_scale_off(self):
        shape = (3, 4, 4, 8)
        keras_layer, layer = _pair(shape, 4, center=False, scale=False)
        self.assertEmpty(layer.weights)
        x, w = _inputs(shape, seed=1)
        for a, e in zip(
            _value_and_gradients(layer, x, w),
            _value_and_gradients(keras_layer, x, w),
            strict=True,
        ):
            self.assertAllCloseRelative(a, e, rtol=2e-6)

    def test_unknown_batch_and_spatial_axes(self):
        keras_layer, layer = _pair((None, None, None, 6), 3)
        x, _ = _inputs((2, 5, 3, 6))
        fn = tf.function(
            layer,
            input_signature=[tf.TensorSpec((None, None, None, 6))],
        )
        self.assertAllCloseRelative(fn(x), keras_layer(x), rtol=2e-6)

    def test_same_weights_and_config_as_keras(self):
        keras_layer, layer = _pair((2, 4, 4, 8), 4, epsilon=1e-5)
        self.assertEqual(
            [(w.path.split("/")[-1], w.shape) for w in layer.weights],
            [(w.path.split("/")[-1], w.shape) for w in keras_layer.weights],
        )
        config = layer.get_config()
        expected = keras_layer.get_config()
        for key in ("name",):
            config.pop(key), expected.pop(key)
        self.assertEqual(config, expected)
        # Keras' layer reads tfnode's config (checkpoints map both ways).
        clone = keras.layers.GroupNormalization.from_config(config)
        clone.build((2, 4, 4, 8))
        clone.set_weights(layer.get_weights())
        x, _ = _inputs((2, 4, 4, 8))
        self.assertAllCloseRelative(clone(x), layer(x), rtol=2e-6)

    def test_serialization_round_trip(self):
        _, layer = _pair((2, 5, 5, 6), 3, epsilon=1e-5)
        config = keras.saving.serialize_keras_object(layer)
        self.assertIn("tfnode", config["registered_name"])
        clone = keras.saving.deserialize_keras_object(config)
        self.assertIsInstance(clone, GroupNormalization)
        self.assertEqual(clone.get_config(), layer.get_config())

    def test_keras_file_save_and_load(self):
        _, layer = _pair((None, 5, 5, 6), 2, epsilon=1e-5)
        model = keras.Sequential([keras.Input((5, 5, 6)), layer])
        path = os.path.join(self.get_temp_dir(), "gn.keras")
        model.save(path)
        loaded = keras.models.load_model(path)
        self.assertIsInstance(loaded.layers[0], GroupNormalization)
        x, _ = _inputs((2, 5, 5, 6))
        self.assertAllEqual(loaded(x), model(x))

    def test_mixed_precision_like_keras(self):
        shape = (2, 4, 4, 8)
        policy = keras.mixed_precision.Policy("mixed_float16")
        keras_layer, layer = _pair(shape, 4, dtype=policy)
        x, w = _inputs(shape)
        x16 = tf.cast(x, tf.float16)
        self.assertEqual(layer.gamma.dtype, "float32")
        actual = _value_and_gradients(layer, x16, w)
        expected = _value_and_gradients(keras_layer, x16, w)
        self.assertEqual(actual[0].dtype, tf.float16)
        self.assertEqual(actual[1].dtype, tf.float16)
        self.assertEqual(actual[2].dtype, tf.float32)
        for a, e in zip(actual, expected, strict=True):
            self.assertEqual(a.dtype, e.dtype)
            self.assertAllCloseRelative(
                tf.cast(a, tf.float32), tf.cast(e, tf.float32), rtol=2e-3
            )

    def test_float64(self):
        keras_layer, layer = _pair((2, 3, 3, 4), 2, dtype="float64")
        x = tf.cast(_inputs((2, 3, 3, 4))[0], tf.float64)
        y = layer(x)
        self.assertEqual(y.dtype, tf.float64)
        self.assertAllClose(y, keras_layer(x), atol=1e-10, rtol=1e-10)

    def test_exported(self):
        self.assertIs(tfnode.layers.GroupNormalization, GroupNormalization)

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "axis must be -1"):
            GroupNormalization(2, axis=1).build((2, 4, 4, 8))
        with self.assertRaisesRegex(ValueError, "groups"):
            GroupNormalization(3).build((2, 4, 4, 8))
        with self.assertRaisesRegex(ValueError, "groups must be"):
            group_norm(tf.ones((2, 4, 6)), None, None, groups=4)
        with self.assertRaisesRegex(ValueError, "rank >= 2"):
            group_norm(tf.ones((6,)), None, None, groups=2)


def _native_norm(layer):
    """`layer`'s group norm through the native kernels."""
    return lambda x: group_norm(
        x,
        layer.gamma,
        layer.beta,
        layer.groups,
        layer.epsilon,
        implementation="native",
    )


def _op_types(fn, *args):
    """The op types of `fn`'s graph and of the functions it calls."""
    graph_def = (
        tf.function(fn).get_concrete_function(*args).graph.as_graph_def()
    )
    nodes = list(graph_def.node)
    for function in graph_def.library.function:
        nodes.extend(function.node_def)
    return {node.op for node in nodes}


class NativeGroupNormTest(test_util.TestCase):
    """The C++ kernels (`tfnode/native/group_norm.cc`) against Keras'
    layer, and where `implementation="auto"` uses them."""

    def setUp(self):
        super().setUp()
        if native.load("group_norm") is None:
            self.skipTest("the native kernels cannot be built here")

    @test_util.parameterized.named_parameters(
        [
            (f"{case}_{mode}", shape, groups, mode)
            for case, shape, groups in _CASES
            for mode in ("eager", "tf_function")
        ]
    )
    def test_output_and_gradients_equal_keras(self, shape, groups, mode):
        keras_layer, layer = _pair(shape, groups, epsilon=1e-5)
        x, w = _inputs(shape)
        norm = _native_norm(layer)

        def value_and_gradients(norm, weights):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(norm(x) * w)
            return tape.gradient(loss, [x, *weights])

        expected = test_util.run_in_mode(
            lambda: (
                keras_layer(x),
                *value_and_gradients(keras_layer, keras_layer.weights),
            ),
            mode,
        )
        actual = test_util.run_in_mode(
            lambda: (norm(x), *value_and_gradients(norm, layer.weights)),
            mode,
        )
        for name, a, e in zip(
            ("y", "dx", "dgamma", "dbeta"), actual, expected, strict=True
        ):
            with self.subTest(name):
                self.assertAllCloseRelative(a, e, rtol=2e-6)

    def test_gradient_matches_finite_differences(self):
        # float32 central differences of a smooth scalar: loose, but a
        # wrong term in the closed form is off by far more.
        shape = (2, 3, 3, 4)
        x, w = _inputs(shape, seed=7)
        gamma = tf.constant([0.5, 1.5, -1.0, 2.0])
        beta = tf.constant([0.1, -0.2, 0.3, 0.0])

        def loss(x, gamma, beta):
            y = group_norm(x, gamma, beta, 2, implementation="native")
            return tf.reduce_sum(tf.sin(y) * w)

        theoretical, numerical = tf.test.compute_gradient(
            loss, [x, gamma, beta], delta=1e-2
        )
        for t, n in zip(theoretical, numerical, strict=True):
            self.assertAllClose(t, n, atol=2e-2, rtol=2e-2)

    def test_second_derivatives_equal_autodiff_of_the_formulas(self):
        # A Hessian-vector product through the native gradient kernel (and
        # the statistics it reads) against the same product through the
        # passes written as TensorFlow ops.
        shape = (3, 4, 4, 8)
        _, layer = _pair(shape, 4, epsilon=1e-5)
        x, w = _inputs(shape, seed=8)
        v = _inputs(shape, seed=9)[1]

        @tf.function
        def hessian_vector_product(implementation):
            with tf.GradientTape() as outer:
                outer.watch(x)
                with tf.GradientTape() as inner:
                    inner.watch(x)
                    y = group_norm(
                        x,
                        layer.gamma,
                        layer.beta,
                        4,
                        1e-5,
                        implementation=implementation,
                    )
                    loss = tf.reduce_sum(y * y * w)
                gradients = inner.gradient(loss, [x, *layer.weights])
                value = tf.reduce_sum(gradients[0] * v) + sum(
                    tf.reduce_sum(g) for g in gradients[1:]
                )
            return outer.gradient(value, [x, *layer.weights])

        actual = hessian_vector_product("native")
        expected = hessian_vector_product("ops")
        self.assertGreater(float(tf.reduce_max(tf.abs(expected[0]))), 1e-2)
        for a, e in zip(actual, expected, strict=True):
            self.assertAllCloseRelative(a, e, rtol=1e-5)

    def test_auto_uses_them_in_graphs_and_not_under_xla(self):
        shape = (2, 4, 4, 8)
        _, layer = _pair(shape, 4)
        x, w = _inputs(shape)

        def step():
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(layer(x) * w)
            return tape.gradient(loss, [x, *layer.weights])

        kernels = {"TfnodeGroupNorm", "TfnodeGroupNormGrad"}
        self.assertContainsSubset(kernels, _op_types(step))
        compiled = tf.function(step, jit_compile=True)
        self.assertEmpty(kernels & _op_types(compiled))
        x64 = tf.cast(x, tf.float64)
        self.assertEmpty(
            kernels & _op_types(lambda: group_norm(x64, None, None, 4))
        )
        for a, e in zip(compiled(), step(), strict=True):
            self.assertAllCloseRelative(a, e, rtol=2e-6)

    def test_while_loop_gradient_equals_xla_passes(self):
        shape = (3, 4, 4, 8)
        _, layer = _pair(shape, 4, epsilon=1e-5)
        x, w = _inputs(shape, seed=3)

        def run(implementation):
            def norm(y):
                return group_norm(
                    y,
                    layer.gamma,
                    layer.beta,
                    4,
                    1e-5,
                    implementation=implementation,
                )

            return _looped_gradients(norm, x, w, layer.weights)

        actual = tf.function(lambda: run("native"))()
        expected = tf.function(lambda: run("xla"))()
        for a, e in zip(actual, expected, strict=True):
            self.assertAllCloseRelative(a, e, rtol=2e-6)

    def test_exported_model_holds_no_native_op(self):
        # A SavedModel must load where the kernels are not built:
        # `model.export` and `tf.saved_model.save` trace in the save
        # context, where `"auto"` uses the XLA passes.
        _, layer = _pair((None, 5, 5, 8), 4)
        model = keras.Sequential([keras.Input((5, 5, 8)), layer])
        x, _ = _inputs((2, 5, 5, 8))
        path = os.path.join(self.get_temp_dir(), "exported")
        model.export(path, verbose=False)
        with open(os.path.join(path, "saved_model.pb"), "rb") as file:
            saved = file.read()
        self.assertNotIn(b"TfnodeGroupNorm", saved)
        loaded = tf.saved_model.load(path)
        self.assertAllCloseRelative(loaded.serve(x), model(x), rtol=2e-6)

    def test_empty_batch(self):
        _, layer = _pair((0, 4, 4, 8), 4)
        x = tf.zeros((0, 4, 4, 8))
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = _native_norm(layer)(x)
        self.assertEqual(y.shape, (0, 4, 4, 8))
        dx, dgamma = tape.gradient(y, [x, layer.gamma])
        self.assertEqual(dx.shape, (0, 4, 4, 8))
        self.assertAllEqual(dgamma, tf.zeros(8))

    def test_loading_again_gives_the_same_kernels(self):
        # TensorFlow registers a library's ops once per process; a second
        # `tf.load_op_library` of it would give a module without them.
        kernels = native.load("group_norm")
        native.load.cache_clear()
        self.assertIs(native.load("group_norm"), kernels)
        self.assertTrue(hasattr(kernels, "tfnode_group_norm"))

    def test_kernels_check_their_inputs(self):
        kernels = native.load("group_norm")
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "divide"):
            kernels.tfnode_group_norm(
                tf.ones((2, 6)), tf.ones(6), tf.ones(6), groups=4, epsilon=1e-3
            )
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "gamma"):
            kernels.tfnode_group_norm(
                tf.ones((2, 6)), tf.ones(3), tf.ones(3), groups=3, epsilon=1e-3
            )
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "mean"):
            kernels.tfnode_group_norm_grad(
                tf.ones((2, 6)),
                tf.ones((2, 6)),
                tf.ones(6),
                tf.ones((2, 2)),
                tf.ones((2, 3)),
                groups=3,
            )

    def test_bad_implementation(self):
        x = tf.ones((2, 4, 4, 8))
        with self.assertRaisesRegex(ValueError, "implementation must be one"):
            group_norm(x, None, None, 4, implementation="fast")
        with self.assertRaisesRegex(ValueError, "float32, not float64"):
            group_norm(
                tf.cast(x, tf.float64), None, None, 4, implementation="native"
            )
        with self.assertRaisesRegex(ValueError, "XLA cannot compile them"):
            tf.function(
                lambda: group_norm(x, None, None, 4, implementation="native"),
                jit_compile=True,
            )()


class GroupNormBenchmarkTest(_script_runner.ScriptTestCase):
    def test_quick_run_times_every_variant(self):
        self.assert_quick_run_times_every_variant(
            "benchmark_group_norm", "group_norm"
        )


if __name__ == "__main__":
    tf.test.main()
