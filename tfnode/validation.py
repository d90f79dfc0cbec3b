"""Checks of user-given settings, with errors naming the argument.

Every public entry point (`SolveSettings`, the gradient methods, the layers,
the training configuration) validates through these, so the messages read
alike: the argument, what it must be, and what it got.
"""

import math
import numbers

__all__ = [
    "at_least",
    "choice",
    "in_interval",
    "non_negative_float",
    "non_negative_int",
    "positive_float",
    "positive_int",
]


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def positive_int(name, value):
    """Returns `value` as an int, or raises `ValueError` unless an int >= 1."""
    if not _is_int(value) or value < 1:
        raise ValueError(f"{name} must be an int >= 1; got {value!r}.")
    return int(value)


def non_negative_int(name, value):
    """Returns `value` as an int, or raises `ValueError` unless an int >= 0."""
    if not _is_int(value) or value < 0:
        raise ValueError(f"{name} must be an int >= 0; got {value!r}.")
    return int(value)


def positive_float(name, value, finite=True):
    """Returns `value` as a float, or raises `ValueError` unless > 0 (and
    finite, unless `finite=False`: an infinite tolerance or step would
    silently switch error control off)."""
    if not _is_real(value) or not value > 0:
        raise ValueError(f"{name} must be a number > 0; got {value!r}.")
    if finite and math.isinf(value):
        raise ValueError(
            f"{name} must be a finite number > 0; got {value!r}."
        )
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


# Which ends an interval holds: `closed` of `in_interval`.
_BRACKETS = {
    "both": ("[", "]"),
    "left": ("[", ")"),
    "right": ("(", "]"),
    "neither": ("(", ")"),
}


def in_interval(name, value, lower, upper, closed="right"):
    """Returns `value` as a float, or raises `ValueError` unless it lies in
    the interval from `lower` to `upper`.

    Args:
        name: The argument's name, for the message.
        value: The value to check: a real number (not a bool).
        lower: The lower end.
        upper: The upper end.
        closed: Which ends belong to the interval: `"right"` for
            `(lower, upper]`, `"left"` for `[lower, upper)`, `"both"` for
            `[lower, upper]`, `"neither"` for `(lower, upper)`.
            Default value: `"right"`.

    Raises:
        ValueError: naming `name`, the interval and `value`, e.g.
            `momentum must be in [0, 1); got 1.`
    """
    if closed not in _BRACKETS:
        raise ValueError(
            f"closed must be one of {', '.join(map(repr, _BRACKETS))}; got "
            f"{closed!r}."
        )
    left, right = _BRACKETS[closed]
    inside = _is_real(value) and (
        (lower <= value if left == "[" else lower < value)
        and (value <= upper if right == "]" else value < upper)
    )
    if not inside:
        raise ValueError(
            f"{name} must be in {left}{lower}, {upper}{right}; got {value!r}."
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
