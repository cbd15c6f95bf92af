"""A forward that loops `for t in range(x.size(1))` cannot be traced by torch.fx ('Proxy' object cannot be
interpreted as an integer): structured pruning's refusal names range() over a tensor's size and the fix, a fixed
step count (a constructor argument), with which the same model traces and is pruned."""

import pytest
import torch
from torch import nn

import compress_engine as ce
from compress_engine.core.errors import ModelError


class Loop(nn.Module):
    def __init__(self, steps=None):
        super().__init__()
        self.steps = steps
        self.emb = nn.Embedding(20, 8)
        self.cell = nn.LSTMCell(8, 12)
        self.fc = nn.Linear(12, 3)

    def forward(self, x):
        e = self.emb(x)
        h = e.new_zeros(x.size(0), self.cell.hidden_size)
        c = torch.zeros_like(h)
        for t in range(x.size(1) if self.steps is None else self.steps):
            h, c = self.cell(e[:, t], (h, c))
        return self.fc(h)


def data():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, 20, (40, 5), generator=g), torch.randint(0, 3, (40,), generator=g)
    return ce.Dataset.from_tensors(x[:24], y[:24], x[24:], y[24:], name="toy")


def test_range_over_a_size_is_named_with_the_fix():
    recipe = ce.Recipe(structured=True, sparsity=0.5)
    with pytest.raises(ModelError) as e:
        ce.check_recipe(Loop(), recipe, data())
    text = str(e.value)
    assert "range(x.size(1))" in text and "fixed number of steps" in text and "constructor argument" in text
    ce.check_recipe(Loop(steps=5), recipe, data())  # the advice works
