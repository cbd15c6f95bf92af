"""AppTests of Compare's chart legend and benchmark points: every Fit is one technique whatever its budget, and the
benchmarks' dense points sit at the dense float32 bytes the cards give."""

import json

from test_app import plotly_values
from test_app_compare_export import compare, results, store  # noqa: F401 (fixtures)

from compress_engine.playground import units


def test_every_fit_is_one_technique_whose_points_name_their_budget(store, results):  # noqa: F811
    """Each Fit budget was its own technique and colour ("fit 14 KB", "fit 19 KB", "fit 20 KB"): the legend grew with
    every Fit saved. They are one entry, "fit to a size budget", and each point's hover names its budget."""
    budgets = ["fit 14 KB", "fit 19 KB", "fit 20 KB"]
    for res, technique in zip(results, budgets):
        store.save("lenet-300-100", res.recipe, res.metrics, res.artifact, technique=technique)
    store.rename(next(r["id"] for r in store.list() if r["technique"] == "fit 14 KB"), "mine")
    store.save("lenet-300-100", results[3].recipe, results[3].metrics, results[3].artifact, technique="quantize")
    at = compare()
    assert not at.exception and not at.error
    traces = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    runs = [t for t in traces if t.get("mode") == "markers" and t.get("name") != "selected"]
    assert sorted(t["name"] for t in runs) == ["fit to a size budget", "quantize"]
    fits = next(t for t in runs if t["name"] == "fit to a size budget")
    hovers = sorted(c[0] for c in fits["customdata"])
    assert len(plotly_values(fits["x"])) == 3 and len(hovers) == 3
    assert all(any(b in h for h in hovers) for b in budgets), hovers  # the named one too: "mine (fit 14 KB)"
    assert "mine (fit 14 KB)" in hovers
    assert len({t["marker"]["color"] for t in runs}) == 2

