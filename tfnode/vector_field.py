"""Calling a user's vector field with a uniform `(t, y, ...)` signature."""

import inspect

import keras

__all__ = ["as_time_field", "is_autonomous_layer"]


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
