"""Gradients with respect to the times `t` of a solve, under every gradient
method.

The outputs `y(t_i)` of the exact solution depend on the times through

```none
d y(t_i) / d t_i = f(t_i, y(t_i))
d y(t_i) / d t_0 = -Phi(t_i, t_0) f(t_0, y_0)    (Phi: the flow's Jacobian)
```

so with `g_i` the gradient of the loss with respect to `y(t_i)` and `a_0`
its total gradient with respect to `y_0` through the later outputs,

```none
dL/dt_i = g_i . f(t_i, y_i)    (i >= 1),    dL/dt_0 = -a_0 . f(t_0, y_0)
```

(Chen et al. 2018, Appendix B). `a_0` is what the chosen gradient method
returns for `y_0`, so the same two identities serve `backprop`, `anode`,
`continuous` and `reversible`: an identity on `y_0` whose gradient with
respect to `t_0` is `-a_0 . f(t_0, y_0)`, and an identity on the outputs
whose gradient with respect to `t_i` is `g_i . f(t_i, y_i)`. They are
evaluated at the computed states, so they are exact up to the solver's
error, and cost one evaluation of `f` per output time whose gradient is
nonzero, made in the backward pass and counted there.

#### References

[1]: Chen, Rubanova, Bettencourt, Duvenaud. Neural Ordinary Differential
     Equations. NeurIPS, 2018.
"""

import keras
import tensorflow as tf
from tensorflow.python.eager import record

from tfnode.adjoints.base import dot

__all__ = ["wanted", "with_time_gradients"]


def wanted(t):
    """Whether a gradient with respect to `t` can be asked for.

    Eagerly, when a tape watches `t`; in a graph, when `t` is not a constant
    (times given as Python numbers never pay for the extra evaluations).
    """
    if tf.executing_eagerly():
        return record.should_record_backprop([t])
    return tf.get_static_value(t) is None


def _field_at(field, t_i, y_i):
    """`f(t_i, y_i)` without recording, and without committing Keras state
    updates (BatchNormalization statistics) a second time."""
    with keras.StatelessScope():
        return [tf.stop_gradient(d) for d in field(t_i, y_i)]


def _count(nfe_counter, nfe):
    if nfe_counter is not None:
        nfe_counter.add_backward_evaluations(nfe)


def _start(field, t, y0, nfe_counter):
    """`y0`, with `dL/dt_0 = -a_0 . f(t_0, y_0)`."""

    @tf.custom_gradient
    def start(t, *y0):
        def grad(*a0):
            f0 = _field_at(field, t[0], list(y0))
            _count(nfe_counter, 1)
            d_t0 = -dot(list(a0), f0)
            d_t = tf.tensor_scatter_nd_update(
                tf.zeros_like(t), [[0]], [tf.cast(d_t0, t.dtype)]
            )
            return [d_t, *a0]

        return list(y0), grad

    return list(start(t, *y0))


def _outputs(field, t, ys, nfe_counter):
    """`ys`, with `dL/dt_i = g_i . f(t_i, y_i)`."""

    @tf.custom_gradient
    def outputs(t, *ys):
        def grad(*g):
            def body(i, d_t, nfe):
                g_i = [x[i] for x in g]
                nonzero = tf.reduce_any([tf.reduce_any(x != 0) for x in g_i])

                def derivative():
                    f_i = _field_at(field, t[i], [y[i] for y in ys])
                    return tf.cast(dot(g_i, f_i), t.dtype), nfe + 1

                d_i, nfe = tf.cond(
                    nonzero, derivative, lambda: (tf.zeros([], t.dtype), nfe)
                )
                return i + 1, d_t.write(i, d_i), nfe

            num_times = tf.shape(t)[0]
            _, d_t, nfe = tf.while_loop(
                lambda i, *_: i < num_times,
                body,
                (
                    tf.constant(0, tf.int32),
                    tf.TensorArray(t.dtype, size=num_times),
                    tf.constant(0, tf.int32),
                ),
            )
            _count(nfe_counter, nfe)
            return [d_t.stack(), *g]

        return list(ys), grad

    return list(outputs(t, *ys))


def with_time_gradients(field, t, y0, solve, nfe_counter=None):
    """Runs `solve(y0) -> (ys, stats)` so that `ys` has gradients with
    respect to `t`.

    Args:
        field: `field(t, y) -> dy/dt` on flat states.
        t: The output times (a tensor the loss may be differentiated by).
        y0: The flat initial state.
        solve: The solve under the chosen gradient method, taking the flat
            initial state; it sees the times without gradient.
        nfe_counter: Receives the backward evaluations made here.

    Returns:
        `(ys, stats)` of `solve`.
    """
    ys, stats = solve(_start(field, t, y0, nfe_counter))
    return _outputs(field, t, ys, nfe_counter), stats
