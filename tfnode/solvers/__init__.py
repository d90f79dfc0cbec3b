"""Solvers, looked up by name.

| name | order | adaptive | source |
|---|---|---|---|
| `euler` | 1 | no | Euler |
| `midpoint` (alias `rk2`) | 2 | no | explicit midpoint; ANODE's RK2 |
| `heun` | 2 | no | explicit trapezoidal rule |
| `rk4` | 4 | no | classic RK4; ANODE's RK4 |
| `rk38` | 4 | no | 3/8 rule; torchdiffeq's `rk4` |
| `fehlberg2` | 2(1) | yes | Fehlberg 1969 |
| `bosh3` | 3(2) | yes | Bogacki & Shampine 1989 |
| `dopri5` | 5(4) | yes | Dormand & Prince 1980 |
| `tsit5` | 5(4) | yes | Tsitouras 2011 |
| `tfp_dopri5` | 5(4) | yes | `tfp.math.ode.DormandPrince` |
| `bdf` (alias `tfp_bdf`) | 1-5 | yes | `tfp.math.ode.BDF` (stiff problems) |
"""

from tfnode.registry import Registry
from tfnode.solvers.base import Solver
from tfnode.solvers.reverse_steps import REVERSE_STEPS
from tfnode.solvers.runge_kutta import ExplicitRungeKutta
from tfnode.solvers.tableau import ButcherTableau
from tfnode.solvers.tableaus import TABLEAUS
from tfnode.solvers.tfp_bdf import TFPBDF
from tfnode.solvers.tfp_dormand_prince import TFPDormandPrince

__all__ = [
    "ButcherTableau",
    "ExplicitRungeKutta",
    "REGISTRY",
    "Solver",
    "TFPBDF",
    "TFPDormandPrince",
    "deserialize",
    "get",
    "names",
    "serialize",
]

REGISTRY = Registry("solver", "solver")
_ALIASES = {"midpoint": ("rk2",)}
for _name, _tableau in TABLEAUS.items():
    REGISTRY.register(
        _name,
        ExplicitRungeKutta(_tableau, REVERSE_STEPS.get(_name)),
        _ALIASES.get(_name, ()),
    )
REGISTRY.register(TFPDormandPrince.name, TFPDormandPrince())
REGISTRY.register(TFPBDF.name, TFPBDF(), ("tfp_bdf",))

get = REGISTRY.get
names = REGISTRY.names


def serialize(solver):
    """A solver as config data: its registered name, or its tableau."""
    solver = get(solver)
    name = REGISTRY.name_of(solver)
    return name if name is not None else solver.get_config()


def deserialize(config):
    """The solver `serialize` described (a name is returned as is)."""
    if isinstance(config, dict):
        return ExplicitRungeKutta.from_config(config)
    return config
