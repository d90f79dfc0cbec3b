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

from tfnode.layers import ODEBlock
from tfnode.layers.vector_fields import Conv1DField
from tfnode.layers.vector_fields import Conv2DField
from tfnode.layers.vector_fields import DenseField
from tfnode.layers.vector_fields import kaiming_normal
from tfnode.models import inputs
from tfnode.models.solve_settings import PaperSolve
from tfnode.models.solve_settings import ode_options

__all__ = ["PAPER_SOLVE", "linear_odenet", "odenet", "simple_odenet"]

PAPER_SOLVE = PaperSolve(
    "euler", grid={"step_size": 1.0}, tolerances={"tol": 1e-8}
)


def _network(
    name,
    dataset,
    field_class,
    prepare,
    input_shape,
    num_classes,
    channels,
    activation,
    solve,
    options,
):
    options = ode_options(name, options)
    input_shape, num_classes = inputs.resolve(dataset, input_shape, num_classes)
    field = field_class(channels=channels, activation=activation, name="func")
    features = keras.Input(input_shape, name="inputs")
    state = prepare(features)
    state = ODEBlock(
        field,
        name="ode_block",
        **PAPER_SOLVE.block_settings(**solve),
        **options,
    )(state)
    state = keras.layers.Flatten(name="flatten")(state)
    logits = keras.layers.Dense(
        num_classes,
        kernel_initializer=kaiming_normal(),
        bias_initializer="zeros",
        name="classifier",
    )(state)
    return keras.Model(features, logits, name=name)


def simple_odenet(
    input_shape=None,
    num_classes=None,
    *,
    channels=32,
    activation="relu",
    solver=None,
    steps=None,
    step_size=None,
    rtol=None,
    atol=None,
    tol=None,
    adjoint="backprop",
    **options,
):
    """`simple_odenet`: a Conv1D ODE function on points `(d,)`, seen as
    `(d, 1)` sequences; concentric_sphere2 by default (3,207 parameters).

    Args:
        input_shape: Input shape without the batch axis; `(2,)`
            (concentric_sphere2) when unset. A point `(d,)` is read as a
            sequence `(d, 1)`.
        num_classes: Number of classes; the default dataset's when unset.
        channels: Hidden channels of the ODE function (the reference's
            `ch_residual_block`). Default value: `32`.
        activation: `"relu"`, `"lrelu"` or `"sigmoid"`. Default: `"relu"`.
        solver: The solver; `"euler"` when unset.
        steps: Steps of a fixed-grid solve.
        step_size: Step size of a fixed-grid solve; `1.0` when no grid or
            tolerance is given to a fixed-step solver.
        rtol: Relative tolerance of an adaptive solve.
        atol: Absolute tolerance of an adaptive solve.
        tol: Sets `rtol` and `atol`; `1e-8` when no grid or tolerance is
            given to an adaptive solver.
        adjoint: Gradient method. Default value: `"backprop"`.
        **options: Other `odeint` options, passed to the `ODEBlock`.

    Returns:
        A `keras.Model` from inputs to logits `(batch, num_classes)`.

    Raises:
        ValueError: for a bad setting, naming the argument.
    """

    def as_sequence(points):
        if len(points.shape) == 2:
            return keras.layers.Reshape(
                (points.shape[1], 1), name="as_sequence"
            )(points)
        return points

    return _network(
        "simple_odenet",
        "concentric_sphere2",
        Conv1DField,
        as_sequence,
        input_shape,
        num_classes,
        channels,
        activation,
        dict(
            solver=solver,
            steps=steps,
            step_size=step_size,
            rtol=rtol,
            atol=atol,
            tol=tol,
            adjoint=adjoint,
        ),
        options,
    )


def linear_odenet(
    input_shape=None,
    num_classes=None,
    *,
    channels=32,
    activation="relu",
    solver=None,
    steps=None,
    step_size=None,
    rtol=None,
    atol=None,
    tol=None,
    adjoint="backprop",
    **options,
):
    """`linear_odenet`: a dense ODE function on points `(d,)`;
    concentric_sphere2 by default (1,224 parameters).

    Args:
        input_shape: Input shape without the batch axis; `(2,)`
            (concentric_sphere2) when unset.
        num_classes: Number of classes; the default dataset's when unset.
        channels: Hidden channels of the ODE function (the reference's
            `ch_residual_block`). Default value: `32`.
        activation: `"relu"`, `"lrelu"` or `"sigmoid"`. Default: `"relu"`.
        solver: The solver; `"euler"` when unset.
        steps: Steps of a fixed-grid solve.
        step_size: Step size of a fixed-grid solve; `1.0` when no grid or
            tolerance is given to a fixed-step solver.
        rtol: Relative tolerance of an adaptive solve.
        atol: Absolute tolerance of an adaptive solve.
        tol: Sets `rtol` and `atol`; `1e-8` when no grid or tolerance is
            given to an adaptive solver.
        adjoint: Gradient method. Default value: `"backprop"`.
        **options: Other `odeint` options, passed to the `ODEBlock`.

    Returns:
        A `keras.Model` from inputs to logits `(batch, num_classes)`.

    Raises:
        ValueError: for a bad setting, naming the argument.
    """
    return _network(
        "linear_odenet",
        "concentric_sphere2",
        DenseField,
        lambda points: points,
        input_shape,
        num_classes,
        channels,
        activation,
        dict(
            solver=solver,
            steps=steps,
            step_size=step_size,
            rtol=rtol,
            atol=atol,
            tol=tol,
            adjoint=adjoint,
        ),
        options,
    )


def odenet(
    input_shape=None,
    num_classes=None,
    *,
    channels=32,
    activation="relu",
    solver=None,
    steps=None,
    step_size=None,
    rtol=None,
    atol=None,
    tol=None,
    adjoint="backprop",
    **options,
):
    """`odenet`: a Conv2D ODE function on the raw image; CIFAR-10 by
    default (40,205 parameters at `channels=32`, 179,213 at 128; on MNIST
    17,195 and 155,819).

    Args:
        input_shape: Input shape without the batch axis; `(32, 32, 3)`
            (CIFAR-10) when unset.
        num_classes: Number of classes; the default dataset's when unset.
        channels: Hidden channels of the ODE function (the reference's
            `ch_residual_block`). Default value: `32`.
        activation: `"relu"`, `"lrelu"` or `"sigmoid"`. Default: `"relu"`.
        solver: The solver; `"euler"` when unset.
        steps: Steps of a fixed-grid solve.
        step_size: Step size of a fixed-grid solve; `1.0` when no grid or
            tolerance is given to a fixed-step solver.
        rtol: Relative tolerance of an adaptive solve.
        atol: Absolute tolerance of an adaptive solve.
        tol: Sets `rtol` and `atol`; `1e-8` when no grid or tolerance is
            given to an adaptive solver.
        adjoint: Gradient method. Default value: `"backprop"`.
        **options: Other `odeint` options, passed to the `ODEBlock`.

    Returns:
        A `keras.Model` from inputs to logits `(batch, num_classes)`.

    Raises:
        ValueError: for a bad setting, naming the argument.
    """
    return _network(
        "odenet",
        "cifar10",
        Conv2DField,
        lambda images: images,
        input_shape,
        num_classes,
        channels,
        activation,
        dict(
            solver=solver,
            steps=steps,
            step_size=step_size,
            rtol=rtol,
            atol=atol,
            tol=tol,
            adjoint=adjoint,
        ),
        options,
    )
