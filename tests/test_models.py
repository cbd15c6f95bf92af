
import pytest
import torch

import compress_engine as ce
from compress_engine.playground import zoo as models
from compress_engine.core.train import accuracy

EXPECTED = {"lenet-300-100": (266_610, 0.89), "lenet-5": (431_080, 0.91), "teacher-1200-1200": (2_395_210, 0.89),
            "resnet-8": (308_074, 0.935)}


@pytest.mark.parametrize("name", list(models.SAMPLES))
def test_shipped_checkpoint_scores_its_card(name, fmnist):
    card = ce.model_card(name)
    model = ce.load_model(name)
    params, floor = EXPECTED[name]
    assert ce.param_count(model) == card["parameters"] == params
    acc = accuracy(model, fmnist.x("test"), fmnist.y("test"))
    assert acc == pytest.approx(card["test_accuracy"], abs=2e-4)
    assert acc >= floor


def test_list_models_cards():
    names = [c["name"] for c in ce.list_models()]
    assert names == list(models.SAMPLES)


def test_unknown_model():
    with pytest.raises(ce.ModelError, match="unknown model"):
        ce.load_model("resnet-50")


def test_corrupt_checkpoint(tmp_path, monkeypatch):
    for suffix in (".json", ".safetensors"):
        src = models.SAMPLE_DIR / f"lenet-300-100{suffix}"
        (tmp_path / src.name).write_bytes(src.read_bytes()[: 200 if suffix == ".safetensors" else None])
    monkeypatch.setattr(models, "SAMPLE_DIR", tmp_path)
    with pytest.raises(ce.ModelError, match="rebuild it"):
        ce.load_model("lenet-300-100")


@pytest.mark.parametrize("spec", [None, {}, {"arch": "vgg"}, {"arch": "mlp", "sizes": [784]},
                                  {"arch": "mlp", "sizes": [784, -3, 10]}, {"arch": "mlp", "sizes": "784"},
                                  {"arch": "lenet5", "widths": [20, 50]}, {"arch": "mlp", "sizes": [784, 10**9, 10]}])
def test_bad_specs(spec):
    with pytest.raises(ce.ModelError):
        models.build(spec)


def test_state_dict_shape_mismatch():
    sd = models.build({"arch": "mlp", "sizes": [784, 30, 10]}).state_dict()
    with pytest.raises(ce.ModelError, match="do not fit"):
        models.from_state_dict({"arch": "mlp", "sizes": [784, 31, 10]}, sd)


def test_huge_spec_is_refused_before_allocating():
    """An untrusted spec (an artifact's meta, an upload's shapes) claiming 10^10 weights: the shapes are
    compared on the meta device, so this is refused at once instead of allocating 40 GB."""
    sd = models.build({"arch": "mlp", "sizes": [784, 30, 10]}).state_dict()
    with pytest.raises(ce.ModelError, match="do not fit"):
        models.from_state_dict({"arch": "mlp", "sizes": [784, 100_000, 100_000, 10]}, sd)
    artifact = ce.encode(sd, meta={"spec": {"arch": "lenet5", "widths": [100_000, 100_000, 100_000]}})
    with pytest.raises(ce.ModelError, match="do not fit"):
        ce.decode_model(artifact)
