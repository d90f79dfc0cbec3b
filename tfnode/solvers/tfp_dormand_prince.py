"""`tfp_dopri5`: TensorFlow Probability's Dormand-Prince solver behind the
tfnode solver interface."""

import tensorflow as tf
import tensorflow_probability as tfp

from tfnode.solvers.base import Solver
from tfnode.stepping import SolveStats
from tfnode.stepping import Status

__all__ = ["TFPDormandPrince"]


class TFPDormandPrince(Solver):
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
    adaptive = True
    fsal = True
    num_stages = 7
    supports_fixed_grid = False
    replayable = False
    uses_tfnode_norm = False
    can_land_on_outputs = False

    def __eq__(self, other):
        return isinstance(other, TFPDormandPrince)

    def __hash__(self):
        return hash(TFPDormandPrince)

    def integrate(self, func, y0, t, settings, **unused_loop_settings):
        direction = tf.sign(t[-1] - t[0])
        first_step = settings.first_step
        solver = tfp.math.ode.DormandPrince(
            rtol=settings.rtol,
            atol=settings.atol,
            first_step_size=1e-3 if first_step is None else first_step,
            safety_factor=settings.safety,
            min_step_size_factor=settings.dfactor,
            max_step_size_factor=settings.ifactor,
            max_num_steps=settings.max_num_steps,
        )

        def ode_fn(s, y):
            dy = func(direction * s, list(y))
            return [direction * d for d in dy]

        s = direction * t
        results = solver.solve(
            ode_fn, s[0], list(y0), solution_times=s
        )
        diag = results.diagnostics
        status = tf.where(
            diag.status == 0, Status.SUCCESS, Status.MAX_NUM_STEPS
        )
        with tf.control_dependencies(
            [
                tf.debugging.Assert(
                    diag.status == 0,
                    ["odeint: tfp_dopri5 failed (TFP status != 0); raise "
                     "max_num_steps or loosen rtol/atol."],
                )
            ]
        ):
            states = [tf.identity(s) for s in results.states]
        nfe = tf.cast(diag.num_ode_fn_evaluations, tf.int32)
        zero = tf.constant(0, tf.int32)
        return states, SolveStats(nfe, zero, zero, status), None
