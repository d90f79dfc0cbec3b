"""The papers' reproduction scripts (`scripts/reproduce_*.py`) in their
`--quick` mode: each writes its figures and numbers, and the numbers show
the paper's finding in miniature."""

import tensorflow as tf

from tests import _script_runner


class ReproductionsTest(_script_runner.ScriptTestCase):
    def test_sander_error_falls_with_depth_and_memory_grows(self):
        out = self.run_script("reproduce_sander")
        results = self.load_results(
            out, "sander", ["sander_gradient_error.png", "sander_memory.png"]
        )
        errors = {
            (r["method"], r["depth"]): r["relative_error"]
            for r in results["gradients"]
        }
        for method in ("euler", "heun"):
            self.assertLess(errors[method, 8], errors[method, 4])
            self.assertGreater(errors[method, 8], 0.0)
        # Smooth weights: Heun's reversed steps are a whole order better.
        self.assertLess(errors["heun", 8], 0.5 * errors["euler", 8])
        self.assertLess(results["slopes"]["smooth,heun"], -1.4)
        memory = {
            (r["adjoint"], r["depth"]): r["peak_mb"] for r in results["memory"]
        }
        self.assertGreater(memory["backprop", 16], memory["backprop", 4])
        self.assertLess(memory["reversible", 16], memory["backprop", 16])

    def test_anode_continuous_gradient_is_not_the_exact_one(self):
        out = self.run_script(
            "reproduce_anode",
            "--parts=gradients",
        )
        results = self.load_results(
            out, "anode_gradients", ["anode_gradients.png"]
        )
        for row in results["rows"]:
            self.assertLen(row["blocks"], 4)
            self.assertGreater(row["relative_error"], 0.05)
            self.assertLess(row["cosine"], 0.999)

    def test_anode_training_comparison_writes_curves(self):
        out = self.run_script("reproduce_anode", "--parts=training")
        results = self.load_results(
            out, "anode_training", ["anode_training.png"]
        )
        self.assertEqual(
            [r["adjoint"] for r in results["runs"]], ["anode", "continuous"]
        )
        for run in results["runs"]:
            self.assertLen(run["metrics"], 1)
            self.assertBetween(run["metrics"][0]["test_accuracy"], 0.0, 1.0)

    def test_seminorm_cuts_backward_evaluations_only(self):
        out = self.run_script("reproduce_seminorm")
        results = self.load_results(out, "seminorm", ["seminorm.png"])
        for task, runs in results["runs"].items():
            first = {n: r["history"][0] for n, r in runs.items()}
            # Same initialisation and batch: the forward solve is the same.
            forward = {h["nfe_forward"] for h in first.values()}
            self.assertLen(forward, 1, task)
            for h in first.values():
                self.assertGreater(h["nfe_backward"], 0, task)
        classifier = results["summaries"][0]
        self.assertLess(
            classifier["backward_nfe"]["seminorm"],
            classifier["backward_nfe"]["mixed"],
        )

    def test_fig4a_sweeps_steps_and_adapts(self):
        out = self.run_script(
            "reproduce_fig4a", "--seeds=0,1", "--nojit_compile"
        )
        results = self.load_results(
            out, "results", ["fig4a.png", "fig4a_adaptation.png"]
        )
        self.assertEqual(
            [(r["step_size"], r["seed"]) for r in results["runs"]],
            [(1.0, 0), (1.0, 1), (0.5, 0), (0.5, 1)],
        )
        for run in results["runs"]:
            # 3 test solvers x the quick factors 1 and 2.
            self.assertLen(run["table"], 6)
            for row in run["table"]:
                self.assertBetween(row["accuracy"], 0.0, 1.0)
        self.assertNotEmpty(results["adaptation"]["history"])
        with open(f"{out}/results.md") as f:
            self.assertIn("Standard deviation over seeds", f.read())
        # The figure and tables are redrawn from the results alone.
        replot = f"{out}/replot.png"
        fig4a = _script_runner.script("reproduce_fig4a")
        code = fig4a.main(
            [
                "reproduce_fig4a",
                f"--replot={out}/results.json",
                f"--figure={replot}",
                "--test_factors=1,2",
            ]
        )
        self.assertEqual(code, 0)
        self.assertTrue(tf.io.gfile.exists(replot))

    def test_help_lists_the_flags(self):
        fig4a = _script_runner.script("reproduce_fig4a")
        with self.assertRaises(SystemExit) as caught:
            fig4a.main(["reproduce_fig4a", "--help"])
        self.assertEqual(caught.exception.code, 0)

    def test_fig4a_accuracy_drop_is_against_finer_solves(self):
        fig4a = _script_runner.script("reproduce_fig4a")
        table = [
            dict(solver=solver, factor=factor, accuracy=accuracy)
            for solver, factor, accuracy in [
                ("euler", 1.0, 0.9),
                ("euler", 0.5, 0.1),  # coarser: not counted
                ("euler", 2.0, 0.7),
                ("midpoint", 1.0, 0.8),
                ("rk4", 0.5, 0.2),  # coarser grid: not counted
                ("rk4", 1.0, 0.6),
            ]
        ]
        self.assertEqual(fig4a.accuracy_drop(table, "euler")[0], 0.9)
        self.assertAlmostEqual(fig4a.accuracy_drop(table, "euler")[1], 0.3)
        # Trained with midpoint: euler is not finer, rk4 at factor 1 is.
        self.assertAlmostEqual(fig4a.accuracy_drop(table, "midpoint")[1], 0.2)

    def test_blog_mnist_trains_on_package_digits(self):
        out = self.run_script("reproduce_blog_mnist")
        results = self.load_results(out, "blog_mnist", ["blog_mnist.png"])
        self.assertEqual(results["dataset"], "mnist_package")
        self.assertLen(results["metrics"], 1)
        self.assertBetween(results["metrics"][0]["test_accuracy"], 0.0, 1.0)
        self.assertGreater(results["metrics"][0]["nfe_backward"], 0)


if __name__ == "__main__":
    tf.test.main()
