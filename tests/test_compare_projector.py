"""AppTests of what a classroom projector review found on Compare (1280x720 and 1024x768): the hover and the
side-by-side table word a run's FLOPs alike, the per-layer bars' hover, the runs table's leading columns and the
Pareto chart's legend."""

import json

import pytest

from test_app_compare_export import compare, results, seeded, select, store  # noqa: F401 (fixtures)
from conftest import plots


def spec(at, i=0):
    return json.loads(plots(at)[i])


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


# the runs table's visible width, measured in headless Chromium with the sidebar open: 562 px at 1024x768, 818 px at
# 1280x720; Streamlit's "small" column is 75 px, the row-selection column 32 px
VISIBLE = {1024: 562, 1280: 818}
SMALL, TICKS = 75, 32


def pixels(config):
    return sum(SMALL if c["width"] == "small" else c["width"] for c in config) + TICKS


@pytest.mark.parametrize("cost", ["bytes", "flops"])
def test_accuracy_is_on_screen_at_1024_and_only_the_recipe_is_cut_at_1280(store, results, cost):
    """The table was sized for 1,400 px: at 1024 Accuracy, "vs dense", Zeros and Frontier were off to the right, at
    1280 Frontier half hidden. The numbers lead, the recipe is last (the column a narrow page cuts)."""
    for i, res in enumerate(results):  # an upload's long model name: the widest Model column
        store.save("upload-resnet-ckpt-c11913bf" if i == 0 else "lenet-300-100", res.recipe, res.metrics, res.artifact)
    at = compare()
    at.radio(key="compare_cost").set_value(cost).run()
    for named in (False, True):
        assert not at.exception
        proto = at.dataframe[0].proto
        order, config = list(proto.column_order), json.loads(proto.columns)
        columns = [config[c] for c in order]
        assert order[-1] == "summary" and len(order) == len(set(order))
        lead = order.index("delta_pts") + 1
        assert order[lead - 2] == "acc_pct" and order[lead - 3] == "model"
        assert pixels(columns[:lead]) <= VISIBLE[1024]  # accuracy and vs dense, a run named or not
        if not named:
            assert pixels(columns[:lead + 2]) <= VISIBLE[1024]  # and the two cost columns
            assert pixels(columns) <= VISIBLE[1280]  # everything, the recipe too
        else:
            assert "name" in order and pixels(columns[:-1]) <= VISIBLE[1280]  # all but the recipe
        if not named:  # name a run: a Name column joins
            at = select(at, [0])
            at.text_input(key=f"rename_to_{int(at.dataframe[0].value['id'][0])}").input("demo")
            at.button[[b.label for b in at.button].index("Rename")].click().run()
            at = compare()
            at.radio(key="compare_cost").set_value(cost).run()


def test_the_pareto_charts_legend_is_under_the_plot_not_beside_it(store, seeded):
    """Beside the plot, the legend's 9 technique entries and the bench entries took more than half a 1024 px page's
    width, leaving about 150 px of plot with upright x ticks (in Chromium now: 509 of 564 px at 1024x768)."""
    for cost in ("bytes", "flops"):
        at = compare()
        at.radio(key="compare_cost").set_value(cost).run()
        legend = spec(at)["layout"]["legend"]
        assert legend["orientation"] == "h" and legend["y"] < 0 and legend["yanchor"] == "top"
    store.delete([r["id"] for r in store.list()])
    at = compare()  # the empty store's chart of the benchmarks' points too
    assert not at.exception and "No saved runs yet" in at.info[0].value
    legend = spec(at)["layout"]["legend"]
    assert legend["orientation"] == "h" and legend["y"] < 0


def test_a_name_is_shown_whole_where_the_table_has_room(store, results):
    """A walkthrough: the Name column, Streamlit's "small" (75 px), cut "100-100 student" to "100-100 stuc". It is as
    wide as the longest name now, within what the numbers leave the name and the recipe at 1280 px."""
    store.save("lenet-300-100", results[0].recipe, results[0].metrics, results[0].artifact, name="100-100 student")
    at = compare()
    assert not at.exception
    proto = at.dataframe[0].proto
    order, config = list(proto.column_order), json.loads(proto.columns)
    assert config["name"]["width"] >= 24 + 7 * len("100-100 student")
    assert pixels([config[c] for c in order[:-1]]) <= VISIBLE[1280]  # all but the recipe, still
