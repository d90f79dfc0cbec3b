"""Building and loading the native kernels (`tfnode.native.build`): the
cache, the lock that makes concurrent processes build once, and the
fallback where no library can be had."""

import os
import shutil
import stat
import subprocess
import sys
import textwrap

import tensorflow as tf

from tests import test_util
from tfnode.native import build

# Builds (or loads) the kernels in a fresh process and checks one group
# norm: mean 2 and 4, rstd 1 and 0.5 (epsilon 0).
_LOAD_AND_RUN = textwrap.dedent(
    """
    import numpy as np
    import tensorflow as tf
    from tfnode.native import build
    kernels = build.load("group_norm")
    y, mean, rstd = kernels.tfnode_group_norm(
        tf.constant([[1.0, 3.0, 2.0, 6.0]]), tf.ones(4), tf.zeros(4),
        groups=2, epsilon=0.0,
    )
    np.testing.assert_allclose(y, [[-1.0, 1.0, -1.0, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(mean, [[2.0, 4.0]], rtol=1e-6)
    np.testing.assert_allclose(rstd, [[1.0, 0.5]], rtol=1e-6)
    """
)


class BuildTest(test_util.TestCase):
    def setUp(self):
        super().setUp()
        self.cache = self.get_temp_dir()
        self.calls = os.path.join(self.cache, "compiler_calls")
        environment = {
            name: os.environ.pop(name, None)
            for name in ("TFNODE_CACHE_DIR", "TFNODE_NATIVE_KERNELS", "CXX")
        }
        self.addCleanup(self._restore, environment)
        os.environ["TFNODE_CACHE_DIR"] = self.cache
        build.load.cache_clear()
        self.addCleanup(build.load.cache_clear)

    @staticmethod
    def _restore(environment):
        for name, value in environment.items():
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value

    def _compiler(self, command):
        """A compiler script that counts its calls, then runs `command`."""
        path = os.path.join(self.cache, "cxx")
        with open(path, "w") as script:
            script.write(f'#!/bin/sh\necho call >> "{self.calls}"\n{command}\n')
        os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)
        return path

    def _compiler_calls(self):
        if not os.path.exists(self.calls):
            return 0
        with open(self.calls) as calls:
            return len(calls.readlines())

    def test_disabled_by_the_environment(self):
        os.environ["TFNODE_NATIVE_KERNELS"] = "0"
        os.environ["CXX"] = self._compiler("exit 1")
        self.assertFalse(build.enabled())
        self.assertIsNone(build.load("group_norm"))
        self.assertEqual(self._compiler_calls(), 0)

    def test_no_compiler_falls_back(self):
        os.environ["CXX"] = os.path.join(self.cache, "no-such-compiler")
        with self.assertLogs(build.__name__, "WARNING") as logs:
            self.assertIsNone(build.load("group_norm"))
        self.assertIn("no C++ compiler", logs.output[0])

    def test_a_failed_build_is_remembered(self):
        os.environ["CXX"] = self._compiler("echo 'broken compiler' >&2; exit 1")
        with self.assertLogs(build.__name__, "WARNING") as logs:
            self.assertIsNone(build.load("group_norm"))
        self.assertIn("broken compiler", logs.output[0])
        self.assertEqual(self._compiler_calls(), 1)
        # A later process (a cleared cache of `load`) does not retry.
        build.load.cache_clear()
        with self.assertLogs(build.__name__, "WARNING"):
            self.assertIsNone(build.load("group_norm"))
        self.assertEqual(self._compiler_calls(), 1)
        self.assertEmpty(
            [name for name in os.listdir(build.cache_dir()) if "tmp" in name]
        )

    def test_the_key_follows_the_compiler(self):
        self.assertNotEqual(
            build.library_path("group_norm", "/usr/bin/g++"),
            build.library_path("group_norm", "/usr/bin/clang++"),
        )
        self.assertEqual(
            build.library_path("group_norm", "/usr/bin/g++").parent,
            build.cache_dir(),
        )

    def test_concurrent_processes_build_once(self):
        compiler = build._compiler()
        if compiler is None:
            self.skipTest("no C++ compiler")
        os.environ["CXX"] = self._compiler(f'exec "{compiler}" "$@"')
        # Two at once build once; a third loads the cached library.
        self._run_processes(2)
        self.assertEqual(self._compiler_calls(), 1)
        self._run_processes(1)
        self.assertEqual(self._compiler_calls(), 1)
        libraries = [
            name
            for name in os.listdir(build.cache_dir())
            if name.endswith(".so")
        ]
        self.assertLen(libraries, 1)
        shutil.rmtree(build.cache_dir())

    def _run_processes(self, count):
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", _LOAD_AND_RUN],
                env=dict(os.environ),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for _ in range(count)
        ]
        for process in processes:
            _, stderr = process.communicate(timeout=600)
            self.assertEqual(process.returncode, 0, stderr.decode()[-2000:])


if __name__ == "__main__":
    tf.test.main()
