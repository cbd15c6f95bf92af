"""A sweep with a store, stopped by Ctrl-C before any point finished, left an empty sweep group in the store (the
Compare page listed a sweep of no runs): the group was made before any point ran. It is now made with the first point
saved (or with points stored before, which join it)."""

import pytest

import compress_engine as ce
from compress_engine.playground import sweeps
from small_nets import Digits as Net


def test_ctrl_c_before_any_point_leaves_no_group(tmp_path, monkeypatch):
    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(sweeps, "run_point", interrupted)
    store = ce.Store(tmp_path / "runs.db")
    with pytest.raises(sweeps.Interrupted):
        sweeps.sweep(Net(), ce.Recipe(clusters=8), "digits", "sparsity", [0.5, 0.9], store=store)
    assert store.sweeps() == []


def test_points_saved_and_stored_ones_still_make_one_group(tmp_path):
    store = ce.Store(tmp_path / "runs.db")
    sweeps.sweep(Net(), ce.Recipe(clusters=8), "digits", "sparsity", [0.5], store=store)
    [group] = store.sweeps()
    assert group["runs"] == 1
    # a rerun with one more value: the stored point and the new one, one group
    rows = sweeps.sweep(Net(), ce.Recipe(clusters=8), "digits", "sparsity", [0.5, 0.9], store=store)
    assert len(rows) == 2
    [group] = store.sweeps()
    assert group["runs"] == 2
