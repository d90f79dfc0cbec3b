"""Flags of the solver-robustness tools: cross-solver evaluation and step
adaptation (Ott et al., ResNet After All?, ICLR 2021).

```none
--test_solvers=euler,midpoint,rk4   evaluate with each (default: none)
--test_factors=0.5,1,2              h_test = h_train / factor,
                                    tol_test = tol_train * factor
--step_adaptation                   adapt the step (tolerance) in training
--adaptation_threshold=0.1          largest accepted accuracy gap
--adaptation_interval=50            training steps between adaptations
--adaptation_max_steps=500          most fixed steps per block
```

`evaluation_kwargs()` and `adaptation_kwargs()` turn the parsed flags into
the arguments of `tfnode.robustness.evaluate_with_solvers` and
`tfnode.robustness.StepAdaptation`.
"""

import math

from absl import flags as absl_flags

from flags._define import defines
from tfnode import solvers
from tfnode import validation

__all__ = [
    "adaptation_kwargs",
    "define_robustness_flags",
    "evaluation_kwargs",
]


class _SolverListParser(absl_flags.ListParser):
    """Comma-separated solver names, each one of `tfnode.solvers.names()`."""

    def parse(self, argument):
        names = super().parse(argument)
        for name in names:
            validation.choice("test_solvers", name, solvers.names())
        return names

    def flag_type(self):
        return "comma-separated list of solvers"


class _FactorListParser(absl_flags.ListParser):
    """Comma-separated numbers > 0."""

    def parse(self, argument):
        if isinstance(argument, (list, tuple)):
            values = list(argument)
        else:
            values = super().parse(argument)
        factors = []
        for value in values:
            try:
                factor = validation.positive_float("factor", float(value))
            except (TypeError, ValueError):
                factor = math.nan
            if not math.isfinite(factor):
                raise ValueError(
                    f"test_factors must be numbers > 0 (e.g. 0.5,1,2); got "
                    f"{value!r}."
                )
            factors.append(factor)
        return factors

    def flag_type(self):
        return "comma-separated list of numbers > 0"


NAMES = (
    "test_solvers",
    "test_factors",
    "step_adaptation",
    "adaptation_threshold",
    "adaptation_interval",
    "adaptation_max_steps",
)


@defines(NAMES)
def define_robustness_flags(flag_values):
    """Defines the robustness flags on `flag_values`."""
    serializer = absl_flags.CsvListSerializer(",")
    absl_flags.DEFINE(
        _SolverListParser(),
        "test_solvers",
        "",
        "After training, evaluate the model with each of these solvers at "
        "each --test_factors (empty: no evaluation). Choices: "
        f"{', '.join(solvers.names())}.",
        flag_values,
        serializer,
    )
    absl_flags.DEFINE(
        _FactorListParser(),
        "test_factors",
        "0.5,1,2",
        "Factors of the cross-solver evaluation: fixed-step solvers test "
        "with h_train / factor (factor times the training steps), adaptive "
        "ones with tol_train * factor.",
        flag_values,
        serializer,
    )
    absl_flags.DEFINE_bool(
        "step_adaptation",
        False,
        "Adapt the step size (fixed-step solvers) or tolerance (adaptive "
        "ones) during training, so the model stays solver-independent "
        "(Ott et al. 2021, Algorithms 2 and 3).",
        flag_values=flag_values,
    )
    absl_flags.DEFINE_float(
        "adaptation_threshold",
        0.1,
        "Step adaptation: the largest accepted gap between the accuracies "
        "with the training and the test solver, in [0, 1].",
        lower_bound=0.0,
        upper_bound=1.0,
        flag_values=flag_values,
    )
    absl_flags.DEFINE_integer(
        "adaptation_interval",
        50,
        "Step adaptation: training steps (batches) between adaptations.",
        lower_bound=1,
        flag_values=flag_values,
    )
    absl_flags.DEFINE_integer(
        "adaptation_max_steps",
        500,
        "Step adaptation: the most fixed steps per ODE block.",
        lower_bound=1,
        flag_values=flag_values,
    )


def evaluation_kwargs(flag_values=absl_flags.FLAGS):
    """`solvers` and `factors` for `evaluate_with_solvers`, or `None` when
    `--test_solvers` is empty."""
    if not flag_values.test_solvers:
        return None
    return dict(
        solvers=list(flag_values.test_solvers),
        factors=list(flag_values.test_factors),
    )


def adaptation_kwargs(flag_values=absl_flags.FLAGS):
    """`threshold`, `interval` and `max_steps` for `StepAdaptation`, or
    `None` without `--step_adaptation`."""
    if not flag_values.step_adaptation:
        return None
    return dict(
        threshold=flag_values.adaptation_threshold,
        interval=flag_values.adaptation_interval,
        max_steps=flag_values.adaptation_max_steps,
    )
