"""Tests of training: `tfnode.training` and `train.py`.

Short runs of every network and flagfile on data the tests make (generated
spheres; `tfds.testing.mock_data` for MNIST and CIFAR-10), resumption after
an interruption, the model_dir guard, the NaN guard, and distribution on
CPU: MirroredStrategy over two logical devices, MultiWorkerMirroredStrategy
over two local worker processes.
"""

import contextlib
import glob
import json
import os
import socket
import subprocess
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import app
from absl import flags as absl_flags
from absl.testing import flagsaver
from absl.testing import parameterized

import flags
import tfnode
import train
from tests import test_util
from tfnode import training
from tfnode.stepping import grid
from tfnode.training import checkpointing
from tfnode.training import trainer
from tfnode.training.run_dir import prepare_model_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = absl_flags.FLAGS
TIMING_KEYS = ("wall_time", "elapsed")

# A small run: 6 steps of 8 per epoch, 16 test examples.
SMALL = dict(
    train_examples=48,
    test_examples=16,
    batch_size=8,
    epochs=3,
    verbose=0,
)

# Overrides that make each flagfile's run a few seconds long.
FLAGFILE_OVERRIDES = {
    "resnet_after_all_sphere2.cfg": ["--test_factors=1"],
    "resnet_after_all_cifar10.cfg": ["--test_factors=1"],
    "resnet_after_all_cifar10_step_adaptation.cfg": [
        "--adaptation_interval=2",
        "--test_solvers=rk4",
        "--test_factors=1",
    ],
    "sander_tiny_resnet.cfg": ["--depth=2"],
}


def without_timing(history):
    return [
        {k: v for k, v in row.items() if k not in TIMING_KEYS}
        for row in history
    ]


class Interrupted(Exception):
    pass


class InterruptAt(keras.callbacks.Callback):
    """Raises `Interrupted` after batch `batch` of epoch `epoch` (0-based),
    as a kill would stop the run there."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)
        self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise Interrupted()


class PoisonAt(keras.callbacks.Callback):
    """Makes the weights whose path starts with `prefix` NaN at the start of
    epoch `epoch` (0-based)."""

    def __init__(self, epoch, prefix=""):
        super().__init__()
        self.at = epoch
        self.prefix = prefix

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at:
            for variable in self.model.trainable_variables:
                if variable.path.startswith(self.prefix):
                    variable.assign(tf.fill(variable.shape, np.nan))


def read_json(path):
    with open(path) as f:
        return json.load(f)


def read_scalars(log_dir):
    """`{tag: {step: (value, plugin)}}` of the TensorBoard event files in
    `log_dir` (plugin: the plugin named by the tag's first event)."""
    scalars, plugins = {}, {}
    for path in sorted(glob.glob(os.path.join(log_dir, "events.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                plugin = value.metadata.plugin_data.plugin_name
                plugins.setdefault(value.tag, plugin)
                scalars.setdefault(value.tag, {})[event.step] = (
                    float(tf.make_ndarray(value.tensor)),
                    plugins[value.tag],
                )
    return scalars


@contextlib.contextmanager
def train_flags(*argv):
    """Parses `argv` into the global flags for `train.main`, restoring them
    afterwards."""
    flags.define_flags()
    with flagsaver.flagsaver():
        FLAGS(["train.py", *argv])
        yield


class TrainTestCase(test_util.TestCase):
    def tempdir(self):
        return tempfile.mkdtemp(dir=self.get_temp_dir())

    def config(self, **changes):
        values = dict(SMALL, model_dir=self.tempdir())
        values.update(changes)
        return training.TrainConfig(**values)


class FlagfileRunTest(TrainTestCase, parameterized.TestCase):
    """Every flagfile (so every network but linear_odenet) runs end to end
    through `train.main`, on mock MNIST and CIFAR-10."""

    @parameterized.named_parameters(
        (os.path.basename(path)[: -len(".cfg")], path)
        for path in sorted(glob.glob(os.path.join(ROOT, "flags", "*.cfg")))
    )
    def test_short_run(self, path):
        model_dir = self.tempdir()
        name = os.path.basename(path)
        argv = [
            f"--flagfile={path}",
            "--train_steps=2",
            "--train_examples=4",
            "--test_examples=4",
            "--batch_size=2",
            "--eval_batch_size=2",
            f"--data_dir={self.tempdir()}",
            f"--model_dir={model_dir}",
            "--verbose=0",
            *FLAGFILE_OVERRIDES.get(name, []),
        ]
        with tfds.testing.mock_data(num_examples=4), train_flags(*argv):
            self.assertEqual(train.main(["train.py"]), 0)
        history = read_json(os.path.join(model_dir, "metrics.json"))
        self.assertLen(history, 1)
        row = history[0]
        self.assertEqual((row["epoch"], row["step"]), (1, 2))
        for key in (
            "train_loss",
            "train_accuracy",
            "test_loss",
            "test_accuracy",
            "nfe_forward",
            "nfe_backward",
            "wall_time",
        ):
            self.assertTrue(np.isfinite(row[key]), key)
        self.assertGreater(row["nfe_forward"], 0)
        self.assertGreater(row["nfe_backward"], 0)
        for output in (
            "config.json",
            "model.keras",
            "checkpoints/ckpt-1.index",
        ):
            self.assertTrue(os.path.exists(os.path.join(model_dir, output)))
        self.assertNotEmpty(os.listdir(os.path.join(model_dir, "logs")))
        if "resnet_after_all" in name:
            table = read_json(os.path.join(model_dir, "solver_table.json"))
            self.assertNotEmpty(table)
            self.assertTrue(
                os.path.exists(os.path.join(model_dir, "solver_table.png"))
            )
        if "step_adaptation" in name:
            adaptation = read_json(os.path.join(model_dir, "adaptation.json"))
            self.assertEqual(
                [entry["action"] for entry in adaptation][:1], ["init"]
            )
            self.assertLen(adaptation, 2)


class NetworkRunTest(TrainTestCase):
    def test_linear_odenet_and_the_saved_model(self):
        result = training.train(
            self.config(
                network="linear_odenet",
                dataset="concentric_sphere3",
                epochs=2,
                settings=tfnode.SolveSettings(
                    solver="rk4", steps=2, adjoint="anode"
                ),
            )
        )
        self.assertEqual(result.final["nfe_forward"], 8)
        self.assertLess(result.history[1]["train_loss"], 10)
        path = os.path.join(result.model_dir, "model.keras")
        loaded = keras.models.load_model(path)
        x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
        self.assertAllClose(loaded(x), result.model(x))
        # TensorBoard scalars: every metrics row, one event per epoch.
        scalars = read_scalars(os.path.join(result.model_dir, "logs"))
        for key in ("train_loss", "test_accuracy", "nfe_forward"):
            self.assertEqual(
                scalars[key],
                {
                    row["epoch"]: (
                        np.float32(row[key]).item(),
                        "scalars",
                    )
                    for row in result.history
                },
            )
        self.assertIn("nfe/ode_block_nfe_forward", scalars)

    def test_blog_mnist_on_package_digits(self):
        model_dir = self.tempdir()
        argv = [
            f"--flagfile={os.path.join(ROOT, 'flags', 'blog_mnist.cfg')}",
            "--dataset=mnist_package",
            "--epochs=1",
            "--train_examples=8",
            "--test_examples=4",
            "--batch_size=4",
            f"--model_dir={model_dir}",
            "--verbose=0",
        ]
        with train_flags(*argv):
            self.assertEqual(train.main(["train.py"]), 0)
        config = read_json(os.path.join(model_dir, "config.json"))
        self.assertEqual(config["experiment"]["dataset"], "mnist_package")
        (row,) = read_json(os.path.join(model_dir, "metrics.json"))
        self.assertEqual((row["epoch"], row["step"]), (1, 2))
        self.assertTrue(np.isfinite(row["test_loss"]))
        self.assertGreater(row["nfe_backward"], 0)

    def test_default_run_learns(self):
        result = training.train(
            self.config(
                epochs=20,
                batch_size=128,
                train_examples=None,
                test_examples=200,
            )
        )
        self.assertEqual(result.config.dataset, "concentric_sphere2")
        self.assertEqual(result.final["step"], 20 * 15)
        self.assertLess(
            result.history[-1]["train_loss"], result.history[0]["train_loss"]
        )


class ResumeTest(TrainTestCase, parameterized.TestCase):
    @parameterized.named_parameters(
        (
            "sgd_momentum_step_schedule",
            dict(
                optimizer="sgd",
                lr=0.05,
                momentum=0.9,
                weight_decay=1e-3,
                lr_schedule="step",
                lr_decay_epochs=(2,),
            ),
        ),
        (
            "step_adaptation",
            # Adapts at steps 5, 10, 15: once before the interruption at
            # step 9, and twice after the resumption from step 6.
            dict(step_adaptation=True, adaptation_interval=5, lr=1e-2),
        ),
        (
            "batch_norm_and_augmentation",
            dict(
                network="tiny_resnet",
                depth=1,
                dataset="cifar10",
                normalize="per_channel",
                augment="crop_flip",
                train_examples=16,
                test_examples=4,
                batch_size=4,
                optimizer="sgd",
                lr=0.1,
                momentum=0.9,
            ),
        ),
    )
    def test_interrupted_run_resumes_to_the_same_result(self, changes):
        uninterrupted = self.config(**changes)
        interrupted = uninterrupted.replace(model_dir=self.tempdir())
        with tfds.testing.mock_data(num_examples=16):
            expected = training.train(uninterrupted)
            # Killed in the middle of the second epoch.
            with self.assertRaises(Interrupted):
                training.train(interrupted, callbacks=[InterruptAt(1, 2)])
            self.assertEqual(
                [
                    e
                    for e, _ in checkpointing.list_checkpoints(
                        interrupted.model_dir
                    )
                ],
                [1],
            )
            self.assertLen(
                read_json(os.path.join(interrupted.model_dir, "metrics.json")),
                1,
            )
            resumed = training.train(interrupted)
        self.assertEqual(resumed.initial_epoch, 1)
        self.assertEqual(
            without_timing(resumed.history), without_timing(expected.history)
        )
        for a, b in zip(
            resumed.model.variables, expected.model.variables, strict=True
        ):
            self.assertAllEqual(a.numpy(), b.numpy())
        self.assertEqual(
            read_json(os.path.join(interrupted.model_dir, "metrics.json")),
            resumed.history,
        )
        if changes.get("step_adaptation"):
            got = read_json(
                os.path.join(interrupted.model_dir, "adaptation.json")
            )
            want = read_json(
                os.path.join(uninterrupted.model_dir, "adaptation.json")
            )
            self.assertEqual(got, want)
            self.assertEqual(
                [entry["iteration"] for entry in want], [0, 5, 10, 15]
            )

    def test_finished_run_is_not_trained_again(self):
        config = self.config(epochs=2)
        first = training.train(config)
        again = training.train(config)
        self.assertEqual(again.initial_epoch, 2)
        self.assertEqual(again.history, first.history)

    def test_train_steps_end_inside_an_epoch(self):
        result = training.train(self.config(train_steps=8))
        self.assertEqual([row["step"] for row in result.history], [6, 8])


class ModelDirTest(TrainTestCase):
    def test_another_configuration_is_refused(self):
        config = self.config(epochs=1)
        training.train(config)
        with self.assertRaisesRegex(
            training.ModelDirError,
            "another configuration \\(lr: 0.0001 there, 0.001 here\\).*"
            "--overwrite",
        ):
            training.train(config.replace(lr=1e-3))
        with self.assertRaisesRegex(training.ModelDirError, "resume is off"):
            training.train(config.replace(resume=False))
        result = training.train(config.replace(lr=1e-3, overwrite=True))
        self.assertEqual(result.initial_epoch, 0)
        saved = read_json(os.path.join(config.model_dir, "config.json"))
        self.assertEqual(saved["experiment"]["lr"], 1e-3)

    def test_foreign_files_are_refused(self):
        model_dir = self.tempdir()
        with open(os.path.join(model_dir, "notes.txt"), "w") as f:
            f.write("mine")
        with self.assertRaisesRegex(training.ModelDirError, "not a tfnode run"):
            training.train(self.config(model_dir=model_dir))
        self.assertTrue(os.path.exists(os.path.join(model_dir, "notes.txt")))

    def test_default_model_dir_is_per_configuration(self):
        a = training.default_model_dir(training.resolve(self.config()))
        b = training.default_model_dir(training.resolve(self.config(lr=0.1)))
        self.assertStartsWith(a, os.path.join("runs", "simple_odenet_"))
        self.assertNotEqual(a, b)


def small_model_and_optimizer(width=3):
    """A model with BatchNorm statistics and a Dropout seed generator, and
    its built SGD-with-momentum optimizer, all variables set at random."""
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(width),
            keras.layers.BatchNormalization(),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(2),
        ]
    )
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
    optimizer.build(model.trainable_variables)
    rng = np.random.default_rng(width)
    for variable in model.variables + optimizer.variables:
        value = rng.integers(1, 1000, size=variable.shape)
        variable.assign(value.astype(variable.dtype))
    return model, optimizer


def values(model, optimizer):
    return [v.numpy() for v in model.variables + optimizer.variables]


class CheckpointFormatTest(TrainTestCase):
    """TensorFlow checkpoints: what they hold, who can read them, and what
    happens to an interrupted save or a folder of the old format."""

    def test_restores_every_variable_by_object_graph(self):
        model, optimizer = small_model_and_optimizer()
        state = dict(history=[dict(epoch=4, train_loss=0.1 + 0.2)], elapsed=2.5)
        path = checkpointing.save_checkpoint(
            self.tempdir(), 4, model, optimizer, state
        )
        fresh, fresh_optimizer = small_model_and_optimizer()
        for variable in fresh.variables + fresh_optimizer.variables:
            variable.assign(tf.zeros_like(variable))
        # Automatic names differ from the saved model's: matching is by the
        # object graph.
        self.assertNotEqual(
            [v.path for v in model.variables], [v.path for v in fresh.variables]
        )
        restored = checkpointing.restore_checkpoint(
            path, fresh, fresh_optimizer
        )
        self.assertEqual(restored, dict(state, epoch=4))
        self.assertIn("seed_generator_state", [v.name for v in fresh.variables])
        for a, b in zip(
            values(model, optimizer),
            values(fresh, fresh_optimizer),
            strict=True,
        ):
            self.assertAllEqual(a, b)

    def test_tensorflow_reads_them_and_the_newest_are_kept(self):
        model, optimizer = small_model_and_optimizer()
        model_dir = self.tempdir()
        saver = checkpointing.RunCheckpoint(model_dir, model, optimizer, keep=2)
        for epoch in (1, 2, 3):
            optimizer.iterations.assign(10 * epoch)
            path = saver.save(epoch, dict(history=[epoch]))
        folder = checkpointing.checkpoint_dir(model_dir)
        self.assertEqual(tf.train.latest_checkpoint(folder), path)
        self.assertEqual(
            checkpointing.list_checkpoints(model_dir),
            [(2, os.path.join(folder, "ckpt-2")), (3, path)],
        )
        self.assertEmpty(glob.glob(os.path.join(folder, "ckpt-1*")))
        reader = tf.train.load_checkpoint(folder)
        self.assertEqual(
            reader.get_tensor("epoch/.ATTRIBUTES/VARIABLE_VALUE"), 3
        )
        self.assertEqual(
            reader.get_tensor(
                "optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"
            ),
            30,
        )
        run_state = reader.get_tensor("run_state/.ATTRIBUTES/py_state")
        self.assertEqual(json.loads(run_state), dict(history=[3]))
        stored = sorted(
            reader.get_tensor(name).tobytes()
            for name, _ in tf.train.list_variables(folder)
            if name.startswith(("model/", "optimizer/", "others/"))
        )
        for value in values(model, optimizer):
            self.assertIn(value.tobytes(), stored)

    def test_an_interrupted_save_leaves_the_last_complete_one(self):
        model, optimizer = small_model_and_optimizer()
        model_dir = self.tempdir()
        saver = checkpointing.RunCheckpoint(model_dir, model, optimizer)
        first = saver.save(1, dict(history=[1]))
        saved = values(model, optimizer)
        # What a save killed before its end leaves: data files but no index
        # and no entry in the `checkpoint` file.
        folder = checkpointing.checkpoint_dir(model_dir)
        for name in (
            "ckpt-2_temp/part-00000-of-00001.data-00000-of-00001",
            "ckpt-2.data-00000-of-00001",
        ):
            tf.io.gfile.makedirs(os.path.dirname(os.path.join(folder, name)))
            with open(os.path.join(folder, name), "wb") as f:
                f.write(b"\x00" * 7)
        self.assertEqual(checkpointing.latest_checkpoint(model_dir), (1, first))
        fresh, fresh_optimizer = small_model_and_optimizer(width=3)
        for variable in fresh.variables + fresh_optimizer.variables:
            variable.assign(tf.zeros_like(variable))
        state = checkpointing.restore_checkpoint(first, fresh, fresh_optimizer)
        self.assertEqual(state["epoch"], 1)
        for a, b in zip(saved, values(fresh, fresh_optimizer), strict=True):
            self.assertAllEqual(a, b)
        # The resumed run saves epoch 2 again, over the remains.
        again = checkpointing.RunCheckpoint(model_dir, fresh, fresh_optimizer)
        again.save(2, dict(history=[1, 2]))
        self.assertEqual(
            [e for e, _ in checkpointing.list_checkpoints(model_dir)], [1, 2]
        )

    def test_another_model_is_refused(self):
        model, optimizer = small_model_and_optimizer(width=3)
        path = checkpointing.save_checkpoint(
            self.tempdir(), 1, model, optimizer, {}
        )
        wider, wider_optimizer = small_model_and_optimizer(width=5)
        with self.assertRaisesRegex(
            training.CheckpointMismatchError, "does not fit this model"
        ):
            checkpointing.restore_checkpoint(path, wider, wider_optimizer)

    def test_model_dir_may_be_any_tf_io_gfile_path(self):
        # ram:// is TensorFlow's in-memory file system, a URL as gs:// is.
        model_dir = f"ram://{self.id()}/run"
        config = self.config(
            model_dir=model_dir,
            epochs=2,
            test_solvers=("rk4",),
            test_factors=(1.0,),
        )
        with self.assertRaises(Interrupted):
            training.train(config, callbacks=[InterruptAt(1, 2)])
        self.assertEqual(checkpointing.latest_checkpoint(model_dir)[0], 1)
        resumed = training.train(config)
        self.assertEqual(resumed.initial_epoch, 1)
        self.assertEqual(
            tf.train.latest_checkpoint(f"{model_dir}/checkpoints"),
            f"{model_dir}/checkpoints/ckpt-2",
        )
        self.assertEqual(
            sorted(tf.io.gfile.listdir(model_dir)),
            [
                "checkpoints",
                "config.json",
                "logs",
                "metrics.json",
                "model.keras",
                "solver_table.json",
                "solver_table.png",
            ],
        )

    def test_a_folder_of_the_old_npz_format_is_refused_with_advice(self):
        config = training.resolve(self.config())
        prepare_model_dir(config, config.model_dir)
        folder = checkpointing.checkpoint_dir(config.model_dir)
        os.makedirs(folder)
        np.savez(
            os.path.join(folder, "ckpt-1.npz"),
            state=np.array(json.dumps(dict(epoch=1))),
        )
        with self.assertRaisesRegex(
            checkpointing.LegacyCheckpointError,
            "holds checkpoints of the .npz format.*ckpt-1.npz.*cannot resume "
            "that run.*--overwrite",
        ):
            training.train(config)
        # train.py reports it as a message, without a traceback.
        self.assertTrue(
            issubclass(checkpointing.LegacyCheckpointError, train._RUN_ERRORS)
        )
        result = training.train(config.replace(overwrite=True, epochs=1))
        self.assertEqual(
            [e for e, _ in checkpointing.list_checkpoints(config.model_dir)],
            [1],
        )
        self.assertLen(result.history, 1)


class NonFiniteTest(TrainTestCase):
    def _train_poisoned_in_epoch_2(self, prefix, message):
        """Trains with the weights under `prefix` made NaN at the start of
        epoch 2; checks that training stops with an error matching
        `message` and keeps epoch 1's checkpoint alone.

        Returns:
            The run's config.
        """
        config = self.config()
        with self.assertRaisesRegex(training.NonFiniteLossError, message):
            training.train(config, callbacks=[PoisonAt(1, prefix)])
        self.assertEqual(
            [e for e, _ in checkpointing.list_checkpoints(config.model_dir)],
            [1],
        )
        return config

    def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(self):
        # NaN in the classifier: the solves succeed, the loss is NaN.
        config = self._train_poisoned_in_epoch_2(
            "classifier",
            "loss became nan at epoch 2, step 1.*last good checkpoint "
            "\\(epoch 1\\)",
        )
        history = read_json(os.path.join(config.model_dir, "metrics.json"))
        self.assertLen(history, 1)
        self.assertTrue(np.isfinite(history[0]["train_loss"]))
        self.assertFalse(
            os.path.exists(os.path.join(config.model_dir, "model.keras"))
        )

    def test_nan_state_stops_and_keeps_the_last_good_checkpoint(self):
        # NaN in the ODE function: the solver reports it.
        self._train_poisoned_in_epoch_2(
            "ode_block",
            "diverged at epoch 2, step 1.*NaN or Inf.*last good checkpoint "
            "\\(epoch 1\\)",
        )

    def test_diverging_solve(self):
        with self.assertRaisesRegex(
            training.NonFiniteLossError,
            "diverged at epoch 1.*became NaN or Inf.*smaller lr",
        ):
            training.train(self.config(optimizer="sgd", lr=1e4))


def _jit_config(network, channels=None, **solve):
    return training.resolve(
        training.TrainConfig(
            network=network,
            channels=channels,
            jit_compile=True,
            settings=tfnode.models.settings_for(network, **solve),
        )
    )


def _jit_check(config):
    model = training.build_model(config, tfnode.datasets.get(config.dataset))
    trainer.check_jit_compile(config, model)


@test_util.parameterized.named_parameters(
    (
        "anode_checkpoints",
        {"solver": "rk4", "steps": 8, "adjoint": "anode", "checkpoints": 2},
        "adjoint='anode' as configured",
    ),
    (
        "reversible",
        {"solver": "heun", "steps": 2, "adjoint": "reversible"},
        "adjoint='reversible'",
    ),
    ("adaptive", {"solver": "dopri5", "tol": 1e-3}, "adaptive solver"),
    (
        "adaptive_continuous",
        {"solver": "dopri5", "tol": 1e-3, "adjoint": "continuous"},
        "adaptive solver",
    ),
    (
        "anode_too_many_steps",
        {
            "solver": "euler",
            "steps": grid.UNROLL_MAX_STEPS + 1,
            "adjoint": "anode",
        },
        f"exceed the {grid.UNROLL_MAX_STEPS}",
    ),
    (
        "too_many_steps",
        {"solver": "rk4", "steps": grid.UNROLL_MAX_STEPS + 1},
        f"exceed the {grid.UNROLL_MAX_STEPS}",
    ),
)
class JitCompileTrapTest(TrainTestCase):
    """On CPU `--jit_compile` is refused where XLA is a measured trap:
    wide convolutional fields differentiated inside a `while` loop."""

    def setUp(self):
        super().setUp()
        if tf.config.list_logical_devices("GPU"):
            self.skipTest("the check applies on CPU only")

    def test_wide_conv_field_is_refused(self, solve, reason):
        # odenet's 3x3 convolution over 8 channels: patches 72 wide.
        config = _jit_config("odenet", channels=8, **solve)
        with self.assertRaisesRegex(ValueError, "--jit_compile") as caught:
            _jit_check(config)
        message = str(caught.exception)
        for part in (
            reason,
            "patches 72 wide",
            trainer.XLA_CONV_LOOP_SLOWDOWN,
            "Drop --jit_compile",
            "--adjoint=backprop",
        ):
            self.assertIn(part, message)

    def test_dense_field_is_not(self, solve, reason):
        del reason
        _jit_check(_jit_config("linear_odenet", channels=4, **solve))

    def test_narrow_conv_field_is_not(self, solve, reason):
        # 3x3 over 7 channels: patches 63 wide, run on patches in loops.
        del reason
        self.assertLessEqual(63, trainer.XLA_LOOP_PATCH_WIDTH_MAX)
        _jit_check(_jit_config("odenet", channels=7, **solve))


class JitCompileTest(TrainTestCase):
    def setUp(self):
        super().setUp()
        if tf.config.list_logical_devices("GPU"):
            self.skipTest("the check applies on CPU only")

    @test_util.parameterized.parameters("backprop", "anode", "continuous")
    def test_unrolled_conv_solve_is_allowed(self, adjoint):
        _jit_check(
            _jit_config(
                "odenet",
                channels=4,
                solver="rk4",
                steps=grid.UNROLL_MAX_STEPS,
                adjoint=adjoint,
            )
        )

    def test_only_with_jit_compile(self):
        config = _jit_config("odenet", channels=4, solver="dopri5", tol=1e-3)
        _jit_check(config.replace(jit_compile=False))

    def test_train_py_refuses_before_writing_anything(self):
        model_dir = self.tempdir()
        with train_flags(
            "--network=odenet",
            "--channels=8",
            "--solver=euler",
            "--steps=2",
            "--adjoint=reversible",
            "--jit_compile",
            f"--model_dir={model_dir}",
        ):
            with self.assertRaisesRegex(
                app.UsageError, "--jit_compile.*slower"
            ):
                train.main(["train.py"])
        self.assertEmpty(os.listdir(model_dir))


class MainTest(TrainTestCase):
    def test_rejects_extra_arguments(self):
        with train_flags():
            with self.assertRaisesRegex(app.UsageError, "Too many"):
                train.main(["train.py", "extra"])

    def test_contradictory_flags_are_usage_errors(self):
        with train_flags("--steps=2", "--step_size=0.5"):
            with self.assertRaisesRegex(app.UsageError, "not both"):
                train.main(["train.py"])
        with train_flags("--optimizer=adam", "--momentum=0.9"):
            with self.assertRaisesRegex(app.UsageError, "momentum"):
                train.main(["train.py"])

    def test_missing_data_is_an_error_not_a_traceback(self):
        with train_flags(
            "--network=mnist_odenet",
            f"--data_dir={self.tempdir()}",
            "--nodownload",
            f"--model_dir={self.tempdir()}",
        ):
            self.assertEqual(train.main(["train.py"]), 1)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _environment(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **extra)
    env["PYTHONPATH"] = os.pathsep.join(
        [ROOT, *filter(None, [env.get("PYTHONPATH")])]
    )
    return env


_MIRRORED = r"""
import json
import sys
import tempfile

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)
from tfnode import training

config = training.TrainConfig.from_dict(json.loads(sys.argv[1]))
single = training.train(config.replace(model_dir=sys.argv[2]))
strategy = training.make_strategy("mirrored", ("/cpu:0", "/cpu:1"))
mirrored = training.train(
    config.replace(model_dir=sys.argv[3]), strategy=strategy
)
print("RESULT", json.dumps(
    [strategy.num_replicas_in_sync, single.history, mirrored.history]
))
"""


class DistributionTest(TrainTestCase):
    def test_batch_is_global(self):
        class TwoReplicas:
            num_replicas_in_sync = 2

        self.assertEqual(training.per_replica_batch_size(8, TwoReplicas()), 4)
        with self.assertRaisesRegex(ValueError, "divisible by the 2 replicas"):
            training.per_replica_batch_size(7, TwoReplicas())

    def test_mirrored_loss_equals_single_device_loss(self):
        config = self.config(epochs=2)
        completed = subprocess.run(
            [
                sys.executable,
                "-c",
                _MIRRORED,
                json.dumps(config.to_dict()),
                self.tempdir(),
                self.tempdir(),
            ],
            cwd=ROOT,
            env=_environment(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        self.assertEqual(completed.returncode, 0, completed.stderr[-3000:])
        line = [
            line
            for line in completed.stdout.splitlines()
            if line.startswith("RESULT ")
        ][-1]
        replicas, single, mirrored = json.loads(line[len("RESULT ") :])
        self.assertEqual(replicas, 2)
        for a, b in zip(single, mirrored, strict=True):
            for key in ("train_loss", "test_loss"):
                self.assertAllClose(a[key], b[key], rtol=1e-5, atol=1e-6)
            for key in ("train_accuracy", "test_accuracy", "step"):
                self.assertEqual(a[key], b[key])

    def test_two_workers_finish_with_the_same_result(self):
        model_dir = self.tempdir()
        ports = _free_ports(2)
        cluster = {"worker": [f"localhost:{port}" for port in ports]}
        argv = [
            sys.executable,
            os.path.join(ROOT, "train.py"),
            "--strategy=multi_worker",
            f"--model_dir={model_dir}",
            "--epochs=2",
            "--train_examples=48",
            "--test_examples=16",
            "--batch_size=8",
            "--verbose=0",
        ]
        workers = [
            subprocess.Popen(
                argv,
                cwd=ROOT,
                env=_environment(
                    TF_CONFIG=json.dumps(
                        {
                            "cluster": cluster,
                            "task": {"type": "worker", "index": i},
                        }
                    )
                ),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(2)
        ]
        outputs = []
        try:
            for worker in workers:
                outputs.append(worker.communicate(timeout=300))
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
                    worker.communicate()
        finals = []
        for worker, (stdout, stderr) in zip(workers, outputs, strict=True):
            self.assertEqual(worker.returncode, 0, stderr[-3000:])
            lines = [
                line
                for line in stdout.splitlines()
                if line.startswith("Final metrics: ")
            ]
            self.assertLen(lines, 1, stdout)
            finals.append(json.loads(lines[0][len("Final metrics: ") :]))
        self.assertEqual(finals[0], finals[1])
        self.assertEqual(finals[0]["epoch"], 2)
        history = read_json(os.path.join(model_dir, "metrics.json"))
        self.assertEqual(without_timing(history)[-1], finals[0])
        self.assertTrue(os.path.exists(os.path.join(model_dir, "model.keras")))


if __name__ == "__main__":
    tf.test.main()
