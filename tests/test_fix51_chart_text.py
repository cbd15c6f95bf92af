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
    assert ("loss: 100 points, horizontal from 0 to 99, vertical from 0 KB at the start to 198 KB at the end, lowest "
            "0 KB, highest 198 KB.") in text  # no markup, no 100 pairs: its trend
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
    drawn = [i for i, e in enumerate(shown) if e.type == "bidi_component"]  # pages/live_chart's charts
    assert drawn
    for i in drawn:
        fig = json.loads(json.loads(shown[i].proto.json)["spec"])
        after = shown[i + 1]
        assert after.type == "html", (name, i, after.type)
        body = html.unescape(after.proto.body)
        assert body.startswith('<p class="chart-text">Chart: ') and body.endswith("</p>")
        title = charts._plain(fig["layout"].get("title", {}).get("text")) or "The first 12 test images"
        assert body[len('<p class="chart-text">Chart: '):].startswith(title), (title, body[:120])
        for trace in fig["data"]:
            if trace.get("name") and trace["type"] != "image":  # an image is read as one (px names it "0")
                assert charts._plain(trace["name"]) in body, (trace["name"], body[:300])


def test_lines_labels_legend_entries_references_units_and_names_read_as_they_are_meant():
    """What an accessibility re-check heard wrongly: a histogram's centroid lines read as (x, 0/1) pairs ("-0.2947:
    0; -0.2947: 1; : ;"), legend-only entries as empty series, Plotly's trace type as a name ("bar:"), a reference line
    repeated at every category, bar labels ("-0.75 pts") and units in a parenthesis ("KB of float32 weights") lost,
    and a name viz.chart_text escapes read as "&amp;"."""
    from compress_engine.playground import viz
    counts = [5] * 10 + [0] * 20 + [3] * 10  # 40 bins of 0.1 from -2: none from -1 to 1 (a pruned band)
    hist = charts.histogram([{"name": "kept", "counts": counts, "edges": np.linspace(-2, 2, 41)}], "W",
                            vlines=[charts.vline([-0.5, 0.25], "centroids (2)")])
    text = charts.describe(hist)
    assert "centroids (2): at -0.5, 0.25." in text
    assert "kept: a histogram of 80 values in 40 bins from -2 to 2, the most (5) near -1.95, none from -1 to 1." in text
    fig = charts.figure([{"type": "bar", "x": ["a", "b"], "y": [4.4, 27.1], "text": ["-0.75 pts", "-0.89 pts"]},
                         {"type": "bar", "x": ["a"], "y": [None], "name": "legend only"},
                         {"type": "scatter", "x": ["a", "b"], "y": [39.9, 39.9], "name": "whole model"},
                         {"type": "scatter", "x": [99.16], "y": [1505], "name": viz.chart_text("p & q")}],
                        charts.base_layout("T", "size (KB of float32 weights, log scale)", "ratio (×)"))
    text = charts.describe(fig)
    assert "a: 4.4 × (-0.75 pts); b: 27.1 × (-0.89 pts)." in text and "bar:" not in text
    assert "legend only" not in text
    assert "whole model: 39.9 × at every point, from a to b." in text
    assert "p & q: 99.16 KB: 1,505 ×." in text
    grid = charts.figure([{"type": "bar", "x": [802.0], "y": ["layers.0.weight"], "orientation": "h"}],
                         charts.base_layout("B", "KB (log scale; 1 KB = 1,000 bytes)", ""))
    assert "layers.0.weight: 802 KB." in charts.describe(grid)


def test_a_label_that_only_restates_its_value_is_not_read_twice_and_a_grid_says_what_its_colours_measure():
    fig = charts.figure([{"type": "bar", "x": ["layers.0", "layers.1"], "y": [80.95, 12.0],
                          "text": ["80.9 %", "12 % of 3"]}], charts.base_layout("S", "layer", "removed (%)"))
    assert "layers.0: 80.95 %; layers.1: 12 % (12 % of 3)." in charts.describe(fig)
    mask = charts.mask(np.array([[1.0, 0.0], [0.0, 1.0]]), "Kept")
    assert "values (kept) from 0 % to 100 %" in charts.describe(mask)
