"""check_model's words on token ids named the first embedding with no more rows than the largest id: a healthy
positional embedding 'pos' (12 rows) when the token embedding 'tok' was the one too small, and even when the forward
failed for another reason (a shape mismatch); negative ids (-1 padding) were told to become floats. It now names the
embeddings the ids actually overflowed in the failing forward, only when indexing failed, and says that negative ids
cannot index an embedding."""

import pytest
import torch
from torch import nn

import compress_engine as ce
from compress_engine.core.errors import ModelError

L, V = 12, 50


def data(pad=False):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, V, (80, L), generator=g)
    x[0, 0] = V - 1
    if pad:
        x[:, -1] = -1
    y = torch.randint(0, 4, (80,), generator=g)
    return ce.Dataset.from_tensors(x[:60], y[:60], x[60:], y[60:])


class PosTok(nn.Module):
    def __init__(self, rows=V, head=16):
        super().__init__()
        self.pos = nn.Embedding(L, 16)  # before the token embedding, and as many rows as positions
        self.tok = nn.Embedding(rows, 16)
        self.fc = nn.Linear(head, 4)

    def forward(self, x):
        return self.fc((self.tok(x) + self.pos(torch.arange(x.shape[1]))).mean(1))


def refusal(model, ds):
    with pytest.raises(ModelError) as e:
        ce.check_recipe(model, ce.Recipe(sparsity=0.5), ds)
    return str(e.value)


def test_names_the_embedding_the_ids_overflow():
    message = refusal(PosTok(rows=V - 10), data())
    assert "embedding 'tok' has 40 rows" in message and f"num_embeddings >= {V}" in message, message
    assert "'pos'" not in message, message


def test_an_unrelated_failure_gets_no_advice_on_ids():
    message = refusal(PosTok(head=17), data())
    assert "mat1 and mat2" in message
    assert "num_embeddings" not in message and "x.float()" not in message, message


def test_negative_ids_are_named_as_such():
    message = refusal(PosTok(), data(pad=True))
    assert "negative ids cannot index an embedding ('tok' got -1)" in message, message
    assert "x.float()" not in message and "num_embeddings >=" not in message, message


def test_integers_into_a_model_without_embedding_still_get_the_floats_advice():
    model = nn.Sequential(nn.Flatten(), nn.Linear(L, 4))
    assert "x.float() / 255" in refusal(model, data())
