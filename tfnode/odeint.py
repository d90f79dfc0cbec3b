"""`odeint`: the one entry point of every solve and every gradient method."""

import inspect
import math
import numbers

import numpy as np
import tensorflow as tf

from tfnode import adjoints
from tfnode import solvers
from tfnode.adjoints.base import Problem
from tfnode.norms import rms_norm
from tfnode.stepping import IntegrationOptions
from tfnode.validation import positive_float
from tfnode.validation import positive_int
from tfnode.vector_field import as_time_field
from tfnode.vector_field import build_for_state

__all__ = ["odeint", "validate_settings"]

_INTEGRATION_SETTINGS = (
    "steps",
    "step_size",
    "rtol",
    "atol",
    "tol",
    "first_step",
    "min_step",
    "max_step",
    "safety",
    "ifactor",
    "dfactor",
    "max_num_steps",
    "norm",
)
DEFAULT_RTOL = 1e-3
DEFAULT_ATOL = 1e-6


@tf.autograph.experimental.do_not_convert
def odeint(
    func,
    y0,
    t,
    *,
    solver="dopri5",
    steps=None,
    step_size=None,
    rtol=None,
    atol=None,
    tol=None,
    first_step=None,
    min_step=0.0,
    max_step=math.inf,
    safety=0.9,
    ifactor=10.0,
    dfactor=0.2,
    max_num_steps=10_000,
    norm=None,
    adjoint="backprop",
    checkpoints=None,
    seminorm=False,
    adjoint_solver=None,
    adjoint_rtol=None,
    adjoint_atol=None,
    adjoint_steps=None,
    args=(),
    nfe_counter=None,
    return_stats=False,
):
    """Solves `dy/dt = func(t, y)` from `y(t[0]) = y0`; returns `y` at `t`.

    Fixed-step solvers (`euler`, `midpoint`/`rk2`, `heun`, `rk4`, `rk38`)
    take `steps` or `step_size`; adaptive ones (`fehlberg2`, `bosh3`,
    `dopri5`, `tsit5`, `tfp_dopri5`) take tolerances, or run on a fixed grid
    when given `steps` or `step_size`. The loops are `tf.while_loop`s: the
    traced graph does not grow with the number of steps, and `odeint` runs
    eagerly, in `tf.function` and under `jit_compile=True`.

    ```none
    steps=N        N steps between consecutive times of t (ANODE's Nt)
    step_size=h    ceil(|t[i+1] - t[i]| / h) steps, the last one clamped
    ```

    Adaptive steps are clamped to land on every time of `t`, so outputs are
    exact solver states (no interpolation). The step-size controller is not
    differentiated: gradients treat the accepted steps as constants.

    Args:
        func: `func(t, y, *args) -> dy/dt`, with `dy/dt` structured like `y`.
            Any callable; a Keras layer or model whose `call` takes only the
            state is accepted as an autonomous field `f(y)`.
        y0: Initial state: a floating tensor, or a nested structure (tuple,
            list, dict) of tensors of one floating dtype.
        t: 1-D times, at least 2, strictly increasing or decreasing.
        solver: Solver name (see `tfnode.solvers.names()`).
            Default value: `"dopri5"`.
        steps: Fixed grid: steps per interval of `t`, an int >= 1.
        step_size: Fixed grid: step size `h > 0`.
        rtol: Relative tolerance. Default value: `1e-3`.
        atol: Absolute tolerance. Default value: `1e-6`.
        tol: Sets both `rtol` and `atol` ('ResNet After All' convention).
        first_step: Size of the first step; chosen by Hairer's algorithm
            when unset.
        min_step: Smallest step; steps of this size are accepted whatever
            their error estimate. Default value: `0`.
        max_step: Largest step. Default value: `inf`.
        safety: Safety factor of the step-size rule. Default value: `0.9`.
        ifactor: Largest growth of the step in one step. Default: `10`.
        dfactor: Largest shrink of the step in one step. Default: `0.2`.
        max_num_steps: Attempts (accepted and rejected) before the solve
            stops with an error. Default value: `10000`.
        norm: Error norm, a callable on the list of scaled errors.
            Default value: `tfnode.norms.rms_norm`.
        adjoint: Gradient method (see `tfnode.adjoints.names()`):
            `"backprop"`, `"anode"`, `"continuous"` or `"reversible"`.
            Default value: `"backprop"`.
        checkpoints: `anode` only: number of states kept in memory for
            binomial (revolve) checkpointing; every step's state when unset.
        seminorm: `continuous` only: leave the parameter adjoints out of the
            backward step-size control (Kidger et al. 2021).
        adjoint_solver: `continuous` only: solver of the backward solve.
        adjoint_rtol: `continuous` only: its relative tolerance.
        adjoint_atol: `continuous` only: its absolute tolerance.
        adjoint_steps: `continuous` only: its fixed steps per interval.
        args: Extra tensors (a tuple, possibly nested) passed to `func` after
            `y`; gradients reach them under every method.
        nfe_counter: A `tfnode.NFECounter` receiving the forward and
            backward numbers of function evaluations.
        return_stats: Also return the forward `SolveStats`.

    Returns:
        ys: The state at every time of `t`, stacked on a new leading axis;
            nested like `y0`.
        stats: `SolveStats` (NFE, accepted and rejected steps, status), when
            `return_stats`.

    Raises:
        ValueError: for an unknown solver or gradient method, or a bad
            option (the message names the argument and the allowed values).
        TypeError: for a non-floating `y0` or a `func` whose output does not
            match `y`.
        tf.errors.InvalidArgumentError: when an adaptive solve reaches
            `max_num_steps`, its step underflows or its state turns NaN/Inf
            (under XLA the states come back as NaN instead).

    #### References

    [1]: Chen, Rubanova, Bettencourt, Duvenaud. Neural Ordinary Differential
         Equations. NeurIPS, 2018.
    [2]: Hairer, Norsett, Wanner. Solving Ordinary Differential Equations I.
         Springer, 1993.
    """
    solver_obj, method, options, adjoint_options = validate_settings(
        solver=solver,
        adjoint=adjoint,
        steps=steps,
        step_size=step_size,
        rtol=rtol,
        atol=atol,
        tol=tol,
        first_step=first_step,
        min_step=min_step,
        max_step=max_step,
        safety=safety,
        ifactor=ifactor,
        dfactor=dfactor,
        max_num_steps=max_num_steps,
        norm=norm,
        checkpoints=checkpoints,
        seminorm=seminorm,
        adjoint_solver=adjoint_solver,
        adjoint_rtol=adjoint_rtol,
        adjoint_atol=adjoint_atol,
        adjoint_steps=adjoint_steps,
    )
    structure = y0
    y0_flat = [tf.convert_to_tensor(y) for y in tf.nest.flatten(y0)]
    dtype = _state_dtype(y0_flat)
    t = _validate_times(t, dtype)
    args = tuple(args) if isinstance(args, list) else args
    if not isinstance(args, tuple):
        raise TypeError(
            f"args must be a tuple of tensors passed to func after y; got "
            f"{type(args).__name__}."
        )
    args_flat = [tf.convert_to_tensor(a) for a in tf.nest.flatten(args)]
    build_for_state(func, tf.nest.pack_sequence_as(structure, y0_flat))
    problem = Problem(
        func=_flat_field(func, structure, y0_flat, args),
        y0=y0_flat,
        t=t,
        args=args_flat,
        solver=solver_obj,
        options=options,
        adjoint_options=adjoint_options,
        nfe_counter=nfe_counter,
    )
    ys, stats = method.solve(problem)
    if nfe_counter is not None:
        nfe_counter.update_forward(stats.num_fn_evals)
    ys = tf.nest.pack_sequence_as(structure, ys)
    return (ys, stats) if return_stats else ys


def validate_settings(
    solver="dopri5",
    adjoint="backprop",
    *,
    checkpoints=None,
    seminorm=False,
    adjoint_solver=None,
    adjoint_rtol=None,
    adjoint_atol=None,
    adjoint_steps=None,
    **integration,
):
    """Checks `odeint`'s settings without solving anything.

    Takes `odeint`'s keyword arguments (all but `func`, `y0`, `t`, `args`,
    `nfe_counter` and `return_stats`).

    Returns:
        solver: The solver object.
        method: The gradient method object.
        options: The `IntegrationOptions`.
        adjoint_options: The gradient method's options, a dict.

    Raises:
        ValueError, TypeError: as `odeint` does for a bad setting.
    """
    solver_obj = solvers.get(solver)
    method = adjoints.get(adjoint)
    defaults = {
        name: inspect.signature(odeint).parameters[name].default
        for name in _INTEGRATION_SETTINGS
    }
    unknown = set(integration) - set(defaults)
    if unknown:
        raise TypeError(
            f"Unknown odeint setting(s) {sorted(unknown)}; choose from "
            f"{sorted(defaults)}."
        )
    options = _integration_options(solver_obj, **{**defaults, **integration})
    adjoint_options = {
        "checkpoints": checkpoints,
        "seminorm": seminorm,
        "adjoint_solver": adjoint_solver,
        "adjoint_rtol": adjoint_rtol,
        "adjoint_atol": adjoint_atol,
        "adjoint_steps": adjoint_steps,
    }
    method.validate(solver_obj, options, adjoint_options)
    return solver_obj, method, options, adjoint_options


def _integration_options(
    solver, *, steps, step_size, rtol, atol, tol, norm, **controls
):
    if steps is not None and step_size is not None:
        raise ValueError(
            "Pass steps= or step_size=, not both; got "
            f"steps={steps!r}, step_size={step_size!r}."
        )
    if steps is not None:
        steps = positive_int("steps", steps)
    if step_size is not None:
        step_size = positive_float("step_size", step_size)
    if tol is not None:
        if rtol is not None or atol is not None:
            raise ValueError(
                "tol sets both rtol and atol; pass tol= or rtol=/atol=, "
                f"not both; got tol={tol!r}, rtol={rtol!r}, atol={atol!r}."
            )
        rtol = atol = positive_float("tol", tol)
    rtol = DEFAULT_RTOL if rtol is None else positive_float("rtol", rtol)
    atol = DEFAULT_ATOL if atol is None else positive_float("atol", atol)
    fixed = steps is not None or step_size is not None
    if not fixed and not solver.adaptive:
        adaptive = [n for n in solvers.names() if solvers.get(n).adaptive]
        raise ValueError(
            f"solver={solver.name!r} is a fixed-step method: pass steps= (an "
            "int >= 1) or step_size= (> 0), or choose an adaptive solver: "
            f"{', '.join(adaptive)}."
        )
    if fixed and solver.tableau is None:
        raise ValueError(
            f"solver={solver.name!r} is adaptive only; steps= and step_size= "
            "need a tfnode Runge-Kutta solver."
        )
    first_step = controls["first_step"]
    if first_step is not None:
        first_step = positive_float("first_step", first_step)
    min_step, max_step = controls["min_step"], controls["max_step"]
    if not isinstance(min_step, numbers.Real) or min_step < 0:
        raise ValueError(f"min_step must be >= 0; got {min_step!r}.")
    max_step = positive_float("max_step", max_step)
    if max_step < min_step:
        raise ValueError(
            f"max_step must be >= min_step; got max_step={max_step!r}, "
            f"min_step={min_step!r}."
        )
    safety = controls["safety"]
    if not isinstance(safety, numbers.Real) or not 0 < safety <= 1:
        raise ValueError(f"safety must be in (0, 1]; got {safety!r}.")
    ifactor, dfactor = controls["ifactor"], controls["dfactor"]
    if not isinstance(ifactor, numbers.Real) or ifactor < 1:
        raise ValueError(f"ifactor must be >= 1; got {ifactor!r}.")
    if not isinstance(dfactor, numbers.Real) or not 0 < dfactor <= 1:
        raise ValueError(f"dfactor must be in (0, 1]; got {dfactor!r}.")
    max_num_steps = positive_int("max_num_steps", controls["max_num_steps"])
    if norm is not None and not callable(norm):
        raise TypeError(
            f"norm must be a callable on a list of tensors; got {norm!r}."
        )
    return IntegrationOptions(
        steps=steps,
        step_size=step_size,
        rtol=rtol,
        atol=atol,
        first_step=first_step,
        min_step=float(min_step),
        max_step=max_step,
        safety=float(safety),
        ifactor=float(ifactor),
        dfactor=float(dfactor),
        max_num_steps=int(max_num_steps),
        norm=norm or rms_norm,
    )


def _state_dtype(y0_flat):
    if not y0_flat:
        raise ValueError("y0 must hold at least one tensor.")
    dtypes = {y.dtype for y in y0_flat}
    for dtype in dtypes:
        if not dtype.is_floating:
            raise TypeError(
                f"y0 must be floating (float16, bfloat16, float32 or "
                f"float64); got dtype {dtype.name}."
            )
    if len(dtypes) > 1:
        raise TypeError(
            "Every tensor of y0 must have the same floating dtype; got "
            f"{sorted(d.name for d in dtypes)}."
        )
    return y0_flat[0].dtype


def _validate_times(t, dtype):
    t = tf.cast(tf.stop_gradient(tf.convert_to_tensor(t)), dtype)
    if t.shape.rank != 1:
        raise ValueError(
            f"t must be a 1-D tensor of times; got shape {t.shape}."
        )
    n = t.shape[0]
    if n is not None and n < 2:
        raise ValueError(f"t must hold at least 2 times; got {n}.")
    static = tf.get_static_value(t)
    if static is not None:
        diffs = np.diff(static)
        if not (np.all(diffs > 0) or np.all(diffs < 0)):
            raise ValueError(
                f"t must be strictly increasing or strictly decreasing; got "
                f"{static}."
            )
        return t
    diffs = t[1:] - t[:-1]
    monotonic = tf.reduce_all(diffs > 0) | tf.reduce_all(diffs < 0)
    checks = [
        tf.debugging.assert_greater_equal(
            tf.size(t), 2, message="t must hold at least 2 times."
        ),
        tf.debugging.Assert(
            monotonic,
            ["t must be strictly increasing or strictly decreasing."],
        ),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(t)


def _flat_field(func, structure, y0_flat, args):
    """Wraps `func` as `field(t, y_flat, args_flat) -> dy_flat`, checking
    that its output matches the state."""
    if not callable(func):
        raise TypeError(f"func must be callable; got {func!r}.")
    call = as_time_field(func)
    name = getattr(func, "name", getattr(func, "__name__", repr(func)))

    def field(t, y_flat, args_flat):
        y = tf.nest.pack_sequence_as(structure, y_flat)
        extra = tf.nest.pack_sequence_as(args, args_flat)
        out = call(t, y, *extra)
        try:
            tf.nest.assert_same_structure(structure, out)
        except (TypeError, ValueError) as e:
            raise TypeError(
                f"func {name!r} must return dy/dt structured like y; "
                f"y is {_describe(structure)}, func returned "
                f"{_describe(out)}."
            ) from e
        out_flat = tf.nest.flatten(out)
        checked = []
        for i, (dy, y_leaf) in enumerate(zip(out_flat, y_flat, strict=True)):
            dy = tf.convert_to_tensor(dy)
            if dy.dtype != y_leaf.dtype:
                raise TypeError(
                    f"func {name!r} returned dtype {dy.dtype.name} for state "
                    f"leaf {i} of dtype {y_leaf.dtype.name}; they must match."
                )
            if not dy.shape.is_compatible_with(y_leaf.shape):
                raise ValueError(
                    f"func {name!r} returned shape {dy.shape} for state leaf "
                    f"{i} of shape {y_leaf.shape}; they must match."
                )
            checked.append(dy)
        return checked

    return field


def _describe(structure):
    return repr(
        tf.nest.map_structure(
            lambda x: f"<{getattr(x, 'shape', '?')}>", structure
        )
    )
