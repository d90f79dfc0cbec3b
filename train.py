"""Trains the Neural ODEs of the reference papers, configured by flags.

```none
python train.py                                  # simple_odenet on
                                                 # concentric_sphere2, Euler
python train.py --flagfile=flags/anode_sqnxt.cfg
python train.py --network=tiny_resnet --adjoint=reversible --depth=16
python train.py --helpshort                      # every flag
```

Every run writes to `--model_dir`: a checkpoint per epoch (a killed run,
started again with the same command, resumes where it stopped),
`metrics.json`, TensorBoard logs and the trained `model.keras`.

This file is intentionally short: the logic is in `tfnode.training` and the
flags are in `flags/`.
"""

import json

from absl import app
from absl import flags as absl_flags
from absl import logging

import flags
from tfnode import datasets
from tfnode import training

FLAGS = absl_flags.FLAGS

# Failures a user can act on: shown as a message, without a traceback.
_RUN_ERRORS = (
    training.ModelDirError,
    training.NonFiniteLossError,
    training.SolveFailedError,
    training.CheckpointMismatchError,
    datasets.DatasetNotFoundError,
)


def summary(result):
    """The lines `main` prints at the end of a run."""
    final = result.final
    if not final:
        return [f"No epoch finished; outputs in {result.model_dir}."]
    metrics = {
        key: value
        for key, value in final.items()
        if key not in ("wall_time", "elapsed")
    }
    lines = [
        f"Final test accuracy {final['test_accuracy']:.4f} (test loss "
        f"{final['test_loss']:.4f}; train accuracy "
        f"{final['train_accuracy']:.4f}, loss {final['train_loss']:.4f}) "
        f"after {final['epoch']} epochs, {final['elapsed']:.1f} s of "
        "training.",
        f"Final metrics: {json.dumps(metrics)}",
    ]
    if result.chief:
        lines.append(
            f"Outputs in {result.model_dir}: config.json, metrics.json, "
            "checkpoints/, logs/, model.keras"
        )
    return lines


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(
            f"Too many command-line arguments: {' '.join(argv[1:])}"
        )
    try:
        config = training.resolve(flags.get_config(FLAGS))
    except ValueError as error:
        raise app.UsageError(str(error)) from error
    try:
        result = training.train(config)
    except _RUN_ERRORS as error:
        logging.error("%s", error)
        return 1
    except ValueError as error:
        logging.debug("Bad setting.", exc_info=True)
        raise app.UsageError(str(error)) from error
    for line in summary(result):
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    flags.define_flags()
    for _module in (
        flags.model,
        flags.data,
        flags.solver,
        flags.optimizer,
        flags.run,
        flags.robustness,
    ):
        absl_flags.adopt_module_key_flags(_module)
    app.run(main)
