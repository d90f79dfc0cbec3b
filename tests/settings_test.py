"""`SolveSettings`: validation, derivation, serialisation, configured
gradient methods and user-defined solvers."""

import dataclasses
import json

import numpy as np
import tensorflow as tf

import tfnode
from tests import test_util
from tfnode.adjoints import Anode
from tfnode.adjoints import Continuous
from tfnode.solvers import ButcherTableau
from tfnode.solvers import ExplicitRungeKutta

# Ralston's second-order method: a tableau no registry entry holds.
RALSTON = ButcherTableau(
    name="ralston",
    order=2,
    a=((), (2 / 3,)),
    b=(1 / 4, 3 / 4),
    c=(0.0, 2 / 3),
)


class SolveSettingsTest(test_util.TestCase):
    def test_defaults(self):
        s = tfnode.SolveSettings()
        self.assertEqual(s.solver_name, "dopri5")
        self.assertEqual((s.rtol, s.atol), (1e-3, 1e-6))
        self.assertFalse(s.fixed_grid)
        self.assertEqual(s.adjoint, tfnode.adjoints.Backprop())

    def test_shorthand_builds_the_same_value(self):
        by_value = tfnode.SolveSettings(
            solver="rk4", steps=4, adjoint=Anode(checkpoints=3)
        )
        by_keywords = tfnode.SolveSettings.from_options(
            solver="rk4", steps=4, adjoint="anode", checkpoints=3
        )
        self.assertEqual(by_value, by_keywords)
        self.assertEqual(hash(by_value), hash(by_keywords))
        self.assertNotEqual(by_value, by_value.replace(checkpoints=2))

    def test_continuous_options_configure_the_method(self):
        s = tfnode.SolveSettings.from_options(
            adjoint="continuous",
            seminorm=True,
            adjoint_rtol=1e-5,
            adjoint_solver="tsit5",
        )
        self.assertEqual(
            s.adjoint, Continuous(solver="tsit5", rtol=1e-5, seminorm=True)
        )
        backward = s.adjoint.backward_settings(s)
        self.assertEqual(backward.solver_name, "tsit5")
        self.assertEqual((backward.rtol, backward.atol), (1e-5, 1e-6))

    def test_tol_sets_both_tolerances(self):
        s = tfnode.SolveSettings(tol=1e-7)
        self.assertEqual((s.rtol, s.atol), (1e-7, 1e-7))

    def test_replace_switches_between_grid_and_tolerances(self):
        adaptive = tfnode.SolveSettings(rtol=1e-4)
        fixed = adaptive.replace(solver="rk4", steps=8)
        self.assertEqual((fixed.steps, fixed.rtol, fixed.atol), (8, None, None))
        back = fixed.replace(solver="dopri5", tol=1e-6)
        self.assertEqual((back.steps, back.rtol), (None, 1e-6))
        # A solver-only change keeps the grid the new solver can use.
        self.assertEqual(fixed.replace(solver="euler").steps, 8)
        self.assertEqual(fixed.replace(solver="dopri5").steps, 8)

    def test_refine(self):
        self.assertEqual(tfnode.SolveSettings(
            solver="euler", steps=3).refine(2).steps, 6)
        self.assertEqual(
            tfnode.SolveSettings(solver="euler", step_size=0.5)
            .refine(4)
            .step_size,
            0.125,
        )
        refined = tfnode.SolveSettings(rtol=1e-3, atol=1e-6).refine(10)
        self.assertAllClose([refined.rtol, refined.atol], [1e-4, 1e-7])
        self.assertEqual(
            tfnode.SolveSettings(adjoint="anode").forward_only().adjoint.name,
            "backprop",
        )

    def test_config_round_trip_through_json(self):
        for s in (
            tfnode.SolveSettings(solver="rk2", steps=3, adjoint="anode"),
            tfnode.SolveSettings.from_options(
                solver="tsit5", tol=1e-5, adjoint="continuous",
                seminorm=True, adjoint_steps=None, norm="max",
            ),
            tfnode.SolveSettings(solver="heun", step_size=0.1,
                                 adjoint="reversible"),
            tfnode.SolveSettings(solver=ExplicitRungeKutta(RALSTON), steps=2),
        ):
            config = json.loads(json.dumps(s.get_config()))
            self.assertEqual(tfnode.SolveSettings.from_config(config), s)

    def test_custom_norm_is_usable_but_not_serialisable(self):
        s = tfnode.SolveSettings(norm=lambda errors: tf.constant(0.5))
        with self.assertRaisesRegex(ValueError, "norm=.*cannot be serialised"):
            s.get_config()

    def test_frozen(self):
        with self.assertRaises(dataclasses.FrozenInstanceError):
            tfnode.SolveSettings().steps = 3


class SolveSettingsErrorsTest(test_util.TestCase):
    @test_util.parameterized.named_parameters(
        ("grid_and_rtol", dict(steps=4, rtol=1e-3), ValueError,
         r"steps=\) and tolerances \(rtol=\) together are ambiguous"),
        ("step_size_and_tol", dict(step_size=0.1, tol=1e-3), ValueError,
         "ambiguous"),
        ("tol_and_rtol", dict(tol=1e-3, rtol=1e-3), ValueError,
         "tol sets both rtol and atol"),
        ("fixed_step_without_grid", dict(solver="rk4"), ValueError,
         "solver='rk4' is a fixed-step method"),
        ("unknown_key", dict(bogus=1), TypeError,
         r"Unknown solve setting\(s\) \['bogus'\]"),
        ("unknown_norm", dict(norm="l1"), ValueError,
         "norm must be one of 'max', 'rms'"),
        ("bad_checkpoints", dict(adjoint="anode", checkpoints=0), ValueError,
         "checkpoints must be an int >= 1"),
        ("foreign_option", dict(adjoint="backprop", checkpoints=2),
         ValueError, "checkpoints= is an option of another gradient method"),
        ("reversible_rk4", dict(solver="rk4", steps=2, adjoint="reversible"),
         ValueError, "Use solver='euler' or 'heun'"),
        ("anode_tfp", dict(solver="tfp_dopri5", adjoint="anode"), ValueError,
         "does not expose them"),
        ("unknown_adjoint_solver",
         dict(adjoint="continuous", adjoint_solver="nope"), ValueError,
         "adjoint_solver='nope'"),
        ("adjoint_rtol_on_grid",
         dict(solver="rk4", steps=2, adjoint="continuous", adjoint_rtol=1e-3),
         ValueError, "adjoint_rtol= set the tolerances"),
    )
    def test_error_names_the_argument(self, options, error, pattern):
        with self.assertRaisesRegex(error, pattern):
            tfnode.SolveSettings.from_options(**options)

    def test_settings_argument_must_be_settings(self):
        with self.assertRaisesRegex(TypeError, "settings must be a tfnode"):
            tfnode.odeint(lambda t, y: -y, tf.ones([1]), [0.0, 1.0], "rk4")


class UserSolverTest(test_util.TestCase):
    """A user's own tableau works wherever a registered name does."""

    def test_custom_tableau_under_every_replaying_method(self):
        solver = ExplicitRungeKutta(RALSTON)
        self.assertIs(tfnode.solvers.get(solver), solver)
        y0 = tf.constant([1.0, 0.5], tf.float64)
        t = tf.constant([0.0, 1.0], tf.float64)
        exact = np.exp(-1.0) * y0.numpy()
        grads = {}
        for adjoint in ("backprop", "anode"):
            with tf.GradientTape() as tape:
                tape.watch(y0)
                y1 = tfnode.odeint(
                    lambda t, y: -y, y0, t,
                    solver=solver, steps=64, adjoint=adjoint,
                )[-1]
                loss = tf.reduce_sum(y1)
            grads[adjoint] = tape.gradient(loss, y0)
            self.assertAllClose(y1, exact, rtol=1e-4)
        self.assertAllClose(grads["backprop"], grads["anode"], rtol=1e-12)
        # Second order: doubling the steps cuts the error about 4x.
        errors = [
            abs(float(tfnode.odeint(
                lambda t, y: -y, y0, t, solver=solver, steps=n)[-1][0])
                - exact[0])
            for n in (8, 16)
        ]
        self.assertBetween(errors[0] / errors[1], 3.5, 4.5)

    def test_custom_tableau_in_a_layer_round_trip(self):
        import keras

        block = tfnode.ODEBlock(
            keras.layers.Dense(2),
            solver=ExplicitRungeKutta(RALSTON),
            steps=2,
        )
        clone = tfnode.ODEBlock.from_config(
            json.loads(json.dumps(block.get_config()))
        )
        self.assertEqual(clone.settings, block.settings)


if __name__ == "__main__":
    test_util.main()
