"""`tf.distribute` strategies by name, and which worker writes the outputs.

```none
strategy="default"        one device (the first GPU, else the CPU)
strategy="mirrored"       MirroredStrategy: every local GPU, or `devices`
strategy="multi_worker"   MultiWorkerMirroredStrategy, cluster from TF_CONFIG
```

`batch_size` is always the global batch: each of the
`num_replicas_in_sync` replicas gets `batch_size / num_replicas_in_sync`.
Only the chief writes to `model_dir`; the other workers compute the same
values and keep them in memory.
"""

import tensorflow as tf

__all__ = [
    "is_chief",
    "make_strategy",
    "per_replica_batch_size",
]


def make_strategy(name="default", devices=()):
    """Creates the strategy `name`.

    `multi_worker` must be created before TensorFlow runs any op, so call
    this first.

    Args:
        name: `"default"`, `"mirrored"` or `"multi_worker"`.
        devices: For `"mirrored"`: the devices to mirror over (e.g.
            `("/gpu:0", "/gpu:1")`); all local GPUs (or the CPU) when empty.

    Returns:
        A `tf.distribute.Strategy`.

    Raises:
        ValueError: for an unknown name, or `devices` with another strategy.
    """
    devices = tuple(devices)
    if devices and name != "mirrored":
        raise ValueError(
            f"devices apply to strategy=mirrored; got strategy={name!r}."
        )
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=list(devices) or None)
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(
        f"Unknown strategy={name!r}; choose one of: default, mirrored, "
        "multi_worker."
    )


def is_chief(strategy):
    """Whether this process writes checkpoints, logs and the model: always,
    except on the non-chief workers of a multi-worker cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type is None or task_type == "chief":
        return True
    if task_type != "worker":
        return False
    cluster = resolver.cluster_spec().as_dict()
    return "chief" not in cluster and task_id == 0


def per_replica_batch_size(batch_size, strategy, argument="batch_size"):
    """`batch_size / num_replicas_in_sync`.

    Raises:
        ValueError: when the replicas cannot share the batch equally.
    """
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(
            f"{argument}={batch_size} is the global batch and must be "
            f"divisible by the {replicas} replicas in sync; use a multiple "
            f"of {replicas}."
        )
    return batch_size // replicas
