"""Input shapes and class counts of the datasets the networks default to.

Inputs are channels-last float32: a concentric-spheres point is a vector
`(d,)`, an MNIST image `(28, 28, 1)`, a CIFAR-10 image `(32, 32, 3)`.
"""

import numbers

__all__ = ["DATASETS", "resolve"]

# dataset name -> (input shape, number of classes)
DATASETS = {
    "cifar10": ((32, 32, 3), 10),
    "mnist": ((28, 28, 1), 10),
    "concentric_sphere2": ((2,), 2),
    "concentric_sphere3": ((3,), 2),
    "concentric_sphere10": ((10,), 2),
    "concentric_sphere900": ((900,), 2),
}


def resolve(dataset, input_shape, num_classes):
    """`(input_shape, num_classes)`, each `dataset`'s where unset.

    Raises:
        ValueError: for an input shape with unknown (None) or non-positive
            sizes, or a class count below 2.
    """
    default_shape, default_classes = DATASETS[dataset]
    shape = default_shape if input_shape is None else tuple(input_shape)
    if not shape or not all(
        isinstance(size, numbers.Integral)
        and not isinstance(size, bool)
        and size > 0
        for size in shape
    ):
        raise ValueError(
            f"input_shape must be a tuple of positive ints, without the "
            f"batch axis (e.g. {default_shape}); got {input_shape!r}."
        )
    shape = tuple(int(size) for size in shape)
    classes = default_classes if num_classes is None else num_classes
    if (
        isinstance(classes, bool)
        or not isinstance(classes, numbers.Integral)
        or classes < 2
    ):
        raise ValueError(f"num_classes must be an int >= 2; got {classes!r}.")
    return shape, int(classes)
