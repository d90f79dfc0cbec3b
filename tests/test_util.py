"""Shared test helpers."""

import numpy as np
import tensorflow as tf
from absl.testing import parameterized


class TestCase(tf.test.TestCase, parameterized.TestCase):
    """`tf.test.TestCase` with absl parameterization."""

    def assertAllCloseRelative(self, actual, expected, rtol):
        """Max |actual - expected| / max |expected| <= rtol, leaf by leaf."""
        for a, e in zip(
            tf.nest.flatten(actual), tf.nest.flatten(expected), strict=True
        ):
            a, e = np.asarray(a), np.asarray(e)
            scale = max(np.max(np.abs(e)), 1e-30)
            err = np.max(np.abs(a - e)) / scale
            self.assertLessEqual(err, rtol, f"relative error {err:.3e}")


def run_in_mode(fn, mode):
    """Runs `fn()` eagerly, in `tf.function` or under XLA."""
    if mode == "eager":
        return fn()
    return tf.function(fn, jit_compile=(mode == "xla"))()


MODES = (("eager", "eager"), ("tf_function", "tf_function"), ("xla", "xla"))
