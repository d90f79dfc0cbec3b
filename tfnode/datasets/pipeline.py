"""`tf.data` pipelines whose batches are a pure function of seed and epoch.

The training pipeline draws epoch `e`'s order as a permutation seeded by
`(seed, e)` and each example's augmentation from `(seed, e, index)`, so the
batches of any epoch can be produced on their own. A run resumed at epoch
`e` therefore trains on exactly the batches an uninterrupted run would have
seen, on one device or many. Examples are gathered from in-memory arrays,
preprocessed in parallel (`deterministic=True`) and prefetched.

When distributed over several workers (`MultiWorkerMirroredStrategy`), every
worker builds the same pipeline and `tf.distribute` splits each global batch
between them (`AutoShardPolicy.DATA`), so the global batches equal those of
a single-device run.
"""

import tensorflow as tf

__all__ = ["epoch_order", "eval_batches", "train_batches"]

_AUTOTUNE = tf.data.AUTOTUNE


def _options():
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA
    )
    return options


def _epoch_key(seed, epoch):
    return tf.stack([tf.cast(seed, tf.int64), tf.cast(epoch, tf.int64)])


def epoch_order(num_examples, seed, epoch):
    """The permutation of `range(num_examples)` used in epoch `epoch`."""
    key = tf.random.experimental.stateless_fold_in(_epoch_key(seed, epoch), 0)
    return tf.random.experimental.stateless_shuffle(
        tf.range(num_examples, dtype=tf.int64), seed=key
    )


def train_batches(
    x,
    y,
    batch_size,
    *,
    seed,
    preprocess,
    first_epoch=0,
    num_epochs=None,
    steps_per_epoch=None,
):
    """Shuffled, augmented training batches, epoch after epoch.

    Args:
        x: Stored inputs, an array with the examples on the first axis.
        y: Integer labels.
        batch_size: Examples per batch (the global batch).
        seed: Seed of the order and the augmentation, an int.
        preprocess: `preprocess(x, seed)` for one example (a `Preprocessor`).
        first_epoch: The first epoch to produce (0-based).
        num_epochs: How many epochs to produce; endless when `None`.
        steps_per_epoch: Batches per epoch, at most (and by default)
            `len(x) // batch_size`: the tail of each permutation is dropped.

    Returns:
        A `tf.data.Dataset` of `(x, y)` batches of exactly `batch_size`.
    """
    num_examples = len(x)
    full = num_examples // batch_size
    if full < 1:
        raise ValueError(
            f"batch_size={batch_size} is larger than the {num_examples} "
            "training examples."
        )
    if steps_per_epoch is None:
        steps_per_epoch = full
    if not 1 <= steps_per_epoch <= full:
        raise ValueError(
            f"steps_per_epoch must be in [1, {full}] for {num_examples} "
            f"examples in batches of {batch_size}; got {steps_per_epoch}."
        )
    per_epoch = steps_per_epoch * batch_size
    x = tf.convert_to_tensor(x)
    y = tf.convert_to_tensor(y)

    def epoch_examples(epoch):
        order = epoch_order(num_examples, seed, epoch)[:per_epoch]
        epochs = tf.fill([per_epoch], epoch)
        return tf.data.Dataset.from_tensor_slices((epochs, order))

    def load(epoch, index):
        key = tf.random.experimental.stateless_fold_in(
            _epoch_key(seed, epoch), 1
        )
        example_seed = tf.random.experimental.stateless_fold_in(key, index)
        return preprocess(tf.gather(x, index), example_seed), tf.gather(
            y, index
        )

    if num_epochs is None:
        epochs = tf.data.Dataset.counter(first_epoch)
    else:
        epochs = tf.data.Dataset.range(first_epoch, first_epoch + num_epochs)
    ds = epochs.flat_map(epoch_examples)
    ds = ds.map(load, num_parallel_calls=_AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=True)
    return ds.prefetch(_AUTOTUNE).with_options(_options())


def eval_batches(x, y, batch_size, *, preprocess):
    """Evaluation batches in the stored order, the last one possibly short.

    Args:
        x: Stored inputs, an array with the examples on the first axis.
        y: Integer labels.
        batch_size: Examples per batch (the global batch).
        preprocess: `preprocess(x)` for one example (a `Preprocessor`).

    Returns:
        A `tf.data.Dataset` of `(x, y)` batches.
    """
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    ds = ds.map(
        lambda xi, yi: (preprocess(xi), yi),
        num_parallel_calls=_AUTOTUNE,
        deterministic=True,
    )
    return ds.batch(batch_size).prefetch(_AUTOTUNE).with_options(_options())
