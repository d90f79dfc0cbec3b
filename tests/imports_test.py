"""`import tfnode` imports neither tensorflow-datasets nor Matplotlib, and,
imported before TensorFlow, turns TensorFlow's oneDNN kernels on unless
`TF_ENABLE_ONEDNN_OPTS` says otherwise.

They (about 225 modules) are imported by the functions that load a dataset
or draw a plot. Keras 3 itself tries `import matplotlib.pyplot` when it is
installed, so `sys.modules` alone cannot tell who imported it; the check
runs in a fresh interpreter that refuses both packages and records which
file asked for them: `import tfnode` must succeed and no file of `tfnode`
may have asked.
"""

import json
import os
import subprocess
import sys

import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TFNODE = os.path.join(ROOT, "tfnode")

_PROGRAM = """
import importlib.abc
import json
import sys
import traceback

LAZY = ("tensorflow_datasets", "matplotlib")
requests = []


class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] not in LAZY:
            return None
        files = [
            frame.filename
            for frame in traceback.extract_stack()[:-1]
            if not frame.filename.startswith("<frozen")
        ]
        requests.append([phase, name, files[-1]])
        raise ModuleNotFoundError(f"{name} refused", name=name)


sys.meta_path.insert(0, Refuse())
phase = "import"
import tfnode
import tfnode.training

# The lazy imports, which the check must see.
phase = "use"
for use in (
    lambda: tfnode.robustness.plot_solver_table(
        [dict(solver="euler", steps=4, factor=1.0, accuracy=0.5)], "x.png"
    ),
    lambda: tfnode.datasets.load_tfds("mnist", "test"),
):
    try:
        use()
    except ModuleNotFoundError:
        pass
loaded = sorted(name for name in sys.modules if name.split(".")[0] in LAZY)
print(json.dumps(dict(requests=requests, loaded=loaded)))
"""


def run_program():
    result = subprocess.run(
        [sys.executable, "-c", _PROGRAM],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    if result.returncode:
        raise AssertionError(
            f"import tfnode failed without tensorflow-datasets and "
            f"Matplotlib:\n{result.stderr[-3000:]}"
        )
    return json.loads(result.stdout.strip().splitlines()[-1])


class ImportTest(tf.test.TestCase):
    def test_import_tfnode_does_not_import_datasets_or_plotting(self):
        report = run_program()
        self.assertEqual(report["loaded"], [])
        by_tfnode = {
            phase: sorted(
                {
                    (name.split(".")[0], os.path.relpath(path, ROOT))
                    for p, name, path in report["requests"]
                    if p == phase and path.startswith(TFNODE + os.sep)
                }
            )
            for phase in ("import", "use")
        }
        self.assertEqual(by_tfnode["import"], [])
        # Where they are needed, they are imported (so the check can fail).
        self.assertEqual(
            by_tfnode["use"],
            [
                (
                    "matplotlib",
                    os.path.join("tfnode", "robustness", "plotting.py"),
                ),
                (
                    "tensorflow_datasets",
                    os.path.join("tfnode", "datasets", "tfds_images.py"),
                ),
            ],
        )


_ONEDNN_PROGRAM = """
import {first}
import {second}
from tfnode import _onednn
print(_onednn.enabled())
"""


def onednn_enabled(first, second, setting=None):
    """Whether a fresh interpreter importing `first` then `second` runs
    oneDNN, with `TF_ENABLE_ONEDNN_OPTS` unset or `setting`."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("TF_ENABLE_ONEDNN_OPTS", None)
    if setting is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = setting
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            _ONEDNN_PROGRAM.format(first=first, second=second),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return result.stdout.strip().splitlines()[-1] == "True"


class OneDnnTest(tf.test.TestCase):
    def test_tfnode_first_turns_onednn_on(self):
        self.assertTrue(onednn_enabled("tfnode", "tensorflow"))

    def test_an_explicit_setting_wins(self):
        self.assertFalse(onednn_enabled("tfnode", "tensorflow", "0"))

    def test_tensorflow_first_keeps_its_default(self):
        # TensorFlow's own default on this CPU (on with AVX-512 class
        # instructions): tfnode, imported second, changes nothing.
        default = onednn_enabled("tensorflow", "tfnode", None)
        self.assertEqual(
            default, onednn_enabled("tensorflow", "tensorflow", None)
        )


if __name__ == "__main__":
    tf.test.main()
