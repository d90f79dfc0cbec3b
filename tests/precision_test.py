"""Half-precision states in `odeint` and mixed precision in `ODEBlock`."""

import keras
import numpy as np
import tensorflow as tf

import tfnode
from tests import test_util
from tfnode import precision

_HALF = (("float16", tf.float16), ("bfloat16", tf.bfloat16))

# Half an ulp at 1 in each dtype, the accuracy of a correctly rounded output.
_ULP = {tf.float16: 2.0**-10, tf.bfloat16: 2.0**-7}


def _decay(t, y):
    del t
    return -y


class HalfStateTest(test_util.TestCase):
    @test_util.parameterized.named_parameters(*_HALF)
    def test_default_dopri5_gives_exp_minus_one(self, dtype):
        ys = tfnode.odeint(
            _decay, tf.constant([1.0], dtype), [0.0, 1.0], solver="dopri5"
        )
        self.assertEqual(ys.dtype, dtype)
        self.assertAllClose(
            tf.cast(ys[-1], tf.float32), [np.exp(-1.0)], atol=_ULP[dtype]
        )

    @test_util.parameterized.named_parameters(*_HALF)
    def test_fixed_step_solvers(self, dtype):
        y0 = tf.constant([1.0, -0.5], dtype)
        for solver, steps in (("euler", 64), ("heun", 8), ("rk4", 4)):
            ys = tfnode.odeint(
                _decay, y0, [0.0, 0.5, 1.0], solver=solver, steps=steps
            )
            self.assertEqual(ys.dtype, dtype)
            expected = np.exp(-np.array([0.0, 0.5, 1.0]))[:, None] * [1, -0.5]
            tol = 4 * _ULP[dtype] + (0.01 if solver == "euler" else 0.0)
            self.assertAllClose(tf.cast(ys, tf.float32), expected, atol=tol)

    def test_nested_state_decreasing_times_and_args(self):
        y0 = {
            "a": tf.constant([2.0], tf.float16),
            "b": tf.ones([2], tf.float16),
        }
        k = tf.constant(0.5, tf.float16)

        def field(t, y, k):
            self.assertEqual(t.dtype, tf.float16)
            self.assertEqual(k.dtype, tf.float16)
            return {"a": -k * y["a"], "b": y["b"] * t}

        ys = tfnode.odeint(field, y0, [1.0, 0.0], args=(k,))
        self.assertEqual(ys["a"].dtype, tf.float16)
        self.assertAllClose(
            tf.cast(ys["a"][-1], tf.float32), [2 * np.exp(0.5)], rtol=2e-3
        )
        self.assertAllClose(
            tf.cast(ys["b"][-1], tf.float32), [np.exp(-0.5)] * 2, rtol=2e-3
        )

    def test_long_span_times_are_not_rounded(self):
        # float16 cannot tell 1000 from 1000.25; the solve runs in float32.
        ys = tfnode.odeint(
            lambda t, y: tf.ones_like(y),
            tf.constant([0.0], tf.float16),
            [1000.0, 1000.25, 1000.5],
            solver="rk4",
            steps=1,
        )
        self.assertAllClose(tf.cast(ys[:, 0], tf.float32), [0.0, 0.25, 0.5])

    @test_util.parameterized.named_parameters(
        ("backprop", {"adjoint": "backprop"}),
        ("anode", {"adjoint": "anode", "solver": "rk4", "steps": 4}),
        ("continuous", {"adjoint": "continuous"}),
    )
    def test_gradients_match_float32(self, settings):
        def grads(dtype):
            y0 = tf.constant([1.0, 0.5], dtype)
            k = tf.Variable(0.7, dtype=dtype)
            c = tf.constant(0.3, dtype)
            with tf.GradientTape() as tape:
                tape.watch([y0, c])
                ys = tfnode.odeint(
                    lambda t, y, c: -k * y + c * tf.sin(y),
                    y0,
                    [0.0, 0.5, 1.0],
                    args=(c,),
                    **settings,
                )
                loss = tf.reduce_sum(tf.cast(ys, tf.float32) ** 2)
            return [
                tf.cast(g, tf.float32) for g in tape.gradient(loss, [y0, k, c])
            ]

        expected = grads(tf.float32)
        for dtype in (tf.float16, tf.bfloat16):
            got = grads(dtype)
            for g, e in zip(got, expected, strict=True):
                self.assertEqual(g.shape, e.shape)
                self.assertAllClose(g, e, rtol=0.05, atol=0.05)

    def test_tolerance_below_resolution_is_refused(self):
        y0 = tf.constant([1.0], tf.float16)
        with self.assertRaisesRegex(
            ValueError, r"rtol=1e-06 .*float16.*eps=0.000977"
        ):
            tfnode.odeint(_decay, y0, [0.0, 1.0], rtol=1e-6)
        with self.assertRaisesRegex(ValueError, r"atol=1e-09 .*float16"):
            tfnode.odeint(_decay, y0, [0.0, 1.0], atol=1e-9)
        with self.assertRaisesRegex(ValueError, r"rtol=0.0001 .*bfloat16"):
            tfnode.odeint(
                _decay, tf.cast(y0, tf.bfloat16), [0.0, 1.0], rtol=1e-4
            )
        with self.assertRaisesRegex(ValueError, r"adjoint_rtol=1e-07"):
            tfnode.odeint(
                _decay, y0, [0.0, 1.0], adjoint="continuous", adjoint_rtol=1e-7
            )

    def test_wider_dtypes_are_unchanged(self):
        self.assertEqual(precision.solve_dtype(tf.float64), tf.float64)
        self.assertEqual(precision.solve_dtype(tf.float32), tf.float32)
        self.assertEqual(precision.solve_dtype(tf.float16), tf.float32)
        ys = tfnode.odeint(
            _decay, tf.constant([1.0], tf.float64), [0.0, 1.0], tol=1e-12
        )
        self.assertEqual(ys.dtype, tf.float64)
        self.assertAllClose(ys[-1], [np.exp(-1.0)], rtol=1e-10)

    def test_min_rtol(self):
        self.assertAllClose(precision.min_rtol(tf.float16), 2.0**-14)
        self.assertAllClose(precision.min_rtol(tf.bfloat16), 2.0**-11)
        self.assertLess(precision.min_rtol(tf.bfloat16), 1e-3)


def _field():
    return keras.Sequential(
        [
            keras.layers.Dense(8, activation="tanh"),
            keras.layers.Dense(3),
        ]
    )


class MixedPrecisionTest(test_util.TestCase):
    def tearDown(self):
        keras.mixed_precision.set_global_policy("float32")
        super().tearDown()

    @test_util.parameterized.named_parameters(
        ("float16_dopri5", "mixed_float16", {"solver": "dopri5"}),
        (
            "float16_continuous",
            "mixed_float16",
            {"solver": "dopri5", "adjoint": "continuous"},
        ),
        (
            "float16_anode",
            "mixed_float16",
            {"solver": "rk4", "steps": 2, "adjoint": "anode"},
        ),
        (
            "bfloat16_reversible",
            "mixed_bfloat16",
            {"solver": "heun", "steps": 2, "adjoint": "reversible"},
        ),
        (
            "bfloat16_tsit5_continuous",
            "mixed_bfloat16",
            {"solver": "tsit5", "adjoint": "continuous"},
        ),
    )
    def test_fit(self, policy, settings):
        keras.mixed_precision.set_global_policy(policy)
        keras.utils.set_random_seed(0)
        field = _field()
        block = tfnode.ODEBlock(field, **settings)
        model = keras.Sequential([keras.Input((3,)), block])
        model.compile(keras.optimizers.SGD(0.1), "mse")
        x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
        before = [np.array(w) for w in field.trainable_weights]
        history = model.fit(x, 0.5 * x, batch_size=4, epochs=1, verbose=0)
        loss = history.history["loss"][-1]
        self.assertTrue(np.isfinite(loss), f"loss {loss}")
        for b, w in zip(before, field.trainable_weights, strict=True):
            self.assertEqual(w.dtype, "float32")
            self.assertNotAllClose(b, np.array(w))
        out = block(tf.constant(x))
        self.assertEqual(out.dtype, block.compute_dtype)
        self.assertTrue(np.all(np.isfinite(np.asarray(out, np.float32))))

    def test_gradients_match_float32(self):
        x = tf.random.stateless_normal([4, 3], [1, 2])

        def grads(policy):
            keras.mixed_precision.set_global_policy(policy)
            keras.utils.set_random_seed(0)
            field = _field()
            block = tfnode.ODEBlock(field, adjoint="continuous")
            with tf.GradientTape() as tape:
                # A large scale, as dynamic loss scaling starts with: the
                # float16 field's backward must not overflow.
                loss = 2.0**15 * tf.reduce_mean(
                    tf.cast(block(x), tf.float32) ** 2
                )
            return [
                g / 2.0**15
                for g in tape.gradient(loss, field.trainable_variables)
            ]

        expected = grads("float32")
        for g, e in zip(grads("mixed_float16"), expected, strict=True):
            self.assertAllClose(g, e, rtol=1e-2, atol=1e-3)


if __name__ == "__main__":
    tf.test.main()
