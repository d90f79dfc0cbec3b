"""Native CPU kernels, compiled from C++ on first use (see `build`).

- `group_norm.cc`: group normalization and its gradient on channels-last
  float32 tensors, used by `tfnode.layers.GroupNormalization` on CPU.
"""

from tfnode.native.build import cache_dir
from tfnode.native.build import enabled
from tfnode.native.build import load

__all__ = ["cache_dir", "enabled", "load"]
