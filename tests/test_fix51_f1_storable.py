"""A tensor of the state dict that the artifact cannot store (a complex buffer) is refused before any work, by
check_recipe, describe and compress, naming it and the fix: it used to pass every check and fail in encode(), after
fine-tuning. A non-persistent buffer, which the artifact does not hold, passes; so does a teacher's buffer (no
artifact holds the teacher)."""

import pytest
import torch
from torch import nn

import compress_engine as ce
from compress_engine.core.encode import DTYPES


class Net(nn.Module):
    def __init__(self, persistent=True):
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.fc2 = nn.Linear(16, 3)
        self.register_buffer("phase", torch.tensor([1 + 2j, 0.5j], dtype=torch.complex64), persistent=persistent)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class Student(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(x)


def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 8, generator=g)
    y = torch.randint(0, 3, (96,), generator=g)
    return ce.Dataset.from_tensors(x[:64], y[:64], x[64:], y[64:])


def test_unstorable_buffer_refused_before_any_training():
    ds, recipe = data(), ce.Recipe(sparsity=0.5, finetune_epochs=2)
    with pytest.raises(ce.ModelError) as e:
        ce.check_recipe(Net(), recipe, ds)
    msg = str(e.value)
    assert "buffer 'phase' is torch.complex64" in msg
    assert "persistent=False" in msg and "torch.view_as_real" in msg
    assert ", ".join(DTYPES) in msg  # the encoder's own list
    with pytest.raises(ce.ModelError, match="buffer 'phase'"):
        ce.describe(Net(), ds)
    steps = []
    with pytest.raises(ce.ModelError, match="buffer 'phase'"):
        ce.compress(Net(), recipe, ds, progress=lambda *a: steps.append(a))
    assert steps == []  # refused before any training step


def test_non_persistent_buffer_and_teachers_buffer_pass():
    ds = data()
    r = ce.compress(Net(persistent=False), ce.Recipe(sparsity=0.5), ds)
    assert "phase" not in r.model.state_dict() and r.metrics["artifact_bytes"] == len(r.artifact)
    r = ce.compress(Net(), ce.Recipe(temperature=2.0, distill_epochs=1), ds, student=Student())
    assert set(r.model.state_dict()) == {"fc.weight", "fc.bias"}
