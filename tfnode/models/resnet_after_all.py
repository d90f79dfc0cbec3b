"""The networks of 'ResNet After All? Neural ODEs and Their Numerical
Solution' (Ott et al. 2021).

The ODE acts on the input itself (no stem, no downsampling), and one linear
classifier reads the flattened final state:

```none
simple_odenet   (d,) -> (d, 1) -> ODEBlock(Conv1DField) -> Linear(d)
linear_odenet   (d,) -> ODEBlock(DenseField) -> Linear(d)
odenet          (H, W, C) -> ODEBlock(Conv2DField) -> Linear(H W C)
```

Every weight is kaiming-normal (fan_in), every bias zero, as the reference's
`init_weights(kaiming)`. The default solve is the paper's: Euler with
`step_size=1.0` (one step on `[0, 1]`); adaptive solvers get `tol=1e-8`.

#### References

[1]: Ott, Katiyar, Hennig, Tiemann. ResNet After All? Neural ODEs and Their
     Numerical Solution. ICLR, 2021.
"""

import keras

from tfnode import datasets
from tfnode.layers import ODEBlock
from tfnode.layers.vector_fields import Conv1DField
from tfnode.layers.vector_fields import Conv2DField
from tfnode.layers.vector_fields import DenseField
from tfnode.layers.vector_fields import kaiming_normal
from tfnode.models import inputs
from tfnode.models.solve_settings import RESNET_AFTER_ALL
from tfnode.models.solve_settings import block_arguments

__all__ = ["PAPER_SETTINGS", "linear_odenet", "odenet", "simple_odenet"]

PAPER_SETTINGS = RESNET_AFTER_ALL

_ARGS = """

    Args:
        input_shape: Input shape without the batch axis; `{shape}`
            ({dataset}) when unset.
        num_classes: Number of classes; the default dataset's when unset.
        channels: Hidden channels of the ODE function (the reference's
            `ch_residual_block`). Default value: `32`.
        activation: `"relu"`, `"lrelu"` or `"sigmoid"`. Default: `"relu"`.
        settings: The ODE block's `tfnode.SolveSettings`; the paper's
            Euler with `step_size=1.0` when unset.
        **solve: Keyword shorthand over it (`solver=`, `steps=`, `tol=`,
            `adjoint=`, ...; see `tfnode.models.solve_settings`); an
            adaptive `solver=` alone gets the paper's `tol=1e-8`.

    Returns:
        A `keras.Model` from inputs to logits `(batch, num_classes)`.
"""


def _network(name, dataset, field_class, prepare, shapes, field, solve):
    """The ODE block on the (prepared) input, then a linear classifier."""
    settings = solve.pop("settings", None)
    block_kwargs = block_arguments(name, RESNET_AFTER_ALL, settings, solve)
    input_shape, num_classes = inputs.resolve(dataset, *shapes)
    func = field_class(**field, name="func")
    features = keras.Input(input_shape, name="inputs")
    state = ODEBlock(func, name="ode_block", **block_kwargs)(prepare(features))
    state = keras.layers.Flatten(name="flatten")(state)
    logits = keras.layers.Dense(
        num_classes,
        kernel_initializer=kaiming_normal(),
        bias_initializer="zeros",
        name="classifier",
    )(state)
    return keras.Model(features, logits, name=name)


def _as_sequence(points):
    """A point `(d,)` as a sequence `(d, 1)`."""
    if len(points.shape) == 2:
        return keras.layers.Reshape((points.shape[1], 1), name="as_sequence")(
            points
        )
    return points


def _builder(name, dataset, field_class, prepare, summary):
    """The builder `name` (the three networks share their arguments)."""

    def build(
        input_shape=None,
        num_classes=None,
        *,
        channels=32,
        activation="relu",
        settings=None,
        **solve,
    ):
        return _network(
            name,
            dataset,
            field_class,
            prepare,
            (input_shape, num_classes),
            dict(channels=channels, activation=activation),
            dict(solve, settings=settings),
        )

    build.__name__ = build.__qualname__ = name
    shape = datasets.get(dataset).input_shape
    build.__doc__ = summary + _ARGS.format(shape=shape, dataset=dataset)
    return build


simple_odenet = _builder(
    "simple_odenet",
    "concentric_sphere2",
    Conv1DField,
    _as_sequence,
    """`simple_odenet`: a Conv1D ODE function on points `(d,)`, seen as
    `(d, 1)` sequences; concentric_sphere2 by default (3,207 parameters).""",
)
linear_odenet = _builder(
    "linear_odenet",
    "concentric_sphere2",
    DenseField,
    lambda points: points,
    """`linear_odenet`: a dense ODE function on points `(d,)`;
    concentric_sphere2 by default (1,224 parameters).""",
)
odenet = _builder(
    "odenet",
    "cifar10",
    Conv2DField,
    lambda images: images,
    """`odenet`: a Conv2D ODE function on the raw image; CIFAR-10 by
    default (40,205 parameters at `channels=32`, 179,213 at 128; on MNIST
    17,195 and 155,819).""",
)
