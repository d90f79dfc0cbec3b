"""Step-size control of adaptive solves: the error measure, the first step
and the controller that accepts or rejects each step and proposes the next.

Step-size control follows Hairer, Norsett & Wanner (1993), Sec. II.4: the
scaled error `ratio = norm(err / (atol + rtol * max(|y0|, |y1|)))` accepts a
step when `ratio <= 1`. The controller is not differentiated: the accepted
steps are constants of the discrete forward map.
"""

import tensorflow as tf

__all__ = ["IntegralController", "initial_step_size", "scaled_error_ratio"]


def scaled_error_ratio(error, y0, y1, settings):
    """`norm(error / (atol + rtol * max(|y0|, |y1|)))`, not differentiated."""
    scaled = []
    for e, a, b in zip(error, y0, y1, strict=True):
        tol = settings.atol + settings.rtol * tf.maximum(tf.abs(a), tf.abs(b))
        scaled.append(tf.stop_gradient(e) / tol)
    return settings.norm(scaled)


def initial_step_size(func, t0, y0, f0, direction, order, settings):
    """Hairer's initial step-size selection (Hairer et al. 1993, p. 169).

    Args:
        func: `func(t, y)` on flattened states.
        t0: Initial time.
        y0: Flattened initial state.
        f0: `func(t0, y0)`.
        direction: +1 or -1 (tensor of the time dtype).
        order: The error order `q` of the method.
        settings: `SolveSettings` (rtol, atol and norm are used).

    Returns:
        h: The proposed magnitude of the first step.
        num_evals: Calls of `func` made (1).
    """
    dtype = t0.dtype
    norm = settings.norm
    y0 = [tf.stop_gradient(y) for y in y0]
    f0 = [tf.stop_gradient(f) for f in f0]
    scale = [settings.atol + tf.abs(y) * settings.rtol for y in y0]
    d0 = norm([y / s for y, s in zip(y0, scale, strict=True)])
    d1 = norm([f / s for f, s in zip(f0, scale, strict=True)])
    small = (d0 < 1e-5) | (d1 < 1e-5)
    h0 = tf.where(small, tf.constant(1e-6, dtype), 0.01 * d0 / d1)
    y1 = [y + direction * h0 * f for y, f in zip(y0, f0, strict=True)]
    f1 = [tf.stop_gradient(f) for f in func(t0 + direction * h0, y1)]
    d2 = norm([(b - a) / s for a, b, s in zip(f0, f1, scale, strict=True)])
    d2 = d2 / h0
    dmax = tf.maximum(d1, d2)
    h1 = tf.where(
        dmax <= 1e-15,
        tf.maximum(tf.constant(1e-6, dtype), h0 * 1e-3),
        (0.01 / dmax) ** (1.0 / (order + 1)),
    )
    return tf.minimum(100 * h0, h1), 1


class IntegralController:
    """The elementary (integral) controller of Hairer et al. (1993), II.4.

    A step is accepted when its scaled error `ratio <= 1` (or it is already
    at `min_step`); the next step is
    `h * clip(safety * ratio**(-1/(q+1)), dfactor, ifactor)`, clipped to
    `[min_step, max_step]`. A step shortened to land on an output time does
    not shrink the next one.

    Args:
        settings: `SolveSettings` (`safety`, `ifactor`, `dfactor`,
            `min_step`, `max_step`).
        error_order: The order `q` of the method's error estimate.
        dtype: The time dtype.
    """

    def __init__(self, settings, error_order, dtype):
        self.settings = settings
        self.exponent = -1.0 / (error_order + 1)
        self.ifactor = tf.constant(settings.ifactor, dtype)
        self.dfactor = tf.constant(settings.dfactor, dtype)
        self.one = tf.constant(1.0, dtype)

    def propose(self, ratio, h_taken, h_planned, landed, direction):
        """Decides on a step and proposes the next one.

        Args:
            ratio: The step's scaled error.
            h_taken: The signed size of the step taken.
            h_planned: The size proposed before it was shortened to land on
                an output time.
            landed: Whether the step was shortened to land on an output time.
            direction: +1 or -1.

        Returns:
            accept: Whether to accept the step (bool tensor).
            h_next: The signed size of the next step.
        """
        s = self.settings
        finite = tf.math.is_finite(ratio)
        accept = finite & ((ratio <= 1.0) | (tf.abs(h_taken) <= s.min_step))
        safe_ratio = tf.where(finite & (ratio > 0), ratio, self.one)
        factor = s.safety * safe_ratio**self.exponent
        factor = tf.where(ratio == 0, self.ifactor, factor)
        factor = tf.clip_by_value(factor, self.dfactor, self.ifactor)
        factor = tf.where(finite, factor, self.dfactor)
        h_next = tf.abs(h_taken) * factor
        h_next = tf.where(
            accept & landed, tf.maximum(h_next, tf.abs(h_planned)), h_next
        )
        h_next = direction * tf.clip_by_value(h_next, s.min_step, s.max_step)
        return accept, h_next
