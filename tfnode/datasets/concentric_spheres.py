"""Concentric spheres: two classes of points on three nested shells.

The toy problem of Dupont et al. (2019), used by Ott et al. (2021) in 2, 3,
10 and 900 dimensions. A point is drawn on a shell of radii `[r0, r1]` as

```none
r = (r1 - r0) * u**(1/d) + r0,   u ~ U(0, 1)
x = r * g / |g|,                 g ~ N(0, I_d)
```

(approximately uniform on the annulus). Class 0 holds the inner shell
`[0.10, 0.15]` (a quarter of the points) and the outer shell `[0.40, 0.45]`
(a quarter); class 1 the middle shell `[0.25, 0.30]` (half). A linear
classifier cannot separate them, and neither can a homeomorphism of `R^d`
followed by one (Dupont et al.), which is what makes the problem a test of
how faithfully a Neural ODE is solved.

The reference implementation draws the points unseeded; here they come from
NumPy's generator seeded with `(seed, d, split)`, so a dataset is identical on
every machine and run, and the train and test sets are independent.

#### References

[1]: Dupont, Doucet, Teh. Augmented Neural ODEs. NeurIPS, 2019.
[2]: Ott, Katiyar, Hennig, Tiemann. ResNet After All? Neural ODEs and Their
     Numerical Solution. ICLR, 2021.
"""

import numpy as np

__all__ = ["DIMENSIONS", "SHELLS", "concentric_spheres"]

DIMENSIONS = (2, 3, 10, 900)

# (inner radius, outer radius, label, share of the points)
SHELLS = (
    (0.10, 0.15, 0, 0.25),
    (0.25, 0.30, 1, 0.50),
    (0.40, 0.45, 0, 0.25),
)

_SPLITS = {"train": 0, "test": 1}


def _shell_sizes(num_examples):
    quarter = num_examples // 4
    return (quarter, num_examples - 2 * quarter, quarter)


def concentric_spheres(dim, num_examples, seed=0, split="train"):
    """Draws `num_examples` points of the concentric-spheres problem.

    Args:
        dim: Dimension `d` of the points, an int >= 1.
        num_examples: Number of points, an int >= 4: a quarter on the inner
            shell, a quarter on the outer one, the rest on the middle one.
        seed: Seed of the generator (an int >= 0).
        split: `"train"` or `"test"`; the two are drawn from independent
            streams of the same seed.

    Returns:
        x: float32 array `(num_examples, dim)`, ordered shell by shell.
        y: int32 array `(num_examples,)` of labels in `{0, 1}`.

    Raises:
        ValueError: for a bad argument, naming it and the allowed values.
    """
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise ValueError(f"dim must be an int >= 1; got {dim!r}.")
    if dim < 1:
        raise ValueError(f"dim must be an int >= 1; got {dim!r}.")
    if (
        isinstance(num_examples, bool)
        or not isinstance(num_examples, (int, np.integer))
        or num_examples < 4
    ):
        raise ValueError(
            f"num_examples must be an int >= 4; got {num_examples!r}."
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an int >= 0; got {seed!r}.")
    if seed < 0:
        raise ValueError(f"seed must be an int >= 0; got {seed!r}.")
    if split not in _SPLITS:
        raise ValueError(
            f"split must be one of {', '.join(_SPLITS)}; got {split!r}."
        )
    rng = np.random.default_rng(
        np.random.SeedSequence([int(seed), int(dim), _SPLITS[split]])
    )
    xs, ys = [], []
    for (r0, r1, label, _), size in zip(
        SHELLS, _shell_sizes(num_examples), strict=True
    ):
        u = rng.uniform(size=size)
        radius = (r1 - r0) * u ** (1.0 / dim) + r0
        g = rng.standard_normal(size=(size, dim))
        norm = np.linalg.norm(g, axis=1, keepdims=True)
        # A zero draw has probability zero; guard it anyway.
        g = np.where(norm > 0, g / np.maximum(norm, 1e-300), 1.0 / dim**0.5)
        xs.append(radius[:, None] * g)
        ys.append(np.full(size, label, dtype=np.int32))
    return (
        np.concatenate(xs).astype(np.float32),
        np.concatenate(ys).astype(np.int32),
    )
