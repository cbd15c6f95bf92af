"""A run's technique label is one function's (store.technique_label), whichever page saves it, and Compare groups
labels saved before it the same way."""

from streamlit.testing.v1 import AppTest

import compress_engine as ce
from compress_engine.playground import store
from pages import charts
from test_app import page

FINETUNED = ce.Recipe(sparsity=0.5, finetune_epochs=1)


def test_technique_label_and_group():
    assert store.technique_label(FINETUNED) == "prune+finetune1"
    assert store.technique_label(FINETUNED.to_json()) == "prune+finetune1"
    assert store.technique_label(ce.Recipe(clusters=16, huffman=True)) == "cluster+huffman"
    assert store.technique_label(ce.Recipe(), budget_kb=14) == charts.fit_technique(14) == "fit 14 KB"
    for old in ("fit 14 KB", "fit 2.5 KB", charts.fit_technique(1e6)):  # labels saved before, and now
        assert store.technique_group(old) == charts.technique_group(old) == store.FIT
    for other in ("prune+finetune1", "prune+cluster+huffman", "student (labels only)", "fit"):
        assert store.technique_group(other) == other
    # the store's own default (a run saved without a technique) is the same label
    row = store._validate("m", FINETUNED, {"params": 1, "nonzero_params": 1, "artifact_bytes": 1, "ratio": 1.0,
                                           "accuracy": 0.5}, None, None)
    assert row["technique"] == "prune+finetune1"


def _export_save(budget_kb, tmp_path, monkeypatch):
    """Export replays FINETUNED (its trained result kept, as a Fit keeps its own) and saves it -> the run's label."""
    monkeypatch.setenv("COMPRESS_STORE", str(tmp_path / "runs.sqlite"))
    keeper = AppTest.from_string(
        "import dataclasses\nimport compress_engine as ce\nfrom pages import common\n"
        "name = 'lenet-300-100'\n"
        "res = ce.compress(common.model(name), ce.Recipe(sparsity=0.5), common.dataset())\n"
        f"keep = common.keep_under_recipe(name{'' if budget_kb is None else f', budget_kb={budget_kb}'})\n"
        "keep(dataclasses.replace(res, recipe=ce.Recipe(sparsity=0.5, finetune_epochs=1)))\n",
        default_timeout=120).run()
    assert not keeper.exception, [e.value for e in keeper.exception]
    at = page("export")
    at.session_state["export_uploaded_recipe"] = ("fit.json", FINETUNED.to_json())
    at.run()
    at.button(key="export_save").click().run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    rows = store.Store().list()
    assert len(rows) == 1
    return rows[0]["technique"]


def test_export_saves_a_finetuned_recipe_with_its_finetune(tiny, tmp_path, monkeypatch):
    """Export saved a fine-tuned recipe as 'prune', where Pruning and Pipeline said 'prune+finetune1'."""
    assert _export_save(None, tmp_path, monkeypatch) == "prune+finetune1"


def test_a_fit_replayed_through_export_keeps_its_label(tiny, tmp_path, monkeypatch):
    """A Fit's result kept under its recipe (its budget with it), replayed on Export, is saved as the Fit."""
    assert _export_save(14, tmp_path, monkeypatch) == "fit 14 KB"
