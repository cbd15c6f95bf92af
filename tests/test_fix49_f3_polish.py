"""Hostile-upload polish: a huge recipe value is shown briefly, a recipe key given twice is refused, a pickle renamed
.safetensors is named as a pickle, and an artifact's architecture may hold no key the engine does not read."""

import pickle

import pytest
import torch

import compress_engine as ce
from compress_engine.core import encode as enc
from compress_engine.playground import zoo


@pytest.mark.parametrize("value", ["1e308", "-1e300", "1e20"])
def test_a_huge_recipe_value_is_named_briefly(value):
    with pytest.raises(ce.RecipeError) as e:
        ce.Recipe.from_json(f'{{"clusters": {value}}}')
    assert "far out of range (between 2 and 256)" in str(e.value) and len(str(e.value)) < 80, str(e.value)
    with pytest.raises(ce.RecipeError, match="a number of about 5,000 digits: far out of range"):
        ce.Recipe(clusters=10**5000)


def test_a_recipe_key_given_twice_is_refused():
    with pytest.raises(ce.RecipeError, match="recipe JSON gives 'sparsity' twice"):
        ce.Recipe.from_json('{"sparsity": 0.5, "sparsity": 0.9}')
    with pytest.raises(ce.RecipeError, match="'sparsity' twice"):
        ce.Recipe.from_json('{"layers": {"fc1": {"sparsity": 0.5, "sparsity": 0.9}}}')


def test_a_pickle_renamed_safetensors_is_named_a_pickle():
    with pytest.raises(ce.ModelError) as e:
        ce.read_weights(pickle.dumps({"fc.weight": [0.0] * 100}), "w.safetensors")
    assert "is a bare pickle or a pre-1.6 PyTorch checkpoint" in str(e.value)
    assert "header claims" not in str(e.value)


def test_an_artifact_architecture_with_an_unknown_key_is_refused():
    spec = {"arch": "mlp", "sizes": [784, 10], "junk": "x" * 1000}
    with pytest.raises(ce.ModelError, match=r"unknown key\(s\) 'junk'; it takes arch, dropout, sizes"):
        zoo.build(spec)
    sd = {k: v.detach().clone() for k, v in zoo.build({"arch": "mlp", "sizes": [784, 10]}).state_dict().items()}
    art = enc.encode(sd, meta={"spec": spec, "model_class": "MLP", "recipe": {}})
    with pytest.raises(ce.ModelError, match="unknown key"):
        ce.decode_model(art)
    for name, (good, _) in zoo.cards.SAMPLES.items():  # every sample's spec still builds
        assert isinstance(zoo.build(good), torch.nn.Module), name
