"""What tfnode's wrappers of TensorFlow Probability's solvers share."""

import abc

import numpy as np
import tensorflow as tf

from tfnode.solvers.base import Solver
from tfnode.stepping import SolveStats
from tfnode.stepping import Status
from tfnode.stepping import in_xla_context

__all__ = ["TFPSolver"]


class TFPSolver(Solver):
    """A `tfp.math.ode` solver behind the tfnode solver interface.

    TFP's solvers integrate forwards in time (tfnode flips the time axis for
    decreasing `t`), interpolate their outputs, measure their error with
    their own norm, and run loops that are not open to tfnode's step replay,
    so they support the `continuous` gradient only.

    Subclasses give `name`, `order`, `failure_message`, `make(settings)`
    (the TFP solver object) and `num_fn_evals(diagnostics, settings)`.
    """

    adaptive = True
    supports_fixed_grid = False
    replayable = False
    uses_tfnode_norm = False
    can_land_on_outputs = False
    failure_message = None
    # Called eagerly, run the solve in a `tf.function` (TFP's loops retrace
    # inner functions at every step when run op by op).
    trace_when_eager = False

    def __eq__(self, other):
        return type(other) is type(self)

    def __hash__(self):
        return hash(type(self))

    @abc.abstractmethod
    def make(self, settings):
        """The `tfp.math.ode.Solver` for `settings`."""

    @abc.abstractmethod
    def num_fn_evals(self, diagnostics, settings):
        """Calls of `func` in the solve, from TFP's diagnostics (int32)."""

    def integrate(self, func, y0, t, settings, **unused_loop_settings):
        direction = tf.sign(t[-1] - t[0])
        solver = self.make(settings)

        def ode_fn(s, y):
            return [direction * d for d in func(direction * s, list(y))]

        def solve(y0, s):
            return solver.solve(ode_fn, s[0], y0, solution_times=s)

        if self.trace_when_eager and tf.executing_eagerly():
            solve = tf.function(solve)
        results = solve(list(y0), direction * t)
        ok = results.diagnostics.status == 0
        status = tf.where(ok, Status.SUCCESS, Status.MAX_NUM_STEPS)
        zero = tf.constant(0, tf.int32)
        nfe = self.num_fn_evals(results.diagnostics, settings)
        stats = SolveStats(nfe, zero, zero, status)
        return self._checked(results.states, ok), stats, None

    def _checked(self, states, ok):
        """The states, raising on a failed solve (NaN under XLA, where
        asserts are no-ops)."""
        if in_xla_context():
            return [
                tf.where(ok, y, tf.constant(np.nan, y.dtype)) for y in states
            ]
        check = tf.debugging.Assert(ok, [self.failure_message])
        with tf.control_dependencies([check]):
            return [tf.identity(y) for y in states]
