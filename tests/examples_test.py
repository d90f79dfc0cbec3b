"""The time-series examples and the dense-output benchmark in their
`--quick` mode: each writes its figure and numbers, and the numbers show
the example's point in miniature (the fit improves, the learned
restitution moves toward the truth, NFE does not grow with the outputs)."""

import tensorflow as tf

from tests import _script_runner


class ExamplesTest(_script_runner.ScriptTestCase):
    def test_spiral_fit_improves_and_nfe_ignores_output_count(self):
        out = self.run_script("example_spiral")
        results = self.load_results(out, "spiral", ["spiral.png"])
        self.assertLess(
            results["final"]["mean_error"],
            0.6 * results["initial"]["mean_error"],
        )
        self.assertLess(
            results["last_window_loss"], 0.6 * results["first_window_loss"]
        )
        nfes = [row["nfe"] for row in results["nfe_vs_outputs"]]
        self.assertGreater(min(nfes), 0)
        self.assertLessEqual(max(nfes), 1.05 * min(nfes))
        batch = results["batch_nfe"]
        self.assertGreater(batch["outputs"], 50)
        self.assertLessEqual(batch["nfe"], 1.05 * batch["ends_only_nfe"])

    def test_bouncing_ball_matches_closed_forms_and_learns_e(self):
        out = self.run_script("example_bouncing_ball")
        results = self.load_results(out, "bouncing_ball", ["bouncing_ball.png"])
        check = results["check"]
        self.assertLess(check["max_time_error"], 1e-6)
        self.assertLess(check["max_gradient_error"], 1e-4)
        self.assertGreater(check["gradient"][-1], 1.0)
        true_e, initial_e = results["true_e"], results["initial_e"]
        learned_e = results["learned_e"]
        self.assertLess(abs(learned_e - true_e), 0.7 * abs(initial_e - true_e))
        losses = [h["loss"] for h in results["history"]]
        self.assertLess(losses[-1], 0.5 * losses[0])
        self.assertAllClose(results["least_squares_e"], true_e, atol=0.05)

    def test_dense_output_benchmark_nfe_flat_and_accurate(self):
        out = self.run_script("benchmark_dense_output", "--notorch")
        results = self.load_results(out, "dense_output")
        rows = {
            (r["interpolate"], r["outputs"]): r
            for r in results["rows"]
            if r["framework"] == "tfnode"
        }
        self.assertLen(rows, 4)
        self.assertLessEqual(results["summary"]["dopri5"]["nfe_ratio"], 1.05)
        # Clamping the steps onto 50 outputs costs evaluations.
        self.assertGreater(rows[False, 50]["nfe"], rows[True, 50]["nfe"])
        for row in rows.values():
            self.assertLess(row["max_error"], 1e-4)
        self.assertLess(results["reference_gap"], 1e-8)


if __name__ == "__main__":
    tf.test.main()
