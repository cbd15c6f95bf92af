"""AppTests of what a classroom projector review found on Compare (1280x720 and 1024x768): the hover and the
side-by-side table word a run's FLOPs alike, the per-layer bars' hover, the runs table's leading columns and the
Pareto chart's legend."""

import json

from test_app_compare_export import compare, results, seeded, select, store  # noqa: F401 (fixtures)


def spec(at, i=0):
    return json.loads(at.get("plotly_chart")[i].proto.spec)


def test_the_flops_hover_says_what_the_side_by_side_table_says(seeded):
    """Every unstructured run's hover read "0.532 MFLOPs, 1.0× fewer than dense" where the table said "the same"."""
    at = compare()
    at.radio(key="compare_cost").set_value("flops").run()
    at = select(at, [0, 1])
    assert not at.exception
    side = at.table[0].value
    said = dict(zip(side.columns, side.loc["FLOPs vs dense"]))
    assert set(said.values()) == {"the same"}  # pruning, clustering, quantization: zeros still get multiplied
    hovered = {}
    for t in spec(at)["data"]:
        if t.get("mode") == "markers" and t.get("customdata"):
            assert "%{customdata[3]}" in t["hovertemplate"] and "×" not in t["hovertemplate"]
            hovered.update({c[0]: c[3] for c in t["customdata"]})
    labels = {c.split(" ", 1)[0]: w for c, w in said.items()}  # "#3 prune…" (Markdown-escaped) -> its wording
    for label, words in hovered.items():
        if label.split(" ", 1)[0] in labels:
            assert words == labels[label.split(" ", 1)[0]]
    assert set(hovered.values()) == {"the same"}


def test_the_per_layer_bars_hover_names_run_layer_and_value_with_its_unit(seeded):
    """Plotly express's default hover read "Run=#18 prune+cluster+huffmanLayer=stem.weightZero weights (%)=79.86111"."""
    at = select(compare(), [0, 1])
    assert not at.exception
    bars = spec(at, 1)["data"]
    assert len(bars) == 2
    for t in bars:
        assert t["hovertemplate"] == "Run %{customdata[0]}<br>Layer %{x}<br>%{y:.1f} % zero weights<extra></extra>"
        assert {c[0] for c in t["customdata"]} == {t["name"]}  # the run's label (in full: these are short)
        assert len(t["customdata"]) == len(t["x"])
