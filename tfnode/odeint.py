"""`odeint`: the one entry point of every solve and every gradient method."""

import dataclasses
import numbers

import numpy as np
import tensorflow as tf

from tfnode import precision
from tfnode import time_gradients
from tfnode.adjoints.base import Problem
from tfnode.settings import resolve
from tfnode.vector_field import build_for_state
from tfnode.vector_field import call_field

__all__ = ["odeint", "prepare"]


@tf.autograph.experimental.do_not_convert
def odeint(
    func,
    y0,
    t,
    settings=None,
    *,
    args=(),
    nfe_counter=None,
    return_stats=False,
    **shorthand,
):
    """Solves `dy/dt = func(t, y)` from `y(t[0]) = y0`; returns `y` at `t`.

    How to solve is one `tfnode.SolveSettings` value, or its keyword
    shorthand (both together: the keywords replace the value's fields):

    ```python
    odeint(f, y0, t, tfnode.SolveSettings(solver="rk4", steps=8))
    odeint(f, y0, t, solver="rk4", steps=8, adjoint="anode", checkpoints=2)
    ```

    Fixed-step solvers (`euler`, `midpoint`/`rk2`, `heun`, `rk4`, `rk38`)
    take `steps` or `step_size`; adaptive ones (`fehlberg2`, `bosh3`,
    `dopri5`, `tsit5`, `tfp_dopri5`, and `bdf` for stiff problems) take
    tolerances, or run on a fixed grid
    when given `steps` or `step_size`. The loops are `tf.while_loop`s: the
    traced graph does not grow with the number of steps, and `odeint` runs
    eagerly, in `tf.function` and under `jit_compile=True`.

    ```none
    steps=N        N steps between consecutive times of t (ANODE's Nt)
    step_size=h    ceil(|t[i+1] - t[i]| / h) steps, the last one clamped
    ```

    Adaptive solves step freely and evaluate the outputs between steps on
    the method's dense output (continuous extension), so their cost does not
    grow with the number of output times; with `interpolate=False` the
    steps are clamped to land on every time of `t` instead. The step-size
    controller is not differentiated: gradients treat the accepted steps as
    constants. Gradients reach `t` too (every output time and `t[0]`),
    under every gradient method (`tfnode.time_gradients`).

    Args:
        func: `func(t, y, *args) -> dy/dt`, with `dy/dt` structured like `y`.
            Any callable; a Keras layer or model whose `call` takes only the
            state is accepted as an autonomous field `f(y)`.
        y0: Initial state: a floating tensor, or a nested structure (tuple,
            list, dict) of tensors of one floating dtype.
        t: 1-D times, at least 2, strictly increasing or decreasing.
        settings: A `tfnode.SolveSettings` (or its config dict); by default
            `dopri5` with `rtol=1e-3`, `atol=1e-6` and `adjoint="backprop"`.
        args: Extra tensors (a tuple, possibly nested) passed to `func` after
            `y`; gradients reach them under every method.
        nfe_counter: A `tfnode.NFECounter` receiving the forward and
            backward numbers of function evaluations.
        return_stats: Also return the forward `SolveStats`.
        **shorthand: Any argument of `tfnode.SolveSettings.from_options`:
            `solver`, `steps`, `step_size`, `rtol`, `atol`, `tol`,
            `first_step`, `min_step`, `max_step`, `safety`, `ifactor`,
            `dfactor`, `max_num_steps`, `interpolate`, `norm`, `adjoint`,
            and the gradient methods' options `checkpoints` (`anode`),
            `seminorm`, `adjoint_solver`, `adjoint_rtol`, `adjoint_atol`,
            `adjoint_steps` (`continuous`).

    Returns:
        ys: The state at every time of `t`, stacked on a new leading axis;
            nested like `y0`.
        stats: `SolveStats` (NFE, accepted and rejected steps, status), when
            `return_stats`.

    Raises:
        ValueError: for an unknown solver or gradient method, or a bad
            setting (the message names the argument and the allowed values).
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
    problem, t, unflatten = prepare(
        func, y0, t, resolve(settings, **shorthand), args, nfe_counter
    )
    ys, stats = _solve(problem, t)
    if nfe_counter is not None:
        nfe_counter.update_forward(stats.num_fn_evals)
    ys = unflatten(ys)
    return (ys, stats) if return_stats else ys


def prepare(func, y0, t, settings, args=(), nfe_counter=None):
    """Validates a solve's inputs once (`odeint`, `solve_dense`,
    `odeint_event`).

    Returns:
        problem: The `Problem` on flat states, in the solve's dtype, its
            times without gradient.
        t: The times, in the solve's dtype, still differentiable.
        unflatten: Maps flat states (with any leading axes) back to `y0`'s
            structure and dtypes.
    """
    structure = y0
    y0_flat = [tf.convert_to_tensor(y) for y in tf.nest.flatten(y0)]
    dtype = _state_dtype(y0_flat)
    precision.check_tolerances(settings, dtype)
    t = _validate_times(t, precision.solve_dtype(dtype))
    args = _validate_args(args)
    args_flat = [tf.convert_to_tensor(a) for a in tf.nest.flatten(args)]
    build_for_state(func, tf.nest.pack_sequence_as(structure, y0_flat))
    problem = Problem(
        func=_flat_field(func, structure, y0_flat, args),
        y0=precision.promote(y0_flat),
        t=tf.stop_gradient(t),
        args=precision.promote(args_flat),
        settings=settings,
        nfe_counter=nfe_counter,
    )
    dtypes = [y.dtype for y in y0_flat]

    def unflatten(flat):
        return tf.nest.pack_sequence_as(
            structure, precision.demote(flat, dtypes)
        )

    return problem, t, unflatten


def _solve(problem, t):
    """Solves `problem` under its gradient method; with gradients to `t`
    too when they can be asked for (`tfnode.time_gradients`)."""
    solve = problem.settings.adjoint.solve
    if not time_gradients.wanted(t):
        return solve(problem)
    return time_gradients.with_time_gradients(
        problem.field(problem.args),
        t,
        problem.y0,
        lambda y0: solve(dataclasses.replace(problem, y0=y0)),
        problem.nfe_counter,
    )


def _validate_args(args):
    args = tuple(args) if isinstance(args, list) else args
    if not isinstance(args, tuple):
        raise TypeError(
            f"args must be a tuple of tensors passed to func after y; got "
            f"{type(args).__name__}."
        )
    return args


def _state_dtype(y0_flat):
    if not y0_flat:
        raise ValueError("y0 must hold at least one tensor.")
    if all(y.shape.num_elements() == 0 for y in y0_flat):
        raise ValueError(
            "y0 is empty (it has no elements); there is nothing to solve. "
            f"Got shapes {[y.shape.as_list() for y in y0_flat]}."
        )
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
    if isinstance(t, (list, tuple)) and all(
        isinstance(x, numbers.Real) for x in t
    ):
        # Python numbers straight to the solve's dtype (not through float32).
        t = tf.constant(np.asarray(t, np.float64), dtype)
    t = tf.cast(tf.convert_to_tensor(t), dtype)
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
    that its output matches the state.

    The solve may run in a wider dtype than the state's (`float32` for a
    half state, see `tfnode.precision`): `func` gets `t`, `y` and `args`
    cast back to the dtypes `odeint` received, and its output is cast to
    the dtype of the solve.
    """
    if not callable(func):
        raise TypeError(f"func must be callable; got {func!r}.")
    name = getattr(func, "name", getattr(func, "__name__", repr(func)))
    dtype = y0_flat[0].dtype
    arg_dtypes = [tf.convert_to_tensor(a).dtype for a in tf.nest.flatten(args)]

    def field(t, y_flat, args_flat):
        solve_dtypes = [y.dtype for y in y_flat]
        y_flat = precision.demote(y_flat, [y.dtype for y in y0_flat])
        y = tf.nest.pack_sequence_as(structure, y_flat)
        extra = precision.demote(args_flat, arg_dtypes)
        extra = tf.nest.pack_sequence_as(args, extra)
        out = call_field(func, tf.cast(t, dtype), y, *extra)
        if out is None:
            raise TypeError(
                f"func {name!r} returned None; it must return dy/dt, "
                f"structured like y ({_describe(structure)})."
            )
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
        return precision.demote(checked, solve_dtypes)

    return field


def _describe(structure):
    return repr(
        tf.nest.map_structure(
            lambda x: f"<{getattr(x, 'shape', '?')}>", structure
        )
    )
