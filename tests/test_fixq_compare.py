"""AppTests of Compare's colours with more techniques (and runs) than the 9-colour palette has."""

import json

from test_app_compare_export import compare, results, select, store  # noqa: F401 (fixtures)
from conftest import plots

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
    traces = json.loads(plots(at)[0])["data"]
    runs = [t for t in traces if t.get("mode") == "markers" and t.get("name") != "selected"]
    assert len(runs) == len(TECHNIQUES)
    assert len({t["marker"]["color"] for t in runs}) == len(TECHNIQUES)
    at = select(at, list(range(len(TECHNIQUES))))
    assert not at.exception and not at.error
    bars = [t for t in json.loads(plots(at)[1])["data"] if t.get("type") == "bar"]
    assert len(bars) == len(TECHNIQUES)
    assert len({t["marker"]["color"] for t in bars}) == len(TECHNIQUES)


def test_the_csv_has_the_stores_columns_and_shares_keep_their_digits(store, results, monkeypatch):  # noqa: F811
    """Compare listed the store's columns again for its CSV and left out the data set a run was measured on; and its
    own pct() showed a run with 2 of 266,610 weights left as "100.00 %" zero weights (units.pct keeps the digits
    that say it is not all)."""
    import io

    import pandas as pd
    from test_app_compare_csv import spy_downloads

    from compress_engine.playground import store as runstore

    res = results[0]
    run = store.save("lenet-300-100", res.recipe, dict(res.metrics, nonzero_params=2), res.artifact,
                     technique="prune", data="fashion-mnist")
    sent = spy_downloads(monkeypatch)
    at = compare()
    assert not at.exception and not at.error
    table = pd.read_csv(io.StringIO(sent["Download CSV"]))
    assert list(table.columns[:2]) == ["id", "name"]
    assert set(runstore.COLUMNS) - {"sweep_id"} <= set(table.columns)
    assert set(runstore.METRIC_COLUMNS) <= set(table.columns)
    assert table.loc[table["id"] == run, "data"].item() == "fashion-mnist"
    at = select(at, [0])
    assert not at.exception and not at.error
    side = at.table[0].value
    zeros = side.loc["Zero weights"].iloc[0]
    assert zeros != "100.00 %" and zeros.startswith("99.99"), zeros
