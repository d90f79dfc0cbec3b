"""Training the reference experiments: the library behind `train.py`.

```python
config = tfnode.training.TrainConfig(network="simple_odenet", epochs=10,
                                     model_dir="runs/spheres")
result = tfnode.training.train(config)
result.final["test_accuracy"]
```
"""

from tfnode.training.checkpointing import CheckpointMismatchError
from tfnode.training.checkpointing import latest_checkpoint
from tfnode.training.checkpointing import restore_checkpoint
from tfnode.training.checkpointing import save_checkpoint
from tfnode.training.config import LR_SCHEDULES
from tfnode.training.config import OPTIMIZERS
from tfnode.training.config import STRATEGIES
from tfnode.training.config import TrainConfig
from tfnode.training.config import default_model_dir
from tfnode.training.config import validate
from tfnode.training.distribution import is_chief
from tfnode.training.distribution import make_strategy
from tfnode.training.distribution import per_replica_batch_size
from tfnode.training.optimizers import make_optimizer
from tfnode.training.run_dir import ModelDirError
from tfnode.training.trainer import NonFiniteLossError
from tfnode.training.trainer import SolveFailedError
from tfnode.training.trainer import TrainResult
from tfnode.training.trainer import build_model
from tfnode.training.trainer import resolve
from tfnode.training.trainer import train

__all__ = [
    "CheckpointMismatchError",
    "LR_SCHEDULES",
    "ModelDirError",
    "NonFiniteLossError",
    "OPTIMIZERS",
    "STRATEGIES",
    "SolveFailedError",
    "TrainConfig",
    "TrainResult",
    "build_model",
    "default_model_dir",
    "is_chief",
    "latest_checkpoint",
    "make_optimizer",
    "make_strategy",
    "per_replica_batch_size",
    "resolve",
    "restore_checkpoint",
    "save_checkpoint",
    "train",
    "validate",
]
