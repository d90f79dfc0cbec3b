"""The more accurate solver that step adaptation compares against.

Ott et al. (2021, Alg. 2 and 3) check a model trained with one solver
against a solver with a much smaller error, on the same batch:

```none
fixed step, order p -> order q > p, h_test = min(h, (h^p / K)^(1/q)), K = 50
                       euler -> midpoint, midpoint (or heun) -> rk4
adaptive            -> dopri5 at tol / 5 (training order < 5), or the same
                       solver at tol / 10; the caller divides tol_test by
                       10 again while the test solve is not more expensive
```

With `h` measured in units of the integration interval: `h^p` estimates the
training solver's global error, and the test step makes the test error
`K` times smaller (never a larger step than the training one). For
`euler -> midpoint` this is `sqrt(h / 50)`, or `h` itself once `1/h > 50`;
for `midpoint -> rk4` it is `(h^2 / 50)^(1/4)`, or `h` once `1/h^2 > 50`.
"""

from tfnode import solvers as solvers_lib

__all__ = [
    "ACCURACY_FACTOR",
    "fixed_step_test_solver",
    "tolerance_test_solver",
]

ACCURACY_FACTOR = 50.0
_DEFAULT_BY_ORDER = {1: "midpoint", 2: "rk4"}


def _fixed_step_names():
    return [
        n
        for n in solvers_lib.names(aliases=False)
        if solvers_lib.get(n).supports_fixed_grid
    ]


def _identifier(solver):
    """A registered solver's name, else the (user's) solver object."""
    return solvers_lib.REGISTRY.name_of(solver) or solver


def fixed_step_test_solver(
    train_solver,
    step_size,
    span=1.0,
    test_solver=None,
    accuracy_factor=ACCURACY_FACTOR,
):
    """The test solver and step for a fixed-step training solve.

    Args:
        train_solver: The training solver, a name or a solver object.
        step_size: Training step `h`.
        span: Length of the integration interval. Default value: `1.0`.
        test_solver: Name of a solver of higher order than the training
            one; by default `midpoint` for first-order and `rk4` for
            second-order training solvers.
        accuracy_factor: How many times smaller the test error should be.
            Default value: `50`.

    Returns:
        `(test_solver, test_step_size)`: the test solver's registered name
        (a user's own solver object as is).

    Raises:
        ValueError: when no default exists for the training solver's order,
            or `test_solver` is not of higher order.
    """
    train = solvers_lib.get(train_solver)
    p = train.order
    if test_solver is None:
        if p not in _DEFAULT_BY_ORDER:
            raise ValueError(
                f"Step adaptation has no default test solver for "
                f"solver={train.name!r} (order {p}); train with euler, "
                "midpoint or heun, or pass a test solver of higher order "
                f"from: {', '.join(_fixed_step_names())}."
            )
        test_solver = _DEFAULT_BY_ORDER[p]
    test = solvers_lib.get(test_solver)
    if not test.supports_fixed_grid or test.order <= p:
        raise ValueError(
            f"The test solver must take fixed steps and be of higher order "
            f"than solver={train.name!r} (order {p}); got "
            f"{test_solver!r} (order {test.order})."
        )
    q = test.order
    u = step_size / span
    u_test = min(u, (u**p / accuracy_factor) ** (1.0 / q))
    return _identifier(test), u_test * span


def tolerance_test_solver(train_solver, tol, test_solver=None):
    """The test solver and tolerance for an adaptive training solve.

    Args:
        train_solver: The (adaptive) training solver, a name or object.
        tol: Training tolerance (`rtol = atol`).
        test_solver: Name of an adaptive test solver; by default `dopri5`
            for training solvers of order < 5, else the training solver.

    Returns:
        `(test_solver, test_tol)`: the name (or a user's object) and
        `tol / 10` with the training solver itself, else `tol / 5`.
    """
    train = solvers_lib.get(train_solver)
    if not train.adaptive:
        raise ValueError(
            f"Tolerance adaptation needs an adaptive solver; got "
            f"solver={train.name!r}."
        )
    if test_solver is None:
        test_solver = "dopri5" if train.order < 5 else train
    test = solvers_lib.get(test_solver)
    if not test.adaptive:
        raise ValueError(
            f"The tolerance test solver must be adaptive; got {test_solver!r}."
        )
    divisor = 10.0 if test == train else 5.0
    return _identifier(test), tol / divisor
