"""The starting step of step adaptation (Ott et al. 2021, Sec. 5).

Hairer, Norsett & Wanner (1993, Sec. II.4, p. 169) choose a first step from
the size of the state, of its derivative and of the derivative's change over
a trial Euler step. Step adaptation starts from the same heuristic, in a
batch variant without tolerance scaling:

```none
d0 = mean_b |y0_b|              (Euclidean norm over the last axis, mean
d1 = mean_b |f(y0)_b|            over the batch and every other axis)
h0 = 0.01 d0 / d1                (1e-6 if d0 < 1e-5 or d1 < 1e-5)
y1 = y0 + h0 f(y0)
d2 = mean_b |f(y1)_b - f(y0)_b| / h0
h1 = (0.01 / max(d1, d2))^(1/(p+1))   (max(1e-6, 1e-3 h0) if max(d1, d2)
                                       < 1e-15)
h  = min(100 h0, h1)
```

`tfnode.stepping.initial_step_size` is the other variant, used by adaptive
solves: one RMS norm over the whole state, scaled by `atol + rtol |y0|`.
"""

import numpy as np
import tensorflow as tf

__all__ = ["mean_norm", "step_adaptation_initial_step"]


def mean_norm(x):
    """Euclidean norm over the last axis, averaged over all other axes.

    Trailing axes of size 1 beyond the second are dropped first: a
    channels-last state `(batch, d, 1)` has the norms of the channels-first
    `(batch, 1, d)` of the reference implementation (norms over the `d`
    features, not absolute values).
    """
    x = np.asarray(x, dtype=np.float64)
    while x.ndim > 2 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim == 0:
        return float(abs(x))
    return float(np.mean(np.linalg.norm(x, axis=-1)))


def step_adaptation_initial_step(func, y0, order, t0=0.0, direction=1.0):
    """Hairer's initial step, batch variant of 'ResNet After All'.

    Args:
        func: The vector field, `func(t, y) -> dy/dt`.
        y0: A batch of initial states, `[batch, ..., features]`.
        order: Order `p` of the solver the step is for (1 for Euler).
        t0: Initial time. Default value: `0.0`.
        direction: +1 or -1, the direction of integration.

    Returns:
        h: The proposed step, a positive Python float.

    #### References

    [1]: Hairer, Norsett, Wanner. Solving Ordinary Differential Equations I.
         Springer, 1993. Section II.4, p. 169.
    [2]: Ott, Katiyar, Hennig, Tiemann. ResNet After All? Neural ODEs and
         Their Numerical Solution. ICLR, 2021.
    """
    if not order >= 1:
        raise ValueError(f"order must be >= 1; got {order!r}.")
    y0 = tf.convert_to_tensor(y0)
    f0 = tf.convert_to_tensor(func(tf.constant(t0, y0.dtype), y0))
    d0 = mean_norm(y0)
    d1 = mean_norm(f0)
    if d0 < 1e-5 or d1 < 1e-5:
        h0 = 1e-6
    else:
        h0 = 0.01 * d0 / d1
    step = tf.constant(direction * h0, y0.dtype)
    y1 = y0 + step * f0
    f1 = tf.convert_to_tensor(func(tf.constant(t0, y0.dtype) + step, y1))
    d2 = mean_norm(np.asarray(f1, np.float64) - np.asarray(f0, np.float64)) / h0
    dmax = max(d1, d2)
    if dmax < 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / dmax) ** (1.0 / (order + 1))
    return float(min(100.0 * h0, h1))
