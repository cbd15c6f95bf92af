"""Store.save(model, recipe, metrics, artifact, data=...) wants names, but `model` beside recipe and metrics reads as
the nn.Module, and passing a module or a Dataset was refused with the module's repr, cut short, as the "value". A
module is now stored under its class name (as a sweep of it is) and a Dataset under its .name; anything else is
refused saying what to pass; names work as before."""

import pytest
import torch
from torch import nn

import compress_engine as ce
from compress_engine.core.errors import StoreError


class ResCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        return self.fc(x)


@pytest.fixture(scope="module")
def run():
    torch.manual_seed(0)
    x, y = torch.randn(40, 8), torch.arange(40) % 4
    ds = ce.Dataset.from_tensors(x[:30], y[:30], x[30:], y[30:])
    model = ResCNN()
    return model, ds, ce.compress(model, ce.Recipe(sparsity=0.5), ds)


def test_a_module_and_a_dataset_are_stored_under_their_names(tmp_path, run):
    model, ds, r = run
    store = ce.Store(tmp_path / "runs.sqlite")
    run_id = store.save(model, r.recipe, r.metrics, r.artifact, data=ds)
    got = store.get(run_id)
    assert got["model"] == "ResCNN" and got["data"] == ds.name
    by_name = store.save("ResCNN", r.recipe, r.metrics, r.artifact, data=ds.name)  # names, as before
    assert (store.get(by_name)["model"], store.get(by_name)["data"]) == ("ResCNN", ds.name)


def test_anything_else_is_refused_saying_what_to_pass(tmp_path, run):
    model, ds, r = run
    store = ce.Store(tmp_path / "runs.sqlite")
    with pytest.raises(StoreError) as e:
        store.save(r, r.recipe, r.metrics, r.artifact)  # the Result, not its model
    assert str(e.value) == ("model=a Result: must be the run's model name (text, e.g. 'lenet-300-100') or the "
                            "nn.Module (stored under its class name)")
    with pytest.raises(StoreError, match=r"data=\{'name': 'x'\}: must be the dataset's name \(text"):
        store.save(model, r.recipe, r.metrics, r.artifact, data={"name": "x"})
    assert store.list() == []


def test_a_sweep_of_a_module_names_it_as_save_does(run):
    from compress_engine.playground import sweeps
    from compress_engine.playground.store import model_name
    model, _, _ = run
    assert sweeps._the_model(model, None)[2] == model_name(model) == "ResCNN"
