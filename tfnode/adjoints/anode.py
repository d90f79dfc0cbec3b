"""`adjoint="anode"`: ANODE's checkpointed discrete adjoint.

The exact gradient of the discretised forward map (Gholami et al. 2019),
computed without keeping the forward's stages: the forward pass stores the
state at the start of every accepted step (or, with `checkpoints=K`, only K
states), and the backward pass replays the steps in reverse one at a time,
recomputing each step's stages and taking its vector-Jacobian product.

With `checkpoints=K` the states are rebuilt by binomial checkpointing
(Griewank 1992; Griewank & Walther 2000, "revolve"): a segment of `L` steps
with `c` free slots is split at the point the binomial rule
`beta(c, r) = C(c + r, c) >= L` gives, so memory is `K` states for a number
of recomputed steps that grows like `L * log(L)`.
"""

import dataclasses

import tensorflow as tf

from tfnode.adjoints.base import CustomGradientMethod
from tfnode.adjoints.base import add
from tfnode.adjoints.base import at
from tfnode.adjoints.base import step_vjp
from tfnode.stepping import in_xla_context
from tfnode.stepping import interpolates
from tfnode.stepping import sequential_while_loop
from tfnode.stepping import unrolled_step_count
from tfnode.validation import positive_int

__all__ = ["Anode"]


@dataclasses.dataclass(frozen=True)
class Anode(CustomGradientMethod):
    """ANODE's checkpointed discrete adjoint, for every tfnode RK solver.

    Adaptive solves replay their accepted steps; the step sizes are constants
    of the discrete map, as under `backprop`, so both give the same gradient.

    Options:
        checkpoints: States kept for binomial checkpointing; `None` keeps the
            state at the start of every step (no recomputation beyond one
            step at a time).

    #### References

    [1]: Gholami, Keutzer, Biros. ANODE: Unconditionally Accurate
         Memory-Efficient Gradients for Neural ODEs. IJCAI, 2019.
    [2]: Griewank, Walther. Algorithm 799: revolve. ACM TOMS 26(1), 2000.
    """

    checkpoints: int | None = None

    name = "anode"
    shorthand = {"checkpoints": "checkpoints"}

    def __post_init__(self):
        if self.checkpoints is not None:
            object.__setattr__(
                self,
                "checkpoints",
                positive_int("checkpoints", self.checkpoints),
            )

    def validate(self, settings):
        if not settings.solver.replayable:
            raise ValueError(
                f"adjoint='anode' replays the solver's steps; "
                f"solver={settings.solver.name!r} does not expose them. Use "
                "a tfnode Runge-Kutta solver (e.g. 'dopri5') or "
                "adjoint='continuous'."
            )

    def grids_under_xla(self, settings):
        # Binomial checkpointing rebuilds states in `tf.while_loop`s.
        return [settings] if self.checkpoints is None else None

    def forward(self, problem, y0, args):
        store_all = self.checkpoints is None
        ys, stats, trajectory = problem.solver.integrate(
            problem.field(args),
            y0,
            problem.t,
            problem.settings,
            record_steps=True,
            record_states=store_all,
        )
        return ys, stats, (trajectory, y0)

    def backward(self, problem, saved, ys, grad_ys, y0, args, variables):
        trajectory, y0 = saved
        if trajectory.states is not None:
            sweep = _reverse_sweep_stored
        else:
            sweep = _reverse_sweep_revolve
        cotangent, grad_args, grad_vars, nfe = sweep(
            problem, trajectory, y0, grad_ys, args, variables
        )
        cotangent = add(cotangent, at(grad_ys, 0))
        return cotangent, grad_args, grad_vars, nfe


def _output_cotangents(problem, trajectory, grad_ys, n, cotangent):
    """The gradients of the outputs lying in step `n`.

    An output at the step's end adds its gradient to the end state's
    cotangent. One inside it is `y_n + h sum_j b_j(theta) k_j`, so its
    gradient `g` adds `g` to the start state's cotangent and `h b_j(theta) g`
    to stage `j`'s.

    Returns:
        cotangent: The end state's cotangent, outputs at the end added.
        direct: What the inner outputs add to the start state's cotangent.
        stages: The stages' cotangents (one list per stage).
    """
    start, end = trajectory.output_start[n], trajectory.output_end[n]
    if not interpolates(problem.t, problem.settings):
        # Steps land on the outputs: at most one, at the step's end.
        return _with_end_output(cotangent, grad_ys, start, end), None, None
    if in_xla_context():
        # Static shapes: every output, masked to those in the step.
        k = tf.range(tf.shape(problem.t)[0])
        held = (k >= start) & (k < end)
    else:
        k = tf.range(start, end)
        held = tf.ones_like(k, tf.bool)
    g = [tf.gather(gy, k) for gy in grad_ys]
    t_n, h_n = trajectory.times[n], trajectory.steps[n]
    theta = (tf.gather(problem.t, k) - t_n) / h_n
    at_end = held & (theta >= 1)

    def total(mask):
        return [_weighted_sum(tf.cast(mask, x.dtype), x) for x in g]

    cotangent = add(cotangent, total(at_end))
    inner = held & (theta < 1)
    weights = problem.solver.dense_weights(theta)
    weights = tf.where(inner[:, None], weights, tf.zeros_like(weights))
    stages = [
        [h_n * _weighted_sum(tf.cast(weights[:, j], x.dtype), x) for x in g]
        for j in range(problem.solver.num_stages)
    ]
    return cotangent, total(inner), stages


def _with_end_output(cotangent, grad_ys, start, end):
    """Adds the gradient of output `start` when the step ends on it
    (`end > start`)."""
    ends_on = end > start
    index = tf.minimum(start, tf.shape(grad_ys[0])[0] - 1)
    return [
        tf.where(ends_on, c + tf.gather(g, index), c)
        for c, g in zip(cotangent, grad_ys, strict=True)
    ]


def _weighted_sum(weights, stacked):
    """`sum_m weights[m] stacked[m]`."""
    return tf.tensordot(weights, stacked, [[0], [0]])


def _zeros_like(tensors):
    return [tf.zeros_like(x) for x in tensors]


def _reverse_step(
    problem, trajectory, grad_ys, args, variables, n, y_n, gradients
):
    """Reverses step `n` from its start state `y_n`: adds the gradients of
    the outputs lying in the step, then takes the step's VJP.

    `gradients` and the result are `(cotangent, grad_args, grad_vars)`;
    also returns the NFE of the recomputed step.
    """
    cotangent, grad_args, grad_vars = gradients
    cotangent, direct, stages = _output_cotangents(
        problem, trajectory, grad_ys, n, cotangent
    )
    cotangent, d_args, d_vars, evals = step_vjp(
        problem,
        trajectory.times[n],
        trajectory.steps[n],
        y_n,
        args,
        variables,
        cotangent,
        stages,
    )
    if direct is not None:
        cotangent = add(cotangent, direct)
    return (cotangent, add(grad_args, d_args), add(grad_vars, d_vars)), evals


def _reverse_sweep_stored(problem, trajectory, y0, grad_ys, args, variables):
    """Reverse sweep over the steps, each state read from the trajectory."""

    def body(n, cotangent, grad_args, grad_vars, nfe):
        gradients, evals = _reverse_step(
            problem,
            trajectory,
            grad_ys,
            args,
            variables,
            n,
            [states.read(n) for states in trajectory.states],
            (cotangent, grad_args, grad_vars),
        )
        return (n - 1, *gradients, nfe + evals)

    unrolled = unrolled_step_count(problem.t, problem.settings)
    last = trajectory.size - 1 if unrolled is None else unrolled - 1
    state = (
        tf.convert_to_tensor(last, tf.int32),
        _zeros_like(y0),
        _zeros_like(args),
        _zeros_like(variables),
        tf.constant(0, tf.int32),
    )
    if unrolled is None:
        state = sequential_while_loop(lambda n, *_: n >= 0, body, state)
    else:
        # The forward ran unrolled under XLA, and so does its reverse: a
        # convolution's VJP inside a `while` loop is XLA:CPU's trap.
        for _ in range(unrolled):
            state = body(*state)
    _, cotangent, grad_args, grad_vars, nfe = state
    return cotangent, grad_args, grad_vars, nfe


def _binomial_split(length, free):
    """Offset of the next checkpoint in a segment of `length` >= 2 steps
    with `free` >= 1 free slots (the revolve rule).

    With `r` the least integer with `C(free + r, free) >= length`, the right
    part gets `C(free - 1 + r, free - 1)` steps (reversed with one slot
    fewer) and the left part the rest (reversed with one repetition fewer).
    """
    length = tf.cast(length, tf.int64)
    free = tf.cast(free, tf.int64)

    def grow(r, beta):
        r = r + 1
        return r, beta * (free + r) // r

    r, beta = sequential_while_loop(
        lambda r, beta: beta < length,
        grow,
        (tf.constant(0, tf.int64), tf.constant(1, tf.int64)),
    )
    right = beta * free // (free + r)
    one = tf.constant(1, tf.int64)
    return tf.cast(tf.maximum(one, length - right), tf.int32)


def _reverse_sweep_revolve(problem, trajectory, y0, grad_ys, args, variables):
    """Reverse sweep keeping at most `checkpoints` states.

    A stack of segments `[start, end)`, each with the state at `start` in
    the slot of its depth. The top segment is either one step (reversed at
    once), or split: its state is advanced to the split point, stored in the
    next slot and the right part pushed. With no free slot left, the state
    is advanced to the segment's last step, which is reversed.
    """
    slots = problem.settings.adjoint.checkpoints
    field = problem.field(args)
    solver = problem.solver

    def advance(y, start, stop):
        """The state after steps `start, ..., stop - 1`, and the NFE."""

        def body(n, y, nfe):
            y, _, _, evals = solver.step(
                field, trajectory.times[n], y, trajectory.steps[n]
            )
            return n + 1, y, nfe + evals

        _, y, nfe = sequential_while_loop(
            lambda n, *_: n < stop,
            body,
            (start, y, tf.constant(0, tf.int32)),
        )
        return y, nfe

    def body(depth, starts, ends, buffer, cotangent, grad_args, grad_vars, nfe):
        top = depth - 1
        start, end = starts[top], ends[top]
        free = slots - depth
        single = end - start == 1
        split = tf.cond(
            single | (free == 0),
            lambda: end - 1,
            lambda: start + _binomial_split(end - start, free),
        )
        target = tf.where(single, start, split)
        y, evals = advance(at(buffer, top), start, target)
        nfe += evals
        reverse_now = single | (free == 0)

        def reverse_branch():
            (c, ga, gv), e = _reverse_step(
                problem,
                trajectory,
                grad_ys,
                args,
                variables,
                target,
                y,
                (cotangent, grad_args, grad_vars),
            )
            new_ends = tf.tensor_scatter_nd_update(ends, [[top]], [target])
            return (
                tf.where(single, depth - 1, depth),
                starts,
                new_ends,
                buffer,
                c,
                ga,
                gv,
                nfe + e,
            )

        def checkpoint_branch():
            new_buffer = [
                tf.tensor_scatter_nd_update(b, [[depth]], [v])
                for b, v in zip(buffer, y, strict=True)
            ]
            new_starts = tf.tensor_scatter_nd_update(
                starts, [[depth]], [target]
            )
            new_ends = tf.tensor_scatter_nd_update(
                ends, [[top], [depth]], [target, end]
            )
            return (
                depth + 1,
                new_starts,
                new_ends,
                new_buffer,
                cotangent,
                grad_args,
                grad_vars,
                nfe,
            )

        return tf.cond(reverse_now, reverse_branch, checkpoint_branch)

    buffer = [
        tf.tensor_scatter_nd_update(
            tf.zeros([slots, *y.shape], y.dtype)
            if y.shape.is_fully_defined()
            else tf.zeros(tf.concat([[slots], tf.shape(y)], 0), y.dtype),
            [[0]],
            [y],
        )
        for y in y0
    ]
    zeros = tf.zeros([slots], tf.int32)
    init = (
        tf.constant(1, tf.int32),
        zeros,
        tf.tensor_scatter_nd_update(zeros, [[0]], [trajectory.size]),
        buffer,
        _zeros_like(y0),
        _zeros_like(args),
        _zeros_like(variables),
        tf.constant(0, tf.int32),
    )
    result = sequential_while_loop(
        lambda depth, starts, ends, *_: (depth > 0) & (ends[0] > starts[0]),
        body,
        init,
    )
    cotangent, grad_args, grad_vars, nfe = result[4:]
    return cotangent, grad_args, grad_vars, nfe
