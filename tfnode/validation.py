"""Checks of user-given settings, with errors naming the argument.

Every public entry point (`SolveSettings`, the gradient methods, the layers,
the training configuration) validates through these, so the messages read
alike: the argument, what it must be, and what it got.
"""

import numbers

__all__ = [
    "at_least",
    "choice",
    "in_interval",
    "non_negative_float",
    "positive_float",
    "positive_int",
]


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def positive_int(name, value):
    """Returns `value` as an int, or raises `ValueError` unless an int >= 1."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < 1
    ):
        raise ValueError(f"{name} must be an int >= 1; got {value!r}.")
    return int(value)


def positive_float(name, value):
    """Returns `value` as a float, or raises `ValueError` unless > 0."""
    if not _is_real(value) or not value > 0:
        raise ValueError(f"{name} must be a number > 0; got {value!r}.")
    return float(value)


def non_negative_float(name, value):
    """Returns `value` as a float, or raises `ValueError` unless >= 0."""
    if not _is_real(value) or not value >= 0:
        raise ValueError(f"{name} must be >= 0; got {value!r}.")
    return float(value)


def at_least(name, value, lower):
    """Returns `value` as a float, or raises `ValueError` unless >= lower."""
    if not _is_real(value) or not value >= lower:
        raise ValueError(f"{name} must be >= {lower}; got {value!r}.")
    return float(value)


def in_interval(name, value, lower, upper):
    """Returns `value` as a float, or raises `ValueError` unless it lies in
    the half-open interval `(lower, upper]`."""
    if not _is_real(value) or not lower < value <= upper:
        raise ValueError(
            f"{name} must be in ({lower}, {upper}]; got {value!r}."
        )
    return float(value)


def choice(name, value, allowed):
    """Returns `value`, or raises `ValueError` unless it is one of
    `allowed` (any iterable of names)."""
    allowed = sorted(allowed)
    if value not in allowed:
        raise ValueError(
            f"{name} must be one of {', '.join(map(repr, allowed))}; got "
            f"{value!r}."
        )
    return value
