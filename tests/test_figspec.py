"""Tests of harness.figspec: the JSON-able figure specs that claim tests save in their evidence."""

import json
import math

import numpy as np
import pytest

from harness import figspec
from harness.figspec import heatmap, series, validate, xy


def json_round_trip(spec: dict) -> dict:
    # allow_nan=False: a spec must be strict JSON (NaN and inf are stored as null).
    return json.loads(json.dumps(spec, allow_nan=False))


# ----------------------------------------------------------------------------------------------
# Building specs


def test_heatmap_builds_a_valid_spec():
    spec = heatmap("cosine within a trajectory", np.array([[1.0, 0.5], [0.5, 1.0]]), ticks=[0, 1],
                   label="epoch", colorbar="cosine", vmin=0.0, vmax=1.0)
    assert validate(spec) is spec
    assert spec == {"kind": "heatmap", "title": "cosine within a trajectory", "matrix": [[1.0, 0.5], [0.5, 1.0]],
                    "ticks": ["0", "1"], "label": "epoch", "colorbar": "cosine", "vmin": 0.0, "vmax": 1.0}


def test_heatmap_without_ticks_may_be_rectangular():
    spec = heatmap("runs x epochs", [[1, 2, 3], [4, 5, 6]])
    assert validate(spec)["matrix"] == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    assert all(type(v) is float for row in spec["matrix"] for v in row)
    assert (spec["ticks"], spec["vmin"], spec["vmax"], spec["label"], spec["colorbar"]) == (None, None, None, "", "")


def test_series_and_xy_build_a_valid_spec():
    line = series("ours", [1, 2, 3], np.array([0.6, 0.65, 0.66]), style="line", group="a")
    cloud = series("samples", np.zeros((2, 2)), np.ones(4))  # inputs are flattened
    spec = xy("accuracy vs size", [line, cloud], "k", "accuracy", note="[WB] 62.7 -> 68.9")
    assert validate(spec) is spec
    assert line == {"label": "ours", "x": [1.0, 2.0, 3.0], "y": [0.6, 0.65, 0.66], "style": "line", "group": "a"}
    assert cloud["x"] == [0.0] * 4 and cloud["y"] == [1.0] * 4
    assert (cloud["style"], cloud["group"]) == ("points", None)
    assert spec == {"kind": "xy", "title": "accuracy vs size", "series": [line, cloud], "xlabel": "k",
                    "ylabel": "accuracy", "note": "[WB] 62.7 -> 68.9"}


@pytest.mark.parametrize("style", figspec.STYLES)
def test_every_style_is_accepted(style):
    assert validate(xy("t", [series("s", [0], [1], style=style)], "x", "y"))["series"][0]["style"] == style


def test_non_finite_values_become_none():
    spec = heatmap("h", [[math.nan, 1.0], [math.inf, -math.inf]])
    assert spec["matrix"] == [[None, 1.0], [None, None]]
    s = series("s", [0.0, math.nan, 2.0], [math.inf, 1.0, -math.inf])
    assert (s["x"], s["y"]) == ([0.0, None, 2.0], [None, 1.0, None])
    assert validate(xy("t", [s], "x", "y"))


@pytest.mark.parametrize(("value", "rounded"), [
    (0.123456789, 0.123457),
    (123456789.0, 123457000.0),
    (1.23456789e-10, 1.23457e-10),
    (-2.0 / 3.0, -0.666667),
    (0.5, 0.5),
    (7, 7.0),
])
def test_values_are_rounded_to_6_significant_digits(value, rounded):
    assert heatmap("h", [[value]])["matrix"] == [[rounded]]
    assert series("s", [value], [value])["y"] == [rounded]


# ----------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(("matrix", "ticks"), [
    pytest.param([[1.0, 0.5], [0.5, 1.0]], ["0", "1", "2"], id="too-many"),
    pytest.param([[1.0, 0.5], [0.5, 1.0]], ["0"], id="too-few"),
    pytest.param([[1.0, 0.5, 0.0], [0.5, 1.0, 0.0]], ["0", "1"], id="not-square"),
])
def test_heatmap_rejects_ticks_that_do_not_fit(matrix, ticks):
    with pytest.raises(ValueError, match="ticks label rows and columns of a square matrix"):
        heatmap("h", matrix, ticks=ticks)


@pytest.mark.parametrize("matrix", [[], [[]], [1.0, 2.0], [[[1.0]]]], ids=["empty", "empty-row", "1-d", "3-d"])
def test_heatmap_rejects_a_matrix_that_is_not_2d(matrix):
    with pytest.raises(ValueError, match="heatmap matrix must be a non-empty 2-D array"):
        heatmap("h", matrix)


def test_series_rejects_an_unknown_style():
    with pytest.raises(ValueError, match=r"style='dots' is invalid: expected one of \('points', 'line'"):
        series("s", [0], [1], style="dots")


def test_series_rejects_x_and_y_of_different_lengths():
    with pytest.raises(ValueError, match=r"series 'run 0': x and y differ in length \(3 vs 2\)"):
        series("run 0", [0, 1, 2], [0, 1])


def test_xy_rejects_no_series():
    with pytest.raises(ValueError, match="xy figure 'empty' has no series"):
        xy("empty", [], "x", "y")


GOOD_SERIES = {"label": "s", "x": [0.0], "y": [1.0], "style": "points", "group": None}


@pytest.mark.parametrize("spec", [
    pytest.param(None, id="none"),
    pytest.param([1, 2], id="list"),
    pytest.param({}, id="no-kind"),
    pytest.param({"kind": "bar", "series": [GOOD_SERIES]}, id="unknown-kind"),
])
def test_validate_rejects_what_is_no_spec(spec):
    with pytest.raises(ValueError, match="not a figure spec"):
        validate(spec)


@pytest.mark.parametrize("matrix", [
    pytest.param([[1.0, 2.0], [3.0]], id="ragged"),
    pytest.param([], id="empty"),
    pytest.param(None, id="missing"),
    pytest.param([1.0, 2.0], id="rows-not-lists"),
])
def test_validate_rejects_a_bad_heatmap_matrix(matrix):
    with pytest.raises(ValueError, match="heatmap 'h': matrix must be a non-empty list of equal-length rows"):
        validate({"kind": "heatmap", "title": "h", "matrix": matrix})


@pytest.mark.parametrize("bad", [
    pytest.param({**GOOD_SERIES, "y": [1.0, 2.0]}, id="lengths-differ"),
    pytest.param({**GOOD_SERIES, "style": "bars"}, id="bad-style"),
    pytest.param({"label": "s", "x": [0.0], "y": [1.0]}, id="no-style"),
    pytest.param("series", id="not-a-dict"),
])
def test_validate_rejects_a_bad_series(bad):
    with pytest.raises(ValueError, match="xy 't': every series needs x and y of one length and a style"):
        validate({"kind": "xy", "title": "t", "series": [GOOD_SERIES, bad]})


@pytest.mark.parametrize("series_list", [[], None], ids=["empty", "missing"])
def test_validate_rejects_an_xy_without_series(series_list):
    with pytest.raises(ValueError, match="xy 't'"):
        validate({"kind": "xy", "title": "t", "series": series_list})


# reports.render.draw_figures catches ValueError only: a bad spec must cost its figure, not the report.
@pytest.mark.parametrize("spec", [
    pytest.param({"kind": "xy", "title": "t", "series": [{**GOOD_SERIES, "x": None}]}, id="x-null"),
    pytest.param({"kind": "xy", "title": "t", "series": 5}, id="series-not-a-list"),
    pytest.param({"kind": "heatmap", "title": "h", "matrix": 5}, id="matrix-not-a-list"),
])
def test_validate_rejects_malformed_json_values_with_value_error(spec):
    with pytest.raises(ValueError):
        validate(spec)


# ----------------------------------------------------------------------------------------------
# JSON


def test_specs_survive_a_json_round_trip():
    specs = [
        heatmap("h", [[1.0, math.nan], [0.25, 1.0]], ticks=["a", "b"], label="run", colorbar="d", vmin=0, vmax=1),
        xy("t", [series("a", [0, 1], [math.inf, 0.5], style="line+points", group="0"),
                 series("b", [2.0], [3.0])], "x", "y", note="n"),
    ]
    for spec in specs:
        back = json_round_trip(spec)
        assert back == spec
        assert validate(back) == spec
