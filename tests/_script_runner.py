"""Runs the scripts under `scripts/` in-process, as the tests of the
examples, benchmarks and reproductions do."""

import importlib
import json
import os
import shutil
import sys
import tempfile

import tensorflow as tf

_SCRIPTS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "scripts")


def script(name):
    """Imports `scripts/<name>.py` (the scripts import their siblings)."""
    if _SCRIPTS not in sys.path:
        sys.path.insert(0, _SCRIPTS)
    return importlib.import_module(name)


class ScriptTestCase(tf.test.TestCase):
    """Runs a script's `main` with `--quick` and reads what it wrote."""

    def run_script(self, name, *flags):
        """Runs `name` with `--quick` and `flags` into a fresh folder.

        Returns:
            The folder, removed when the test ends.
        """
        out = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, out, ignore_errors=True)
        code = script(name).main(
            [name, "--quick", f"--output_dir={out}", *flags]
        )
        self.assertEqual(code, 0)
        return out

    def load_results(self, out, name, figures=()):
        """Checks that the `figures` in `out` are PNG files and that
        `<name>.md` holds a Markdown table.

        Returns:
            The results read from `<name>.json`.
        """
        for figure in figures:
            path = os.path.join(out, figure)
            self.assertTrue(os.path.exists(path), path)
            with open(path, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        with open(os.path.join(out, f"{name}.md")) as f:
            self.assertIn("|---", f.read())
        with open(os.path.join(out, f"{name}.json")) as f:
            return json.load(f)

    def assert_quick_run_times_every_variant(self, name, results_name):
        """Runs the loop benchmark `name` with `--quick` and checks that
        `<results_name>.json` has a positive time for each of its
        `VARIANTS` in its one case."""
        results = self.load_results(self.run_script(name), results_name)
        self.assertTrue(results["settings"]["quick"])
        (times,) = results["times_us"].values()
        self.assertEqual(set(script(name).VARIANTS), set(times))
        for variant_times in times.values():
            self.assertGreater(min(variant_times), 0)
