"""A model over the artifact format's cap (encode.MAX_ELEMENTS numbers) is refused by compress()'s up-front check
(check_recipe), not by encode() after pruning and fine-tuning; a structured recipe whose smaller model fits goes
through. The cap is monkeypatched small so sample models stand in for 50 M-weight ones."""

import math

import pytest

import compress_engine as ce
from compress_engine.core import encode as enc


def artifact_count(blob):
    return sum(math.prod(s) for s in enc.read_shapes(blob)[1].values())


@pytest.mark.parametrize("name, recipe", [("lenet-300-100", ce.Recipe(sparsity=0.9)),
                                          ("resnet-8", ce.Recipe(bits=4)),  # BatchNorms folded: fewer numbers
                                          ("lenet-5", ce.Recipe(structured=True, sparsity=0.5))])
def test_the_check_counts_exactly_what_the_artifact_holds(fmnist, monkeypatch, name, recipe):
    model = ce.load_model(name)
    n = artifact_count(ce.compress(model, recipe, fmnist, evaluate=False).artifact)
    monkeypatch.setattr(enc, "MAX_ELEMENTS", n)
    ce.check_recipe(model, recipe, fmnist)  # exactly at the cap: it fits
    monkeypatch.setattr(enc, "MAX_ELEMENTS", n - 1)
    with pytest.raises(ce.CompressError, match=f"{n:,}") as e:
        ce.check_recipe(model, recipe, fmnist)
    assert f"{n - 1:,}" in str(e.value) and "artifact format's cap" in str(e.value)
    assert "encode.MAX_ELEMENTS" in str(e.value)


def test_refused_before_any_work_with_what_to_do(fmnist, lenet300, monkeypatch):
    monkeypatch.setattr(enc, "MAX_ELEMENTS", 200_000)  # lenet-300-100 holds 266,610
    steps = []
    with pytest.raises(ce.ModelError) as e:
        ce.compress(lenet300, ce.Recipe(sparsity=0.9, finetune_epochs=1), fmnist,
                    progress=lambda *a: steps.append(a))
    assert not steps  # no training ran
    msg = str(e.value)
    assert "266,610" in msg and "200,000" in msg and "structured=True" in msg
    # a structured recipe that leaves too many units is refused with its own count
    with pytest.raises(ce.RecipeError, match="structured pruning at sparsity=0.1 leaves the model"):
        ce.check_recipe(lenet300, ce.Recipe(structured=True, sparsity=0.1), fmnist)
    # one whose smaller model fits goes through, and its artifact is written
    result = ce.compress(lenet300, ce.Recipe(structured=True, sparsity=0.5), fmnist, evaluate=False)
    assert artifact_count(result.artifact) <= 200_000


def test_a_default_student_over_the_cap_is_refused(fmnist, lenet300, monkeypatch):
    monkeypatch.setattr(enc, "MAX_ELEMENTS", 100_000)
    with pytest.raises(ce.ModelError, match="the student holds"):
        ce.check_recipe(lenet300, ce.Recipe(temperature=4, student_width=300), fmnist)
    ce.check_recipe(lenet300, ce.Recipe(temperature=4, student_width=100), fmnist)  # 784*100+... fits
