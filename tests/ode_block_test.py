"""`ODEBlock`: Keras integration, serialization, gradient methods in `fit`,
BatchNormalization policy and MirroredStrategy."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import tensorflow as tf

import tfnode
from tests import test_util

_METHODS = (
    ("backprop", {"adjoint": "backprop", "solver": "rk4", "steps": 2}),
    ("anode", {"adjoint": "anode", "solver": "rk4", "steps": 2}),
    (
        "anode_revolve",
        {"adjoint": "anode", "solver": "euler", "steps": 4, "checkpoints": 2},
    ),
    ("continuous", {"adjoint": "continuous", "solver": "dopri5", "tol": 1e-3}),
    (
        "continuous_seminorm",
        {
            "adjoint": "continuous",
            "solver": "bosh3",
            "tol": 1e-3,
            "seminorm": True,
        },
    ),
    ("reversible", {"adjoint": "reversible", "solver": "heun", "steps": 3}),
)


@keras.saving.register_keras_serializable(package="tfnode_tests")
class TimeField(keras.layers.Layer):
    """`f(t, y) = tanh(W y) + t b`, a non-autonomous field."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.dense = keras.layers.Dense(units, activation="tanh")

    def build(self, input_shape):
        self.dense.build(input_shape)
        self.b = self.add_weight(shape=(self.units,), initializer="ones")

    def call(self, t, y):
        return self.dense(y) + t * self.b

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def _model(**ode_kwargs):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    x = keras.layers.Dense(4)(inputs)
    x = tfnode.ODEBlock(TimeField(4), name="ode", **ode_kwargs)(x)
    outputs = keras.layers.Dense(3)(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        keras.optimizers.SGD(0.1),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + (x[:, 1] > 0).astype("int32")
    return x, y


class ODEBlockTest(test_util.TestCase):
    def test_output_shapes(self):
        block = tfnode.ODEBlock(keras.layers.Dense(3), solver="rk4", steps=2)
        self.assertEqual(block(tf.ones([5, 3])).shape, (5, 3))
        block = tfnode.ODEBlock(
            keras.layers.Dense(3),
            solver="rk4",
            steps=2,
            output_times=[0.5, 1.0],
        )
        out = block(tf.ones([5, 3]))
        self.assertEqual(out.shape, (5, 2, 3))
        self.assertAllClose(
            out[:, 1], block.func(tf.ones([5, 3])) * 0 + out[:, 1]
        )

    def test_matches_odeint(self):
        field = TimeField(3)
        block = tfnode.ODEBlock(
            field, t0=0.0, t1=2.0, solver="dopri5", tol=1e-6
        )
        y0 = tf.random.stateless_normal([2, 3], [0, 1])
        expected = tfnode.odeint(field, y0, [0.0, 2.0], tol=1e-6)[-1]
        self.assertAllClose(block(y0), expected)

    def test_config_round_trip(self):
        block = tfnode.ODEBlock(
            TimeField(4),
            t0=0.0,
            t1=0.5,
            solver="rk2",
            steps=3,
            adjoint="anode",
            checkpoints=2,
            output_times=[0.25, 0.5],
        )
        config = block.get_config()
        clone = tfnode.ODEBlock.from_config(json.loads(json.dumps(config)))
        self.assertEqual(clone.get_config(), config)
        self.assertEqual(clone.settings.solver_name, "midpoint")
        self.assertEqual(
            clone.settings.adjoint, tfnode.adjoints.Anode(checkpoints=2)
        )
        self.assertEqual(clone.settings, block.settings)
        revived = keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(block)
        )
        self.assertEqual(revived.get_config(), config)

    def test_config_of_earlier_versions_loads(self):
        # Before SolveSettings, the config held the shorthand flat.
        config = tfnode.ODEBlock(TimeField(4)).get_config()
        del config["settings"]
        config.update(
            solver="rk2", steps=3, rtol=None, atol=None, tol=None,
            step_size=None, adjoint="anode", checkpoints=2,
        )
        block = tfnode.ODEBlock.from_config(config)
        self.assertEqual(
            block.settings,
            tfnode.SolveSettings(
                solver="midpoint",
                steps=3,
                adjoint=tfnode.adjoints.Anode(checkpoints=2),
            ),
        )

    def test_settings_value_and_shorthand_agree(self):
        settings = tfnode.SolveSettings(solver="rk4", steps=3, adjoint="anode")
        by_value = tfnode.ODEBlock(TimeField(4), settings=settings)
        by_keywords = tfnode.ODEBlock(
            TimeField(4), solver="rk4", steps=3, adjoint="anode"
        )
        self.assertEqual(by_value.settings, by_keywords.settings)
        replaced = tfnode.ODEBlock(TimeField(4), settings=settings, steps=5)
        self.assertEqual(replaced.settings.steps, 5)
        self.assertEqual(replaced.settings.adjoint.name, "anode")

    def test_keras_file_round_trip(self):
        model = _model(solver="rk4", steps=2, adjoint="anode")
        x, y = _data()
        model.fit(x, y, epochs=1, batch_size=16, verbose=0)
        path = os.path.join(self.get_temp_dir(), "model.keras")
        model.save(path)
        loaded = keras.models.load_model(path)
        self.assertAllClose(
            loaded.predict(x, verbose=0), model.predict(x, verbose=0)
        )
        self.assertEqual(loaded.get_layer("ode").settings.adjoint.name, "anode")

    @test_util.parameterized.named_parameters(*_METHODS)
    def test_fit_with_every_gradient_method(self, kwargs):
        model = _model(**kwargs)
        x, y = _data()
        before = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
        history = model.fit(x, y, epochs=3, batch_size=32, verbose=0)
        after = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
        self.assertLess(after, before)
        logs = history.history
        self.assertGreater(logs["ode_nfe_forward"][-1], 0)
        self.assertGreater(logs["ode_nfe_backward"][-1], 0)

    def test_set_solver_after_training(self):
        model = _model(solver="euler", steps=1)
        x, y = _data()
        model.fit(x, y, epochs=1, verbose=0)
        coarse = model.predict(x, verbose=0)
        blocks = tfnode.set_solver(model, solver="dopri5", steps=None, tol=1e-6)
        self.assertLen(blocks, 1)
        fine = model.predict(x, verbose=0)
        self.assertGreater(np.max(np.abs(fine - coarse)), 1e-4)
        result = model.evaluate(x, y, verbose=0, return_dict=True)
        self.assertGreater(result["ode_nfe_forward"], 6)
        with self.assertRaisesRegex(ValueError, "solver='nope'"):
            tfnode.set_solver(model, solver="nope")

    def test_non_layer_field_is_rejected(self):
        with self.assertRaisesRegex(TypeError, "func must be a Keras layer"):
            tfnode.ODEBlock(lambda t, y: y)


class BatchNormFieldTest(test_util.TestCase):
    def _field(self):
        keras.utils.set_random_seed(3)
        field = keras.Sequential(
            [
                keras.layers.Conv2D(4, 3, padding="same"),
                keras.layers.BatchNormalization(momentum=0.5),
                keras.layers.ReLU(),
            ]
        )
        field.build((None, 6, 6, 4))
        return field

    def _step(self, adjoint):
        field = self._field()
        block = tfnode.ODEBlock(field, solver="rk4", steps=2, adjoint=adjoint)
        x = tf.random.stateless_normal([4, 6, 6, 4], [1, 2])
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(block(x, training=True) ** 2)
        grads = tape.gradient(loss, field.trainable_variables)
        bn = field.layers[1]
        return grads, [bn.moving_mean.numpy(), bn.moving_variance.numpy()]

    def test_anode_gradient_and_moving_statistics_equal_backprop(self):
        ref_grads, ref_stats = self._step("backprop")
        grads, stats = self._step("anode")
        self.assertAllCloseRelative(grads, ref_grads, 1e-5)
        # The recompute in the backward pass leaves the statistics alone:
        # they moved once per forward evaluation, exactly as under backprop.
        self.assertAllClose(stats, ref_stats)
        self.assertNotAllClose(stats[0], np.zeros_like(stats[0]))


_MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import tfnode

    class Field(keras.layers.Layer):
        def build(self, shape):
            self.dense = keras.layers.Dense(4, activation="tanh")
            self.dense.build(shape)
        def call(self, y):
            return self.dense(y)

    def losses(strategy, adjoint):
        with strategy.scope():
            keras.utils.set_random_seed(0)
            inputs = keras.Input((4,))
            x = tfnode.ODEBlock(Field(), solver="heun", steps=2,
                                adjoint=adjoint, name="ode")(inputs)
            model = keras.Model(inputs, keras.layers.Dense(2)(x))
            model.compile(keras.optimizers.SGD(0.1),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        rng = np.random.default_rng(0)
        x = rng.normal(size=(64, 4)).astype("float32")
        y = (x[:, 0] > 0).astype("int32")
        history = model.fit(x, y, epochs=3, batch_size=16, shuffle=False,
                            verbose=0)
        return history.history["loss"], history.history["ode_nfe_backward"]

    out = {}
    for adjoint in sys.argv[1:]:
        one = losses(tf.distribute.OneDeviceStrategy("/cpu:0"), adjoint)
        two = losses(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]),
                     adjoint)
        out[adjoint] = {"one": one, "two": two}
    print("RESULT" + json.dumps(out))
    """
)


class MirroredStrategyTest(test_util.TestCase):
    def test_two_replicas_give_the_single_device_loss(self):
        adjoints = ["backprop", "anode", "continuous", "reversible"]
        proc = subprocess.run(
            [sys.executable, "-c", _MIRRORED_SCRIPT, *adjoints],
            capture_output=True,
            text=True,
            timeout=600,
        )
        lines = [
            line
            for line in proc.stdout.splitlines()
            if line.startswith("RESULT")
        ]
        self.assertTrue(lines, proc.stderr[-3000:])
        results = json.loads(lines[0][len("RESULT") :])
        for adjoint in adjoints:
            one, two = results[adjoint]["one"], results[adjoint]["two"]
            self.assertAllClose(one[0], two[0], rtol=1e-5, msg=adjoint)
            self.assertGreater(two[1][-1], 0, msg=adjoint)


@keras.saving.register_keras_serializable(package="tfnode_tests")
class Decay(keras.layers.Layer):
    """`dy/dt = -y`: `y(T) = y0 exp(-T)`."""

    def call(self, t, y):
        return -y


class TrainableEndTimeTest(test_util.TestCase):
    @test_util.parameterized.named_parameters(
        ("backprop", "backprop"), ("anode", "anode"),
        ("continuous", "continuous"),
    )
    def test_gradient_of_the_end_time(self, adjoint):
        block = tfnode.ODEBlock(
            Decay(), t1=1.5, trainable_t1=True, solver="rk4", steps=16,
            adjoint=adjoint,
        )
        x = tf.ones([4, 1])
        block(x)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(block(x))
        grad = tape.gradient(loss, block.log_duration.value)
        # d/d log T of 4 exp(-T) = -4 T exp(-T).
        self.assertAllClose(grad, -4 * 1.5 * np.exp(-1.5), rtol=1e-5)

    def test_fit_learns_the_end_time_and_saves_it(self):
        block = tfnode.ODEBlock(
            Decay(), t1=1.0, trainable_t1=True, solver="rk4", steps=8
        )
        model = keras.Sequential([keras.Input((1,)), block])
        model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
        x = np.ones((16, 1), np.float32)
        model.fit(x, np.exp(-2.0) * x, epochs=60, batch_size=16, verbose=0)
        self.assertAllClose(block.end_time, 2.0, atol=0.1)
        path = os.path.join(self.get_temp_dir(), "end_time.keras")
        model.save(path)
        loaded = tfnode.ode_blocks(keras.models.load_model(path))[0]
        self.assertAllClose(loaded.end_time, block.end_time)

    def test_backwards_span_keeps_its_sign(self):
        block = tfnode.ODEBlock(
            Decay(), t0=1.0, t1=0.0, trainable_t1=True, solver="rk4", steps=4
        )
        block(tf.ones([1, 1]))
        self.assertAllClose(block.end_time, 0.0, atol=1e-6)
        self.assertAllClose(block(tf.ones([1, 1])), [[np.e]], rtol=1e-4)

    def test_not_with_output_times(self):
        with self.assertRaisesRegex(ValueError, "output_times"):
            tfnode.ODEBlock(
                Decay(), trainable_t1=True, output_times=[0.5, 1.0]
            )


if __name__ == "__main__":
    tf.test.main()
