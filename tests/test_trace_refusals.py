"""Structured pruning refuses a model torch.fx cannot follow in one line that fits the cause: a trace that computes
something else than the forward (an isinstance check fixed at trace time) names the layer where it breaks and the
shapes, and nothing is printed to stderr before it (torch's ShapeProp prints a traceback); a call that needs real
values (pack_padded_sequence) or Python's len() gets advice about those, not about control flow."""

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import compress_engine as ce
from compress_engine.core import structured
from compress_engine.core.errors import ModelError


class LSTMGeneric(nn.Module):
    """One forward for a GRU and an LSTM: isinstance on fx's stand-in is False, so the trace takes (h, c) as h."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 8)
        self.rnn = nn.LSTM(8, 6, num_layers=2, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(12, 3)

    def forward(self, x):
        out, h = self.rnn(self.emb(x))
        if isinstance(h, tuple):
            h = h[0]
        return self.fc(torch.cat([h[-2], h[-1]], 1))


class Packed(LSTMGeneric):
    def forward(self, x):
        lengths = (x != 0).sum(1).clamp(min=1).cpu()
        _, (h, _) = self.rnn(pack_padded_sequence(self.emb(x), lengths, batch_first=True, enforce_sorted=False))
        return self.fc(torch.cat([h[-2], h[-1]], 1))


class Plain(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x)


class Lengths(Plain):
    def forward(self, x):
        return self.fc(x) * len(self.fc(x))


def tokens():
    return torch.randint(1, 50, (2, 7), generator=torch.Generator().manual_seed(0))


def test_a_trace_that_computes_something_else_names_the_layer_and_prints_nothing(capfd):
    with pytest.raises(ModelError) as e:
        structured.plan(LSTMGeneric(), 0.5, tokens())
    text = str(e.value)
    assert "computes something different from running forward" in text and "isinstance" in text
    assert "at layer 'fc' on input of shape (4, 4, 6)" in text and "example_input of shape (2, 7)" in text
    assert "\n" not in text and "ShapeProp" not in text
    assert capfd.readouterr().err == ""


def test_compress_refuses_it_in_the_same_words(capfd):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randint(1, 50, (24, 7), generator=g), torch.randint(0, 3, (24,), generator=g)
    ds = ce.Dataset.from_tensors(x[:16], y[:16], x[16:], y[16:], name="toy")
    with pytest.raises(ModelError, match="at layer 'fc'"):
        ce.compress(LSTMGeneric(), ce.Recipe(structured=True, sparsity=0.5), ds)
    assert "Traceback" not in capfd.readouterr().err


def test_a_model_that_does_not_take_the_input_is_still_told_so(capfd):
    with pytest.raises(ModelError, match=r"Plain does not run on example_input of shape \(2, 5\): it fails at "
                                         r"layer 'fc' on input of shape \(2, 5\)"):
        structured.plan(Plain(), 0.5, torch.randn(2, 5))
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("model, x, says", [
    (Packed(), tokens(), "needs real values (as pack_padded_sequence"),
    (Lengths(), torch.randn(2, 4), "Python's len() and iteration"),
])
def test_the_advice_fits_the_cause(model, x, says):
    with pytest.raises(ModelError) as e:
        structured.plan(model, 0.5, x)
    assert says in str(e.value) and "control flow" not in str(e.value)
