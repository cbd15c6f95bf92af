"""One-shot runs shipped beside a sample model (compress_engine.playground.curves): ResNet-8's technique pages
open without one evaluation, the shipped numbers are the engine's own, and a stale or damaged file is a miss."""

import json

import pytest
from test_app import page

import compress_engine as ce
from compress_engine.playground import curves
from compress_engine.playground.sweeps import model_fingerprint
from scripts import ship_curves

SHIPS = ["lenet-300-100", "lenet-5", "resnet-8"]  # every sample model in the sidebar: its pages' first runs ship


@pytest.fixture
def evaluations(monkeypatch):
    """Every compress() the pages make, as (recipe JSON, evaluated?)."""
    calls, compress = [], ce.compress

    def counting(model, recipe, data, *args, **kw):
        calls.append((recipe.to_json(), kw.get("evaluate", True)))
        return compress(model, recipe, data, *args, **kw)

    monkeypatch.setattr(ce, "compress", counting)
    return calls


@pytest.mark.parametrize("name", SHIPS)
@pytest.mark.parametrize("page_name", ship_curves.PAGES)
def test_pages_open_on_shipped_runs_without_evaluating(fmnist, evaluations, name, page_name):
    """Each technique page at its start (and ship_curves.VARIANTS: Pruning at either threshold, the Pipeline's Deep
    Compression button) evaluates nothing: every run it draws is shipped for the current weights and data. Fails
    after a retrain until `scripts/ship_curves.py NAME`."""
    from pages import common

    common._run.clear(), common._metrics.clear()  # computed in this process by another test: ask again
    at = page(page_name, name)
    for variant in ship_curves.VARIANTS.get(page_name, []):
        at = ship_curves.apply(at, variant)
        assert not at.exception, at.exception
    assert not at.error, at.error
    evaluated = [r for r, ev in evaluations if ev]
    assert not evaluated, f"{name}'s {page_name} page evaluated {evaluated[:2]}: run scripts/ship_curves.py {name}"
    assert any(not ev for _, ev in evaluations)  # it did apply its runs (without their evaluation)
    accuracy = next((m.value for m in at.metric if m.label == "Test accuracy"), None)
    assert accuracy is None or accuracy.endswith("%")  # the shipped accuracy, not "…"
    # how long this model evaluates, known without evaluating (as a hint from the file): runs computed ahead and
    # drawn early go by it, as they did when the dense run was evaluated
    assert common._eval_seconds.get((name, common.DATASET, "")) is not None


@pytest.mark.parametrize("page_name, key", [(p, k) for p, keys in ship_curves.SLIDERS.items() for k in keys])
def test_a_slow_models_slider_values_ship_too(fmnist, evaluations, page_name, key):
    """ResNet-8 (too slow to evaluate for the pages to compute ahead) ships every value of Pruning's, Clustering's
    and Pipeline's sliders at the page's start: a class moving them evaluates nothing. Checked at the slider's ends
    and either side of its start (every value would be up to 100 page runs a slider)."""
    from pages import common

    common._run.clear(), common._metrics.clear()
    at = page(page_name, "resnet-8")
    values = ship_curves.slider_values(at, key)
    start = values.index(at.session_state[key])
    for i in sorted({0, start - 1, start + 1, len(values) - 1}):
        at.session_state[key] = values[i]
        at.run()
        assert not at.exception and not at.error, (values[i], at.exception, at.error)
    evaluated = [r for r, ev in evaluations if ev]
    assert not evaluated, f"evaluated {evaluated[:2]}: run scripts/ship_curves.py resnet-8"


@pytest.mark.parametrize("name", SHIPS)
def test_shipped_runs_are_the_engines(fmnist, name):
    """The page's first Pruning run, computed afresh with its evaluation, has every shipped metric, the same (and
    may have more: a metric compress() gained since the file was made)."""
    from pages import common

    model = ce.load_model(name)
    runs = curves.shipped(name, model_fingerprint(model), fmnist.fingerprint())
    recipe = ce.Recipe(**common.starts(name)["pruning"])
    assert recipe.to_json() in runs
    fresh = ce.compress(model, recipe, fmnist).metrics
    assert curves._holds(json.loads(json.dumps(fresh)), runs[recipe.to_json()])
    applied = ce.compress(model, recipe, fmnist, evaluate=False).metrics
    assert curves.complete(applied, runs[recipe.to_json()]) == json.loads(json.dumps(fresh))


def metrics(accuracy=0.9, nbytes=100):
    return {"accuracy": accuracy, "dense_accuracy": 0.91, "agreement": 0.95, "artifact_bytes": nbytes, "ratio": 2.5,
            "layers": [{"name": "w", "shape": [2, 3]}]}


def test_ship_and_read_back(tmp_path, monkeypatch):
    monkeypatch.setattr(curves, "SAMPLE_DIR", tmp_path)
    runs = {ce.Recipe(sparsity=0.5).to_json(): metrics()}
    path = curves.ship("m", "model-id", "data-id", runs, evaluate_s=0.5)
    assert path == tmp_path / "curves" / "m.json" and (path.stat().st_mode & 0o777) == 0o644
    assert curves.shipped("m", "model-id", "data-id") == runs
    assert curves.shipped("m", "model-id", "data-id", with_seconds=True) == (runs, 0.5)
    assert curves.shipped("m", "retrained", "data-id", with_seconds=True) == ({}, None)
    assert curves.shipped("m", "retrained", "data-id") == {} and curves.shipped("m", "model-id", "other") == {}
    assert curves.shipped("absent", "model-id", "data-id") == {}
    for damaged in (b"", b"{", b"[1, 2]", b'{"format": 99}', json.dumps(
            {"format": curves.FORMAT, "model": "model-id", "data": "data-id", "runs": [1]}).encode(),
            json.dumps({"format": curves.FORMAT, "model": "model-id", "data": "data-id", "runs": {"r": 3}}).encode(),
            b"\xff\xfe"):
        path.write_bytes(damaged)
        assert curves.shipped("m", "model-id", "data-id") == {}, damaged
    with pytest.raises(ValueError, match="not evaluated"):
        curves.ship("m", "model-id", "data-id", {"r": metrics(accuracy=None)})


def test_complete_fills_only_the_same_run():
    applied = {**metrics(), "accuracy": None, "dense_accuracy": None, "agreement": None}
    assert curves.complete(applied, metrics(0.8)) == metrics(0.8)
    assert curves.complete(applied, metrics(0.8, nbytes=101)) is None  # another run: its accuracy is not this one's
    assert curves.complete(applied, {**metrics(0.8), "ratio": 2.6}) is None
    assert curves.complete(applied, metrics(accuracy=None)) is None

def test_a_metric_added_since_the_file_was_made_comes_from_the_run():
    """compress() gained each layer's "coding"; every shipped run lacks it, so every page evaluated again (ResNet-8:
    5-7 s a run) where nothing an evaluation gives had changed. What the file has must match; what it lacks is the
    run's own. A value that differs, or a layer more or fewer, is still another run."""
    layer = {"name": "w", "bytes": 10, "nonzero": 3}
    applied = {**metrics(), "accuracy": None, "dense_accuracy": None, "agreement": None,
               "layers": [{**layer, "coding": "range"}], "new_metric": 1}
    shipped = {**metrics(0.8), "layers": [layer]}
    done = curves.complete(applied, shipped)
    assert done["accuracy"] == 0.8 and done["layers"] == [{**layer, "coding": "range"}] and done["new_metric"] == 1
    assert curves.complete(applied, {**shipped, "layers": [{**layer, "bytes": 11}]}) is None
    assert curves.complete(applied, {**shipped, "layers": [layer, layer]}) is None
    assert curves.complete(applied, {**shipped, "gone": 1}) is None  # a metric the run no longer has
