"""Compare page fixes (round 49, f1): user text escaped in charts, ... (AppTest on a temporary run store)."""

import json

import pytest
from test_app import app

import compress_engine as ce
from compress_engine.playground.store import Store

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
    return json.loads(at.get("plotly_chart")[i].proto.spec)["data"]


def test_user_text_is_escaped_in_the_charts(store):
    """A run named <a href=...>LINK</a> was a link in the Pareto chart's hover (and <b> bold) for every session."""
    a = store.save("lenet-5", ce.Recipe(sparsity=0.5), metrics(), name=EVIL)
    store.save("<i>model</i>", ce.Recipe(sparsity=0.9), metrics(0.7, 500), technique=BOLD)
    at = compare()
    assert not at.exception
    spec = at.get("plotly_chart")[0].proto.spec
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
    bars = at.get("plotly_chart")[1].proto.spec
    assert "<a href" not in bars and "<b>x" not in bars and "&lt;a href" in bars and "&lt;b&gt;x" in bars
