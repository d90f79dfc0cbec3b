"""Plots of cross-solver evaluation tables (Ott et al. 2021, Fig. 4).

Drawn with Matplotlib's object API on an Agg canvas, so no pyplot state or
global backend is touched. Matplotlib is imported when a plot is drawn, not
with `tfnode`. Figures are written through `tf.io.gfile`, so `path` may be
any path it takes (e.g. `gs://bucket/run/solver_table.png`).
"""

import io
import math
import posixpath

import numpy as np
import tensorflow as tf

__all__ = ["plot_solver_sweep", "plot_solver_table"]

_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _scalar(value):
    """A table cell as one number (the mean over blocks for a list)."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return float(np.mean(value))
    return float(value)


def _split(table):
    """Rows of fixed-step and of adaptive solves, per solver, in order."""
    fixed, adaptive = {}, {}
    for row in table:
        if row.get("accuracy") is None or math.isnan(row["accuracy"]):
            continue
        if row.get("steps") is not None:
            fixed.setdefault(row["solver"], []).append(row)
        elif row.get("tol") is not None:
            adaptive.setdefault(row["solver"], []).append(row)
    return fixed, adaptive


def _figure(size):
    """A Matplotlib figure of `size` inches on an Agg canvas."""
    # Imported here: `import tfnode` does not load Matplotlib.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size)
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path):
    """Writes `figure` as a PNG to `path` (any `tf.io.gfile` path)."""
    path = str(path)
    directory = posixpath.dirname(path)
    if directory:
        tf.io.gfile.makedirs(directory)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    with tf.io.gfile.GFile(path, "wb") as file:
        file.write(buffer.getvalue())


def _draw(axes, rows, x_key, label, color=None, marker="o", linestyle="-"):
    rows = sorted(rows, key=lambda r: _scalar(r[x_key]))
    x = [_scalar(r[x_key]) for r in rows]
    y = [r["accuracy"] for r in rows]
    (line,) = axes.plot(
        x, y, marker=marker, linestyle=linestyle, color=color, label=label
    )
    spread = [r.get("accuracy_std") for r in rows]
    if all(s is not None for s in spread):  # rows averaged over seeds
        axes.errorbar(
            x, y, yerr=spread, fmt="none", ecolor=line.get_color(), capsize=2
        )
    for r, xi, yi in zip(rows, x, y, strict=True):
        if r["factor"] == 1.0:
            axes.plot(
                [xi],
                [yi],
                marker=marker,
                markersize=11,
                color=line.get_color(),
                markerfacecolor="none",
                linestyle="none",
            )
    return line


def plot_solver_table(table, path, title=None):
    """Draws test accuracy against the number of test steps, per solver.

    Fixed-step rows are drawn against their number of steps (log scale),
    adaptive rows in a second panel against their tolerance. The training
    setting (factor 1) is circled.

    Args:
        table: Rows from `evaluate_with_solvers`.
        path: Where to write the PNG.
        title: Figure title.

    Returns:
        path.
    """
    fixed, adaptive = _split(table)
    panels = [p for p in (fixed, adaptive) if p]
    if not panels:
        raise ValueError("The table holds no row with an accuracy to plot.")
    figure = _figure((4.5 * len(panels), 3.6))
    axes_list = figure.subplots(1, len(panels), squeeze=False)[0]
    for axes, panel in zip(axes_list, panels, strict=True):
        x_key = "steps" if panel is fixed else "tol"
        for i, (solver, rows) in enumerate(panel.items()):
            _draw(axes, rows, x_key, solver, marker=_MARKERS[i % 8])
        axes.set_xscale("log", base=2 if panel is fixed else 10)
        axes.set_xlabel(
            "test steps per block" if panel is fixed else "test tolerance"
        )
        axes.set_ylabel("test accuracy")
        axes.grid(alpha=0.3)
        axes.legend(title="test solver", fontsize=8)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    _save(figure, path)
    return path


def plot_solver_sweep(tables, path, title=None):
    """Draws several models' tables: one panel per fixed-step test solver,
    one line per trained model (Ott et al. 2021, Fig. 4a).

    Args:
        tables: A dict from a label (e.g. the training step size) to rows
            from `evaluate_with_solvers`, in legend order. Rows averaged
            over seeds may carry `accuracy_std`, drawn as error bars.
        path: Where to write the PNG.
        title: Figure title.

    Returns:
        path.
    """
    solvers = []
    for table in tables.values():
        for solver in _split(table)[0]:
            if solver not in solvers:
                solvers.append(solver)
    if not solvers:
        raise ValueError("The tables hold no fixed-step row to plot.")
    figure = _figure((3.6 * len(solvers) + 1.4, 3.6))
    axes_list = figure.subplots(1, len(solvers), squeeze=False, sharey=True)[0]
    cmap = _colormap(len(tables))
    lines = []
    for axes, solver in zip(axes_list, solvers, strict=True):
        lines = []
        for i, (label, table) in enumerate(tables.items()):
            rows = _split(table)[0].get(solver)
            if rows:
                lines.append(
                    _draw(
                        axes,
                        rows,
                        "steps",
                        label,
                        color=cmap[i],
                        marker=_MARKERS[i % 8],
                    )
                )
        axes.set_xscale("log", base=2)
        axes.set_xlabel("test steps")
        axes.set_title(f"tested with {solver}", fontsize=10)
        axes.grid(alpha=0.3)
    axes_list[0].set_ylabel("test accuracy")
    figure.legend(
        lines,
        [line.get_label() for line in lines],
        loc="center right",
        fontsize=8,
        title="trained",
        title_fontsize=8,
    )
    if title:
        figure.suptitle(title, fontsize=11)
    figure.tight_layout(rect=(0, 0, 1 - 1.3 / figure.get_figwidth(), 1))
    _save(figure, path)
    return path


def _colormap(n):
    from matplotlib import colormaps  # Imported here, as in `_figure`.

    cmap = colormaps["viridis"]
    return [cmap(i / max(n - 1, 1) * 0.9) for i in range(n)]
