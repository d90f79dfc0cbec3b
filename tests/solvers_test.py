"""Accuracy, convergence order, nesting, time direction and execution modes
of every solver through `odeint`."""

import numpy as np
import tensorflow as tf

import tfnode
from tests import problems
from tests import test_util
from tfnode.solvers.tableaus import TABLEAUS

_FIXED = ("euler", "midpoint", "heun", "rk4", "rk38")
_ADAPTIVE = ("fehlberg2", "bosh3", "dopri5", "tsit5")
_ALL_RK = tuple((name, name) for name in TABLEAUS)
_Y0 = 0.5
# Global error of fehlberg2 relative to the tolerance: its error estimate is
# that of its first-order partner (error constant 1/512), which is not an
# upper bound of the propagated second-order solution's error at large steps.
_TOLERANCE_FACTOR = {"fehlberg2": 200.0}


def _logistic_error(solver, steps):
    y0, t1 = 0.1, 3.0
    ys = tfnode.odeint(
        problems.logistic,
        tf.constant([y0], tf.float64),
        [0.0, t1],
        solver=solver,
        steps=steps,
    )
    return abs(float(ys[-1, 0]) - problems.logistic_solution(t1, y0))


class ConvergenceOrderTest(test_util.TestCase):
    @test_util.parameterized.named_parameters(*_ALL_RK)
    def test_fixed_grid_convergence_order(self, solver):
        order = tfnode.solvers.get(solver).order
        # Step counts in the asymptotic regime, errors above round-off.
        steps = [16, 32, 64, 128]
        errors = [_logistic_error(solver, n) for n in steps]
        slope = np.polyfit(np.log(1.0 / np.array(steps)), np.log(errors), 1)[0]
        self.assertAllClose(slope, order, atol=0.3)


class AdaptiveAccuracyTest(test_util.TestCase):
    @test_util.parameterized.named_parameters(*((n, n) for n in _ADAPTIVE))
    def test_exponential_decay(self, solver):
        y0 = tf.constant([1.0, -2.0, 3.0], tf.float64)
        t = tf.constant([0.0, 0.5, 2.0], tf.float64)
        for tol in (1e-4, 1e-7):
            ys = tfnode.odeint(problems.decay, y0, t, solver=solver, tol=tol)
            exact = y0[None] * tf.exp(-t)[:, None]
            bound = _TOLERANCE_FACTOR.get(solver, 20.0) * tol
            self.assertAllClose(ys, exact, atol=bound, rtol=bound)

    @test_util.parameterized.named_parameters(*((n, n) for n in _ADAPTIVE))
    def test_linear_system_against_expm(self, solver):
        a = problems.linear_system()
        y0 = tf.constant(np.random.default_rng(1).normal(size=(3, 5)))
        ys = tfnode.odeint(
            lambda t, y: tf.matmul(y, a, transpose_b=True),
            y0,
            [0.0, 1.0],
            solver=solver,
            rtol=1e-8,
            atol=1e-10,
        )
        exact = problems.linear_solution(a, y0, 1.0)
        self.assertAllClose(ys[-1], exact, atol=1e-6, rtol=1e-6)

    @test_util.parameterized.named_parameters(
        *((n, n) for n in (*_ADAPTIVE, "tfp_dopri5"))
    )
    def test_riccati(self, solver):
        y0 = tf.constant([_Y0], tf.float64)
        t = np.linspace(0.0, 1.0, 5)
        ys, stats = tfnode.odeint(
            problems.riccati,
            y0,
            t,
            solver=solver,
            rtol=1e-8,
            atol=1e-8,
            return_stats=True,
        )
        bound = _TOLERANCE_FACTOR.get(solver, 1.0) * 1e-6
        self.assertAllClose(
            ys[:, 0], problems.riccati_solution(t, _Y0), atol=bound, rtol=bound
        )
        self.assertEqual(int(stats.status), tfnode.Status.SUCCESS)
        self.assertGreater(int(stats.num_fn_evals), 10)

    def test_error_shrinks_with_tolerance(self):
        y0 = tf.constant([_Y0], tf.float64)
        errors = []
        for tol in (1e-3, 1e-6, 1e-9):
            ys = tfnode.odeint(problems.riccati, y0, [0.0, 1.0], tol=tol)
            errors.append(
                abs(float(ys[-1, 0]) - problems.riccati_solution(1.0, _Y0))
            )
        self.assertLess(errors[1], errors[0] / 10)
        self.assertLess(errors[2], errors[1] / 10)

    def test_dopri5_agrees_with_tfp(self):
        a = problems.linear_system(seed=3)
        y0 = tf.ones([2, 5], tf.float64)
        t = np.linspace(0.0, 2.0, 6)
        kw = dict(rtol=1e-9, atol=1e-10)

        def f(t, y):
            return tf.tanh(tf.matmul(y, a, transpose_b=True)) * tf.cos(t)

        ours = tfnode.odeint(f, y0, t, solver="dopri5", **kw)
        theirs = tfnode.odeint(f, y0, t, solver="tfp_dopri5", **kw)
        self.assertAllClose(ours, theirs, atol=1e-7, rtol=1e-7)

    def test_adaptive_stats_count_rejections(self):
        # A sharp pulse forces rejected steps from a too-large first step.
        def pulse(t, y):
            return -50.0 * (t - 0.5) * y

        _, stats = tfnode.odeint(
            pulse,
            tf.ones([1], tf.float64),
            [0.0, 1.0],
            first_step=0.9,
            return_stats=True,
        )
        self.assertGreater(int(stats.num_rejected_steps), 0)
        evals = 1 + 6 * (int(stats.num_steps) + int(stats.num_rejected_steps))
        self.assertEqual(int(stats.num_fn_evals), evals)

    def test_fixed_grid_nfe(self):
        _, stats = tfnode.odeint(
            problems.decay,
            tf.ones([2]),
            [0.0, 0.5, 1.0],
            solver="rk4",
            steps=3,
            return_stats=True,
        )
        self.assertEqual(int(stats.num_steps), 6)
        self.assertEqual(int(stats.num_fn_evals), 24)


class StepSizeSemanticsTest(test_util.TestCase):
    def test_step_size_takes_ceil_steps_with_clamped_last(self):
        # ceil(1 / 0.3) = 4 steps: 0.3, 0.3, 0.3 and a clamped 0.1.
        y0 = tf.constant([1.0], tf.float64)
        ys, stats = tfnode.odeint(
            problems.decay,
            y0,
            [0.0, 1.0],
            solver="euler",
            step_size=0.3,
            return_stats=True,
        )
        self.assertEqual(int(stats.num_steps), 4)
        self.assertAllClose(ys[-1, 0], 0.7**3 * 0.9)

    def test_step_size_that_divides_the_span_exactly(self):
        _, stats = tfnode.odeint(
            problems.decay,
            tf.ones([1]),
            [0.0, 1.0],
            solver="euler",
            step_size=1 / 3,
            return_stats=True,
        )
        self.assertEqual(int(stats.num_steps), 3)

    def test_steps_matches_hand_written_euler(self):
        y0 = tf.constant([1.0], tf.float64)
        ys = tfnode.odeint(
            problems.decay, y0, [0.0, 2.0], solver="euler", steps=5
        )
        self.assertAllClose(ys[-1, 0], (1 - 0.4) ** 5)

    def test_adaptive_tableau_on_fixed_grid(self):
        y0 = tf.constant([_Y0], tf.float64)
        ys = tfnode.odeint(
            problems.riccati, y0, [0.0, 1.0], solver="dopri5", steps=10
        )
        self.assertAllClose(
            ys[-1, 0], problems.riccati_solution(1.0, _Y0), atol=1e-7
        )


class StructureAndDirectionTest(test_util.TestCase):
    @test_util.parameterized.named_parameters(
        ("rk4", "rk4"), ("dopri5", "dopri5")
    )
    def test_nested_state(self, solver):
        kw = {"steps": 20} if solver == "rk4" else {"tol": 1e-8}

        def f(t, state):
            pos, vel = state["x"]
            return {"x": (vel, -pos), "decay": -state["decay"]}

        y0 = {
            "x": (
                tf.constant([1.0], tf.float64),
                tf.constant([0.0], tf.float64),
            ),
            "decay": tf.constant([[2.0, 3.0]], tf.float64),
        }
        t = np.linspace(0.0, 1.0, 3)
        ys = tfnode.odeint(f, y0, t, solver=solver, **kw)
        self.assertEqual(set(ys), {"x", "decay"})
        self.assertAllClose(ys["x"][0][:, 0], np.cos(t), atol=1e-6)
        self.assertAllClose(ys["x"][1][:, 0], -np.sin(t), atol=1e-6)
        self.assertAllClose(
            ys["decay"][:, 0], np.exp(-t)[:, None] * [2.0, 3.0], atol=1e-6
        )

    @test_util.parameterized.named_parameters(
        ("rk4", "rk4"), ("dopri5", "dopri5"), ("tfp_dopri5", "tfp_dopri5")
    )
    def test_decreasing_time(self, solver):
        kw = {"steps": 50} if solver == "rk4" else {"tol": 1e-9}
        y1 = tf.constant([2.0], tf.float64)
        t = [1.0, 0.5, 0.0]
        ys = tfnode.odeint(problems.decay, y1, t, solver=solver, **kw)
        self.assertAllClose(
            ys[:, 0], 2.0 * np.exp(1.0 - np.array(t)), atol=1e-7
        )

    def test_float32(self):
        ys = tfnode.odeint(
            problems.decay, tf.ones([3]), [0.0, 1.0], solver="tsit5"
        )
        self.assertEqual(ys.dtype, tf.float32)
        self.assertAllClose(ys[-1], np.full(3, np.exp(-1.0)), atol=1e-4)

    def test_keras_layer_with_state_only_call_is_autonomous(self):
        import keras

        layer = keras.layers.Dense(2, use_bias=False)
        layer.build((None, 2))
        layer.kernel.assign(-np.eye(2))
        ys = tfnode.odeint(
            layer, tf.ones([1, 2]), [0.0, 1.0], solver="rk4", steps=20
        )
        self.assertAllClose(ys[-1], np.full((1, 2), np.exp(-1.0)), atol=1e-5)

    def test_args_reach_func(self):
        ys = tfnode.odeint(
            lambda t, y, k: -k * y,
            tf.ones([1], tf.float64),
            [0.0, 1.0],
            args=(tf.constant(2.0, tf.float64),),
            tol=1e-9,
        )
        self.assertAllClose(ys[-1, 0], np.exp(-2.0), atol=1e-7)


class ExecutionModeTest(test_util.TestCase):
    @test_util.parameterized.product(
        solver=("euler", "rk4", "dopri5", "bosh3"),
        dtype=("float32", "float64"),
    )
    def test_eager_function_and_xla_agree(self, solver, dtype):
        kw = {"steps": 8} if solver in _FIXED else {"rtol": 1e-5}
        y0 = tf.constant([[0.3, -0.2]], dtype)

        def solve():
            return tfnode.odeint(
                lambda t, y: tf.sin(y) * t - y,
                y0,
                [0.0, 0.7, 1.5],
                solver=solver,
                **kw,
            )

        results = [test_util.run_in_mode(solve, m) for m, _ in test_util.MODES]
        tol = 1e-5 if dtype == "float32" else 1e-12
        for other in results[1:]:
            self.assertAllClose(results[0], other, atol=tol, rtol=tol)

    @test_util.parameterized.named_parameters(
        ("rk4", "rk4"), ("dopri5", "dopri5")
    )
    def test_graph_size_does_not_depend_on_steps(self, solver):
        def graph_size(steps):
            fn = tf.function(
                lambda y: tfnode.odeint(
                    problems.decay, y, [0.0, 1.0], solver=solver, steps=steps
                )
            )
            graph = fn.get_concrete_function(
                tf.TensorSpec([4], tf.float32)
            ).graph.as_graph_def()
            return len(graph.node) + sum(
                len(f.node_def) for f in graph.library.function
            )

        self.assertEqual(graph_size(4), graph_size(256))


if __name__ == "__main__":
    tf.test.main()
