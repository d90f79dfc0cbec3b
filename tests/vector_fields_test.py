"""The vector fields: shapes, parameters, initializers, serialization, the
time channel, and the depth-varying field against a hand-written ResNet."""

import math

import keras
import numpy as np
import tensorflow as tf

import tfnode
from tests import test_util
from tfnode import vector_field
from tfnode.layers import vector_fields as vf
from tfnode.vector_field import call_field

# name, field factory, state shape (batch axis excluded), trainable params,
# non-trainable params (BatchNorm moving statistics).
_FIELDS = (
    ("resnet", lambda: vf.ResNetField(), (6, 6, 8), 2 * 576 + 32, 32),
    ("squeezenext", lambda: vf.SqueezeNextField(), (4, 4, 32), 2568, 176),
    ("conv1d", lambda: vf.Conv1DField(32), (2, 1), 3201, 0),
    ("conv2d", lambda: vf.Conv2DField(8, "lrelu"), (5, 5, 3), 643, 0),
    ("dense", lambda: vf.DenseField(32, "sigmoid"), (2,), 1218, 0),
    ("groupnorm", lambda: vf.GroupNormConvField(), (7, 7, 6), 342, 0),
    (
        "tiny_residual",
        lambda: vf.TinyResidualField(),
        (5, 5, 4),
        2 * 148 + 16,
        16,
    ),
    (
        "depth_varying",
        lambda: vf.DepthVaryingField(
            [vf.TinyResidualField(zero_init=False) for _ in range(3)]
        ),
        (5, 5, 4),
        3 * (2 * 148 + 16),
        3 * 16,
    ),
)

# The ConcatConv count: every conv/dense layer gets one more input channel.
_TIME_CHANNEL_EXTRA = (
    ("resnet", vf.ResNetField, {}, (6, 6, 8), 2 * 9 * 8),
    (
        "squeezenext",
        vf.SqueezeNextField,
        {},
        (4, 4, 32),
        16 + 8 + 3 * 16 + 3 * 16 + 32,
    ),
    ("conv1d", vf.Conv1DField, {"channels": 32}, (2, 1), 32 + 3 * 32 + 1),
    ("conv2d", vf.Conv2DField, {"channels": 8}, (5, 5, 3), 8 + 9 * 8 + 3),
    ("dense", vf.DenseField, {"channels": 32}, (2,), 32 + 32 + 2),
    ("groupnorm", vf.GroupNormConvField, {}, (7, 7, 6), 9 * 6),
    ("tiny_residual", vf.TinyResidualField, {}, (5, 5, 4), 2 * 9 * 4),
)


def _state(shape, seed=0, batch=3, dtype=tf.float32):
    return tf.random.stateless_normal((batch, *shape), [seed, 7], dtype=dtype)


def _num_params(weights):
    return sum(math.prod(w.shape) for w in weights)


def _built(factory, shape, dtype=None):
    field = factory() if dtype is None else factory(dtype)
    field.build((None, *shape))
    return field


def _randomize(layer, seed=3):
    """Sets every weight to random values (BN gammas included), so that a
    test does not pass because some weights start at zero."""
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        value = (
            rng.uniform(0.5, 1.5, w.shape)
            if "variance" in w.path
            else (rng.normal(0.0, 0.3, w.shape))
        )
        w.assign(value.astype(w.dtype))


class VectorFieldsTest(test_util.TestCase):
    @test_util.parameterized.named_parameters(
        (name, factory, shape, trainable, non_trainable)
        for name, factory, shape, trainable, non_trainable in _FIELDS
    )
    def test_output_like_input_and_parameter_counts(
        self, factory, shape, trainable, non_trainable
    ):
        field = _built(factory, shape)
        self.assertEqual(_num_params(field.trainable_weights), trainable)
        self.assertEqual(
            _num_params(field.non_trainable_weights), non_trainable
        )
        y = _state(shape)
        for training in (False, True):
            dydt = field(tf.constant(0.3), y, training=training)
            self.assertEqual(dydt.shape, y.shape)
            self.assertEqual(dydt.dtype, y.dtype)
            self.assertTrue(np.all(np.isfinite(dydt)))

    @test_util.parameterized.named_parameters(
        (name, factory, shape) for name, factory, shape, *_ in _FIELDS
    )
    def test_builds_on_first_call(self, factory, shape):
        field = factory()
        dydt = field(0.5, _state(shape))
        self.assertTrue(field.built)
        self.assertEqual(dydt.shape, (3, *shape))

    @test_util.parameterized.named_parameters(
        (name, factory, shape) for name, factory, shape, *_ in _FIELDS
    )
    def test_config_round_trip(self, factory, shape):
        field = _built(factory, shape)
        _randomize(field)
        config = keras.saving.serialize_keras_object(field)
        clone = keras.saving.deserialize_keras_object(config)
        self.assertIsNot(clone, field)
        self.assertEqual(type(clone), type(field))
        self.assertEqual(clone.get_config(), field.get_config())
        self.assertTrue(clone.built)  # from the build config
        self.assertEqual(
            [w.shape for w in clone.weights], [w.shape for w in field.weights]
        )
        clone.set_weights(field.get_weights())
        y = _state(shape, seed=1)
        self.assertAllClose(
            clone(0.2, y, training=False), field(0.2, y, training=False)
        )

    def test_float64_field_keeps_float64(self):
        field = vf.Conv2DField(4, dtype="float64")
        y = _state((5, 5, 2), dtype=tf.float64)
        self.assertEqual(field(0.0, y).dtype, tf.float64)
        block = tfnode.ODEBlock(
            vf.TinyResidualField(dtype="float64"),
            solver="rk4",
            steps=2,
            dtype="float64",
        )
        self.assertEqual(
            block(_state((4, 4, 2), dtype=tf.float64)).dtype, tf.float64
        )

    def test_fields_follow_their_formulas(self):
        y = _state((5, 5, 3), seed=4)
        field = _built(lambda: vf.Conv2DField(6, "lrelu"), (5, 5, 3))
        _randomize(field)

        def leaky(x):
            return tf.where(x > 0, x, 0.01 * x)

        expected = field.layer3(leaky(field.layer2(leaky(field.layer1(y)))))
        self.assertAllClose(field(0.0, y), expected, atol=1e-6)

        field = _built(lambda: vf.GroupNormConvField(), (5, 5, 3))
        _randomize(field)
        expected = field.norm(field.conv(tf.nn.relu(field.norm(y))))
        self.assertAllClose(field(0.0, y), expected, atol=1e-6)

        field = _built(lambda: vf.ResNetField(), (5, 5, 3))
        _randomize(field)
        self.assertAllGreaterEqual(field(0.0, y, training=True), 0.0)

    def test_group_norm_is_shared(self):
        field = _built(lambda: vf.GroupNormConvField(), (7, 7, 6))
        # One GroupNorm (gamma, beta: 2 * 6) and the conv (6 * 6 * 9 + 6).
        self.assertEqual(_num_params(field.norm.trainable_weights), 12)
        self.assertEqual(_num_params(field.trainable_weights), 12 + 330)

    def test_initializers_match_the_references(self):
        keras.utils.set_random_seed(0)
        # Kaiming normal (fan_in): std sqrt(2 / fan_in), zero biases.
        field = _built(lambda: vf.Conv2DField(128), (8, 8, 3))
        kernel = field.layer2.kernel.numpy()
        self.assertAllClose(kernel.std(), math.sqrt(2.0 / (9 * 128)), rtol=0.03)
        self.assertAllEqual(field.layer2.bias, np.zeros(128))
        self.assertGreater(
            np.abs(kernel).max(), 3.5 * kernel.std()
        )  # untruncated
        # PyTorch default: U(+-1/sqrt(fan_in)) for weights and biases.
        field = _built(lambda: vf.TinyResidualField(), (4, 4, 64))
        bound = 1.0 / math.sqrt(9 * 64)
        for weight in (field.conv1.kernel, field.conv1.bias):
            self.assertLessEqual(np.abs(weight).max(), bound)
            self.assertGreater(np.abs(weight).max(), 0.9 * bound)
        # zero_init: the last BatchNorm starts at gamma = beta = 0, f = 0.
        self.assertAllEqual(field.bn2.gamma, np.zeros(64))
        self.assertAllEqual(field.bn2.beta, np.zeros(64))
        self.assertAllEqual(
            field(0.0, _state((4, 4, 64)), training=True),
            np.zeros((3, 4, 4, 64)),
        )
        # ANODE's conv_init: Xavier uniform, gain sqrt(2), zero biases.
        field = _built(lambda: vf.SqueezeNextField(), (4, 4, 256))
        kernel = field.convs[0].kernel.numpy()  # 1x1, 256 -> 128
        bound = math.sqrt(2.0) * math.sqrt(6.0 / (256 + 128))
        self.assertLessEqual(np.abs(kernel).max(), bound)
        self.assertGreater(np.abs(kernel).max(), 0.95 * bound)
        self.assertAllEqual(field.convs[0].bias, np.zeros(128))

    def test_squeezenext_widths(self):
        field = _built(lambda: vf.SqueezeNextField(), (4, 4, 64))
        self.assertEqual(
            [tuple(c.kernel.shape) for c in field.convs],
            [
                (1, 1, 64, 32),
                (1, 1, 32, 16),
                (1, 3, 16, 32),
                (3, 1, 32, 32),
                (1, 1, 32, 64),
            ],
        )

    @test_util.parameterized.named_parameters(
        (name, cls, kwargs, shape, extra)
        for name, cls, kwargs, shape, extra in _TIME_CHANNEL_EXTRA
    )
    def test_time_channel(self, cls, kwargs, shape, extra):
        plain = _built(lambda: cls(**kwargs), shape)
        timed = _built(lambda: cls(time_channel=True, **kwargs), shape)
        self.assertEqual(timed.count_params() - plain.count_params(), extra)
        _randomize(plain)
        _randomize(timed)
        y = _state(shape, seed=5)
        self.assertAllClose(
            plain(0.0, y, training=True), plain(0.9, y, training=True)
        )
        self.assertNotAllClose(
            timed(0.0, y, training=True), timed(0.9, y, training=True)
        )
        self.assertTrue(cls.from_config(timed.get_config()).time_channel)

    def test_time_channel_is_t_on_every_position(self):
        y = _state((3, 4, 2))
        out = vf.append_time(tf.constant(0.25), y)
        self.assertEqual(out.shape, (3, 3, 4, 3))
        self.assertAllEqual(out[..., :2], y)
        self.assertAllEqual(out[..., 2], np.full((3, 3, 4), 0.25))
        # Time as a concatenated input: the first conv sees [y, t].
        field = _built(lambda: vf.Conv2DField(4, time_channel=True), (5, 5, 2))
        _randomize(field)
        y = _state((5, 5, 2), seed=2)
        t = tf.constant(0.7)
        x = tf.nn.relu(field.layer1(vf.append_time(t, y)))
        x = tf.nn.relu(field.layer2(vf.append_time(t, x)))
        expected = field.layer3(vf.append_time(t, x))
        self.assertAllClose(field(t, y), expected, atol=1e-6)

    def test_time_channel_in_an_ode_block(self):
        keras.utils.set_random_seed(0)
        field = vf.DenseField(8, time_channel=True)
        block = tfnode.ODEBlock(field, solver="rk4", steps=4)
        y0 = _state((2,))
        y1 = block(y0)

        def reference(t, y):
            x = tf.nn.relu(field.layer1(vf.append_time(t, y)))
            x = tf.nn.relu(field.layer2(vf.append_time(t, x)))
            return field.layer3(vf.append_time(t, x))

        expected = tfnode.odeint(
            reference, y0, [0.0, 1.0], solver="rk4", steps=4
        )[-1]
        self.assertAllClose(y1, expected, atol=1e-6)

    def test_bad_arguments_name_the_argument(self):
        with self.assertRaisesRegex(ValueError, "activation='tanh'.*lrelu"):
            vf.Conv2DField(8, activation="tanh")
        with self.assertRaisesRegex(ValueError, "channels must be an int"):
            vf.DenseField(0)
        with self.assertRaisesRegex(ValueError, "reduction"):
            vf.SqueezeNextField(reduction=1.5)
        with self.assertRaisesRegex(ValueError, "time_channel"):
            vf.ResNetField(time_channel="yes")
        with self.assertRaisesRegex(ValueError, "fields must be"):
            vf.DepthVaryingField([])
        with self.assertRaisesRegex(ValueError, "groups must divide"):
            vf.GroupNormConvField(groups=4).build((None, 5, 5, 6))
        with self.assertRaisesRegex(ValueError, "rank 4"):
            vf.Conv2DField(8).build((None, 5, 3))


class DepthVaryingFieldTest(test_util.TestCase):
    def _field(self, depth, channels=3):
        keras.utils.set_random_seed(depth)
        field = vf.DepthVaryingField(
            [vf.TinyResidualField(zero_init=False) for _ in range(depth)]
        )
        field.build((None, 4, 4, channels))
        for n, sub in enumerate(field.fields):
            _randomize(sub, seed=10 + n)
        return field

    def test_index_is_round_t_depth_clipped(self):
        field = self._field(4)
        times = [-0.3, 0.0, 0.1, 0.13, 0.25, 0.26, 0.5, 0.74, 0.75, 1.0, 1.7]
        self.assertEqual(
            [int(field.index(t)) for t in times],
            [0, 0, 0, 1, 1, 1, 2, 3, 3, 3, 3],
        )

    def test_calls_sub_field_of_the_time(self):
        field = self._field(4)
        y = _state((4, 4, 3))
        for n, sub in enumerate(field.fields):
            for training in (False, True):
                self.assertAllClose(
                    field(n / 4, y, training=training),
                    sub(n / 4, y, training=training),
                    atol=1e-6,
                )

    def test_euler_solve_is_the_residual_network(self):
        depth = 5
        field = self._field(depth)
        x0 = _state((4, 4, 3), seed=8)
        for training in (False, True):
            x = x0
            for sub in field.fields:
                x = x + sub(0.0, x, training=training) / depth
            block = tfnode.ODEBlock(field, solver="euler", steps=depth)
            self.assertAllClose(block(x0, training=training), x, atol=1e-6)

    def test_heun_solve_uses_consecutive_sub_fields(self):
        depth = 4
        field = self._field(depth)
        x = x0 = _state((4, 4, 3), seed=9)
        f = [lambda y, s=s: s(0.0, y, training=False) for s in field.fields]
        for n in range(depth - 1):
            k1 = f[n](x)
            x = x + (k1 + f[n + 1](x + k1 / depth)) / (2 * depth)
        block = tfnode.ODEBlock(
            field, t1=(depth - 1) / depth, solver="heun", steps=depth - 1
        )
        self.assertAllClose(block(x0), x, atol=1e-6)

    def test_training_updates_only_the_chosen_batch_norm(self):
        field = self._field(3)
        before = [s.bn1.moving_mean.numpy() for s in field.fields]
        tf.function(lambda y: field(0.34, y, training=True))(_state((4, 4, 3)))
        after = [s.bn1.moving_mean.numpy() for s in field.fields]
        self.assertAllClose(after[0], before[0])
        self.assertNotAllClose(after[1], before[1])
        self.assertAllClose(after[2], before[2])

    def test_training_gradients_are_the_sub_field_gradients(self):
        field = self._field(3)
        y = _state((4, 4, 3), seed=6)
        sub = field.fields[2]

        def grads(func):
            with tf.GradientTape() as tape:
                tape.watch(y)
                loss = tf.reduce_sum(func(0.8, y, training=True) ** 3)
            return tape.gradient(loss, [y, *field.trainable_weights])

        expected, actual = grads(sub), grads(field)
        for a, e in zip(actual, expected, strict=True):
            if e is None:  # a weight of another sub-field: no gradient
                self.assertTrue(a is None or not np.any(a))
            else:
                self.assertAllClose(a, e, atol=1e-5)

    def test_state_updates_are_collected_by_a_stateless_scope(self):
        field = self._field(3)
        before = field.fields[2].bn2.moving_variance.numpy()

        @tf.function
        def run(y):
            with keras.StatelessScope() as scope:
                field(0.9, y, training=True)
                return scope.get_current_value(
                    field.fields[2].bn2.moving_variance
                )

        recorded = run(_state((4, 4, 3)))
        self.assertAllClose(field.fields[2].bn2.moving_variance, before)
        self.assertNotAllClose(recorded, before)

    def test_reversible_gradient_is_close_to_backprop(self):
        depth = 16
        field = self._field(depth, channels=2)
        for sub in field.fields:  # small residuals: a Lipschitz field
            for w in sub.bn2.trainable_weights:
                w.assign(0.1 * w)
        x0 = _state((4, 4, 2), seed=11)

        def grads(adjoint):
            block = tfnode.ODEBlock(
                field, solver="euler", steps=depth, adjoint=adjoint
            )
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(block(x0, training=False) ** 2)
            return tape.gradient(loss, field.trainable_weights)

        exact, reversible = grads("backprop"), grads("reversible")
        for a, b in zip(reversible, exact, strict=True):
            self.assertAllCloseRelative(a, b, rtol=0.05)


class _TimeAndTraining(keras.layers.Layer):
    """`f(t, y) = t * y`, recording the `training` it is called with."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen = []

    def call(self, t, y, training=None):
        self.seen.append(training)
        return tf.cast(t, y.dtype) * y


class CallFieldTest(test_util.TestCase):
    def tearDown(self):
        keras.mixed_precision.set_global_policy("float32")
        super().tearDown()

    def test_training_only_where_taken(self):
        field = _TimeAndTraining()
        y = tf.ones([2, 3])
        out = call_field(field, tf.constant(2.0), y, training=True)
        self.assertAllClose(out, 2 * y)
        self.assertEqual(field.seen, [True])
        autonomous = keras.layers.Dense(3)
        out = call_field(autonomous, tf.constant(2.0), y, training=True)
        self.assertEqual(out.shape, (2, 3))
        self.assertAllClose(
            call_field(lambda t, y, k: k * y, 0.0, y, 3.0, training=True),
            3 * y,
        )

    def test_signature_inspected_once(self):
        field = _TimeAndTraining()
        call_field(field, tf.constant(0.0), tf.ones([1]))
        self.assertIn(field, vector_field._SIGNATURES)
        self.assertEqual(vector_field._SIGNATURES[field], (False, True))
        layer = keras.layers.Dense(1)
        self.assertTrue(vector_field.is_autonomous_layer(layer))

    def test_mixed_policy_output_cast_to_state_dtype(self):
        keras.mixed_precision.set_global_policy("mixed_float16")
        field = keras.layers.Dense(3)
        y = tf.ones([2, 3])
        with tf.GradientTape() as tape:
            out = call_field(field, 0.0, y)
            loss = 2.0**20 * tf.reduce_sum(out)
        self.assertEqual(out.dtype, tf.float32)
        # A cotangent far beyond float16's range: scaled inside call_field.
        grads = tape.gradient(loss, field.trainable_variables)
        for g in grads:
            self.assertTrue(np.all(np.isfinite(g)))
        self.assertAllClose(grads[1] / 2.0**20, [2.0] * 3)

    def test_plain_callables_are_not_cast(self):
        out = call_field(lambda t, y: tf.cast(y, tf.float64), 0.0, tf.ones([1]))
        self.assertEqual(out.dtype, tf.float64)
