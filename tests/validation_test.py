"""The argument checks: what they accept, and messages that name the
argument, the allowed values and the value got."""

import re

import numpy as np
import tensorflow as tf

from tests import test_util
from tfnode import validation
from tfnode.training import config as config_lib


class IntChecksTest(test_util.TestCase):
    @test_util.parameterized.parameters(0, 1, 7, np.int64(3))
    def test_non_negative_int_accepts(self, value):
        result = validation.non_negative_int("seed", value)
        self.assertEqual(result, int(value))
        self.assertIs(type(result), int)

    @test_util.parameterized.parameters(-1, 1.0, True, "2", None)
    def test_non_negative_int_message(self, value):
        with self.assertRaisesRegex(
            ValueError,
            re.escape(f"seed must be an int >= 0; got {value!r}."),
        ):
            validation.non_negative_int("seed", value)

    @test_util.parameterized.parameters(0, -3, 2.5, False)
    def test_positive_int_message(self, value):
        with self.assertRaisesRegex(
            ValueError,
            re.escape(f"steps must be an int >= 1; got {value!r}."),
        ):
            validation.positive_int("steps", value)


class IntervalTest(test_util.TestCase):
    @test_util.parameterized.named_parameters(
        ("both", "both", "[0, 1]", (0, 0.5, 1), (-0.1, 1.1)),
        ("left", "left", "[0, 1)", (0, 0.5), (1, -0.1)),
        ("right", "right", "(0, 1]", (0.5, 1), (0, 1.1)),
        ("neither", "neither", "(0, 1)", (0.5,), (0, 1)),
    )
    def test_ends(self, closed, shown, inside, outside):
        for value in inside:
            self.assertEqual(
                validation.in_interval("x", value, 0, 1, closed=closed),
                float(value),
            )
        for value in (*outside, float("nan"), True, "0.5", None):
            with self.assertRaisesRegex(
                ValueError,
                re.escape(f"x must be in {shown}; got {value!r}."),
            ):
                validation.in_interval("x", value, 0, 1, closed=closed)

    def test_default_is_open_on_the_left(self):
        # The existing call sites (safety, dfactor, lr_decay_factor).
        self.assertEqual(validation.in_interval("dfactor", 1, 0, 1), 1.0)
        with self.assertRaisesRegex(
            ValueError, re.escape("dfactor must be in (0, 1]; got 0.")
        ):
            validation.in_interval("dfactor", 0, 0, 1)

    def test_unknown_closed(self):
        with self.assertRaisesRegex(ValueError, "closed must be one of"):
            validation.in_interval("x", 0.5, 0, 1, closed="open")


class TrainConfigChecksTest(test_util.TestCase):
    @test_util.parameterized.named_parameters(
        ("seed", {"seed": -1}, "seed must be an int >= 0; got -1."),
        ("data_seed", {"data_seed": 1.5}, "data_seed must be an int >= 0"),
        (
            "momentum_one",
            {"optimizer": "sgd", "momentum": 1.0},
            "momentum must be in [0, 1); got 1.0.",
        ),
        (
            "momentum_negative",
            {"optimizer": "sgd", "momentum": -0.1},
            "momentum must be in [0, 1); got -0.1.",
        ),
        (
            "lr_decay_factor",
            {"lr_decay_factor": 0.0},
            "lr_decay_factor must be in (0, 1]; got 0.0.",
        ),
        (
            "adaptation_threshold",
            {"adaptation_threshold": 1.5},
            "adaptation_threshold must be in [0, 1]; got 1.5.",
        ),
        (
            "adaptation_interval",
            {"adaptation_interval": 0},
            "adaptation_interval must be an int >= 1; got 0.",
        ),
        (
            "adaptation_max_steps",
            {"adaptation_max_steps": -5},
            "adaptation_max_steps must be an int >= 1; got -5.",
        ),
        (
            "test_factors",
            {"test_factors": (1.0, 0.0)},
            "test_factors must be a number > 0; got 0.0.",
        ),
        (
            "lr_decay_epochs",
            {"lr_schedule": "step", "lr_decay_epochs": (0, 5)},
            "lr_decay_epochs must be an int >= 1; got 0.",
        ),
    )
    def test_rejected(self, changes, message):
        config = config_lib.TrainConfig(**changes)
        with self.assertRaisesRegex(ValueError, re.escape(message)):
            config_lib.validate(config)

    def test_ends_that_are_allowed(self):
        config_lib.validate(
            config_lib.TrainConfig(
                optimizer="sgd",
                momentum=0.0,
                seed=0,
                data_seed=0,
                lr_decay_factor=1.0,
                adaptation_threshold=1.0,
            )
        )
        config_lib.validate(config_lib.TrainConfig(adaptation_threshold=0.0))


if __name__ == "__main__":
    tf.test.main()
