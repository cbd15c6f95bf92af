"""A point a page's Save run stored before (in no sweep) is drawn in the sweep that reaches it: the command line's
sweep found it stored, printed it as one of its 4 points, and the store kept only 3 runs in the sweep, so Compare's
sweep line skipped it."""

import torch
from torch import nn

import compress_engine as ce
from compress_engine.playground import sweeps
from compress_engine.playground.store import Store


def test_a_point_saved_from_a_page_joins_the_sweep_that_finds_it(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10)).eval()
    digits = ce.load_dataset("digits")
    store = Store(tmp_path / "runs.sqlite")
    base = ce.Recipe(clusters=8)
    _, model_id, name = sweeps._the_model(net, "net")
    _, data_key, data_name = sweeps._the_data(digits)
    saved = ce.compress(net, base.replace(sparsity=0.5), digits)
    page_run = store.save(name, base.replace(sparsity=0.5), saved.metrics, data=data_name,
                          point_key=sweeps.point_key(model_id, base.replace(sparsity=0.5), data_key))
    rows = ce.sweep(net, base, digits, "sparsity", [0.3, 0.5], store=store, model_name="net")
    assert [r["sparsity"] for r in rows] == [0.3, 0.5]
    runs = store.list()
    assert len(runs) == 2 and page_run in [r["id"] for r in runs]
    assert {r["sweep_id"] for r in runs} == {store.sweeps()[0]["id"]}  # both points in the one sweep
