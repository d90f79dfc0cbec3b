"""`SolveSettings`: everything that says how an ODE is solved, as one value.

A `SolveSettings` names the solver, its fixed grid or its tolerances, the
step-size controller's knobs, `max_num_steps` and the configured gradient
method. It is validated once, when built, and is frozen, hashable and
serialisable: `odeint`, `ODEBlock`, the network builders, cross-solver
evaluation, step adaptation, the training loop and `train.py`'s flags all
pass this one value around instead of re-listing its fields.

```python
settings = tfnode.SolveSettings(solver="rk4", steps=8,
                                adjoint=tfnode.adjoints.Anode(checkpoints=4))
ys = tfnode.odeint(func, y0, t, settings)
finer = settings.refine(2)              # 16 steps per interval
adaptive = settings.replace(solver="dopri5", tol=1e-6)
```

The keyword shorthand of `odeint` (`solver=`, `steps=`, `tol=`,
`adjoint="anode"`, `checkpoints=`, `seminorm=`, `adjoint_rtol=`, ...) builds
the same value through `SolveSettings.from_options`.
"""

import dataclasses
import math

from tfnode import adjoints
from tfnode import norms
from tfnode import solvers
from tfnode import validation

__all__ = [
    "DEFAULT_ATOL",
    "DEFAULT_RTOL",
    "SolveSettings",
    "resolve",
    "shorthand_names",
]

DEFAULT_RTOL = 1e-3
DEFAULT_ATOL = 1e-6

_GRID = ("steps", "step_size")
_TOLERANCES = ("rtol", "atol", "tol")
_NORMS = {"rms": norms.rms_norm, "max": norms.max_norm}


@dataclasses.dataclass(frozen=True)
class SolveSettings:
    """How to solve an ODE and differentiate the solve.

    A fixed grid (`steps` or `step_size`) and tolerances (`rtol`, `atol`,
    `tol`) exclude each other. Left unset, an adaptive solver gets
    `rtol=1e-3`, `atol=1e-6`; a fixed-step solver needs a grid.

    Args:
        solver: A solver name (see `tfnode.solvers.names()`) or a solver
            object, e.g. `tfnode.solvers.ExplicitRungeKutta(my_tableau)`.
            Default value: `"dopri5"`.
        steps: Fixed grid: steps per interval between output times (ANODE's
            `Nt`), an int >= 1.
        step_size: Fixed grid: step size `h > 0`; `ceil(span / h)` steps per
            interval, the last one clamped.
        rtol: Relative tolerance of an adaptive solve.
        atol: Absolute tolerance of an adaptive solve.
        tol: Sets both `rtol` and `atol` ('ResNet After All' convention).
        first_step: Size of the first adaptive step; Hairer's choice when
            unset.
        min_step: Smallest step; such steps are accepted whatever their
            error. Default value: `0`.
        max_step: Largest step. Default value: `inf`.
        safety: Safety factor of the step-size rule, in (0, 1].
            Default value: `0.9`.
        ifactor: Largest growth of the step in one step, >= 1. Default: `10`.
        dfactor: Largest shrink of the step in one step, in (0, 1].
            Default value: `0.2`.
        max_num_steps: Attempts (accepted and rejected) before an adaptive
            solve fails. Default value: `10000`.
        interpolate: Adaptive solves only. `True` (default): step freely
            and evaluate the outputs between steps on the method's dense
            output, so the steps do not grow with the number of output
            times. `False`: clamp the steps to land on every output time,
            so outputs are exact solver states. Fixed grids always land on
            the outputs (`steps` counts steps between outputs).
        norm: Error norm: `"rms"` (default), `"max"` or a callable on the
            list of scaled errors (not serialisable).
        adjoint: Gradient method: a name (`"backprop"`, `"anode"`,
            `"continuous"`, `"reversible"`) or a configured object such as
            `tfnode.adjoints.Anode(checkpoints=4)`. Default: `"backprop"`.

    Raises:
        ValueError, TypeError: naming the argument and the allowed values,
            for any bad or contradictory setting.
    """

    solver: object = "dopri5"
    steps: int | None = None
    step_size: float | None = None
    rtol: float | None = None
    atol: float | None = None
    first_step: float | None = None
    min_step: float = 0.0
    max_step: float = math.inf
    safety: float = 0.9
    ifactor: float = 10.0
    dfactor: float = 0.2
    max_num_steps: int = 10_000
    interpolate: bool = True
    norm: object = None
    adjoint: object = "backprop"
    tol: dataclasses.InitVar[float | None] = None

    def __post_init__(self, tol):
        solver = solvers.get(self.solver)
        self._set("solver", solver)
        self._set_grid()
        self._set_tolerances(tol, solver)
        self._set_controls()
        self._set_norm()
        adjoint = adjoints.get(self.adjoint)
        self._set("adjoint", adjoint)
        solver.check_settings(self)
        adjoint.validate(self)

    def _set(self, name, value):
        object.__setattr__(self, name, value)

    def _set_grid(self):
        if self.steps is not None and self.step_size is not None:
            raise ValueError(
                "Pass steps= or step_size=, not both; got "
                f"steps={self.steps!r}, step_size={self.step_size!r}."
            )
        if self.steps is not None:
            self._set("steps", validation.positive_int("steps", self.steps))
        if self.step_size is not None:
            self._set(
                "step_size",
                validation.positive_float("step_size", self.step_size),
            )
        if self.fixed_grid and not self.solver.supports_fixed_grid:
            raise ValueError(
                f"solver={self.solver.name!r} is adaptive only; steps= and "
                "step_size= need a tfnode Runge-Kutta solver."
            )

    def _set_tolerances(self, tol, solver):
        rtol, atol = self.rtol, self.atol
        if tol is not None:
            if rtol is not None or atol is not None:
                raise ValueError(
                    "tol sets both rtol and atol; pass tol= or rtol=/atol=, "
                    f"not both; got tol={tol!r}, rtol={rtol!r}, "
                    f"atol={atol!r}."
                )
            rtol = atol = validation.positive_float("tol", tol)
        given = {
            name: value
            for name, value in (("rtol", rtol), ("atol", atol))
            if value is not None
        }
        if self.fixed_grid:
            if given:
                grid = "steps" if self.steps is not None else "step_size"
                raise ValueError(
                    f"A fixed grid ({grid}=) and tolerances "
                    f"({', '.join(f'{k}=' for k in given)}) together are "
                    "ambiguous: a fixed-grid solve takes no tolerances. Pass "
                    "one or the other."
                )
            return
        if not solver.adaptive:
            adaptive = [n for n in solvers.names() if solvers.get(n).adaptive]
            raise ValueError(
                f"solver={solver.name!r} is a fixed-step method: pass steps= "
                "(an int >= 1) or step_size= (> 0), or choose an adaptive "
                f"solver: {', '.join(adaptive)}."
            )
        rtol = DEFAULT_RTOL if rtol is None else rtol
        atol = DEFAULT_ATOL if atol is None else atol
        self._set("rtol", validation.positive_float("rtol", rtol))
        self._set("atol", validation.positive_float("atol", atol))

    def _set_controls(self):
        if self.first_step is not None:
            self._set(
                "first_step",
                validation.positive_float("first_step", self.first_step),
            )
        self._set(
            "min_step", validation.non_negative_float("min_step", self.min_step)
        )
        self._set(
            "max_step",
            validation.positive_float("max_step", self.max_step, finite=False),
        )
        if self.max_step < self.min_step:
            raise ValueError(
                f"max_step must be >= min_step; got max_step={self.max_step!r}"
                f", min_step={self.min_step!r}."
            )
        self._set(
            "safety", validation.in_interval("safety", self.safety, 0, 1)
        )
        self._set("ifactor", validation.at_least("ifactor", self.ifactor, 1))
        self._set(
            "dfactor", validation.in_interval("dfactor", self.dfactor, 0, 1)
        )
        self._set(
            "max_num_steps",
            validation.positive_int("max_num_steps", self.max_num_steps),
        )
        if not isinstance(self.interpolate, bool):
            raise TypeError(
                f"interpolate must be True or False; got {self.interpolate!r}."
            )
        if not (self.interpolate or self.fixed_grid):
            if not self.solver.can_land_on_outputs:
                raise ValueError(
                    f"solver={self.solver.name!r} always interpolates its "
                    "outputs; interpolate=False needs a tfnode Runge-Kutta "
                    "solver such as 'dopri5'."
                )

    def _set_norm(self):
        norm = self.norm
        if isinstance(norm, str):
            norm = validation.choice("norm", norm, _NORMS)
            self._set("norm", _NORMS[norm])
        elif norm is None:
            self._set("norm", norms.rms_norm)
        elif not callable(norm):
            raise TypeError(
                "norm must be 'rms', 'max' or a callable on a list of "
                f"tensors; got {norm!r}."
            )

    # ------------------------------------------------------------- reading

    @property
    def fixed_grid(self):
        """Whether the solve runs on a fixed grid (`steps`/`step_size`)."""
        return self.steps is not None or self.step_size is not None

    @property
    def solver_name(self):
        return self.solver.name

    # ------------------------------------------------------------ deriving

    @classmethod
    def from_options(cls, **options):
        """Builds settings from `odeint`'s keyword shorthand.

        Besides the constructor's arguments this takes the gradient methods'
        options flat, as `odeint` always has: `checkpoints` (`anode`),
        `seminorm`, `adjoint_solver`, `adjoint_rtol`, `adjoint_atol` and
        `adjoint_steps` (`continuous`).
        """
        fields, method_options = _split_options(options)
        if method_options or "adjoint" in fields:
            fields["adjoint"] = _configured_method(
                fields.get("adjoint", "backprop"), method_options
            )
        return cls(**fields)

    def replace(self, **changes):
        """A copy with `changes` (any argument of `from_options`).

        Giving a grid (`steps`/`step_size`) drops the current tolerances and
        the other grid setting, and giving tolerances drops the grid, so
        `settings.replace(solver="rk4", steps=8)` turns an adaptive solve
        into a fixed-grid one. Gradient-method options reconfigure the
        current method unless `adjoint=` is given too.
        """
        fields, method_options = _split_options(changes)
        current = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self)
        }
        if set(fields) & {*_GRID, *_TOLERANCES}:
            current.update(steps=None, step_size=None, rtol=None, atol=None)
        if "adjoint" in fields or method_options:
            current["adjoint"] = _configured_method(
                fields.pop("adjoint", self.adjoint), method_options
            )
        if "solver" in fields and not (set(fields) & {*_GRID, *_TOLERANCES}):
            current.update(_keep_kind(self, solvers.get(fields["solver"])))
        return SolveSettings(**{**current, **fields})

    def refine(self, factor):
        """The same solve `factor` times finer (cross-solver evaluation and
        step adaptation, Ott et al. 2021): `steps * factor` (rounded up),
        `step_size / factor`, or both tolerances divided by `factor`."""
        factor = validation.positive_float("factor", factor)
        if self.steps is not None:
            return self.replace(steps=max(1, math.ceil(self.steps * factor)))
        if self.step_size is not None:
            return self.replace(step_size=self.step_size / factor)
        return self.replace(rtol=self.rtol / factor, atol=self.atol / factor)

    def forward_only(self):
        """These settings with `adjoint="backprop"`: the forward solve is the
        same under every gradient method, so evaluating with another solver
        never trips over the training method's restrictions."""
        return self.replace(adjoint="backprop")

    # -------------------------------------------------------- serialising

    def get_config(self):
        """A JSON-serialisable dict; `SolveSettings.from_config` inverts it."""
        norm = next((k for k, v in _NORMS.items() if v is self.norm), None)
        if norm is None:
            raise ValueError(
                f"norm={self.norm!r} is a custom callable and cannot be "
                "serialised; use norm='rms' or 'max' to save these settings."
            )
        config = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self)
        }
        config.update(
            solver=solvers.serialize(self.solver),
            norm=norm,
            adjoint=self.adjoint.get_config(),
        )
        return config

    @classmethod
    def from_config(cls, config):
        """Settings from `get_config()`'s dict, or from the flat keyword
        shorthand (`solver`, `steps`, `tol`, `adjoint`, `checkpoints`, ...)
        that older `ODEBlock` configs hold."""
        config = dict(config)
        if "solver" in config:
            config["solver"] = solvers.deserialize(config["solver"])
        if isinstance(config.get("adjoint"), dict):
            config["adjoint"] = adjoints.deserialize(config["adjoint"])
        return cls.from_options(**config)

    def __repr__(self):
        shown = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "solver":
                value = self.solver.name
            elif f.name == "norm":
                if value is norms.rms_norm:
                    continue
                value = next(
                    (k for k, v in _NORMS.items() if v is value), value
                )
            elif value == f.default:
                continue
            shown.append(f"{f.name}={value!r}")
        return f"SolveSettings({', '.join(shown)})"


def resolve(settings=None, **shorthand):
    """The `SolveSettings` of a call taking a settings value and/or the
    keyword shorthand (`odeint`, `ODEBlock`, the network builders).

    Args:
        settings: A `SolveSettings`, a dict of its config, or `None`.
        **shorthand: `SolveSettings.from_options` arguments; with
            `settings` given, they replace its fields.

    Returns:
        A `SolveSettings`.
    """
    if settings is None:
        return SolveSettings.from_options(**shorthand)
    if isinstance(settings, dict):
        settings = SolveSettings.from_config(settings)
    if not isinstance(settings, SolveSettings):
        raise TypeError(
            "settings must be a tfnode.SolveSettings (or its config dict); "
            f"got {settings!r}."
        )
    return settings.replace(**shorthand) if shorthand else settings


def shorthand_names():
    """Every keyword of the shorthand: the fields, `tol`, and the gradient
    methods' flat options."""
    fields = [f.name for f in dataclasses.fields(SolveSettings)]
    return (*fields, "tol", *adjoints.option_names())


def _split_options(options):
    """Splits keyword shorthand into settings fields and gradient-method
    options (e.g. `checkpoints`)."""
    method_keys = set(adjoints.option_names())
    unknown = sorted(set(options) - set(shorthand_names()))
    if unknown:
        raise TypeError(
            f"Unknown solve setting(s) {unknown}; choose from "
            f"{sorted(shorthand_names())}."
        )
    fields = {k: v for k, v in options.items() if k not in method_keys}
    method = {k: v for k, v in options.items() if k in method_keys}
    return fields, method


def _configured_method(adjoint, method_options):
    """The gradient method `adjoint` configured with the flat options."""
    method = adjoints.get(adjoint)
    return method.configure(**method_options) if method_options else method


def _keep_kind(settings, solver):
    """When only the solver changes: keep the grid or the tolerances where
    the new solver can use them, else fall back to its defaults."""
    if settings.fixed_grid and not solver.supports_fixed_grid:
        return {"steps": None, "step_size": None}
    if not settings.fixed_grid and not solver.adaptive:
        return {"rtol": None, "atol": None}
    return {}
