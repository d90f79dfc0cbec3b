"""Solver robustness: is a trained Neural ODE an ODE? (Ott et al. 2021).

- `evaluate_with_solvers`: test a trained model with other solvers, step
  sizes and tolerances; `plot_solver_table` / `plot_solver_sweep` draw it.
- `StepAdaptation`: a Keras callback that adapts the training step size (or
  tolerance) so the model stays solver-independent at the smallest cost.
- `step_adaptation_initial_step`: Hairer's starting step, batch variant.
"""

from tfnode.robustness import test_solvers
from tfnode.robustness.adaptation import StepAdaptation
from tfnode.robustness.evaluation import evaluate_with_solvers
from tfnode.robustness.evaluation import scaled_settings
from tfnode.robustness.initial_step import step_adaptation_initial_step
from tfnode.robustness.plotting import plot_solver_sweep
from tfnode.robustness.plotting import plot_solver_table

__all__ = [
    "StepAdaptation",
    "evaluate_with_solvers",
    "plot_solver_sweep",
    "plot_solver_table",
    "step_adaptation_initial_step",
    "scaled_settings",
    "test_solvers",
]
