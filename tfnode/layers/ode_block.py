"""`ODEBlock`: a Keras 3 layer that integrates its input with a vector field."""

import math

import keras
import tensorflow as tf

from tfnode.diagnostics import NFECounter
from tfnode.odeint import odeint
from tfnode.precision import solve_dtype
from tfnode.settings import SolveSettings
from tfnode.settings import resolve
from tfnode.settings import shorthand_names
from tfnode.vector_field import call_field

__all__ = ["ODEBlock", "ode_blocks", "set_solver"]


@keras.saving.register_keras_serializable(package="tfnode")
class ODEBlock(keras.layers.Layer):
    """Integrates its input as the initial state of `dy/dt = func(t, y)`.

    The continuous analogue of a residual block (Chen et al. 2018): the
    output is `y(t1)` where `y(t0)` is the input. How it solves is one
    `tfnode.SolveSettings` value (`block.settings`), given whole or through
    `odeint`'s keyword shorthand, and changeable after training (e.g. to
    evaluate with another solver) with `set_solver`.

    Args:
        func: The vector field, a Keras layer; its `call` takes `(t, y)` or
            only `y` (autonomous), and optionally `training`.
        t0: Start time. Default value: `0.0`.
        t1: End time. Default value: `1.0`.
        settings: A `tfnode.SolveSettings`; `dopri5` with `odeint`'s default
            tolerances and `adjoint="backprop"` when unset.
        output_times: When set, a list of times from `t0` (exclusive) to
            `t1`, and the layer returns the states at those times, shape
            `(batch, len(output_times), ...)`.
        track_nfe: Report forward and backward NFE as metrics
            (`<name>_nfe_forward`, `<name>_nfe_backward`).
        trainable_t1: Learn the end time: a weight `log_duration` holds
            `log|t1 - t0|` (so the span keeps its sign and never collapses),
            initialised from `t1` and trained through `odeint`'s gradients
            with respect to `t`; `block.end_time` reads it. Not with
            `output_times`.
        **kwargs: `odeint`'s keyword shorthand (`solver`, `steps`, `rtol`,
            `tol`, `adjoint`, `checkpoints`, `seminorm`, ...), replacing
            fields of `settings`, or arguments of `keras.layers.Layer`.

    Input shape:
        Any shape; the state of the ODE.

    Output shape:
        The input shape, or `(batch, len(output_times), ...)`.

    Example:

    ```python
    field = keras.Sequential([keras.layers.Dense(64, activation="tanh"),
                              keras.layers.Dense(2)])
    block = tfnode.ODEBlock(
        field, settings=tfnode.SolveSettings(solver="rk4", steps=8,
                                             adjoint="anode"))
    y1 = block(tf.random.normal([32, 2]))
    ```
    """

    def __init__(
        self,
        func,
        t0=0.0,
        t1=1.0,
        settings=None,
        output_times=None,
        track_nfe=True,
        trainable_t1=False,
        **kwargs,
    ):
        names = shorthand_names()
        shorthand = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
        super().__init__(**kwargs)
        if not isinstance(func, keras.layers.Layer):
            raise TypeError(
                f"func must be a Keras layer (the vector field); got {func!r}."
            )
        self.func = func
        self.t0 = float(t0)
        self.t1 = float(t1)
        if self.t0 == self.t1:
            raise ValueError(f"t0 and t1 must differ; got t0=t1={t0!r}.")
        self.output_times = (
            None if output_times is None else [float(x) for x in output_times]
        )
        self.track_nfe = bool(track_nfe)
        self.trainable_t1 = bool(trainable_t1)
        if self.trainable_t1 and self.output_times is not None:
            raise ValueError(
                "trainable_t1=True learns the end time of a block returning "
                "y(t1); it cannot be combined with output_times."
            )
        self.settings = resolve(settings, **shorthand)
        self.nfe_counter = NFECounter(name=f"{self.name}_nfe")

    def configure(self, settings=None, **changes):
        """Changes how the block solves: a new `SolveSettings`, and/or
        keyword shorthand replacing fields (see `SolveSettings.replace`).

        Validated at once. A model already compiled keeps its traced
        functions: use `tfnode.set_solver(model, ...)`, which resets them.
        """
        if settings is not None and not isinstance(settings, SolveSettings):
            settings = resolve(settings)
        base = self.settings if settings is None else settings
        self.settings = base.replace(**changes) if changes else base

    def _times(self, dtype=None):
        """The solve's times: floats, or a tensor of `dtype`."""
        if self.trainable_t1:
            if dtype is None:
                return [self.t0, float(self.end_time)]
            end = tf.cast(self.end_time, dtype)
            return tf.stack([tf.constant(self.t0, dtype), end])
        times = [self.t0, *(self.output_times or [self.t1])]
        return times if dtype is None else tf.constant(times, dtype)

    @property
    def end_time(self):
        """The end time: `t1`, or its learned value with `trainable_t1`."""
        if not self.trainable_t1:
            return self.t1
        direction = 1.0 if self.t1 > self.t0 else -1.0
        return self.t0 + direction * tf.exp(
            tf.convert_to_tensor(self.log_duration)
        )

    def build(self, input_shape):
        if not self.func.built:
            self.func.build(input_shape)
        if self.trainable_t1:
            self.log_duration = self.add_weight(
                name="log_duration",
                shape=(),
                initializer=keras.initializers.Constant(
                    math.log(abs(self.t1 - self.t0))
                ),
                dtype="float32",
            )
        self.built = True

    def call(self, inputs, training=None):
        # Under a mixed policy Keras hands the block its input in the
        # compute dtype (`float16`); the state and the step-size control run
        # in `float32`, the field computes in its own compute dtype and
        # `call_field` casts its output back to the state's dtype.
        state = tf.cast(inputs, solve_dtype(inputs.dtype))

        def field(t, y):
            return call_field(self.func, t, y, training=training)

        ys = odeint(
            field,
            state,
            self._times(state.dtype),
            self.settings,
            nfe_counter=self.nfe_counter if self.track_nfe else None,
        )
        ys = tf.cast(ys, inputs.dtype)
        if self.output_times is None:
            return ys[-1]
        ys = ys[1:]
        perm = [1, 0] + list(range(2, len(ys.shape)))
        return tf.transpose(ys, perm)

    def compute_output_shape(self, input_shape):
        if self.output_times is None:
            return tuple(input_shape)
        return (input_shape[0], len(self.output_times), *input_shape[1:])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "func": keras.saving.serialize_keras_object(self.func),
                "t0": self.t0,
                "t1": self.t1,
                "output_times": self.output_times,
                "track_nfe": self.track_nfe,
                "trainable_t1": self.trainable_t1,
                "settings": self.settings.get_config(),
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        func = keras.saving.deserialize_keras_object(
            config.pop("func"), custom_objects=custom_objects
        )
        # Configs saved before `settings` existed hold the keyword
        # shorthand flat (`solver`, `steps`, `tol`, `checkpoints`, ...);
        # `__init__` takes both forms.
        return cls(func, **config)


def ode_blocks(model):
    """Every `ODEBlock` inside `model`, in depth-first order."""
    return [
        layer
        for layer in model._flatten_layers(include_self=True)
        if isinstance(layer, ODEBlock)
    ]


def set_solver(model, settings=None, **changes):
    """Changes the solve settings of every `ODEBlock` in a trained model.

    For evaluating with another solver, step count or tolerance without
    rebuilding the model: `set_solver(model, solver="rk4", steps=16)`.
    The model's traced train/test/predict functions are reset so the next
    call retraces with the new settings.

    Args:
        model: A Keras model (or layer) holding `ODEBlock`s.
        settings: A `SolveSettings` for every block, or `None`.
        **changes: Keyword shorthand, passed to `ODEBlock.configure`.

    Returns:
        blocks: The `ODEBlock`s changed.
    """
    blocks = ode_blocks(model)
    if not blocks:
        raise ValueError(f"Model {model.name!r} holds no ODEBlock.")
    for block in blocks:
        block.configure(settings, **changes)
    for attr in ("train_function", "test_function", "predict_function"):
        if hasattr(model, attr):
            setattr(model, attr, None)
    return blocks
