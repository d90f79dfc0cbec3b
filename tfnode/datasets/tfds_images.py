"""MNIST and CIFAR-10 from tensorflow-datasets, loaded into memory.

Both fit in memory as `uint8` (47 MB and 180 MB), which lets the training
pipeline draw any example by index: the order of every epoch is then a pure
function of the seed and the epoch, and a resumed run sees the same batches
as an uninterrupted one. tensorflow-datasets is imported when a dataset is
loaded, not with `tfnode`.
"""

import numpy as np

__all__ = ["DatasetNotFoundError", "load_tfds"]

_CHUNK = 10_000


class DatasetNotFoundError(FileNotFoundError):
    """A tensorflow-datasets dataset is missing and could not be downloaded."""


def _how_to_get(name, data_dir):
    target = data_dir or "~/tensorflow_datasets"
    return (
        "To get it, run on a machine with internet access\n"
        f'    python -c "import tensorflow_datasets as tfds; '
        f"tfds.builder('{name}', data_dir='{target}')"
        '.download_and_prepare()"\n'
        f"then copy the folder '{target}/{name}' to this machine and pass its "
        "parent folder as --data_dir (or set TFDS_DATA_DIR)."
    )


def _builder(tfds, name, data_dir, download):
    builder = tfds.builder(name, data_dir=data_dir)
    if builder.is_prepared():
        return builder
    where = f"--data_dir={data_dir}" if data_dir else "the default data_dir"
    if not download:
        raise DatasetNotFoundError(
            f"Dataset {name!r} is not prepared in {where} "
            f"({builder.data_dir}), and downloading is off (--nodownload). "
            + _how_to_get(name, data_dir)
        )
    try:
        builder.download_and_prepare()
    except Exception as error:  # Any failure leaves the data missing.
        raise DatasetNotFoundError(
            f"Dataset {name!r} is not prepared in {where} "
            f"({builder.data_dir}) and could not be downloaded "
            f"({type(error).__name__}: {error}). " + _how_to_get(name, data_dir)
        ) from error
    return builder


def load_tfds(name, split, data_dir=None, download=True, num_examples=None):
    """Loads a split of an image classification dataset into NumPy arrays.

    Args:
        name: The tensorflow-datasets name (`"mnist"`, `"cifar10"`).
        split: `"train"` or `"test"`.
        data_dir: Where the prepared dataset lives; tensorflow-datasets'
            default (`~/tensorflow_datasets` or `$TFDS_DATA_DIR`) when unset.
        download: Whether to download and prepare the dataset when it is
            missing.
        num_examples: Load only the first this many examples (in the
            dataset's fixed order); all when unset.

    Returns:
        x: uint8 array `(n, height, width, channels)`.
        y: int32 array `(n,)`.

    Raises:
        DatasetNotFoundError: when the dataset is missing and could not be
            downloaded; the message says how to get it.
    """
    import tensorflow_datasets as tfds  # Imported here: slow to import.

    builder = _builder(tfds, name, data_dir, download)
    ds = builder.as_dataset(
        split=split, as_supervised=True, shuffle_files=False
    )
    if num_examples is not None:
        ds = ds.take(num_examples)
    xs, ys = [], []
    for x, y in tfds.as_numpy(ds.batch(_CHUNK)):
        xs.append(np.asarray(x, dtype=np.uint8))
        ys.append(np.asarray(y, dtype=np.int32))
    if not xs:
        raise ValueError(f"Split {split!r} of dataset {name!r} is empty.")
    return np.concatenate(xs), np.concatenate(ys)
