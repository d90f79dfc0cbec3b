"""Per-example preprocessing: scaling, normalisation and augmentation.

```none
normalize="none"          images scaled to [0, 1]; vectors as they are
normalize="symmetric"     images scaled to [-1, 1]  (the blog's MNIST ODENet)
normalize="per_channel"   (x - mean) / std per channel (ANODE, Sander et al.)
augment="crop_flip"       zero-pad 4, random 32x32 crop, random horizontal
                          flip, before normalising (ANODE, Sander et al.)
```

Augmentation is stateless: each example's crop and flip come from a seed
derived from the run's seed, the epoch and the example's index, so a resumed
run augments exactly as an uninterrupted one.
"""

import tensorflow as tf

__all__ = ["AUGMENTATIONS", "NORMALIZATIONS", "Preprocessor"]

NORMALIZATIONS = ("none", "symmetric", "per_channel")
AUGMENTATIONS = ("none", "crop_flip")

_PAD = 4


def _check_choice(argument, value, choices):
    if value not in choices:
        raise ValueError(
            f"Unknown {argument}={value!r}; choose one of: "
            f"{', '.join(choices)}."
        )


class Preprocessor:
    """Turns a stored example into the model's float32 input.

    Args:
        image: Whether examples are `uint8` images (else float vectors).
        normalize: One of `NORMALIZATIONS`. Default value: `"none"`.
        augment: One of `AUGMENTATIONS`; applied only when a seed is given
            (training). Default value: `"none"`.
        mean: Per-channel means for `"per_channel"`, on the [0, 1] scale.
        std: Per-channel standard deviations for `"per_channel"`.
        dataset: Name used in error messages.

    Raises:
        ValueError: for an unknown option, or an image option on vectors.
    """

    def __init__(
        self,
        image,
        normalize="none",
        augment="none",
        mean=None,
        std=None,
        dataset="dataset",
    ):
        _check_choice("normalize", normalize, NORMALIZATIONS)
        _check_choice("augment", augment, AUGMENTATIONS)
        if not image and normalize != "none":
            raise ValueError(
                f"normalize={normalize!r} applies to images; {dataset} holds "
                "vectors: use normalize='none'."
            )
        if not image and augment != "none":
            raise ValueError(
                f"augment={augment!r} applies to images; {dataset} holds "
                "vectors: use augment='none'."
            )
        if normalize == "per_channel" and (mean is None or std is None):
            raise ValueError(
                f"normalize='per_channel' needs the channel mean and std of "
                f"{dataset}."
            )
        self.image = bool(image)
        self.normalize = normalize
        self.augment = augment
        self.mean = None if mean is None else tuple(float(m) for m in mean)
        self.std = None if std is None else tuple(float(s) for s in std)

    def __call__(self, x, seed=None):
        """Preprocesses one example.

        Args:
            x: The stored example: an `(H, W, C)` uint8 image or a vector.
            seed: A shape `[2]` integer seed of the example's augmentation;
                no augmentation when `None` (evaluation).

        Returns:
            The float32 input.
        """
        if not self.image:
            return tf.cast(x, tf.float32)
        x = tf.cast(x, tf.float32) / 255.0
        if seed is not None and self.augment == "crop_flip":
            x = _crop_flip(x, seed)
        if self.normalize == "symmetric":
            x = (x - 0.5) / 0.5
        elif self.normalize == "per_channel":
            x = (x - tf.constant(self.mean)) / tf.constant(self.std)
        return x


def _crop_flip(image, seed):
    crop_seed = tf.random.experimental.stateless_fold_in(seed, 0)
    flip_seed = tf.random.experimental.stateless_fold_in(seed, 1)
    padded = tf.pad(image, [[_PAD, _PAD], [_PAD, _PAD], [0, 0]])
    image = tf.image.stateless_random_crop(
        padded, tf.shape(image), seed=crop_seed
    )
    return tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
