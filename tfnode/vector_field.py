"""Calling a user's vector field with a uniform `(t, y, ...)` signature."""

import inspect

import keras
import tensorflow as tf

__all__ = ["as_time_field", "build_for_state", "is_autonomous_layer"]


def is_autonomous_layer(func):
    """Whether `func` is a Keras layer whose `call` takes only the state."""
    if not isinstance(func, keras.layers.Layer):
        return False
    required = [
        p
        for p in inspect.signature(func.call).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        and p.default is p.empty
    ]
    return len(required) == 1


def as_time_field(func):
    """Returns `field(t, y, *args, **kwargs)` calling `func` as it expects:
    `func(y, *args, **kwargs)` for an autonomous Keras layer, else
    `func(t, y, *args, **kwargs)`."""
    if is_autonomous_layer(func):
        return lambda t, y, *args, **kwargs: func(y, *args, **kwargs)
    return func


def build_for_state(func, state):
    """Builds an unbuilt Keras layer `func` for the shape of `state`.

    Keras would infer the build shape from the first call argument, which
    for a field `f(t, y)` is the time, not the state.
    """
    if isinstance(func, keras.layers.Layer) and not func.built:
        shapes = tf.nest.map_structure(lambda y: tuple(y.shape), state)
        func.build(shapes)
