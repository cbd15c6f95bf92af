"""AppTests of Compare's colours with more techniques (and runs) than the 9-colour palette has."""

import json

from test_app_compare_export import compare, results, select, store  # noqa: F401 (fixtures)

TECHNIQUES = ["prune", "prune+finetune1", "cluster", "cluster+huffman", "quantize", "prune+cluster+huffman",
              "prune+cluster+huffman+finetune1", "distill", "student (labels only)", "fit 14 KB",
              "prune+quantize+huffman"]


def test_more_than_nine_techniques_and_runs_each_get_their_own_colour(store, results):  # noqa: F811
    """With 11 techniques saved, the chart cycled a 9-colour palette: 'fit to a size budget' and 'prune' were both
    #1f77b4. So were the 1st and 10th runs' bars in the per-layer chart. Each has its own colour now."""
    for i, technique in enumerate(TECHNIQUES):
        res = results[i % len(results)]
        store.save("lenet-300-100", res.recipe, res.metrics, res.artifact, technique=technique)
    at = compare()
    assert not at.exception and not at.error
    traces = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    runs = [t for t in traces if t.get("mode") == "markers" and t.get("name") != "selected"]
    assert len(runs) == len(TECHNIQUES)
    assert len({t["marker"]["color"] for t in runs}) == len(TECHNIQUES)
    at = select(at, list(range(len(TECHNIQUES))))
    assert not at.exception and not at.error
    bars = [t for t in json.loads(at.get("plotly_chart")[1].proto.spec)["data"] if t.get("type") == "bar"]
    assert len(bars) == len(TECHNIQUES)
    assert len({t["marker"]["color"] for t in bars}) == len(TECHNIQUES)
