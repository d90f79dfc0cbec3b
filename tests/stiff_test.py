"""The stiff solver `bdf` (`tfp.math.ode.BDF`): stiff problems the explicit
solvers cannot finish, exact and literature references, time direction,
nested states, dtypes, XLA, and its gradient methods."""

import numpy as np
import tensorflow as tf

import tfnode
from tests import test_util

_K = 1e5
# Robertson's kinetics at t = 40 (Robertson 1966; the reference values of
# Hairer & Wanner, Solving ODEs II, and of SUNDIALS' cvRoberts_dns example).
_ROBERTSON_40 = (0.7158270687, 9.185534765e-6, 0.2841637457)


def _relaxation(t, y):
    """`y' = -K (y - cos t)`: a slow manifold near `cos t`, attracting at
    rate K = 1e5."""
    return -_K * (y - tf.cos(t))


def _relaxation_solution(t, y0, k=_K):
    """Closed form of `y' = -k (y - cos t)`, `y(0) = y0`.

    A particular solution `S = a cos t + b sin t` needs `-a sin t + b cos t
    = -k a cos t - k b sin t + k cos t`, so `b = k (1 - a)` and `a = k b`:
    `a = k^2 / (k^2 + 1)`, `b = k / (k^2 + 1)`. Then
    `y = S(t) + (y0 - S(0)) exp(-k t)`.
    """
    t = np.asarray(t, np.float64)
    slow = (k * k * np.cos(t) + k * np.sin(t)) / (k * k + 1)
    return slow + (y0 - k * k / (k * k + 1)) * np.exp(-k * t)


def _relaxation_gradients(t, y0, k):
    """`d y(t) / d y0` and `d y(t) / d k` of `_relaxation_solution`."""
    decay = np.exp(-k * t)
    s0 = k * k / (k * k + 1)
    ds = (2 * k * np.cos(t) + (1 - k * k) * np.sin(t)) / (k * k + 1) ** 2
    ds0 = 2 * k / (k * k + 1) ** 2
    return decay, ds - ds0 * decay - t * (y0 - s0) * decay


def _robertson(t, y):
    """Robertson's chemical kinetics, with a nested state."""
    y1, (y2, y3) = y["a"], tf.unstack(y["bc"], axis=-1)
    fast = 1e4 * y2 * y3
    slow = 0.04 * y1
    very_fast = 3e7 * y2 * y2
    return {
        "a": -slow + fast,
        "bc": tf.stack([slow - fast - very_fast, very_fast], axis=-1),
    }


class StiffSolveTest(test_util.TestCase):
    def test_bdf_solves_the_stiff_relaxation(self):
        ys, stats = tfnode.odeint(
            lambda t, y: -1e5 * (y - tf.cos(t)),
            tf.constant([0.0], tf.float64),
            tf.constant([0.0, 10.0], tf.float64),
            solver="bdf",
            rtol=1e-6,
            atol=1e-8,
            return_stats=True,
        )
        self.assertEqual(int(stats.status), tfnode.Status.SUCCESS)
        self.assertLess(int(stats.num_fn_evals), 3000)
        self.assertGreater(int(stats.num_fn_evals), 10)
        exact = _relaxation_solution([0.0, 10.0], 0.0)
        self.assertAllClose(ys[:, 0], exact, rtol=1e-6, atol=1e-8)

    def test_explicit_solver_hits_max_num_steps(self):
        @tf.function
        def solve():
            return tfnode.odeint(
                _relaxation,
                tf.constant([0.0], tf.float64),
                tf.constant([0.0, 10.0], tf.float64),
                solver="dopri5",
                rtol=1e-6,
                atol=1e-8,
            )

        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError,
            "took max_num_steps steps without reaching the last time",
        ):
            solve()

    @test_util.parameterized.named_parameters(
        ("float64", tf.float64, 1e-6, 1e-10, 1e-5),
        ("float32", tf.float32, 1e-4, 1e-8, 3e-4),
    )
    def test_robertson_nested_state(self, dtype, rtol, atol, accuracy):
        y0 = {
            "a": tf.constant([1.0], dtype),
            "bc": tf.constant([[0.0, 0.0]], dtype),
        }
        t = tf.constant([0.0, 0.4, 4.0, 40.0], dtype)
        ys, stats = tfnode.odeint(
            _robertson,
            y0,
            t,
            solver="bdf",
            rtol=rtol,
            atol=atol,
            return_stats=True,
        )
        self.assertEqual(ys["a"].dtype, dtype)
        self.assertEqual(ys["bc"].shape, [4, 1, 2])
        self.assertLess(int(stats.num_fn_evals), 3000)
        total = ys["a"][:, 0] + tf.reduce_sum(ys["bc"][:, 0], axis=-1)
        self.assertAllClose(
            total, np.ones(4), atol=20 * np.finfo(dtype.as_numpy_dtype).eps
        )
        last = np.concatenate([ys["a"][-1], ys["bc"][-1, 0]])
        self.assertAllClose(last, _ROBERTSON_40, rtol=accuracy, atol=0.0)

    def test_decreasing_time(self):
        # y' = +k (y - cos t) is stiff backwards in time: from t = 10 the
        # solution falls onto S(t) = (k^2 cos t - k sin t) / (k^2 + 1).
        k = 1e4
        t = np.array([10.0, 10.0 - 2e-4, 5.0, 0.0])

        def exact(t, y10):
            slow = (k * k * np.cos(t) - k * np.sin(t)) / (k * k + 1)
            slow10 = (k * k * np.cos(10.0) - k * np.sin(10.0)) / (k * k + 1)
            return slow + (y10 - slow10) * np.exp(k * (t - 10.0))

        ys = tfnode.odeint(
            lambda t, y: k * (y - tf.cos(t)),
            tf.constant([1.0], tf.float64),
            t,
            solver="bdf",
            rtol=1e-8,
            atol=1e-10,
        )
        self.assertAllClose(ys[:, 0], exact(t, 1.0), rtol=1e-6, atol=1e-8)

    def test_xla(self):
        @tf.function(jit_compile=True)
        def solve(y0):
            return tfnode.odeint(
                _relaxation,
                y0,
                tf.constant([0.0, 1e-5, 1.0, 10.0], tf.float64),
                solver="bdf",
                rtol=1e-6,
                atol=1e-8,
                return_stats=True,
            )

        ys, stats = solve(tf.constant([2.0], tf.float64))
        exact = _relaxation_solution([0.0, 1e-5, 1.0, 10.0], 2.0)
        self.assertAllClose(ys[:, 0], exact, rtol=1e-5, atol=1e-7)
        self.assertEqual(int(stats.status), tfnode.Status.SUCCESS)


class StiffGradientTest(test_util.TestCase):
    def test_continuous_adjoint_against_closed_form(self):
        # Stiff enough for the explicit solvers to take many more steps, yet
        # k * (gap between output times) = 2 keeps the backward solve of the
        # state stable (see docs/stiff.md).
        k, y0, times = 200.0, 2.0, np.array([0.0, 0.01, 0.02])

        @tf.function
        def gradients(y0, k):
            with tf.GradientTape() as tape:
                tape.watch([y0, k])
                ys = tfnode.odeint(
                    lambda t, y, k: -k * (y - tf.cos(t)),
                    y0,
                    times,
                    args=(k,),
                    solver="bdf",
                    rtol=1e-9,
                    atol=1e-11,
                    adjoint="continuous",
                )
                loss = ys[1, 0] + 3.0 * ys[2, 0]
            return tape.gradient(loss, [y0, k])

        grad_y0, grad_k = gradients(
            tf.constant([y0], tf.float64), tf.constant(k, tf.float64)
        )
        dy0_1, dk_1 = _relaxation_gradients(times[1], y0, k)
        dy0_2, dk_2 = _relaxation_gradients(times[2], y0, k)
        self.assertAllClose(grad_y0, [dy0_1 + 3 * dy0_2], rtol=1e-6)
        self.assertAllClose(grad_k, dk_1 + 3 * dk_2, rtol=1e-5)

    def test_continuous_adjoint_variables_against_expm(self):
        # Eigenvalues -1 and -10 of the matrix, a tf.Variable; the reference
        # differentiates the matrix exponential.
        p = np.array([[1.0, 1.0], [1.0, -2.0]])
        a = tf.Variable(p @ np.diag([-1.0, -10.0]) @ np.linalg.inv(p))
        weights = tf.constant([1.0, 3.0], tf.float64)

        def loss_of(ys, y0):
            return tf.reduce_sum(ys[-1] * weights) + tf.reduce_sum(ys[1] ** 2)

        @tf.function
        def gradients(y0):
            with tf.GradientTape(persistent=True) as tape:
                tape.watch(y0)
                ys = tfnode.odeint(
                    lambda t, y: tf.linalg.matvec(a, y),
                    y0,
                    [0.0, 0.5, 1.0],
                    solver="bdf",
                    rtol=1e-10,
                    atol=1e-12,
                    adjoint="continuous",
                )
                loss = loss_of(ys, y0)
                exact = tf.stack(
                    [
                        tf.linalg.matvec(tf.linalg.expm(a * s), y0)
                        for s in (0.0, 0.5, 1.0)
                    ]
                )
                reference = loss_of(exact, y0)
            return (
                tape.gradient(loss, [y0, a]),
                tape.gradient(reference, [y0, a]),
            )

        ours, theirs = gradients(tf.constant([1.0, 0.5], tf.float64))
        self.assertAllClose(ours[0], theirs[0], rtol=1e-6, atol=1e-8)
        self.assertAllClose(ours[1], theirs[1], rtol=1e-5, atol=1e-6)


class StiffErrorsTest(test_util.TestCase):
    def test_backprop_raises_at_gradient_time(self):
        y0 = tf.constant([1.0], tf.float64)
        with tf.GradientTape() as tape:
            tape.watch(y0)
            ys = tfnode.odeint(lambda t, y: -y, y0, [0.0, 1.0], solver="bdf")
        with self.assertRaisesRegex(ValueError, "adjoint='continuous'"):
            tape.gradient(ys, y0)

    @test_util.parameterized.named_parameters(
        ("anode", dict(adjoint="anode"), "does not expose them"),
        ("reversible", dict(adjoint="reversible"), "reconstructs states"),
        ("fixed_grid", dict(steps=4), "adaptive only"),
        (
            "seminorm",
            dict(adjoint="continuous", seminorm=True),
            "uses its own",
        ),
    )
    def test_unsupported_settings(self, options, message):
        with self.assertRaisesRegex(ValueError, message):
            tfnode.SolveSettings.from_options(solver="bdf", **options)

    @test_util.parameterized.named_parameters(
        ("min_step", dict(min_step=1e-3)),
        ("max_step", dict(max_step=0.1)),
        ("norm", dict(norm="max")),
    )
    def test_settings_without_equivalent(self, options):
        with self.assertRaisesRegex(ValueError, "cannot honour"):
            tfnode.odeint(
                lambda t, y: -y,
                tf.ones([1], tf.float64),
                [0.0, 1.0],
                solver="tfp_bdf",
                **options,
            )

    def test_max_num_steps(self):
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError, "solver='bdf' took max_num_steps"
        ):
            tfnode.odeint(
                _relaxation,
                tf.constant([0.0], tf.float64),
                [0.0, 10.0],
                solver="bdf",
                max_num_steps=20,
            )


if __name__ == "__main__":
    tf.test.main()
