"""Saving, changing and restoring the solve settings of a model's ODEBlocks.

Evaluation with another solver only runs the forward pass, which is the same
for every gradient method; it therefore runs with
`SolveSettings.forward_only()` (`adjoint="backprop"`), so that a test solver
is never rejected because the training gradient method does not support it
(e.g. `adjoint="reversible"` with `rk4`).
"""

import contextlib

import numpy as np

from tfnode.layers import ode_blocks
from tfnode.settings import SolveSettings
from tfnode.stepping import num_fixed_steps
from tfnode.vector_field import call_field

__all__ = [
    "block_inputs",
    "blocks_of",
    "forward_nfe",
    "num_steps",
    "preserved_nfe_counters",
    "reset_nfe_counters",
    "restored_settings",
    "span",
    "step_size",
    "vector_field",
]


def blocks_of(model):
    """The model's ODEBlocks; raises when there is none."""
    blocks = ode_blocks(model)
    if not blocks:
        raise ValueError(
            f"Model {model.name!r} holds no tfnode.ODEBlock: there is no "
            "solver to change."
        )
    return blocks


def span(block):
    """Length of the block's integration interval, `|t1 - t0|`."""
    return abs(block.t1 - block.t0)


def num_steps(length, step_size):
    """Steps a fixed-grid solve takes over `length` with `step_size`:
    `ceil(length / step_size)`, the last step clamped (as `odeint`)."""
    return num_fixed_steps(
        float(length), SolveSettings(solver="euler", step_size=float(step_size))
    )


def step_size(block, settings=None):
    """The step of the block's fixed-grid solve with `settings` (its own
    when unset): `step_size`, or the span over `steps`; `None` for an
    adaptive solve."""
    settings = block.settings if settings is None else settings
    if settings.step_size is not None:
        return settings.step_size
    if settings.steps is not None:
        return span(block) / settings.steps
    return None


@contextlib.contextmanager
def restored_settings(blocks):
    """Restores the blocks' solve settings on exit, whatever happens."""
    saved = [block.settings for block in blocks]
    try:
        yield saved
    finally:
        for block, settings in zip(blocks, saved, strict=True):
            block.configure(settings)


@contextlib.contextmanager
def preserved_nfe_counters(blocks):
    """Restores the blocks' NFE counters on exit, so that solves made for
    evaluation do not show up in the training metrics."""
    saved = [
        [np.array(v.numpy()) for v in block.nfe_counter.variables]
        for block in blocks
    ]
    try:
        yield
    finally:
        for block, values in zip(blocks, saved, strict=True):
            for variable, value in zip(
                block.nfe_counter.variables, values, strict=True
            ):
                variable.assign(value)


def reset_nfe_counters(blocks):
    for block in blocks:
        block.nfe_counter.reset_state()


def forward_nfe(blocks):
    """Mean forward NFE per solve, summed over the blocks, since the last
    reset of their counters; `None` when no block counts NFE."""
    total = None
    for block in blocks:
        if not block.track_nfe:
            continue
        counter = block.nfe_counter
        count = float(counter.forward_count.numpy())
        if count == 0:
            continue
        mean = float(counter.forward_total.numpy()) / count
        total = mean if total is None else total + mean
    return total


def _recording(call, sink):
    def recording(inputs, *args, **kwargs):
        sink.append(inputs)
        return call(inputs, *args, **kwargs)

    return recording


def block_inputs(model, blocks, x):
    """The input each block receives when `model(x)` runs (eagerly).

    Returns:
        A list with one tensor per block (the first call's input when a
        block is called more than once).
    """
    captured = {id(block): [] for block in blocks}
    for block in blocks:
        block.call = _recording(block.call, captured[id(block)])
    try:
        model(x, training=False)
    finally:
        for block in blocks:
            del block.call
    missing = [b.name for b in blocks if not captured[id(b)]]
    if missing:
        raise ValueError(
            f"ODEBlock(s) {missing} were not called by the model's forward "
            "pass."
        )
    return [captured[id(block)][0] for block in blocks]


def vector_field(block):
    """The block's vector field as `field(t, y)`, in inference mode."""

    def field(t, y):
        return call_field(block.func, t, y, training=False)

    return field
