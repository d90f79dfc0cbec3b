"""Optimizers and learning-rate schedules of the reference runs.

Weight decay is *coupled* (an L2 penalty's gradient `weight_decay * w` added
to the gradient before momentum), as in `torch.optim.SGD(weight_decay=...)`,
which ANODE and Sander et al. train with. Keras' own `weight_decay` is
decoupled (AdamW-style), a different and, with momentum 0.9, about ten times
weaker regularisation.

```none
lr_schedule="constant"   lr throughout
lr_schedule="step"       lr * lr_decay_factor**k after the k-th epoch of
                         lr_decay_epochs (ANODE: 150,250 of 350; Sander et
                         al.: 30,60 of 90)
lr_schedule="cosine"     cosine decay from lr to 0 over the run
```
"""

import keras

__all__ = [
    "CoupledWeightDecayAdam",
    "CoupledWeightDecayRMSprop",
    "CoupledWeightDecaySGD",
    "learning_rate_schedule",
    "make_optimizer",
]


class _CoupledWeightDecay:
    """Adds `weight_decay * variable` to each gradient instead of decaying
    the variable after the update."""

    def _apply_weight_decay(self, variables):
        del variables  # Applied through the gradient in `update_step`.

    def update_step(self, gradient, variable, learning_rate):
        if self.weight_decay and self._use_weight_decay(variable):
            decay = keras.ops.cast(self.weight_decay, variable.dtype)
            gradient = keras.ops.add(
                keras.ops.cast(gradient, variable.dtype),
                keras.ops.multiply(decay, variable),
            )
        return super().update_step(gradient, variable, learning_rate)


@keras.saving.register_keras_serializable(package="tfnode")
class CoupledWeightDecaySGD(_CoupledWeightDecay, keras.optimizers.SGD):
    """`keras.optimizers.SGD` with PyTorch's (coupled) weight decay."""


@keras.saving.register_keras_serializable(package="tfnode")
class CoupledWeightDecayAdam(_CoupledWeightDecay, keras.optimizers.Adam):
    """`keras.optimizers.Adam` with PyTorch's (coupled) weight decay."""


@keras.saving.register_keras_serializable(package="tfnode")
class CoupledWeightDecayRMSprop(_CoupledWeightDecay, keras.optimizers.RMSprop):
    """`keras.optimizers.RMSprop` with PyTorch's (coupled) weight decay."""


def learning_rate_schedule(config, steps_per_epoch, total_steps):
    """The learning rate, a float or a `keras.optimizers.schedules` object
    keyed on the optimizer's step count (so it resumes with it)."""
    if config.lr_schedule == "constant":
        return float(config.lr)
    if config.lr_schedule == "step":
        boundaries = [int(e) * steps_per_epoch for e in config.lr_decay_epochs]
        values = [
            float(config.lr) * config.lr_decay_factor**k
            for k in range(len(boundaries) + 1)
        ]
        return keras.optimizers.schedules.PiecewiseConstantDecay(
            boundaries, values
        )
    if config.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            float(config.lr), decay_steps=max(int(total_steps), 1)
        )
    raise ValueError(
        f"Unknown lr_schedule={config.lr_schedule!r}; choose one of: "
        "constant, step, cosine."
    )


def make_optimizer(config, steps_per_epoch, total_steps):
    """The optimizer of a `TrainConfig`.

    PyTorch's defaults where the reference runs rely on them: SGD and
    RMSprop without momentum unless `momentum` is set, RMSprop with
    `rho=0.99` and `epsilon=1e-8`, Adam with `epsilon=1e-8`.

    Args:
        config: A `TrainConfig` (`optimizer`, `lr`, `lr_schedule`,
            `lr_decay_epochs`, `lr_decay_factor`, `momentum`, `nesterov`,
            `weight_decay`).
        steps_per_epoch: Optimizer steps per epoch.
        total_steps: Optimizer steps of the whole run.

    Returns:
        A `keras.optimizers.Optimizer`.
    """
    lr = learning_rate_schedule(config, steps_per_epoch, total_steps)
    decay = float(config.weight_decay) or None
    if config.optimizer == "sgd":
        cls = CoupledWeightDecaySGD if decay else keras.optimizers.SGD
        return cls(
            learning_rate=lr,
            momentum=float(config.momentum),
            nesterov=bool(config.nesterov),
            weight_decay=decay,
        )
    if config.optimizer == "adam":
        cls = CoupledWeightDecayAdam if decay else keras.optimizers.Adam
        return cls(learning_rate=lr, epsilon=1e-8, weight_decay=decay)
    if config.optimizer == "rmsprop":
        cls = CoupledWeightDecayRMSprop if decay else keras.optimizers.RMSprop
        return cls(
            learning_rate=lr,
            rho=0.99,
            momentum=float(config.momentum),
            epsilon=1e-8,
            weight_decay=decay,
        )
    raise ValueError(
        f"Unknown optimizer={config.optimizer!r}; choose one of: "
        "sgd, adam, rmsprop."
    )
