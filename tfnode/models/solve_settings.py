"""Each paper's default solve, and how a network's ODE blocks get theirs.

A paper's default is a `tfnode.SolveSettings` value (`ANODE`, `BLOG`,
`sander(depth, method)`), or a tuple of them where the paper also names a
solve for the other kind of solver (`RESNET_AFTER_ALL`: Euler with step 1,
and `tol=1e-8` for adaptive solvers). A network builder takes `settings=`
(a `SolveSettings`) and/or the keyword shorthand of `tfnode.ODEBlock`
(`solver=`, `steps=`, `tol=`, `adjoint=`, `checkpoints=`, `track_nfe=`...),
and `block_arguments` applies them over the paper's default:

- Given `settings`, the blocks use it; the shorthand replaces its fields.
- Otherwise `solver=None` is the paper's solver, and when none of `steps`,
  `step_size`, `rtol`, `atol`, `tol` is given, a fixed-step solver gets the
  paper's grid and an adaptive one the paper's tolerances (or `odeint`'s
  defaults when the paper has none). Once any of them is given, only the
  given ones are used.

```python
model = tfnode.models.anode_sqnxt(solver="rk4")          # rk4, steps=2
model = tfnode.models.anode_sqnxt(
    settings=tfnode.SolveSettings(solver="dopri5", tol=1e-4))
```
"""

from tfnode import solvers
from tfnode.settings import SolveSettings
from tfnode.settings import resolve
from tfnode.settings import shorthand_names

__all__ = [
    "ANODE",
    "BLOG",
    "RESNET_AFTER_ALL",
    "block_arguments",
    "network_settings",
    "sander",
]

# Gholami et al. 2019: Euler with Nt = 2 steps per block.
ANODE = SolveSettings(solver="euler", steps=2)
# Ott et al. 2021: Euler with h = 1; adaptive solvers at tol = 1e-8.
RESNET_AFTER_ALL = (
    SolveSettings(solver="euler", step_size=1.0),
    SolveSettings(solver="dopri5", tol=1e-8),
)
# 'A Simple Introduction to Neural ODEs': dopri5 at rtol = atol = 0.1.
BLOG = SolveSettings(solver="dopri5", rtol=0.1, atol=0.1)

_GRID_OR_TOLERANCES = ("steps", "step_size", "rtol", "atol", "tol")
_LAYER_ARGUMENTS = ("track_nfe",)


def sander(depth, method):
    """Sander et al. 2022: `depth` Euler steps, or `depth - 1` Heun steps
    (`method` is `"euler"` or `"heun"`)."""
    return SolveSettings(
        solver=method, steps=depth if method == "euler" else depth - 1
    )


def network_settings(paper, settings=None, **shorthand):
    """The solve of a network's ODE blocks: the user's over the paper's.

    Args:
        paper: The paper's default, a `SolveSettings` or a tuple of them
            (the first is the paper's own solve).
        settings: The user's `SolveSettings` (or its config dict), or
            `None`.
        **shorthand: `SolveSettings.from_options` arguments; `None` values
            count as unset.

    Returns:
        A `SolveSettings`.

    Raises:
        ValueError, TypeError: for a bad or incomplete setting (e.g. a
            fixed-step solver where the paper has no grid), naming it.
    """
    shorthand = {k: v for k, v in shorthand.items() if v is not None}
    if settings is not None:
        return resolve(settings, **shorthand)
    papers = paper if isinstance(paper, tuple) else (paper,)
    solver = solvers.get(shorthand.pop("solver", papers[0].solver))
    if set(shorthand) & set(_GRID_OR_TOLERANCES):
        return papers[0].replace(solver=solver, **shorthand)
    same_kind = [p for p in papers if p.fixed_grid != solver.adaptive]
    if not same_kind:
        # odeint's default tolerances, or the error that a fixed-step
        # solver needs a grid.
        return SolveSettings.from_options(solver=solver, **shorthand)
    return same_kind[0].replace(solver=solver, **shorthand)


def block_arguments(network, paper, settings=None, options=None):
    """The `ODEBlock` keyword arguments of a network's blocks.

    Args:
        network: The network's name, for error messages.
        paper: The paper's default (see `network_settings`).
        settings: The builder's `settings` argument.
        options: The builder's other keyword arguments: the keyword
            shorthand and `track_nfe`.

    Returns:
        `{"settings": SolveSettings, ...}` (with `track_nfe` when given).

    Raises:
        ValueError: naming unknown arguments and the allowed ones.
    """
    options = dict(options or {})
    allowed = (*shorthand_names(), *_LAYER_ARGUMENTS)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"Unknown argument(s) {', '.join(unknown)} of network "
            f"{network!r}; besides its own, it takes settings= and the "
            f"solve settings {', '.join(allowed)}."
        )
    layer = {k: options.pop(k) for k in _LAYER_ARGUMENTS if k in options}
    return {"settings": network_settings(paper, settings, **options), **layer}
