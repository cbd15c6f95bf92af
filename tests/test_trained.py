"""compress_engine.playground.trained: trained results kept on disk by model + recipe + data."""

import os
import threading
import time

import pytest
import torch

import compress_engine as ce
from compress_engine.playground import sweeps, trained
from compress_engine.playground.trained import TrainedCache


def fake(size=100, acc=0.5, recipe=None):
    """A result as a dict: what put() takes besides a compress() Result."""
    return {"recipe": (recipe or ce.Recipe(sparsity=0.5, finetune_epochs=1)).to_json(), "artifact": b"\x07" * size,
            "metrics": {"artifact_bytes": size, "accuracy": acc, "layers": []}, "history": {"prune": [1.0, 0.5]},
            "timings": {"total": 1.5}}


def test_key_depends_on_model_recipe_data_and_format(monkeypatch):
    r = ce.Recipe(sparsity=0.5, finetune_epochs=1)
    k = TrainedCache.key("m", r, "d")
    assert len(k) == 64 and k == TrainedCache.key("m", r.to_json(), "d")
    assert len({k, TrainedCache.key("m2", r, "d"), TrainedCache.key("m", r.replace(seed=1), "d"),
                TrainedCache.key("m", r, "d2")}) == 4
    monkeypatch.setattr(trained, "FORMAT", trained.FORMAT + 1)
    assert TrainedCache.key("m", r, "d") != k


def test_a_request_no_recipe_names_has_its_own_key_and_keeps_its_extra(tmp_path):
    """A size budget's fit is asked for by a dict, not a Recipe: its key hashes that dict, never equals a recipe's,
    and what it comes with besides its Result (its plan) reads back as get()["extra"]."""
    fit = {"fit_budget": {"bytes": 20_000, "epochs": 1, "kd": 4.0, "focus": 0.0}}
    k = TrainedCache.key("m", fit, "d")
    assert len(k) == 64 and k == TrainedCache.key("m", dict(fit), "d")
    assert k != TrainedCache.key("m", {"fit_budget": {**fit["fit_budget"], "bytes": 20_001}}, "d")
    assert k != TrainedCache.key("m", ce.Recipe(), "d") and k != TrainedCache.key("m2", fit, "d")
    cache = TrainedCache(tmp_path)
    plan = {"budget_bytes": 20_000, "allocation": [{"layer": "a", "sparsity": 0.9, "clusters": None}]}
    assert cache.put(k, "lenet-300-100", fake(500), extra={"plan": plan})
    assert cache.get(k)["extra"] == {"plan": plan}
    plain = TrainedCache.key("m", ce.Recipe(sparsity=0.5, finetune_epochs=1), "d")
    assert cache.put(plain, "lenet-300-100", fake(500)) and cache.get(plain)["extra"] is None


def test_put_then_get_round_trips(tmp_path):
    cache = TrainedCache(tmp_path)
    key = TrainedCache.key("m", ce.Recipe(sparsity=0.5, finetune_epochs=1), "d")
    assert cache.get(key) is None and cache.metrics(key) is None
    assert cache.put(key, "lenet-300-100", fake(1000, 0.87))
    hit = cache.get(key)
    assert hit["model"] == "lenet-300-100" and hit["metrics"]["accuracy"] == 0.87
    assert hit["artifact"] == fake(1000)["artifact"] and hit["history"] == {"prune": [1.0, 0.5]}
    assert cache.metrics(key) == hit["metrics"] and hit["made"].endswith("Z")
    assert [p.name for p in tmp_path.iterdir()] == [f"{key}.cpgt"]  # no temporary file left


def test_a_real_fine_tune_round_trips_bit_for_bit(tmp_path, small, lenet300):
    recipe = ce.Recipe(sparsity=0.9, prune_scope="global", finetune_epochs=1)
    res = ce.compress(lenet300, recipe, small)
    cache = TrainedCache(tmp_path)
    key = cache.key(sweeps.model_fingerprint(lenet300), recipe, sweeps.data_fingerprint(small))
    assert cache.put(key, "lenet-300-100", res)
    hit = TrainedCache(tmp_path).get(key)  # another process would do the same
    assert hit["artifact"] == res.artifact and hit["metrics"]["accuracy"] == res.metrics["accuracy"]
    for name, t in ce.decode(hit["artifact"]).items():
        assert torch.equal(t, res.model.state_dict()[name])


@pytest.mark.parametrize("damage", ["cut", "header", "short artifact", "long artifact", "other key", "huge json"])
def test_a_result_that_does_not_read_back_is_a_miss(tmp_path, damage, monkeypatch):
    cache = TrainedCache(tmp_path)
    key = TrainedCache.key("m", ce.Recipe(finetune_epochs=1), "d")
    cache.put(key, "m", fake(500))
    path = tmp_path / f"{key}.cpgt"
    blob = path.read_bytes()
    if damage == "cut":
        path.write_bytes(blob[:5])
    elif damage == "header":
        path.write_bytes(blob[:8] + b"{not json" + blob[17:])
    elif damage == "short artifact":
        path.write_bytes(blob[:-1])
    elif damage == "long artifact":
        path.write_bytes(blob + b"\0")
    elif damage == "other key":  # a whole result, under another result's name
        other = TrainedCache.key("m", ce.Recipe(finetune_epochs=2), "d")
        cache.put(other, "m", fake(500))
        (tmp_path / f"{other}.cpgt").replace(path)
    else:
        monkeypatch.setattr(trained, "MAX_JSON", 10)
    assert cache.get(key) is None
    if damage in ("cut", "header", "other key", "huge json"):
        assert cache.metrics(key) is None


def test_bad_keys_are_refused(tmp_path):
    for bad in ("../../etc/passwd", "a" * 63, "G" * 64, 5):
        with pytest.raises(ValueError):
            TrainedCache(tmp_path).get(bad)


def test_concurrent_writers_of_one_key_leave_a_whole_result(tmp_path):
    cache = TrainedCache(tmp_path)
    key = TrainedCache.key("m", ce.Recipe(finetune_epochs=1), "d")
    errors = []

    def write(i):
        try:
            for j in range(20):
                assert cache.put(key, "m", fake(300 + 7 * i, acc=i / 10))
                assert cache.get(key) is not None
        except AssertionError as e:
            errors.append(e)
    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    hit = cache.get(key)
    assert len(hit["artifact"]) == hit["metrics"]["artifact_bytes"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_unwritable_folder_is_not_an_error(tmp_path):
    tmp_path.chmod(0o500)
    try:
        assert TrainedCache(tmp_path / "sub").put(TrainedCache.key("m", ce.Recipe(), "d"), "m", fake()) is False
    finally:
        tmp_path.chmod(0o700)


def test_unwritable_path_is_not_an_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the folder should be")
    assert TrainedCache(blocker / "trained").put(TrainedCache.key("m", ce.Recipe(), "d"), "m", fake()) is False


def test_the_oldest_results_go_when_the_folder_is_full(tmp_path, monkeypatch):
    monkeypatch.setattr(trained, "MAX_BYTES", 3000)
    cache = TrainedCache(tmp_path)
    keys = [TrainedCache.key("m", ce.Recipe(seed=i, finetune_epochs=1), "d") for i in range(6)]
    for i, k in enumerate(keys):
        cache.put(k, "m", fake(700))
        os.utime(tmp_path / f"{k}.cpgt", (time.time() - 100 + i, time.time() - 100 + i))
    kept = [k for k in keys if cache.get(k) is not None]
    assert kept == keys[-len(kept):] and 1 <= len(kept) < 6


def test_the_folder_sits_beside_the_run_store(tmp_path, monkeypatch):
    monkeypatch.delenv("COMPRESS_TRAINED", raising=False)
    monkeypatch.setenv("COMPRESS_STORE", str(tmp_path / "s" / "runs.sqlite"))
    assert trained.default_folder() == tmp_path / "s" / "trained"
    monkeypatch.setenv("COMPRESS_TRAINED", str(tmp_path / "elsewhere"))
    assert TrainedCache().folder == tmp_path / "elsewhere"


def test_trains():
    assert not trained.trains(ce.Recipe(sparsity=0.9, clusters=16))
    assert trained.trains(ce.Recipe(sparsity=0.9, finetune_epochs=1))
    assert trained.trains(ce.Recipe(temperature=4.0))
