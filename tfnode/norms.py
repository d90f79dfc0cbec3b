"""Error norms for adaptive step-size control.

A norm maps the scaled local error, a flat list of tensors
`error / (atol + rtol * max(|y0|, |y1|))`, to a non-negative scalar; a step is
accepted when that scalar is at most 1.
"""

import tensorflow as tf

__all__ = ["max_norm", "rms_norm"]


def rms_norm(scaled_errors):
    """Root mean square over every element of every leaf (the default)."""
    total = tf.add_n([tf.reduce_sum(tf.square(e)) for e in scaled_errors])
    count = sum(tf.cast(tf.size(e), total.dtype) for e in scaled_errors)
    return tf.sqrt(total / count)


def max_norm(scaled_errors):
    """Largest absolute value over every element of every leaf."""
    return tf.reduce_max(
        tf.stack([tf.reduce_max(tf.abs(e)) for e in scaled_errors])
    )
