"""The callbacks of a training run: NaN guard, step budget, epoch records.

`EpochRecorder` turns each epoch's Keras logs into one row of
`metrics.json`:

```none
epoch, step                   epochs and optimizer steps completed
train_loss, train_accuracy    means over the epoch's batches
test_loss, test_accuracy      on the whole test set after the epoch
nfe_forward, nfe_backward     function evaluations per forward (backward)
                              pass of the model: the per-solve means of
                              every ODEBlock, summed over blocks
test_nfe_forward              the same on the test set
learning_rate                 at the end of the epoch
wall_time, elapsed            seconds of this epoch, and of the run so far
```

and, on the chief, writes `metrics.json`, a checkpoint
(`tfnode.training.checkpointing`) and TensorBoard scalars. An epoch whose
loss turned NaN or infinite is never recorded.
"""

import math
import time

import keras
import tensorflow as tf

from tfnode.training import checkpointing
from tfnode.training.run_dir import write_json

__all__ = [
    "EpochRecorder",
    "NonFiniteLossGuard",
    "StopAtStep",
    "metrics_row",
]

METRICS_FILE = "metrics.json"
LOG_DIR = "logs"


class NonFiniteLossGuard(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is NaN or infinite.

    Attributes:
        failure: `None`, or `(epoch, batch, loss)` of the first bad batch
            (epoch 0-based as in Keras, batch 0-based within the epoch).
        epoch: The current epoch (0-based).
        batch: The current batch of the epoch (0-based).
    """

    def __init__(self):
        super().__init__()
        self.failure = None
        self.epoch = 0
        self.batch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        self.batch = batch

    def on_train_batch_end(self, batch, logs=None):
        loss = None if logs is None else logs.get("loss")
        if loss is None:
            return
        loss = float(loss)
        if not math.isfinite(loss) and self.failure is None:
            self.failure = (self.epoch, batch, loss)
            self.model.stop_training = True


class StopAtStep(keras.callbacks.Callback):
    """Stops training once `optimizer` has taken `steps` steps (a
    `train_steps` budget that ends inside an epoch)."""

    def __init__(self, steps, optimizer):
        super().__init__()
        self.steps = int(steps)
        self.optimizer = optimizer

    def on_train_batch_end(self, batch, logs=None):
        if int(self.optimizer.iterations.numpy()) >= self.steps:
            self.model.stop_training = True


def _sum(logs, suffix, prefix=""):
    values = [
        float(value)
        for key, value in logs.items()
        if key.endswith(suffix)
        and key.startswith(prefix)
        and (prefix or not key.startswith("val_"))
    ]
    return sum(values) if values else None


def _float(value):
    return None if value is None else float(value)


def metrics_row(epoch, step, logs, learning_rate, wall_time, elapsed):
    """One `metrics.json` row from an epoch's Keras logs (see the module
    docstring)."""
    row = dict(
        epoch=int(epoch),
        step=int(step),
        train_loss=_float(logs.get("loss")),
        train_accuracy=_float(logs.get("accuracy")),
        test_loss=_float(logs.get("val_loss")),
        test_accuracy=_float(logs.get("val_accuracy")),
        nfe_forward=_sum(logs, "_nfe_forward"),
        nfe_backward=_sum(logs, "_nfe_backward"),
        test_nfe_forward=_sum(logs, "_nfe_forward", prefix="val_"),
        learning_rate=_float(learning_rate),
        wall_time=float(wall_time),
        elapsed=float(elapsed),
    )
    for key in ("adapted_step_size", "adapted_steps", "adapted_tol"):
        if key in logs:
            row[key] = _float(logs[key])
    return row


def _current_learning_rate(optimizer):
    lr = optimizer.learning_rate
    return float(lr.numpy() if hasattr(lr, "numpy") else lr)


class EpochRecorder(keras.callbacks.Callback):
    """Records each finished epoch: a metrics row, and on the chief
    `metrics.json`, a checkpoint and TensorBoard scalars.

    Args:
        model_dir: The run's folder.
        optimizer: The run's optimizer (checkpointed with the model).
        chief: Whether to write.
        history: The rows of the epochs before (resumed runs); appended to.
        elapsed: Seconds spent by the epochs before.
        guard: The run's `NonFiniteLossGuard`; a failed epoch is skipped.
        extra_state: `extra_state()` returns more JSON state to checkpoint
            (e.g. step adaptation's), or `None`. The checkpoint's state
            holds `history` and `elapsed` besides.
        keep: Checkpoints to keep.
    """

    def __init__(
        self,
        model_dir,
        optimizer,
        chief,
        history,
        elapsed,
        guard,
        extra_state=None,
        keep=2,
    ):
        super().__init__()
        self.model_dir = model_dir
        self.optimizer = optimizer
        self.chief = chief
        self.history = history
        self.elapsed = float(elapsed)
        self.guard = guard
        self.extra_state = extra_state
        self.keep = keep
        self.last_checkpoint = None
        self._checkpoint = None
        self._writer = None
        self._start = None

    def on_train_begin(self, logs=None):
        if self.chief and self._writer is None:
            self._writer = tf.summary.create_file_writer(
                tf.io.gfile.join(self.model_dir, LOG_DIR)
            )

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if self.guard is not None and self.guard.failure is not None:
            return
        wall_time = time.perf_counter() - self._start
        self.elapsed += wall_time
        optimizer = self.optimizer
        row = metrics_row(
            epoch + 1,
            int(optimizer.iterations.numpy()),
            dict(logs or {}),
            _current_learning_rate(optimizer),
            wall_time,
            self.elapsed,
        )
        self.history.append(row)
        if not self.chief:
            return
        state = dict(history=self.history, elapsed=self.elapsed)
        if self.extra_state is not None:
            state.update(self.extra_state() or {})
        # metrics.json first: a run killed between the two writes resumes
        # from the checkpoint before and rewrites this row identically,
        # whereas a missing row of a finished run would never be written.
        write_json(tf.io.gfile.join(self.model_dir, METRICS_FILE), self.history)
        if self._checkpoint is None:
            self._checkpoint = checkpointing.RunCheckpoint(
                self.model_dir, self.model, optimizer, keep=self.keep
            )
        self.last_checkpoint = self._checkpoint.save(epoch + 1, state)
        self._write_summaries(row, logs or {})

    def _write_summaries(self, row, logs):
        with self._writer.as_default(step=row["epoch"]):
            for key, value in row.items():
                if key not in ("epoch",) and value is not None:
                    tf.summary.scalar(key, float(value))
            for key, value in logs.items():
                if "_nfe_" in key:
                    tf.summary.scalar(f"nfe/{key}", float(value))
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.flush()
