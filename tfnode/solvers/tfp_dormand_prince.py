"""`tfp_dopri5`: TensorFlow Probability's Dormand-Prince solver behind the
tfnode solver interface."""

import tensorflow as tf
import tensorflow_probability as tfp

from tfnode.solvers.tfp_solver import TFPSolver

__all__ = ["TFPDormandPrince"]


class TFPDormandPrince(TFPSolver):
    """Runs `tfp.math.ode.DormandPrince` (Dormand & Prince 1980).

    TFP's solver is adaptive only, integrates forwards in time (tfnode flips
    the time axis for decreasing `t`), and reports its own NFE. Its loop is
    not open to tfnode's step replay, so it supports the `continuous`
    gradient only; TFP's own error norm is used (no seminorm). TFP always
    interpolates its outputs (`interpolate=False` is refused).
    """

    name = "tfp_dopri5"
    order = 5
    error_order = 4
    fsal = True
    num_stages = 7
    failure_message = (
        "odeint: tfp_dopri5 failed (TFP status != 0); raise max_num_steps or "
        "loosen rtol/atol."
    )

    def make(self, settings):
        first_step = settings.first_step
        return tfp.math.ode.DormandPrince(
            rtol=settings.rtol,
            atol=settings.atol,
            first_step_size=1e-3 if first_step is None else first_step,
            safety_factor=settings.safety,
            min_step_size_factor=settings.dfactor,
            max_step_size_factor=settings.ifactor,
            max_num_steps=settings.max_num_steps,
        )

    def num_fn_evals(self, diagnostics, settings):
        del settings
        return tf.cast(diagnostics.num_ode_fn_evaluations, tf.int32)
