"""pytest settings shared by the suite.

The suite runs in parallel processes (pytest-xdist; `-n auto` in
setup.cfg): each test is independent, most of its time is Python tracing
TensorFlow graphs on one core, so two processes on two cores take about
0.6 of the time of one. `-n 0` runs it in this process (for `--pdb`).
"""

import os

# Each worker imports its own TensorFlow (1-2 GiB of memory).
_MAX_WORKERS = 4

# Workers sharing a GPU take its memory as they need it, not all at once.
os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")


def pytest_xdist_auto_num_workers(config):
    """The number of workers `-n auto` starts: one per core, at most
    `_MAX_WORKERS`."""
    del config
    return max(1, min(os.cpu_count() or 1, _MAX_WORKERS))
