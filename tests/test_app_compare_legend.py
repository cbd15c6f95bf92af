"""AppTests of Compare's chart legend and benchmark points: every Fit is one technique whatever its budget, and the
benchmarks' dense points sit at the dense float32 bytes the cards give."""

import json

from test_app import plotly_values
from test_app_compare_export import compare, results, store  # noqa: F401 (fixtures)

from compress_engine.playground import units
from conftest import plots


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
    traces = json.loads(plots(at)[0])["data"]
    runs = [t for t in traces if t.get("mode") == "markers" and t.get("name") != "selected"]
    assert sorted(t["name"] for t in runs) == ["fit to a size budget", "quantize"]
    fits = next(t for t in runs if t["name"] == "fit to a size budget")
    hovers = sorted(c[0] for c in fits["customdata"])
    assert len(plotly_values(fits["x"])) == 3 and len(hovers) == 3
    assert all(any(b in h for h in hovers) for b in budgets), hovers  # the named one too: "mine (fit 14 KB)"
    assert "mine (fit 14 KB)" in hovers
    assert len({t["marker"]["color"] for t in runs}) == 2


def test_the_benchmarks_dense_points_are_the_cards_dense_float32_bytes(store, results):  # noqa: F811
    """Compare's 'dense float32' reference point of LeNet-300-100 was at 1,066.8 KB (the artifact of the unchanged
    weights, header included) where every card says 1,066.4 KB, its float32 weights. Its label and LeNet-5's, both
    above their points and running left, were written over each other: the less accurate one's is below its point."""
    store.save("lenet-300-100", results[1].recipe, results[1].metrics, results[1].artifact, technique="prune")
    store.save("lenet-5", results[2].recipe, results[2].metrics, results[2].artifact, technique="prune")
    at = compare()
    assert not at.exception and not at.error
    assert at.radio(key="compare_refs").value == "deep_compression.csv"
    traces = json.loads(plots(at)[0])["data"]
    bench = next(t for t in traces if t.get("name") == "bench: lenet-300-100")
    xs = plotly_values(bench["x"])
    dense = xs[[i for i, t in enumerate(bench["text"]) if "dense float32" in t][0]]
    assert dense == results[0].metrics["dense_bytes"] / units.KB  # the cards' 1,066.4 KB
    assert dense == max(xs)
    five = next(t for t in traces if t.get("name") == "bench: lenet-5")
    assert "dense float32" in five["text"][0] and "dense float32" in bench["text"][0]
    assert plotly_values(five["y"])[0] > plotly_values(bench["y"])[0]
    assert (five["textposition"][0], bench["textposition"][0]) == ("top left", "bottom left")
