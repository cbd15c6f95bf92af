"""fit() with a training split that leaves a last batch of one sample, for a model with a BatchNorm1d."""

import pytest
import torch
from torch import nn

import compress_engine as ce
from compress_engine.core.train import fit


def _data(n_train, n_test=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    return ce.Dataset.from_tensors(torch.randn(n_train, 8, generator=g), torch.randint(0, 3, (n_train,), generator=g),
                                   torch.randn(n_test, 8, generator=g), torch.randint(0, 3, (n_test,), generator=g))


def _bn_mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))


def test_last_batch_of_one_joins_the_one_before():
    from compress_engine.core.train import batch_bounds
    assert batch_bounds(129, 128) == [(0, 129)]
    assert batch_bounds(257, 128) == [(0, 128), (128, 257)]
    assert batch_bounds(256, 128) == [(0, 128), (128, 256)]
    assert batch_bounds(1, 128) == [(0, 1)]


def test_fit_trains_a_batchnorm_model_when_a_batch_of_one_is_left():
    history = fit(_bn_mlp(), _data(129), epochs=2, batch_size=128)
    assert len(history) == 2  # one step an epoch: the 129th sample joined the first batch


def test_compress_fine_tunes_and_distills_a_batchnorm_model_on_128k_plus_1():
    data = _data(257)
    res = ce.compress(_bn_mlp(), ce.Recipe(sparsity=0.5, finetune_epochs=1), data)
    assert 0 <= res.metrics["accuracy"] <= 1
    teacher = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 3))
    res = ce.compress(teacher, ce.Recipe(temperature=4, distill_epochs=1), data, student=_bn_mlp())
    assert 0 <= res.metrics["accuracy"] <= 1


def test_one_training_sample_with_batchnorm_is_refused_up_front():
    with pytest.raises(ce.DatasetError, match="1 sample.*BatchNorm '1'.*at least 2 training samples"):
        fit(_bn_mlp(), _data(1), epochs=1)
