"""Forward passes of a classifier and their accuracy, for any solve settings.

The model's solve settings are its ODEBlocks' `settings` values, fixed when
a function is traced; `predictor` therefore traces a new function each time
it is called, after the settings have been changed.
"""

import contextlib
import logging

import numpy as np
import tensorflow as tf

__all__ = ["as_batches", "correct", "predictor", "quiet_retracing", "unpack"]


class _RetracingFilter(logging.Filter):
    def filter(self, record):
        return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def quiet_retracing():
    """Silences TF's warning about frequent retracing, which a new solve
    setting per trace causes on purpose."""
    logger = logging.getLogger("tensorflow")
    log_filter = _RetracingFilter()
    logger.addFilter(log_filter)
    try:
        yield
    finally:
        logger.removeFilter(log_filter)


def predictor(model):
    """A freshly traced `x -> model(x, training=False)`."""

    @tf.function(reduce_retracing=True)
    def predict(x):
        return model(x, training=False)

    return predict


def unpack(batch):
    """`(x, y)` of a batch given as `(x, y)` or `(x, y, sample_weight)`."""
    if isinstance(batch, dict) or not isinstance(batch, (tuple, list)):
        raise TypeError(
            "Batches must be (x, y) or (x, y, sample_weight) tuples; got "
            f"{type(batch).__name__}."
        )
    if len(batch) not in (2, 3):
        raise TypeError(
            "Batches must be (x, y) or (x, y, sample_weight) tuples; got a "
            f"tuple of {len(batch)}."
        )
    return batch[0], batch[1]


def as_batches(data, batch_size):
    """A `tf.data.Dataset` of `(x, y)` batches from a dataset of batches or
    from an `(x, y)` tuple of arrays."""
    if isinstance(data, tf.data.Dataset):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return tf.data.Dataset.from_tensor_slices(tuple(data)).batch(batch_size)
    raise TypeError(
        "data must be a tf.data.Dataset of (x, y) batches or an (x, y) tuple "
        f"of arrays; got {type(data).__name__}."
    )


def correct(logits, labels):
    """Whether each example is classified correctly, as a bool array.

    Args:
        logits: `[batch, classes]` scores, or `[batch, 1]` / `[batch]` for a
            binary classifier (class 1 where the score is positive).
        labels: Integer labels `[batch]` (or `[batch, 1]`), or one-hot
            `[batch, classes]`.
    """
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    if logits.ndim == 1 or logits.shape[-1] == 1:
        predicted = (logits.reshape(len(logits)) > 0).astype(np.int64)
    else:
        predicted = np.argmax(logits, axis=-1)
    if labels.ndim == logits.ndim and labels.shape[-1] == logits.shape[-1] > 1:
        labels = np.argmax(labels, axis=-1)
    labels = labels.reshape(predicted.shape).astype(np.int64)
    return predicted == labels
