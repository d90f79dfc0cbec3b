"""Terminal events: solve until `event_fn(t, y)` first crosses zero.

```python
def hits_ground(t, y):
    return y[0]                       # height

t_hit, y_hit = tfnode.odeint_event(
    fall, y0, [0.0, 10.0], hits_ground, direction="falling"
)
```

The event is found by a sweep that steps freely and checks `event_fn` at
the end of every accepted step, locating a sign change on the step's dense
output. The state at the event is then solved again, differentiably, under
the settings' gradient method, and the event time gets its gradient by the
implicit function theorem (as torchdiffeq's `odeint_event`, Chen et al.
2021): from `g(t_e, y(t_e)) = 0`,

```none
d t_e = -(dg/dy . dy(t_e)) / (dg/dt + dg/dy . f(t_e, y(t_e)))
```

with `dy(t_e)` the state's sensitivity at the fixed time `t_e` (to `y0`,
`args` and the field's variables) and `dg/dy . dy` including the event
function's own variables. The returned state is `y(t_e)` with its
dependence on `t_e` through `f(t_e, y(t_e))`.

#### References

[1]: Chen, Amos, Nickel. Learning Neural Event Functions for Ordinary
     Differential Equations. ICLR, 2021.
"""

import tensorflow as tf
from tensorflow.python.eager import record

from tfnode import stepping
from tfnode import validation
from tfnode.adjoints.base import dot
from tfnode.dense import prepare_sweep
from tfnode.odeint import odeint
from tfnode.settings import resolve
from tfnode.stepping.observers import EventLocator
from tfnode.stepping.records import check_status
from tfnode.vector_field import call_field

__all__ = ["DIRECTIONS", "odeint_event"]

DIRECTIONS = ("rising", "falling", "either")


def odeint_event(
    func,
    y0,
    t_span,
    event_fn,
    settings=None,
    *,
    direction="either",
    args=(),
    nfe_counter=None,
    **shorthand,
):
    """Solves `dy/dt = func(t, y)` from `t_span[0]` until `event_fn` first
    crosses zero.

    Args:
        func: The vector field, as for `tfnode.odeint`.
        y0: The initial state (a tensor or a nest of tensors).
        t_span: `[t0, t_max]`: where to start, and the latest time the
            event may happen (`t_max < t0` solves backwards).
        event_fn: `event_fn(t, y) -> scalar`, with `y` structured like
            `y0`. A zero at `t0` itself is not an event.
        settings: A `tfnode.SolveSettings` of an adaptive tfnode
            Runge-Kutta solver (or its keyword shorthand); its gradient
            method differentiates the state at the event.
        direction: Which crossings count: `"rising"` (negative to
            non-negative), `"falling"` or `"either"` (default).
        args: Extra tensors passed to `func` after `y`.
        nfe_counter: A `tfnode.NFECounter`.

    Returns:
        t_event: The event time, a scalar differentiable with respect to
            `y0`, `args`, `t0` and the variables of `func` and `event_fn`.
        y_event: The state at `t_event`, structured like `y0`.

    Raises:
        ValueError: for a bad `direction`, or settings without tfnode's
            dense output (a fixed grid, `tfp_dopri5`).
        tf.errors.InvalidArgumentError: when no event happens before
            `t_max` (eagerly and in graphs; under XLA the results are NaN).
    """
    validation.choice("direction", direction, DIRECTIONS)
    settings = resolve(settings, **shorthand)
    problem, span, unflatten = prepare_sweep(
        "odeint_event", func, y0, t_span, settings, args
    )
    t_event = _locate(problem, event_fn, unflatten, direction)
    t0 = span[0]
    y_event = odeint(
        func,
        y0,
        tf.stack([t0, t_event]),
        settings,
        args=args,
        nfe_counter=nfe_counter,
    )
    y_event = tf.nest.map_structure(lambda y: y[-1], y_event)
    return _implicit_gradients(func, event_fn, t_event, y_event, args)


def _locate(problem, event_fn, unflatten, direction):
    """The event time, without gradient; raises when there is none."""
    locator = EventLocator(
        problem.solver,
        lambda t, y: event_fn(t, unflatten(y)),
        direction,
    )
    y0 = [tf.stop_gradient(y) for y in problem.y0]
    args = [tf.stop_gradient(a) for a in problem.args]
    with record.stop_recording():
        _, counters, (_, found, t_event) = stepping.sweep(
            problem.solver,
            problem.field(args),
            y0,
            problem.t,
            problem.settings,
            locator,
            locator.initial(problem.t[0], y0),
        )
        stats, failure = stepping.stats_of(counters)
        (t_event,) = check_status(
            [t_event], stats.status, stepping.in_xla_context(), failure
        )
    message = (
        "odeint_event: event_fn did not cross zero (direction="
        f"{direction!r}) before the end of t_span; widen t_span or check "
        "event_fn."
    )
    if stepping.in_xla_context():
        nan = tf.constant(float("nan"), t_event.dtype)
        return tf.where(found, t_event, nan)
    check = tf.debugging.Assert(found, [message])
    with tf.control_dependencies([check]):
        return tf.identity(t_event)


def _implicit_gradients(func, event_fn, t_event, y_event, args):
    """`(t_event, y_event)` with the event time's gradient from the
    implicit function theorem and the state's dependence on it."""
    flat = tf.nest.flatten(y_event)
    structure = y_event
    with tf.GradientTape() as tape:
        tape.watch(t_event)
        y_fixed = [tf.stop_gradient(y) for y in flat]
        tape.watch(y_fixed)
        state = tf.nest.pack_sequence_as(structure, y_fixed)
        g = _scalar(event_fn(t_event, state))
    dg_dt, *dg_dy = tape.gradient(
        g, [t_event, *y_fixed], unconnected_gradients="zero"
    )
    f_event = tf.nest.flatten(call_field(func, t_event, state, *args))
    f_event = [
        tf.stop_gradient(tf.cast(f, y.dtype))
        for f, y in zip(f_event, flat, strict=True)
    ]
    rate = tf.stop_gradient(
        tf.cast(dg_dt, t_event.dtype)
        + tf.cast(dot(dg_dy, f_event), t_event.dtype)
    )
    phi = _scalar(event_fn(t_event, y_event))
    phi = tf.cast(phi, t_event.dtype)
    t_out = t_event - (phi - tf.stop_gradient(phi)) / rate
    shift = t_out - tf.stop_gradient(t_out)
    y_out = [
        y + tf.cast(shift, y.dtype) * f
        for y, f in zip(flat, f_event, strict=True)
    ]
    return t_out, tf.nest.pack_sequence_as(structure, y_out)


def _scalar(g):
    g = tf.convert_to_tensor(g)
    if g.shape.num_elements() != 1:
        raise ValueError(
            f"event_fn must return a scalar; got shape {g.shape}."
        )
    return tf.reshape(g, [])
