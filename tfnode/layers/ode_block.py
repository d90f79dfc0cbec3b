"""`ODEBlock`: a Keras 3 layer that integrates its input with a vector field."""

import inspect

import keras
import tensorflow as tf

from tfnode import adjoints
from tfnode import solvers
from tfnode.diagnostics import NFECounter
from tfnode.odeint import odeint
from tfnode.odeint import validate_settings
from tfnode.vector_field import as_time_field

__all__ = [
    "OPTION_NAMES",
    "SOLVE_SETTINGS",
    "ODEBlock",
    "ode_blocks",
    "set_solver",
]

# Settings passed through to `odeint`, stored in the config.
SOLVE_SETTINGS = (
    "solver",
    "steps",
    "step_size",
    "rtol",
    "atol",
    "tol",
    "adjoint",
)
# Every other (serializable) `odeint` option an `ODEBlock` passes on.
OPTION_NAMES = tuple(
    name
    for name in inspect.signature(odeint).parameters
    if name
    not in (
        "func",
        "y0",
        "t",
        "args",
        "nfe_counter",
        "return_stats",
        "norm",
        *SOLVE_SETTINGS,
    )
)


@keras.saving.register_keras_serializable(package="tfnode")
class ODEBlock(keras.layers.Layer):
    """Integrates its input as the initial state of `dy/dt = func(t, y)`.

    The continuous analogue of a residual block (Chen et al. 2018): the
    output is `y(t1)` where `y(t0)` is the input. Every solver and gradient
    method of `odeint` is available by name, and all settings can be changed
    after training (e.g. to evaluate with another solver) with `set_solver`.

    Args:
        func: The vector field, a Keras layer; its `call` takes `(t, y)` or
            only `y` (autonomous), and optionally `training`.
        t0: Start time. Default value: `0.0`.
        t1: End time. Default value: `1.0`.
        solver: Solver name. Default value: `"dopri5"`.
        steps: Fixed grid: steps from `t0` to `t1` (ANODE's `Nt`).
        step_size: Fixed grid: step size.
        rtol: Relative tolerance of adaptive solvers.
        atol: Absolute tolerance of adaptive solvers.
        tol: Sets both `rtol` and `atol`.
        adjoint: Gradient method: `"backprop"`, `"anode"`, `"continuous"`
            or `"reversible"`. Default value: `"backprop"`.
        output_times: When set, a list of times from `t0` (exclusive) to
            `t1`, and the layer returns the states at those times, shape
            `(batch, len(output_times), ...)`.
        track_nfe: Report forward and backward NFE as metrics
            (`<name>_nfe_forward`, `<name>_nfe_backward`).
        **options: Any other keyword argument of `odeint` (`checkpoints`,
            `seminorm`, `adjoint_rtol`, `max_num_steps`, ...) or of
            `keras.layers.Layer`.

    Input shape:
        Any shape; the state of the ODE.

    Output shape:
        The input shape, or `(batch, len(output_times), ...)`.

    Example:

    ```python
    field = keras.Sequential([keras.layers.Dense(64, activation="tanh"),
                              keras.layers.Dense(2)])
    block = tfnode.ODEBlock(field, solver="rk4", steps=8, adjoint="anode")
    y1 = block(tf.random.normal([32, 2]))
    ```
    """

    def __init__(
        self,
        func,
        t0=0.0,
        t1=1.0,
        solver="dopri5",
        steps=None,
        step_size=None,
        rtol=None,
        atol=None,
        tol=None,
        adjoint="backprop",
        output_times=None,
        track_nfe=True,
        **kwargs,
    ):
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in OPTION_NAMES}
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
        self.options = options
        self.configure(
            solver=solver,
            steps=steps,
            step_size=step_size,
            rtol=rtol,
            atol=atol,
            tol=tol,
            adjoint=adjoint,
        )
        self.nfe_counter = NFECounter(name=f"{self.name}_nfe")
        self._accepts_training = (
            "training" in inspect.signature(func.call).parameters
        )

    def configure(self, **settings):
        """Changes solve settings (`solver`, `steps`, `rtol`, `adjoint`, or
        any `odeint` option); a setting passed as `None` is cleared.

        Validated at once. A model already compiled keeps its traced
        functions: use `tfnode.set_solver(model, ...)`, which resets them.
        """
        for key, value in settings.items():
            if key in SOLVE_SETTINGS:
                setattr(self, key, value)
            elif key in OPTION_NAMES:
                if value is None:
                    self.options.pop(key, None)
                else:
                    self.options[key] = value
            else:
                raise ValueError(
                    f"Unknown ODEBlock setting {key}=; choose from "
                    f"{', '.join(SOLVE_SETTINGS + OPTION_NAMES)}."
                )
        # Fail now, not at the first call, on a bad combination.
        self.solver = solvers.REGISTRY.canonical_name(self.solver)
        self.adjoint = adjoints.REGISTRY.canonical_name(self.adjoint)
        validate_settings(**self._solve_kwargs())

    def _solve_kwargs(self):
        kwargs = {key: getattr(self, key) for key in SOLVE_SETTINGS}
        kwargs.update(self.options)
        return kwargs

    def _times(self):
        if self.output_times is None:
            return [self.t0, self.t1]
        return [self.t0, *self.output_times]

    def build(self, input_shape):
        if not self.func.built:
            self.func.build(input_shape)
        self.built = True

    def call(self, inputs, training=None):
        func = as_time_field(self.func)

        def field(t, y):
            if self._accepts_training:
                return func(t, y, training=training)
            return func(t, y)

        ys = odeint(
            field,
            inputs,
            tf.constant(self._times(), dtype=inputs.dtype),
            nfe_counter=self.nfe_counter if self.track_nfe else None,
            **self._solve_kwargs(),
        )
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
                **{key: getattr(self, key) for key in SOLVE_SETTINGS},
                **self.options,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        func = keras.saving.deserialize_keras_object(
            config.pop("func"), custom_objects=custom_objects
        )
        return cls(func, **config)


def ode_blocks(model):
    """Every `ODEBlock` inside `model`, in depth-first order."""
    return [
        layer
        for layer in model._flatten_layers(include_self=True)
        if isinstance(layer, ODEBlock)
    ]


def set_solver(model, **settings):
    """Changes the solve settings of every `ODEBlock` in a trained model.

    For evaluating with another solver, step count or tolerance without
    rebuilding the model: `set_solver(model, solver="rk4", steps=16)`.
    The model's traced train/test/predict functions are reset so the next
    call retraces with the new settings.

    Args:
        model: A Keras model (or layer) holding `ODEBlock`s.
        **settings: Passed to `ODEBlock.configure`.

    Returns:
        blocks: The `ODEBlock`s changed.
    """
    blocks = ode_blocks(model)
    if not blocks:
        raise ValueError(f"Model {model.name!r} holds no ODEBlock.")
    for block in blocks:
        block.configure(**settings)
    for attr in ("train_function", "test_function", "predict_function"):
        if hasattr(model, attr):
            setattr(model, attr, None)
    return blocks
