"""ODE solve flags: solver, grid or tolerances, gradient method.

`solve_settings()` turns them into one `tfnode.SolveSettings`. Unset, the
solve is the network's paper's (e.g. Euler with `Nt = 2` for ANODE's
networks, Euler with step 1 for Ott et al.'s, dopri5 with tolerance 0.1 for
the blog's); once any of `--steps`, `--step_size`, `--rtol`, `--atol`,
`--tol` is given, only the given ones are used.
"""

from absl import flags as absl_flags

from flags._define import defines
from tfnode import adjoints
from tfnode import models
from tfnode import solvers

__all__ = ["define_solver_flags", "solve_settings"]

NAMES = (
    "solver",
    "adjoint",
    "steps",
    "step_size",
    "rtol",
    "atol",
    "tol",
    "checkpoints",
    "seminorm",
    "max_num_steps",
)


def _positive(flag_values, name):
    absl_flags.register_validator(
        name,
        lambda value: value is None or value > 0,
        message=f"--{name} must be > 0.",
        flag_values=flag_values,
    )


@defines(NAMES)
def define_solver_flags(flag_values):
    """Defines the solver flags on `flag_values`."""
    absl_flags.DEFINE_enum(
        "solver",
        None,
        solvers.names(),
        "ODE solver of every ODE block (tfnode.solvers); the network's "
        "paper's when unset. ANODE's RK2 is midpoint (alias rk2), its RK4 "
        "is rk4; torchdiffeq's rk4 is rk38.",
        flag_values=flag_values,
    )
    absl_flags.DEFINE_enum(
        "adjoint",
        "backprop",
        adjoints.names(),
        "Gradient method (tfnode.adjoints): backprop through the solver, "
        "anode (ANODE's checkpointed discrete adjoint), continuous (the "
        "adjoint ODE; Chen et al.), reversible (Sander et al.).",
        flag_values=flag_values,
    )
    absl_flags.DEFINE_integer(
        "steps",
        None,
        "Fixed grid: steps per ODE block on its time interval (ANODE's Nt).",
        lower_bound=1,
        flag_values=flag_values,
    )
    absl_flags.DEFINE_alias("Nt", "steps", flag_values=flag_values)
    absl_flags.DEFINE_float(
        "step_size",
        None,
        "Fixed grid: step size h (Ott et al.'s step_size); the last step is "
        "clamped.",
        flag_values=flag_values,
    )
    absl_flags.DEFINE_float(
        "rtol",
        None,
        "Adaptive solvers: relative tolerance.",
        flag_values=flag_values,
    )
    absl_flags.DEFINE_float(
        "atol",
        None,
        "Adaptive solvers: absolute tolerance.",
        flag_values=flag_values,
    )
    absl_flags.DEFINE_float(
        "tol",
        None,
        "Adaptive solvers: sets both rtol and atol (Ott et al.'s tol).",
        flag_values=flag_values,
    )
    for name in ("step_size", "rtol", "atol", "tol"):
        _positive(flag_values, name)
    absl_flags.DEFINE_integer(
        "checkpoints",
        None,
        "--adjoint=anode: states kept in memory for binomial checkpointing "
        "(every step's state when unset).",
        lower_bound=1,
        flag_values=flag_values,
    )
    absl_flags.DEFINE_bool(
        "seminorm",
        False,
        "--adjoint=continuous: leave the parameter adjoints out of the "
        "backward step-size control (Kidger et al. 2021).",
        flag_values=flag_values,
    )
    absl_flags.DEFINE_integer(
        "max_num_steps",
        None,
        "Adaptive solvers: most step attempts per solve before failing "
        "(odeint's default 10000 when unset).",
        lower_bound=1,
        flag_values=flag_values,
    )


def solve_settings(flag_values=absl_flags.FLAGS):
    """The `tfnode.SolveSettings` of the parsed flags: the solve flags over
    the paper's default of `--network` (with its `--depth` and `--method`),
    by the rule of `tfnode.models.solve_settings`.

    Raises:
        ValueError, TypeError: for contradictory or bad solve flags.
    """
    f = flag_values
    if f.steps is not None and f.step_size is not None:
        raise ValueError("Give --steps (--Nt) or --step_size, not both.")
    shorthand = {name: f[name].value for name in NAMES}
    shorthand["seminorm"] = shorthand["seminorm"] or None
    return models.settings_for(
        f.network,
        network_kwargs=dict(depth=f.depth, method=f.method),
        **shorthand,
    )
