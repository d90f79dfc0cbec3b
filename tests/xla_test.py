"""Fixed-grid solves under XLA: short grids run unrolled, and unrolling
changes nothing but the compiled program."""

from unittest import mock

import numpy as np
import tensorflow as tf

import tfnode
from tests import test_util
from tfnode import solvers
from tfnode.stepping import grid


def _while_ops(fn):
    """The `while` ops at the top level of `fn`'s graph."""
    graph = fn.get_concrete_function().graph
    return [
        op.type
        for op in graph.get_operations()
        if op.type in ("While", "StatelessWhile")
    ]


def _problem():
    """A small nonlinear field with weights, its state and the weights."""
    rng = np.random.default_rng(0)
    w = tf.Variable(rng.normal(size=(3, 3)).astype("float32") * 0.5)
    b = tf.Variable(rng.normal(size=(3,)).astype("float32") * 0.1)
    y0 = tf.constant(rng.normal(size=(4, 3)).astype("float32"))

    def field(t, y):
        return tf.tanh(tf.matmul(y, w) + b) * (1.0 + 0.1 * t)

    return field, y0, [w, b]


def _solve_and_gradients(settings, t=(0.0, 1.0)):
    """Under `jit_compile=True`: states, stats and gradients of a loss."""
    field, y0, variables = _problem()
    t = tf.constant(t)

    @tf.function(jit_compile=True)
    def run():
        with tf.GradientTape() as tape:
            tape.watch(y0)
            ys, stats = tfnode.odeint(field, y0, t, settings, return_stats=True)
            loss = tf.reduce_sum(ys[-1] ** 2) + tf.reduce_sum(ys[-2])
        grads = tape.gradient(loss, [y0, *variables])
        return ys, tuple(stats), grads

    return run, tf.nest.map_structure(np.asarray, run())


def _unrolled_and_looped(settings, **kwargs):
    unrolled = _solve_and_gradients(settings, **kwargs)
    with mock.patch.object(grid, "UNROLL_MAX_STEPS", 0):
        looped = _solve_and_gradients(settings, **kwargs)
    return unrolled, looped


class UnrollTest(test_util.TestCase):
    @test_util.parameterized.named_parameters(
        ("rk4_steps", {"solver": "rk4", "steps": 5}),
        ("euler_step_size", {"solver": "euler", "step_size": 0.1}),
        ("dopri5_fsal_grid", {"solver": "dopri5", "steps": 3}),
        ("anode", {"solver": "rk4", "steps": 4, "adjoint": "anode"}),
        (
            "anode_step_size",
            {"solver": "midpoint", "step_size": 0.3, "adjoint": "anode"},
        ),
        ("continuous", {"solver": "rk4", "steps": 4, "adjoint": "continuous"}),
        (
            "continuous_adjoint_steps",
            {
                "solver": "euler",
                "step_size": 0.25,
                "adjoint": "continuous",
                "adjoint_steps": 6,
                "adjoint_solver": "heun",
            },
        ),
    )
    def test_unrolled_equals_the_while_loop(self, options):
        settings = tfnode.SolveSettings.from_options(**options)
        (unrolled_fn, unrolled), (looped_fn, looped) = _unrolled_and_looped(
            settings
        )
        ys, stats, grads = unrolled
        ys_loop, stats_loop, grads_loop = looped
        self.assertAllClose(ys, ys_loop, rtol=1e-6, atol=1e-6)
        self.assertEqual([int(s) for s in stats], [int(s) for s in stats_loop])
        self.assertAllClose(grads, grads_loop, rtol=1e-5, atol=1e-6)
        # The steps are unrolled under XLA, forward and (backprop's
        # gradient, anode's reverse sweep) backward: no `while` op is left;
        # with the bound 0 they loop.
        self.assertNotEmpty(_while_ops(looped_fn))
        self.assertEmpty(_while_ops(unrolled_fn))

    def test_stats_count_every_step(self):
        settings = tfnode.SolveSettings(solver="rk4", steps=5)
        (_, (_, stats, _)), (_, (_, stats_loop, _)) = _unrolled_and_looped(
            settings, t=(0.0, 0.5, 1.0)
        )
        self.assertEqual([int(s) for s in stats], [int(s) for s in stats_loop])
        num_fn_evals, num_steps, rejected, status = (int(s) for s in stats)
        # Two intervals of 5 rk4 steps.
        self.assertEqual((num_fn_evals, num_steps), (40, 10))
        self.assertEqual((rejected, status), (0, 0))

    def test_recorded_trajectory_is_the_loops(self):
        field, y0, _ = _problem()
        settings = tfnode.SolveSettings(solver="rk4", steps=3)
        t = tf.constant([0.0, 0.4, 1.0])

        def run():
            _, _, trajectory = solvers.get("rk4").integrate(
                field, [y0], t, settings, record_states=True
            )
            # Every field, whatever the trajectory holds.
            fields = trajectory._asdict()
            fields["states"] = [ta.stack() for ta in fields["states"]]
            return fields

        unrolled = tf.function(run, jit_compile=True)()
        with mock.patch.object(grid, "UNROLL_MAX_STEPS", 0):
            looped = tf.function(run, jit_compile=True)()
        for name in unrolled:
            self.assertAllClose(
                unrolled[name], looped[name], rtol=1e-6, atol=1e-7, msg=name
            )
        self.assertEqual(sorted(unrolled), sorted(looped))
        self.assertAllClose(
            unrolled["times"], [0.0, 0.4 / 3, 0.8 / 3, 0.4, 0.6, 0.8]
        )
        self.assertEqual(int(unrolled["size"]), 6)

    def test_long_grids_and_graph_mode_keep_the_loop(self):
        field, y0, _ = _problem()

        def solve(steps):
            return tfnode.odeint(
                field, y0, [0.0, 1.0], solver="euler", steps=steps
            )

        above = grid.UNROLL_MAX_STEPS + 1
        xla = tf.function(lambda: solve(above), jit_compile=True)
        graph = tf.function(lambda: solve(2))
        self.assertNotEmpty(_while_ops(xla))
        self.assertNotEmpty(_while_ops(graph))
        # Above the bound the loop still gives the unrolled path's answer
        # as computed in graph mode.
        expected = tf.function(lambda: solve(above))()
        self.assertAllClose(xla(), expected, rtol=1e-5, atol=1e-6)


if __name__ == "__main__":
    tf.test.main()
