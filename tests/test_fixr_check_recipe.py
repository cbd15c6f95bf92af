"""ce.check_recipe refuses, at once, what compress() refuses before any work: the same check (model against the
data, structured pruning's plan), not a lighter one (README: "what compress() would refuse of it")."""

import time

import pytest
import torch
from torch import nn

import compress_engine as ce


def data():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(96, 1, 8, 8, generator=g), torch.randint(0, 4, (96,), generator=g)
    return ce.Dataset.from_tensors(x[:64], y[:64], x[64:], y[64:])


class One(nn.Module):  # its only layer's channels reach the output: structured pruning can remove nothing
    def __init__(self, out=4):
        super().__init__()
        self.a = nn.Linear(64, out)

    def forward(self, x):
        return self.a(x.flatten(1))


def refusal(call):
    with pytest.raises(ce.CompressError) as e:
        call()
    return type(e.value), str(e.value)


@pytest.mark.parametrize("model, recipe", [
    (lambda: One(), ce.Recipe(structured=True, sparsity=0.5)),   # nothing to remove
    (lambda: One(3), ce.Recipe(sparsity=0.5)),                   # 3 outputs for 4 classes
])
def test_check_recipe_refuses_what_compress_refuses(model, recipe):
    ds = data()
    said = refusal(lambda: ce.check_recipe(model(), recipe, ds))
    assert said == refusal(lambda: ce.compress(model(), recipe, ds))
    assert said[0] is ce.ModelError


def test_check_recipe_is_quick_and_passes_a_good_recipe():
    ds = data()
    t = time.perf_counter()
    assert ce.check_recipe(One(), ce.Recipe(sparsity=0.5, finetune_epochs=50), ds) is None
    assert time.perf_counter() - t < 2  # no training, no evaluation


def test_export_shows_a_structured_refusal_of_an_uploaded_recipe(fmnist, tmp_path, monkeypatch):
    """Export checks an uploaded recipe with check_recipe: a structured fraction for the output layer, which compress()
    refuses before any work, was "Using the uploaded recipe" in green; it is now refused there, as a message."""
    from test_app_hostile import assert_clean, at_page, errors
    monkeypatch.setenv("COMPRESS_STORE", str(tmp_path / "runs.sqlite"))
    recipe = ce.Recipe(structured=True, sparsity=0.5, layers={"layers.2.weight": {"sparsity": 0.5}})
    at = at_page("export", "lenet-300-100").file_uploader(key="recipe_upload").upload(
        "r.json", recipe.to_json().encode()).run()
    assert_clean(at)
    assert not at.success
    assert any("Cannot use r.json" in e and "kept whole: its channels reach the model output" in e
               for e in errors(at)), errors(at)


def test_a_structured_sweep_of_a_model_fx_cannot_trace_stops_before_any_point(monkeypatch):
    """The sweep runs check_recipe on every point before any: a structured plan compress() cannot make is refused
    there, naming the point, not recorded as every point's error."""
    from compress_engine.playground import sweeps

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.h = nn.Linear(64, 32), nn.Linear(32, 4)

        def forward(self, x):
            x = x.flatten(1)
            if x.sum() > 0:  # Python control flow on a tensor's value: torch.fx cannot trace it
                x = x * 2
            return self.h(torch.relu(self.a(x)))

    monkeypatch.setattr(sweeps, "run_point", lambda *a: pytest.fail("a point ran"))
    with pytest.raises(ce.ModelError, match=r"^sparsity=0.5: structured pruning cannot trace Branchy"):
        ce.sweep(Branchy(), ce.Recipe(structured=True), data(), "sparsity", [0.5, 0.9])
