"""`train(config)`: one training run, from data to a saved model.

```none
1. strategy (first: multi-worker must start before any TF op), seeds
2. model_dir: resume a run of this configuration, refuse any other
3. data (seeded, epoch-reproducible tf.data pipelines)
4. model and optimizer in the strategy's scope; restore the last checkpoint
5. the remaining epochs (`TrainingLoop`), testing after each; every
   finished epoch is checkpointed and written to metrics.json and
   TensorBoard
6. the trained model as model.keras; optionally the cross-solver table
```

A run killed at any point and started again with the same configuration
continues from its last finished epoch and ends with the same weights and
metrics as an uninterrupted run (the data order and augmentation of each
epoch depend only on the seed and the epoch; the model, optimizer and
step-adaptation state are checkpointed).
"""

import dataclasses
import math
import os

import keras
import tensorflow as tf
from absl import logging

from tfnode import datasets
from tfnode import models
from tfnode import robustness
from tfnode.layers import ode_blocks
from tfnode.stepping import grid
from tfnode.training import checkpointing
from tfnode.training.callbacks import METRICS_FILE
from tfnode.training.callbacks import EpochRecorder
from tfnode.training.callbacks import NonFiniteLossGuard
from tfnode.training.callbacks import StopAtStep
from tfnode.training.config import default_model_dir
from tfnode.training.config import validate
from tfnode.training.distribution import is_chief
from tfnode.training.distribution import make_strategy
from tfnode.training.distribution import per_replica_batch_size
from tfnode.training.loop import TrainingLoop
from tfnode.training.optimizers import make_optimizer
from tfnode.training.run_dir import prepare_model_dir
from tfnode.training.run_dir import read_json
from tfnode.training.run_dir import write_json

__all__ = [
    "MODEL_FILE",
    "NonFiniteLossError",
    "SolveFailedError",
    "TrainResult",
    "XLA_CONV_LOOP_SLOWDOWN",
    "XLA_LOOP_PATCH_WIDTH_MAX",
    "build_model",
    "check_jit_compile",
    "resolve",
    "train",
]

MODEL_FILE = "model.keras"
SOLVER_TABLE_FILE = "solver_table.json"
SOLVER_PLOT_FILE = "solver_table.png"
ADAPTATION_FILE = "adaptation.json"


class NonFiniteLossError(RuntimeError):
    """The training loss turned NaN or infinite; the run stopped."""


class SolveFailedError(RuntimeError):
    """An ODE solve failed in training (an adaptive solver gave up)."""


@dataclasses.dataclass
class TrainResult:
    """What `train` returns.

    Attributes:
        config: The resolved configuration.
        model_dir: Where the run lives.
        model: The trained Keras model.
        history: The `metrics.json` rows, one per epoch.
        initial_epoch: Epochs already done when this call started.
        solver_table: Rows of the cross-solver evaluation, or `None`.
        chief: Whether this process wrote the outputs.
    """

    config: object
    model_dir: str
    model: keras.Model
    history: list
    initial_epoch: int
    solver_table: list | None = None
    chief: bool = True

    @property
    def final(self):
        """The last epoch's row (`{}` before any epoch)."""
        return self.history[-1] if self.history else {}


_NETWORK_ARGUMENTS = ("channels", "activation", "depth", "method", "planes")


def _network_kwargs(config):
    """The network's own arguments that `config` sets."""
    return {
        key: getattr(config, key)
        for key in _NETWORK_ARGUMENTS
        if getattr(config, key) is not None
    }


def resolve(config):
    """Validates `config` and fills in the network's default dataset and,
    when `config.settings` is unset, its paper's solve settings."""
    validate(config)
    if config.dataset is None:
        config = config.replace(dataset=models.default_dataset(config.network))
    if config.settings is None:
        config = config.replace(
            settings=models.settings_for(
                config.network, network_kwargs=_network_kwargs(config)
            )
        )
    return config


def build_model(config, info):
    """The network of `config` for dataset `info` (a `DatasetInfo`), its
    ODE blocks solving with `config.settings` (the paper's when unset)."""
    return models.get(config.network)(
        input_shape=info.input_shape,
        num_classes=info.num_classes,
        settings=config.settings,
        **_network_kwargs(config),
    )


# What docs/benchmarks/xla.md measured on CPU for the conv problem (rk4,
# 16 steps, 32 channels, one train step) with its steps in a while loop,
# XLA over graph mode: 17-50x with Keras' convolutions, 1.7-2.3x with the
# patch products `tfnode.layers.Conv2D` computes in XLA loops.
XLA_CONV_LOOP_SLOWDOWN = "2x"

# The widest patch (kernel area x input channels) of a convolution that may
# be differentiated in an XLA loop on CPU. Whole train steps under XLA over
# graph mode: the blog's MNIST ODENet (3x3 over 6 channels, 54 wide, in
# adaptive loops) 0.75x, the conv problem (288 wide) 2x. A convolution's
# VJP alone in an XLA loop on patches takes 1.4x graph mode's time at widths
# 54-72 and 1.8-3.5x from 108 (docs/benchmarks/conv_patches.md): what XLA
# fuses around it pays for narrow convolutions only.
XLA_LOOP_PATCH_WIDTH_MAX = 64


def _widest_patch(layer):
    """The widest patch (product of all kernel dimensions but the output
    channels) of the convolution kernels `layer` holds (weights of rank
    >= 3); 0 when it holds none."""
    return max(
        (math.prod(w.shape[:-1]) for w in layer.weights if len(w.shape) >= 3),
        default=0,
    )


def _xla_loop_reason(block):
    """Why `block`'s training step would differentiate its field inside a
    `while` loop under XLA, or `None` when XLA runs those steps unrolled."""
    settings = block.settings
    grids = settings.adjoint.grids_under_xla(settings)
    if grids is None:
        return (
            f"adjoint={settings.adjoint.name!r} as configured runs its "
            "backward pass in tf.while_loops"
        )
    times = block._times()  # pylint: disable=protected-access
    if len(times) > 2:
        return "its output_times are solved in a tf.while_loop"
    for backward in grids:
        reason = _grid_loop_reason(block, backward, times)
        if reason is not None:
            return reason
    return None


def _grid_loop_reason(block, settings, times):
    """Why XLA would step through `settings`' grid over `times` in a
    `tf.while_loop`, or `None`."""
    if not settings.fixed_grid:
        return (
            f"the adaptive solver {settings.solver_name!r} steps in a "
            "tf.while_loop"
        )
    if getattr(block, "trainable_t1", False) and settings.steps is None:
        return "a step_size grid over a trainable t1 has no static step count"
    if grid.short_grid_steps(tf.constant(times), settings) is None:
        counts = grid.static_step_counts(tf.constant(times), settings)
        steps = "?" if counts is None else sum(counts)
        return (
            f"its {steps} steps exceed the {grid.UNROLL_MAX_STEPS} that XLA "
            "runs unrolled"
        )
    return None


def check_jit_compile(config, model):
    """Refuses `jit_compile` where XLA is a measured trap: on CPU, for ODE
    blocks whose fields hold convolutions wider than
    `XLA_LOOP_PATCH_WIDTH_MAX` and whose gradient would run inside a
    `tf.while_loop` (XLA:CPU compiles that code slowly).

    Raises:
        ValueError: naming `--jit_compile`, the blocks, the measured
            slowdown and the alternatives.
    """
    if not config.jit_compile or tf.config.list_logical_devices("GPU"):
        return
    traps = []
    for block in ode_blocks(model):
        width = _widest_patch(block.func)
        if width <= XLA_LOOP_PATCH_WIDTH_MAX:
            continue
        reason = _xla_loop_reason(block)
        if reason is not None:
            traps.append(
                f"{block.name} ({reason}; convolution patches {width} wide)"
            )
    if traps:
        raise ValueError(
            "--jit_compile (jit_compile=True) on CPU: XLA compiles the "
            "gradient of convolutions wider than "
            f"{XLA_LOOP_PATCH_WIDTH_MAX} (kernel area x input channels) "
            "inside a tf.while_loop slowly, and in "
            f"{', '.join(traps)} it would: a train step measured "
            f"{XLA_CONV_LOOP_SLOWDOWN} slower than without XLA "
            "(docs/benchmarks/xla.md). Drop --jit_compile, or use "
            "--adjoint=backprop, anode (without checkpoints) or continuous "
            "(on a fixed grid) with a fixed-step solver and at most "
            f"{grid.UNROLL_MAX_STEPS} steps (e.g. --solver=rk4 --steps=8), "
            "which XLA runs unrolled."
        )


def _check_test_solvers(config, model):
    """Fails before training, not after it, on a cross-solver evaluation
    that cannot run."""
    for block in ode_blocks(model):
        for solver in config.test_solvers:
            robustness.scaled_settings(block, solver, 1.0)


class _Adaptation:
    """Step adaptation (Ott et al. 2021) in a run that may be resumed.

    The callback adapts on batches drawn from the training stream; on resume
    it restarts from the step (tolerance) reached, skips the batches already
    used and continues counting iterations where it stopped.
    """

    def __init__(self, config, data, log_dir, saved):
        saved = saved or {}
        self.previous = list(saved.get("history", []))
        used = max(len(self.previous) - 1, 0)
        stream = data.train_batches(
            config.batch_size,
            config.seed,
            steps_per_epoch=_steps_per_epoch(config, data),
        ).skip(used)
        kwargs = dict(
            data=stream,
            threshold=config.adaptation_threshold,
            interval=config.adaptation_interval,
            max_steps=config.adaptation_max_steps,
            log_dir=log_dir,
        )
        if saved.get("step_size") is not None:
            kwargs["initial_step"] = saved["step_size"]
        if saved.get("tol") is not None:
            kwargs["initial_tol"] = saved["tol"]
        self.resumed = bool(self.previous)
        self.callback = robustness.StepAdaptation(**kwargs)
        self.callback.iteration = int(saved.get("iteration", 0))

    def history(self):
        new = self.callback.history
        if self.resumed:
            new = new[1:]  # The restart's own "init" record.
        return self.previous + list(new)

    def state(self):
        return dict(
            adaptation=dict(
                step_size=self.callback.step_size,
                tol=self.callback.tol,
                iteration=self.callback.iteration,
                history=self.history(),
            )
        )


def _steps_per_epoch(config, data):
    steps = data.steps_per_epoch(config.batch_size)
    if steps < 1:
        raise ValueError(
            f"batch_size={config.batch_size} exceeds the {data.num_train} "
            "training examples."
        )
    if config.train_steps is not None:
        steps = min(steps, config.train_steps)
    return steps


def _schedule(config, data):
    """`(steps_per_epoch, epochs, total_steps)` of the run."""
    steps_per_epoch = _steps_per_epoch(config, data)
    if config.train_steps is not None:
        epochs = math.ceil(config.train_steps / steps_per_epoch)
        return steps_per_epoch, epochs, config.train_steps
    return steps_per_epoch, config.epochs, config.epochs * steps_per_epoch


def _describe(config, data, model, epochs, steps_per_epoch, strategy):
    blocks = ode_blocks(model)
    return (
        f"{config.network} ({model.count_params():,} parameters, "
        f"{len(blocks)} ODE block(s): {blocks[0].settings}) on "
        f"{config.dataset} ({data.num_train} train / {data.num_test} test): "
        f"{epochs} epochs of {steps_per_epoch} steps, global batch "
        f"{config.batch_size} over {strategy.num_replicas_in_sync} "
        "replica(s)"
    )


def train(config, *, strategy=None, callbacks=()):
    """Trains the network of `config`, resuming its `model_dir` if it holds
    an unfinished run of the same configuration.

    Args:
        config: A `TrainConfig`.
        strategy: A `tf.distribute.Strategy`; made from `config.strategy`
            and `config.devices` when unset.
        callbacks: More Keras callbacks, run after the run's own.

    Returns:
        A `TrainResult`.

    Raises:
        ValueError: for a bad setting, naming it and its allowed values;
            for `jit_compile` where it is a measured trap on CPU (see
            `check_jit_compile`).
        ModelDirError: when `model_dir` holds another run or other files.
        DatasetNotFoundError: when MNIST or CIFAR-10 is missing.
        NonFiniteLossError: when the loss turns NaN or infinite; the last
            good checkpoint is kept.
        SolveFailedError: when an ODE solve fails in training; likewise.
    """
    config = resolve(config)
    if strategy is None:
        strategy = make_strategy(config.strategy, config.devices)
    chief = is_chief(strategy)
    model_dir = config.model_dir or default_model_dir(config)
    config = config.replace(model_dir=model_dir)
    per_replica_batch_size(config.batch_size, strategy)
    if config.jit_compile:
        # Before the run folder and the seeds: a throwaway model, checked
        # only (`set_random_seed` below restarts every generator).
        check_jit_compile(
            config, build_model(config, datasets.get(config.dataset))
        )
    eval_batch_size = config.eval_batch_size or config.batch_size
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(config.seed)

    resuming = prepare_model_dir(config, model_dir, chief)
    data = datasets.load(
        config.dataset,
        data_dir=config.data_dir,
        download=config.download,
        train_examples=config.train_examples,
        test_examples=config.test_examples,
        seed=config.data_seed,
        normalize=config.normalize,
        augment=config.augment,
    )
    steps_per_epoch, epochs, total_steps = _schedule(config, data)

    with strategy.scope():
        model = build_model(config, data.info)
        _check_test_solvers(config, model)
        optimizer = make_optimizer(config, steps_per_epoch, total_steps)
        optimizer.build(model.trainable_variables)
    loop = TrainingLoop(
        model, optimizer, strategy, config.batch_size, config.jit_compile
    )

    state = {}
    latest = checkpointing.latest_checkpoint(model_dir) if resuming else None
    if latest is not None:
        with strategy.scope():
            state = checkpointing.restore_checkpoint(
                latest[1], model, optimizer
            )
        logging.info("Resuming from %s (epoch %d).", latest[1], state["epoch"])
    initial_epoch = int(state.get("epoch", 0))
    history = list(state.get("history", []))
    logging.info(
        "Training %s; model_dir=%s",
        _describe(config, data, model, epochs, steps_per_epoch, strategy),
        model_dir,
    )

    guard = NonFiniteLossGuard()
    run_callbacks = [guard]
    adaptation = None
    if config.step_adaptation:
        adaptation = _Adaptation(
            config,
            data,
            os.path.join(model_dir, "logs", "adaptation") if chief else None,
            state.get("adaptation"),
        )
        run_callbacks.append(adaptation.callback)
    if config.train_steps is not None:
        run_callbacks.append(StopAtStep(config.train_steps, optimizer))
    recorder = EpochRecorder(
        model_dir,
        optimizer,
        chief,
        history,
        state.get("elapsed", 0.0),
        guard,
        extra_state=adaptation.state if adaptation else None,
    )
    run_callbacks.append(recorder)
    run_callbacks.extend(callbacks)

    if initial_epoch < epochs:
        try:
            loop.fit(
                data.train_batches(
                    config.batch_size,
                    config.seed,
                    first_epoch=initial_epoch,
                    num_epochs=epochs - initial_epoch,
                    steps_per_epoch=steps_per_epoch,
                ),
                epochs=epochs,
                initial_epoch=initial_epoch,
                steps_per_epoch=steps_per_epoch,
                test_dataset=data.test_batches(eval_batch_size),
                callbacks=run_callbacks,
                verbose=config.verbose,
            )
        except tf.errors.InvalidArgumentError as error:
            raise _solve_error(error, guard, model_dir, history) from error
        if guard.failure is not None:
            epoch, batch, loss = guard.failure
            raise NonFiniteLossError(
                f"The training loss became {loss} at epoch {epoch + 1}, "
                f"step {batch + 1}; training stopped. "
                f"{_kept(model_dir, history)} {_ADVICE}"
            )
    else:
        logging.info(
            "%s already holds the finished run (%d of %d epochs).",
            model_dir,
            initial_epoch,
            epochs,
        )

    result = TrainResult(
        config, model_dir, model, history, initial_epoch, chief=chief
    )
    if chief:
        _write_outputs(
            result, data, adaptation, initial_epoch < epochs, eval_batch_size
        )
    if result.final:
        logging.info(
            "Final test accuracy %.4f (test loss %.4f) after %d epochs; "
            "metrics in %s",
            result.final["test_accuracy"],
            result.final["test_loss"],
            result.final["epoch"],
            os.path.join(model_dir, METRICS_FILE),
        )
    return result


def _write_outputs(result, data, adaptation, trained, eval_batch_size):
    """The chief's outputs beside the checkpoints: `adaptation.json`,
    `model.keras` and the cross-solver table (kept from an earlier call when
    this one trained nothing)."""
    config, model_dir, model = result.config, result.model_dir, result.model
    if adaptation is not None:
        write_json(
            os.path.join(model_dir, ADAPTATION_FILE), adaptation.history()
        )
    model_path = os.path.join(model_dir, MODEL_FILE)
    if trained or not tf.io.gfile.exists(model_path):
        model.save(model_path)
    if not config.test_solvers:
        return
    table_path = os.path.join(model_dir, SOLVER_TABLE_FILE)
    if not trained and tf.io.gfile.exists(table_path):
        result.solver_table = read_json(table_path)
    else:
        result.solver_table = _solver_table(
            config, model, data, eval_batch_size, model_dir
        )


_ADVICE = (
    "Try a smaller lr, more solver steps (steps/step_size) or tighter "
    "tolerances (tol/rtol/atol)."
)


def _reason(error):
    """The useful line of a TensorFlow runtime error."""
    lines = [line.strip() for line in error.message.splitlines()]
    for line in lines:
        if line.startswith("assertion failed:"):
            return line[len("assertion failed:") :].strip(" []")
    lines = [line for line in lines if line]
    return lines[-1] if lines else str(error)


def _solve_error(error, guard, model_dir, history):
    """The error to raise for a solve that failed in training."""
    reason = _reason(error)
    where = f"at epoch {guard.epoch + 1}, step {guard.batch + 1}"
    if "NaN or Inf" in reason:
        return NonFiniteLossError(
            f"Training diverged {where}: {reason} Training stopped. "
            f"{_kept(model_dir, history)} {_ADVICE}"
        )
    return SolveFailedError(
        f"An ODE solve failed in training {where}: {reason} Training "
        f"stopped. {_kept(model_dir, history)} Try a larger max_num_steps, "
        "other tolerances, a smaller lr, or a fixed-step solver."
    )


def _kept(model_dir, history):
    if not history:
        return "No epoch finished, so no checkpoint was written."
    return (
        f"The last good checkpoint (epoch {history[-1]['epoch']}) is kept "
        f"in {checkpointing.checkpoint_dir(model_dir)}."
    )


def _solver_table(config, model, data, batch_size, model_dir):
    table = robustness.evaluate_with_solvers(
        model,
        data.test_batches(batch_size),
        config.test_solvers,
        config.test_factors,
    )
    write_json(os.path.join(model_dir, SOLVER_TABLE_FILE), table)
    if any(math.isfinite(row["accuracy"]) for row in table):
        robustness.plot_solver_table(
            table,
            os.path.join(model_dir, SOLVER_PLOT_FILE),
            title=f"{config.network} on {config.dataset}",
        )
    for row in table:
        logging.info(
            "Test with %s (factor %g): accuracy %.4f, NFE %s",
            row["solver"],
            row["factor"],
            row["accuracy"],
            row["nfe"],
        )
    return table
