"""Cross-solver evaluation, step/tolerance adaptation, Hairer's start step
and the robustness flags.

Most tests use a controlled classifier: the ODE `dy/dt = y` on [0, 1], whose
solution `y(1) = G y(0)` has a growth factor `G` that depends only on the
solver and its step (Euler with h = 1/4: `G = 1.25^4`; exact: `G = e`), and
a head that predicts class 1 when `y(1) > c`. Choosing `c` between two
solvers' growth factors sets which of them classifies a batch correctly,
so every accuracy, and every decision of step adaptation, is known in
advance.
"""

import glob
import math
import os
import warnings

import keras
import numpy as np
import tensorflow as tf
from absl import flags as absl_flags

import tfnode
from flags import robustness as robustness_flags
from tests import test_util
from tfnode import robustness
from tfnode.robustness import test_solvers as test_solver_rules


@keras.saving.register_keras_serializable(package="tfnode_tests")
class Growth(keras.layers.Layer):
    """The vector field `f(y) = y`."""

    def call(self, y):
        return y


class Threshold(keras.layers.Layer):
    """Logits `[0, y - c + b]`: class 1 where `y > c - b` (b starts at 0)."""

    def __init__(self, c, **kwargs):
        super().__init__(**kwargs)
        self.c = c

    def build(self, input_shape):
        self.b = self.add_weight(shape=(), initializer="zeros", name="b")

    def call(self, y):
        score = y[:, :1] - self.c + self.b
        return tf.concat([tf.zeros_like(score), score], axis=-1)


def growth(solver, **settings):
    """`y(1) / y(0)` of `dy/dt = y` with `solver`, in float64."""
    ys = tfnode.odeint(
        lambda t, y: y,
        tf.constant([1.0], tf.float64),
        [0.0, 1.0],
        solver=solver,
        **settings,
    )
    return float(ys[-1, 0])


def controlled_model(c, solver="euler", **settings):
    inputs = keras.Input((1,))
    block = tfnode.ODEBlock(Growth(), solver=solver, **settings)
    model = keras.Model(inputs, Threshold(c)(block(inputs)))
    return model, block


def ones_batch(n=8):
    """`n` copies of y(0) = 1, all of class 1."""
    return np.ones((n, 1), np.float32), np.ones((n,), np.int64)


class EvaluateWithSolversTest(test_util.TestCase):
    # y(0) spread over [0.5, 1.5]; labels from the exact flow.
    X = np.linspace(0.5, 1.5, 101).astype(np.float32)[:, None]
    C = 2.0

    def labels(self):
        return (math.e * self.X[:, 0] > self.C).astype(np.int64)

    def evaluate(self, model, solvers, factors):
        """The table of `model` on `X` for `solvers` x `factors`."""
        return robustness.evaluate_with_solvers(
            model, (self.X, self.labels()), solvers, factors
        )

    def expected_accuracy(self, g):
        boundary = self.C / g
        self.assertGreater(np.min(np.abs(self.X - boundary)), 1e-4)
        return float(np.mean((g * self.X[:, 0] > self.C) == self.labels()))

    def test_table_shape_order_and_columns(self):
        model, _ = controlled_model(self.C, step_size=0.25)
        table = robustness.evaluate_with_solvers(
            model,
            (self.X, self.labels()),
            ["euler", "rk2", "rk4", "dopri5"],
            [0.5, 1, 2],
            batch_size=32,
        )
        self.assertLen(table, 12)
        self.assertEqual(
            [(r["solver"], r["factor"]) for r in table],
            [
                (s, f)
                for s in ("euler", "midpoint", "rk4", "dopri5")
                for f in (0.5, 1.0, 2.0)
            ],
        )
        for row in table:
            for key in (
                "solver",
                "factor",
                "steps",
                "step_size",
                "tol",
                "accuracy",
                "loss",
                "nfe",
            ):
                self.assertIn(key, row)
            self.assertIsNone(row["error"])
            self.assertEqual(row["num_examples"], 101)
            self.assertTrue(np.isfinite(row["loss"]))

    def test_fixed_step_rows_scale_the_step_count(self):
        model, _ = controlled_model(self.C, step_size=0.25)
        table = self.evaluate(model, ["euler", "midpoint", "rk4"], [0.5, 1, 2])
        stages = {"euler": 1, "midpoint": 2, "rk4": 4}
        for row in table:
            # h_test = h_train / factor: factor times the 4 training steps
            # (the reference code's 1 / (h * factor) would be 8, 4 and 2).
            self.assertAllClose(row["step_size"], 0.25 / row["factor"])
            self.assertEqual(row["steps"], int(4 * row["factor"]))
            self.assertIsNone(row["tol"])
            self.assertEqual(row["nfe"], stages[row["solver"]] * row["steps"])
            g = growth(row["solver"], steps=row["steps"])
            self.assertAllClose(
                row["accuracy"], self.expected_accuracy(g), atol=1e-9
            )
        # The coarse solver really is worse here: Euler with 2 steps
        # (G = 2.25) misclassifies the points in (2/e, 2/2.25), 15% of them;
        # rk4 with 8 steps none.
        by_key = {(r["solver"], r["factor"]): r for r in table}
        self.assertAllClose(by_key["euler", 0.5]["accuracy"], 86 / 101)
        self.assertEqual(by_key["rk4", 2.0]["accuracy"], 1.0)

    def test_adaptive_rows_scale_the_tolerance(self):
        model, _ = controlled_model(self.C, step_size=0.25)
        table = self.evaluate(model, ["dopri5"], [0.1, 10])
        for row, factor in zip(table, (0.1, 10), strict=True):
            self.assertIsNone(row["steps"])
            self.assertIsNone(row["step_size"])
            # No training tolerance: odeint's defaults times the factor.
            self.assertAllClose(row["rtol"], 1e-3 * factor)
            self.assertAllClose(row["atol"], 1e-6 * factor)
            self.assertEqual(row["tol"], row["rtol"])
            self.assertGreater(row["nfe"], 6)
            self.assertEqual(row["accuracy"], 1.0)
        self.assertGreater(table[0]["nfe"], table[1]["nfe"])

    def test_train_tol_and_steps_are_scaled(self):
        model, _ = controlled_model(self.C, solver="dopri5", tol=1e-2)
        rows = self.evaluate(model, ["dopri5"], [0.5])
        self.assertAllClose(rows[0]["tol"], 5e-3)
        self.assertAllClose(rows[0]["atol"], 5e-3)
        model, _ = controlled_model(self.C, solver="midpoint", steps=3)
        rows = self.evaluate(model, ["midpoint"], [2])
        self.assertEqual(rows[0]["steps"], 6)
        self.assertAllClose(rows[0]["step_size"], 1 / 6)

    def test_settings_and_counters_are_restored(self):
        model, block = controlled_model(
            self.C, step_size=0.25, adjoint="reversible"
        )
        model.compile(loss="sparse_categorical_crossentropy")
        model.predict(self.X, verbose=0)
        counts = [v.numpy() for v in block.nfe_counter.variables]
        before = block.get_config()
        self.evaluate(model, ["rk4", "dopri5"], [1, 2])
        self.assertEqual(block.get_config(), before)
        self.assertEqual(block.settings.adjoint.name, "reversible")
        self.assertAllEqual(
            [v.numpy() for v in block.nfe_counter.variables], counts
        )

    def test_scaled_settings_are_the_training_settings_scaled(self):
        _, block = controlled_model(
            self.C,
            solver="midpoint",
            steps=4,
            adjoint=tfnode.adjoints.Anode(checkpoints=2),
            max_num_steps=77,
        )
        # Fixed step: h_train / factor, forward only, other fields kept.
        self.assertEqual(
            robustness.scaled_settings(block, "rk4", 2),
            tfnode.SolveSettings(
                solver="rk4", step_size=0.125, max_num_steps=77
            ),
        )
        # Adaptive: odeint's default tolerances (or train_tol) x factor.
        test = robustness.scaled_settings(block, "dopri5", 10)
        self.assertAllClose((test.rtol, test.atol), (1e-2, 1e-5))
        self.assertEqual(
            test,
            tfnode.SolveSettings(
                solver="dopri5",
                rtol=test.rtol,
                atol=test.atol,
                max_num_steps=77,
            ),
        )
        self.assertEqual(
            robustness.scaled_settings(block, "bosh3", 2, train_tol=1e-4),
            tfnode.SolveSettings(solver="bosh3", tol=2e-4, max_num_steps=77),
        )
        _, adaptive = controlled_model(self.C, solver="tsit5", rtol=1e-4)
        self.assertEqual(
            robustness.scaled_settings(adaptive, "dopri5", 0.5),
            adaptive.settings.replace(solver="dopri5", rtol=5e-5, atol=5e-7),
        )
        # The block itself is left as it was.
        self.assertEqual(block.settings.adjoint.checkpoints, 2)

    def test_a_users_own_solver(self):
        tableau = tfnode.solvers.ButcherTableau(
            name="my_rk4",
            order=4,
            c=(0.0, 0.5, 0.5, 1.0),
            a=((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)),
            b=(1 / 6, 1 / 3, 1 / 3, 1 / 6),
        )
        solver = tfnode.solvers.ExplicitRungeKutta(tableau)
        model, _ = controlled_model(self.C, step_size=0.25)
        data = (self.X, self.labels())
        mine, reference = robustness.evaluate_with_solvers(
            model, data, [solver, "rk4"], [2]
        )
        self.assertEqual(mine["solver"], "my_rk4")
        self.assertEqual(
            {k: v for k, v in mine.items() if k != "solver"},
            {k: v for k, v in reference.items() if k != "solver"},
        )

    def test_dataset_input_and_multiple_blocks(self):
        inputs = keras.Input((1,))
        first = tfnode.ODEBlock(Growth(), solver="euler", steps=2)
        second = tfnode.ODEBlock(Growth(), solver="euler", steps=3)
        outputs = Threshold(self.C * math.e)(second(first(inputs)))
        model = keras.Model(inputs, outputs)
        data = tf.data.Dataset.from_tensor_slices(
            (self.X, self.labels())
        ).batch(16)
        (row,) = robustness.evaluate_with_solvers(model, data, ["euler"], [2])
        self.assertEqual(row["steps"], [4, 6])
        self.assertAllClose(row["step_size"], [0.25, 1 / 6])
        self.assertEqual(row["nfe"], 10)

    def test_bad_arguments(self):
        model, _ = controlled_model(self.C, step_size=0.25)
        data = (self.X, self.labels())
        with self.assertRaisesRegex(ValueError, "choose one of: .*euler"):
            robustness.evaluate_with_solvers(model, data, ["rk5"], [1])
        with self.assertRaisesRegex(ValueError, "factors must be"):
            robustness.evaluate_with_solvers(model, data, ["euler"], [0])
        adaptive, _ = controlled_model(self.C, solver="dopri5")
        with self.assertRaisesRegex(ValueError, "train_step_size"):
            robustness.evaluate_with_solvers(adaptive, data, ["rk4"], [1])
        (row,) = robustness.evaluate_with_solvers(
            adaptive, data, ["rk4"], [2], train_step_size=0.5
        )
        self.assertEqual(row["steps"], 4)
        plain = keras.Sequential([keras.Input((1,)), keras.layers.Dense(2)])
        with self.assertRaisesRegex(ValueError, "no tfnode.ODEBlock"):
            robustness.evaluate_with_solvers(plain, data, ["euler"], [1])

    def test_plot_solver_table_writes_a_png(self):
        model, _ = controlled_model(self.C, step_size=0.25)
        table = self.evaluate(model, ["euler", "rk4", "dopri5"], [0.5, 1, 2])
        path = os.path.join(self.get_temp_dir(), "sub", "table.png")
        robustness.plot_solver_table(table, path, title="test")
        sweep = os.path.join(self.get_temp_dir(), "sweep.png")
        robustness.plot_solver_sweep({"h=1/4": table, "again": table}, sweep)
        for p in (path, sweep):
            with open(p, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
            self.assertLess(os.path.getsize(p), 300_000)


class InitialStepTest(test_util.TestCase):
    def test_single_sample_by_hand(self):
        # f = 2y, y0 = (3, 4): d0 = 5, d1 = 10, h0 = 0.01 * 5 / 10 = 0.005;
        # f(y1) - f(y0) = 2 h0 f0 = (0.06, 0.08), d2 = 0.1 / 0.005 = 20;
        # h1 = (0.01 / 20)^(1/2) = 0.0223607; h = min(100 h0, h1) = h1.
        h = robustness.step_adaptation_initial_step(
            lambda t, y: 2.0 * y, tf.constant([[3.0, 4.0]]), order=1
        )
        self.assertAllClose(h, math.sqrt(0.0005), rtol=1e-6)

    def test_norms_per_sample_then_mean(self):
        # y0 = (3, 4), (0, 1): d0 = (5 + 1) / 2 = 3, d1 = (10 + 2) / 2 = 6,
        # h0 = 0.005; |f(y1) - f(y0)| = 0.01 |f0| = 0.1, 0.02 -> d2 = 12;
        # order 2: h1 = (0.01 / 12)^(1/3) = 0.0941036. (One norm over the
        # whole batch, sqrt(26), would give another step.)
        h = robustness.step_adaptation_initial_step(
            lambda t, y: 2.0 * y,
            tf.constant([[3.0, 4.0], [0.0, 1.0]]),
            order=2,
        )
        self.assertAllClose(h, (0.01 / 12) ** (1 / 3), rtol=1e-6)
        self.assertAllClose(h, 0.0941036, rtol=1e-5)

    def test_nonlinear_field_is_evaluated_at_the_trial_point(self):
        # f = y^2, y0 = (1, 0): d0 = d1 = 1, h0 = 0.01, y1 = (1.01, 0),
        # f(y1) - f(y0) = (0.0201, 0), d2 = 2.01, h1 = (0.01 / 2.01)^(1/2).
        h = robustness.step_adaptation_initial_step(
            lambda t, y: y * y,
            tf.constant([[1.0, 0.0]], tf.float64),
            order=1,
        )
        self.assertAllClose(h, math.sqrt(0.01 / 2.01), rtol=1e-9)
        self.assertAllClose(h, 0.0705346, rtol=1e-5)

    def test_channels_last_state_has_the_reference_norms(self):
        # A (batch, d, 1) state (channels last, one channel) is normed over
        # its d features like the reference's (batch, 1, d).
        y0 = np.array([[3.0, 4.0], [0.0, 1.0]], np.float32)
        h_ref = robustness.step_adaptation_initial_step(
            lambda t, y: 2.0 * y, tf.constant(y0[:, None, :]), order=2
        )
        h_last = robustness.step_adaptation_initial_step(
            lambda t, y: 2.0 * y, tf.constant(y0[:, :, None]), order=2
        )
        self.assertAllClose(h_ref, (0.01 / 12) ** (1 / 3), rtol=1e-6)
        self.assertAllClose(h_last, h_ref, rtol=1e-9)

    def test_degenerate_field(self):
        # f = 0: d1 < 1e-5 -> h0 = 1e-6; max(d1, d2) = 0 ->
        # h1 = max(1e-6, 1e-3 h0) = 1e-6; h = min(100 h0, h1) = 1e-6.
        h = robustness.step_adaptation_initial_step(
            lambda t, y: tf.zeros_like(y), tf.constant([[1.0, 2.0]]), order=1
        )
        self.assertAllClose(h, 1e-6)

    def test_callback_starts_from_the_heuristic(self):
        # f = y, y0 = 4: d0 = d1 = 4, h0 = 0.01, d2 = 4,
        # h1 = (0.01 / 4)^(1/2) = 0.05 = h.
        model, block = controlled_model(2.0, step_size=1.0)
        callback = robustness.StepAdaptation(
            (np.full((4, 1), 4.0, np.float32), np.ones(4, np.int64))
        )
        callback.set_model(model)
        callback.on_train_begin()
        self.assertAllClose(callback.history[0]["hairer_step"], 0.05)
        self.assertAllClose(block.settings.step_size, 0.05)
        self.assertEqual(callback.history[0]["num_steps"], 20)


class TestSolverRulesTest(test_util.TestCase):
    def test_fixed_step_rules(self):
        rule = test_solver_rules.fixed_step_test_solver
        # Euler: sqrt(h / 50) while 1/h <= 50, else h itself.
        self.assertEqual(rule("euler", 1.0)[0], "midpoint")
        self.assertAllClose(rule("euler", 1.0)[1], math.sqrt(1 / 50))
        self.assertAllClose(rule("euler", 0.5)[1], 0.1)
        self.assertAllClose(rule("euler", 1 / 64)[1], 1 / 64)
        # Midpoint: (h^2 / 50)^(1/4) while 1/h^2 <= 50, else h.
        self.assertEqual(rule("midpoint", 0.5)[0], "rk4")
        self.assertAllClose(rule("midpoint", 0.5)[1], (0.25 / 50) ** 0.25)
        self.assertAllClose(rule("midpoint", 0.1)[1], 0.1)
        # On [0, 2], h = 1 is half the interval: sqrt(0.5 / 50) * 2.
        self.assertAllClose(rule("euler", 1.0, span=2.0)[1], 0.2)
        with self.assertRaisesRegex(ValueError, "no default test solver"):
            rule("rk4", 0.5)
        with self.assertRaisesRegex(ValueError, "higher order"):
            rule("midpoint", 0.5, test_solver="heun")

    def test_tolerance_rules(self):
        rule = test_solver_rules.tolerance_test_solver
        self.assertEqual(rule("fehlberg2", 1e-3), ("dopri5", 2e-4))
        name, tol = rule("dopri5", 1e-3)
        self.assertEqual(name, "dopri5")
        self.assertAllClose(tol, 1e-4)
        with self.assertRaisesRegex(ValueError, "adaptive solver"):
            rule("euler", 1e-3)


class StepAdaptationTest(test_util.TestCase):
    def adapter(self, model, **kwargs):
        kwargs.setdefault("initial_step", None)
        callback = robustness.StepAdaptation(ones_batch(), **kwargs)
        callback.set_model(model)
        callback.on_train_begin()
        return callback

    def test_halves_the_step_when_the_gap_passes_the_threshold(self):
        # Euler h = 1/4: G = 2.441 < c; the test solve (midpoint,
        # h = sqrt(0.25 / 50)) gives G = 2.716 > c: accuracies 0 and 1.
        c = 2.6
        self.assertLess(growth("euler", step_size=0.25), c)
        self.assertGreater(growth("midpoint", step_size=0.0707), c)
        model, block = controlled_model(c, step_size=0.25)
        callback = self.adapter(model)
        entry = callback.adapt(*ones_batch())
        self.assertEqual(entry["action"], "decrease")
        self.assertEqual(entry["train_accuracy"], 0.0)
        self.assertEqual(entry["test_accuracy"], 1.0)
        self.assertEqual(entry["test_solver"], "midpoint")
        self.assertAllClose(entry["test_step_size"], math.sqrt(0.25 / 50))
        self.assertAllClose(block.settings.step_size, 0.125)
        self.assertAllClose(callback.step_size, 0.125)

    def test_no_change_below_the_threshold(self):
        # Half of the batch misclassified by Euler only, threshold 0.6.
        c = 2.6
        model, block = controlled_model(c, step_size=0.25)
        x = np.array([[1.0]] * 4 + [[2.0]] * 4, np.float32)
        y = np.ones(8, np.int64)
        callback = robustness.StepAdaptation(
            (x, y), threshold=0.6, initial_step=None
        )
        callback.set_model(model)
        callback.on_train_begin()
        entry = callback.adapt(x, y)
        self.assertEqual(entry["train_accuracy"], 0.5)
        self.assertEqual(entry["action"], "increase")
        self.assertAllClose(block.settings.step_size, 0.275)

    def test_grows_by_ten_percent_when_the_accuracies_agree(self):
        model, block = controlled_model(1.5, step_size=0.25)
        callback = self.adapter(model)
        entry = callback.adapt(*ones_batch())
        self.assertEqual(entry["action"], "increase")
        self.assertAllClose(entry["tried_step_size"], 0.275)
        self.assertAllClose(block.settings.step_size, 0.275)
        # Growth stops at one step over the interval.
        model, block = controlled_model(1.5, step_size=0.95)
        callback = self.adapter(model)
        self.assertEqual(callback.adapt(*ones_batch())["action"], "increase")
        self.assertEqual(block.settings.step_size, 1.0)
        self.assertEqual(callback.adapt(*ones_batch())["action"], "keep")

    def test_reverts_when_the_larger_step_fails(self):
        # c between Euler's G at h = 1/4 (2.4414) and at h = 0.275 (2.4354).
        g, g_larger = (
            growth("euler", step_size=0.25),
            growth("euler", step_size=0.275),
        )
        self.assertGreater(g - g_larger, 1e-3)
        model, block = controlled_model((g + g_larger) / 2, step_size=0.25)
        callback = self.adapter(model)
        entry = callback.adapt(*ones_batch())
        self.assertEqual(entry["train_accuracy"], 1.0)
        self.assertEqual(entry["test_accuracy"], 1.0)
        self.assertAllClose(entry["tried_step_size"], 0.275)
        self.assertEqual(entry["tried_accuracy"], 0.0)
        self.assertEqual(entry["action"], "revert")
        self.assertEqual(block.settings.step_size, 0.25)

    def test_respects_max_steps(self):
        # Euler stays below c = 2.6 up to 6 steps ((7/6)^6 = 2.52), so the
        # gap never closes. From 4 steps with max_steps = 6: halfway to the
        # cap, 2h / (max_steps h + 1) = 0.2 (5 steps), then 1 / 5.5
        # (6 steps, the last one clamped), then no further.
        model, block = controlled_model(2.6, step_size=0.25)
        callback = self.adapter(model, max_steps=6)
        entries = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(4):
                entries.append(callback.adapt(*ones_batch()))
        self.assertEqual(
            [e["action"] for e in entries],
            ["decrease", "decrease", "at_max_steps", "at_max_steps"],
        )
        self.assertEqual([e["num_steps"] for e in entries], [5, 6, 6, 6])
        self.assertAllClose(entries[0]["step_size"], 0.2)
        self.assertAllClose(entries[1]["step_size"], 1 / 5.5)
        self.assertAllClose(block.settings.step_size, 1 / 5.5)
        self.assertTrue(any("max_steps=6" in str(w.message) for w in caught))
        # Far from the cap the step is halved.
        model, block = controlled_model(2.6, step_size=0.25)
        callback = self.adapter(model, max_steps=500)
        callback.adapt(*ones_batch())
        self.assertAllClose(block.settings.step_size, 0.125)

    def test_initial_step_is_clipped_to_max_steps(self):
        model, block = controlled_model(2.6, step_size=0.25)
        self.adapter(model, initial_step=1e-4, max_steps=100)
        self.assertAllClose(block.settings.step_size, 0.01)

    def test_in_fit_retraces_logs_and_writes_tensorboard(self):
        model, block = controlled_model(2.6, step_size=0.25)
        model.compile(
            optimizer=keras.optimizers.SGD(0.0),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        x, y = ones_batch(32)
        data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
        log_dir = os.path.join(self.get_temp_dir(), "adaptation")
        callback = robustness.StepAdaptation(
            data, interval=2, initial_step=None, log_dir=log_dir
        )
        history = model.fit(data, epochs=1, callbacks=[callback], verbose=0)
        # Adaptations after batches 2 and 4: h = 1/4 -> 1/8 -> 1/16.
        self.assertEqual(
            [(e["iteration"], e["action"]) for e in callback.history],
            [(0, "init"), (2, "decrease"), (4, "decrease")],
        )
        self.assertAllClose(block.settings.step_size, 1 / 16)
        self.assertAllClose(history.history["adapted_step_size"], [1 / 16])
        self.assertEqual(history.history["adapted_steps"], [16])
        # The train function was retraced: batches 1-2 took 4 Euler steps,
        # batches 3-4 took 8 (the epoch's mean NFE is 6).
        self.assertAllClose(history.history[f"{block.name}_nfe_forward"], [6.0])
        (events,) = glob.glob(os.path.join(log_dir, "events.*"))
        steps, plugins = {}, set()
        for event in tf.compat.v1.train.summary_iterator(events):
            for value in event.summary.value:
                if value.tag == "adaptation/step_size":
                    steps[event.step] = float(tf.make_ndarray(value.tensor))
                    if value.metadata.plugin_data.plugin_name:
                        plugins.add(value.metadata.plugin_data.plugin_name)
        self.assertEqual(sorted(steps), [0, 2, 4])
        self.assertEqual(plugins, {"scalars"})
        self.assertAllClose(steps[4], 1 / 16)

    def test_counts_batches_with_steps_per_execution(self):
        model, block = controlled_model(2.6, step_size=0.25)
        model.compile(
            optimizer=keras.optimizers.SGD(0.0),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            steps_per_execution=3,
        )
        x, y = ones_batch(48)
        data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
        callback = robustness.StepAdaptation(
            data, interval=4, initial_step=None
        )
        model.fit(data, epochs=2, callbacks=[callback], verbose=0)
        # 12 batches reported in threes: adaptations once 4, 8 and 12
        # batches are done.
        self.assertEqual(callback.iteration, 12)
        self.assertEqual(
            [(e["iteration"], e["action"]) for e in callback.history],
            [(0, "init"), (6, "decrease"), (9, "decrease"), (12, "increase")],
        )
        # At 16 Euler steps G = 1.0625^16 = 2.638 > c: the gap has closed.
        self.assertAllClose(block.settings.step_size, 0.25 / 4 * 1.1)

    def test_needs_data_in_fit_and_a_supported_solver(self):
        model, _ = controlled_model(2.6, step_size=0.25)
        callback = robustness.StepAdaptation()
        callback.set_model(model)
        with self.assertRaisesRegex(ValueError, "needs data="):
            callback.on_train_begin()
        model, _ = controlled_model(2.6, solver="rk4", step_size=0.25)
        callback = robustness.StepAdaptation(ones_batch())
        callback.set_model(model)
        with self.assertRaisesRegex(ValueError, "no default test solver"):
            callback.on_train_begin()
        with self.assertRaisesRegex(ValueError, "threshold must be"):
            robustness.StepAdaptation(threshold=2.0)
        with self.assertRaisesRegex(ValueError, "max_steps must be"):
            robustness.StepAdaptation(max_steps=0)


class ToleranceAdaptationTest(test_util.TestCase):
    """Algorithm 3 with fehlberg2 (G = 2.649 at tol = 0.1, 11 evaluations)
    tested against dopri5 at tol / 5 (G = 2.71831, 14 evaluations)."""

    def adapter(self, model, **kwargs):
        callback = robustness.StepAdaptation(
            ones_batch(), initial_tol=0.1, **kwargs
        )
        callback.set_model(model)
        callback.on_train_begin()
        return callback

    def test_halves_the_tolerance_on_a_gap(self):
        model, block = controlled_model(2.69, solver="fehlberg2")
        callback = self.adapter(model)
        self.assertEqual(
            callback.history[0], dict(iteration=0, action="init", tol=0.1)
        )
        entry = callback.adapt(*ones_batch())
        self.assertEqual(entry["action"], "decrease")
        self.assertEqual(entry["test_solver"], "dopri5")
        self.assertAllClose(entry["test_tol"], 0.02)
        self.assertGreater(entry["test_nfe"], entry["train_nfe"])
        self.assertAllClose(
            (block.settings.rtol, block.settings.atol), (0.05, 0.05)
        )

    def test_grows_unless_the_nfe_has_stalled(self):
        model, block = controlled_model(2.0, solver="fehlberg2")
        callback = self.adapter(model)
        entry = callback.adapt(*ones_batch())
        self.assertEqual(entry["action"], "increase")
        self.assertAllClose(
            (block.settings.rtol, block.settings.atol), (0.11, 0.11)
        )
        self.assertEqual(entry["tried_nfe"], entry["train_nfe"])

        # In fit, the last 5 training steps took 11 evaluations each, as
        # does the solve at 1.1 tol: the looser tolerance is reverted.
        model, block = controlled_model(2.0, solver="fehlberg2")
        model.compile(
            optimizer=keras.optimizers.SGD(0.0),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        x, y = ones_batch(40)
        data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
        callback = robustness.StepAdaptation(data, initial_tol=0.1, interval=5)
        history = model.fit(data, epochs=1, callbacks=[callback], verbose=0)
        entry = callback.history[-1]
        self.assertEqual(entry["tried_nfe"], 11)
        self.assertEqual(entry["action"], "revert")
        self.assertAllClose(
            (block.settings.rtol, block.settings.atol), (0.1, 0.1)
        )
        self.assertAllClose(history.history["adapted_tol"], [0.1])


class RobustnessFlagsTest(test_util.TestCase):
    def parse(self, *argv):
        flag_values = absl_flags.FlagValues()
        robustness_flags.define_robustness_flags(flag_values)
        robustness_flags.define_robustness_flags(flag_values)  # idempotent
        flag_values(["train.py", *argv])
        return flag_values

    def test_defaults(self):
        flag_values = self.parse()
        self.assertEqual(flag_values.test_solvers, [])
        self.assertEqual(flag_values.test_factors, [0.5, 1.0, 2.0])
        self.assertFalse(flag_values.step_adaptation)
        self.assertEqual(flag_values.adaptation_threshold, 0.1)
        self.assertEqual(flag_values.adaptation_interval, 50)
        self.assertEqual(flag_values.adaptation_max_steps, 500)
        self.assertIsNone(robustness_flags.evaluation_kwargs(flag_values))
        self.assertIsNone(robustness_flags.adaptation_kwargs(flag_values))

    def test_values(self):
        flag_values = self.parse(
            "--test_solvers=euler,midpoint,rk4",
            "--test_factors=0.5,0.75,1,1.5,2",
            "--step_adaptation",
            "--adaptation_threshold=0.05",
            "--adaptation_interval=10",
            "--adaptation_max_steps=64",
        )
        self.assertEqual(
            robustness_flags.evaluation_kwargs(flag_values),
            dict(
                solvers=["euler", "midpoint", "rk4"],
                factors=[0.5, 0.75, 1.0, 1.5, 2.0],
            ),
        )
        self.assertEqual(
            robustness_flags.adaptation_kwargs(flag_values),
            dict(threshold=0.05, interval=10, max_steps=64),
        )

    def test_bad_values_name_the_allowed_ones(self):
        with self.assertRaisesRegex(
            absl_flags.IllegalFlagValueError,
            "test_solvers must be one of .*'rk4'.*got 'rk5'",
        ):
            self.parse("--test_solvers=euler,rk5")
        for bad in ("0", "-1", "x"):
            with self.assertRaisesRegex(
                absl_flags.IllegalFlagValueError, "numbers > 0"
            ):
                self.parse(f"--test_factors=1,{bad}")
        with self.assertRaises(absl_flags.IllegalFlagValueError):
            self.parse("--adaptation_threshold=1.5")
        with self.assertRaises(absl_flags.IllegalFlagValueError):
            self.parse("--adaptation_interval=0")
        with self.assertRaises(absl_flags.IllegalFlagValueError):
            self.parse("--adaptation_max_steps=0")


if __name__ == "__main__":
    tf.test.main()
