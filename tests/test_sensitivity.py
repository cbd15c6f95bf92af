"""Sensitivity scan: one layer at a time over sparsity x clusters, exact against the stages' own functions,
stoppable, kept on disk by model + data + grid; and the dashboard page that draws it."""

import json
import os
from pathlib import Path

import pytest
import torch

import compress_engine as ce
from compress_engine.core import cluster, prune
from compress_engine.core.encode import Codebook, tensor_bytes
from compress_engine.core.sensitivity import scan, subset_index, summary, curve, cached
from conftest import plots

GRID = dict(sparsities=(0.0, 0.9), clusters=(None, 4), subset=500)


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "scans"


def test_scan_rows_match_the_stages(lenet300, small, cache):
    before = {k: v.clone() for k, v in lenet300.state_dict().items()}
    res = scan(lenet300, small, cache_dir=cache, **GRID)
    assert [layer["name"] for layer in res["layers"]] == ["layers.0.weight", "layers.1.weight", "layers.2.weight"]
    assert len(res["rows"]) == 3 * 2 * 2 and res["subset"] == 500
    for k, v in lenet300.state_dict().items():  # the model is not changed
        assert torch.equal(v, before[k])
    dense = [r for r in res["rows"] if r["sparsity"] == 0.0 and r["clusters"] is None]
    assert all(r["accuracy"] == res["dense_accuracy"] and abs(r["kl"]) < 1e-9 for r in dense)
    # one point recomputed by hand: layer 2 pruned to 90 % and shared among 4 centroids
    idx = subset_index(len(small.y("test")), 500)
    x, y = small.x("test")[idx], small.y("test")[idx]
    m = ce.load_model("lenet-300-100")
    w = m.layers[2].weight.detach()
    mask = prune.magnitude_mask(w, 0.9)
    c, lab = cluster.cluster_weight(torch.where(mask, w, 0.0), 4, mask=mask)
    with torch.no_grad():
        m.layers[2].weight.copy_(cluster.shared_weight(c, lab))
    acc = (m(x).argmax(1) == y).float().mean().item()
    row = next(r for r in res["rows"] if r["layer"] == "layers.2.weight" and r["sparsity"] == 0.9 and r["clusters"] == 4)
    assert row["accuracy"] == pytest.approx(acc, abs=1e-6)
    assert row["bytes"] == tensor_bytes("layers.2.weight", m.layers[2].weight.detach(), Codebook(c.numpy()))
    assert row["kl"] > 0
    # pruning 90 % of the big first layer alone costs far fewer bytes than keeping it dense
    big = curve(res, "layers.0.weight", clusters=None)
    assert big[1]["bytes"] < big[0]["bytes"] / 4


def test_scan_is_kept_on_disk_by_model_and_data(lenet300, small, cache):
    calls = []
    first = scan(lenet300, small, cache_dir=cache, progress=lambda *a: calls.append(a), **GRID)
    assert len(calls) == len(first["rows"]) and calls[-1][:2] == (12, 12)
    files = list(cache.glob("*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["key"] == first["key"]
    again = scan(lenet300, small, cache_dir=cache, progress=lambda *a: pytest.fail("recomputed"), **GRID)
    assert again == first
    assert cached(lenet300, small, cache_dir=cache, **GRID) == first
    other = ce.load_model("lenet-300-100")
    with torch.no_grad():
        other.layers[2].bias.add_(0.01)  # other weights: another key, not the kept scan
    assert cached(other, small, cache_dir=cache, **GRID) is None
    assert cached(lenet300, small, cache_dir=cache, split="train", **GRID) is None
    files[0].write_text("{not json")  # a damaged file is a miss, never an error
    assert cached(lenet300, small, cache_dir=cache, **GRID) is None


def test_a_shipped_scan_is_read_never_written_and_the_cache_comes_first(lenet300, small, cache, tmp_path):
    shipped = tmp_path / "shipped"
    first = scan(lenet300, small, cache_dir=shipped, **GRID)  # as zoo.ship_scans writes one beside a model
    assert scan(lenet300, small, cache_dir=cache, shipped=[tmp_path / "none", shipped],
                progress=lambda *a: pytest.fail("recomputed"), **GRID) == first
    assert cached(lenet300, small, cache_dir=cache, shipped=[shipped], **GRID) == first
    assert not cache.exists()  # read from the shipped folder, nothing copied into the cache
    assert cached(lenet300, small, cache_dir=cache, **GRID) is None  # not looked for unless given
    mine = dict(first, seconds=-1.0)  # the user's own cache is read first
    cache.mkdir()
    (cache / f"{first['key']}.json").write_text(json.dumps(mine))
    assert cached(lenet300, small, cache_dir=cache, shipped=[shipped], **GRID) == mine
    (cache / f"{first['key']}.json").unlink()
    (shipped / f"{first['key']}.json").write_text("{damaged")  # a damaged shipped file: computed again
    calls = []
    assert scan(lenet300, small, cache_dir=cache, shipped=[shipped], progress=lambda *a: calls.append(a),
                **GRID)["rows"] == first["rows"]
    assert calls and (cache / f"{first['key']}.json").is_file()


def test_every_sidebar_model_ships_the_sensitivity_pages_scans(fmnist, tmp_path):
    """The page's scan and its budget fit's two scans of each sample model a visitor can choose are shipped beside
    it (zoo.ship_scans; ResNet-8's one-shot scan takes 11 minutes at one thread), for these very weights and
    data: retraining a model without `python -m compress_engine scans NAME` fails here."""
    from compress_engine.playground import zoo
    for name in ("lenet-300-100", "lenet-5", "resnet-8"):
        net = ce.load_model(name)
        for kw in zoo.PAGE_SCANS:
            hit = cached(net, fmnist, cache_dir=tmp_path, shipped=[zoo.scan_dir(name)], **kw)
            assert hit is not None, f"{name} {kw}: not shipped in {zoo.scan_dir(name)}"
            assert (hit["split"], hit["refit"], hit["focus"]) == (kw.get("split", "test"), kw.get("refit", False),
                                                                 kw.get("focus", 0.0))
        assert len(list(zoo.scan_dir(name).glob("*.json"))) == len(zoo.PAGE_SCANS)  # no scans of older weights


def test_scan_stops_and_keeps_nothing(lenet300, small, cache):
    with pytest.raises(ce.Stopped):
        scan(lenet300, small, cache_dir=cache, progress=lambda step, *_: step < 3, **GRID)
    assert not list(cache.glob("*.json")) if cache.exists() else True
    assert torch.equal(lenet300.layers[0].weight, ce.load_model("lenet-300-100").layers[0].weight)


@pytest.mark.parametrize("bad", [dict(sparsities=(1.5,)), dict(clusters=(1,)), dict(clusters=(True,)),
                                 dict(split="val"), dict(subset=0), dict(sparsities=())])
def test_scan_refuses_bad_grids(lenet300, small, cache, bad):
    with pytest.raises(ce.RecipeError):
        scan(lenet300, small, cache_dir=cache, **{**GRID, **bad})


def test_summary_reads_fragility_and_cheap_bytes(lenet300, small, cache):
    res = scan(lenet300, small, cache_dir=cache, sparsities=(0.0, 0.5, 0.9), clusters=(None, 16, 2), subset=500)
    rows = {r["layer"]: r for r in summary(res, tolerance=0.02)}
    assert set(rows) == {layer["name"] for layer in res["layers"]}
    big = rows["layers.0.weight"]
    assert big["cheapest_bytes"] < big["dense_bytes"] and big["min_clusters"] in (16, 2)
    assert all(r["loss_at_90"] is not None for r in rows.values())


def test_sensitivity_page(fmnist, tmp_path, monkeypatch):
    """A fresh scan (no shipped one) draws its charts (progress bar while it runs); the next visit reads it from disk.
    Sizes in KB of 1,000 bytes, as on every page; the bytes chart's log axis with readable ticks."""
    from compress_engine.playground import zoo
    from streamlit.proto.Metric_pb2 import Metric
    from test_app import page
    monkeypatch.setenv("COMPRESS_CACHE", str(tmp_path))
    monkeypatch.setattr(zoo, "scan_dir", lambda name: tmp_path / "nothing shipped")
    at = page("sensitivity", "lenet-300-100")
    assert [m.label for m in at.metric] == ["Most fragile layer", "Cheapest bytes", "Scanned"]
    assert at.metric[0].value == "layers.2"  # the 10-unit output layer: 1,000 weights, all needed
    assert at.metric[1].value == "layers.0"  # 92 % of the weights, and flat until high sparsity
    assert all(m.proto.direction == Metric.MetricDirection.NONE for m in at.metric[1:])  # no arrow on a note
    assert len(plots(at)) == 4 and len(at.dataframe) == 1
    (kept,) = tmp_path.glob("sensitivity/*.json")
    rows = summary(json.loads(kept.read_text()), 0.005)
    table = at.dataframe[0].value
    assert list(table["unchanged KB"]) == [r["dense_bytes"] / 1000 for r in rows]
    assert list(table["smallest KB"]) == [r["cheapest_bytes"] / 1000 for r in rows]
    assert at.metric[1].proto.delta.startswith(f"{rows[0]['dense_bytes'] / 1000:,.1f} KB")  # as in the table
    bars = json.loads(plots(at)[2])
    assert bars["data"][0]["x"] == [r["dense_bytes"] / 1000 for r in rows]
    x = bars["layout"]["xaxis"]
    assert x["type"] == "log" and x["tickmode"] == "array"
    assert all(b / a >= 1.4 for a, b in zip(x["tickvals"], x["tickvals"][1:]))  # never "8 9 10 2 3"
    at.selectbox(key="sens_layer").set_value("layers.1.weight").run()
    assert not at.exception and "layers.1.weight" in plots(at)[3]


def test_sensitivity_page_draws_a_shipped_scan_at_once(fmnist, tmp_path, monkeypatch):
    """A sample model's scan ships beside it: the page draws it without scanning (no progress bar, nothing written)."""
    from test_app import page
    monkeypatch.setenv("COMPRESS_CACHE", str(tmp_path))
    real = ce.sensitivity.scan

    def no_scan(*a, **kw):
        assert kw.get("shipped"), "the page did not look for the shipped scan"
        out = real(*a, progress=lambda *_: pytest.fail("scanned"), **{k: v for k, v in kw.items() if k != "progress"})
        return out
    monkeypatch.setattr(ce.sensitivity, "scan", no_scan)
    at = page("sensitivity", "lenet-5")
    assert not at.exception and len(plots(at)) == 4
    lines = json.loads(plots(at)[0])["layout"]  # 4 layers: 2 legend rows, the plot kept
    assert lines["height"] - lines["margin"]["b"] == 360 - 10 and lines["legend"]["yanchor"] == "top"
    assert not at.get("progress") and not list(tmp_path.rglob("*.json"))
    from compress_engine.playground import zoo
    shipped = cached(ce.load_model("lenet-5"), fmnist, cache_dir=tmp_path, shipped=[zoo.scan_dir("lenet-5")])
    fragile = min(summary(shipped, 0.005), key=lambda r: (r["max_sparsity"], -(r["loss_at_90"] or 0)))  # as the table
    assert at.metric[0].value == fragile["layer"].removesuffix(".weight") and at.metric[2].value == f"{len(shipped['rows']):,} settings"


def test_refit_reconstructs_what_pruning_removed(lenet300, small, cache):
    """Least-squares re-fitting of the kept weights (OBS-style): with nothing pruned it gives the layer back,
    and after pruning it recovers most of the damage one-shot pruning shows (as fine-tuning would)."""
    from compress_engine.core.sensitivity import gram, refit
    x = small.x("train")[:500]
    layer = lenet300.layers[1]
    g = gram(lenet300, layer, x)
    w = layer.weight.detach()
    assert g.shape == (300, 300) and torch.allclose(g, g.T)
    back = refit(w, w != 0, g, damp=1e-9)  # the same outputs (weights on always-zero inputs may differ)
    d = (back - w).double()
    assert ((d @ g) * d).sum() < 1e-8 * ((w.double() @ g) * w.double()).sum()
    plain = scan(lenet300, small, cache_dir=cache, **GRID)
    fitted = scan(lenet300, small, cache_dir=cache, refit=True, **GRID)
    assert fitted["key"] != plain["key"] and fitted["refit"] and not plain["refit"]
    for name in ("layers.0.weight", "layers.1.weight"):
        one = next(r for r in plain["rows"] if r["layer"] == name and r["sparsity"] == 0.9 and r["clusters"] is None)
        two = next(r for r in fitted["rows"] if r["layer"] == name and r["sparsity"] == 0.9 and r["clusters"] is None)
        assert two["kl"] < one["kl"] / 2, name


def test_a_refitted_scan_refits_each_layer_once_per_sparsity_and_shares_it_among_cluster_counts(lenet300, small,
                                                                                                  cache, monkeypatch):
    """The re-fit does not depend on the cluster count, so the scan solves it once per (layer, sparsity) and clusters
    that for every k: each row is what re-fitting and then clustering that layer alone gives."""
    from compress_engine.core import sensitivity
    real, calls = sensitivity.refit, []

    def counting(w, mask, g, *a, **kw):
        calls.append(w.shape)
        return real(w, mask, g, *a, **kw)
    monkeypatch.setattr(sensitivity, "refit", counting)
    grid = dict(sparsities=(0.0, 0.5, 0.9), clusters=(None, 8, 4), subset=500)
    res = scan(lenet300, small, cache_dir=cache, refit=True, **grid)
    assert len(calls) == 3 * 2  # 3 layers x the 2 sparsities that prune (nothing to re-fit at 0)
    idx = subset_index(len(small.y("test")), 500)
    x, y = small.x("test")[idx], small.y("test")[idx]
    m = ce.load_model("lenet-300-100")
    w = m.layers[1].weight.detach().clone()
    fitted = real(w, prune.magnitude_mask(w, 0.5), sensitivity.gram(m, m.layers[1], x))
    centroids, labels = cluster.cluster_weight(fitted, 4, mask=fitted != 0)
    with torch.no_grad():
        m.layers[1].weight.copy_(cluster.shared_weight(centroids, labels))
    row = next(r for r in res["rows"] if r["layer"] == "layers.1.weight" and r["sparsity"] == 0.5 and r["clusters"] == 4)
    assert row["accuracy"] == pytest.approx((m(x).argmax(1) == y).float().mean().item(), abs=1e-6)
    assert row["bytes"] == tensor_bytes("layers.1.weight", m.layers[1].weight.detach(), Codebook(centroids.numpy()))


def test_gram_of_a_convolution_is_its_unfolded_patches(lenet5, small):
    from compress_engine.core.sensitivity import gram
    x = small.x("test")[:20]
    g = gram(lenet5, lenet5.conv1, x)
    patches = torch.nn.functional.unfold(x, 5).transpose(1, 2).reshape(-1, 25).double()
    assert torch.allclose(g, patches.T @ patches)
    assert gram(lenet5, torch.nn.ReLU(), x) is None


def test_sensitivity_page_fits_a_budget(fmnist, tmp_path, monkeypatch):
    """"Fit in N KB" on the page: the allocation per layer and where the bytes went, within the budget."""
    from test_app import metric, number, page
    monkeypatch.setenv("COMPRESS_CACHE", str(tmp_path))
    at = page("sensitivity", "lenet-300-100")
    at.number_input(key="budget_kb").set_value(30.0).run()
    # the button names the budget it fits (a number typed out of range is refused by the box, which keeps the last)
    assert at.button(key="budget_go").label == "Fit in 30 KB"
    at.button(key="budget_go").click().run()
    assert not at.exception, at.exception
    assert number(metric(at, "Artifact")) <= 30.0 and number(metric(at, "Compression ratio")) > 30
    alloc = at.dataframe[1].value
    assert list(alloc["layer"]) == ["layers.0.weight", "layers.1.weight", "layers.2.weight"]
    assert len(plots(at)) == 5  # + where the bytes went
    at.run()  # kept for the session: drawn again without training
    assert not at.exception and number(metric(at, "Artifact")) <= 30.0
    plain_bytes = number(metric(at, "Artifact"))
    at.checkbox(key="budget_focus").check().run()  # prune focus: its own scan and run, the plain one kept
    at.button(key="budget_go").click().run()
    assert not at.exception, at.exception
    fits = [v for k, v in at.session_state["trained"].items() if k[0] == "fit_budget"]
    assert len(fits) == 2 and [ce.Recipe.from_dict(f["plan"]["recipe"]).prune_focus for f in fits] == [0.0, 1.0]
    assert number(metric(at, "Artifact")) <= 30.0 and plain_bytes <= 30.0


def test_a_budget_fit_runs_in_the_training_queue_and_is_kept_on_disk(fmnist, tmp_path, monkeypatch):
    """Fit trains, so it goes through the server's training pool (place in line, progress, Cancel; a rerun does not
    stop it) and its result is kept on disk: a reload or another session shows it at once, without training."""
    from test_app import metric, page
    monkeypatch.setenv("COMPRESS_CACHE", str(tmp_path))
    import threading
    real, ran = ce.fit_budget, []

    def where(*a, **kw):
        ran.append(threading.current_thread().name)
        answering = kw["answers_progress"]

        def seen(done, total):  # what the bar says while the dense model's answers are computed, before fine-tuning
            going = answering(done, total)
            bars.extend((j.progress.phase, j.progress.step, j.progress.total) for j in ce.jobs.pool()._running)
            return going
        return real(*a, **{**kw, "answers_progress": seen})
    bars = []
    monkeypatch.setattr(ce, "fit_budget", where)
    at = page("sensitivity", "lenet-300-100")
    at.number_input(key="budget_kb").set_value(25.0)
    at.button(key="budget_go").click().run()
    assert not at.exception and len(ran) == 1 and ran[0].startswith("train-worker")  # a job of the pool
    # computed first, named and counted (an MLP's batches of 1,000), not stuck on the scan's last setting
    assert bars == [("the dense model's answers on training images, image", done, 60_000)
                    for done in range(1_000, 60_001, 1_000)]
    shown = metric(at, "Artifact"), metric(at, "Test accuracy")
    files = list(Path(os.environ["COMPRESS_TRAINED"]).glob("*.cpgt"))
    assert len(files) == 2  # the fit, and its result under its own recipe, which Export's replay looks up

    def no_training(*a, **kw):
        raise AssertionError("a kept fit was trained again")
    monkeypatch.setattr(ce, "fit_budget", no_training)
    again = page("sensitivity", "lenet-300-100")  # another session: nothing pressed
    again.number_input(key="budget_kb").set_value(25.0).run()
    assert not again.exception and (metric(again, "Artifact"), metric(again, "Test accuracy")) == shown
    assert not [c for c in again.caption if c.value.startswith("Press **Fit**")]
    # the fitted artifact is the user's to take: downloads, and Save for the Compare page
    assert [b.label.split(" (")[0] for b in again.get("download_button")] == [
        "Download artifact", "Download recipe", "Weights", "int8 weights"]  # (the fit clusters: an int8 file too)
    monkeypatch.setenv("COMPRESS_STORE", str(tmp_path / "runs.sqlite"))
    again.button(key="budget_save").click().run()
    from compress_engine.playground.store import Store
    saved = Store().list()
    assert not again.exception and len(saved) == 1 and saved[0]["technique"] == "fit 25 KB"
    fitted = Store().get(saved[0]["id"])
    assert len(fitted["artifact"]) == saved[0]["artifact_bytes"] <= 25_000
    threads = torch.get_num_threads()
    torch.set_num_threads(ce.jobs.pool().threads)  # as the pool trained it: the sums' order depends on the threads
    try:
        replay = ce.compress(ce.load_model("lenet-300-100"), ce.Recipe.from_json(saved[0]["recipe"]), fmnist,
                             evaluate=False)
    finally:
        torch.set_num_threads(threads)
    assert replay.artifact == fitted["artifact"]  # its recipe gives the same bytes again
    other = page("sensitivity", "lenet-300-100")  # another budget is another fit: not kept, so it asks for Fit
    other.number_input(key="budget_kb").set_value(26.0).run()
    assert not other.exception and [c for c in other.caption if c.value.startswith("Press **Fit**")]


def test_an_uploads_fit_scans_at_the_pages_threads_and_trains_at_the_pools(fmnist, tmp_path, monkeypatch):
    """A model whose scans do not ship (an upload) scans every layer on training images first, inside the Fit's job:
    at the page's torch threads, as the page's estimate of it assumes, then trains at the pool's (leaving a core to
    everyone's sliders)."""
    import threading

    from compress_engine.playground import zoo
    from test_app import page
    monkeypatch.setenv("COMPRESS_CACHE", str(tmp_path))
    monkeypatch.setattr(zoo, "scan_dir", lambda name: tmp_path / "nothing shipped")

    def default_threads(n):  # the count a new thread (a page run) starts with
        t = threading.Thread(target=torch.set_num_threads, args=(n,))
        t.start()
        t.join()
    before = ce.jobs.process_threads()
    page_threads = ce.jobs.pool().threads + 2  # unlike the pool's on any machine
    default_threads(page_threads)
    ran = []

    def recording(fn, what, **smaller):
        def wrapped(*a, **kw):
            ran.append((what, kw.get("split", "test"), threading.current_thread().name, torch.get_num_threads()))
            return fn(*a, **kw, **smaller)
        return wrapped
    # where and at how many threads the scans run is what counts here, not their grid (the full ones took 40 s)
    monkeypatch.setattr(ce.sensitivity, "scan", recording(ce.sensitivity.scan, "scan", sparsities=(0.0, 0.9),
                                                          clusters=(None, 16), subset=300))

    def stop(*a, **kw):  # where the training would start: its threads are what this test checks
        raise ce.Stopped()
    monkeypatch.setattr(ce, "fit_budget", recording(stop, "fit"))
    try:
        at = page("sensitivity", "lenet-300-100")
        at.number_input(key="budget_kb").set_value(30.0)
        at.button(key="budget_go").click().run()
    finally:
        default_threads(before)
    assert not at.exception
    jobs = [r for r in ran if r[2].startswith("train-worker")]  # then fit_budget's own scan of its pruned model
    assert [(what, split, threads) for what, split, _, threads in jobs[:3]] == [
        ("scan", "test", page_threads), ("scan", "train", page_threads), ("fit", "test", ce.jobs.pool().threads)]


def test_a_budget_too_small_to_fit_says_so_and_keeps_nothing(fmnist, tmp_path, monkeypatch):
    """A budget the engine refuses (1 KB on LeNet-300-100; the box now starts at the least one it takes, so here no
    budget passes: the engine's room for training made huge): the engine's message, in the page, before anything is
    queued; no traceback, nothing kept on disk, and Fit can be pressed again."""
    import compress_engine as ce
    from test_app import page
    monkeypatch.setenv("COMPRESS_CACHE", str(tmp_path))
    monkeypatch.setattr(ce.budget, "SLACK", 1000.0)
    at = page("sensitivity", "lenet-300-100")
    at.button(key="budget_go").click().run()
    assert not at.exception and any("budget" in e.value and "bytes" in e.value for e in at.error), at.error
    assert not list(Path(os.environ["COMPRESS_TRAINED"]).glob("*.cpgt"))
    # the error alone, not "Press Fit to run it" under it (f3eefae), and the button there to press again
    assert not [c for c in at.caption if c.value.startswith("Press **Fit**")] and at.button(key="budget_go")


def test_a_long_scan_waits_for_its_button_and_says_how_long(fmnist, tmp_path, monkeypatch):
    """A scan expected to take minutes (an uploaded ResNet's: ~7) does not start on its own when the page
    opens: the page says what it would compute and about how long, and scans once the button is pressed, in the
    server's training queue at the page's threads (so leaving the page does not stop it)."""
    from compress_engine.playground import zoo
    from test_app import page
    monkeypatch.setenv("COMPRESS_CACHE", str(tmp_path))
    monkeypatch.setattr(zoo, "scan_dir", lambda name: tmp_path / "nothing shipped")
    monkeypatch.setattr(ce.sensitivity, "SETTING_COST", 1e5)  # as slow as a big model: hours, not seconds
    at = page("sensitivity", "lenet-300-100")
    assert not at.exception and not plots(at) and not list(tmp_path.rglob("*.json"))
    note = next(i.value for i in at.info if "No scan of lenet-300-100 yet" in i.value).replace("\\", "")  # as read
    assert ("3 layers alone at 63 settings: 189 evaluations of a fixed set of 2,000 of the 10,000 test images of "
            "Fashion-MNIST" in note and " h on this" in note)
    go = at.button(key="sens_go")
    assert go.label.startswith("Scan lenet-300-100 (about ") and go.label.endswith(" h)")
    real, ran = ce.sensitivity.scan, []

    def where(*a, **kw):  # the scan runs as a job of the training pool, at the page's threads
        import threading
        ran.append((threading.current_thread().name, torch.get_num_threads()))
        return real(*a, **kw)
    monkeypatch.setattr(ce.sensitivity, "scan", where)
    page_threads = ce.jobs.process_threads()
    go.click().run()
    assert not at.exception and len(plots(at)) == 4 and len(list(tmp_path.rglob("*.json"))) == 1
    assert len(ran) == 1 and ran[0][0].startswith("train-worker") and ran[0][1] == page_threads
    fit = next(c.value for c in at.caption if c.value.startswith("Press **Fit**"))  # its own scan comes first
    assert "first scans every layer on training images, about " in fit and " h here" in fit
    # then its fine-tuning: 2 stages of the page's 1 epoch, at the epoch time the pages estimate for this model here
    from compress_engine.playground import units
    from pages import common
    epoch = common.epoch_per_eval("mlp") * common._eval_seconds[("lenet-300-100", common.DATASET, "")]
    assert fit.endswith("It fine-tunes in two stages of 1 epoch on the dense model's soft targets. About "
                        f"{units.duration(2 * epoch)} ({units.duration(epoch)} an epoch) for lenet-300-100 here.")
    at.run()  # kept on disk: drawn at once from now on, no button
    assert not at.exception and len(plots(at)) == 4 and not [b for b in at.button if b.key == "sens_go"]


def test_expected_scan_counts_its_settings_and_scales_with_the_evaluation(lenet5):
    from compress_engine.core import sensitivity
    n, seconds = sensitivity.expected(lenet5, eval_seconds=0.5, images=10_000)
    assert n == 4 * len(sensitivity.SPARSITIES) * len(sensitivity.CLUSTERS) == 252
    assert seconds == pytest.approx(n * sensitivity.SETTING_COST * 0.5 * sensitivity.SUBSET / 10_000)
    assert sensitivity.expected(lenet5, 1.0, 1_000)[1] == pytest.approx(n * sensitivity.SETTING_COST)  # all images


def test_no_layer_is_called_fragile_when_none_loses_anything(fmnist, monkeypatch):
    """An untrained upload is at chance whatever is pruned: the page said 'Most fragile layer layers.0, -0.0 pts at
    90 % pruned'. With every layer within the tolerance at every scanned sparsity it names none."""
    from test_app import page
    real = ce.sensitivity.summary
    monkeypatch.setattr(ce.sensitivity, "summary", lambda *a, **kw: [dict(r, loss_at_90=0.0, max_sparsity=0.99)
                                                                     for r in real(*a, **kw)])
    at = page("sensitivity", "lenet-300-100")
    card = next(m for m in at.metric if m.label == "Most fragile layer")
    assert not at.exception and card.value == "none" and card.delta == "every layer prunes to 99 % within 0.5 pts"
    monkeypatch.setattr(ce.sensitivity, "summary", real)
    at.run()
    assert next(m for m in at.metric if m.label == "Most fragile layer").value != "none"  # the shipped scan has one
