"""Sensitivity's per-layer lines tell layers apart without colour: each has its own marker shape."""

import json

from test_app import page
from conftest import plots


def test_each_layers_line_has_its_own_shape_and_dash_not_only_a_colour(fmnist):
    at = page("sensitivity", "resnet-8")  # ten layers: ten colours were hard to tell apart
    for chart in plots(at)[:2]:  # pruning one layer alone; sharing one layer's weights
        lines = [t for t in json.loads(chart)["data"] if t.get("mode") == "lines+markers"]
        assert len(lines) == 10
        looks = [(t["marker"]["symbol"], t["line"]["dash"]) for t in lines]
        assert len({s for s, _ in looks}) == 10 and len({d for _, d in looks}) > 1
