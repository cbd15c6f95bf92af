"""AppTests of the Compare and Export pages (and common.save_button), on a temporary run store
(COMPRESS_STORE in tmp_path) seeded with real compress() runs of LeNet-300-100 on Fashion-MNIST."""

import json
import random
import re

import pytest
from test_app import ROOT, app, plotly_values

import compress_engine as ce
from compress_engine.playground.store import Store, pareto_front
from pages import common
from conftest import plots

RECIPES = [ce.Recipe(), ce.Recipe(sparsity=0.5, clusters=16, huffman=True), ce.Recipe(sparsity=0.9, clusters=4),
           ce.Recipe(bits=4, huffman=True)]


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESS_STORE", str(tmp_path / "runs.sqlite"))
    return Store()


@pytest.fixture(scope="module")
def results(fmnist, lenet300):
    return [ce.compress(lenet300, r, fmnist) for r in RECIPES]


@pytest.fixture
def seeded(store, results):
    return [store.save("lenet-300-100", res.recipe, res.metrics, res.artifact) for res in results]


def compare():
    return app().run().switch_page("pages/compare.py").run()


def export():
    return app().run().switch_page("pages/export.py").run()


def metric(at, label):
    return next(m.value for m in at.metric if m.label == label)


# --- Compare -------------------------------------------------------------------------------------

def test_compare_empty_store(store, fmnist):
    at = compare()
    assert not at.exception
    assert "No saved runs yet" in at.info[0].value and str(store.path) in at.info[0].value
    # the benchmark's points are on the chart before any run is saved: the ones the radio picks, each labelled
    from compress_engine.playground import store as runstore
    from compress_engine.playground import viz
    refs = runstore.reference_points(ROOT / "bench" / "results")
    assert refs, "bench/results ships the reference CSVs"
    assert len(plots(at)) == 1  # the first set, as the page opens
    for choice in list(viz.REFERENCE_SETS) + ["none"]:
        at.radio(key="compare_refs").set_value(choice).run()
        assert not at.exception
        charts = plots(at)
        if choice == "none":
            assert not charts
            continue
        traces = json.loads(charts[0])["data"]
        expect = viz.reference_series(refs, choice)
        assert [t["name"] for t in traces] == [f"bench: {e['name']}" for e in expect]
        assert [t["text"] for t in traces] == [e["labels"] for e in expect]
        assert [[100 * a for a in e["accuracy"]] for e in expect] == [t["y"] for t in traces]


def test_compare_table_and_pareto_chart_show_the_seeded_runs(seeded, results):
    at = compare()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert sorted(table["id"]) == sorted(seeded)
    assert at.header[0].value == "4 saved runs"
    # the frontier column agrees with pareto_front over the same (bytes, accuracy)
    expect = pareto_front(list(zip(table["artifact_bytes"], table["accuracy"])))
    assert list(table.index[table["pareto"]]) == sorted(expect)
    spec = json.loads(plots(at)[0])
    names = [t.get("name") for t in spec["data"]]
    assert "Pareto frontier" in names
    assert spec["layout"]["xaxis"]["type"] == "log" and "KB" in spec["layout"]["xaxis"]["title"]["text"]
    assert [b.label for b in at.get("download_button")] == ["Download CSV"]
    assert "Select runs" in at.info[0].value  # nothing selected yet


def select(at, rows):
    at.session_state[at.dataframe[0].key] = {"selection": {"rows": rows, "columns": [], "cells": []}}
    return at.run()


def test_zeros_are_a_runs_own_not_the_units_structured_pruning_removed(store, fmnist, lenet300):
    """A structured-pruned run has every weight it keeps non-zero: Compare read 64.0 % "Zeros" for one (the engine's
    sparsity counts against the dense model) and 0.0 % in every layer of its chart beside it."""
    res = ce.compress(lenet300, ce.Recipe(structured=True, sparsity=0.5), fmnist)
    m = res.metrics
    assert m["params"] < m["dense_params"] and m["sparsity"] > 0.4  # what the column used to show
    store.save("lenet-300-100", res.recipe, m, res.artifact)
    at = select(compare(), [0])
    table = at.dataframe[0].value
    zero = 100 * (1 - m["nonzero_params"] / m["params"])
    assert table["sparsity_pct"][0] == pytest.approx(zero) and zero < 20
    side = at.table[0].value
    assert side.loc["Zero weights"].iloc[0] == f"{zero:.2f} %"
    assert "None" not in at.dataframe[1].value.to_string()


def test_compare_side_by_side(seeded):
    at = select(compare(), [0, 1])
    assert not at.exception
    ids = list(at.dataframe[0].value["id"][:2])
    side = at.table[0].value
    techniques = at.dataframe[0].value["technique"][:2]
    assert list(side.columns) == [common.md_text(f"#{i} {t}") for i, t in zip(ids, techniques)]  # st.table: Markdown
    assert {"Test accuracy", "Artifact size", "Recipe", "Zero weights"} <= set(side.index)
    layers = at.dataframe[1].value
    assert list(layers.index) == ["layers.0.weight", "layers.1.weight", "layers.2.weight"]
    charts = plots(at)
    assert len(charts) == 2 and "selected" in [t.get("name") for t in json.loads(charts[0])["data"]]
    assert len(at.get("download_button")) == 3  # CSV + one artifact per selected run


def test_compare_delete_with_confirmation(seeded, store):
    at = select(compare(), [0])
    victim = int(at.dataframe[0].value["id"][0])
    delete = next(b for b in at.button if b.label.startswith("Delete selected"))
    assert delete.label == "Delete selected (1)"
    at = delete.click().run()
    assert f"#{victim}" in at.warning[0].value and store.count() == 4  # asks first
    at = next(b for b in at.button if b.label == "Cancel").click().run()
    assert not at.warning and store.count() == 4
    at = select(at, [0])
    at = next(b for b in at.button if b.label.startswith("Delete selected")).click().run()
    at = next(b for b in at.button if b.label == "Yes, delete").click().run()
    assert not at.exception
    assert store.count() == 3 and store.get(victim) is None
    assert at.success[0].value == "Deleted 1 run."
    assert victim not in list(at.dataframe[0].value["id"]) and len(at.dataframe[0].value) == 3


def test_a_tick_stays_on_its_run_when_another_tab_saves_or_the_models_shown_change(seeded, store, results):
    """Ticks were row positions: a run saved in another tab became row 0, the tick moved onto it, and "Delete
    selected" offered to delete the run never chosen. They now follow the run."""
    store.save("lenet-5", results[0].recipe, results[0].metrics, results[0].artifact)  # row 0, above the ticked
    at = select(compare(), [1])
    ticked = int(at.dataframe[0].value["id"][1])
    newer = store.save("lenet-300-100", results[1].recipe, results[1].metrics, results[1].artifact)  # "another tab"
    at.run()
    assert int(at.dataframe[0].value["id"][0]) == newer  # rows moved down one
    side = list(at.table[0].value.columns)
    assert len(side) == 1 and side[0].startswith(common.md_text(f"#{ticked} "))  # side by side: still the ticked run
    at = next(b for b in at.button if b.label.startswith("Delete selected")).click().run()
    assert f"Delete run #{ticked}?" in at.warning[0].value
    at = next(b for b in at.button if b.label == "Cancel").click().run()
    at.multiselect(key="compare_models").set_value(["lenet-300-100"]).run()  # lenet-5's run hidden: rows move up
    side = list(at.table[0].value.columns)
    assert len(side) == 1 and side[0].startswith(common.md_text(f"#{ticked} "))


def test_every_model_has_its_own_marker_shape_whichever_are_shown(store, results, fmnist):
    """Plotly Express cycles 5 marker shapes: a sixth model's runs were drawn as the first one's circles, in the
    same colour for the same technique. Each model now keeps one shape of its own, also when others are hidden."""
    names = [f"upload-m{i}" for i in range(7)]
    for name in names:
        store.save(name, results[0].recipe, results[0].metrics, results[0].artifact)

    def shapes(at):
        traces = json.loads(plots(at)[0])["data"]
        return {t["legendgroup"].split(", ")[-1]: t["marker"]["symbol"] for t in traces if t.get("legendgroup")}

    at = compare()
    every = shapes(at)
    assert sorted(every) == names and len(set(every.values())) == 7
    at.multiselect(key="compare_models").set_value(names[3:]).run()
    assert shapes(at) == {n: every[n] for n in names[3:]}


def test_a_model_first_saved_in_another_tab_is_shown_and_a_hidden_one_stays_hidden(seeded, store, results):
    """The Models choice kept what it had: a run of a new model saved in another tab while Compare was open stayed
    off the table and chart until the user added its model by hand."""
    at = compare()
    assert at.multiselect(key="compare_models").value == ["lenet-300-100"]
    store.save("lenet-5", results[0].recipe, results[0].metrics, results[0].artifact)  # "another tab"
    at.run()
    assert at.multiselect(key="compare_models").value == ["lenet-300-100", "lenet-5"]
    assert "lenet-5" in set(at.dataframe[0].value["model"])
    at.multiselect(key="compare_models").set_value(["lenet-5"]).run()  # the user hides one: it stays hidden
    newest = store.save("resnet-8", results[0].recipe, results[0].metrics, results[0].artifact)
    at.run()
    assert at.multiselect(key="compare_models").value == ["lenet-5", "resnet-8"]
    store.delete([newest])  # its only run gone: the model leaves the choice, without an error
    at.run()
    assert not at.exception and at.multiselect(key="compare_models").value == ["lenet-5"]


def test_renaming_a_run_another_tab_deleted_says_so(seeded, store):
    at = select(compare(), [0])
    run_id = int(at.dataframe[0].value["id"][0])
    store.delete([run_id])  # "another tab"
    at.text_input[0].input("demo")
    at = next(b for b in at.get("form_submit_button") if b.label == "Rename").click().run()
    assert not at.exception and f"Run #{run_id} was not renamed" in at.warning[0].value
    assert not at.success


def test_compare_corrupt_store_is_an_error_not_a_traceback(tmp_path, monkeypatch, fmnist):
    bad = tmp_path / "runs.sqlite"
    bad.write_bytes(b"garbage " * 1000)
    monkeypatch.setenv("COMPRESS_STORE", str(bad))
    at = compare()
    assert not at.exception
    assert str(bad) in at.error[0].value and "COMPRESS_STORE" in at.error[0].value


# --- Export --------------------------------------------------------------------------------------

def test_export_renders_and_sparsity_moves_the_metrics(store, fmnist):
    at = export()
    assert not at.exception and not at.error
    nz, size = metric(at, "Non-zero parameters"), metric(at, "Artifact size")
    labels = [b.label for b in at.get("download_button")]
    assert labels[0].startswith("Download artifact") and labels[1] == "Download recipe (.json)"
    assert at.slider(key="export_sparsity").value == 50.0  # a percentage, as on every other page
    at = at.slider(key="export_sparsity").set_value(90.0).run()
    assert not at.exception
    assert int(metric(at, "Non-zero parameters").replace(",", "")) < int(nz.replace(",", ""))
    assert float(metric(at, "Artifact size").split()[0].replace(",", "")) < float(size.split()[0].replace(",", ""))
    at = at.radio(key="export_sharing").set_value("uniform bits").run()
    assert not at.exception and at.select_slider(key="export_bits").value == 4


def test_export_save_button_writes_a_run(store, fmnist):
    at = export()
    at = at.button(key="export_save").click().run()
    assert not at.exception and store.count() == 1
    run = store.list()[0]
    assert run["technique"] == "prune+cluster+huffman" and "Saved run" in at.toast[0].value
    assert ce.Recipe.from_json(run["recipe"]) == ce.Recipe(sparsity=0.5, prune_scope="global", clusters=16, huffman=True)
    assert store.get(run["id"])["artifact"][:4] == b"CPG1"


def test_exports_python_line_loads_the_downloaded_artifact(store, fmnist, tmp_path, monkeypatch):
    """The caption under the downloads says how to load the artifact in Python; run as written, on the file as the
    page names it, it rebuilds the model the page measured. A deployment review pasted it into a fresh Python and got
    NameError: name 'compress_engine' is not defined."""
    import re
    at = export()
    caption = next(c.value for c in at.caption if "decode_model" in c.value)
    stem = re.search(r"compress_engine eval (\S+)\.cpg", caption).group(1)
    line = re.search(r"`(import compress_engine; model, meta = [^`]+)`", caption).group(1)
    at = at.button(key="export_save").click().run()
    run = store.get(store.list()[0]["id"])
    (tmp_path / f"{stem}.cpg").write_bytes(run["artifact"])
    monkeypatch.chdir(tmp_path)
    scope = {}  # pasted into a fresh interpreter: the line imports what it uses (it once assumed compress_engine)
    exec(line, scope)
    model = scope["model"]
    assert ce.param_count(model) == run["metrics"]["params"]
    assert sum(int((p != 0).sum()) for p in model.parameters()) == run["metrics"]["nonzero_params"]


def upload_artifact(at, data, name="model.cpg"):
    return at.file_uploader(key="artifact_upload").upload(name, data).run()


def test_export_upload_good_artifact_shows_its_accuracy(store, results):
    res = results[1]
    at = upload_artifact(export(), res.artifact)
    assert not at.exception and not at.error
    check = at.tabs[1]  # "Check an artifact" (the first tab makes one from the page's own recipe)
    assert metric(check, "Test accuracy") == f"{100 * res.metrics['accuracy']:.2f} %"
    assert metric(check, "Parameters") == f"{res.metrics['params']:,}"
    assert metric(check, "Non-zero parameters") == f"{res.metrics['nonzero_params']:,}"
    assert "sparsity=50 %, clusters=16, huffman=True" in literal("".join(m.value for m in at.markdown))
    assert any(json.loads(c.value) == res.recipe.to_dict() for c in at.code if c.language == "json")


@pytest.mark.parametrize("sidebar", ["lenet-300-100", "lenet-5"])
def test_export_check_names_the_artifacts_own_model(store, results, sidebar):
    """The score is the artifact's model's (a LeNet-300-100 artifact), whatever the sidebar holds: the caption
    names that model from the header and says when the sidebar's is another."""
    at = app()
    at.session_state["model"] = sidebar
    at = upload_artifact(at.switch_page("pages/export.py").run(), results[1].artifact)
    assert not at.exception and not at.error
    captions = [literal(c.value) for c in at.tabs[1].caption]
    mine = [c for c in captions if c.startswith("Model: **MLP 784-300-100-10** (from the artifact's header)")]
    assert len(mine) == 1, captions
    if sidebar == "lenet-300-100":
        assert "the architecture of the sidebar's lenet-300-100" in mine[0]
    else:
        assert "not the sidebar's lenet-5 (LeNet-5 with widths 20-50-500)" in mine[0]


@pytest.mark.parametrize("mangle", ["truncated", "header", "random", "empty", "text"])
def test_export_upload_bad_artifact_shows_the_engine_error(store, results, mangle):
    art = results[1].artifact
    rng = random.Random(1)
    data = {"truncated": art[:len(art) // 2], "header": art[:6] + b"\xff\xff" + art[8:],
            "random": bytes(rng.getrandbits(8) for _ in range(5000)), "empty": b"",
            "text": b'{"sparsity": 0.9}'}[mangle]
    at = upload_artifact(export(), data)
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("This file is not a valid artifact:")
    with pytest.raises(ce.ArtifactError) as e:
        ce.decode(data)
    assert str(e.value) in literal(errors[0])


def artifact_limit_mb(at):
    """The Check tab's limit, as it tells the user ("Limit 81 MB")."""
    return int(re.search(r"Limit (\d+) MB", "".join(m.value for m in at.markdown)).group(1))


def test_export_upload_oversized_artifact_is_refused_before_decoding(store, fmnist, monkeypatch):
    at = export()
    limit = artifact_limit_mb(at)
    monkeypatch.setattr(ce, "evaluate_artifact", lambda *a: pytest.fail("decoded an oversized upload"))
    at = upload_artifact(at, b"\0" * (limit * 1000**2 + 1))
    assert not at.exception
    assert f"limited to {limit} MB" in at.error[0].value


def test_export_check_takes_every_artifact_the_dashboard_makes(store, results):
    """The largest: a dense float32 export of the largest upload the sidebar takes (a 47.7 MB MLP made a
    47,640,180-byte artifact, which a 32 MB limit refused), with its header; the run store keeps it too."""
    from compress_engine.playground import store as runstore
    from compress_engine.playground import zoo
    at = export()
    limit = artifact_limit_mb(at) * 1000**2
    header = ce.size_breakdown(results[1].artifact)["header"]
    assert 4 * zoo.MAX_UPLOAD_PARAMS + header <= limit <= runstore.MAX_ARTIFACT
    assert limit >= common.MAX_WEIGHTS_MB * 1000**2
    at = upload_artifact(at, b"\0" * 47_640_180)  # as big as that artifact: refused by the decoder, not its size
    assert not at.exception
    assert len(at.error) == 1 and at.error[0].value.startswith("This file is not a valid artifact")


def test_export_recipe_upload_reproduces_a_run(store, results):
    res = results[2]
    at = export().file_uploader(key="recipe_upload").upload("r.json", res.recipe.to_json().encode()).run()
    assert not at.exception and not at.error
    assert "sparsity=90 %, clusters=4" in literal(at.success[0].value)
    assert metric(at, "Test accuracy") == f"{100 * res.metrics['accuracy']:.2f} %"
    assert metric(at, "Artifact size") == f"{res.metrics['artifact_bytes'] / 1000:,.1f} KB"  # 1 KB = 1,000 bytes


def test_export_keeps_an_uploaded_recipe_and_its_run_across_pages(store, fmnist, monkeypatch):
    """Leaving the page empties the uploader; coming back showed the default recipe while the uploaded one's run
    went on. The recipe is kept in the session (with Clear), and its running job is followed again."""
    recipe = ce.Recipe(sparsity=0.9, finetune_epochs=50)
    at = export().file_uploader(key="recipe_upload").upload("train_many.json", recipe.to_json().encode()).run()
    assert not at.exception and "press the button" in at.info[0].value
    followed = []
    # as if "Run this recipe" had started it and it still runs in the pool
    monkeypatch.setattr(common, "training", lambda r, **kw: object() if r == recipe else None)
    monkeypatch.setattr(common, "train_run", lambda r, *a, **kw: followed.append(r))
    at = at.switch_page("pages/home.py").run().switch_page("pages/export.py").run()
    assert not at.exception and not at.error
    assert followed == [recipe]  # no button pressed: the page found its run again
    assert at.file_uploader(key="recipe_upload").value is None
    assert any(literal(s.value).startswith("Using the uploaded recipe train_many.json: sparsity=90 %")
               for s in at.success)
    assert not any(s.key == "export_sparsity" for s in at.slider)  # not the default recipe's controls
    monkeypatch.setattr(common, "training", lambda r, **kw: None)
    at = at.button(key="export_recipe_clear").click().run()
    assert not at.exception and not at.success and at.slider(key="export_sparsity").value == 50.0


@pytest.mark.parametrize("content, match", [
    (b"{not json", "not valid JSON"),
    (b'{"sparsity": 1.5}', "sparsity=1.5"),
    (b'{"pruning": 0.5}', "unknown recipe field"),
    (b"\xff\xfe\x00\x01", "not UTF-8"),
    (b"[1, 2]", "JSON object"),
])
def test_export_bad_recipe_upload_shows_the_error(store, fmnist, content, match):
    at = export().file_uploader(key="recipe_upload").upload("r.json", content).run()
    assert not at.exception
    assert match in literal(at.error[0].value)


def shown_texts(at):
    """The Markdown source of every alert, heading and text element on the page."""
    return [e.value for kind in ("error", "warning", "success", "info", "markdown", "header", "caption")
            for e in getattr(at, kind)]


def literal(text):
    """What Markdown shows for `text` once common.md_text's backslash escapes are read (and its invisible word
    joiners, which keep a URL from becoming a link, are not seen)."""
    return re.sub(r"\\(.)", r"\1", text).replace("\u2060", "")


def assert_no_markdown_from(at, *user_texts):
    """No element renders a Markdown image or link (which the browser would fetch); each user text shows as typed."""
    texts = shown_texts(at)
    assert not any("](" in t for t in texts), texts
    for u in user_texts:
        assert any(u in literal(t) for t in texts), (u, texts)


EVIL_NAME = "**BOLD** :red[RED] ![p](https:evil.invalid) $x^2$.json"
EVIL_LAYER = "![t](https:evil3.invalid) :red[**gotcha**]"


def test_export_recipe_upload_names_show_literally(store, fmnist):
    at = export().file_uploader(key="recipe_upload").upload(EVIL_NAME, b"\xff\xfe\x00\x01").run()
    assert not at.exception and len(at.error) == 1
    assert_no_markdown_from(at, EVIL_NAME)
    at = export().file_uploader(key="recipe_upload").upload(EVIL_NAME, b'{"sparsity": 1.5}').run()
    assert not at.exception and len(at.error) == 1
    assert_no_markdown_from(at, EVIL_NAME)


@pytest.mark.parametrize("layer", ["nonexistent.weight", EVIL_LAYER])
def test_export_recipe_for_other_layers_shows_only_the_error(store, fmnist, layer):
    """A recipe whose layers name no layer of the sidebar's model is refused before anything says it is in use."""
    bad = json.dumps({"sparsity": 0.5, "prune_scope": "layer", "layers": {layer: {"sparsity": 0.9}}}).encode()
    at = export().file_uploader(key="recipe_upload").upload("layers_bad.json", bad).run()
    assert not at.exception and not at.success and not at.header and not at.get("download_button")
    assert len(at.error) == 1 and "not a compressible weight of the model" in literal(at.error[0].value)
    assert_no_markdown_from(at, layer)


def crafted(artifact, rename=None, recipe=None):
    """An artifact (valid CRC) with its first tensor renamed to `rename` or carrying `recipe` (a dict)."""
    tensors, meta = ce.decode(artifact), dict(ce.read_meta(artifact))
    if rename is not None:
        tensors = {(rename if i == 0 else k): v for i, (k, v) in enumerate(tensors.items())}
    if recipe is not None:
        meta["recipe"] = recipe
    return ce.encode(tensors, None, meta)


def test_export_check_shows_crafted_artifact_texts_literally(store, results):
    art = results[1].artifact
    evil_tensor = "![y](https:evil4.invalid) layers.0.weight"
    at = upload_artifact(export(), crafted(art, rename=evil_tensor))
    assert not at.exception and len(at.error) == 1
    assert_no_markdown_from(at, evil_tensor)
    carried = {**results[1].recipe.to_dict(), "prune_scope": "layer", "layers": {EVIL_LAYER: {"sparsity": 0.5}}}
    at = upload_artifact(export(), crafted(art, recipe=carried))
    assert not at.exception and not at.error
    assert_no_markdown_from(at, EVIL_LAYER)


def test_compare_charts_runs_against_flops(seeded, store, results, fmnist, lenet300):
    """Cost: FLOPs. Only structured pruning moves a run left (zeros still get multiplied); the frontier is
    pareto_front over (FLOPs, accuracy); a run saved before FLOPs were counted is left off and said to be."""
    thin = ce.compress(lenet300, ce.Recipe(structured=True, sparsity=0.5), fmnist)
    thin_id = store.save("lenet-300-100", thin.recipe, thin.metrics, thin.artifact)
    res = results[0]
    store.save("lenet-300-100", ce.Recipe(sparsity=0.3), {k: res.metrics[k] for k in
                                                          ("params", "nonzero_params", "artifact_bytes", "ratio",
                                                           "accuracy")})
    at = compare()
    at.radio(key="compare_cost").set_value("flops").run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    counted = table[table["flops"].notna()]
    assert len(counted) == len(seeded) + 1
    assert set(counted["flops"]) == {thin.metrics["flops"], results[0].metrics["dense_flops"]}
    assert thin.metrics["flops"] < thin.metrics["dense_flops"] == results[0].metrics["flops"]
    expect = pareto_front(list(zip(table["flops"], table["accuracy"])))
    assert list(table.index[table["pareto"]]) == sorted(expect)
    assert thin_id in set(table.loc[table["pareto"], "id"])  # the only run that is cheaper to run
    spec = json.loads(plots(at)[0])
    assert spec["layout"]["xaxis"]["type"] == "log" and "MFLOPs" in spec["layout"]["xaxis"]["title"]["text"]
    points = [x for t in spec["data"] if t.get("mode") == "markers" for x in plotly_values(t["x"])]
    assert sorted(points) == sorted(counted["flops"] / 1e6)
    assert not any(t.get("name", "").startswith("bench:") for t in spec["data"])  # they have sizes, not FLOPs
    assert "1 of these runs has no FLOPs count (saved before FLOPs were counted, or of a model the FLOPs counter " \
           "cannot run): it is not on this chart" in " ".join(c.value for c in at.caption)

    at = select(at, [int(table.index[table["id"] == thin_id][0])])
    side = at.table[0].value
    col = side.columns[0]
    assert side.loc["Forward FLOPs per image", col] == f"{thin.metrics['flops'] / 1e6:,.3f} M"
    assert side.loc["FLOPs vs dense", col] == f"{thin.metrics['dense_flops'] / thin.metrics['flops']:.1f}× fewer"


def test_compare_model_filter_and_runs_without_optional_metrics(store, results):
    res = results[0]
    bare = {k: res.metrics[k] for k in ("params", "nonzero_params", "artifact_bytes", "ratio", "accuracy")}
    store.save("lenet-300-100", res.recipe, bare)
    store.save("lenet-5", res.recipe, bare, technique="other model")
    at = compare()
    assert not at.exception and len(at.dataframe[0].value) == 2
    at = at.multiselect(key="compare_models").set_value(["lenet-5"]).run()
    assert not at.exception and list(at.dataframe[0].value["model"]) == ["lenet-5"]
    at = at.multiselect(key="compare_models").set_value([]).run()
    assert not at.exception and "No saved runs of the chosen models" in at.info[0].value


def test_exports_of_structured_and_single_weight_pruning_have_their_own_file_names():
    """A deployment review exported ResNet-8 pruned by units and by single weights: both downloads were named
    resnet-8-prune.cpg, the second overwriting the first in a downloads folder; fine-tuned or not, the same."""
    from compress_engine.playground.store import file_stem
    names = {file_stem("resnet-8", r) for r in (ce.Recipe(sparsity=0.5), ce.Recipe(sparsity=0.5, structured=True),
                                                 ce.Recipe(sparsity=0.5, finetune_epochs=1))}
    assert names == {"resnet-8-prune", "resnet-8-structured-prune", "resnet-8-prune-finetune1"}
    assert file_stem("lenet-5", ce.Recipe(sparsity=0.9, clusters=16, huffman=True)) == "lenet-5-prune-cluster-huffman"
