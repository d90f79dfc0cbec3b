"""Gradients with respect to the times, under every gradient method,
against closed forms and finite differences."""

import numpy as np
import tensorflow as tf

import tfnode
from tests import test_util

_K = 0.7
_Y0 = 1.5
_WEIGHTS = np.array([1.0, 2.0, 3.0, 4.0])

_METHODS = (
    ("dopri5_backprop", dict(solver="dopri5", adjoint="backprop"), 1e-9),
    ("dopri5_anode", dict(solver="dopri5", adjoint="anode"), 1e-9),
    ("dopri5_continuous", dict(solver="dopri5", adjoint="continuous"), 1e-8),
    (
        "dopri5_clamped_anode",
        dict(solver="dopri5", adjoint="anode", interpolate=False),
        1e-9,
    ),
    ("rk4_backprop", dict(solver="rk4", steps=20), 1e-6),
    ("rk4_anode", dict(solver="rk4", steps=20, adjoint="anode"), 1e-6),
    (
        "rk4_continuous",
        dict(solver="rk4", steps=20, adjoint="continuous"),
        1e-6,
    ),
    (
        "heun_reversible",
        dict(solver="heun", steps=100, adjoint="reversible"),
        2e-5,
    ),
)


def _tolerances(kwargs):
    if "steps" in kwargs:
        return {}
    return {"rtol": 1e-10, "atol": 1e-12}


def _loss(t, **kwargs):
    y0 = tf.constant([_Y0], tf.float64)
    ys = tfnode.odeint(
        lambda t, y: -_K * y, y0, t, **kwargs, **_tolerances(kwargs)
    )
    return tf.reduce_sum(tf.constant(_WEIGHTS[:, None]) * ys)


def _closed_form(times):
    """`L = sum_i w_i y0 exp(-k (t_i - t_0))`: its gradient in `t`."""
    y = _Y0 * np.exp(-_K * (times - times[0]))
    grad = _WEIGHTS * -_K * y
    grad[0] = np.sum(_WEIGHTS[1:] * _K * y[1:])
    return grad


class TimeGradientTest(test_util.TestCase):
    _TIMES = np.array([0.2, 0.9, 1.7, 2.5])

    @test_util.parameterized.named_parameters(*_METHODS)
    def test_matches_closed_form(self, kwargs, atol):
        @tf.function
        def grad(t):
            with tf.GradientTape() as tape:
                tape.watch(t)
                loss = _loss(t, **kwargs)
            return tape.gradient(loss, t)

        self.assertAllClose(
            grad(tf.constant(self._TIMES)), _closed_form(self._TIMES),
            atol=atol,
        )

    @test_util.parameterized.named_parameters(*_METHODS)
    def test_matches_finite_differences(self, kwargs, atol):
        t = tf.constant(self._TIMES, tf.float64)
        with tf.GradientTape() as tape:
            tape.watch(t)
            loss = _loss(t, **kwargs)
        grad = tape.gradient(loss, t).numpy()
        loss_of = tf.function(lambda t: _loss(t, **kwargs))
        eps = 1e-5
        for i in range(len(self._TIMES)):
            step = np.zeros_like(self._TIMES)
            step[i] = eps
            up = float(loss_of(tf.constant(self._TIMES + step)))
            down = float(loss_of(tf.constant(self._TIMES - step)))
            # Central differences of the discrete map: O(eps^2) plus the
            # solver's error in the derivative.
            self.assertAllClose(
                grad[i], (up - down) / (2 * eps), atol=max(atol, 1e-6) * 10
            )

    def test_time_dependent_field(self):
        # y' = cos(t) y: y(t1) = y0 exp(sin t1 - sin t0).
        t = tf.constant([0.3, 1.4], tf.float64)
        with tf.GradientTape() as tape:
            tape.watch(t)
            y1 = tfnode.odeint(
                lambda t, y: tf.cos(t) * y,
                tf.constant([2.0], tf.float64),
                t,
                rtol=1e-10,
                atol=1e-12,
            )[-1, 0]
        grad = tape.gradient(y1, t).numpy()
        value = 2.0 * np.exp(np.sin(1.4) - np.sin(0.3))
        self.assertAllClose(
            grad, [-np.cos(0.3) * value, np.cos(1.4) * value], rtol=1e-8
        )

    @test_util.parameterized.named_parameters(
        ("tf_function", "tf_function"), ("xla", "xla")
    )
    def test_in_graphs(self, mode):
        t = tf.Variable([0.0, 1.0], dtype=tf.float64)

        def grad():
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(
                    tfnode.odeint(
                        lambda t, y: -_K * y,
                        tf.constant([_Y0], tf.float64),
                        t,
                        rtol=1e-10,
                        atol=1e-12,
                    )[-1]
                )
            return tape.gradient(loss, t)

        value = _Y0 * np.exp(-_K)
        self.assertAllClose(
            test_util.run_in_mode(grad, mode),
            [_K * value, -_K * value],
            rtol=1e-8,
        )

    def test_constant_times_cost_no_evaluations(self):
        counter = tfnode.NFECounter()
        y0 = tf.constant([_Y0], tf.float64)
        with tf.GradientTape() as tape:
            tape.watch(y0)
            ys = tfnode.odeint(
                lambda t, y: -_K * y, y0, [0.0, 1.0], solver="rk4", steps=4,
                nfe_counter=counter,
            )
        tape.gradient(ys, y0)
        # rk4: 4 evaluations per step, differentiated once each.
        self.assertEqual(float(counter.result()["nfe_backward"]), 16.0)

    def test_watched_times_count_their_evaluations(self):
        counter = tfnode.NFECounter()
        t = tf.constant([0.0, 1.0], tf.float64)
        with tf.GradientTape() as tape:
            tape.watch(t)
            ys = tfnode.odeint(
                lambda t, y: -_K * y, tf.constant([_Y0], tf.float64), t,
                solver="rk4", steps=4, nfe_counter=counter,
            )
            loss = ys[-1, 0]
        tape.gradient(loss, t)
        # One evaluation at t0 and one at the output with a nonzero
        # gradient (t1); none at t0's output, whose gradient is zero.
        self.assertEqual(float(counter.result()["nfe_backward"]), 18.0)
