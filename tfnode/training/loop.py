"""`TrainingLoop`: distributed training of a classifier, driving Keras
callbacks.

The loop is `model.fit` reduced to what a run needs, written on
`tf.distribute` directly so it behaves the same under every strategy
(Keras 3's `fit` fails under `MultiWorkerMirroredStrategy`:
keras-team/keras#20585). Each step runs on every replica with
`strategy.run`; the loss is the cross-entropy averaged over the *global*
batch, so the all-reduced gradients equal a single device's. Keras
callbacks (progress bar, NaN guard, step adaptation, checkpoints) get the
usual calls and logs:

```none
loss, accuracy                        training means over the epoch so far
<block>_nfe_forward, _nfe_backward    per-solve NFE means of each ODEBlock
val_loss, val_accuracy, val_<block>_nfe_forward   on the test set
```

ODE solve settings are fixed when a step is traced; when a callback changes
them (`tfnode.set_solver`, step adaptation), the step is traced again.
"""

import math

import keras
import tensorflow as tf

from tfnode.layers import ode_blocks

__all__ = ["TrainingLoop"]


def _settings_key(blocks):
    """Retracing key: the blocks' `SolveSettings` values (hashable)."""
    return tuple(block.settings for block in blocks)


class TrainingLoop:
    """Trains and tests a Keras classifier (integer labels, logits out)
    under a `tf.distribute` strategy.

    Args:
        model: The Keras model, built in `strategy`'s scope.
        optimizer: A built Keras optimizer, created in the same scope.
        strategy: The `tf.distribute.Strategy`.
        global_batch_size: Examples per training step over all replicas.
        jit_compile: Compile each replica's step with XLA.
    """

    def __init__(
        self, model, optimizer, strategy, global_batch_size, jit_compile=False
    ):
        self.model = model
        self.optimizer = optimizer
        self.strategy = strategy
        self.global_batch_size = int(global_batch_size)
        self.jit_compile = bool(jit_compile)
        self.blocks = ode_blocks(model)
        with strategy.scope():
            self.loss = keras.losses.SparseCategoricalCrossentropy(
                from_logits=True, reduction=None
            )
            self.train_metrics = (
                keras.metrics.Mean(name="loss"),
                keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            )
            self.test_metrics = (
                keras.metrics.Mean(name="loss"),
                keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            )
        self._key = None
        self._train_step = None
        self._test_step = None
        self._test_steps = {}

    # ------------------------------------------------------------- steps

    def _trace(self):
        model, loss_fn, optimizer = self.model, self.loss, self.optimizer
        strategy = self.strategy
        train_loss, train_accuracy = self.train_metrics
        test_loss, test_accuracy = self.test_metrics
        batch = self.global_batch_size

        def replica_train(x, y):
            with tf.GradientTape() as tape:
                logits = model(x, training=True)
                per_example = loss_fn(y, logits)
                loss = tf.nn.compute_average_loss(
                    per_example, global_batch_size=batch
                )
                if model.losses:
                    loss += tf.nn.scale_regularization_loss(
                        tf.add_n(model.losses)
                    )
            variables = model.trainable_variables
            gradients = tape.gradient(loss, variables)
            optimizer.apply_gradients(zip(gradients, variables, strict=True))
            train_loss.update_state(per_example)
            train_accuracy.update_state(y, logits)

        def replica_test(x, y):
            logits = model(x, training=False)
            test_loss.update_state(loss_fn(y, logits))
            test_accuracy.update_state(y, logits)

        replica_train = tf.function(replica_train, jit_compile=self.jit_compile)

        @tf.function
        def train_step(iterator):
            strategy.run(replica_train, args=next(iterator))
            # The logs come back with the step: one call per step, no
            # eager metric reads in between.
            return self._log_tensors(self.train_metrics)

        def test_step(batch):
            strategy.run(replica_test, args=batch)

        self._train_step, self._test_step = train_step, test_step
        self._test_steps = {}

    def _steps(self):
        key = _settings_key(self.blocks)
        if key != self._key:
            self._trace()
            self._key = key
        return self._train_step, self._test_step

    def _test_step_for(self, distributed_dataset):
        """The test step, traced once for every batch of the dataset (the
        last, shorter batch included) through its element spec."""
        _, test_step = self._steps()
        spec = distributed_dataset.element_spec
        try:
            key = hash(spec)
        except TypeError:  # an unhashable spec: retrace on new shapes
            key = None
        if key not in self._test_steps:
            if key is None:
                step = tf.function(test_step, reduce_retracing=True)
            else:
                step = tf.function(test_step, input_signature=[spec])
            self._test_steps[key] = step
        return self._test_steps[key]

    # ----------------------------------------------------------- metrics

    def _log_tensors(self, metrics, prefix="", backward=True):
        """`{name: scalar tensor}` of `metrics` and the blocks' NFE."""
        logs = {f"{prefix}{m.name}": m.result() for m in metrics}
        for block in self.blocks:
            if not block.track_nfe:
                continue
            for key, value in block.nfe_counter.result().items():
                if backward or not key.endswith("_backward"):
                    logs[f"{prefix}{key}"] = value
        return logs

    def _logs(self, metrics, prefix="", backward=True):
        return {
            key: float(value)
            for key, value in self._log_tensors(
                metrics, prefix, backward
            ).items()
        }

    def _reset(self, metrics):
        for metric in metrics:
            metric.reset_state()
        for block in self.blocks:
            block.nfe_counter.reset_state()

    # -------------------------------------------------------------- loops

    def evaluate(self, dataset):
        """Tests on `dataset` (global batches); returns `val_`-prefixed
        logs."""
        self._reset(self.test_metrics)
        batches = self.strategy.experimental_distribute_dataset(dataset)
        test_step = self._test_step_for(batches)
        for batch in batches:
            test_step(batch)
        return self._logs(self.test_metrics, prefix="val_", backward=False)

    def fit(
        self,
        train_dataset,
        *,
        epochs,
        steps_per_epoch,
        test_dataset,
        initial_epoch=0,
        callbacks=(),
        verbose=1,
    ):
        """Trains epochs `initial_epoch` to `epochs - 1`, testing after each.

        Args:
            train_dataset: A `tf.data.Dataset` of global training batches,
                at least `steps_per_epoch` per remaining epoch.
            epochs: The epoch to stop at (as in `model.fit`).
            steps_per_epoch: Training steps per epoch.
            test_dataset: A `tf.data.Dataset` of global test batches.
            initial_epoch: The epoch to start at.
            callbacks: Keras callbacks; one may stop training by setting
                `model.stop_training`.
            verbose: 0 silent, 1 progress bar, 2 one line per epoch.

        Returns:
            The logs of the last epoch.
        """
        model = self.model
        callback_list = keras.callbacks.CallbackList(
            list(callbacks),
            add_progbar=verbose != 0,
            model=model,
            verbose=verbose,
            epochs=epochs,
            steps=steps_per_epoch,
        )
        iterator = iter(
            self.strategy.experimental_distribute_dataset(train_dataset)
        )
        model.stop_training = False
        logs = {}
        callback_list.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            self._reset(self.train_metrics)
            callback_list.on_epoch_begin(epoch)
            for step in range(steps_per_epoch):
                callback_list.on_train_batch_begin(step)
                train_step, _ = self._steps()
                logs = {
                    key: float(value)
                    for key, value in train_step(iterator).items()
                }
                callback_list.on_train_batch_end(step, logs)
                if model.stop_training:
                    break
            logs = dict(logs)
            if math.isfinite(logs.get("loss", 0.0)):
                logs.update(self.evaluate(test_dataset))
            callback_list.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
        callback_list.on_train_end(logs)
        return logs
