"""Compare's benchmark points for every sample model: with ResNet-8's runs alone the reference radio offered only
"none" (deep_compression.csv and techniques.csv hold the LeNets), though bench/beyond.py measured ResNet-8 at a size
budget. Its table of each model (beyond_<model>.csv) is now a reference set."""

import json

import pytest
from test_app import ROOT, app

from compress_engine.playground import store as runstore
from compress_engine.playground import viz
from conftest import plots


def test_beyond_tables_are_read_as_reference_points(tmp_path):
    (tmp_path / "beyond_m.csv").write_text(
        "model,method,budget_bytes,bytes,ratio,kept_%,accuracy_%,loss_pts,cpu_s,note\n"
        "m,dense float32,,4000,1.0,100,90.5,0,0,\n"
        "m,budget 1 KB (per-layer),1000,990,4.04,10,89.0,1.5,12,1 try\n"
        "m,paper: Deep Compression (Han et al. 2016),,,40.0,,,,,\"MNIST, 1.58 % error\"\n")
    (tmp_path / "beyond_m_seed1.csv").write_text(  # a variant of the run (another seed): not a reference point
        "model,method,budget_bytes,bytes,ratio,kept_%,accuracy_%,loss_pts,cpu_s,note\n"
        "m,budget 1 KB (per-layer),1000,980,4.08,10,88.0,2.5,12,1 try\n")
    rows = runstore.reference_points(tmp_path)
    assert [(r["source"], r["label"], r["artifact_bytes"], r["accuracy"]) for r in rows] == [
        (runstore.BEYOND, "dense float32", 4000, pytest.approx(0.905)),
        (runstore.BEYOND, "budget 1 KB (per-layer)", 990.0, pytest.approx(0.89))]


def test_resnet8_runs_alone_get_reference_points(tmp_path, monkeypatch, fmnist):
    import compress_engine as ce
    monkeypatch.setenv("COMPRESS_STORE", str(tmp_path / "runs.sqlite"))
    metrics = {"params": 10, "nonzero_params": 5, "artifact_bytes": 150_000, "ratio": 8.2, "accuracy": 0.93}
    runstore.Store().save("resnet-8", ce.Recipe(clusters=16), metrics)
    at = app().run().switch_page("pages/compare.py").run()
    assert not at.exception
    radio = at.radio(key="compare_refs")
    assert runstore.BEYOND in radio.options or viz.REFERENCE_SETS[runstore.BEYOND] in radio.options, radio.options
    radio.set_value(runstore.BEYOND).run()
    traces = json.loads(plots(at)[0])["data"]
    refs = [t for t in traces if t["name"].startswith("bench: ")]
    assert [t["name"] for t in refs] == ["bench: resnet-8"]
    assert "budget 30.74 KB" in refs[0]["text"]  # bench/results/beyond_resnet-8.csv's fit
    assert (ROOT / "bench" / "results" / "beyond_resnet-8.csv").exists()


def test_compare_says_the_sidebar_model_does_not_filter_it(tmp_path, monkeypatch):
    """The sidebar's model picker has no effect on Compare (it has its own Models filter): a reviewer switched it and
    wondered why nothing changed. The sidebar says so on this page."""
    monkeypatch.setenv("COMPRESS_STORE", str(tmp_path / "runs.sqlite"))
    at = app().run().switch_page("pages/compare.py").run()
    assert any("Compare shows the saved runs of every model" in c.value for c in at.sidebar.caption)
