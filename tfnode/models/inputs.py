"""A network's input shape and class count: given, or its dataset's.

Inputs are channels-last float32, as `tfnode.datasets` makes them: a
concentric-spheres point is a vector `(d,)`, an MNIST image `(28, 28, 1)`,
a CIFAR-10 image `(32, 32, 3)`.
"""

import numbers

from tfnode import datasets

__all__ = ["resolve"]


def resolve(dataset, input_shape, num_classes):
    """`(input_shape, num_classes)`, each the `dataset`'s where unset.

    Args:
        dataset: A `tfnode.datasets` name, the network's default dataset.
        input_shape: Shape of one input (no batch axis), or `None`.
        num_classes: Number of classes, or `None`.

    Raises:
        ValueError: for an input shape with unknown (None) or non-positive
            sizes, or a class count below 2.
    """
    info = datasets.get(dataset)
    shape = info.input_shape if input_shape is None else tuple(input_shape)
    if not shape or not all(
        isinstance(size, numbers.Integral)
        and not isinstance(size, bool)
        and size > 0
        for size in shape
    ):
        raise ValueError(
            f"input_shape must be a tuple of positive ints, without the "
            f"batch axis (e.g. {info.input_shape}); got {input_shape!r}."
        )
    shape = tuple(int(size) for size in shape)
    classes = info.num_classes if num_classes is None else num_classes
    if (
        isinstance(classes, bool)
        or not isinstance(classes, numbers.Integral)
        or classes < 2
    ):
        raise ValueError(f"num_classes must be an int >= 2; got {classes!r}.")
    return shape, int(classes)
