"""reports.plots: figure specs drawn as small, deterministic PNGs; invalid specs rejected with a message."""

import struct

import matplotlib.colors
import pytest

from harness import figspec
from reports import plots

# A figure is ~FIGSIZE x dpi pixels (4.5 x 3.5 in at 100 dpi); bbox_inches="tight" trims or grows it a little.
MIN_SIDE, MAX_SIDE = 250, 700
MIN_BYTES, MAX_BYTES = 2_000, 150_000  # small enough for ~25 figures in a < 2 MB page


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from the PNG's IHDR chunk."""
    assert png[:8] == plots.PNG_SIGNATURE
    return struct.unpack(">II", png[16:24])


def cosine_heatmap(n: int = 8) -> dict:
    matrix = [[1.0 - abs(i - j) / n for j in range(n)] for i in range(n)]
    return figspec.heatmap("cosine within a trajectory", matrix, ticks=[str(e) for e in range(n)], label="epoch",
                           colorbar="cosine", vmin=0.0, vmax=1.0)


def trajectories(n_runs: int = 3) -> dict:
    data = []
    for r in range(n_runs):
        data.append(figspec.series(f"run {r}", [0, 1, 2, 3], [0, r, 2 * r, 3 * r], style="line+points",
                                   group=f"run {r}"))
        data.append(figspec.series(f"run {r} samples", [3.1, 2.9], [3 * r + 0.2, 3 * r - 0.2], group=f"run {r}"))
    data.append(figspec.series("model curve", [0, 3], [0, 1], style="line"))
    return figspec.xy("joint t-SNE", data, "t-SNE 1", "t-SNE 2")


@pytest.mark.parametrize("spec", [cosine_heatmap(), trajectories()], ids=["heatmap", "xy"])
def test_each_kind_draws_a_small_deterministic_png(spec):
    png = plots.png_bytes(spec)
    width, height = png_size(png)
    assert MIN_BYTES <= len(png) <= MAX_BYTES
    assert MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE
    assert plots.png_bytes(spec) == png  # no time stamp, no state left behind by the first drawing


def test_dpi_scales_the_image():
    spec = cosine_heatmap()
    full, half = png_size(plots.png_bytes(spec, dpi=100)), png_size(plots.png_bytes(spec, dpi=50))
    assert half[0] == pytest.approx(full[0] / 2, rel=0.1) and half[1] == pytest.approx(full[1] / 2, rel=0.1)


def test_missing_values_are_drawn_as_gaps():
    matrix = [[1.0, None, 0.2], [None, None, None], [0.2, 0.5, 1.0]]
    partly = figspec.heatmap("partly missing", matrix, colorbar="cosine")
    assert plots.png_bytes(partly) != plots.png_bytes(figspec.heatmap("partly missing", [[1.0, 0.1, 0.2]] * 3))
    png_size(plots.png_bytes({"kind": "heatmap", "title": "all missing", "matrix": [[None, None], [None, None]]}))
    gaps = figspec.xy("gaps", [figspec.series("a", [1, 2, 3], [0.5, float("nan"), 0.7], style="line+points")], "x", "y")
    png_size(plots.png_bytes(gaps))


def test_many_ticks_are_thinned():
    """A 41 x 41 matrix (40 epochs) draws; its tick positions are every k-th cell, at most MAX_TICKS."""
    positions, names = plots._ticks(41, [str(e) for e in range(41)])
    assert len(positions) <= plots.MAX_TICKS and positions[0] == 0 and names == [str(p) for p in positions]
    png_size(plots.png_bytes(cosine_heatmap(41)))


def legend_labels(fig) -> list[str]:
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends)
    assert len(legends) == 1
    return [t.get_text() for t in legends[0].get_texts()]


def test_one_legend_entry_and_colour_per_group():
    fig = plots.figure(trajectories(3))
    assert legend_labels(fig) == ["run 0", "run 1", "run 2", "model curve"]
    ax = fig.axes[0]
    line_colours = [line.get_color() for line in ax.get_lines()]  # run 0..2 lines, then the model curve
    point_colours = [tuple(c.get_facecolor()[0]) for c in ax.collections]  # run 0..2 samples
    assert len(set(line_colours)) == 4
    assert [matplotlib.colors.to_rgba(c) for c in line_colours[:3]] == point_colours


def test_many_groups_move_the_legend_outside_the_axes():
    few = plots.figure(trajectories(plots.LEGEND_INSIDE_MAX - 1))
    many = plots.figure(trajectories(plots.LEGEND_INSIDE_MAX + 1))
    assert few.axes[0].get_legend() is not None and not few.legends
    assert many.axes[0].get_legend() is None and len(many.legends) == 1
    assert len(legend_labels(many)) == plots.LEGEND_INSIDE_MAX + 2


def test_note_is_drawn_as_a_caption():
    bare = trajectories()
    noted = {**bare, "note": "[Fort] Fig. 2c: three trajectories fan out into three clusters"}
    assert png_size(plots.png_bytes(noted))[1] > png_size(plots.png_bytes(bare))[1]


@pytest.mark.parametrize(("spec", "match"), [
    ({"kind": "pie", "title": "t"}, "not a figure spec"),
    ({"kind": "heatmap", "title": "ragged", "matrix": [[1.0, 2.0], [3.0]]}, "equal-length rows"),
    ({"kind": "heatmap", "title": "no columns", "matrix": [[]]}, "no columns"),
    ({"kind": "heatmap", "title": "words", "matrix": [["a", 1.0]]}, "expected numbers or null"),
    ({"kind": "xy", "title": "lengths", "series": [{"label": "a", "x": [1, 2], "y": [1], "style": "line"}]},
     "x and y of one length"),
    ({"kind": "xy", "title": "style", "series": [{"label": "a", "x": [1], "y": [1], "style": "bars"}]}, "a style"),
    ({"kind": "xy", "title": "no series", "series": []}, "every series"),
    ({"kind": "xy", "title": "words", "series": [{"label": "a", "x": ["one"], "y": [1], "style": "points"}]},
     "series 'a' x: expected numbers or null"),
])
def test_invalid_spec_raises_a_clear_error(spec, match):
    with pytest.raises(ValueError, match=match):
        plots.png_bytes(spec)
