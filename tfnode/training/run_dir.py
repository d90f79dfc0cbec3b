"""A run's `model_dir`: claimed for one configuration, never overwritten.

```none
<model_dir>/config.json      the configuration that owns the folder
<model_dir>/checkpoints/     TensorFlow checkpoints, one per finished epoch
                             (the newest kept; `tfnode.training.checkpointing`)
<model_dir>/metrics.json     per-epoch metrics
<model_dir>/logs/            TensorBoard events
<model_dir>/model.keras      the trained model
```

Starting a run in a folder that holds a run of the same configuration
resumes it; a folder holding another configuration, or files of anything
else, is an error unless `overwrite` is set, which deletes it first. Every
file goes through `tf.io.gfile`, so `model_dir` may be a cloud bucket.
"""

import json
import time

import tensorflow as tf

import tfnode

__all__ = [
    "CONFIG_FILE",
    "ModelDirError",
    "prepare_model_dir",
    "read_json",
    "write_json",
]

CONFIG_FILE = "config.json"


class ModelDirError(FileExistsError):
    """`model_dir` holds something this run must not resume or overwrite."""


def write_json(path, value):
    """Writes `value` as JSON to `path`, atomically (temporary + rename)."""
    temporary = path + ".tmp"
    with tf.io.gfile.GFile(temporary, "w") as f:
        f.write(json.dumps(value, indent=1, sort_keys=False, default=float))
    tf.io.gfile.rename(temporary, path, overwrite=True)


def read_json(path):
    """Reads a JSON file written by `write_json`."""
    with tf.io.gfile.GFile(path, "r") as f:
        return json.loads(f.read())


def _differences(saved, current):
    keys = sorted(set(saved) | set(current))
    return [
        f"{key}: {saved.get(key)!r} there, {current.get(key)!r} here"
        for key in keys
        if saved.get(key) != current.get(key)
    ]


def prepare_model_dir(config, model_dir, chief=True):
    """Checks that `model_dir` may hold this run, and claims it.

    Args:
        config: The run's `TrainConfig`.
        model_dir: The folder.
        chief: Whether this process writes. Only the chief deletes, writes
            `config.json` or checks for foreign files; the other workers of a
            cluster, which may look while the chief writes, only check that
            a `config.json` there is this configuration's.

    Returns:
        Whether a run of this configuration is already there (to resume).

    Raises:
        ModelDirError: when `model_dir` holds a run of another configuration,
            files that are not a run's, or a run while `resume` is off; the
            message names the differences and the way out.
    """
    config_path = tf.io.gfile.join(model_dir, CONFIG_FILE)
    if config.overwrite:
        if chief and tf.io.gfile.exists(model_dir):
            tf.io.gfile.rmtree(model_dir)
    elif tf.io.gfile.exists(config_path):
        saved = read_json(config_path).get("experiment", {})
        differences = _differences(saved, config.experiment())
        if differences:
            raise ModelDirError(
                f"model_dir={model_dir} holds a run of another configuration "
                f"({'; '.join(differences)}). Use another model_dir, or set "
                "overwrite (--overwrite) to delete that run."
            )
        if not config.resume and chief:
            raise ModelDirError(
                f"model_dir={model_dir} already holds a run of this "
                "configuration and resume is off (--noresume). Resume it, "
                "use another model_dir, or set overwrite (--overwrite) to "
                "delete it."
            )
        return True
    elif (
        chief
        and tf.io.gfile.isdir(model_dir)
        and tf.io.gfile.listdir(model_dir)
    ):
        raise ModelDirError(
            f"model_dir={model_dir} is not empty and holds no {CONFIG_FILE}: "
            "it is not a tfnode run. Use another model_dir, or set overwrite "
            "(--overwrite) to delete its contents."
        )
    if chief:
        tf.io.gfile.makedirs(model_dir)
        write_json(
            config_path,
            {
                "experiment": config.experiment(),
                "runtime": {
                    key: value
                    for key, value in config.to_dict().items()
                    if key not in config.experiment()
                },
                "fingerprint": config.fingerprint(),
                "tfnode_version": tfnode.__version__,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
        )
    return False
