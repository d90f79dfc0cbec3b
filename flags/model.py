"""Network flags: `--network` and the networks' own settings.

Unset settings take the network's default (its paper's).
"""

from absl import flags as absl_flags

from flags._define import defines
from tfnode import models
from tfnode.layers.vector_fields import ACTIVATIONS
from tfnode.models.sander import METHODS

__all__ = ["define_model_flags"]

NAMES = ("network", "channels", "activation", "depth", "method", "planes")


@defines(NAMES)
def define_model_flags(flag_values):
    """Defines the model flags on `flag_values`."""
    absl_flags.DEFINE_enum(
        "network",
        "simple_odenet",
        models.names(),
        "The network (tfnode.models): anode_resnet, anode_sqnxt (ANODE); "
        "simple_odenet, linear_odenet, odenet (Ott et al.); tiny_resnet "
        "(Sander et al.); mnist_odenet (the blog's MNIST ODENet).",
        flag_values=flag_values,
    )
    absl_flags.DEFINE_integer(
        "channels",
        None,
        "Channels of the ODE function: Ott et al.'s ch_residual_block "
        "(simple_odenet, linear_odenet, odenet; default 32), the blog's "
        "state channels (mnist_odenet; default 6).",
        lower_bound=1,
        flag_values=flag_values,
    )
    absl_flags.DEFINE_enum(
        "activation",
        None,
        sorted(ACTIVATIONS),
        "Activation of Ott et al.'s ODE functions (default relu).",
        flag_values=flag_values,
    )
    absl_flags.DEFINE_integer(
        "depth",
        None,
        "tiny_resnet: number of residual functions (default 8).",
        lower_bound=1,
        flag_values=flag_values,
    )
    absl_flags.DEFINE_enum(
        "method",
        None,
        list(METHODS),
        "tiny_resnet: the residual scheme, euler (depth Euler steps) or heun "
        "(depth - 1 Heun steps) (default euler).",
        flag_values=flag_values,
    )
    absl_flags.DEFINE_integer(
        "planes",
        None,
        "tiny_resnet: channels of the residual stack (default 16).",
        lower_bound=1,
        flag_values=flag_values,
    )
