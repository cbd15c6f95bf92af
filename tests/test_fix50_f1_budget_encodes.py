"""fit_budget encodes its artifact once per try, measuring the fixed-width length (metrics["plain_bytes"]) in the
same pass (encode(..., plain_meta=)), rather than encoding once more after its tries; plain_bytes is still what
encoding the same weights with fixed-width codes gives, and what the replay compress(model, recipe, data) reports."""

import sys
import warnings

import compress_engine as ce
from compress_engine.core import budget
from compress_engine.core.encode import encode
from compress_engine.core.pipeline import artifact_meta
from compress_engine.playground import zoo


def test_one_encode_per_try_and_the_same_plain_bytes(fmnist, lenet300, monkeypatch):
    calls = []
    real = budget.encode

    def spy(*a, **k):  # fit_budget's own encodes (overhead() measures the header with one too)
        if sys._getframe(1).f_code.co_name == "fit_budget":
            calls.append(k)
        return real(*a, **k)

    monkeypatch.setattr(budget, "encode", spy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", budget.OverBudget)
        result, plan = ce.fit_budget(lenet300, fmnist, 20_000, finetune_epochs=0,
                                     shipped=[zoo.scan_dir("lenet-300-100")])
    assert len(calls) == len(plan["attempts"])
    state = {k: v.detach().contiguous() for k, v in result.model.state_dict().items()}
    plain = encode(state, result.grids, artifact_meta(result.model, result.recipe.replace(huffman=False)))
    assert result.metrics["plain_bytes"] == len(plain)
    assert result.artifact == encode(state, result.grids, artifact_meta(result.model, result.recipe), huffman=True)
