"""Distillation's measured grid tells labels-only and each T apart without colour: each has its own marker shape,
for the MLP students' lines and for the CNN student's diamond alike."""

import json
from pathlib import Path

from test_app import page
from conftest import plots

RESULTS = Path(__file__).resolve().parent.parent / "bench" / "results"


def test_each_T_has_its_own_marker_shape_not_only_a_colour(fmnist):
    at = page("distillation")
    spec = next(json.loads(c) for c in plots(at) if "every student" in c)
    series = [t for t in spec["data"] if t.get("legendgroup")]  # labels only and each T: MLP lines, CNN diamonds
    for cnn in (False, True):
        shapes = {t["legendgroup"]: t["marker"]["symbol"] for t in series if ("CNN" in t["name"]) == cnn}
        assert len(shapes) >= (2 if cnn else 4) and len(set(shapes.values())) == len(shapes), shapes
        assert all(("diamond" in s) == cnn for s in shapes.values())  # the CNN student still reads as diamonds
