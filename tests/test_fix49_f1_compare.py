"""Compare page fixes (round 49, f1): user text escaped in charts, ... (AppTest on a temporary run store)."""

import json

import pytest
from test_app import app

import compress_engine as ce
from compress_engine.playground.store import Store
from conftest import plots

EVIL = '<a href="https://evil.example/x">LINK</a>'
BOLD = '<b>bold</b><span style="color:red">red</span>'


def metrics(acc=0.8, size=1000, dense=0.9, layer="fc.weight"):
    return {"params": 100, "nonzero_params": 50, "dense_params": 100, "artifact_bytes": size, "ratio": 4000 / size,
            "accuracy": acc, "dense_accuracy": dense, "agreement": 0.85, "sparsity": 0.5,
            "layers": [{"name": layer, "shape": [10, 10], "params": 100, "nonzero": 50, "levels": None,
                        "bytes": size - 10}]}


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESS_STORE", str(tmp_path / "runs.sqlite"))
    return Store()


def compare():
    return app().run().switch_page("pages/compare.py").run()


def traces(at, i=0):
    return json.loads(plots(at)[i])["data"]


def test_user_text_is_escaped_in_the_charts(store):
    """A run named <a href=...>LINK</a> was a link in the Pareto chart's hover (and <b> bold) for every session."""
    a = store.save("lenet-5", ce.Recipe(sparsity=0.5), metrics(), name=EVIL)
    store.save("<i>model</i>", ce.Recipe(sparsity=0.9), metrics(0.7, 500), technique=BOLD)
    at = compare()
    assert not at.exception
    spec = plots(at)[0]
    assert "<a href" not in spec and "<b>bold" not in spec and "<i>model" not in spec
    hovers = [c[0] for t in traces(at) for c in t.get("customdata", [])]
    assert "&lt;a href=\"https://evil.example/x\"&gt;LINK&lt;/a&gt;" in hovers
    names = [t.get("name") for t in traces(at)]
    assert any("&lt;b&gt;bold&lt;/b&gt;" in (n or "") for n in names)
    assert any("&lt;i&gt;model&lt;/i&gt;" in (n or "") for n in names)


def select(at, rows):
    at.session_state[at.dataframe[0].key] = {"selection": {"rows": rows, "columns": [], "cells": []}}
    return at.run()


def test_user_text_is_no_link_side_by_side(store):
    """The side-by-side table (st.table: Markdown) made a link of a run named <a href="https://evil.example/x">:
    Markdown's autolinks find the URL however it is backslash-escaped. Its bar chart's legend rendered the HTML."""
    store.save("lenet-5", ce.Recipe(sparsity=0.5), metrics(), name=EVIL)
    store.save("lenet-5", ce.Recipe(sparsity=0.9), metrics(0.7, 500, layer="<b>x</b>.weight"), name="mail me@evil.example")
    at = select(compare(), [0, 1])
    assert not at.exception
    side = at.table[0].value
    heads = " ".join(side.columns)
    assert "https\u2060" in heads and "https:" not in heads.replace("\\", "") and "me@\u2060evil" in heads
    bars = plots(at)[1]
    assert "<a href" not in bars and "<b>x" not in bars and "&lt;a href" in bars and "&lt;b&gt;x" in bars


def test_equal_loss_axis_frontier_per_model_and_loss_filter(store):
    """Compare drew accuracy only, with one frontier across models of different dense accuracy: LeNet-300-100's runs
    (dense 89.5 %) were never on it beside LeNet-5's (dense 91 %). It can chart the points lost against each run's
    own dense model, with a frontier a model, and show only runs that lost at most N points."""
    five = [store.save("lenet-5", ce.Recipe(sparsity=s), metrics(a, b, 0.91))
            for s, a, b in ((0.5, 0.905, 2000), (0.8, 0.90, 1000), (0.9, 0.88, 500))]
    mlp = [store.save("lenet-300-100", ce.Recipe(bits=b), metrics(a, n, 0.895))
           for b, a, n in ((8, 0.895, 1500), (4, 0.88, 800))]
    at = compare()
    assert not at.exception
    table = at.dataframe[0].value
    on = set(table.loc[table["pareto"], "id"])
    assert on == {*five, *mlp}  # each model's runs against each other: all five are on their model's frontier
    fronts = [t for t in traces(at) if (t.get("name") or "").startswith("Pareto frontier")]
    assert sorted(t["name"] for t in fronts) == ["Pareto frontier: lenet-300-100", "Pareto frontier: lenet-5"]
    at.radio(key="compare_accuracy").set_value("loss").run()
    assert not at.exception
    fig = json.loads(plots(at)[0])
    assert fig["layout"]["yaxis"]["title"]["text"] == "Accuracy lost vs its dense model (points)"
    assert fig["layout"]["yaxis"]["autorange"] == "reversed"
    from test_app import plotly_values
    ys = sorted(round(float(y), 6) for t in fig["data"] if t.get("mode") == "markers" and t.get("name") != "selected"
                for y in plotly_values(t["y"]))
    assert ys == sorted(round(v, 6) for v in (0.5, 1.0, 3.0, 0.0, 1.5))
    at.number_input(key="compare_max_loss").set_value(1.0).run()
    assert not at.exception
    assert set(at.dataframe[0].value["id"]) == {five[0], five[1], mlp[0]}
    # the frontiers are dashed, a dash a model, and not dotted as the benchmark lines are
    dashes = [t["line"]["dash"] for t in fronts]
    assert len(set(dashes)) == 2 and "dot" not in dashes


def test_runs_can_be_selected_without_the_mouse(store):
    """Runs were selected only by clicking the table's row ticks, which a keyboard cannot reach: "Selected runs" (a
    multiselect: Tab, type, Enter) picks them too, and it and the table tick the same runs."""
    a = store.save("lenet-5", ce.Recipe(sparsity=0.5), metrics(), name="mine")
    b = store.save("lenet-5", ce.Recipe(sparsity=0.9), metrics(0.7, 500))
    at = compare()
    pick = at.multiselect(key="compare_pick")
    assert pick.value == [] and f"#{a} mine · lenet-5" in pick.options
    # typing "#1" matches the labels holding "#1" (fuzzy matching took every label with a "#" and a later "1"), and
    # Enter picks that run: the list offers no "Select N matches" at its top, which Enter took, selecting them all
    from streamlit.proto.MultiSelect_pb2 import MultiSelect
    assert pick.proto.filter_mode == MultiSelect.DESCRIPTOR.fields_by_name["filter_mode"].enum_type.values_by_name[
        "FILTER_MODE_CONTAINS"].number
    assert pick.proto.select_all == 0
    pick.set_value([a, b]).run()
    assert not at.exception
    assert len(at.table) == 1 and len(at.table[0].value.columns) == 2  # side by side
    assert at.session_state[at.dataframe[0].key]["selection"]["rows"] == [0, 1]  # ticked in the table too
    assert "Delete selected (2)" in [x.label for x in at.button]
    at.multiselect(key="compare_pick").set_value([b]).run()
    assert len(at.table[0].value.columns) == 1 and at.text_input(key=f"rename_to_{b}")  # one: it can be named
    select(at, [])  # unticked in the table: gone from the multiselect too
    assert at.multiselect(key="compare_pick").value == [] and not at.table


def test_the_table_tells_runs_apart(store):
    """At 1,280 px the runs table showed model, numbers and a cut recipe ("sparsity=80 %, prune_…" for two different
    runs), and a sweep's rows all began "sweep #1 · ": a Technique column joins, and a sweep point's recipe starts
    with the value it was swept to."""
    store.save("lenet-5", ce.Recipe(sparsity=0.8, clusters=16, huffman=True), metrics())
    base = ce.Recipe(clusters=16, huffman=True)
    group = store.sweep_group("g", "lenet-5", "fashion-mnist", "sparsity", base)
    store.save("lenet-5", base.replace(sparsity=0.9), metrics(0.7, 500), sweep=group, data="fashion-mnist",
               point_key="p90")
    at = compare()
    assert not at.exception
    proto = at.dataframe[0].proto
    order, config = list(proto.column_order), json.loads(proto.columns)
    assert "technique" in order and config["technique"]["label"] == "Technique"
    assert order.index("technique") < order.index("summary")
    table = at.dataframe[0].value
    swept = table.loc[table["sweep"].notna(), "summary"].iloc[0]
    assert swept.startswith(f"sparsity=90 % · sweep #{group} · ") and swept.endswith("clusters=16, huffman=True")


def test_sweep_lines_failed_points_and_no_widget_warning(store, monkeypatch):
    """A sweep's line had a colour of its own, unrelated to its points'; a failed point was on no chart and nowhere
    said; Streamlit warned that compare_models had a default and a value set through Session State. (It still warns
    since the box's default= is bound to the URL, by design: the app's log filter drops that line, so what counts is
    what reaches the log's handlers.)"""
    import logging

    from streamlit.elements.lib import policies
    warned = []

    class Seen(logging.Handler):
        def emit(self, record):
            warned.append(record.getMessage())
    monkeypatch.setattr(policies._LOGGER, "handlers", [*policies._LOGGER.handlers, Seen(logging.WARNING)])
    monkeypatch.setattr(policies, "_shown_default_value_warning", False)  # Streamlit warns once a process
    store.save("lenet-5", ce.Recipe(bits=4), metrics(0.85, 300))
    base = ce.Recipe(clusters=16, huffman=True)
    group = store.sweep_group("g", "lenet-5", "fashion-mnist", "sparsity", base)
    for i, sp in enumerate((0.7, 0.8, 0.9)):
        store.save("lenet-5", base.replace(sparsity=sp), metrics(0.9 - 0.01 * i, 1000 - 200 * i), sweep=group,
                   data="fashion-mnist", point_key=f"p{i}")
    store.save_failure(group, "p3", base.replace(sparsity=0.95), "ValueError: boom\nmore")
    at = compare()
    at.run()
    assert not at.exception and not warned
    data = traces(at)
    label = store.sweeps()[0]["label"]
    [line] = [t for t in data if t.get("name") == label]
    [points] = [t for t in data if t.get("name") == "prune+cluster+huffman"]
    assert line["line"]["color"] == points["marker"]["color"]
    said = [c.value for c in at.caption if "points failed" in c.value]
    assert len(said) == 1 and "1 of 4 points failed" in said[0] and "boom" in said[0] and "more" not in said[0]
    assert "sweep" in at.caption[0].value  # the subtitle: runs come from sweeps too
