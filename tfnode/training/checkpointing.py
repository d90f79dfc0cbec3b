"""Epoch checkpoints: the model's and optimizer's variables plus the run's
state, in one `.npz` file per epoch.

```none
<model_dir>/checkpoints/ckpt-<epoch>.npz
    model/<i>       model.variables[i] (weights, BatchNorm statistics and
                    random-seed state, in the model's order)
    optimizer/<i>   optimizer.variables[i] (step count, moments, ...)
    paths           JSON list of the model variables' paths (informative:
                    variables are matched by position and shape, since
                    automatic layer names differ between processes)
    state           JSON dict: the epoch reached, the metrics history, ...
```

A file is written under a temporary name and renamed, so a run killed while
saving leaves the previous checkpoint intact; the newest `keep` are kept.
Files go through `tf.io.gfile`, so `model_dir` may be a cloud bucket.
"""

import io
import json
import os
import re

import numpy as np
import tensorflow as tf

__all__ = [
    "CheckpointMismatchError",
    "checkpoint_dir",
    "latest_checkpoint",
    "list_checkpoints",
    "restore_checkpoint",
    "save_checkpoint",
]

_PATTERN = re.compile(r"^ckpt-(\d+)\.npz$")


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model or optimizer it is restored into."""


def checkpoint_dir(model_dir):
    """The folder of a run's checkpoints."""
    return os.path.join(model_dir, "checkpoints")


def list_checkpoints(model_dir):
    """`[(epoch, path), ...]` of a run's checkpoints, oldest first."""
    folder = checkpoint_dir(model_dir)
    if not tf.io.gfile.isdir(folder):
        return []
    found = []
    for name in tf.io.gfile.listdir(folder):
        match = _PATTERN.match(name.rstrip("/"))
        if match:
            found.append((int(match.group(1)), os.path.join(folder, name)))
    return sorted(found)


def latest_checkpoint(model_dir):
    """`(epoch, path)` of the newest checkpoint, or `None`."""
    found = list_checkpoints(model_dir)
    return found[-1] if found else None


def _values(variables):
    return [np.asarray(v.numpy()) for v in variables]


def save_checkpoint(model_dir, epoch, model, optimizer, state, keep=2):
    """Saves the variables and `state` after `epoch` epochs.

    Args:
        model_dir: The run's folder.
        epoch: Epochs completed (1-based), in the file name.
        model: The Keras model.
        optimizer: Its (built) optimizer.
        state: A JSON-serializable dict.
        keep: How many of the newest checkpoints to keep.

    Returns:
        The checkpoint's path.
    """
    folder = checkpoint_dir(model_dir)
    tf.io.gfile.makedirs(folder)
    arrays = {
        f"model/{i}": value for i, value in enumerate(_values(model.variables))
    }
    arrays.update(
        {
            f"optimizer/{i}": value
            for i, value in enumerate(_values(optimizer.variables))
        }
    )
    arrays["paths"] = np.array(json.dumps([v.path for v in model.variables]))
    arrays["state"] = np.array(json.dumps(state))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path = os.path.join(folder, f"ckpt-{epoch}.npz")
    temporary = path + ".tmp"
    with tf.io.gfile.GFile(temporary, "wb") as f:
        f.write(buffer.getvalue())
    tf.io.gfile.rename(temporary, path, overwrite=True)
    for _, old in list_checkpoints(model_dir)[:-keep]:
        tf.io.gfile.remove(old)
    return path


def _assign(kind, variables, arrays, prefix):
    count = sum(1 for key in arrays if key.startswith(prefix))
    if count != len(variables):
        raise CheckpointMismatchError(
            f"The checkpoint holds {count} {kind} variables; the {kind} has "
            f"{len(variables)}."
        )
    for i, variable in enumerate(variables):
        value = arrays[f"{prefix}{i}"]
        if tuple(value.shape) != tuple(variable.shape):
            raise CheckpointMismatchError(
                f"{kind} variable {i} ({variable.path}) has shape "
                f"{tuple(variable.shape)}; the checkpoint's has "
                f"{tuple(value.shape)}."
            )
    for i, variable in enumerate(variables):
        variable.assign(arrays[f"{prefix}{i}"])


def restore_checkpoint(path, model, optimizer):
    """Restores the variables saved by `save_checkpoint`; returns its state.

    The optimizer must be built (`optimizer.build(model.trainable_variables)`)
    so its variables exist.

    Raises:
        CheckpointMismatchError: when the checkpoint's variables do not fit.
    """
    with tf.io.gfile.GFile(path, "rb") as f:
        arrays = dict(np.load(io.BytesIO(f.read()), allow_pickle=False))
    try:
        _assign("model", model.variables, arrays, "model/")
        _assign("optimizer", optimizer.variables, arrays, "optimizer/")
    except CheckpointMismatchError as error:
        raise CheckpointMismatchError(
            f"Checkpoint {path} does not fit this model: {error}"
        ) from error
    return json.loads(str(arrays["state"]))
