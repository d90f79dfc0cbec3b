"""Whether the graph being built is compiled by XLA, where asserts are
no-ops and shapes must be static (the loops choose their form by it), and
whether it is a `while` loop's body there (convolutions choose theirs)."""

import tensorflow as tf

__all__ = ["in_xla_context", "in_xla_loop_context"]


def in_xla_context():
    """Whether the graph being built is compiled by XLA."""
    try:
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # pragma: no cover - layout of TF internals changed
        return False
    graph = tf.compat.v1.get_default_graph()
    return control_flow_util.GraphOrParentsInXlaContext(graph)


def in_xla_loop_context():
    """Whether the graph being built is (inside) the condition or body of
    a `tf.while_loop` that XLA compiles."""
    try:
        from tensorflow.python.ops import control_flow_util_v2
    except ImportError:  # pragma: no cover - layout of TF internals changed
        return False
    if not in_xla_context():
        return False
    graph = tf.compat.v1.get_default_graph()
    while graph is not None:
        if control_flow_util_v2.in_while_loop_defun(graph):
            return True
        graph = getattr(graph, "outer_graph", None)
    return False
