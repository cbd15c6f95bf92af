"""compress() reported nothing while it evaluated: a ResNet-18 pruned, clustered or quantized without fine-tuning
spent ~95 % of its time in the dense model's and the compressed model's test-set evaluations with no progress call
at all (about 4 CPU minutes on 10,000 test images), and a progress callback returning False could not stop them.
Each evaluation batch is now a step of the run's one count."""

import pytest
import torch
from torch import nn

import compress_engine as ce
from compress_engine.core import pipeline


def _conv():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))


def _data(n_train=300, n_test=600):  # a conv net is evaluated 256 images a batch: 3 batches of 600
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n_train + n_test, 1, 8, 8, generator=g), torch.randint(0, 4, (n_train + n_test,), generator=g)
    return ce.Dataset.from_tensors(x[:n_train], y[:n_train], x[n_train:], y[n_train:], name="f7-random")


def test_a_run_without_fine_tuning_reports_each_evaluation_batch():
    model, data, seen = _conv(), _data(), []
    recipe = ce.Recipe(sparsity=0.5)
    res = ce.compress(model, recipe, data, progress=lambda *a: seen.append(a))
    assert [s for s, *_ in seen] == [1, 2, 3, 4, 5, 6]  # 3 batches of the dense model's, 3 of the compressed one's
    assert {t for _, t, *_ in seen} == {6} == {pipeline.progress_steps(model, recipe, data)}
    assert all(loss is None and acc is None for _, _, loss, acc in seen)
    plain = ce.compress(_conv(), recipe, data)  # the same numbers without a callback
    assert plain.artifact == res.artifact and plain.metrics["accuracy"] == res.metrics["accuracy"]


@pytest.mark.parametrize("stop_at", [2, 5])  # in the dense model's evaluation, in the compressed model's
def test_false_during_an_evaluation_stops_the_run(stop_at):
    calls = []

    def progress(step, total, loss, acc):
        calls.append(step)
        return step < stop_at
    with pytest.raises(ce.Stopped):
        ce.compress(_conv(), ce.Recipe(bits=8), _data(), progress=progress)
    assert calls == list(range(1, stop_at + 1))  # stopped at once, within the batch it answered


def test_training_and_evaluations_count_on_as_one_total():
    model, data, seen = _conv(), _data(), []
    recipe = ce.Recipe(sparsity=0.5, clusters=4, finetune_epochs=1, finetune_kd=2.0)
    ce.compress(model, recipe, data, progress=lambda *a: seen.append(a))
    steps = [s for s, *_ in seen]
    total = pipeline.progress_steps(model, recipe, data)
    # 3 test batches, 2 batches of the training set's soft targets, 2 x 3 fine-tuning steps, 3 test batches
    assert total == 3 + 2 + 2 * pipeline.train_steps(data, 1) + 3 == 14
    assert steps == sorted(steps) and steps[-1] == total and {t for _, t, *_ in seen} == {total}
    # the last fine-tuning epoch's evaluation already answered for these very weights: its answers are the
    # result's, and the final evaluation's 3 steps are counted at once
    assert [s for s, _, loss, _ in seen if loss is None] == [1, 2, 3, 4, 5, 14]
    # biases put on a grid after it: weights no evaluation has seen, answered batch by batch
    seen.clear()
    ce.compress(_conv(), recipe.replace(bias_bits=8), data, progress=lambda *a: seen.append(a))  # (uncached reference)
    assert [s for s, _, loss, _ in seen if loss is None] == [1, 2, 3, 4, 5, 12, 13, 14]
    # evaluate=False counts the training alone, as before
    seen.clear()
    ce.compress(model, recipe, data, progress=lambda *a: seen.append(a), evaluate=False)
    assert seen[-1][:2] == (2 + 6, 2 + 6) == (pipeline.progress_steps(model, recipe, data, evaluate=False),) * 2
