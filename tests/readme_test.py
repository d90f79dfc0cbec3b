"""The README's Python examples run as written."""

import os
import re

import tensorflow as tf

from tests import test_util

_README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")


def _python_blocks():
    with open(_README) as f:
        return re.findall(r"```python\n(.*?)```", f.read(), re.DOTALL)


class ReadmeTest(test_util.TestCase):
    def test_examples_run(self):
        blocks = _python_blocks()
        self.assertNotEmpty(blocks)
        namespace = {}
        cwd = os.getcwd()
        os.chdir(self.get_temp_dir())
        try:
            for block in blocks:
                exec(compile(block, _README, "exec"), namespace)
        finally:
            os.chdir(cwd)


if __name__ == "__main__":
    tf.test.main()
