"""A run saved from a page (Save run) that a sweep then reaches joins that sweep: the sweep said "4 points stored"
and Compare drew 3 (store.save and store.stored_points returned the stored run without attaching it)."""

import compress_engine as ce
from compress_engine.playground.store import Store


def metrics(acc=0.8):
    return {"params": 100, "nonzero_params": 50, "artifact_bytes": 1000, "ratio": 0.4, "accuracy": acc,
            "dense_accuracy": 0.9, "layers": []}


def test_saved_run_joins_sweep_on_save(tmp_path):
    store = Store(tmp_path / "runs.sqlite")
    recipe = ce.Recipe(sparsity=0.8, clusters=16, huffman=True)
    page = store.save("lenet-5", recipe, metrics(), data="fashion-mnist", point_key="k80")
    group = store.sweep_group("g", "lenet-5", "fashion-mnist", "sparsity", recipe)
    again = store.save("lenet-5", recipe, metrics(), sweep=group, data="fashion-mnist", point_key="k80")
    other = store.save("lenet-5", recipe.replace(sparsity=0.9), metrics(0.7), sweep=group, data="fashion-mnist",
                       point_key="k90")
    assert again == page and store.count() == 2  # still one run
    assert {r["id"]: r["sweep_id"] for r in store.list()} == {page: group, other: group}
    assert [s["runs"] for s in store.sweeps()] == [2]


def test_saved_run_joins_sweep_when_found_stored(tmp_path):
    store = Store(tmp_path / "runs.sqlite")
    recipe = ce.Recipe(sparsity=0.8, clusters=16, huffman=True)
    page = store.save("lenet-5", recipe, metrics(), data="fashion-mnist", point_key="k80")
    group = store.sweep_group("g", "lenet-5", "fashion-mnist", "sparsity", recipe)
    assert list(store.stored_points(["k80", "k90"], sweep=group)) == ["k80"]
    [row] = store.list()
    assert row["id"] == page and row["sweep_id"] == group and row["sweep"].startswith(f"sweep #{group}")
    # a run of another sweep stays in its own
    g2 = store.sweep_group("g2", "lenet-5", "fashion-mnist", "clusters", recipe)
    store.stored_points(["k80"], sweep=g2)
    store.save("lenet-5", recipe, metrics(), sweep=g2, data="fashion-mnist", point_key="k80")
    assert store.list()[0]["sweep_id"] == group and store.count() == 1


def test_structured_pruning_is_its_own_technique(tmp_path):
    """A structured-pruned run (whole units removed) was saved as "prune", like single weights pruned: README treats
    "structured prune" as a technique of its own, and Compare coloured the two alike."""
    from compress_engine.playground.store import technique_label
    assert technique_label(ce.Recipe(sparsity=0.5, structured=True)) == "structured prune"
    assert technique_label(ce.Recipe(sparsity=0.5, structured=True, bits=4)) == "structured prune+quantize"
    assert technique_label(ce.Recipe(sparsity=0.5)) == "prune"
    store = Store(tmp_path / "runs.sqlite")
    store.save("lenet-5", ce.Recipe(sparsity=0.5, structured=True), metrics())
    assert store.list()[0]["technique"] == "structured prune"
