"""Dense output: the continuous extensions as data, interpolated outputs,
and their gradients under every gradient method."""

import numpy as np
import tensorflow as tf

import tfnode
from tests import test_util
from tfnode.solvers.tableau import ButcherTableau
from tfnode.solvers.tableaus import TABLEAUS

_ADAPTIVE = tuple((n, n) for n, t in TABLEAUS.items() if t.adaptive)
# Local error order of each interpolant: the method's own extension
# (Dormand-Prince, Tsitouras: 4th order), cubic Hermite (bosh3), quadratic
# Hermite (fehlberg2, not first same as last).
_INTERPOLANT_ORDER = {"dopri5": 4, "tsit5": 4, "bosh3": 3, "fehlberg2": 2}

_SPIRAL = np.array([[-0.1, 2.0], [-2.0, -0.1]])


def _spiral(t, y):
    return tf.matmul(y**3, tf.constant(_SPIRAL, y.dtype))


def _rotation_step(solver, h, theta):
    """Interpolation error at `theta` of one step of `y' = (y2, -y1)`."""
    y0 = [tf.constant([0.0, 1.0], tf.float64)]
    t0 = tf.constant(0.0, tf.float64)
    y1, _, _, _, stages = solver.step_with_stages(
        lambda t, y: [tf.stack([y[0][1], -y[0][0]])], t0, y0, h
    )
    theta = tf.constant([theta], tf.float64)
    value = solver.interpolate(y0, y1, h, stages, theta)
    exact = [np.sin(theta[0] * h), np.cos(theta[0] * h)]
    return np.max(np.abs(value[0][0].numpy() - exact))


class ContinuousExtensionTest(test_util.TestCase):
    @test_util.parameterized.named_parameters(*_ADAPTIVE)
    def test_weights_are_consistent_and_continuous(self, name):
        solver = tfnode.solvers.get(name)
        theta = tf.constant([0.0, 0.3, 1.0], tf.float64)
        weights = solver.dense_weights(theta).numpy()
        self.assertAllClose(weights.sum(-1), theta.numpy(), atol=1e-13)
        self.assertAllClose(weights[0], np.zeros(solver.num_stages))
        self.assertAllClose(weights[-1], TABLEAUS[name].b, atol=1e-13)

    @test_util.parameterized.named_parameters(*_ADAPTIVE)
    def test_interpolant_has_its_order(self, name):
        solver = tfnode.solvers.get(name)
        errors = [_rotation_step(solver, h, 0.37) for h in (0.1, 0.05)]
        slope = np.log2(errors[0] / errors[1])
        # The local error of an order-p interpolant is O(h^(p+1)).
        self.assertGreater(slope, _INTERPOLANT_ORDER[name] + 0.8)

    def test_rejects_dense_weights_not_summing_to_theta(self):
        with self.assertRaisesRegex(ValueError, "must sum to theta"):
            ButcherTableau(
                "bad", 1, a=((),), b=(1.0,), c=(0.0,), dense=((0.9, 0.1),)
            )

    def test_rejects_dense_weights_not_ending_at_b(self):
        with self.assertRaisesRegex(ValueError, r"at theta = 1 .* not b\[0\]"):
            ButcherTableau(
                "bad",
                2,
                a=((), (0.5,)),
                b=(0.0, 1.0),
                c=(0.0, 0.5),
                dense=((1.0, 0.0), (0.0, 0.0)),
            )

    def test_rejects_a_polynomial_per_stage_mismatch(self):
        with self.assertRaisesRegex(ValueError, "one polynomial per stage"):
            ButcherTableau(
                "bad", 1, a=((),), b=(1.0,), c=(0.0,), dense=((1.0,), (0.0,))
            )


class InterpolatedOutputsTest(test_util.TestCase):
    def _solve(self, num_times, **kwargs):
        t = tf.linspace(tf.constant(0.0, tf.float64), 25.0, num_times)
        y0 = tf.constant([[2.0, 0.0]], tf.float64)
        return tf.function(
            lambda: tfnode.odeint(
                _spiral, y0, t, rtol=1e-6, atol=1e-8, return_stats=True,
                **kwargs,
            )
        )()

    def test_nfe_does_not_grow_with_the_output_times(self):
        _, two = self._solve(2)
        _, many = self._solve(1000)
        self.assertEqual(int(many.num_fn_evals), int(two.num_fn_evals))

    def test_clamped_outputs_cost_more_and_agree(self):
        interpolated, cheap = self._solve(200)
        clamped, dear = self._solve(200, interpolate=False)
        self.assertGreater(int(dear.num_fn_evals), int(cheap.num_fn_evals))
        self.assertAllClose(interpolated, clamped, atol=1e-4)

    @test_util.parameterized.named_parameters(*_ADAPTIVE)
    def test_outputs_match_the_exact_solution(self, name):
        t = tf.constant(np.linspace(0.0, 2.0, 37), tf.float64)
        y0 = tf.constant([1.0, -0.5], tf.float64)
        ys = tfnode.odeint(
            lambda t, y: -0.8 * y, y0, t, solver=name, rtol=1e-8, atol=1e-10
        )
        exact = y0.numpy() * np.exp(-0.8 * t.numpy())[:, None]
        atol = 5e-6 if name == "fehlberg2" else 1e-7
        self.assertAllClose(ys, exact, atol=atol)

    def test_decreasing_times(self):
        t = tf.constant([2.0, 1.5, 0.3, -1.0], tf.float64)
        ys = tfnode.odeint(
            lambda t, y: -y, tf.constant([1.0], tf.float64), t, rtol=1e-9,
            atol=1e-12,
        )
        exact = np.exp(-(t.numpy() - 2.0))[:, None]
        self.assertAllClose(ys, exact, rtol=1e-7)

    def test_tfp_solver_cannot_land_on_outputs(self):
        with self.assertRaisesRegex(ValueError, "always interpolates"):
            tfnode.SolveSettings(solver="tfp_dopri5", interpolate=False)

    def test_interpolate_must_be_a_bool(self):
        with self.assertRaisesRegex(TypeError, "interpolate must be True or"):
            tfnode.SolveSettings(interpolate="yes")

    def test_settings_round_trip(self):
        settings = tfnode.SolveSettings(interpolate=False)
        config = settings.get_config()
        self.assertFalse(tfnode.SolveSettings.from_config(config).interpolate)

    @test_util.parameterized.named_parameters(*test_util.MODES)
    def test_modes_agree(self, mode):
        t = tf.constant(np.linspace(0.0, 3.0, 9), tf.float64)
        y0 = tf.constant([[2.0, 0.0]], tf.float64)

        def solve():
            return tfnode.odeint(_spiral, y0, t, rtol=1e-6, atol=1e-8)

        self.assertAllClose(test_util.run_in_mode(solve, mode), solve())


class InterpolatedGradientsTest(test_util.TestCase):
    """Interpolated outputs under `anode` are differentiated exactly as
    `backprop` differentiates them; `continuous` agrees to tolerance."""

    def _gradients(self, adjoint, solver="dopri5", tol=1e-7, **kwargs):
        w = tf.Variable([[0.5, -0.3], [0.2, 0.4]], dtype=tf.float64)
        y0 = tf.constant([[2.0, 0.0]], tf.float64)
        t = tf.constant([0.0, 0.3, 1.1, 2.0, 2.05, 3.0], tf.float64)
        weights = tf.reshape(tf.range(1.0, 7.0, dtype=tf.float64), [6, 1, 1])
        counter = tfnode.NFECounter()
        with tf.GradientTape() as tape:
            tape.watch(y0)
            ys = tfnode.odeint(
                lambda t, y: tf.tanh(tf.matmul(y, w)) - 0.1 * y,
                y0,
                t,
                solver=solver,
                rtol=tol,
                atol=tol / 100,
                adjoint=adjoint,
                nfe_counter=counter,
                **kwargs,
            )
            loss = tf.reduce_sum(weights * ys**2)
        grads = tape.gradient(loss, [y0, w])
        return [g.numpy() for g in grads], counter

    @test_util.parameterized.named_parameters(
        ("dopri5", "dopri5"), ("tsit5", "tsit5"), ("bosh3", "bosh3")
    )
    def test_anode_equals_backprop(self, solver):
        exact, _ = self._gradients("backprop", solver, tol=1e-5)
        for checkpoints in (None, 3):
            anode, _ = self._gradients(
                "anode", solver, tol=1e-5, checkpoints=checkpoints
            )
            for a, e in zip(anode, exact, strict=True):
                self.assertAllClose(a, e, rtol=1e-12, atol=1e-12)

    def test_continuous_agrees_to_tolerance(self):
        exact, _ = self._gradients("backprop")
        continuous, counter = self._gradients("continuous")
        for a, e in zip(continuous, exact, strict=True):
            self.assertAllClose(a, e, rtol=1e-5)
        self.assertGreater(counter.result()["nfe_backward"], 0)

    def test_backward_nfe_of_anode_is_one_replay(self):
        _, counter = self._gradients("anode")
        _, stats = tfnode.odeint(
            lambda t, y: tf.tanh(tf.matmul(y, tf.constant(
                [[0.5, -0.3], [0.2, 0.4]], tf.float64))) - 0.1 * y,
            tf.constant([[2.0, 0.0]], tf.float64),
            tf.constant([0.0, 0.3, 1.1, 2.0, 2.05, 3.0], tf.float64),
            rtol=1e-7,
            atol=1e-9,
            return_stats=True,
        )
        # Every accepted step is recomputed once, all 7 stages; the
        # interpolated outputs cost no evaluation.
        self.assertEqual(
            float(counter.result()["nfe_backward"]), 7.0 * int(stats.num_steps)
        )
