"""Every chart is followed by its text for a screen reader (common.chart, charts.describe): its title, its axes, each
series' points with their units, and its notes. Plotly's SVG alone was read as its tick labels run together
("−0.5 0 0.5 1 10 100 1,000"), so a blind student got no lesson from any chart (WCAG 1.1.1)."""

import html
import json

import numpy as np
import pytest
from test_app import page

from pages import charts


def test_a_curve_reads_as_its_points_with_units_and_its_reference_line():
    fig = charts.curve([{"name": "one-shot", "x": [0, 50, 90], "y": [0.9013, 0.8912, 0.51234], "color": charts.BLUE}],
                       "Accuracy vs sparsity", "sparsity (%)", "test accuracy (%)", y_percent=True,
                       current={"x": 50, "y": 0.8912, "name": "current"}, hline={"y": 0.9013, "name": "dense"})
    assert charts.describe(fig) == (
        "Chart: Accuracy vs sparsity. horizontal axis: sparsity (%); vertical axis: test accuracy (%). "
        "one-shot: 0 %: 90.13 %; 50 %: 89.12 %; 90 %: 51.23 %. current: 50 %: 89.12 %. Notes: dense (at 90.13 %).")


def test_long_series_read_as_ranges_horizontal_bars_as_label_value_and_markup_is_dropped():
    xs = list(range(100))
    fig = charts.figure([{"type": "scatter", "x": xs, "y": [2.0 * x for x in xs], "name": "<b>loss</b>"},
                         {"type": "bar", "orientation": "h", "x": [1.5, 2.25], "y": ["a", "b"], "name": "KB"}],
                        charts.base_layout("Kept<br><sup>3 of 4</sup>", "step", "loss (KB)"))
    text = charts.describe(fig)
    assert text.startswith("Chart: Kept, 3 of 4. horizontal axis: step; vertical axis: loss (KB). ")
    assert "loss: 100 points, horizontal from 0 to 99, vertical from 0 to 198." in text  # no markup, no 100 pairs
    assert "KB: a: 1.5; b: 2.25." in text  # the bar's label, then its value (the axes' units swap with them)


def test_a_histogram_and_a_heatmap_read_as_their_extent_and_a_small_grid_cell_by_cell():
    w = np.random.default_rng(0).normal(size=5000)
    fig = charts.figure([{"type": "histogram", "x": w, "name": "weights"},
                         {"type": "heatmap", "z": [[1.0, 2.0], [3.0, np.nan]], "x": ["50 %", "90 %"],
                          "y": ["int8", "int4"], "name": "lost"}], charts.base_layout("", "", ""))
    text = charts.describe(fig, title="Fallback")
    assert text.startswith("Chart: Fallback. ")  # a figure without a title of its own takes the page's
    assert f"weights: a histogram of 5,000 values from {w.min():,.4g} to {w.max():,.4g}." in text
    assert "lost: a grid of 2 rows by 2 columns, values from 1 to 3; int8: 50 % 1, 90 % 2; int4: 50 % 3, 90 % no value." \
        in text


@pytest.mark.parametrize("name", ["home", "quantization"])
def test_every_chart_on_a_page_is_followed_by_its_text(fmnist, name):
    at = page(name)
    shown = list(at.main)
    plots = [i for i, e in enumerate(shown) if e.type == "plotly_chart"]
    assert plots
    for i in plots:
        fig = json.loads(shown[i].proto.spec)
        after = shown[i + 1]
        assert after.type == "html", (name, i, after.type)
        body = html.unescape(after.proto.body)
        assert body.startswith('<p class="chart-text">Chart: ') and body.endswith("</p>")
        title = charts._plain(fig["layout"].get("title", {}).get("text")) or "The first 12 test images"
        assert body[len('<p class="chart-text">Chart: '):].startswith(title), (title, body[:120])
        for trace in fig["data"]:
            if trace.get("name"):
                assert charts._plain(trace["name"]) in body, (trace["name"], body[:300])
