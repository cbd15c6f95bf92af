"""A fine-tune's last epoch ends with a test-set evaluation (fit() reports its accuracy), and compress() then
evaluated the same weights again for the result: 0.34 s of LeNet-5's "Fine-tune 1 epoch" at 2 threads, about 4 s of
a ResNet-8 fine-tune. compress() now keeps that evaluation's answers with a copy of the weights they are of, and
uses them when the result still holds exactly those weights. These tests check that a reused result is the one a
fresh evaluation gives (against the run with the reuse turned off, and against the decoded artifact scored on its
own), that every change after the training makes compress() evaluate again, and that -0.0 against +0.0 does not."""

import pytest
import torch
from sklearn.datasets import load_digits

import compress_engine as ce
from compress_engine.core import pipeline
from compress_engine.core.train import fit


def _digits():
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16
    y = torch.tensor(y)
    return ce.Dataset.from_tensors(x[:1400], y[:1400], x[1400:], y[1400:], name="digits")


@pytest.fixture(scope="module")
def digits():
    return _digits()


def _mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 48), torch.nn.ReLU(), torch.nn.Linear(48, 10))


_trained = {}


def _conv():
    """A small conv net trained on the digits (once; a fresh copy each call), so its answers are not one class."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, padding=1),
                              torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8 * 64, 10))
    if not _trained:
        fit(net, _digits(), epochs=3, lr=3e-3)
        _trained.update(net.state_dict())
    net.load_state_dict(_trained)
    return net


def _compress(model, recipe, data, monkeypatch, reuse=True):
    """compress() with progress (the epoch-end evaluations need it); returns the result and how many times compress()
    evaluated the result itself."""
    calls = []
    real = pipeline.answers

    def counted(*a, **k):
        calls.append(1)
        return real(*a, **k)
    with monkeypatch.context() as m:
        m.setattr(pipeline, "answers", counted)
        if not reuse:
            m.setattr(pipeline.Context, "answers_of", lambda self, model: None)
        res = ce.compress(model, recipe, data, progress=lambda *a: None)
    return res, len(calls)


@pytest.mark.parametrize("recipe, make", [
    (ce.Recipe(sparsity=0.7, finetune_epochs=2), "_mlp"),                              # masks re-applied after it
    (ce.Recipe(sparsity=0.5, schedule="gradual", finetune_epochs=2), "_mlp"),          # Masked baked in
    (ce.Recipe(clusters=8, finetune_epochs=1), "_mlp"),                                # centroids fine-tuned
    (ce.Recipe(sparsity=0.5, bits=4, finetune_epochs=1), "_mlp"),                      # quantization-aware last
    (ce.Recipe(temperature=2.0, distill_epochs=2, student_width=16), "_mlp"),          # the distilled student
    (ce.Recipe(sparsity=0.5, finetune_epochs=1), "_conv"),                             # a conv net: channels-last
], ids=["prune", "gradual", "cluster", "quantize", "distill", "conv"])
def test_the_last_trainings_answers_are_the_result_a_fresh_evaluation_gives(digits, monkeypatch, recipe, make):
    model = globals()[make]()
    ce.reference(model, digits)  # the dense reference cached: compress()'s answers() calls are then the result's own
    kept, kept_calls = _compress(model, recipe, digits, monkeypatch)
    fresh, fresh_calls = _compress(model, recipe, digits, monkeypatch, reuse=False)
    assert (kept_calls, fresh_calls) == (0, 1)
    assert kept.artifact == fresh.artifact
    assert kept.metrics == fresh.metrics
    module = None if recipe.temperature is not None else globals()[make]()  # the student: the artifact names it
    assert kept.metrics["accuracy"] == ce.evaluate_artifact(kept.artifact, digits, module=module)["accuracy"]


@pytest.mark.parametrize("recipe", [
    ce.Recipe(sparsity=0.7, finetune_epochs=1, bias_bits=4),  # biases put on a grid after all training
    ce.Recipe(sparsity=0.7),                                  # no training: nothing evaluated it
], ids=["bias-grid", "one-shot"])
def test_weights_changed_after_the_training_are_evaluated_again(digits, monkeypatch, recipe):
    model = _mlp()
    ce.reference(model, digits)
    res, calls = _compress(model, recipe, digits, monkeypatch)
    fresh, _ = _compress(model, recipe, digits, monkeypatch, reuse=False)
    assert calls == 1
    assert res.metrics == fresh.metrics


def test_answers_of_compares_every_weight_by_value():
    ctx = pipeline.Context(ce.Recipe(), None, pipeline._Progress(None, 0), torch.zeros(1))
    model = _mlp()
    pred = torch.arange(5)
    with ctx.scoring(model) as on_evaluated:
        on_evaluated(torch.zeros(5, dtype=torch.long))
        on_evaluated(pred)  # the last epoch's answers are the ones kept
    assert ctx.answers_of(model) is pred
    with torch.no_grad():
        model[1].weight[0, 0] = 0.0
        ctx.scored[1]["1.weight"][0, 0] = -0.0  # the same value: the same answers
    assert ctx.answers_of(model) is pred
    with torch.no_grad():
        model[3].bias[2] += 1e-6
    assert ctx.answers_of(model) is None
    other = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))  # other names and shapes
    assert ctx.answers_of(other) is None
    with ctx.scoring(model):  # a training that never evaluated (no progress): nothing kept from the one before
        pass
    assert ctx.scored is None and ctx.answers_of(model) is None
