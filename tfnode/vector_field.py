"""Calling a user's vector field with a uniform `(t, y, ...)` signature.

A field is any callable `f(t, y, *args)`, or a Keras layer whose `call`
takes only the state (`f(y)`, autonomous); either may take `training`.
`call_field` is the one place that calls a field as it expects: it passes
`training` only where the field takes it, and casts a Keras layer's output
(computed in its dtype policy's compute dtype, e.g. `float16` under
`mixed_float16`) back to the dtype of the state.
"""

import inspect
import math
import weakref

import keras
import tensorflow as tf

__all__ = [
    "build_for_state",
    "call_field",
    "is_autonomous_layer",
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

    def call(t, y, *args):
        if autonomous:
            out = func(y, *args, **kwargs)
        else:
            out = func(t, y, *args, **kwargs)
        if isinstance(func, keras.layers.Layer):
            out = _cast_like(out, y)
        return out

    if _computes_in_float16(func, y):
        return _normalized_cotangents(call, t, y, args)
    return call(t, y, *args)


def _computes_in_float16(func, y):
    """Whether `func` is a Keras layer computing in `float16` on a wider
    state (a `mixed_float16` policy)."""
    if not isinstance(func, keras.layers.Layer):
        return False
    if func.compute_dtype != "float16":
        return False
    return any(
        tf.is_tensor(leaf) and leaf.dtype in (tf.float32, tf.float64)
        for leaf in tf.nest.flatten(y)
    )


def _normalized_cotangents(call, t, y, args):
    """`call(t, y, *args)`, differentiated with its cotangents scaled to a
    largest magnitude near 1 and the gradients scaled back in the state's
    dtype.

    A `float16` field overflows at 65504. Under dynamic loss scaling the
    cotangents reaching it are the loss scale times the gradient, and an
    overflow there would stop a solve that differentiates the field inside
    its own steps (the continuous adjoint's backward ODE) rather than just
    skip the optimizer's step. Scaling by a power of two is exact.
    """
    inputs = tf.nest.flatten((t, y, args))
    floating = [
        i
        for i, x in enumerate(inputs)
        if tf.is_tensor(x) and x.dtype.is_floating
    ]

    structure = []

    @tf.custom_gradient
    def scaled(*watched):
        values = list(inputs)
        for i, x in zip(floating, watched, strict=True):
            values[i] = x
        # Persistent: a Jacobian (an implicit solver's) calls `grad` once
        # per row.
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(watched)
            t_, y_, args_ = tf.nest.pack_sequence_as((t, y, args), values)
            out = call(t_, y_, *args_)
        if out is None:
            raise TypeError(
                "The vector field returned None; it must return dy/dt, "
                "structured like y."
            )
        structure.append(out)
        out_flat = [tf.convert_to_tensor(o) for o in tf.nest.flatten(out)]

        def grad(*cotangents, variables=None):
            scale = _power_of_two_scale(cotangents)
            sources = list(watched) + list(variables or [])
            grads = tape.gradient(
                out_flat,
                sources,
                output_gradients=[
                    c / tf.cast(scale, c.dtype) for c in cotangents
                ],
            )
            grads = [
                None if g is None else g * tf.cast(scale, g.dtype)
                for g in grads
            ]
            grads_in = grads[: len(watched)]
            if variables is None:
                return grads_in
            return grads_in, grads[len(watched) :]

        return out_flat, grad

    out_flat = scaled(*[inputs[i] for i in floating])
    return tf.nest.pack_sequence_as(structure[0], list(out_flat))


def _power_of_two_scale(tensors):
    """The power of two nearest above the largest finite magnitude of
    `tensors` (`1` when they are all zero or hold Inf or NaN)."""
    largest = tf.reduce_max(
        [tf.reduce_max(tf.abs(tf.cast(x, tf.float32))) for x in tensors]
    )
    usable = tf.math.is_finite(largest) & (largest > 0)
    exponent = tf.math.ceil(
        tf.math.log(tf.where(usable, largest, 1.0)) / math.log(2.0)
    )
    return tf.where(usable, 2.0**exponent, 1.0)


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
