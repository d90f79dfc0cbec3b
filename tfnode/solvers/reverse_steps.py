"""Reverse steps: rebuilding `y_n` from `y_{n+1}` (Sander et al. 2022).

```none
euler:  y_n = y_{n+1} - h f(t_n, y_{n+1})
heun:   k1 = f(t_{n+1}, y_{n+1});  k2 = f(t_n, y_{n+1} - h k1)
        y_n = y_{n+1} - h (k1 + k2) / 2
```

Each reconstruction is off by O(h^2) (Euler) or O(h^3) (Heun). The table
`REVERSE_STEPS` pairs them with their tableaux; a solver built with one
declares itself `reversible`.

#### References

[1]: Sander, Ablin, Peyre. Do Residual Neural Networks discretize Neural
     Ordinary Differential Equations? NeurIPS, 2022.
"""

__all__ = ["REVERSE_STEPS", "reverse_euler", "reverse_heun"]


def reverse_euler(func, t_n, h, y1):
    """Euler's reverse step; returns `(y_n, num_evals)`."""
    k1 = func(t_n, y1)
    return [y - h * k for y, k in zip(y1, k1, strict=True)], 1


def reverse_heun(func, t_n, h, y1):
    """Heun's reverse step; returns `(y_n, num_evals)`."""
    k1 = func(t_n + h, y1)
    guess = [y - h * k for y, k in zip(y1, k1, strict=True)]
    k2 = func(t_n, guess)
    return [
        y - 0.5 * h * (a + b) for y, a, b in zip(y1, k1, k2, strict=True)
    ], 2


# Tableau name -> its reverse step.
REVERSE_STEPS = {"euler": reverse_euler, "heun": reverse_heun}
