"""An nn.Embedding with fewer rows than the data's largest id is named in the refusal with its row count and the
fix (num_embeddings >= the largest id + 1), not told to make token ids floats."""

import pytest
import torch
from torch import nn

import compress_engine as ce


class Text(nn.Module):
    def __init__(self, rows):
        super().__init__()
        self.enc = nn.Sequential(nn.Embedding(rows, 8))
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(self.enc(x).mean(1))


def data():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, 30, (40, 6), generator=g), torch.randint(0, 3, (40,), generator=g)
    x[0, 0] = 29  # the largest id, in the training split
    return ce.Dataset.from_tensors(x[:24], y[:24], x[24:], y[24:], name="toy")


def test_too_small_embedding_is_named_with_its_rows():
    ds = data()
    with pytest.raises(ce.ModelError) as e:
        ce.check_recipe(Text(20), ce.Recipe(sparsity=0.5), ds)
    text = str(e.value)
    assert "embedding 'enc.0' has 20 rows" in text and "holds ids 0 to 29" in text
    assert "num_embeddings >= 30" in text and "x.float()" not in text
    ce.check_recipe(Text(30), ce.Recipe(sparsity=0.5), ds)  # the advice works
