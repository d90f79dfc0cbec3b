"""Epoch checkpoints: TensorFlow's own (`tf.train.Checkpoint`), one per epoch.

```none
<model_dir>/checkpoints/checkpoint             the newest and the kept ones
<model_dir>/checkpoints/ckpt-<epoch>.index     one checkpoint per epoch,
<model_dir>/checkpoints/ckpt-<epoch>.data-*    the newest `keep` kept

objects, tracked by name:
  model       the Keras model: weights, BatchNorm statistics, ... matched
              by the model's object graph (layer attributes and positions),
              not by automatic variable names, which differ between runs
  optimizer   its step count (`iterations`), moments, learning rate, ...
  epoch       a tf.Variable: the epochs completed
  run_state   a JSON document (`tf.train.experimental.PythonState`): the
              metrics history, elapsed time and step-adaptation state
  others      any model variable outside Keras's object graph (the state
              of a random layer's seed generator), in model order
```

`tf.train.latest_checkpoint(<model_dir>/checkpoints)` names the newest,
`tf.train.load_checkpoint` reads any value (the run state is the string
`run_state/.ATTRIBUTES/py_state`). `tf.train.CheckpointManager` writes
each checkpoint under a temporary name and records it in `checkpoint` only
once it is complete, so a run killed at any moment resumes from its last
complete checkpoint. Files go through `tf.io.gfile`, so `model_dir` may be
a cloud bucket (`gs://...`).

Keeping the Python-side state in the checkpoint, rather than in a JSON file
beside it, makes it one atomic unit: the weights and the history that
belongs to them cannot come from different epochs.

Run folders of earlier tfnode versions held `checkpoints/ckpt-<epoch>.npz`
files (variables matched by position) instead; they are recognised and
refused with `LegacyCheckpointError`, whose message says what to do.
"""

import json
import re

import tensorflow as tf

__all__ = [
    "CheckpointMismatchError",
    "LegacyCheckpointError",
    "RunCheckpoint",
    "checkpoint_dir",
    "latest_checkpoint",
    "list_checkpoints",
    "restore_checkpoint",
    "save_checkpoint",
]

CHECKPOINT_NAME = "ckpt"
_NUMBERED = re.compile(rf"^{CHECKPOINT_NAME}-(\d+)$")
_LEGACY = re.compile(rf"^{CHECKPOINT_NAME}-(\d+)\.npz$")


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model or optimizer it is restored into."""


class LegacyCheckpointError(CheckpointMismatchError):
    """A run folder holds `.npz` checkpoints of an earlier tfnode version."""


class _RunState(tf.train.experimental.PythonState):
    """A JSON-serialisable dict saved inside the checkpoint."""

    def __init__(self, value=None):
        self.value = dict(value or {})

    def serialize(self):
        return json.dumps(self.value, default=float)

    def deserialize(self, string_value):
        if isinstance(string_value, bytes):
            string_value = string_value.decode("utf-8")
        self.value = json.loads(string_value)


def checkpoint_dir(model_dir):
    """The folder of a run's checkpoints."""
    return tf.io.gfile.join(model_dir, "checkpoints")


def _epoch_of(path):
    match = _NUMBERED.match(path.rstrip("/").rsplit("/", 1)[-1])
    return int(match.group(1)) if match else None


def _legacy_files(folder):
    if not tf.io.gfile.isdir(folder):
        return []
    return sorted(
        name for name in tf.io.gfile.listdir(folder) if _LEGACY.match(name)
    )


def _legacy_error(model_dir, files):
    return LegacyCheckpointError(
        f"model_dir={model_dir} holds checkpoints of the .npz format that "
        f"earlier tfnode versions wrote ({', '.join(files)} in "
        f"{checkpoint_dir(model_dir)}). This version reads only TensorFlow "
        "checkpoints (tf.train.Checkpoint) and cannot resume that run. Start "
        "it afresh with overwrite (--overwrite, which deletes the folder) "
        "or in another model_dir, or finish it with the tfnode version that "
        "started it (config.json names it). Its metrics.json and, if it "
        "finished, model.keras stay readable."
    )


def list_checkpoints(model_dir):
    """`[(epoch, path), ...]` of a run's kept checkpoints, oldest first.

    `path` is the checkpoint's prefix, as `tf.train.latest_checkpoint`
    gives it.
    """
    folder = checkpoint_dir(model_dir)
    if not tf.io.gfile.isdir(folder):
        return []
    state = tf.train.get_checkpoint_state(folder)
    if state is None:
        return []
    found = []
    for path in state.all_model_checkpoint_paths:
        epoch = _epoch_of(path)
        if epoch is not None and tf.io.gfile.exists(path + ".index"):
            found.append((epoch, path))
    return sorted(found)


def latest_checkpoint(model_dir):
    """`(epoch, path)` of the newest checkpoint, or `None`.

    Raises:
        LegacyCheckpointError: when the folder holds only `.npz`
            checkpoints of an earlier tfnode version; the message says what
            to do.
    """
    found = list_checkpoints(model_dir)
    if found:
        return found[-1]
    legacy = _legacy_files(checkpoint_dir(model_dir))
    if legacy:
        raise _legacy_error(model_dir, legacy)
    return None


def _others(checkpoint, model, optimizer):
    """Variables of `model` and `optimizer` that `checkpoint` does not reach
    through their object graphs (e.g. the states of seed generators)."""
    reached = {
        id(trackable)
        for trackable in tf.train.TrackableView(checkpoint).descendants()
    }
    return [
        variable
        for variable in list(model.variables) + list(optimizer.variables)
        if id(variable) not in reached
    ]


class RunCheckpoint:
    """The checkpoint of one training run: what is saved, and its manager.

    Args:
        model_dir: The run's folder (any `tf.io.gfile` path).
        model: The Keras model.
        optimizer: Its optimizer, built (its variables exist).
        keep: How many of the newest checkpoints to keep.

    Attributes:
        checkpoint: The `tf.train.Checkpoint`.
        epoch: The `tf.Variable` of completed epochs.
    """

    def __init__(self, model_dir, model, optimizer, keep=2):
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"keep must be an int >= 1; got {keep!r}.")
        self.model_dir = model_dir
        self.epoch = tf.Variable(
            0, dtype=tf.int64, trainable=False, name="epoch"
        )
        self._state = _RunState()
        self.checkpoint = tf.train.Checkpoint(
            model=model, optimizer=optimizer, epoch=self.epoch
        )
        self.checkpoint.run_state = self._state
        self.checkpoint.others = _others(self.checkpoint, model, optimizer)
        self.keep = keep
        self._manager = None

    @property
    def manager(self):
        """The `tf.train.CheckpointManager` of `checkpoint_dir(model_dir)`,
        made at the first save (restoring needs none)."""
        if self._manager is None:
            self._manager = tf.train.CheckpointManager(
                self.checkpoint,
                checkpoint_dir(self.model_dir),
                max_to_keep=self.keep,
                checkpoint_name=CHECKPOINT_NAME,
            )
        return self._manager

    def save(self, epoch, state):
        """Saves the variables, `epoch` and the JSON dict `state`; returns
        the checkpoint's path."""
        self.epoch.assign(int(epoch))
        self._state.value = dict(state)
        return self.manager.save(checkpoint_number=int(epoch))

    def restore(self, path):
        """Restores the checkpoint at `path`; returns its state with
        `epoch`.

        Raises:
            CheckpointMismatchError: when the checkpoint does not fit the
                model and optimizer.
        """
        if path.endswith(".npz"):
            raise _legacy_error(self.model_dir, [path.rsplit("/", 1)[-1]])
        try:
            status = self.checkpoint.restore(path)
            status.assert_consumed()
        except (AssertionError, ValueError, tf.errors.OpError) as error:
            raise CheckpointMismatchError(
                f"Checkpoint {path} does not fit this model and optimizer: "
                f"{type(error).__name__}: {_shorten(str(error))}"
            ) from error
        return dict(self._state.value, epoch=int(self.epoch.numpy()))


def _shorten(message, limit=1500):
    return message if len(message) <= limit else message[:limit] + " ..."


def save_checkpoint(model_dir, epoch, model, optimizer, state, keep=2):
    """Saves the variables and `state` after `epoch` epochs.

    Builds a `RunCheckpoint` for this one save; a run that saves every
    epoch keeps one `RunCheckpoint` instead.

    Args:
        model_dir: The run's folder.
        epoch: Epochs completed (1-based), in the checkpoint's name.
        model: The Keras model.
        optimizer: Its (built) optimizer.
        state: A JSON-serializable dict.
        keep: How many of the newest checkpoints to keep.

    Returns:
        The checkpoint's path (prefix).
    """
    return RunCheckpoint(model_dir, model, optimizer, keep).save(epoch, state)


def restore_checkpoint(path, model, optimizer):
    """Restores a checkpoint saved by `save_checkpoint`; returns its state.

    The optimizer must be built (`optimizer.build(model.trainable_variables)`)
    so its variables exist.

    Returns:
        The saved state dict, with `epoch` (the epochs completed).

    Raises:
        CheckpointMismatchError: when the checkpoint's objects or shapes do
            not fit the model and optimizer.
        LegacyCheckpointError: for a `.npz` checkpoint of an earlier
            tfnode version.
    """
    # <model_dir>/checkpoints/ckpt-<epoch>: the folder names the run.
    model_dir = path.rsplit("/", 2)[0] if path.count("/") >= 2 else "."
    return RunCheckpoint(model_dir, model, optimizer).restore(path)
