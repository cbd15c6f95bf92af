import json
import math
from dataclasses import fields

import pytest

from compress_engine import Recipe, RecipeError
BAD = {  # field -> values that must be refused
    "sparsity": [-0.1, 1.0, 1.5, math.nan, math.inf, "0.5", None, True],
    "prune_scope": ["local", "", None, 1],
    "structured": ["yes", 1, None],
    "schedule": ["linear", None],
    "clusters": [1, 257, 0, -4, 3.5, math.nan, "16", True, 10**12],
    "conv_clusters": [1, 257, 0, 2.5, math.nan, "256", True],
    "cluster_init": ["random", "", None],
    "bits": [0, 9, 15, 17, 32, 3.5, -8, math.nan, "8", True],
    "symmetric": ["no", 0],
    "per_channel": [None, "true"],
    "calibration": ["max", None],
    "temperature": [0.5, 0.0, -1.0, 21.0, math.inf, math.nan, "4"],
    "alpha": [-0.01, 1.01, math.nan, None],
    "student_width": [0, 9, 2001, 10.5, None, math.inf],
    "distill_epochs": [0, 51, 1.5, None],
    "finetune_epochs": [-1, 51, 0.5, math.nan, None],
    "lr": [0.0, -1e-3, 2.0, math.nan, None],
    "huffman": [None, "false", 1],
    "seed": [-1, 2**31, 1.5, None, "0"],
    "bias_bits": [0, 9, 3.5, "8", True, math.nan],
    "finetune_kd": [0.5, 0.0, 21.0, math.nan, math.inf, "4", True],
    "prune_focus": [-0.1, 4.5, math.nan, None, "1", True],
    "precision": ["float16", "bf16", None, 16, True],
    "layers": [{"a": {"sparsity": 2}}, {"a": {}}, {"a": {"k": 1}}, [1, 2], "{", {"": {"clusters": 4}},
               {"a": {"clusters": 1}}, 5, None, [("a", 0.5, None), ("a", 0.6, None)], {"a": {"clusters": True}}],
}


def test_every_field_has_bad_values_listed():
    assert set(BAD) == {f.name for f in fields(Recipe)}


@pytest.mark.parametrize("name,value", [(n, v) for n, vs in BAD.items() for v in vs])
def test_invalid_field_names_itself(name, value):
    with pytest.raises(RecipeError) as e:
        Recipe(**{name: value})
    assert str(e.value).startswith(f"{name}=")


def test_defaults_are_valid_and_do_nothing():
    assert Recipe().techniques() == ["dense"]


def test_json_round_trip_and_hash():
    r = Recipe(sparsity=0.9, prune_scope="global", clusters=16, cluster_init="kmeans++", huffman=True,
               finetune_epochs=1, seed=7)
    back = Recipe.from_json(r.to_json())
    assert back == r and hash(back) == hash(r)
    assert json.loads(r.to_json())["clusters"] == 16
    assert {r: 1}[back] == 1


def test_precision_keeps_earlier_keys_and_names_only_a_trained_runs_format():
    """Recipe.precision: float32 (the default) leaves every earlier recipe's JSON as it was; bfloat16 is in the JSON
    (and so the keys and the artifact's header) of a recipe that trains, and not of one that trains nothing, whose
    run it does not change."""
    assert "precision" not in Recipe(finetune_epochs=1).to_dict()
    tuned = Recipe(sparsity=0.9, finetune_epochs=1, precision="bfloat16")
    assert tuned.to_dict()["precision"] == "bfloat16" and tuned.changes()["precision"] == "bfloat16"
    assert Recipe.from_json(tuned.to_json()) == tuned and tuned.to_json() != tuned.replace(precision="float32").to_json()
    distilled = Recipe(temperature=4.0, precision="bfloat16")
    assert distilled.to_dict()["precision"] == "bfloat16"
    one_shot = Recipe(sparsity=0.9, precision="bfloat16")
    assert one_shot.to_json() == Recipe(sparsity=0.9).to_json() and "precision" not in one_shot.changes()


def test_prune_focus_keeps_earlier_keys_and_round_trips():
    """A field added after the first release is left out of the JSON at its default, so every earlier recipe's
    run-store key, cache key and artifact bytes stay what they were; set, it round-trips."""
    assert "prune_focus" not in Recipe(sparsity=0.9).to_dict()
    assert Recipe(sparsity=0.9).to_json() == Recipe.from_json(Recipe(sparsity=0.9).to_json()).to_json()
    r = Recipe(sparsity=0.9, prune_focus=1)
    assert r.to_dict()["prune_focus"] == 1.0 and Recipe.from_json(r.to_json()) == r
    assert r.replace(prune_focus=0.0) == Recipe(sparsity=0.9)
    with pytest.raises(RecipeError, match="prune_focus"):
        Recipe(sparsity=0.5, structured=True, prune_focus=1.0)


def test_integral_floats_are_normalised():
    assert Recipe(clusters=16.0).clusters == 16 and isinstance(Recipe(clusters=16.0).clusters, int)
    assert Recipe(sparsity=1 // 2).sparsity == 0.0


@pytest.mark.parametrize("kwargs,words", [
    ({"clusters": 16, "bits": 4}, "not both"),
    ({"bits": 1, "symmetric": True}, "bits=1"),
    ({"conv_clusters": 256}, "needs clusters"),
    ({"schedule": "gradual"}, "finetune_epochs"),
    ({"structured": True, "prune_scope": "global", "sparsity": 0.5}, "structured"),
])
def test_conflicting_fields(kwargs, words):
    with pytest.raises(RecipeError, match=words):
        Recipe(**kwargs)


def test_per_layer_overrides_round_trip_and_resolve():
    r = Recipe(clusters=8, conv_clusters=32, bias_bits=8,
               layers={"fc1.weight": {"sparsity": 0.97, "clusters": 4}, "conv1.weight": {"sparsity": 0.5}})
    back = Recipe.from_json(r.to_json())
    assert back == r and hash(back) == hash(r) and {r: 1}[back] == 1
    assert json.loads(r.to_json())["layers"] == {"conv1.weight": {"sparsity": 0.5},
                                                 "fc1.weight": {"clusters": 4, "sparsity": 0.97}}
    assert Recipe(layers=r.layers) == Recipe(layers=json.loads(r.to_json())["layers"])  # canonical either way
    assert r.layer("fc1.weight") == (0.97, 4) and r.layer("conv1.weight", conv=True) == (0.5, 32)
    assert r.layer("fc2.weight") == (0.0, 8) and r.techniques() == ["prune", "cluster"]
    assert Recipe(layers={"fc1.weight": {"clusters": 4}}).techniques() == ["cluster"]
    with pytest.raises(RecipeError, match="uniform quantization"):
        Recipe(bits=4, layers={"fc1.weight": {"clusters": 4}})
    with pytest.raises(RecipeError, match="prune_scope"):
        Recipe(prune_scope="global", layers={"fc1.weight": {"sparsity": 0.5}})


@pytest.mark.parametrize("text", ["", "[1, 2]", "{", '{"sparsity": 0.5, "bogus": 1}', "null"])
def test_bad_json(text):
    with pytest.raises(RecipeError):
        Recipe.from_json(text)


def test_frozen():
    with pytest.raises(Exception):
        Recipe().sparsity = 0.5


def test_a_field_the_recipe_does_not_have_is_a_recipe_error_naming_the_one_meant():
    """Python's own TypeError ("unexpected keyword argument") before; now the engine's error, as from JSON."""
    with pytest.raises(RecipeError, match=r"unknown recipe field\(s\) 'sparsty' \(did you mean 'sparsity'\?\)"):
        Recipe(sparsty=0.9)
    with pytest.raises(RecipeError, match=r"unknown recipe field\(s\) 'bogus'; allowed: \['alpha'"):
        Recipe(bogus=1)
    with pytest.raises(RecipeError, match=r"'pruning'"):
        Recipe.from_json('{"pruning": 0.5}')
    assert Recipe(sparsity=0.5).sparsity == 0.5


def test_a_huge_whole_number_is_refused_by_its_length_not_by_pythons_digit_limit():
    """Python's own refusal ('use sys.set_int_max_str_digits() to increase the limit') is no help to whoever wrote
    the JSON; 30 digits still parse, and then meet the field's range."""
    with pytest.raises(RecipeError, match=r"whole number of 5,000 digits.*seed, is at most 2,147,483,647") as e:
        Recipe.from_json('{"seed": ' + "9" * 5000 + "}")
    assert "set_int_max_str_digits" not in str(e.value)
    with pytest.raises(RecipeError, match="seed"):
        Recipe.from_json('{"seed": ' + "9" * 30 + "}")
    assert Recipe.from_json('{"seed": 7}').seed == 7
