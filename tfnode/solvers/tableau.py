"""Butcher tableaux of explicit Runge-Kutta methods, and their order conditions.

A tableau is data: the generic step in `runge_kutta.py` serves them all.
Notation is the textbook one (Hairer, Norsett & Wanner, *Solving Ordinary
Differential Equations I*, 1993):

```none
c_0 = 0 |
c_1     | a_10
c_2     | a_20  a_21
...     | ...
--------+-----------------
        | b_0   b_1  ...   b_{s-1}       (weights of the solution)
        | e_0   e_1  ...   e_{s-1}       (b_error = b - b_embedded)
```

A continuous extension ("dense output", Hairer et al. 1993, Sec. II.6)
replaces the weights `b` by polynomials `b_j(theta)`, so that
`y(t + theta h) ~ y + h sum_j b_j(theta) k_j` for `theta` in [0, 1]; it is
stored as data too, `dense[j][p - 1]` being the coefficient of `theta**p`
in `b_j`.
"""

import dataclasses
import itertools
import math

__all__ = ["ButcherTableau", "order_condition_residuals", "rooted_trees"]

_TOL = 1e-12
# Published continuous extensions (e.g. Tsitouras') are given to ~16 digits
# in factored form; expanded, their sums hold to about 1e-14.
_DENSE_TOL = 1e-10


@dataclasses.dataclass(frozen=True)
class ButcherTableau:
    """The coefficients of an explicit Runge-Kutta method.

    Validated when built: `a` is strictly lower triangular, each row of `a`
    sums to its node `c`, the weights `b` sum to 1 and, where the method has
    an embedded pair, the embedded weights `b - b_error` sum to 1 too.

    Args:
        name: Short name of the method, e.g. `"dopri5"`.
        order: Order of the solution weights `b`.
        a: Rows of the Runge-Kutta matrix; row `i` has `i` entries.
        b: Weights of the solution.
        c: Nodes; `c[0]` is 0.
        b_error: `b - b_embedded`, the weights of the local error estimate,
            or `None` for a method without an embedded pair.
        embedded_order: Order of the embedded weights.
        source: Where the coefficients come from.
        dense: The method's own continuous extension: per stage, the
            coefficients of `theta, theta**2, ...` in `b_j(theta)`; `None`
            to use Hermite interpolation (`continuous_extension`).
    """

    name: str
    order: int
    a: tuple
    b: tuple
    c: tuple
    b_error: tuple | None = None
    embedded_order: int | None = None
    source: str = ""
    dense: tuple | None = None

    def __post_init__(self):
        s = len(self.b)
        if len(self.c) != s or len(self.a) != s:
            raise ValueError(
                f"Tableau {self.name!r}: a, b and c must have one entry per "
                f"stage; got {len(self.a)}, {s} and {len(self.c)}."
            )
        for i, row in enumerate(self.a):
            if len(row) != i:
                raise ValueError(
                    f"Tableau {self.name!r}: row {i} of a must have {i} "
                    f"entries (explicit method); got {len(row)}."
                )
            if abs(math.fsum(row) - self.c[i]) > _TOL:
                raise ValueError(
                    f"Tableau {self.name!r}: row {i} of a sums to "
                    f"{math.fsum(row)!r}, not to c[{i}] = {self.c[i]!r}."
                )
        if abs(math.fsum(self.b) - 1.0) > _TOL:
            raise ValueError(
                f"Tableau {self.name!r}: the weights b sum to "
                f"{math.fsum(self.b)!r}, not 1."
            )
        if (self.b_error is None) != (self.embedded_order is None):
            raise ValueError(
                f"Tableau {self.name!r}: b_error and embedded_order go "
                "together."
            )
        if self.b_error is not None:
            if len(self.b_error) != s:
                raise ValueError(
                    f"Tableau {self.name!r}: b_error must have {s} entries."
                )
            if abs(math.fsum(self.b_error)) > _TOL:
                raise ValueError(
                    f"Tableau {self.name!r}: the embedded weights "
                    "b - b_error do not sum to 1."
                )
        if self.dense is not None:
            _check_dense(self.name, self.dense, self.b)

    @property
    def num_stages(self):
        """The number of stages (function evaluations per step)."""
        return len(self.b)

    @property
    def adaptive(self):
        """Whether the method has an embedded error estimate."""
        return self.b_error is not None

    @property
    def fsal(self):
        """First same as last: the last stage is evaluated at the solution.

        Then the last stage of one step is the first of the next, and the
        solution itself is that stage's input.
        """
        return (
            self.num_stages > 1
            and self.c[-1] == 1.0
            and self.b[-1] == 0.0
            and tuple(self.a[-1]) == tuple(self.b[:-1])
        )

    @property
    def continuous_extension(self):
        """The weight polynomials `b_j(theta)` of the dense output, as
        `dense` holds them.

        The method's own `dense` when given; otherwise Hermite interpolation
        of the step (Hairer et al. 1993, Sec. II.6): cubic through `y0`,
        `f0`, `y1`, `f1` for a first-same-as-last method, whose last stage
        is `f1`; quadratic through `y0`, `f0`, `y1` for the others.
        """
        if self.dense is not None:
            return self.dense
        first, last = 0, self.num_stages - 1
        rows = []
        for j, b_j in enumerate(self.b):
            if self.fsal:
                # h01 = 3 th^2 - 2 th^3, h10 = th - 2 th^2 + th^3,
                # h11 = -th^2 + th^3: b_j(th) = h01 b_j + h10 [j = 0]
                # + h11 [j = s - 1].
                row = [0.0, 3 * b_j, -2 * b_j]
                if j == first:
                    row = [row[0] + 1, row[1] - 2, row[2] + 1]
                if j == last:
                    row = [row[0], row[1] - 1, row[2] + 1]
            else:
                # b_j(th) = th^2 b_j + (th - th^2) [j = 0].
                row = [1.0, b_j - 1.0] if j == first else [0.0, b_j]
            rows.append(tuple(row))
        return tuple(rows)

    @property
    def b_embedded(self):
        """The embedded weights, `b - b_error`."""
        if self.b_error is None:
            return None
        return tuple(b - e for b, e in zip(self.b, self.b_error, strict=True))


def _check_dense(name, dense, b):
    """A continuous extension must have one polynomial per stage, all of
    one degree, sum to `theta` (consistency) and equal `b` at `theta = 1`
    (continuity with the step)."""
    if len(dense) != len(b):
        raise ValueError(
            f"Tableau {name!r}: dense must have one polynomial per stage "
            f"({len(b)}); got {len(dense)}."
        )
    degrees = {len(row) for row in dense}
    if len(degrees) != 1:
        raise ValueError(
            f"Tableau {name!r}: every polynomial of dense must list the "
            f"same number of coefficients; got {sorted(degrees)}."
        )
    for power in range(degrees.pop()):
        total = math.fsum(row[power] for row in dense)
        expected = 1.0 if power == 0 else 0.0
        if abs(total - expected) > _DENSE_TOL:
            raise ValueError(
                f"Tableau {name!r}: the dense weights must sum to theta; "
                f"their theta**{power + 1} coefficients sum to {total!r}."
            )
    for j, (row, b_j) in enumerate(zip(dense, b, strict=True)):
        if abs(math.fsum(row) - b_j) > _DENSE_TOL:
            raise ValueError(
                f"Tableau {name!r}: dense weight {j} at theta = 1 is "
                f"{math.fsum(row)!r}, not b[{j}] = {b_j!r}."
            )


def rooted_trees(order):
    """All rooted trees with `order` nodes, as nested sorted tuples.

    A tree is the tuple of its root's subtrees; `()` is the single node.
    """
    if order == 1:
        return [()]
    trees = set()
    # Children of the root: a multiset of trees whose sizes sum to order - 1.
    for sizes in _partitions(order - 1):
        for children in itertools.product(*(rooted_trees(n) for n in sizes)):
            trees.add(tuple(sorted(children)))
    return sorted(trees)


def _partitions(n, largest=None):
    largest = n if largest is None else largest
    if n == 0:
        yield ()
        return
    for first in range(min(n, largest), 0, -1):
        for rest in _partitions(n - first, first):
            yield (first, *rest)


def _tree_density(tree):
    size = _tree_size(tree)
    return size * math.prod(_tree_density(child) for child in tree)


def _tree_size(tree):
    return 1 + sum(_tree_size(child) for child in tree)


def _stage_weights(tree, a):
    """The vector g(tree) with b . g(tree) the elementary weight."""
    s = len(a)
    g = [1.0] * s
    for child in tree:
        child_g = _stage_weights(child, a)
        for i in range(s):
            g[i] *= math.fsum(a[i][j] * child_g[j] for j in range(i))
    return g


def order_condition_residuals(weights, a, order):
    """Residuals `b . g(tree) - 1 / density(tree)` of the order conditions.

    A method has order `p` when every residual over the trees with at most
    `p` nodes vanishes (Butcher's theory; Hairer et al. 1993, Sec. II.2).

    Args:
        weights: The weights `b` (or embedded weights) to check.
        a: The Runge-Kutta matrix rows.
        order: Check every tree with at most this many nodes.

    Returns:
        residuals: A dict mapping each tree to its residual.
    """
    residuals = {}
    for n in range(1, order + 1):
        for tree in rooted_trees(n):
            g = _stage_weights(tree, a)
            phi = math.fsum(w * gi for w, gi in zip(weights, g, strict=True))
            residuals[tree] = phi - 1.0 / _tree_density(tree)
    return residuals
