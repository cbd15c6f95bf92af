"""A model copy.deepcopy cannot copy (an attribute holding a threading.Lock) went through check_model, and compress()
crashed with pickle's raw "cannot pickle '_thread.lock' object" from the engine's copy of the model (train.py's
fast_eval_copy); sweep --workers told the user to run without --workers, where the same copy fails. check_model now
refuses it before any work, naming the attribute and the fix (remove it); the check copies no tensor."""

import copy
import threading

import pytest
import torch
from torch import nn

import compress_engine as ce
from compress_engine.core.errors import ModelError
from compress_engine.core.model import check_model
from small_nets import data


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.fc2 = nn.Linear(20, 16), nn.Linear(16, 4)
        self.fc1.lock = threading.Lock()

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def test_compress_refuses_an_uncopyable_model_naming_the_attribute_and_the_fix():
    model = Net()
    with pytest.raises(ModelError, match=r"'fc1\.lock' \(a _thread\.lock\).*remove it from the model") as e:
        ce.compress(model, ce.Recipe(sparsity=0.5), data())
    assert "without --workers" not in str(e.value)
    del model.fc1.lock  # the advice, followed
    result = ce.compress(model, ce.Recipe(sparsity=0.5), data())
    assert result.metrics["sparsity"] > 0.4


def test_a_teacher_is_checked_too():
    student = nn.Sequential(nn.Linear(20, 4))
    with pytest.raises(ModelError, match=r"teacher model.*'fc1\.lock'"):
        ce.compress(Net(), ce.Recipe(temperature=4.0, distill_epochs=1), data(), student=student)


def test_the_check_copies_no_tensor(monkeypatch):
    model = Net()
    del model.fc1.lock
    model.register_buffer("scale", torch.ones(3))
    copied = []
    for cls in (torch.Tensor, nn.Parameter):
        real = cls.__deepcopy__
        monkeypatch.setattr(cls, "__deepcopy__", lambda self, memo, real=real: copied.append(self) or real(self, memo))
    check_model(model)
    assert copied == []
    copy.deepcopy(model)  # what the engine does later: every tensor (the counting works)
    assert len(copied) == 5


def test_a_sweep_without_workers_refuses_it_before_any_point():
    from compress_engine.playground import sweeps
    with pytest.raises(ModelError, match=r"'fc1\.lock'.*remove it from the model"):
        sweeps.sweep(Net(), ce.Recipe(clusters=8), data(), "sparsity", [0.5, 0.9])


class Unpicklable:
    """Copied by deepcopy (shared), but not picklable: the sweep's own check on Ray is what names it."""

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        raise TypeError("no pickling")


def test_ray_message_says_remove_it_only():
    ray = pytest.importorskip("ray")
    from compress_engine.playground import sweeps
    model = Net()
    model.fc1.lock = Unpicklable()
    check_model(model)  # copyable: the engine can work on it here
    with pytest.raises(ModelError, match=r"'fc1\.lock'.*cannot be pickled.*: remove it from the model") as e:
        sweeps._sendable(ray, model)
    assert "without" not in str(e.value)
