"""Bad input and failed solves raise clear errors, never hang."""

import numpy as np
import tensorflow as tf

import tfnode
from tests import problems
from tests import test_util

_Y0 = tf.ones([2], tf.float64)
_T = [0.0, 1.0]


class BadSettingsTest(test_util.TestCase):
    @test_util.parameterized.named_parameters(
        ("unknown_solver", {"solver": "rk45"}, "solver='rk45'.*dopri5.*rk4"),
        ("unknown_adjoint", {"adjoint": "magic"}, "adjoint='magic'.*anode"),
        ("steps_zero", {"solver": "rk4", "steps": 0}, "steps must be an int"),
        (
            "steps_float",
            {"solver": "rk4", "steps": 2.5},
            "steps must be an int",
        ),
        (
            "steps_and_step_size",
            {"solver": "rk4", "steps": 2, "step_size": 0.1},
            "steps= or step_size=, not both",
        ),
        (
            "step_size_negative",
            {"solver": "euler", "step_size": -0.1},
            "step_size must be a number > 0",
        ),
        ("rtol_zero", {"rtol": 0.0}, "rtol must be a number > 0"),
        ("atol_infinite", {"atol": np.inf}, "atol must be a finite number"),
        ("tol_infinite", {"tol": np.inf}, "tol must be a finite number"),
        (
            "step_size_infinite",
            {"solver": "euler", "step_size": np.inf},
            "step_size must be a finite number",
        ),
        (
            "first_step_infinite",
            {"first_step": np.inf},
            "first_step must be a finite number",
        ),
        ("atol_negative", {"atol": -1e-6}, "atol must be a number > 0"),
        ("tol_zero", {"tol": 0}, "tol must be a number > 0"),
        ("tol_and_rtol", {"tol": 1e-3, "rtol": 1e-3}, "tol sets both"),
        ("fixed_without_steps", {"solver": "rk4"}, "fixed-step method"),
        ("max_num_steps", {"max_num_steps": 0}, "max_num_steps must be"),
        ("safety", {"safety": 1.5}, r"safety must be in \(0, 1\]"),
        (
            "checkpoints_other_method",
            {"checkpoints": 4},
            "checkpoints= is an option of another gradient method",
        ),
        (
            "checkpoints_zero",
            {"adjoint": "anode", "checkpoints": 0},
            "checkpoints must be an int",
        ),
        (
            "seminorm_fixed_grid",
            {"adjoint": "continuous", "seminorm": True, "steps": 4},
            "seminorm=True",
        ),
        (
            "reversible_solver",
            {"adjoint": "reversible", "solver": "rk4", "steps": 4},
            "reversible.*euler or heun",
        ),
        (
            "anode_tfp",
            {"adjoint": "anode", "solver": "tfp_dopri5"},
            "does not expose",
        ),
    )
    def test_rejected_with_message(self, kwargs, message):
        with self.assertRaisesRegex(ValueError, message):
            tfnode.odeint(problems.decay, _Y0, _T, **kwargs)

    def test_non_floating_state(self):
        with self.assertRaisesRegex(TypeError, "y0 must be floating.*int32"):
            tfnode.odeint(problems.decay, tf.ones([2], tf.int32), _T)

    def test_mixed_dtypes(self):
        with self.assertRaisesRegex(TypeError, "same floating dtype"):
            tfnode.odeint(
                lambda t, y: y, (tf.ones([1]), tf.ones([1], tf.float64)), _T
            )

    @test_util.parameterized.named_parameters(
        ("one_time", [0.0]),
        ("not_monotonic", [0.0, 1.0, 0.5]),
        ("repeated", [0.0, 0.0, 1.0]),
    )
    def test_bad_times(self, t):
        with self.assertRaisesRegex(ValueError, "t must"):
            tfnode.odeint(problems.decay, _Y0, t)

    def test_bad_times_at_run_time(self):
        fn = tf.function(lambda t: tfnode.odeint(problems.decay, _Y0, t))
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError, "strictly increasing"
        ):
            fn(tf.constant([0.0, 1.0, 0.5], tf.float64))

    def test_func_returns_wrong_structure(self):
        with self.assertRaisesRegex(TypeError, "structured like y"):
            tfnode.odeint(lambda t, y: (y, y), _Y0, _T)

    def test_func_returns_wrong_shape(self):
        with self.assertRaisesRegex(ValueError, "returned shape"):
            tfnode.odeint(lambda t, y: tf.concat([y, y], 0), _Y0, _T)

    def test_func_returns_wrong_dtype(self):
        with self.assertRaisesRegex(TypeError, "returned dtype float32"):
            tfnode.odeint(lambda t, y: tf.cast(y, tf.float32), _Y0, _T)

    def test_args_must_be_a_tuple(self):
        with self.assertRaisesRegex(TypeError, "args must be a tuple"):
            tfnode.odeint(problems.decay, _Y0, _T, args=tf.ones([1]))


class FailedSolveTest(test_util.TestCase):
    def test_max_num_steps(self):
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError, "max_num_steps"
        ):
            tfnode.odeint(
                lambda t, y: -1000.0 * y, _Y0, [0.0, 10.0], max_num_steps=20
            )

    def test_step_underflow_at_a_singularity(self):
        # y' = y^2 from y(0) = 1 blows up at t = 1.
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError, "underflowed|NaN or Inf"
        ):
            tfnode.odeint(
                lambda t, y: y**2, _Y0, [0.0, 2.0], rtol=1e-6, atol=1e-6
            )

    def test_non_finite_state(self):
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError, "NaN or Inf"
        ):
            tfnode.odeint(lambda t, y: y * np.nan, _Y0, _T)

    def test_non_finite_state_fixed_grid(self):
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError, "NaN or Inf"
        ):
            tfnode.odeint(
                lambda t, y: y * np.inf, _Y0, _T, solver="euler", steps=3
            )

    def test_eager_message_is_clean_and_says_where(self):
        with self.assertRaises(tf.errors.InvalidArgumentError) as caught:
            tfnode.odeint(
                lambda t, y: -1000.0 * y, _Y0, [0.0, 10.0], max_num_steps=20
            )
        message = caught.exception.message
        self.assertStartsWith(message, "odeint: the adaptive solve took")
        self.assertIn("solver='bdf'", message)
        self.assertRegex(
            message,
            r"It stopped at t = [0-9.e-]+ after 20 attempted steps, the "
            r"last of size [0-9.e-]+\.$",
        )

    def test_graph_message_carries_where(self):
        @tf.function
        def solve():
            return tfnode.odeint(
                lambda t, y: -1000.0 * y, _Y0, [0.0, 10.0], max_num_steps=20
            )

        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError,
            r"took max_num_steps steps.*It stopped at t =.*\[20\]",
        ):
            solve()

    def test_failure_under_xla_returns_nan_and_status(self):
        @tf.function(jit_compile=True)
        def solve():
            return tfnode.odeint(
                lambda t, y: -1000.0 * y,
                _Y0,
                [0.0, 10.0],
                max_num_steps=20,
                return_stats=True,
            )

        ys, stats = solve()
        self.assertEqual(int(stats.status), tfnode.Status.MAX_NUM_STEPS)
        self.assertTrue(np.all(np.isnan(ys.numpy())))


class TimesPrecisionTest(test_util.TestCase):
    def test_python_times_and_step_size_reach_float64_unrounded(self):
        # Two Euler steps of y' = 1000 y: the second one clamped to end at
        # t = 0.001 exactly; a float32 rounding of 0.001 or of h shows.
        h = 0.0006666666666666666
        ys = tfnode.odeint(
            lambda t, y: 1000.0 * y,
            tf.constant([1.0], tf.float64),
            [0.0, 0.001],
            solver="euler",
            step_size=h,
        )
        exact = (1 + 1000 * h) * (1 + 1000 * (0.001 - h))
        self.assertAllClose(float(ys[-1, 0]), exact, rtol=1e-14, atol=0)


class LayerSettingsTest(test_util.TestCase):
    def test_bad_setting_fails_when_the_layer_is_built(self):
        import keras

        with self.assertRaisesRegex(ValueError, "solver='nope'"):
            tfnode.ODEBlock(keras.layers.Dense(2), solver="nope")
        with self.assertRaisesRegex(TypeError, r"Unknown solve setting.*bogus"):
            tfnode.ODEBlock(keras.layers.Dense(2)).configure(bogus=1)


if __name__ == "__main__":
    tf.test.main()
