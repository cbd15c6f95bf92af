"""A model pruned with torch.nn.utils.prune is refused with torch's own way out (prune.remove), naming the tensors
its hook computes the weight from; after prune.remove it compresses, keeping the zeros pruning gave it."""

import pytest
import torch
import torch.nn.utils.prune as tp
from torch import nn

import compress_engine as ce


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, generator=g)
    y = torch.randint(0, 3, (64,), generator=g)
    return ce.Dataset.from_tensors(x[:48], y[:48], x[48:], y[48:])


def test_torch_pruned_model_refused_with_prune_remove_then_compresses():
    torch.manual_seed(0)
    model, ds = Net(), data()
    tp.l1_unstructured(model.fc1, "weight", amount=0.5)
    with pytest.raises(ce.ModelError) as e:
        ce.check_recipe(model, ce.Recipe(sparsity=0.5), ds)
    msg = str(e.value)
    assert "torch.nn.utils.prune.remove(model.fc1, 'weight')" in msg
    assert "weight_orig" in msg and "weight_mask" in msg
    assert "bias" not in msg and "remove_weight_norm" not in msg
    with pytest.raises(ce.ModelError, match=r"prune\.remove\(model\.fc1, 'weight'\)"):
        ce.compress(model, ce.Recipe(sparsity=0.5), ds)

    tp.remove(model.fc1, "weight")  # the advice works
    zeros = model.fc1.weight == 0
    assert int(zeros.sum()) == 64
    r = ce.compress(model, ce.Recipe(sparsity=0.5), ds)
    assert bool((r.model.fc1.weight[zeros] == 0).all())


def test_weight_norm_keeps_its_advice():
    model = nn.Sequential(torch.nn.utils.spectral_norm(nn.Linear(8, 3)))
    with pytest.raises(ce.ModelError, match="remove_spectral_norm") as e:
        ce.check_recipe(model, ce.Recipe(sparsity=0.5), data())
    assert "prune.remove" not in str(e.value)
