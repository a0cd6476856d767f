"""Figure specifications: the JSON-able description of a claim's figure, saved in its evidence.

A claim test does not draw: it puts plain data into ``evidence.details["figures"]`` (a list of
the dicts below) and the report's renderers (:mod:`reports.plots`) draw them with matplotlib.
Keeping the data in ``results.json`` lets a report be re-rendered, or compared, without the runs.

Two kinds cover every figure of the sources:

``heatmap``
    A matrix (cosine or disagreement between checkpoints or runs).
``xy``
    Named series of points or lines on shared axes (t-SNE of trajectories, the diversity-accuracy
    plane with its model curves, accuracy/Brier/NLL against ensemble size).

Examples
--------
>>> spec = heatmap("cosine within a trajectory", [[1.0, 0.5], [0.5, 1.0]], ticks=["0", "1"],
...                label="epoch", colorbar="cosine", vmin=0.0, vmax=1.0)
>>> spec["kind"]
'heatmap'
>>> xy("accuracy vs size", [series("ours", [1, 2], [0.6, 0.65], style="line")], "k", "accuracy")["kind"]
'xy'
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

FIGURES_KEY = "figures"  # evidence.details[FIGURES_KEY]: list of specs
KINDS = ("heatmap", "xy")
STYLES = ("points", "line", "line+points")

__all__ = ["FIGURES_KEY", "KINDS", "STYLES", "heatmap", "series", "validate", "xy"]


def _finite_or_none(values: np.ndarray) -> list:
    """Floats rounded to 6 significant digits (figures need no more); NaN/inf become None (JSON null)."""
    return [float(f"{v:.6g}") if math.isfinite(v) else None for v in values.tolist()]


def heatmap(title: str, matrix, *, ticks: Sequence[str] | None = None, label: str = "",
            colorbar: str = "", vmin: float | None = None, vmax: float | None = None) -> dict:
    """A heat map of a square or rectangular matrix.

    Parameters
    ----------
    title : str
    matrix : array_like, shape (R, C)
    ticks : sequence of str, optional
        Row and column labels (length R == C); numbered when omitted.
    label : str
        Axis label of rows and columns (e.g. "epoch", "run").
    colorbar : str
        What the colour means (e.g. "cosine").
    vmin, vmax : float, optional
        Colour range; the data's range when omitted.

    Returns
    -------
    dict
    """
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"heatmap matrix must be a non-empty 2-D array; got shape {m.shape}")
    if ticks is not None and (len(ticks) != m.shape[0] or m.shape[0] != m.shape[1]):
        raise ValueError(f"ticks label rows and columns of a square matrix: got {len(ticks)} ticks for {m.shape}")
    return {"kind": "heatmap", "title": str(title), "matrix": [_finite_or_none(row) for row in m],
            "ticks": None if ticks is None else [str(t) for t in ticks], "label": str(label),
            "colorbar": str(colorbar), "vmin": vmin, "vmax": vmax}


def series(label: str, x, y, *, style: str = "points", group: str | None = None) -> dict:
    """One named series of an ``xy`` figure.

    Parameters
    ----------
    label : str
        Legend entry.
    x, y : array_like, shape (N,)
    style : {"points", "line", "line+points"}
    group : str, optional
        Series that share a group share a colour (e.g. a run's trajectory and its samples).
    """
    if style not in STYLES:
        raise ValueError(f"style={style!r} is invalid: expected one of {STYLES}")
    xs, ys = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if xs.shape != ys.shape:
        raise ValueError(f"series {label!r}: x and y differ in length ({xs.size} vs {ys.size})")
    return {"label": str(label), "x": _finite_or_none(xs), "y": _finite_or_none(ys), "style": style,
            "group": group}


def xy(title: str, data: Sequence[dict], xlabel: str, ylabel: str, *, note: str = "") -> dict:
    """Series of points or lines on shared axes.

    Parameters
    ----------
    title : str
    data : sequence of dict
        From :func:`series`.
    xlabel, ylabel : str
    note : str
        A caption line under the figure (e.g. the source's numbers).
    """
    if not data:
        raise ValueError(f"xy figure {title!r} has no series")
    return {"kind": "xy", "title": str(title), "series": list(data), "xlabel": str(xlabel),
            "ylabel": str(ylabel), "note": str(note)}


def validate(spec: dict) -> dict:
    """Check a spec read back from JSON; returns it, or raises ValueError naming what is wrong."""
    if not isinstance(spec, dict) or spec.get("kind") not in KINDS:
        raise ValueError(f"not a figure spec (kind must be one of {KINDS}): {str(spec)[:80]}")
    if spec["kind"] == "heatmap":
        rows = spec.get("matrix")
        if not isinstance(rows, list) or not rows or not all(isinstance(r, list) and len(r) == len(rows[0])
                                                             for r in rows):
            raise ValueError(f"heatmap {spec.get('title')!r}: matrix must be a non-empty list of equal-length rows")
    else:
        data = spec.get("series")
        for s in data if isinstance(data, list) and data else [None]:
            if (not isinstance(s, dict) or not isinstance(s.get("x"), list) or not isinstance(s.get("y"), list)
                    or len(s["x"]) != len(s["y"]) or s.get("style") not in STYLES):
                raise ValueError(f"xy {spec.get('title')!r}: every series needs x and y of one length and a style")
    return spec
