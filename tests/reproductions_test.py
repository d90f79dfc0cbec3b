"""The papers' reproduction scripts (`scripts/reproduce_*.py`) in their
`--quick` mode: each writes its figures and numbers, and the numbers show
the paper's finding in miniature."""

import importlib
import json
import os
import shutil
import sys
import tempfile

import tensorflow as tf

_SCRIPTS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "scripts")


def _script(name):
    if _SCRIPTS not in sys.path:
        sys.path.insert(0, _SCRIPTS)
    return importlib.import_module(name)


class ReproductionsTest(tf.test.TestCase):
    def _new_dir(self):
        path = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, path, ignore_errors=True)
        return path

    def _run(self, name, *flags):
        out = self._new_dir()
        module = _script(name)
        code = module.main([name, "--quick", f"--output_dir={out}", *flags])
        self.assertEqual(code, 0)
        return out

    def _load(self, out, name, figures):
        for figure in figures:
            path = os.path.join(out, figure)
            self.assertTrue(os.path.exists(path), path)
            with open(path, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        with open(os.path.join(out, f"{name}.md")) as f:
            self.assertIn("|---", f.read())
        with open(os.path.join(out, f"{name}.json")) as f:
            return json.load(f)

    def test_sander_error_falls_with_depth_and_memory_grows(self):
        out = self._run("reproduce_sander")
        results = self._load(
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
        out = self._run(
            "reproduce_anode",
            "--parts=gradients",
        )
        results = self._load(out, "anode_gradients", ["anode_gradients.png"])
        for row in results["rows"]:
            self.assertLen(row["blocks"], 4)
            self.assertGreater(row["relative_error"], 0.05)
            self.assertLess(row["cosine"], 0.999)

    def test_anode_training_comparison_writes_curves(self):
        out = self._run("reproduce_anode", "--parts=training")
        results = self._load(out, "anode_training", ["anode_training.png"])
        self.assertEqual(
            [r["adjoint"] for r in results["runs"]], ["anode", "continuous"]
        )
        for run in results["runs"]:
            self.assertLen(run["metrics"], 1)
            self.assertBetween(run["metrics"][0]["test_accuracy"], 0.0, 1.0)

    def test_seminorm_cuts_backward_evaluations_only(self):
        out = self._run("reproduce_seminorm")
        results = self._load(out, "seminorm", ["seminorm.png"])
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

    def test_blog_mnist_trains_on_package_digits(self):
        out = self._run("reproduce_blog_mnist")
        results = self._load(out, "blog_mnist", ["blog_mnist.png"])
        self.assertEqual(results["dataset"], "mnist_package")
        self.assertLen(results["metrics"], 1)
        self.assertBetween(results["metrics"][0]["test_accuracy"], 0.0, 1.0)
        self.assertGreater(results["metrics"][0]["nfe_backward"], 0)


if __name__ == "__main__":
    tf.test.main()
