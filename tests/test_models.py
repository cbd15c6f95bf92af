
import pytest
import torch

import compress_engine as ce
from compress_engine.playground import cards, zoo as models
from compress_engine.core.train import accuracy

EXPECTED = {"lenet-300-100": (266_610, 0.89), "lenet-5": (431_080, 0.91), "teacher-1200-1200": (2_395_210, 0.89),
            "resnet-8": (308_074, 0.935)}


@pytest.mark.parametrize("name", list(models.SAMPLES))
def test_shipped_checkpoint_scores_its_card(name, fmnist):
    card = ce.model_card(name)
    model = ce.load_model(name)
    params, floor = EXPECTED[name]
    assert ce.param_count(model) == card["parameters"] == params
    # the card's sizes are the dense model's as compress() counts it (a ResNet's BatchNorms folded)
    dense = ce.compress(model, ce.Recipe(), fmnist, evaluate=False).metrics
    assert (card["dense_bytes"], card["deployed_parameters"], card["nonzero_parameters"]) == (
        dense["dense_bytes"], dense["dense_params"], dense["nonzero_params"])
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
        src = cards.SAMPLE_DIR / f"lenet-300-100{suffix}"
        (tmp_path / src.name).write_bytes(src.read_bytes()[: 200 if suffix == ".safetensors" else None])
    monkeypatch.setattr(cards, "SAMPLE_DIR", tmp_path)
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


# --- what a card keeps of the model's answers: Home shows them without torch ------------------------------

@pytest.mark.parametrize("name", list(models.SAMPLES))
def test_card_keeps_the_models_own_predictions_on_the_first_test_images(name, fmnist):
    card = ce.model_card(name)
    x = fmnist.x("test")[:cards.HEAD]
    with torch.no_grad():
        want = ce.load_model(name).eval()(x).argmax(1).tolist()  # the model itself, one plain forward pass
    assert card["test_head"]["predictions"] == want and card["test_head"]["data"] == "fashion-mnist"
    assert ce.head_predictions(card, "fashion-mnist", x.numpy(), 12) == want[:12]
    assert ce.head_predictions(card, "fashion-mnist", ce.first_test_images()["x"], cards.HEAD) == want


def test_card_predictions_are_used_only_for_the_images_they_were_made_on(fmnist):
    card = ce.model_card("lenet-5")
    x = fmnist.x("test")[:cards.HEAD].numpy()
    assert ce.head_predictions(card, "fashion-mnist", x, cards.HEAD) is not None
    other = x.copy()
    other[3, 0, 10, 10] += 1e-6  # one pixel of one image differs: another dataset, or another copy of it
    assert ce.head_predictions(card, "fashion-mnist", other, 12) is None
    assert ce.head_predictions(card, "mnist", x, 12) is None
    assert ce.head_predictions(card, "fashion-mnist", x, cards.HEAD + 1) is None  # more than it keeps
    assert ce.head_predictions(card, "fashion-mnist", x[:12], 12) is None  # too few images to check them all
    assert ce.head_predictions({k: v for k, v in card.items() if k != "test_head"}, "fashion-mnist", x, 12) is None


def test_training_a_sample_model_writes_its_card_with_the_head(tiny_idx, tmp_path, monkeypatch):
    spec, recipe = models.SAMPLES["lenet-300-100"]
    monkeypatch.setitem(models.SAMPLES, "lenet-300-100", ({**spec, "sizes": [784, 16, 10]}, {**recipe, "epochs": 1}))
    data = ce.load_dataset(tiny_idx)
    card = models.train_sample("lenet-300-100", data, out_dir=tmp_path)
    model = models.from_state_dict(card["spec"], __import__("safetensors.torch").torch.load_file(
        tmp_path / "lenet-300-100.safetensors"))
    with torch.no_grad():
        want = model.eval()(data.x("test")[:cards.HEAD]).argmax(1).tolist()
    assert card["test_head"]["predictions"] == want and card["test_head"]["data"] == tiny_idx
    assert ce.head_predictions(card, tiny_idx, ce.first_test_images(tiny_idx)["x"], 12) == want[:12]
    for written in ("lenet-300-100.safetensors", "lenet-300-100.json"):  # readable by all, as a shipped file is
        assert (tmp_path / written).stat().st_mode & 0o777 == 0o644, written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lenet-300-100.json", "lenet-300-100.safetensors"]


def test_cards_are_read_without_torch():
    import os
    import subprocess
    import sys
    from pathlib import Path
    code = ("import sys, compress_engine as ce; names = [c['name'] for c in ce.list_models()]; "
            "card = ce.model_card('lenet-5'); ce.head_predictions(card, 'fashion-mnist', [], 12); "
            "assert 'torch' not in sys.modules, 'torch imported'; print(names)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert out.returncode == 0 and out.stdout.strip() == str(list(models.SAMPLES)), out.stderr[-2000:]


def test_why_the_shipped_weights_hold_zeros_is_what_the_pages_say(fmnist):
    """The pages said training zeroed "the weights of pixels blank in every image"; no Fashion-MNIST pixel is blank in
    every training image. What cards.WHY_ZEROS says now holds for LeNet-300-100: zeros gather on the pixels lit in
    fewest images, and fill the rows of hidden units that never fire."""
    x = fmnist.x("train").flatten(1)
    assert int((x != 0).any(0).logical_not().sum()) == 0  # no pixel blank in every image
    lit = (x != 0).float().mean(0)
    w = models.load_model("lenet-300-100").layers[0].weight.detach()
    dead = (w == 0).all(1)
    assert int(dead.sum()) > 0  # units that never fire: whole rows of zeros
    zeros = (w[~dead] == 0).float().mean(0)  # each pixel's share of zero weights, among live units
    order = torch.argsort(lit)
    rare, common_ = order[:78], order[-78:]  # the tenth of pixels lit in fewest / most images
    assert zeros[rare].mean() > 5 * zeros[common_].mean()
    assert "blank in nearly every image" in cards.WHY_ZEROS and "never fire" in cards.WHY_ZEROS
