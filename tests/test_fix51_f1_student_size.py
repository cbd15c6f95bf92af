"""Distilling into a student with more parameters than the teacher as deployed (BatchNorms folded, as
metrics["dense_params"] counts it) is warned of: the teacher used to be counted with its BatchNorms, so a student
between the two counts got no warning and came out bigger than metrics' dense model."""

import warnings

import pytest
import torch
from torch import nn

import compress_engine as ce
from compress_engine.core.fold import deployed
from compress_engine.core.model import param_count


class Teacher(nn.Module):
    fold_batchnorm = True

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).mean((2, 3)))


class Student(nn.Module):
    def __init__(self, extra):
        super().__init__()
        self.fc = nn.Linear(1, 3)
        self.extra = nn.Parameter(torch.zeros(extra))

    def forward(self, x):
        return self.fc(x.mean((2, 3))) + 0 * self.extra.sum()


def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(80, 1, 6, 6, generator=g)
    y = torch.randint(0, 3, (80,), generator=g)
    return ce.Dataset.from_tensors(x[:48], y[:48], x[48:], y[48:])


def test_student_bigger_than_folded_teacher_is_warned_of():
    torch.manual_seed(0)
    teacher, ds = Teacher(), data()
    folded, unfolded = param_count(deployed(teacher)), param_count(teacher)
    assert folded < unfolded
    student = Student(folded + 1 - param_count(Student(0)))  # between the two counts
    assert folded < param_count(student) < unfolded
    with pytest.warns(UserWarning, match=f"no fewer than the teacher's {folded:,}"):
        r = ce.compress(teacher, ce.Recipe(temperature=2.0, distill_epochs=1), ds, student=student)
    assert r.metrics["dense_params"] == folded < r.metrics["params"]


def test_smaller_student_is_not_warned_of():
    teacher, ds = Teacher(), data()
    student = Student(0)
    assert param_count(student) < param_count(deployed(teacher))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*no fewer than the teacher")
        ce.compress(teacher, ce.Recipe(temperature=2.0, distill_epochs=1), ds, student=student)
