"""AppTests of hostile and broken input on every page: the page shows the engine's message with st.error
(or st.info for a stop) and never an exception block.

- the dataset missing or corrupt (pages.common.DATASET pointed at a broken IDX folder), on every page;
- the run store unusable or damaged by another program, on Compare;
- recipe uploads on Export that are not recipes (NaN, unknown fields, wrong types, 1e308, deep nesting,
  other encodings, too big);
- every technique page driven to the ends of its sliders and inputs;
- training that is stopped or fails half-way (the engine's fit patched to raise): a message, no row in
  the run store, and the next run of the page works.

Training and the slider sweeps run on the tiny IDX slice of Fashion-MNIST (conftest's `tiny`).
"""

import re
import sqlite3
import struct

import numpy as np
import pytest
from test_app import app, metric, number

import compress_engine as ce
from compress_engine.core import pipeline, train
from compress_engine.playground.store import Store
from conftest import plots

PAGES = ["home", "pruning", "clustering", "quantization", "distillation", "pipeline", "compare", "export"]


def at_page(name, model=None):
    """Run pages/<name>.py inside app.py (like test_app.page, but leaves the exception check to the test)."""
    at = app()
    if model:
        at.session_state["model"] = model
    return at.switch_page(f"pages/{name}.py").run()


def errors(at):
    """The error boxes' texts as shown: the pages backslash-escape user text (common.md_text), Markdown undoes it; the
    invisible word joiners md_text puts in a URL so it is no link are not seen."""
    return [re.sub(r"\\(.)", r"\1", e.value).replace("\u2060", "") for e in at.error]


def assert_clean(at):
    assert not at.exception, [e.value for e in at.exception]


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESS_STORE", str(tmp_path / "runs.sqlite"))
    return Store()


# --- training stopped or failing half-way ----------------------------------------------------------

# RESTORE: each test below puts the real training back by leaving a monkeypatch.context(), not monkeypatch.undo():
# undo() also took back the tiny fixture's data and the test's trained-results folder and run store, so the run that
# "works the next time" fine-tuned on all 60,000 images (4-6 s, where the tiny slice takes well under one) and kept
# its result in the user's folder, where a later test could find it.

def stop_fit(*args, **kwargs):
    raise train.Stopped("stopped by the user")


def broken_fit(*args, **kwargs):
    raise RuntimeError("simulated failure: out of memory in the middle of an epoch")


@pytest.mark.parametrize("failure", [stop_fit, broken_fit], ids=["stopped", "crashed"])
def test_pipeline_training_stopped_or_failed_keeps_nothing_and_recovers(tiny, store, monkeypatch, failure):
    at = at_page("pipeline")
    assert_clean(at)
    at.slider(key="pipe_epochs").set_value(1).run()
    oneshot = number(metric(at, "Test accuracy"))
    with monkeypatch.context() as m:  # the failing fit only: tiny's data and the test's folders stay (see RESTORE)
        m.setattr(pipeline, "fit", failure)
        at.button(key="pipe_train").click().run()
    assert_clean(at)
    if failure is stop_fit:
        assert any("Stopped" in i.value and "nothing" in i.value for i in at.info)
    else:
        assert any("simulated failure" in e and "Fine-tuning failed" in e for e in errors(at)), errors(at)
    assert not at.session_state["trained"]  # nothing half-done kept in the session...
    assert store.count() == 0               # ...nor in the run store
    assert number(metric(at, "Test accuracy")) == oneshot  # the page still shows the post-training result
    assert at.button(key="pipe_train")      # and offers the run again

    at.button(key="pipe_train").click().run()  # the next run works
    assert_clean(at)
    assert not at.error and any(c.value.startswith("Fine-tuned 1 epoch") for c in at.caption)
    at.button(key="pipe_save").click().run()
    assert_clean(at)
    assert store.count() == 1 and store.list()[0]["technique"].endswith("+finetune1")


def test_distillation_training_failure_keeps_nothing_and_recovers(tiny, store, monkeypatch):
    from compress_engine.core import distill
    at = at_page("distillation")
    at.select_slider(key="distill_width").set_value(10)
    at.slider(key="distill_epochs").set_value(1).run()
    with monkeypatch.context() as m:  # see RESTORE
        m.setattr(distill, "fit", broken_fit)
        at.button(key="distill_train").click().run()
    assert_clean(at)
    assert any("Student without KD failed" in e and "simulated failure" in e for e in errors(at)), errors(at)
    assert not at.session_state["trained"] and store.count() == 0
    assert at.button(key="distill_train")
    at.button(key="distill_train").click().run()
    assert_clean(at)
    assert not at.error and len(at.session_state["trained"]) == 2 and metric(at, "Test accuracy")


def test_export_training_failure_keeps_nothing_and_recovers(tiny, store, monkeypatch):
    recipe = ce.Recipe(sparsity=0.6, bits=5, finetune_epochs=1)
    at = at_page("export").file_uploader(key="recipe_upload").upload("r.json", recipe.to_json().encode()).run()
    assert_clean(at)
    run_button = next(b for b in at.button if b.label.startswith("Run this recipe"))
    with monkeypatch.context() as m:  # see RESTORE
        m.setattr(pipeline, "fit", stop_fit)
        at = run_button.click().run()
    assert_clean(at)
    assert any(i.value.startswith("Stopped: nothing") for i in at.info)
    assert not at.session_state["trained"] and store.count() == 0
    at = next(b for b in at.button if b.label.startswith("Run this recipe")).click().run()
    assert_clean(at)
    assert not at.error and metric(at, "Test accuracy")
    assert at.get("download_button")[0].label.startswith("Download artifact")


def test_pruning_fine_tune_failure_is_a_message(tiny, store, monkeypatch):
    at = at_page("pruning")
    at.slider(key="prune_sparsity").set_value(77).run()  # a setting no other test trains (nothing cached)
    with monkeypatch.context() as m:  # see RESTORE
        m.setattr(pipeline, "fit", broken_fit)
        at.toggle(key="prune_finetune").set_value(True).run()
    assert_clean(at)
    assert any(e.startswith("Fine-tuning 1 epoch failed") and "simulated failure" in e for e in errors(at)), errors(at)
    assert store.count() == 0
    at.run()
    assert_clean(at)
    assert not at.error and metric(at, "Test accuracy")


# --- the dataset missing or broken: every page says so ----------------------------------------------

def _broken_dataset(kind, folder, fmnist):
    from conftest import pixels, write_idx
    if kind == "missing folder":
        return f"idx:{folder / 'nowhere'}"
    folder.mkdir()
    if kind == "empty folder":
        return f"idx:{folder}"
    write_idx(folder / "train-images-idx3-ubyte", pixels(fmnist, "train", 64))
    write_idx(folder / "train-labels-idx1-ubyte", fmnist.y("train")[:64].numpy())
    write_idx(folder / "t10k-images-idx3-ubyte", pixels(fmnist, "test", 32))
    write_idx(folder / "t10k-labels-idx1-ubyte", fmnist.y("test")[:32].numpy())
    if kind == "truncated file":
        p = folder / "t10k-images-idx3-ubyte"
        p.write_bytes(p.read_bytes()[:-500])
    elif kind == "labels out of 0-9":
        write_idx(folder / "t10k-labels-idx1-ubyte", np.full(32, 42))
    elif kind == "wrong magic":
        p = folder / "train-labels-idx1-ubyte"
        p.write_bytes(struct.pack(">I", 0x0D01) + p.read_bytes()[4:])
    return f"idx:{folder}"


BROKEN_DATA = {"missing folder": "does not exist", "empty folder": "lacks train-images-idx3-ubyte(.gz)",
               "truncated file": "truncated", "labels out of 0-9": "label 42 is out of range",
               "wrong magic": "bad magic number"}


@pytest.mark.parametrize("kind", list(BROKEN_DATA))
@pytest.mark.parametrize("name", [p for p in PAGES if p != "compare"])
def test_broken_dataset_is_an_error_on_every_page(fmnist, tmp_path, monkeypatch, store, name, kind):
    from pages import common
    monkeypatch.setattr(common, "DATASET", _broken_dataset(kind, tmp_path / "data", fmnist))
    at = at_page(name)
    assert_clean(at)
    msgs = errors(at)
    assert msgs and msgs[0].startswith("Cannot load the dataset:") and BROKEN_DATA[kind] in msgs[0], msgs
    assert str(tmp_path / "data") in msgs[0], msgs  # the folder it names is the user's own, so no apt-get
    assert "apt-get" not in msgs[0] and ("replace it" in msgs[0] or kind not in ("truncated file", "wrong magic"))


def test_compare_needs_no_dataset(fmnist, tmp_path, monkeypatch, store):
    from pages import common
    monkeypatch.setattr(common, "DATASET", f"idx:{tmp_path / 'nowhere'}")
    at = at_page("compare")
    assert_clean(at)
    assert not at.error and "No saved runs yet" in at.info[0].value


# --- the run store unusable or damaged, on Compare --------------------------------------------------

def _bad_store(kind, tmp_path):
    path = tmp_path / "runs.sqlite"
    if kind == "a folder":
        path.mkdir()
    elif kind == "text file":
        path.write_bytes(b"this is not a database, just some text " * 100)
    elif kind == "SQLite header, garbage body":
        path.write_bytes(b"SQLite format 3\0" + bytes(range(256)) * 64)
    elif kind == "another program's database":
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE notes (x)")
    elif kind == "a newer store version":
        Store(path)
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA user_version = 99")
    elif kind == "inside a file, not a folder":
        (tmp_path / "file").write_text("x")
        path = tmp_path / "file" / "runs.sqlite"
    return path


BAD_STORES = {"a folder": "is a folder", "text file": "not a usable run store",
              "SQLite header, garbage body": "not a usable run store",
              "another program's database": "not a run store", "a newer store version": "user_version=99",
              "inside a file, not a folder": "cannot create the run store's folder"}


@pytest.mark.parametrize("kind", list(BAD_STORES))
def test_compare_unusable_store_is_an_error(fmnist, tmp_path, monkeypatch, kind):
    path = _bad_store(kind, tmp_path)
    monkeypatch.setenv("COMPRESS_STORE", str(path))
    at = at_page("compare")
    assert_clean(at)
    msgs = errors(at)
    assert len(msgs) == 1 and msgs[0].startswith("Cannot open the run store:"), msgs
    assert BAD_STORES[kind] in msgs[0] and "COMPRESS_STORE" in msgs[0], msgs


def _metrics(size=100):
    return {"params": 100, "nonzero_params": 50, "artifact_bytes": size, "ratio": 4.0, "accuracy": 0.8,
            "dense_accuracy": 0.9, "layers": [{"name": "fc.weight", "shape": [10, 10], "params": 100, "nonzero": 50}]}


DAMAGE = {  # a row another program wrote into the store: SQL applied to run #2
    "recipe not JSON": "UPDATE runs SET recipe = '{not json' WHERE id = 2",
    "recipe with unknown field": "UPDATE runs SET recipe = '{\"pruning\": 0.5}' WHERE id = 2",
    "recipe nested 10k deep": "UPDATE runs SET recipe = '" + "[" * 10_000 + "]" * 10_000 + "' WHERE id = 2",
    "recipe a number": "UPDATE runs SET recipe = 7 WHERE id = 2",
    "accuracy text": "UPDATE runs SET accuracy = 'high' WHERE id = 2",
    "accuracy NaN-like": "UPDATE runs SET accuracy = 1e999 WHERE id = 2",
    "metrics not JSON": "UPDATE runs SET metrics = '{oops' WHERE id = 2",
    "metrics a list": "UPDATE runs SET metrics = '[1, 2]' WHERE id = 2",
    "metrics odd layers": "UPDATE runs SET metrics = '{\"layers\": [1, {\"name\": 3}], \"bytes_breakdown\": 5}' "
                          "WHERE id = 2",
    "artifact row gone": "DELETE FROM artifacts WHERE run_id = 2",
}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_compare_survives_rows_damaged_by_another_program(fmnist, store, kind):
    for i in range(3):
        store.save("lenet-300-100", ce.Recipe(sparsity=0.1 * i), _metrics(), b"x" * 100)
    with sqlite3.connect(store.path) as conn:
        conn.execute(DAMAGE[kind])
    at = at_page("compare")
    assert_clean(at)
    assert len(at.dataframe[0].value) == 3  # every run still listed
    if kind.startswith("recipe"):
        assert any(s.startswith("unreadable recipe") for s in at.dataframe[0].value["summary"])
    # select the damaged run (and a good one) for the side-by-side view
    table = at.dataframe[0]
    rows = [i for i, run_id in enumerate(table.value["id"]) if run_id in (1, 2)]
    at.session_state[table.key] = {"selection": {"rows": rows, "columns": [], "cells": []}}
    at.run()
    assert_clean(at)
    if kind.startswith("metrics not") or kind == "metrics a list":
        assert any("run #2" in e and "unreadable metrics" in e for e in errors(at)), errors(at)
    else:
        assert not at.error and at.table
    # the damaged run can still be deleted
    at = next(b for b in at.button if b.label.startswith("Delete selected")).click().run()
    at = next(b for b in at.button if b.label == "Yes, delete").click().run()
    assert_clean(at)
    assert store.count() == 1


# --- recipe uploads on Export that are not recipes -------------------------------------------------

BAD_RECIPES = {  # file content -> words of the error
    "NaN": (b'{"sparsity": NaN}', "sparsity=nan: must be a finite number"),
    "Infinity": (b'{"lr": Infinity}', "lr=inf: must be a finite number"),
    "-Infinity": (b'{"alpha": -Infinity}', "must be a finite number"),
    "1e308": (b'{"sparsity": 1e308}', "sparsity=1e+308: must be between 0.0 and 0.999"),
    "1e999 (inf)": (b'{"temperature": 1e999}', "temperature=inf: must be a finite number"),
    "-1e308": (b'{"lr": -1e308}', "must be between 1e-06 and 1.0"),
    "5000-digit integer": (b'{"seed": ' + b"9" * 5000 + b"}", "a whole number of 5,000 digits"),
    "unknown field": (b'{"pruning": 0.5}', "unknown recipe field"),
    "many unknown fields": (b'{"zz_a": 1, "zz_b": 2, "sparsity": 0.5}', "zz_b"),
    "sparsity as text": (b'{"sparsity": "0.5"}', "sparsity='0.5': must be a number"),
    "clusters as bool": (b'{"clusters": true}', "clusters=True: must be a number"),
    "bits as list": (b'{"bits": [4]}', "bits=[4]: must be a number"),
    "huffman as 1": (b'{"huffman": 1}', "huffman=1: must be true or false"),
    "scope as null": (b'{"prune_scope": null}', "prune_scope=None: must be one of layer, global"),
    "object as value": (b'{"sparsity": {"value": 0.5}}', "must be a number"),
    "clusters 4.5": (b'{"clusters": 4.5}', "clusters=4.5: must be a whole number"),
    "bits 9": (b'{"bits": 9}', "bits=9: must be one of 1-8 or 16"),
    "clusters and bits": (b'{"clusters": 16, "bits": 4}', "choose weight clustering or uniform quantization"),
    "structured + global": (b'{"sparsity": 0.5, "structured": true, "prune_scope": "global"}',
                            "use prune_scope='layer'"),
    "deeply nested array": (b"[" * 30_000 + b"]" * 30_000, "nested too deeply"),  # 60 KB: under the size limit
    "deep inside a field": (b'{"sparsity": ' + b"{\"a\": " * 9_000 + b"1" + b"}" * 9_001, "nested too deeply"),
    "a list": (b"[1, 2]", "a recipe must be a JSON object"),
    "null": (b"null", "a recipe must be a JSON object of fields, got NoneType"),
    "a number": (b"0.9", "a recipe must be a JSON object of fields, got float"),
    "a string": (b'"sparsity=0.9"', "a recipe must be a JSON object of fields, got str"),
    "empty file": (b"", "not valid JSON"),
    "trailing garbage": (b'{"sparsity": 0.5} extra', "not valid JSON"),
    "Python dict syntax": (b"{'sparsity': 0.5}", "not valid JSON"),
    "not UTF-8": (b"\xff\xfe\x00\x01", "is not UTF-8 text"),
    "UTF-16 with BOM": ('{"sparsity": 0.5}'.encode("utf-16"), "is not UTF-8 text"),
    "Latin-1 text": ('{"sparsity": 0.5, "note": "café"}'.encode("latin-1"), "is not UTF-8 text"),
    "NUL bytes": (b'{"sparsity"\x00: 0.5}', "not valid JSON"),
    "over 64 KB": (b'{"sparsity": 0.5' + b" " * (65 << 10) + b"}", "a recipe JSON is under 64 KB"),
}


@pytest.mark.parametrize("case", list(BAD_RECIPES))
def test_export_refuses_every_bad_recipe_upload(fmnist, store, case):
    content, words = BAD_RECIPES[case]
    at = at_page("export").file_uploader(key="recipe_upload").upload("recipe.json", content).run()
    assert_clean(at)
    msgs = errors(at)
    assert len(msgs) == 1 and words in msgs[0], msgs
    assert not at.get("download_button")  # nothing made from a bad recipe
    assert store.count() == 0


def test_export_accepts_a_recipe_with_a_byte_order_mark(fmnist, store):
    content = b"\xef\xbb\xbf" + ce.Recipe(sparsity=0.9, clusters=4).to_json().encode()
    at = at_page("export").file_uploader(key="recipe_upload").upload("recipe.json", content).run()
    assert_clean(at)
    assert not at.error and "sparsity=90 %, clusters=4" in re.sub(r"\\(.)", r"\1", at.success[0].value)


def test_export_long_upload_name_is_cut(fmnist, store):
    at = at_page("export").file_uploader(key="recipe_upload").upload("r" * 500 + ".json", b"{oops").run()
    assert_clean(at)
    assert len(errors(at)[0]) < 400 and "not valid JSON" in errors(at)[0]


# --- every control at the ends of its range ---------------------------------------------------------

EXTREMES = {  # page -> states, each a list of (widget kind, key, value) set before one run
    "pruning": [
        [("slider", "prune_sparsity", 99), ("toggle", "prune_structured", True)],
        [("toggle", "prune_structured", False)],
        [("radio", "prune_scope", "global")],
        [("slider", "prune_sparsity", 0), ("toggle", "prune_finetune", True)],
        [("slider", "prune_sparsity", 99), ("selectbox", "prune_mask_layer", "layers.2.weight")],
    ],
    "clustering": [
        [("select_slider", "cluster_k", 256), ("slider", "cluster_sparsity", 99)],  # fewer weights than clusters
        [("radio", "cluster_init", "kmeans++"), ("toggle", "cluster_huffman", True)],
        [("radio", "cluster_init", "density"), ("select_slider", "cluster_k", 2), ("slider", "cluster_sparsity", 0)],
    ],
    "quantization": [
        [("select_slider", "quant_bits", 16), ("radio", "quant_per_channel", True),
         ("radio", "quant_calibration", "mse")],
        [("radio", "quant_symmetric", True), ("select_slider", "quant_bits", 1)],  # 1 bit turns the grid affine
        [("select_slider", "quant_bits", 2)],
    ],
    "distillation": [
        [("select_slider", "distill_width", 800), ("slider", "distill_T", 20.0), ("slider", "distill_alpha", 1.0),
         ("slider", "distill_epochs", 10), ("number_input", "distill_image", 499)],
        [("select_slider", "distill_width", 10), ("slider", "distill_T", 1.0), ("slider", "distill_alpha", 0.0),
         ("slider", "distill_epochs", 1), ("number_input", "distill_image", 0)],
        [("button", "distill_train", "click")],  # at alpha = 0 the labels-only 10-10 student alone (bd1a10f)
    ],
    "pipeline": [
        [("slider", "pipe_sparsity", 99), ("radio", "pipe_scope", "global"), ("select_slider", "pipe_clusters", 256)],
        [("radio", "pipe_sharing", "quantize"), ("slider", "pipe_sparsity", 0)],
        [("select_slider", "pipe_bits", 1)],
        [("select_slider", "pipe_bits", 16), ("slider", "pipe_sparsity", 99)],
        [("radio", "pipe_sharing", "none"), ("toggle", "pipe_huffman", False), ("slider", "pipe_epochs", 10)],
        [("button", "pipe_train", "click")],  # 10 epochs of fine-tuning at 99 % sparsity
    ],
    "export": [
        [("slider", "export_sparsity", 0.999), ("slider", "export_clusters", 256)],
        [("slider", "export_clusters", 2), ("toggle", "export_huffman", False)],
        [("radio", "export_sharing", "uniform bits"), ("slider", "export_sparsity", 0.0)],
        [("select_slider", "export_bits", 16)],
        [("select_slider", "export_bits", 1)],
        [("radio", "export_sharing", "none")],
    ],
}
TRAINED = {("distillation", 2): lambda at: len([m for m in at.metric if m.label == "Test errors (of 500)"]) == 1,
           ("pipeline", 5): lambda at: any(c.value.startswith("Fine-tuned 10 epochs") for c in at.caption)}


@pytest.mark.parametrize("name", list(EXTREMES))
def test_every_control_at_its_ends(tiny, store, name):
    at = at_page(name)
    assert_clean(at)
    for i, state in enumerate(EXTREMES[name]):
        for kind, key, value in state:
            widget = getattr(at, kind)(key=key)
            widget.click() if value == "click" else widget.set_value(value)
        at.run()
        assert_clean(at)
        assert not at.error, (state, errors(at))
        assert plots(at), state
        assert TRAINED.get((name, i), lambda at: True)(at), state


def test_an_engine_error_quoting_user_text_is_shown_literally(fmnist, store, monkeypatch):
    """An engine message quotes names from the user's files (an upload's layer names): shown as Markdown, a name
    '![x](https://evil.invalid/x.png)' became an image fetched from outside and ':red[**x**]' lost its characters."""
    import streamlit as st_mod
    from pages import common
    said = "layer '![x](https://evil.invalid/x.png) :red[**x**]' cannot be compressed"

    def refuse(*args, **kw):
        raise ce.ModelError(said)
    monkeypatch.setattr(common.ce.curves, "compress", refuse)
    monkeypatch.setattr(common.ce, "compress", refuse)
    st_mod.cache_data.clear()
    at = at_page("clustering")
    assert_clean(at)
    assert [e.value for e in at.error] == [common.md_text(said)] and errors(at) == [said]
