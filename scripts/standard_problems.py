"""The standard benchmark problems of tfnode, and hand-written references.

```none
mlp   state 256 x 32           Dense(64, tanh) -> Dense(32)
conv  state 32 x 16 x 16 x 32  Conv3x3(32) -> GroupNorm(8) -> ReLU
                               -> Conv3x3(32) -> GroupNorm(8)
```

A training step solves over t in [0, 1], takes loss = mean(y(1)^2),
differentiates it and applies one SGD update. The conv field's GroupNorm is
`tfnode.layers.GroupNormalization` (what tfnode's fields use; its native
kernels on CPU), the same with its XLA-compiled passes with
`group_norm="tfnode_xla"`, Keras' with `group_norm="keras"`, or left out
with `group_norm="none"` (what the normalisation costs); its convolutions
are `tfnode.layers.Conv2D` (Keras' layer, computed on patches inside XLA
loops).
"""

# tfnode first: TensorFlow then loads with oneDNN (`tfnode._onednn`).
import tfnode

# isort: split
import keras
import tensorflow as tf

PROBLEMS = ("mlp", "conv")


def _no_group_norm(groups):
    """An identity layer where the conv field's GroupNorm would be."""
    del groups
    return keras.layers.Identity()


class _XlaGroupNormalization(tfnode.layers.GroupNormalization):
    """tfnode's GroupNorm with its XLA-compiled passes, not the native
    kernels `"auto"` picks on CPU."""

    implementation = "xla"


GROUP_NORMS = {
    "tfnode": tfnode.layers.GroupNormalization,
    "tfnode_xla": _XlaGroupNormalization,
    "keras": keras.layers.GroupNormalization,
    "none": _no_group_norm,
}


def make_problem(name, seed=0, group_norm="tfnode"):
    """Returns `(field, y0)`: a built Keras vector field and a state.

    Args:
        name: One of `PROBLEMS`.
        seed: Seed of the weights and the state.
        group_norm: The conv field's GroupNorm layer: `"tfnode"`,
            `"tfnode_xla"`, `"keras"`, or `"none"` to leave it out.
    """
    if group_norm not in GROUP_NORMS:
        raise ValueError(
            f"Unknown group_norm={group_norm!r}; choose from "
            f"{sorted(GROUP_NORMS)}."
        )
    norm = GROUP_NORMS[group_norm]
    keras.utils.set_random_seed(seed)
    if name == "mlp":
        field = keras.Sequential(
            [keras.layers.Dense(64, activation="tanh"), keras.layers.Dense(32)]
        )
        shape = (256, 32)
    elif name == "conv":
        field = keras.Sequential(
            [
                tfnode.layers.Conv2D(32, 3, padding="same"),
                norm(8),
                keras.layers.ReLU(),
                tfnode.layers.Conv2D(32, 3, padding="same"),
                norm(8),
            ]
        )
        shape = (32, 16, 16, 32)
    else:
        raise ValueError(f"Unknown problem {name!r}; choose from {PROBLEMS}.")
    field.build((None, *shape[1:]))
    y0 = tf.random.stateless_normal(shape, [seed, 1])
    return field, y0


def hand_written_solve(field, y0, solver, steps):
    """The same fixed-step solve on [0, 1], written out in plain TF.

    The floor `odeint` is measured against: one `tf.while_loop`, the step
    formula typed in by hand.
    """
    h = 1.0 / steps

    def euler(t, y):
        return y + h * field(y)

    def midpoint(t, y):
        return y + h * field(y + 0.5 * h * field(y))

    def heun(t, y):
        k1 = field(y)
        k2 = field(y + h * k1)
        return y + 0.5 * h * (k1 + k2)

    def rk4(t, y):
        k1 = field(y)
        k2 = field(y + 0.5 * h * k1)
        k3 = field(y + 0.5 * h * k2)
        k4 = field(y + h * k3)
        return y + h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)

    step = {"euler": euler, "midpoint": midpoint, "heun": heun, "rk4": rk4}[
        solver
    ]
    _, y = tf.while_loop(
        lambda n, y: n < steps,
        lambda n, y: (n + 1, step(tf.cast(n, y.dtype) * h, y)),
        (tf.constant(0), y0),
        maximum_iterations=steps,
    )
    return y
