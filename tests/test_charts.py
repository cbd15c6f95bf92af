"""pages/charts.py: the figure builders write Plotly's JSON as plain dicts and skip Plotly's property check on the
server. Each builder's figure must equal the one Plotly builds with every property checked, and the check, when
on, must refuse a bad property."""

import json
import sys
from pathlib import Path

import numpy as np
import plotly.io as pio
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pages import charts  # noqa: E402

rng = np.random.default_rng(0)
CENTROIDS, IMAGE = rng.normal(size=16), rng.random((30, 26))
EDGES = np.linspace(-0.5, 0.5, 121)
SERIES = [{"name": "dense", "counts": rng.integers(0, 5000, 120), "edges": EDGES, "color": charts.GREY,
           "opacity": 0.45},
          {"name": "kept", "counts": rng.integers(0, 500, 120), "edges": EDGES, "color": charts.BLUE}]

BUILDERS = {
    "histogram": lambda: charts.histogram(SERIES, "weights"),
    "histogram, log y, lines": lambda: charts.histogram(
        SERIES, "weights", log_y=True, vlines=[charts.vline(CENTROIDS, "centroids (16)", width=1.5)]),
    "curve": lambda: charts.curve([{"name": "one-shot", "x": [0, 50, 90], "y": [0.9, 0.89, 0.7],
                                    "color": charts.BLUE, "text": ["1 KB", "2 KB", "3 KB"]}],
                                  "Accuracy vs sparsity", "sparsity (%)", "accuracy (%)", y_percent=True,
                                  current={"x": 50, "y": 0.89, "name": "now"}, hline={"y": 0.9, "name": "dense"}),
    "curve, log x": lambda: charts.curve([{"name": "kmeans", "x": [2, 4, 16, 256], "y": [0.3, 0.7, 0.89, 0.9],
                                           "dash": "dot"}], "k", "clusters", "accuracy", x_log=True,
                                         x_ticks=[2, 4, 16, 256]),
    "curve, estimated points": lambda: charts.curve([{"name": "one-shot", "x": [0, 50, 90], "y": [0.9, 0.89, 0.7],
                                                      "margin": [None, 0.012, 0.02], "text": ["1 KB", "2 KB", "3 KB"]}],
                                                    "Accuracy vs sparsity", "sparsity (%)", "accuracy (%)",
                                                    y_percent=True),
    "curve, linear ticks": lambda: charts.curve([{"name": "s", "x": [1, 2, 8, 16], "y": [1, 2, 8, 16]}], "bits", "b",
                                                "KB", x_ticks=[1, 2, 8, 16]),
    "bars": lambda: charts.bars(["fc1", "fc2"], [0.9, 0.5], "sparsity", "layer", "%", text=["90 %", "50 %"],
                                hover=["a", "b"], reference={"y": 0.8, "name": "asked"}, y_percent=True),
    "mask": lambda: charts.mask(IMAGE, "kept", block=(2, 3)),
}


@pytest.mark.parametrize("name", list(BUILDERS))
def test_each_builder_equals_plotlys_checked_build(name, monkeypatch):
    monkeypatch.setattr(charts, "CHECK", False)
    fast = json.loads(pio.to_json(BUILDERS[name](), validate=False))
    monkeypatch.setattr(charts, "CHECK", True)
    checked = json.loads(pio.to_json(BUILDERS[name](), validate=False))  # every property through Plotly's validators
    assert fast == checked


def test_the_check_refuses_a_bad_property(monkeypatch):
    monkeypatch.setattr(charts, "CHECK", True)
    with pytest.raises(ValueError, match="colour"):
        charts.figure([{"type": "bar", "x": [1], "y": [2], "colour": "red"}], {})
    with pytest.raises(ValueError, match="heigth"):
        charts.figure([], {"heigth": 300})
    monkeypatch.setattr(charts, "CHECK", False)
    charts.figure([{"type": "bar", "x": [1], "y": [2], "colour": "red"}], {})  # unchecked: the server's path


def test_bit_widths_sit_at_their_true_distances():
    """A linear axis with ticks at the bit widths: 8 -> 16 spans eight bits, not one step as a category axis drew it."""
    axis = BUILDERS["curve, linear ticks"]().layout.xaxis
    assert axis.type != "category" and list(axis.tickvals) == [1, 2, 8, 16] and list(axis.ticktext) == ["1", "2", "8",
                                                                                                      "16"]


def test_log_ticks_read_as_whole_numbers():
    spec = charts.log_ticks([8, 9, 10, 20, 100, 200])
    assert spec["type"] == "log" and spec["tickmode"] == "array"
    assert all(t.replace(",", "").isdigit() for t in spec["ticktext"]) and spec["tickvals"] == sorted(spec["tickvals"])


def test_a_curves_estimated_points_are_open_with_error_bars_and_exact_points_are_not():
    fig = BUILDERS["curve, estimated points"]()
    trace = fig.data[0]
    assert list(trace.error_y.array) == [None, 1.2, 2.0] and trace.error_y.visible  # in % points, as y
    assert list(trace.marker.symbol) == ["circle", "circle-open", "circle-open"]
    assert [c.strip() for c in trace.customdata] == ["", "± 1.20 % (estimated)", "± 2.00 % (estimated)"]
    plain = BUILDERS["curve"]().data[0]
    assert plain.error_y.array is None and plain.marker.symbol is None
