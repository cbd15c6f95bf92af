"""One recipe-size limit: a recipe Export takes is one the run store saves, and the other way round (the store
allowed 65,536 characters, Export 64,000 bytes)."""

import pytest

from compress_engine.core.errors import StoreError
from compress_engine.playground import store, units


def padded(n):
    """A valid recipe JSON of exactly n characters (ASCII: n bytes)."""
    head, tail = '{"sparsity": 0.5', "}"
    return head + " " * (n - len(head) - len(tail)) + tail


def metrics():
    return {"params": 1, "nonzero_params": 1, "artifact_bytes": 1, "ratio": 1.0, "accuracy": 0.5}


def test_the_store_and_export_share_one_limit_in_kb_of_1000_bytes():
    from pages import export
    assert export.MAX_RECIPE_KB == store.MAX_RECIPE_KB
    assert store.MAX_RECIPE_JSON == store.MAX_RECIPE_KB * units.KB


def test_the_store_refuses_what_export_refuses():
    from pages import export
    limit = export.MAX_RECIPE_KB * units.KB  # what Export takes at most (its upload check)
    assert store._validate("m", padded(limit), metrics(), None, None)["technique"] == "prune"
    with pytest.raises(StoreError, match="a recipe is under"):
        store._validate("m", padded(limit + 1), metrics(), None, None)
