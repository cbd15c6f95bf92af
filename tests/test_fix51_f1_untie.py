"""Tied weights are refused with the statement that unties them, spelled with the model's own names; running it
lets the model compress."""

import re

import pytest
import torch
from torch import nn

import compress_engine as ce


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(20, 8)
        self.blocks = nn.ModuleList([nn.Linear(8, 8)])
        self.dec = nn.Linear(8, 20)
        self.dec.weight = self.emb.weight

    def forward(self, x):
        return self.dec(self.blocks[0](self.emb(x).mean(1)))


class TiedInList(Tied):
    def __init__(self):
        super().__init__()
        self.dec = nn.Linear(8, 20)  # not tied here: two blocks of a ModuleList are
        self.blocks.append(nn.Linear(8, 8))
        self.blocks[1].weight = self.blocks[0].weight

    def forward(self, x):
        return self.dec(self.blocks[1](self.blocks[0](self.emb(x).mean(1))))


def data():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, 20, (40, 5), generator=g), torch.randint(0, 20, (40,), generator=g)
    return ce.Dataset.from_tensors(x[:24], y[:24], x[24:], y[24:], name="toy")


@pytest.mark.parametrize("make, statement", [
    (Tied, "model.dec.weight = nn.Parameter(model.emb.weight.detach().clone())"),
    (TiedInList, "model.blocks[1].weight = nn.Parameter(model.blocks[0].weight.detach().clone())"),
])
def test_tied_weights_refused_with_how_to_untie(make, statement):
    torch.manual_seed(0)
    model, ds = make(), data()
    with pytest.raises(ce.ModelError) as e:
        ce.check_recipe(model, ce.Recipe(sparsity=0.5), ds)
    text = str(e.value)
    assert statement in text
    exec(re.search(r"e\.g\. (.*) \(each is then", text).group(1), {"model": model, "nn": nn})  # the advice works
    ce.compress(model, ce.Recipe(sparsity=0.5), ds)
