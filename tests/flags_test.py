"""Tests of `flags/`: definition, parsing, rejection of bad values, the
flagfiles of the reference experiments, and `get_config`."""

import dataclasses
import glob
import json
import os

import tensorflow as tf
from absl import flags as absl_flags

import flags
import tfnode
from tests import test_util
from tfnode import adjoints
from tfnode import datasets
from tfnode import models
from tfnode import solvers
from tfnode import training

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGFILES = sorted(glob.glob(os.path.join(ROOT, "flags", "*.cfg")))


def parse(*argv):
    flag_values = absl_flags.FlagValues()
    flags.define_flags(flag_values)
    flags.define_flags(flag_values)  # idempotent
    flag_values(["train.py", *argv])
    return flag_values


def config_of(*argv):
    return flags.get_config(parse(*argv))


class DefineTest(test_util.TestCase):
    def test_every_flag_of_the_issue_is_defined(self):
        flag_values = parse()
        for name in (
            "network dataset data_dir solver adjoint steps Nt step_size "
            "rtol atol tol checkpoints seminorm optimizer lr lr_schedule "
            "momentum weight_decay epochs train_steps batch_size seed "
            "model_dir strategy resume test_solvers step_adaptation"
        ).split():
            self.assertIn(name, flag_values)

    def test_choices_come_from_the_registries(self):
        flag_values = parse()
        self.assertEqual(
            flag_values["solver"].parser.enum_values, solvers.names()
        )
        self.assertEqual(
            flag_values["adjoint"].parser.enum_values, adjoints.names()
        )
        self.assertEqual(
            flag_values["network"].parser.enum_values, models.names()
        )
        self.assertEqual(
            flag_values["dataset"].parser.enum_values, datasets.names()
        )
        for name in ("anode", "continuous", "reversible", "backprop"):
            self.assertIn(name, flag_values["adjoint"].parser.enum_values)

    def test_defaults_are_the_default_run(self):
        config = config_of()
        # The paper's solve: Euler, h = 1.
        paper = tfnode.SolveSettings(solver="euler", step_size=1.0)
        self.assertEqual(config, training.TrainConfig(settings=paper))
        resolved = training.resolve(config)
        self.assertEqual(resolved.network, "simple_odenet")
        self.assertEqual(resolved.dataset, "concentric_sphere2")
        self.assertEqual(resolved.settings, paper)
        self.assertEqual(training.resolve(training.TrainConfig()), resolved)

    def test_values_reach_the_config(self):
        config = config_of(
            "--network=tiny_resnet",
            "--depth=16",
            "--method=heun",
            "--dataset=cifar10",
            "--solver=rk2",
            "--Nt=4",
            "--adjoint=anode",
            "--checkpoints=3",
            "--optimizer=sgd",
            "--lr=0.1",
            "--momentum=0.9",
            "--weight_decay=5e-4",
            "--lr_schedule=step",
            "--lr_decay_epochs=150,250",
            "--batch_size=256",
            "--strategy=mirrored",
            "--devices=/cpu:0,/cpu:1",
            "--model_dir=/tmp/x",
            "--noresume",
            "--test_solvers=euler,rk4",
            "--test_factors=0.5,2",
        )
        expected = tfnode.SolveSettings.from_options(
            solver="rk2", steps=4, adjoint="anode", checkpoints=3
        )
        self.assertEqual(config.settings, expected)
        self.assertEqual(config.settings.adjoint.checkpoints, 3)
        self.assertEqual(config.depth, 16)
        self.assertEqual(config.method, "heun")
        self.assertEqual(config.lr_decay_epochs, (150, 250))
        self.assertEqual(config.devices, ("/cpu:0", "/cpu:1"))
        self.assertFalse(config.resume)
        self.assertEqual(config.test_solvers, ("euler", "rk4"))
        self.assertEqual(config.test_factors, (0.5, 2.0))
        training.resolve(config)

    def test_train_steps_replace_epochs(self):
        config = config_of("--epochs=5", "--train_steps=7")
        self.assertEqual((config.epochs, config.train_steps), (5, 7))


class RejectTest(test_util.TestCase):
    def assertRejected(self, argv, *fragments):
        with self.assertRaises(absl_flags.IllegalFlagValueError) as caught:
            parse(argv)
        for fragment in fragments:
            self.assertIn(fragment, str(caught.exception))

    def test_bad_enum_values_name_the_allowed_ones(self):
        self.assertRejected("--solver=rk5", "rk4", "dopri5", "euler")
        self.assertRejected("--adjoint=magic", "anode", "reversible")
        self.assertRejected("--network=vgg", "anode_sqnxt", "tiny_resnet")
        self.assertRejected("--dataset=imagenet", "cifar10", "mnist")
        self.assertRejected("--strategy=tpu", "mirrored", "multi_worker")
        self.assertRejected("--optimizer=lamb", "sgd", "adam", "rmsprop")
        self.assertRejected("--lr_schedule=linear", "constant", "cosine")
        self.assertRejected("--normalize=zscore", "per_channel", "symmetric")
        self.assertRejected("--augment=mixup", "crop_flip")
        self.assertRejected("--activation=gelu", "lrelu", "sigmoid")
        self.assertRejected("--method=rk4", "euler", "heun")
        self.assertRejected("--test_solvers=euler,rk5", "rk4")

    def test_bad_numbers(self):
        self.assertRejected("--lr=0", "--lr must be > 0")
        self.assertRejected("--lr=-0.1", "--lr must be > 0")
        self.assertRejected("--step_size=0", "--step_size must be > 0")
        self.assertRejected("--tol=-1", "--tol must be > 0")
        self.assertRejected("--batch_size=0", "not a positive integer")
        self.assertRejected("--Nt=0", "--steps=0", "not a positive integer")
        self.assertRejected("--epochs=0", "not a positive integer")
        self.assertRejected("--momentum=1.5", "range [0.0, 1.0]")
        self.assertRejected("--lr_decay_epochs=250,150", "increasing")
        self.assertRejected("--lr_decay_epochs=a", "increasing")

    def test_contradictions(self):
        with self.assertRaisesRegex(ValueError, "--steps .* or --step_size"):
            config_of("--steps=2", "--step_size=0.5")
        for argv, message in (
            (("--momentum=0.9",), "momentum applies to optimizer=sgd"),
            (("--lr_decay_epochs=10",), "lr_decay_epochs apply to"),
            (("--lr_schedule=step",), "needs lr_decay_epochs"),
            (("--devices=/cpu:0",), "devices apply to strategy=mirrored"),
            (("--nesterov", "--optimizer=sgd"), "nesterov needs"),
            (("--lr_decay_factor=0",), r"lr_decay_factor must be in \(0, 1\]"),
            (("--momentum=1", "--optimizer=sgd"), r"momentum must be in"),
        ):
            with self.assertRaisesRegex(ValueError, message):
                training.resolve(config_of(*argv))


class FlagfileTest(test_util.TestCase):
    def test_every_flagfile_parses_and_validates(self):
        self.assertLen(FLAGFILES, 7)
        for path in FLAGFILES:
            with self.subTest(os.path.basename(path)):
                config = training.resolve(config_of(f"--flagfile={path}"))
                self.assertIn(config.network, models.names())
                fields = {
                    f.name: getattr(config, f.name)
                    for f in dataclasses.fields(config)
                }
                self.assertEqual(config, training.TrainConfig(**fields))

    def test_anode_settings(self):
        for name in ("anode_resnet", "anode_sqnxt"):
            config = config_of(f"--flagfile={ROOT}/flags/{name}.cfg")
            self.assertEqual(config.network, name)
            self.assertEqual(
                (config.dataset, config.normalize, config.augment),
                ("cifar10", "per_channel", "crop_flip"),
            )
            self.assertEqual(
                (config.optimizer, config.lr, config.momentum),
                ("sgd", 0.1, 0.9),
            )
            self.assertEqual(config.weight_decay, 5e-4)
            self.assertEqual(config.lr_schedule, "step")
            self.assertEqual(config.lr_decay_epochs, (150, 250))
            self.assertEqual(config.lr_decay_factor, 0.1)
            self.assertEqual(config.epochs, 350)
            self.assertEqual(
                config.settings,
                tfnode.SolveSettings(solver="euler", steps=2, adjoint="anode"),
            )

    def test_other_papers(self):
        sphere = config_of(
            f"--flagfile={ROOT}/flags/resnet_after_all_sphere2.cfg"
        )
        self.assertEqual(
            sphere.settings,
            tfnode.SolveSettings(solver="euler", step_size=1 / 64),
        )
        self.assertEqual(sphere.train_steps, 10000)
        self.assertEqual(sphere.test_solvers, ("euler", "midpoint", "rk4"))
        cifar = config_of(
            f"--flagfile={ROOT}/flags/resnet_after_all_cifar10.cfg"
        )
        self.assertEqual(
            cifar.settings, tfnode.SolveSettings(solver="dopri5", tol=1e-3)
        )
        self.assertEqual(cifar.channels, 128)
        sander = config_of(f"--flagfile={ROOT}/flags/sander_tiny_resnet.cfg")
        self.assertEqual(sander.lr_decay_epochs, (30, 60))
        self.assertEqual(sander.settings.adjoint.name, "reversible")
        self.assertEqual(
            sander.settings,
            tfnode.SolveSettings(solver="euler", steps=8, adjoint="reversible"),
        )
        blog = config_of(f"--flagfile={ROOT}/flags/blog_mnist.cfg")
        self.assertEqual(
            (blog.normalize, blog.batch_size, blog.lr), ("symmetric", 16, 1e-3)
        )

    def test_command_line_overrides_a_flagfile(self):
        config = config_of(
            f"--flagfile={ROOT}/flags/anode_resnet.cfg",
            "--solver=rk4",
            "--lr=0.05",
        )
        self.assertEqual(
            config.settings,
            tfnode.SolveSettings(solver="rk4", steps=2, adjoint="anode"),
        )
        self.assertEqual(config.lr, 0.05)


class SolveSettingsFlagsTest(test_util.TestCase):
    def test_flags_build_one_solve_settings(self):
        S = tfnode.SolveSettings
        for argv, expected in (
            # Unset: the network's paper's solve.
            (("--network=anode_resnet",), S(solver="euler", steps=2)),
            (("--network=mnist_odenet",), S(solver="dopri5", tol=0.1)),
            (
                ("--network=tiny_resnet", "--depth=4", "--method=heun"),
                S(solver="heun", steps=3),
            ),
            # A solver alone keeps the paper's grid or tolerances.
            (
                ("--network=anode_sqnxt", "--solver=rk4"),
                S(solver="rk4", steps=2),
            ),
            (("--solver=dopri5",), S(solver="dopri5", tol=1e-8)),
            (("--network=anode_sqnxt", "--solver=tsit5"), S(solver="tsit5")),
            # Given grid or tolerances replace the paper's.
            (("--solver=rk4", "--Nt=4"), S(solver="rk4", steps=4)),
            (
                ("--solver=bosh3", "--rtol=1e-4", "--max_num_steps=50"),
                S(solver="bosh3", rtol=1e-4, max_num_steps=50),
            ),
            (
                ("--solver=dopri5", "--adjoint=continuous", "--seminorm"),
                S(
                    solver="dopri5",
                    tol=1e-8,
                    adjoint=tfnode.adjoints.Continuous(seminorm=True),
                ),
            ),
        ):
            with self.subTest(argv):
                self.assertEqual(config_of(*argv).settings, expected)
                self.assertEqual(flags.solve_settings(parse(*argv)), expected)

    def test_bad_solve_flags_name_the_problem(self):
        with self.assertRaisesRegex(ValueError, "fixed-step method"):
            config_of("--network=mnist_odenet", "--solver=euler")
        with self.assertRaisesRegex(ValueError, "checkpoints= is an option"):
            config_of("--checkpoints=2")
        with self.assertRaisesRegex(ValueError, "fixed grid .* tolerances"):
            config_of("--solver=dopri5", "--steps=2", "--tol=1e-3")

    def test_settings_survive_the_saved_config(self):
        config = config_of(
            "--network=anode_sqnxt", "--adjoint=anode", "--checkpoints=2"
        )
        saved = json.loads(json.dumps(config.to_dict()))
        self.assertEqual(saved["settings"], config.settings.get_config())
        self.assertEqual(training.TrainConfig.from_dict(saved), config)
        self.assertNotEqual(
            config.fingerprint(),
            config.replace(
                settings=config.settings.replace(checkpoints=3)
            ).fingerprint(),
        )


class ConfigTest(test_util.TestCase):
    def test_fingerprint_ignores_where_and_how_a_run_executes(self):
        base = training.TrainConfig()
        self.assertEqual(
            base.fingerprint(),
            base.replace(
                model_dir="/elsewhere",
                strategy="mirrored",
                verbose=0,
                data_dir="/data",
            ).fingerprint(),
        )
        self.assertNotEqual(
            base.fingerprint(), base.replace(lr=0.1).fingerprint()
        )
        self.assertNotEqual(
            base.fingerprint(), base.replace(seed=1).fingerprint()
        )

    def test_round_trip(self):
        config = config_of("--lr_schedule=step", "--lr_decay_epochs=3,5")
        self.assertEqual(
            training.TrainConfig.from_dict(config.to_dict()), config
        )
        with self.assertRaisesRegex(ValueError, "Unknown TrainConfig field"):
            training.TrainConfig.from_dict({"learning_rate": 1.0})


if __name__ == "__main__":
    tf.test.main()
