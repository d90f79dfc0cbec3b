"""Data flags: `--dataset`, where it lives and how it is preprocessed."""

from absl import flags as absl_flags

from flags._define import defines
from tfnode import datasets

__all__ = ["define_data_flags"]

NAMES = (
    "dataset",
    "data_dir",
    "download",
    "data_seed",
    "train_examples",
    "test_examples",
    "normalize",
    "augment",
)


@defines(NAMES)
def define_data_flags(flag_values):
    """Defines the data flags on `flag_values`."""
    absl_flags.DEFINE_enum(
        "dataset",
        None,
        datasets.names(),
        "The dataset (tfnode.datasets); the network's own when unset "
        "(concentric_sphere2, mnist or cifar10).",
        flag_values=flag_values,
    )
    absl_flags.DEFINE_string(
        "data_dir",
        None,
        "tensorflow-datasets folder holding mnist/ and cifar10/; "
        "tensorflow-datasets' default (~/tensorflow_datasets or "
        "$TFDS_DATA_DIR) when unset.",
        flag_values=flag_values,
    )
    absl_flags.DEFINE_bool(
        "download",
        True,
        "Download MNIST or CIFAR-10 into --data_dir when missing.",
        flag_values=flag_values,
    )
    absl_flags.DEFINE_integer(
        "data_seed",
        0,
        "Seed of generated datasets (concentric spheres): the same data for "
        "every --seed.",
        lower_bound=0,
        flag_values=flag_values,
    )
    absl_flags.DEFINE_integer(
        "train_examples",
        None,
        "Use only this many training examples (all when unset).",
        lower_bound=1,
        flag_values=flag_values,
    )
    absl_flags.DEFINE_integer(
        "test_examples",
        None,
        "Use only this many test examples (all when unset).",
        lower_bound=1,
        flag_values=flag_values,
    )
    absl_flags.DEFINE_enum(
        "normalize",
        "none",
        list(datasets.NORMALIZATIONS),
        "Image normalisation: none ([0, 1]), symmetric ([-1, 1], the "
        "blog's), per_channel ((x - mean) / std per channel, ANODE's).",
        flag_values=flag_values,
    )
    absl_flags.DEFINE_enum(
        "augment",
        "none",
        list(datasets.AUGMENTATIONS),
        "Training-image augmentation: none, or crop_flip (pad 4, random "
        "crop, random horizontal flip; ANODE's and Sander et al.'s).",
        flag_values=flag_values,
    )
