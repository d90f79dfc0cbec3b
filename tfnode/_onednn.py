"""Asks TensorFlow for its oneDNN CPU kernels, before TensorFlow loads.

TensorFlow reads `TF_ENABLE_ONEDNN_OPTS` once, when it is imported, and
turns its oneDNN kernels on by default only on CPUs with AVX-512 class
instructions. Elsewhere (an AVX2 x86 CPU, say) its convolutions and their
gradients run on slower generic kernels: on a 2-core AVX2 machine, oneDNN
makes the conv train step 1.3x and the blog MNIST ODENet's train step 2.1x
faster (`docs/benchmarks/peers.md`). PyTorch uses oneDNN there by default.

Importing `tfnode` before TensorFlow sets the variable to `"1"` unless it is
set already (`TF_ENABLE_ONEDNN_OPTS=0` keeps the generic kernels). Imported
after TensorFlow, tfnode cannot change it: set it in the environment, or
import tfnode first. `enabled()` says which kernels this process runs.
"""

import os

ENV_VAR = "TF_ENABLE_ONEDNN_OPTS"

os.environ.setdefault(ENV_VAR, "1")


def enabled():
    """Whether this process's TensorFlow runs its oneDNN kernels."""
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:  # pragma: no cover - layout of TF internals changed
        return False
    return bool(_pywrap_util_port.IsMklEnabled())
