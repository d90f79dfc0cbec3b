"""Counting function evaluations, forward and backward, as a Keras metric."""

import keras
import tensorflow as tf

__all__ = ["NFECounter"]


@keras.saving.register_keras_serializable(package="tfnode")
class NFECounter(keras.metrics.Metric):
    """Mean number of function evaluations per solve, forward and backward.

    Pass it to `odeint(..., nfe_counter=counter)`: the forward solve adds its
    NFE, and the gradient method adds the backward pass's NFE when gradients
    are taken. `ODEBlock` owns one, so both numbers appear in `model.fit`'s
    logs as `<block name>_nfe_forward` and `<block name>_nfe_backward`
    (means over the solves since the last reset, i.e. per epoch in `fit`).

    Args:
        name: Prefix of the two reported values.
    """

    def __init__(self, name="nfe", **kwargs):
        super().__init__(name=name, **kwargs)
        self.forward_total = self.add_variable(
            shape=(), initializer="zeros", name="forward_total"
        )
        self.forward_count = self.add_variable(
            shape=(), initializer="zeros", name="forward_count"
        )
        self.backward_total = self.add_variable(
            shape=(), initializer="zeros", name="backward_total"
        )
        self.backward_count = self.add_variable(
            shape=(), initializer="zeros", name="backward_count"
        )

    def update_forward(self, nfe):
        """Adds one forward solve of `nfe` evaluations."""
        self.forward_total.assign_add(tf.cast(nfe, self.dtype))
        self.forward_count.assign_add(tf.ones([], self.dtype))

    def update_backward(self, nfe):
        """Adds one backward pass of `nfe` evaluations."""
        self.backward_total.assign_add(tf.cast(nfe, self.dtype))
        self.backward_count.assign_add(tf.ones([], self.dtype))

    def add_backward_evaluations(self, nfe):
        """Adds `nfe` evaluations to the current backward pass (e.g. those
        of the gradients with respect to the times), without counting
        another pass."""
        self.backward_total.assign_add(tf.cast(nfe, self.dtype))

    def update_state(self, forward=None, backward=None):
        if forward is not None:
            self.update_forward(forward)
        if backward is not None:
            self.update_backward(backward)

    def result(self):
        return {
            f"{self.name}_forward": tf.math.divide_no_nan(
                self.forward_total.value, self.forward_count.value
            ),
            f"{self.name}_backward": tf.math.divide_no_nan(
                self.backward_total.value, self.backward_count.value
            ),
        }
