"""Whether the graph being built is compiled by XLA, where asserts are
no-ops and shapes must be static (the loops choose their form by it)."""

import tensorflow as tf

__all__ = ["in_xla_context"]


def in_xla_context():
    """Whether the graph being built is compiled by XLA."""
    try:
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # pragma: no cover - layout of TF internals changed
        return False
    graph = tf.compat.v1.get_default_graph()
    return control_flow_util.GraphOrParentsInXlaContext(graph)
