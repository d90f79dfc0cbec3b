"""ODE problems with closed-form solutions, for the tests."""

import numpy as np
import tensorflow as tf


def riccati(t, y):
    """`dy/dt = (y - t)**2 + 1`; nonlinear and time-dependent."""
    return (y - t) ** 2 + 1.0


def riccati_solution(t, y0):
    """`y(t) = t + y0 / (1 - y0 t)`, from `y(0) = y0`."""
    return t + y0 / (1.0 - y0 * t)


def riccati_grad_y0(t, y0):
    """`dy(t)/dy0 = 1 / (1 - y0 t)**2`."""
    return 1.0 / (1.0 - y0 * t) ** 2


def logistic(t, y):
    """`dy/dt = y (1 - y)`."""
    del t
    return y * (1.0 - y)


def logistic_solution(t, y0):
    """`y(t) = 1 / (1 + (1/y0 - 1) exp(-t))`."""
    return 1.0 / (1.0 + (1.0 / y0 - 1.0) * np.exp(-t))


def decay(t, y):
    """`dy/dt = -y`."""
    del t
    return -y


def linear_system(dim=5, seed=0, dtype=tf.float64):
    """A random stable linear system `dy/dt = A y`, returned as `A`."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(dim, dim)) / np.sqrt(dim) - np.eye(dim)
    return tf.constant(a, dtype)


def linear_solution(a, y0, t):
    """`expm(A t) y0` for a batch of row vectors `y0` of shape `[B, n]`."""
    return tf.matmul(y0, tf.linalg.expm(a * t), transpose_b=True)
