"""Checks of user-given settings, with errors naming the argument."""

import numbers

__all__ = ["positive_float", "positive_int"]


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
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not value > 0
    ):
        raise ValueError(f"{name} must be a number > 0; got {value!r}.")
    return float(value)
