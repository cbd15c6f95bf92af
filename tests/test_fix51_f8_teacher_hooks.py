"""A teacher with tied weights or a torch prune hook was refused with advice about pruning and storing it, neither of
which a teacher undergoes (it is only run). Both are accepted in a teacher, which distils the same student as the same
teacher made plain."""

import pytest
import torch
import torch.nn.functional as F
import torch.nn.utils.prune as prune
from torch import nn

import compress_engine as ce
from small_nets import Plain, data

class Student(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.fc = nn.Linear(20, 4)

    def forward(self, x):
        return self.fc(x)


class Tied(Plain):
    def __init__(self):
        super().__init__()
        self.fc1b = nn.Linear(20, 32)
        self.fc1b.weight = self.fc1.weight

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x) + self.fc1b(x)))


DISTIL = ce.Recipe(temperature=4.0, distill_epochs=1)


def pruned():
    model = Plain()
    prune.l1_unstructured(model.fc1, "weight", 0.5)
    return model


def untied():
    model = Tied()
    model.fc1b.weight = nn.Parameter(model.fc1.weight.detach().clone())
    return model


def removed():
    model = pruned()
    prune.remove(model.fc1, "weight")
    return model


@pytest.mark.parametrize("teacher, same", [(Tied, untied), (pruned, removed)], ids=["tied", "torch-pruned"])
def test_a_teacher_may_be_tied_or_pruned_by_torch(teacher, same):
    """Distilled from it as from the same teacher made plain: the same student."""
    got = ce.compress(teacher(), DISTIL, data(), student=Student())
    want = ce.compress(same(), DISTIL, data(), student=Student())
    assert got.artifact == want.artifact
    assert got.metrics["accuracy"] == want.metrics["accuracy"]
