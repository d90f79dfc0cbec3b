"""Step and tolerance adaptation during training (Ott et al. 2021, Sec. 5).

Training a Neural ODE with too coarse a solver yields a model that only works
with that solver. Step adaptation keeps training in the regime where the
model is an ODE, at the coarsest step that allows it: every `interval`
training steps it compares, on a training batch, the accuracy with the
training solver against a solver with a much smaller error
(`tfnode.robustness.test_solvers`):

```none
Algorithm 2 (fixed step h, integration interval of length T):
  gap > threshold:  n = T/h steps
                      ceil(n) >= max_steps     keep h (warn)
                      2 n > max_steps          n <- (n + max_steps) / 2
                      else                     h <- h / 2
  else:             try h' = min(1.1 h, T); keep it unless the training
                    solver's accuracy at h' is more than threshold away from
                    the test accuracy (then revert to h)
Algorithm 3 (adaptive solver, tol = rtol = atol): the same with
  tol / 2 and 1.1 tol, also reverting when the training NFE at the looser
  tolerance equals the NFE of each of the last `nfe_window` training steps.
```

where `gap = |accuracy(test solver) - accuracy(training solver)|`. Fixed-step
adaptation starts from Hairer's initial step
(`tfnode.robustness.initial_step`).

Design for `model.fit`: a Keras callback cannot see the batch `fit` is
training on, so the callback draws its batches from `data`, normally the
training dataset itself: each adaptation uses the next training batch of that
dataset, and both accuracies are measured with the current weights. (The
reference implementation uses the batch of the current iteration, with the
training accuracy of that iteration's forward pass, before the optimizer
step.) Custom training loops can call `adapt(x, y)` with their current batch
instead. A change of step or tolerance re-creates the model's train function,
since solve settings are fixed when a function is traced.
"""

import collections
import warnings

import keras
import numpy as np
import tensorflow as tf

from tfnode import solvers as solvers_lib
from tfnode import validation
from tfnode.layers import set_solver
from tfnode.robustness import _blocks
from tfnode.robustness import _forward
from tfnode.robustness import test_solvers
from tfnode.robustness.initial_step import step_adaptation_initial_step

__all__ = ["StepAdaptation"]

FIXED = "step"
TOLERANCE = "tolerance"


class StepAdaptation(keras.callbacks.Callback):
    """Adapts the step size (or tolerance) of a model's ODEBlocks in training.

    Algorithm 2 (fixed-step solvers: `euler`, `midpoint`, `heun`) and
    Algorithm 3 (adaptive solvers) of Ott et al. (2021): every `interval`
    training steps, halve the step (tolerance) when the model's accuracy with
    the training solver is more than `threshold` away from its accuracy with
    a more accurate solver, else try a 10% larger one and keep it only if the
    accuracies still agree. All blocks share one step (tolerance).

    The decisions are recorded in `history` (a list of dicts, one per
    adaptation, with `iteration`, `action` and the new `step_size` and
    `num_steps`, or `tol`), written to TensorBoard under `adaptation/` when
    `log_dir` or `writer` is given, and the current value is added to each
    epoch's logs (`adapted_step_size` and `adapted_steps`, or
    `adapted_tol`), so `History` and `CSVLogger` record it.

    Args:
        data: Where adaptation batches come from: a `tf.data.Dataset` of
            `(x, y)` batches (normally the training dataset; it is cycled),
            an iterable of batches, or one `(x, y)` batch used every time.
            Needed in `model.fit`; custom loops may call `adapt(x, y)`.
        threshold: Largest accepted accuracy gap, in [0, 1].
            Default value: `0.1`.
        interval: Training steps (batches) between adaptations.
            Default value: `50`.
        max_steps: Largest number of fixed steps per block.
            Default value: `500`.
        initial_step: `"hairer"` (Hairer's heuristic on the first batch, as
            in the paper), a step size, or `None` to start from the model's
            own step. Clipped to at most `max_steps` steps and at least one.
        initial_tol: Starting tolerance of Algorithm 3; `None` starts from
            the model's own `tol` (or `rtol`).
        test_solver: Override of the test solver (see `test_solvers`).
        accuracy_factor: How much more accurate the fixed-step test solve
            is. Default value: `50`.
        min_tol: Smallest tolerance Algorithm 3 goes to (float32 cannot
            honor much tighter ones). Default value: `1e-7`.
        nfe_window: Training steps whose NFE must all equal the NFE at a
            loosened tolerance for Algorithm 3 to revert it.
            Default value: `5`.
        log_dir: Directory of a TensorBoard writer to create.
        writer: A `tf.summary` writer to use instead.
        verbose: Print every decision when > 0.

    #### References

    [1]: Ott, Katiyar, Hennig, Tiemann. ResNet After All? Neural ODEs and
         Their Numerical Solution. ICLR, 2021. Algorithms 2 and 3.
    [2]: Hairer, Norsett, Wanner. Solving Ordinary Differential Equations I.
         Springer, 1993. Section II.4.
    """

    def __init__(
        self,
        data=None,
        threshold=0.1,
        interval=50,
        max_steps=500,
        initial_step="hairer",
        initial_tol=None,
        test_solver=None,
        accuracy_factor=test_solvers.ACCURACY_FACTOR,
        min_tol=1e-7,
        nfe_window=5,
        log_dir=None,
        writer=None,
        verbose=0,
    ):
        super().__init__()
        self.data = data
        self.threshold = validation.at_least("threshold", threshold, 0)
        if self.threshold > 1:
            raise ValueError(f"threshold must be in [0, 1]; got {threshold!r}.")
        self.interval = validation.positive_int("interval", interval)
        self.max_steps = validation.positive_int("max_steps", max_steps)
        if initial_step not in (None, "hairer"):
            validation.positive_float("initial_step", initial_step)
        self.initial_step = initial_step
        if initial_tol is not None:
            validation.non_negative_float("initial_tol", initial_tol)
        self.initial_tol = initial_tol
        if test_solver is not None:
            solvers_lib.get(test_solver)
        self.test_solver = test_solver
        self.accuracy_factor = validation.at_least(
            "accuracy_factor", accuracy_factor, 1
        )
        self.min_tol = validation.non_negative_float("min_tol", min_tol)
        self.nfe_window = validation.positive_int("nfe_window", nfe_window)
        self.log_dir = log_dir
        self.writer = writer
        self.verbose = verbose
        self.history = []
        self.iteration = 0
        self.mode = None
        self.step_size = None
        self.tol = None
        self._initialized = False
        self._batches = None
        self._recent_nfe = collections.deque(maxlen=self.nfe_window)
        self._nfe_seen = None
        self._last_batch = -1

    # ---------------------------------------------------------------- Keras

    def on_train_begin(self, logs=None):
        if self.data is None:
            raise ValueError(
                "StepAdaptation in model.fit needs data=: the training "
                "dataset (or any source of (x, y) batches) to adapt on."
            )
        if self.writer is None and self.log_dir is not None:
            self.writer = tf.summary.create_file_writer(self.log_dir)
        if not self._initialized:
            x, y = self._next_batch()
            self.initialize(x, y)

    def on_epoch_begin(self, epoch, logs=None):
        self._nfe_seen = None
        self._last_batch = -1

    def on_train_batch_end(self, batch, logs=None):
        # With steps_per_execution = k, Keras reports every k-th batch.
        done = max(1, batch - self._last_batch)
        self._last_batch = batch
        before = self.iteration
        self.iteration += done
        if self.mode == TOLERANCE:
            self._track_nfe()
        if self.iteration // self.interval > before // self.interval:
            x, y = self._next_batch()
            self.adapt(x, y)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        if self.mode == FIXED:
            logs["adapted_step_size"] = self.step_size
            logs["adapted_steps"] = self._num_steps(self.step_size)
        elif self.mode == TOLERANCE:
            logs["adapted_tol"] = self.tol

    def on_train_end(self, logs=None):
        if self.writer is not None:
            self.writer.flush()

    # ------------------------------------------------------------ algorithm

    def initialize(self, x, y=None):
        """Chooses the starting step (tolerance) on a batch and applies it.

        Called by `on_train_begin` with the first batch of `data`; call it
        yourself in a custom loop.
        """
        del y
        self._setup()
        entry = dict(iteration=self.iteration, action="init")
        if self.mode == FIXED:
            h = self._current_step()
            if self.initial_step == "hairer":
                h = self._hairer_step(x)
                entry["hairer_step"] = h
            elif self.initial_step is not None:
                h = float(self.initial_step)
            h = min(max(h, self._span / self.max_steps), self._span)
            self._set_step(h)
            entry.update(step_size=h, num_steps=self._num_steps(h))
        else:
            tol = self._current_tol()
            if self.initial_tol is not None:
                tol = float(self.initial_tol)
            self._set_tol(tol)
            entry.update(tol=tol)
        self._initialized = True
        self._record(entry)
        return entry

    def adapt(self, x, y):
        """Runs one adaptation on the batch `(x, y)`; returns its record."""
        if not self._initialized:
            self.initialize(x, y)
        if self.mode == FIXED:
            entry = self._adapt_step(x, y)
        else:
            entry = self._adapt_tol(x, y)
        self._record(entry)
        return entry

    def _adapt_step(self, x, y):
        h = self.step_size
        name, h_test = test_solvers.fixed_step_test_solver(
            self._solver,
            h,
            span=self._span,
            test_solver=self.test_solver,
            accuracy_factor=self.accuracy_factor,
        )
        a_test, _ = self._accuracy(x, y, solver=name, step_size=h_test)
        a_train, _ = self._accuracy(x, y, solver=self._solver, step_size=h)
        entry = dict(
            iteration=self.iteration,
            previous_step_size=h,
            train_accuracy=a_train,
            test_accuracy=a_test,
            test_solver=solvers_lib.get(name).name,
            test_step_size=h_test,
        )
        new = h
        if abs(a_test - a_train) > self.threshold:
            n = self._span / h
            if self._num_steps(h) >= self.max_steps:
                action = "at_max_steps"
                warnings.warn(
                    f"Step adaptation: the accuracy gap "
                    f"{abs(a_test - a_train):.3f} exceeds the threshold "
                    f"{self.threshold}, but the blocks already take "
                    f"max_steps={self.max_steps} steps; keeping h={h:.6g}.",
                    RuntimeWarning,
                    stacklevel=2,
                )
            elif 2 * n > self.max_steps:
                action = "decrease"
                new = self._span / ((n + self.max_steps) / 2)
            else:
                action = "decrease"
                new = h / 2
        else:
            tried = min(1.1 * h, self._span)
            if tried == h:
                action = "keep"
            else:
                a_new, _ = self._accuracy(
                    x, y, solver=self._solver, step_size=tried
                )
                entry.update(tried_step_size=tried, tried_accuracy=a_new)
                if abs(a_test - a_new) > self.threshold:
                    action = "revert"
                else:
                    action = "increase"
                    new = tried
        if new != h:
            self._set_step(new)
        entry.update(
            action=action, step_size=new, num_steps=self._num_steps(new)
        )
        return entry

    def _adapt_tol(self, x, y):
        tol = self.tol
        name, tol_test = test_solvers.tolerance_test_solver(
            self._solver, tol, test_solver=self.test_solver
        )
        a_train, nfe_train = self._accuracy(x, y, solver=self._solver, tol=tol)
        a_test, nfe_test = self._accuracy(x, y, solver=name, tol=tol_test)
        # Tighten the test tolerance until the test solve does more work.
        while (
            nfe_train is not None
            and nfe_test is not None
            and nfe_test <= nfe_train
            and tol_test >= self.min_tol
        ):
            try:
                a, nfe = self._accuracy(x, y, solver=name, tol=tol_test / 10)
            except tf.errors.InvalidArgumentError:
                break
            tol_test, a_test, nfe_test = tol_test / 10, a, nfe
        entry = dict(
            iteration=self.iteration,
            previous_tol=tol,
            train_accuracy=a_train,
            test_accuracy=a_test,
            train_nfe=nfe_train,
            test_solver=solvers_lib.get(name).name,
            test_tol=tol_test,
            test_nfe=nfe_test,
        )
        new = tol
        if abs(a_test - a_train) > self.threshold:
            if tol <= self.min_tol:
                action = "at_min_tol"
            else:
                action = "decrease"
                new = max(tol / 2, self.min_tol)
        else:
            tried = min(1.1 * tol, 1.0)
            a_new, nfe_new = self._accuracy(
                x, y, solver=self._solver, tol=tried
            )
            entry.update(
                tried_tol=tried, tried_accuracy=a_new, tried_nfe=nfe_new
            )
            stalled = (
                nfe_new is not None
                and len(self._recent_nfe) == self.nfe_window
                and all(n == nfe_new for n in self._recent_nfe)
            )
            if abs(a_test - a_new) > self.threshold or stalled:
                action = "revert"
            else:
                action = "increase"
                new = tried
        if new != tol:
            self._set_tol(new)
        entry.update(action=action, tol=new)
        return entry

    # -------------------------------------------------------------- helpers

    def _setup(self):
        if self.model is None:
            raise ValueError(
                "StepAdaptation has no model: pass it to model.fit, or call "
                "set_model(model) first."
            )
        self._blocks = _blocks.blocks_of(self.model)
        settings = [block.settings for block in self._blocks]
        names = sorted({s.solver_name for s in settings})
        if len({s.solver for s in settings}) > 1:
            raise ValueError(
                "Step adaptation gives all ODEBlocks one step size, so they "
                f"must share one solver; got {names}."
            )
        self._solver = settings[0].solver
        gridded = [s.fixed_grid for s in settings]
        if self._solver.adaptive and not any(gridded):
            self.mode = TOLERANCE
        elif all(gridded):
            self.mode = FIXED
            test_solvers.fixed_step_test_solver(
                self._solver, 1.0, test_solver=self.test_solver
            )
        else:
            raise ValueError(
                "Some ODEBlocks take fixed steps and others adaptive ones; "
                "step adaptation needs them all alike."
            )
        self._span = max(_blocks.span(b) for b in self._blocks)

    def _num_steps(self, h):
        return _blocks.num_steps(self._span, h)

    def _current_step(self):
        return float(min(_blocks.step_size(b) for b in self._blocks))

    def _current_tol(self):
        return float(self._blocks[0].settings.rtol)

    def _hairer_step(self, x):
        inputs = _blocks.block_inputs(self.model, self._blocks, x)
        order = self._solver.order
        steps = []
        for block, y0 in zip(self._blocks, inputs, strict=True):
            direction = 1.0 if block.t1 > block.t0 else -1.0
            steps.append(
                step_adaptation_initial_step(
                    _blocks.vector_field(block),
                    y0,
                    order,
                    t0=block.t0,
                    direction=direction,
                )
            )
        return min(steps)

    def _set_step(self, h):
        self.step_size = float(h)
        self._reconfigure(step_size=self.step_size)

    def _set_tol(self, tol):
        self.tol = float(tol)
        self._reconfigure(tol=self.tol)

    def _reconfigure(self, **changes):
        traced = getattr(self.model, "train_function", None) is not None
        set_solver(self.model, **changes)
        if traced:
            self.model.make_train_function(force=True)

    def _accuracy(self, x, y, **changes):
        """Accuracy and forward NFE on `(x, y)` with the blocks' settings
        changed by `changes` (`SolveSettings.replace` arguments), forward
        only."""
        blocks = self._blocks
        with (
            _blocks.restored_settings(blocks),
            _blocks.preserved_nfe_counters(blocks),
            _forward.quiet_retracing(),
        ):
            for block in blocks:
                block.configure(
                    block.settings.forward_only().replace(**changes)
                )
            _blocks.reset_nfe_counters(blocks)
            logits = _forward.predictor(self.model)(x)
            accuracy = float(np.mean(_forward.correct(logits, y)))
            nfe = _blocks.forward_nfe(blocks)
        return accuracy, nfe

    def _track_nfe(self):
        """Appends the training NFE of the last step (from the counters)."""
        totals = [
            (
                float(b.nfe_counter.forward_total.numpy()),
                float(b.nfe_counter.forward_count.numpy()),
            )
            for b in self._blocks
            if b.track_nfe
        ]
        if not totals:
            return
        seen = self._nfe_seen
        if seen is None or any(
            c < c0 for (_, c), (_, c0) in zip(totals, seen, strict=True)
        ):
            seen = [(0.0, 0.0)] * len(totals)
        nfe = 0.0
        for (t, c), (t0, c0) in zip(totals, seen, strict=True):
            if c > c0:
                nfe += (t - t0) / (c - c0)
        self._nfe_seen = totals
        self._recent_nfe.append(nfe)

    def _next_batch(self):
        data = self.data
        if (
            isinstance(data, tuple)
            and len(data) == 2
            and all(hasattr(v, "shape") for v in data)
        ):
            return data
        if self._batches is None:
            self._batches = iter(data)
        try:
            batch = next(self._batches)
        except StopIteration:
            self._batches = iter(data)
            try:
                batch = next(self._batches)
            except StopIteration:
                raise ValueError(
                    "StepAdaptation's data yields no batches (an exhausted "
                    "iterator?); pass a tf.data.Dataset or a re-iterable."
                ) from None
        return _forward.unpack(batch)

    def _record(self, entry):
        self.history.append(entry)
        if self.verbose:
            shown = {
                k: (f"{v:.4g}" if isinstance(v, float) else v)
                for k, v in entry.items()
            }
            print(f"StepAdaptation: {shown}")
        if self.writer is None:
            return
        with self.writer.as_default(step=entry["iteration"]):
            for key in (
                "step_size",
                "num_steps",
                "tol",
                "train_accuracy",
                "test_accuracy",
                "train_nfe",
                "test_nfe",
            ):
                value = entry.get(key)
                if value is not None:
                    tf.summary.scalar(f"adaptation/{key}", float(value))
            if "test_accuracy" in entry:
                gap = abs(entry["test_accuracy"] - entry["train_accuracy"])
                tf.summary.scalar("adaptation/accuracy_gap", gap)
