"""A setting that prunes nothing is one recipe on every page: no pruning threshold (prune_scope) at 0 %."""

import compress_engine as ce
from test_app import page


def test_export_at_zero_sparsity_saves_clusterings_run(tiny, tmp_path, monkeypatch):
    """Export at 0 % (its start's global threshold) with 16 clusters and Huffman coding is Clustering's 16 clusters
    with Huffman coding: saving both keeps one run (two runs, 14 bytes apart, were stored)."""
    from compress_engine.playground.store import Store
    monkeypatch.setenv("COMPRESS_STORE", str(tmp_path / "runs.sqlite"))
    at = page("export")
    assert at.radio(key="export_scope").value == "global"
    at.slider(key="export_sparsity").set_value(0.0).run()
    at.button(key="export_save").click().run()
    assert not at.exception and not at.error
    at2 = page("clustering")
    at2.toggle(key="cluster_huffman").set_value(True).run()
    at2.button(key="cluster_save").click().run()
    assert not at2.exception and not at2.error
    rows = Store().list()
    assert len(rows) == 1, [(r["technique"], r["recipe"]) for r in rows]
    assert rows[0]["recipe"] == ce.Recipe(clusters=16, huffman=True).to_json()


def test_pruning_at_zero_is_the_dense_run(tiny, tmp_path, monkeypatch):
    """Pruning at 0 % with its global start saves the dense recipe, and its curve's 0 % point is the dense run."""
    from compress_engine.playground.store import Store
    monkeypatch.setenv("COMPRESS_STORE", str(tmp_path / "runs.sqlite"))
    at = page("pruning")
    assert at.radio(key="prune_scope").value == "global"
    at.slider(key="prune_sparsity").set_value(0).run()
    at.button(key="prune_save").click().run()
    assert not at.exception and not at.error
    rows = Store().list()
    assert [r["recipe"] for r in rows] == [ce.Recipe().to_json()]


def test_scoped_keeps_a_pruning_recipe_and_drops_an_unused_threshold():
    from pages import common
    pruned = ce.Recipe(sparsity=0.5, prune_scope="global")
    assert common.scoped(pruned) is pruned
    assert common.scoped(ce.Recipe(prune_scope="global", clusters=8)) == ce.Recipe(clusters=8)
    assert common.scoped(None) is None
