"""A network's input shape and class count: given, or its dataset's.

Inputs are channels-last float32, as `tfnode.datasets` makes them: a
concentric-spheres point is a vector `(d,)`, an MNIST image `(28, 28, 1)`,
a CIFAR-10 image `(32, 32, 3)`.
"""

from tfnode import datasets
from tfnode import validation

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
    try:
        if not shape:
            raise ValueError("empty")
        shape = tuple(validation.positive_int("size", n) for n in shape)
    except ValueError:
        raise ValueError(
            f"input_shape must be a tuple of positive ints, without the "
            f"batch axis (e.g. {info.input_shape}); got {input_shape!r}."
        ) from None
    classes = info.num_classes if num_classes is None else num_classes
    try:
        validation.at_least("num_classes", classes, 2)
        classes = validation.positive_int("num_classes", classes)
    except ValueError:
        raise ValueError(
            f"num_classes must be an int >= 2; got {classes!r}."
        ) from None
    return shape, classes
