"""Draw the figure specs of :mod:`harness.figspec` as PNG images, headless and deterministic.

Only matplotlib's object API is used (a :class:`~matplotlib.figure.Figure` on an Agg canvas, no
pyplot), so drawing keeps no global state and needs no display. The same spec gives the same bytes:
the PNG carries no software or time stamp.

Examples
--------
>>> from harness import figspec
>>> png = png_bytes(figspec.heatmap("cosine", [[1.0, 0.5], [0.5, None]], colorbar="cosine"))
>>> png[:8] == PNG_SIGNATURE
True
"""

from __future__ import annotations

import io
import math
import textwrap

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from harness import figspec

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DPI = 100  # small images: a report holds ~25 of them, base64-encoded in one HTML file
FIGSIZE = (4.5, 3.5)  # inches
MAX_TICKS = 12  # tick labels per heat-map axis; more are thinned to every k-th
LEGEND_INSIDE_MAX = 6  # legend entries that fit inside the axes; more go to the right of them
LEGEND_ROWS = 14  # entries per legend column outside the axes
LEGEND_COLUMN_WIDTH = 1.9  # inches per legend column outside the axes
HEATMAP_CMAP = "viridis"
MASKED_COLOUR = "#d9d9d9"  # NaN / null cells
POINT_SIZE = 10  # scatter marker area, points^2
CAPTION_WIDTH = 90  # characters per caption line

__all__ = ["DPI", "PNG_SIGNATURE", "figure", "png_bytes"]


def figure(spec: dict, *, dpi: int = DPI) -> Figure:
    """Draw one figure spec on a new matplotlib Figure (Agg canvas, no pyplot state).

    Parameters
    ----------
    spec : dict
        A figure spec (:func:`harness.figspec.heatmap` or :func:`harness.figspec.xy`), e.g. read back
        from ``results.json``; null values are drawn as gaps (heat map: grey cells).
    dpi : int
        Resolution; the figure is ``FIGSIZE`` inches, so ``dpi=100`` gives about 450 x 350 pixels.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        When the spec is invalid (the message names the figure and what is wrong).
    """
    figspec.validate(spec)
    fig = Figure(figsize=FIGSIZE, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    (_draw_heatmap if spec["kind"] == "heatmap" else _draw_xy)(fig, spec)
    note = spec.get("note")
    if note:
        # Below the axes; bbox_inches="tight" grows the image to hold it.
        fig.text(0.5, 0.0, textwrap.fill(str(note), CAPTION_WIDTH), ha="center", va="top", fontsize="x-small")
    return fig


def png_bytes(spec: dict, *, dpi: int = DPI) -> bytes:
    """Draw one figure spec as a PNG file's bytes: :func:`figure`, saved without time or software stamps.

    Parameters
    ----------
    spec : dict
        A figure spec, as for :func:`figure`.
    dpi : int

    Returns
    -------
    bytes

    Raises
    ------
    ValueError
        When the spec is invalid.
    """
    buf = io.BytesIO()
    figure(spec, dpi=dpi).savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


def _floats(values: list, what: str) -> np.ndarray:
    """A JSON list (numbers or null) as a float64 array, null -> NaN; ValueError naming `what` otherwise."""
    try:
        return np.array([math.nan if v is None else v for v in values], dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what}: expected numbers or null, got {str(values)[:80]} ({exc})") from None


def _draw_heatmap(fig: Figure, spec: dict) -> None:
    """imshow of spec["matrix"] (R, C) with a labelled colour bar; NaN cells masked."""
    title = spec.get("title", "")
    matrix = np.stack([_floats(row, f"heatmap {title!r} matrix") for row in spec["matrix"]])
    if matrix.size == 0:
        raise ValueError(f"heatmap {title!r}: matrix has no columns")
    ax = fig.add_subplot()
    cmap = colormaps[HEATMAP_CMAP].with_extremes(bad=MASKED_COLOUR)
    rows, cols = matrix.shape
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap=cmap, vmin=spec.get("vmin"), vmax=spec.get("vmax"),
                      aspect="equal" if rows == cols else "auto", interpolation="nearest")
    fig.colorbar(image, ax=ax, label=spec.get("colorbar") or None)
    ticks = spec.get("ticks") or []
    xpos, xnames = _ticks(cols, ticks)
    ax.set_xticks(xpos, xnames, rotation=90 if max(map(len, xnames)) > 3 else 0)  # long names would overlap
    ax.set_yticks(*_ticks(rows, ticks))
    label = spec.get("label") or None
    ax.set(title=title, xlabel=label, ylabel=label)
    ax.tick_params(labelsize="x-small")


def _ticks(n: int, labels: list) -> tuple[list[int], list[str]]:
    """Positions and names of at most MAX_TICKS ticks on an axis of n cells (every k-th cell).

    The spec's labels name the cells when there is one per cell; otherwise the cells are numbered.
    """
    positions = list(range(0, n, math.ceil(n / MAX_TICKS)))
    names = [str(labels[i]) for i in positions] if len(labels) == n else [str(i) for i in positions]
    return positions, names


def _colour_key(series: dict) -> str:
    """Series of one group share a colour and a legend entry; an ungrouped series has its own."""
    return str(series.get("group") or series.get("label") or "")


def _draw_xy(fig: Figure, spec: dict) -> None:
    """Series as points or lines; one colour and one legend entry per group (ungrouped: per series)."""
    title = spec.get("title", "")
    ax = fig.add_subplot()
    keys = list(dict.fromkeys(map(_colour_key, spec["series"])))
    palette = colormaps["tab10" if len(keys) <= 10 else "tab20"].colors
    labelled = set()
    for s in spec["series"]:
        key = _colour_key(s)
        x = _floats(s["x"], f"xy {title!r} series {s.get('label')!r} x")
        y = _floats(s["y"], f"xy {title!r} series {s.get('label')!r} y")
        # A group's first series names it in the legend; the others stay out of it.
        label = "_nolegend_" if key in labelled else key
        labelled.add(key)
        colour = palette[keys.index(key) % len(palette)]
        if s["style"] == "points":
            ax.scatter(x, y, s=POINT_SIZE, color=colour, label=label, linewidths=0)
        else:
            ax.plot(x, y, "-o" if s["style"] == "line+points" else "-", color=colour, label=label, markersize=3,
                    linewidth=1.2)
    ax.set(title=title, xlabel=spec.get("xlabel") or None, ylabel=spec.get("ylabel") or None)
    ax.tick_params(labelsize="small")
    ax.grid(alpha=0.3, linewidth=0.5)
    if len(keys) <= LEGEND_INSIDE_MAX:
        ax.legend(fontsize="x-small", loc="best", frameon=True, framealpha=0.8)
    else:
        ncols = math.ceil(len(keys) / LEGEND_ROWS)
        # Widen the figure by the legend's columns so that the axes keep their size and the title fits.
        fig.set_size_inches(FIGSIZE[0] + LEGEND_COLUMN_WIDTH * ncols, FIGSIZE[1])
        fig.legend(fontsize="x-small", loc="outside right upper", ncols=ncols)
