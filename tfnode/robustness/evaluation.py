"""Testing a trained Neural ODE with other solvers (Ott et al. 2021, Sec. 4).

A model trained with a coarse solver can depend on that solver's error: it
is then a ResNet-like discrete map rather than an ODE flow, and its accuracy
collapses when it is tested with a more accurate solver. Evaluating with
several solvers, step sizes and tolerances shows which case a model is in.

The test settings scale the training settings of every block by a factor:

```none
fixed-step test solver:  h_test   = h_train / factor   (factor x the steps)
adaptive test solver:    tol_test = tol_train * factor
```

The reference implementation sets the test step to `1 / (h_train * factor)`,
which equals `h_train / factor` only for `h_train = 1` (its default); for
`h_train = 1/64` it integrates in one step. Here the step is the one the
paper's figures describe, `h_train / factor`.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from tfnode import solvers as solvers_lib
from tfnode import validation
from tfnode.robustness import _blocks
from tfnode.robustness import _forward
from tfnode.settings import DEFAULT_ATOL
from tfnode.settings import DEFAULT_RTOL

__all__ = ["evaluate_with_solvers", "scaled_settings"]


def scaled_settings(
    block, solver, factor, train_step_size=None, train_tol=None
):
    """The settings that test `block` with `solver` at `factor`.

    Derived from the block's training settings (`block.settings`) for a
    forward-only solve (`SolveSettings.forward_only`), its step-size
    controller knobs and `max_num_steps` kept.

    Args:
        block: A `tfnode.ODEBlock`, configured as in training.
        solver: The test solver, a name or a solver object.
        factor: A float > 0. Fixed-step test solvers take
            `h_train / factor` (so `factor` times the training steps);
            adaptive ones take the training tolerances times `factor`.
        train_step_size: The training step to scale when the block has no
            fixed grid (it was trained with an adaptive solver).
        train_tol: The training tolerance to scale when the block has none
            (it was trained on a fixed grid); default: `odeint`'s default
            `rtol` and `atol`.

    Returns:
        A `tfnode.SolveSettings`.
    """
    training = block.settings
    test = training.forward_only()
    solver = solvers_lib.get(solver)
    if not solver.adaptive:
        h = _blocks.step_size(block) or train_step_size
        if h is None:
            raise ValueError(
                f"Block {block.name!r} was trained with the adaptive solver "
                f"{training.solver_name!r}, so it has no step size for a "
                "fixed-step test solver to scale; pass train_step_size=."
            )
        return test.replace(solver=solver, step_size=float(h) / factor)
    if not training.fixed_grid:
        rtol, atol = training.rtol, training.atol
    elif train_tol is not None:
        rtol = atol = float(train_tol)
    else:
        rtol, atol = DEFAULT_RTOL, DEFAULT_ATOL
    return test.replace(solver=solver, rtol=rtol * factor, atol=atol * factor)


def _collapse(values):
    """One value when all blocks agree, else the list (one per block)."""
    if all(v == values[0] for v in values):
        return values[0]
    return list(values)


def _describe(blocks, settings):
    """The `steps`, `step_size`, `tol`, `rtol` and `atol` columns."""
    columns = dict(steps=None, step_size=None, tol=None, rtol=None, atol=None)
    if settings[0].fixed_grid:
        columns["step_size"] = _collapse([s.step_size for s in settings])
        columns["steps"] = _collapse(
            [
                _blocks.num_steps(_blocks.span(b), s.step_size)
                for b, s in zip(blocks, settings, strict=True)
            ]
        )
        return columns
    columns["rtol"] = _collapse([s.rtol for s in settings])
    columns["atol"] = _collapse([s.atol for s in settings])
    columns["tol"] = columns["rtol"]
    return columns


def _loss_function(model, loss, logits, labels):
    if loss is not None:
        return keras.losses.get(loss) if isinstance(loss, str) else loss
    compiled = getattr(model, "loss", None)
    if isinstance(compiled, keras.losses.Loss):
        return compiled
    if logits.shape[-1] == 1 or len(logits.shape) == 1:
        return keras.losses.BinaryCrossentropy(from_logits=True)
    if len(labels.shape) == len(logits.shape) and labels.shape[-1] > 1:
        return keras.losses.CategoricalCrossentropy(from_logits=True)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _evaluate_once(model, blocks, dataset, loss):
    predict = _forward.predictor(model)
    loss_fn = None
    num_correct = 0
    num_examples = 0
    loss_sum = 0.0
    _blocks.reset_nfe_counters(blocks)
    for batch in dataset:
        x, y = _forward.unpack(batch)
        logits = predict(x)
        if loss_fn is None:
            loss_fn = _loss_function(model, loss, logits, y)
        n = int(np.shape(logits)[0])
        num_correct += int(np.sum(_forward.correct(logits, y)))
        batch_loss = tf.reduce_mean(loss_fn(y, logits))
        loss_sum += float(batch_loss) * n
        num_examples += n
    if num_examples == 0:
        raise ValueError("The evaluation dataset is empty.")
    return dict(
        accuracy=num_correct / num_examples,
        loss=loss_sum / num_examples,
        nfe=_blocks.forward_nfe(blocks),
        num_examples=num_examples,
    )


def _check_factors(factors):
    factors = list(factors)
    if not factors:
        raise ValueError("factors must hold at least one number > 0.")
    for f in factors:
        validation.positive_float("factors", f)
        if not math.isfinite(f):
            raise ValueError(f"factors must be finite; got {f!r}.")
    return [float(f) for f in factors]


def evaluate_with_solvers(
    model,
    dataset,
    solvers,
    factors,
    *,
    loss=None,
    batch_size=128,
    train_step_size=None,
    train_tol=None,
):
    """Evaluates a trained model with every test solver at every factor.

    The cross-solver test of Ott et al. (2021): a model that is a proper ODE
    keeps its accuracy when tested with a finer step, a higher-order solver
    or a tighter tolerance; a model trained with too coarse a solver loses
    it. Each block is tested relative to its own training settings (see
    `scaled_settings`): fixed-step solvers at `h_train / factor`, adaptive
    ones at `tol_train * factor`. Only the forward pass runs, with
    `adjoint="backprop"` (the same forward solve as every gradient method).
    The model's settings and NFE counters are restored afterwards, and its
    compiled train/test functions are left as they were.

    Args:
        model: A Keras classifier holding `tfnode.ODEBlock`s, returning
            logits.
        dataset: A `tf.data.Dataset` of `(x, y)` batches, or an `(x, y)`
            tuple of arrays (batched by `batch_size`).
        solvers: Test solver names (see `tfnode.solvers.names()`).
        factors: Floats > 0 scaling the training step count or tolerance.
        loss: Loss reported beside the accuracy, a `keras.losses` name or
            callable `loss(y_true, logits)`; by default the model's compiled
            loss object if it has one, else cross-entropy from logits.
        batch_size: Batch size when `dataset` is a tuple of arrays.
        train_step_size: Step size scaled by the factors for blocks trained
            with an adaptive solver (they have no step of their own).
        train_tol: Tolerance scaled by the factors for blocks trained on a
            fixed grid; default: `odeint`'s `rtol=1e-3`, `atol=1e-6`.

    Returns:
        A list of dicts, one per (solver, factor) in the order given, with
        keys `solver` (canonical name), `factor`, `steps` (test steps per
        block for a fixed-step solver, else `None`), `step_size`, `tol`
        (the relative tolerance of an adaptive solver, else `None`), `rtol`,
        `atol`, `accuracy`, `loss`, `nfe` (forward function evaluations per
        model call, summed over blocks; `None` without NFE tracking),
        `num_examples` and `error` (`None`, or the message of a solve that
        failed, whose accuracy and loss are then NaN). Where blocks differ,
        `steps`, `step_size` and the tolerances are lists, one per block.

    Raises:
        ValueError: for an unknown solver (naming the allowed ones), a
            factor that is not a number > 0, a model without ODEBlocks, or a
            fixed-step test solver for an adaptively trained block without
            `train_step_size`.

    #### References

    [1]: Ott, Katiyar, Hennig, Tiemann. ResNet After All? Neural ODEs and
         Their Numerical Solution. ICLR, 2021.
    """
    blocks = _blocks.blocks_of(model)
    solvers = list(solvers)
    if not solvers:
        raise ValueError("solvers must name at least one test solver.")
    for name in solvers:
        solvers_lib.get(name)
    factors = _check_factors(factors)
    dataset = _forward.as_batches(dataset, batch_size)
    plans = [
        (
            solver,
            factor,
            [
                scaled_settings(b, solver, factor, train_step_size, train_tol)
                for b in blocks
            ],
        )
        for solver in solvers
        for factor in factors
    ]
    table = []
    with (
        _blocks.restored_settings(blocks),
        _blocks.preserved_nfe_counters(blocks),
        _forward.quiet_retracing(),
    ):
        for _, factor, settings in plans:
            for block, setting in zip(blocks, settings, strict=True):
                block.configure(setting)
            row = dict(
                solver=settings[0].solver_name,
                factor=factor,
                **_describe(blocks, settings),
            )
            try:
                row.update(_evaluate_once(model, blocks, dataset, loss))
                row["error"] = None
            except tf.errors.InvalidArgumentError as error:
                row.update(
                    accuracy=math.nan,
                    loss=math.nan,
                    nfe=None,
                    num_examples=0,
                    error=error.message.splitlines()[0],
                )
            table.append(row)
    return table
