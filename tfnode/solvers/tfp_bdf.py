"""`bdf`: TensorFlow Probability's BDF solver for stiff problems, behind the
tfnode solver interface."""

import math

import tensorflow as tf
import tensorflow_probability as tfp

from tfnode import norms
from tfnode.solvers.tfp_solver import TFPSolver

__all__ = ["TFPBDF"]



class TFPBDF(TFPSolver):
    """Runs `tfp.math.ode.BDF`, an implicit solver for stiff problems.

    Variable-order (1 to 5), variable-step backward differentiation formulas
    in the quasi-constant step-size form of Shampine & Reichelt (1997), the
    method of MATLAB's `ode15s` and SciPy's `BDF`. Each step solves a
    nonlinear system by Newton's method with the Jacobian `df/dy`, which TFP
    computes by autodiff of `func`: `func` must be differentiable in `y`.

    The whole state is one system of `N` elements (all leaves, batch
    included) with a dense `N x N` Jacobian and its QR factorisation, so a
    step costs `O(N^3)`: meant for stiff systems of up to a few hundred
    elements, not for Neural ODE image states.

    Adaptive only; integrates forwards in time (tfnode flips the time axis
    for decreasing `t`). Called eagerly, the solve runs in a `tf.function`
    traced at each call (op by op, TFP's loops retrace the Jacobian at every
    step and are over ten times slower); it runs in `tf.function` and under
    XLA too. Its loop is TFP's, not open to step replay, so it supports the
    `continuous` gradient only, whose backward solve of the state is
    accurate while `lambda_max * gap` (the fastest decay rate times the
    spacing of `t`) stays below about 10: decaying modes grow backwards in
    time (docs/stiff.md).

    `SolveSettings` map to TFP's arguments as `rtol`, `atol`, `first_step`
    (TFP's estimate when unset), `safety`, `ifactor` (largest growth),
    `dfactor` (largest shrink) and `max_num_steps` (attempts, counting
    failed Newton solves). TFP measures the error with the Euclidean norm
    of the scaled error (`sqrt(N)` times the RMS norm), so `norm="max"` or
    a custom norm, `min_step > 0` and a finite `max_step` cannot be
    honoured and raise `ValueError`.

    `SolveStats.num_fn_evals` counts every call of `func` in the forward
    solve: TFP's Newton iterations, the calls of its start (the first
    derivative, and two more for its first-step estimate) and one per
    Jacobian evaluation (each Jacobian also takes `N` vectorised VJPs
    through `func`). TFP does not report accepted or rejected steps: both
    are 0.

    #### References

    [1]: Shampine, Reichelt. The MATLAB ODE Suite. SIAM Journal on
         Scientific Computing 18(1), 1997.
    """

    name = "bdf"
    order = 5  # The highest; the order varies from 1 to 5.
    failure_message = (
        "odeint: solver='bdf' took max_num_steps steps (accepted steps, "
        "rejected steps and failed Newton solves) without reaching the last "
        "time; raise max_num_steps or loosen rtol/atol."
    )
    trace_when_eager = True

    def check_settings(self, settings):
        _check_settings(settings)

    def make(self, settings):
        return tfp.math.ode.BDF(
            rtol=settings.rtol,
            atol=settings.atol,
            first_step_size=settings.first_step,
            safety_factor=settings.safety,
            min_step_size_factor=settings.dfactor,
            max_step_size_factor=settings.ifactor,
            max_num_steps=settings.max_num_steps,
        )

    def num_fn_evals(self, diagnostics, settings):
        # TFP's first-step estimate calls func twice beyond the first call.
        start = 1 if settings.first_step is not None else 3
        return (
            tf.cast(diagnostics.num_ode_fn_evaluations, tf.int32)
            + tf.cast(diagnostics.num_jacobian_evaluations, tf.int32)
            + start
        )


def _check_settings(settings):
    """Raises for the settings TFP's BDF has no equivalent of."""
    unsupported = []
    if settings.min_step > 0:
        unsupported.append(f"min_step={settings.min_step!r}")
    if not math.isinf(settings.max_step):
        unsupported.append(f"max_step={settings.max_step!r}")
    if settings.norm is not norms.rms_norm:
        unsupported.append("norm= other than 'rms'")
    if unsupported:
        raise ValueError(
            f"solver='bdf' cannot honour {', '.join(unsupported)}: TFP's BDF "
            "has no smallest or largest step and measures its error with "
            "the Euclidean norm of the scaled error. Leave them unset, or "
            "use a tfnode Runge-Kutta solver."
        )
