"""`defines`: the one way a flag group is defined, once per `FlagValues`."""

import functools

from absl import flags as absl_flags

__all__ = ["defines"]


def defines(names):
    """Decorates `define(flag_values)`, which defines the flags `names`.

    The decorated function takes `flag_values` (default `absl.flags.FLAGS`),
    defines the flags there unless they already are (so tests and
    `train.py` may both call it), and returns their names, a list.
    """

    def decorate(define):
        @functools.wraps(define)
        def define_once(flag_values=absl_flags.FLAGS):
            if names[0] not in flag_values:
                define(flag_values)
            return list(names)

        return define_once

    return decorate
