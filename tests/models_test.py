"""The reference networks: parameter counts against the PyTorch originals,
paper solve settings, training, saving, and the registry."""

import json
import math
import os

import keras
import numpy as np

import tfnode
from tests import test_util
from tfnode import models

# Every row of the summary table of the reference parameter counts:
# network, builder arguments, input shape, trainable, non-trainable (BN
# moving mean and variance), ODE blocks.
_PARAM_COUNTS = (
    ("anode_resnet", {}, (32, 32, 3), 11_173_962, 9_600, 4),
    ("anode_sqnxt", {}, (32, 32, 3), 461_466, 6_624, 4),
    ("simple_odenet", {"channels": 32}, (2,), 3_207, 0, 1),
    ("linear_odenet", {"channels": 32}, (2,), 1_224, 0, 1),
    ("odenet", {"channels": 128}, (32, 32, 3), 179_213, 0, 1),
    ("odenet", {"channels": 32}, (32, 32, 3), 40_205, 0, 1),
    ("odenet", {"channels": 32}, (28, 28, 1), 17_195, 0, 1),
    ("odenet", {"channels": 128}, (28, 28, 1), 155_819, 0, 1),
    ("tiny_resnet", {"depth": 8}, (32, 32, 3), 39_514, 544, 1),
    ("tiny_resnet", {"depth": 16}, (32, 32, 3), 77_146, 1_056, 1),
    ("mnist_odenet", {}, (28, 28, 1), 10_564, 0, 1),
)

_CIFAR = (32, 32, 3)

_NAMES = (
    "anode_resnet",
    "anode_sqnxt",
    "linear_odenet",
    "mnist_odenet",
    "odenet",
    "simple_odenet",
    "tiny_resnet",
)


def _num_params(weights):
    return sum(math.prod(w.shape) for w in weights)


def _batch(input_shape, num_classes, size, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(size, *input_shape)).astype("float32")
    y = np.arange(size) % num_classes
    return x, y


def _as_json(config):
    """`config` with tuples as lists, as a saved file holds it."""
    return json.loads(json.dumps(config))


def _reversible_available():
    return "reversible" in tfnode.adjoints.names()


class ParameterCountTest(test_util.TestCase):
    @test_util.parameterized.named_parameters(
        (
            f"{name}_{'_'.join(f'{k}{v}' for k, v in kwargs.items())}_"
            f"{'x'.join(map(str, shape))}",
            name,
            kwargs,
            shape,
            trainable,
            non_trainable,
            blocks,
        )
        for name, kwargs, shape, trainable, non_trainable, blocks in (
            _PARAM_COUNTS
        )
    )
    def test_counts_match_the_pytorch_originals(
        self, name, kwargs, shape, trainable, non_trainable, blocks
    ):
        model = models.get(name)(input_shape=shape, **kwargs)
        self.assertEqual(_num_params(model.trainable_weights), trainable)
        self.assertEqual(
            _num_params(model.non_trainable_weights), non_trainable
        )
        self.assertEqual(model.count_params(), trainable + non_trainable)
        self.assertLen(tfnode.ode_blocks(model), blocks)
        self.assertEqual(model.input_shape, (None, *shape))
        self.assertEqual(
            model.output_shape, (None, 10 if len(shape) == 3 else 2)
        )

    def test_default_input_is_the_default_dataset(self):
        for name in _NAMES:
            dataset = models.default_dataset(name)
            info = tfnode.datasets.get(dataset)
            shape, classes = info.input_shape, info.num_classes
            model = models.get(name)()
            self.assertEqual(model.input_shape, (None, *shape), name)
            self.assertEqual(model.output_shape, (None, classes), name)

    def test_tiny_resnet_heun_has_the_same_count(self):
        model = models.tiny_resnet(depth=8, method="heun")
        self.assertEqual(_num_params(model.trainable_weights), 39_514)

    def test_stage_shapes(self):
        model = models.anode_resnet()
        shapes = [b.output.shape[1:] for b in tfnode.ode_blocks(model)]
        self.assertEqual(
            shapes,
            [(32, 32, 64), (16, 16, 128), (8, 8, 256), (4, 4, 512)],
        )
        model = models.anode_sqnxt()
        shapes = [b.output.shape[1:] for b in tfnode.ode_blocks(model)]
        self.assertEqual(
            shapes, [(32, 32, 32), (16, 16, 64), (8, 8, 128), (4, 4, 256)]
        )
        model = models.tiny_resnet()
        self.assertEqual(
            tfnode.ode_blocks(model)[0].output.shape[1:], (10, 10, 16)
        )
        model = models.mnist_odenet()
        self.assertEqual(
            tfnode.ode_blocks(model)[0].output.shape[1:], (26, 26, 6)
        )

    def test_blog_stem_uses_the_fast_group_norm(self):
        # tfnode's layer holds Keras' weights under Keras' names, so counts
        # and checkpoints of the stem are unchanged.
        stem = models.mnist_odenet().get_layer("gn")
        self.assertIsInstance(stem, tfnode.layers.GroupNormalization)
        self.assertEqual(stem.groups, 6)
        self.assertEqual(
            [(w.name, tuple(w.shape)) for w in stem.weights],
            [("gamma", (6,)), ("beta", (6,))],
        )

    @test_util.parameterized.parameters(3, 10, 900)
    def test_sphere_networks_take_any_dimension(self, dim):
        for name in ("simple_odenet", "linear_odenet"):
            model = models.get(name)(input_shape=(dim,))
            x, _ = _batch((dim,), 2, 3)
            self.assertEqual(model(x).shape, (3, 2))


class SolveSettingsTest(test_util.TestCase):
    def _block(self, model):
        blocks = tfnode.ode_blocks(model)
        self.assertNotEmpty(blocks)
        return blocks[0]

    def test_paper_defaults(self):
        settings = self._block(models.anode_sqnxt()).settings
        self.assertEqual((settings.solver_name, settings.steps), ("euler", 2))
        for name in ("simple_odenet", "linear_odenet", "odenet"):
            settings = self._block(models.get(name)()).settings
            self.assertEqual(
                (settings.solver_name, settings.step_size), ("euler", 1.0)
            )
            self.assertIsNone(settings.steps)
        settings = self._block(models.mnist_odenet()).settings
        self.assertEqual(
            (settings.solver_name, settings.rtol, settings.atol),
            ("dopri5", 0.1, 0.1),
        )
        block = self._block(models.tiny_resnet(depth=8))
        self.assertEqual(
            (block.settings.solver_name, block.settings.steps, block.t1),
            ("euler", 8, 1.0),
        )
        block = self._block(models.tiny_resnet(depth=8, method="heun"))
        self.assertEqual(
            (block.settings.solver_name, block.settings.steps, block.t1),
            ("heun", 7, 7 / 8),
        )

    def test_paper_defaults_are_values(self):
        S = tfnode.SolveSettings
        self.assertEqual(
            models.solve_settings.ANODE, S(solver="euler", steps=2)
        )
        self.assertEqual(
            models.solve_settings.RESNET_AFTER_ALL,
            (S(solver="euler", step_size=1.0), S(solver="dopri5", tol=1e-8)),
        )
        self.assertEqual(
            models.solve_settings.BLOG, S(solver="dopri5", rtol=0.1, atol=0.1)
        )
        self.assertEqual(
            models.paper_settings("tiny_resnet", depth=4, method="heun"),
            S(solver="heun", steps=3),
        )
        self.assertEqual(
            models.paper_settings("anode_resnet"), models.solve_settings.ANODE
        )
        # Every builder's blocks hold what settings_for predicts.
        for name in _NAMES:
            self.assertEqual(
                self._block(models.get(name)()).settings,
                models.settings_for(name),
                name,
            )

    def test_user_settings_replace_the_paper(self):
        settings = self._block(models.simple_odenet(solver="dopri5")).settings
        self.assertEqual(
            (settings.solver_name, settings.rtol, settings.atol),
            ("dopri5", 1e-8, 1e-8),
        )
        self.assertIsNone(settings.step_size)
        settings = self._block(models.simple_odenet(solver="rk4", steps=4))
        settings = settings.settings
        self.assertEqual((settings.solver_name, settings.steps), ("rk4", 4))
        self.assertIsNone(settings.step_size)
        settings = self._block(models.anode_sqnxt(solver="rk2")).settings
        self.assertEqual(
            (settings.solver_name, settings.steps), ("midpoint", 2)
        )
        settings = self._block(models.mnist_odenet(tol=1e-3)).settings
        self.assertEqual((settings.rtol, settings.atol), (1e-3, 1e-3))
        # An adaptive solver on a paper without tolerances: odeint's.
        settings = self._block(models.anode_sqnxt(solver="dopri5")).settings
        self.assertEqual(
            (settings.rtol, settings.atol, settings.steps), (1e-3, 1e-6, None)
        )

    def test_builders_take_a_settings_value(self):
        settings = tfnode.SolveSettings(
            solver="rk4", steps=3, adjoint=tfnode.adjoints.Anode(checkpoints=2)
        )
        for name in _NAMES:
            blocks = tfnode.ode_blocks(models.get(name)(settings=settings))
            self.assertEqual(
                [b.settings for b in blocks], [settings] * len(blocks), name
            )
        # Shorthand replaces fields of the given value.
        block = self._block(
            models.simple_odenet(settings=settings, steps=5, track_nfe=False)
        )
        self.assertEqual(block.settings, settings.replace(steps=5))
        self.assertFalse(block.track_nfe)
        # A config dict is taken too (as a saved TrainConfig holds it).
        block = self._block(models.odenet(settings=settings.get_config()))
        self.assertEqual(block.settings, settings)

    def test_a_users_own_tableau_solver(self):
        # Heun's coefficients under another name: a solver of the user's.
        tableau = tfnode.solvers.ButcherTableau(
            name="my_heun", order=2, c=(0.0, 1.0), a=((), (1.0,)), b=(0.5, 0.5)
        )
        solver = tfnode.solvers.ExplicitRungeKutta(tableau)
        model = models.simple_odenet(solver=solver, steps=2, adjoint="anode")
        block = self._block(model)
        self.assertIs(block.settings.solver, solver)
        self.assertEqual(block.settings.steps, 2)
        model = models.linear_odenet(
            settings=tfnode.SolveSettings(solver=solver, step_size=0.25)
        )
        block = self._block(model)
        self.assertIs(block.settings.solver, solver)
        x, _ = _batch((2,), 2, 3)
        reference = models.linear_odenet(solver="heun", step_size=0.25)
        reference.set_weights(model.get_weights())
        self.assertAllClose(model(x), reference(x))
        path = os.path.join(self.get_temp_dir(), "my_heun.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
        self.assertEqual(tfnode.ode_blocks(loaded)[0].settings, block.settings)
        self.assertAllClose(loaded(x), model(x))
        # An ODEBlock of its own: the solver survives its config.
        direct = tfnode.ODEBlock(
            keras.layers.Dense(2), solver=solver, steps=3, adjoint="anode"
        )
        again = tfnode.ODEBlock.from_config(direct.get_config())
        self.assertEqual(again.settings, direct.settings)
        self.assertEqual(again.settings.solver_name, "my_heun")
        expected = direct(x)
        again(x)
        again.set_weights(direct.get_weights())
        self.assertAllClose(again(x), expected)

    def test_ode_options_reach_every_block(self):
        model = models.anode_sqnxt(adjoint="anode", checkpoints=1)
        blocks = tfnode.ode_blocks(model)
        self.assertLen(blocks, 4)
        for block in blocks:
            self.assertEqual(block.settings.adjoint.name, "anode")
            self.assertEqual(block.settings.adjoint.checkpoints, 1)
        block = self._block(models.mnist_odenet(max_num_steps=50))
        self.assertEqual(block.settings.max_num_steps, 50)

    def test_bad_settings_name_the_argument(self):
        with self.assertRaisesRegex(
            ValueError, "method must be one of 'euler', 'heun'; got 'rk4'"
        ):
            models.tiny_resnet(method="rk4")
        with self.assertRaisesRegex(ValueError, "depth >= 2"):
            models.tiny_resnet(depth=1, method="heun")
        with self.assertRaisesRegex(ValueError, "depth must be an int"):
            models.tiny_resnet(depth=0)
        with self.assertRaisesRegex(ValueError, "bogus.*checkpoints"):
            models.simple_odenet(bogus=1)
        with self.assertRaisesRegex(ValueError, "activation='gelu'"):
            models.odenet(activation="gelu")
        with self.assertRaisesRegex(ValueError, "fixed-step method"):
            models.mnist_odenet(solver="euler")  # the paper has no grid
        with self.assertRaisesRegex(ValueError, "Unknown solver"):
            models.anode_resnet(solver="nope")
        with self.assertRaisesRegex(ValueError, "adjoint"):
            models.odenet(adjoint="nope")
        with self.assertRaisesRegex(TypeError, "settings must be"):
            models.odenet(settings="rk4")
        with self.assertRaisesRegex(ValueError, "input_shape"):
            models.odenet(input_shape=(32, None, 3))
        with self.assertRaisesRegex(ValueError, "num_classes"):
            models.odenet(num_classes=1)


class RegistryTest(test_util.TestCase):
    def test_names_and_lookup(self):
        self.assertEqual(models.names(), sorted(_NAMES))
        for name in _NAMES:
            self.assertIs(models.get(name), getattr(models, name))
        self.assertEqual(set(models.DEFAULT_DATASETS), set(_NAMES))

    def test_default_datasets(self):
        self.assertEqual(
            {name: models.default_dataset(name) for name in _NAMES},
            {
                "anode_resnet": "cifar10",
                "anode_sqnxt": "cifar10",
                "simple_odenet": "concentric_sphere2",
                "linear_odenet": "concentric_sphere2",
                "odenet": "cifar10",
                "mnist_odenet": "mnist",
                "tiny_resnet": "cifar10",
            },
        )

    def test_unknown_name_lists_the_choices(self):
        with self.assertRaisesRegex(
            ValueError, "network='resnet50'.*anode_resnet.*tiny_resnet"
        ):
            models.get("resnet50")
        with self.assertRaisesRegex(ValueError, "network='nope'"):
            models.default_dataset("nope")


# test name, network, builder arguments, input shape, classes, batch, lr
_TRAINING = (
    ("simple_odenet", "simple_odenet", {}, (2,), 2, 4, 0.1),
    ("linear_odenet", "linear_odenet", {}, (2,), 2, 4, 0.1),
    ("odenet_mnist", "odenet", {"channels": 8}, (28, 28, 1), 10, 4, 0.01),
    ("mnist_odenet", "mnist_odenet", {}, (28, 28, 1), 10, 4, 0.01),
    ("tiny_resnet_euler", "tiny_resnet", {"depth": 3}, _CIFAR, 10, 4, 0.05),
    (
        "tiny_resnet_heun",
        "tiny_resnet",
        {"depth": 3, "method": "heun"},
        _CIFAR,
        10,
        4,
        0.05,
    ),
    (
        "tiny_resnet_euler_reversible",
        "tiny_resnet",
        {"depth": 3, "adjoint": "reversible"},
        _CIFAR,
        10,
        4,
        0.05,
    ),
    (
        "tiny_resnet_heun_reversible",
        "tiny_resnet",
        {"depth": 3, "method": "heun", "adjoint": "reversible"},
        _CIFAR,
        10,
        4,
        0.05,
    ),
    # The one large network: ANODE's own gradient, one step per block.
    (
        "anode_sqnxt_anode",
        "anode_sqnxt",
        {"steps": 1, "adjoint": "anode"},
        _CIFAR,
        10,
        2,
        0.01,
    ),
)


class TrainingTest(test_util.TestCase):
    @test_util.parameterized.named_parameters(*_TRAINING)
    def test_fit_steps_lower_the_loss(
        self, name, kwargs, input_shape, num_classes, batch, learning_rate
    ):
        if kwargs.get("adjoint") == "reversible" and not (
            _reversible_available()
        ):
            self.skipTest("adjoint='reversible' is not registered.")
        keras.utils.set_random_seed(0)
        model = models.get(name)(input_shape=input_shape, **kwargs)
        model.compile(
            optimizer=keras.optimizers.SGD(learning_rate),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        x, y = _batch(input_shape, num_classes, batch)
        # train_on_batch returns the training loss before its update.
        losses = [
            model.train_on_batch(x, y, return_dict=True)["loss"]
            for _ in range(4)
        ]
        self.assertTrue(np.all(np.isfinite(losses)), losses)
        self.assertLess(losses[-1], losses[0])


_SAVED = (
    ("simple_odenet", {}, (2,)),
    ("linear_odenet", {"activation": "lrelu"}, (2,)),
    ("odenet", {"channels": 4, "activation": "sigmoid"}, (28, 28, 1)),
    ("mnist_odenet", {}, (28, 28, 1)),
    ("tiny_resnet", {"depth": 3, "method": "heun"}, (32, 32, 3)),
)


class SavingTest(test_util.TestCase):
    @test_util.parameterized.parameters(*_SAVED)
    def test_keras_file_round_trip(self, name, kwargs, input_shape):
        keras.utils.set_random_seed(1)
        model = models.get(name)(input_shape=input_shape, **kwargs)
        # Move every weight (BatchNorm statistics included) off its
        # initial value, so that loading must restore them all.
        rng = np.random.default_rng(2)
        for w in model.weights:
            low = 0.5 if "variance" in w.path else -0.5
            w.assign(rng.uniform(low, low + 1.0, w.shape).astype(w.dtype))
        x, _ = _batch(input_shape, 2, 3, seed=3)
        expected = model.predict(x, verbose=0)
        path = os.path.join(self.get_temp_dir(), f"{name}.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
        self.assertAllClose(loaded.predict(x, verbose=0), expected, atol=1e-6)
        before, after = tfnode.ode_blocks(model), tfnode.ode_blocks(loaded)
        self.assertEqual(
            [_as_json(b.get_config()) for b in after],
            [_as_json(b.get_config()) for b in before],
        )
        self.assertEqual(loaded.count_params(), model.count_params())
