"""Calling a user's vector field with a uniform `(t, y, ...)` signature.

A field is any callable `f(t, y, *args)`, or a Keras layer whose `call`
takes only the state (`f(y)`, autonomous); either may take `training`.
`call_field` is the one place that calls a field as it expects: it passes
`training` only where the field takes it, and casts a Keras layer's output
(computed in its dtype policy's compute dtype, e.g. `float16` under
`mixed_float16`) back to the dtype of the state.
"""

import inspect
import weakref

import keras
import tensorflow as tf

__all__ = [
    "as_time_field",
    "build_for_state",
    "call_field",
    "is_autonomous_layer",
    "takes_training",
]

# What `inspect` says of each field, computed once per field object.
_SIGNATURES = weakref.WeakKeyDictionary()


def _signature(func):
    """`(autonomous, takes_training)` of `func`, cached per object."""
    try:
        return _SIGNATURES[func]
    except (KeyError, TypeError):
        pass
    is_layer = isinstance(func, keras.layers.Layer)
    try:
        parameters = inspect.signature(func.call if is_layer else func)
        parameters = parameters.parameters
    except (TypeError, ValueError):  # Builtins without a signature.
        parameters = {}
    required = [
        p
        for p in parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        and p.default is p.empty
    ]
    found = (is_layer and len(required) == 1, "training" in parameters)
    try:
        _SIGNATURES[func] = found
    except TypeError:  # Not weak-referenceable or not hashable.
        pass
    return found


def is_autonomous_layer(func):
    """Whether `func` is a Keras layer whose `call` takes only the state."""
    return _signature(func)[0]


def takes_training(func):
    """Whether `func` (its `call`, for a Keras layer) takes `training`."""
    return _signature(func)[1]


def as_time_field(func):
    """Returns `field(t, y, *args, **kwargs)` calling `func` as it expects:
    `func(y, *args, **kwargs)` for an autonomous Keras layer, else
    `func(t, y, *args, **kwargs)`."""
    if is_autonomous_layer(func):
        return lambda t, y, *args, **kwargs: func(y, *args, **kwargs)
    return func


def call_field(func, t, y, *args, training=None):
    """`dy/dt` of the field `func` at `(t, y)`, called as it expects.

    Args:
        func: The field: a callable `func(t, y, *args)`, or a Keras layer
            whose `call` takes `(t, y, *args)` or only `y` (autonomous).
        t: The time.
        y: The state, a tensor or a nest of tensors.
        *args: Extra arguments passed after `y`.
        training: Passed as `training=` when `func` (its `call`, for a
            layer) has a `training` parameter; dropped otherwise.

    Returns:
        dy_dt: `func`'s output. A Keras layer computes in its policy's
            compute dtype; its floating outputs are cast to the dtype of the
            matching leaf of `y`, so a `mixed_float16` field drives a
            `float32` state.
    """
    autonomous, with_training = _signature(func)
    kwargs = {"training": training} if with_training else {}
    if autonomous:
        out = func(y, *args, **kwargs)
    else:
        out = func(t, y, *args, **kwargs)
    if isinstance(func, keras.layers.Layer):
        out = _cast_like(out, y)
    return out


def _cast_like(out, y):
    """`out` with each floating leaf cast to the dtype of `y`'s leaf; left
    as is when the structures differ (the caller reports that)."""
    out_flat = tf.nest.flatten(out)
    y_flat = tf.nest.flatten(y)
    if len(out_flat) != len(y_flat):
        return out
    cast = []
    for dy, y_leaf in zip(out_flat, y_flat, strict=True):
        dtype = getattr(y_leaf, "dtype", None)
        if (
            tf.is_tensor(dy)
            and dtype is not None
            and dy.dtype != dtype
            and dy.dtype.is_floating
            and tf.as_dtype(dtype).is_floating
        ):
            dy = tf.cast(dy, dtype)
        cast.append(dy)
    return tf.nest.pack_sequence_as(out, cast)


def build_for_state(func, state):
    """Builds an unbuilt Keras layer `func` for the shape of `state`.

    Keras would infer the build shape from the first call argument, which
    for a field `f(t, y)` is the time, not the state.
    """
    if isinstance(func, keras.layers.Layer) and not func.built:
        shapes = tf.nest.map_structure(lambda y: tuple(y.shape), state)
        func.build(shapes)
