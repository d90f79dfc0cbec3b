"""Dtypes of a solve: half-precision states are solved in `float32`.

A `float16` or `bfloat16` state cannot carry a solve: the step-size
controller's squared errors overflow or underflow, the step sizes and times
round to a few significant digits, and NumPy has no `finfo` for `bfloat16`.
`odeint` therefore solves such a state in `float32`, its *solve dtype*:

```none
state dtype          solve dtype    func sees (t, y, args) in   outputs in
float16, bfloat16    float32        the state dtype             state dtype
float32, float64     unchanged      the state dtype             state dtype
```

`y0`, `t` and the half-precision `args` are promoted to `float32`; `func` is
called with them cast back to the state dtype, and its output is cast up to
`float32`, so `func` computes exactly as it would on a half state. The
outputs are cast back down to the state dtype. Gradients flow through the
casts to `y0`, `args` and the variables, under every gradient method.

Tolerances finer than the state dtype can resolve are refused (see
`check_tolerances`): the field sees the state rounded to that dtype, so
asking for more accuracy only buys steps.

Mixed precision (`keras.mixed_precision`) is the other half of the story:
`ODEBlock` promotes its input (in the policy's compute dtype) the same way
and solves in `float32`, while its field computes in the compute dtype;
`tfnode.vector_field.call_field` casts the field's output back to the
state's dtype.
"""

import dataclasses

import tensorflow as tf

__all__ = [
    "HALF_DTYPES",
    "check_tolerances",
    "demote",
    "min_rtol",
    "promote",
    "resolution",
    "solve_dtype",
]

HALF_DTYPES = (tf.float16, tf.bfloat16)

# How much finer than the state dtype's resolution `rtol` may be. The global
# error sums the local errors of many steps, so a local tolerance a few bits
# below the resolution of the output is useful; beyond that the rounding of
# the state at every evaluation of the field dominates.
_RTOL_BITS_BELOW_EPS = 4


@dataclasses.dataclass(frozen=True)
class _Limits:
    eps: float  # Spacing of the dtype at 1.0: its relative resolution.
    smallest: float  # Smallest positive (subnormal) value.


# NumPy has no `finfo(bfloat16)`; both are exact powers of two.
_LIMITS = {
    tf.float16: _Limits(eps=2.0**-10, smallest=2.0**-24),
    tf.bfloat16: _Limits(eps=2.0**-7, smallest=2.0**-133),
}


def solve_dtype(dtype):
    """The dtype a state of `dtype` is solved in: `float32` for `float16` and
    `bfloat16`, else `dtype` itself."""
    dtype = tf.as_dtype(dtype)
    return tf.float32 if dtype in HALF_DTYPES else dtype


def resolution(dtype):
    """The relative resolution (machine epsilon) of a half `dtype`."""
    return _LIMITS[tf.as_dtype(dtype)].eps


def min_rtol(dtype):
    """The smallest `rtol` accepted for a state of half `dtype`:
    `resolution(dtype) / 2**4` (`6.1e-5` for `float16`, `4.9e-4` for
    `bfloat16`)."""
    return resolution(dtype) / 2.0**_RTOL_BITS_BELOW_EPS


def check_tolerances(settings, dtype):
    """Raises `ValueError` when a tolerance of `settings` is finer than a
    state of `dtype` can resolve.

    For `float16` and `bfloat16` states: `rtol` (and the continuous
    adjoint's `adjoint_rtol`) must be at least `min_rtol(dtype)`, and `atol`
    (`adjoint_atol`) at least the dtype's smallest positive value. Other
    dtypes are not checked. The defaults (`rtol=1e-3`, `atol=1e-6`) pass for
    both half dtypes.
    """
    dtype = tf.as_dtype(dtype)
    if dtype not in HALF_DTYPES:
        return
    limits = _LIMITS[dtype]
    method = settings.adjoint
    checks = [
        ("rtol", settings.rtol, min_rtol(dtype)),
        ("atol", settings.atol, limits.smallest),
        ("adjoint_rtol", getattr(method, "rtol", None), min_rtol(dtype)),
        ("adjoint_atol", getattr(method, "atol", None), limits.smallest),
    ]
    for name, value, floor in checks:
        if value is not None and value < floor:
            what = (
                f"{floor:.3g} (its resolution eps={limits.eps:.3g} / "
                f"2**{_RTOL_BITS_BELOW_EPS})"
                if name.endswith("rtol")
                else f"{floor:.3g} (its smallest positive value)"
            )
            raise ValueError(
                f"{name}={value!r} is finer than a {dtype.name} state can "
                f"resolve: for {dtype.name}, {name} must be >= {what}. "
                f"Loosen {name}, or solve a float32 state."
            )


def promote(tensors):
    """The flat `tensors` with half-precision ones cast to `float32`."""
    return [_cast(x, solve_dtype(x.dtype)) for x in tensors]


def demote(tensors, dtypes):
    """The flat `tensors`, each cast to the matching dtype of `dtypes`."""
    return [_cast(x, d) for x, d in zip(tensors, dtypes, strict=True)]


def _cast(x, dtype):
    return x if x.dtype == dtype else tf.cast(x, dtype)
