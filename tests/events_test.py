"""Dense solutions and terminal events, against closed forms."""

import numpy as np
import tensorflow as tf

import tfnode
from tests import test_util

_GRAVITY = 9.81


def _fall(t, y):
    """A body in free fall: `y = (height, velocity)`."""
    return tf.stack([y[1], -_GRAVITY * tf.ones_like(y[0])])


def _height(t, y):
    return y[0]


class DenseSolutionTest(test_util.TestCase):
    def _solution(self, **kwargs):
        y0 = tf.constant([1.0, -0.5], tf.float64)
        return tfnode.solve_dense(
            lambda t, y: -0.8 * y, y0, [0.0, 3.0], rtol=1e-9, atol=1e-11,
            **kwargs,
        )

    def test_evaluates_anywhere_in_the_span(self):
        solution = self._solution()
        t = np.array([0.0, 0.123, 1.0, 2.71, 3.0])
        exact = np.array([1.0, -0.5]) * np.exp(-0.8 * t)[:, None]
        self.assertAllClose(solution.evaluate(t), exact, rtol=1e-8)
        self.assertAllClose(solution.evaluate(1.0), exact[2], rtol=1e-8)

    def test_backwards_span(self):
        solution = tfnode.solve_dense(
            lambda t, y: -y, tf.constant([1.0], tf.float64), [1.0, -1.0],
            rtol=1e-9,
        )
        t = np.array([0.5, -0.2])
        self.assertAllClose(
            solution.evaluate(t), np.exp(-(t - 1.0))[:, None], rtol=1e-7
        )

    def test_nested_state(self):
        y0 = {"a": tf.constant([1.0], tf.float64),
              "b": tf.constant([[2.0]], tf.float64)}
        solution = tfnode.solve_dense(
            lambda t, y: {"a": -y["a"], "b": -2 * y["b"]}, y0, [0.0, 1.0],
            rtol=1e-9,
        )
        out = solution.evaluate([0.5])
        self.assertAllClose(out["a"], [[np.exp(-0.5)]], rtol=1e-7)
        self.assertAllClose(out["b"], [[[2 * np.exp(-1.0)]]], rtol=1e-7)

    @test_util.parameterized.named_parameters(*test_util.MODES)
    def test_modes(self, mode):
        t = tf.constant([0.4, 2.9], tf.float64)
        value = test_util.run_in_mode(
            lambda: self._solution().evaluate(t), mode
        )
        exact = np.array([1.0, -0.5]) * np.exp(-0.8 * t.numpy())[:, None]
        self.assertAllClose(value, exact, rtol=1e-8)

    def test_gradients_in_y0_and_t(self):
        y0 = tf.constant([1.0], tf.float64)
        t = tf.constant([0.7, 2.0], tf.float64)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch([y0, t])
            solution = tfnode.solve_dense(
                lambda t, y: -0.8 * y, y0, [0.0, 3.0], rtol=1e-10, atol=1e-12
            )
            values = solution.evaluate(t)[:, 0]
            loss = tf.reduce_sum(values)
        self.assertAllClose(
            tape.gradient(loss, y0), [np.exp(-0.56) + np.exp(-1.6)], rtol=1e-8
        )
        self.assertAllClose(
            tape.gradient(loss, t),
            -0.8 * np.exp(-0.8 * t.numpy()),
            rtol=1e-6,
        )

    def test_refuses_times_outside_the_span(self):
        with self.assertRaisesRegex(ValueError, "must lie in the solution"):
            self._solution().evaluate([3.5])

    def test_refuses_fixed_grids_and_other_gradient_methods(self):
        with self.assertRaisesRegex(ValueError, "adaptive tfnode Runge-Kutta"):
            tfnode.solve_dense(
                lambda t, y: -y, tf.constant([1.0]), [0.0, 1.0], solver="rk4",
                steps=4,
            )
        with self.assertRaisesRegex(ValueError, "adjoint='backprop'"):
            self._solution(adjoint="anode")


class EventTest(test_util.TestCase):
    def _drop(self, height, **kwargs):
        y0 = tf.stack([height, tf.constant(0.0, tf.float64)])
        return tfnode.odeint_event(
            _fall, y0, [0.0, 100.0], _height, direction="falling",
            rtol=1e-9, atol=1e-11, **kwargs,
        )

    @test_util.parameterized.named_parameters(
        ("backprop", "backprop"), ("anode", "anode"),
        ("continuous", "continuous"),
    )
    def test_hit_time_and_its_gradient(self, adjoint):
        height = tf.Variable(10.0, dtype=tf.float64)
        with tf.GradientTape() as tape:
            t_hit, y_hit = self._drop(height, adjoint=adjoint)
        # t = sqrt(2 h / g); dt/dh = 1 / sqrt(2 g h).
        self.assertAllClose(t_hit, np.sqrt(2 * 10.0 / _GRAVITY), rtol=1e-10)
        self.assertAllClose(
            tape.gradient(t_hit, height), 1 / np.sqrt(2 * _GRAVITY * 10.0),
            rtol=1e-8,
        )
        self.assertAllClose(
            y_hit, [0.0, -np.sqrt(2 * _GRAVITY * 10.0)], atol=1e-8
        )

    def test_state_gradient_includes_the_moving_event(self):
        # At impact the velocity is -sqrt(2 g h): dv/dh = -sqrt(g / (2 h)).
        height = tf.Variable(10.0, dtype=tf.float64)
        with tf.GradientTape() as tape:
            _, y_hit = self._drop(height)
            velocity = y_hit[1]
        self.assertAllClose(
            tape.gradient(velocity, height), -np.sqrt(_GRAVITY / 20.0),
            rtol=1e-7,
        )

    def test_gradient_through_field_variables_and_args(self):
        # t = sqrt(2 h / g): dt/dg = -sqrt(2 h) / (2 g**1.5).
        expected = -np.sqrt(20.0) / (2 * _GRAVITY**1.5)
        y0 = tf.constant([10.0, 0.0], tf.float64)
        gravity = tf.Variable(_GRAVITY, dtype=tf.float64)

        def field_with_variable(t, y):
            return tf.stack([y[1], -gravity * tf.ones_like(y[0])])

        def field_with_arg(t, y, g):
            return tf.stack([y[1], -g * tf.ones_like(y[0])])

        g_arg = tf.constant(_GRAVITY, tf.float64)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(g_arg)
            t_var, _ = tfnode.odeint_event(
                field_with_variable, y0, [0.0, 100.0], _height,
                rtol=1e-9, atol=1e-11, adjoint="anode",
            )
            t_arg, _ = tfnode.odeint_event(
                field_with_arg, y0, [0.0, 100.0], _height, args=(g_arg,),
                rtol=1e-9, atol=1e-11, adjoint="continuous",
            )
        self.assertAllClose(tape.gradient(t_var, gravity), expected, rtol=1e-7)
        self.assertAllClose(tape.gradient(t_arg, g_arg), expected, rtol=1e-6)

    def test_gradient_through_event_function_variables(self):
        # Stop at height c: t = sqrt(2 (h - c) / g), so
        # dt/dc = -1 / sqrt(2 g (h - c)).
        level = tf.Variable(2.0, dtype=tf.float64)
        y0 = tf.constant([10.0, 0.0], tf.float64)
        with tf.GradientTape() as tape:
            t_hit, _ = tfnode.odeint_event(
                _fall, y0, [0.0, 100.0], lambda t, y: y[0] - level,
                rtol=1e-9, atol=1e-11,
            )
        self.assertAllClose(
            tape.gradient(t_hit, level),
            -1 / np.sqrt(2 * _GRAVITY * 8.0),
            rtol=1e-7,
        )

    def test_direction(self):
        # sin t rises through 0 at 2 pi, falls through it at pi.
        y0 = tf.constant([0.0, 1.0], tf.float64)

        def oscillator(t, y):
            return tf.stack([y[1], -y[0]])

        @tf.function
        def event(direction):
            return tfnode.odeint_event(
                oscillator, y0, [0.0, 10.0], lambda t, y: y[0],
                direction=direction, rtol=1e-8, atol=1e-10,
            )[0]

        for direction, expected in (("falling", np.pi), ("rising", 2 * np.pi)):
            self.assertAllClose(event(direction), expected, rtol=1e-7)

    def test_no_event_is_an_error(self):
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError, "did not cross zero"
        ):
            self._drop(tf.constant(1e6, tf.float64))

    def test_bad_direction(self):
        with self.assertRaisesRegex(ValueError, "direction must be one of"):
            tfnode.odeint_event(
                _fall, tf.constant([1.0, 0.0]), [0.0, 1.0], _height,
                direction="down",
            )

    def test_in_a_tf_function(self):
        height = tf.Variable(10.0, dtype=tf.float64)

        @tf.function
        def hit():
            with tf.GradientTape() as tape:
                t_hit, _ = self._drop(height)
            return t_hit, tape.gradient(t_hit, height)

        t_hit, grad = hit()
        self.assertAllClose(t_hit, np.sqrt(20.0 / _GRAVITY), rtol=1e-10)
        self.assertAllClose(grad, 1 / np.sqrt(20.0 * _GRAVITY), rtol=1e-8)
