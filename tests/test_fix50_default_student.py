"""The default MLP student scores its teacher's classes (distill.apply, ffa7558); the checks made before any work
count that same student: on data of fewer classes than the teacher scores, they counted one of the data's classes
(a 10-10 student: 8,015 parameters in the warning, 8,070 trained)."""

import warnings

import torch
from torch import nn

import compress_engine as ce
from compress_engine.core import pipeline


def five_class_data(n=64):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2 * n, 1, 28, 28, generator=g)
    y = torch.arange(2 * n) % 5
    return ce.Dataset.from_tensors(x[:n], y[:n], x[n:], y[n:], name="five")


def test_the_warning_counts_the_student_compress_trains():
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(784, 10), nn.ReLU(), nn.Linear(10, 10))  # 7,960 < any student
    data, recipe = five_class_data(), ce.Recipe(temperature=2.0, student_width=10, distill_epochs=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = ce.compress(teacher, recipe, data)
    trained = ce.param_count(result.model)
    assert trained == 784 * 10 + 10 + 10 * 10 + 10 + 10 * 10 + 10  # 10 outputs: the teacher's classes
    said = [str(w.message) for w in caught if "the default student" in str(w.message)]
    assert said and f"has {trained:,} parameters" in said[0], said


def test_the_artifact_limit_counts_the_teachers_classes():
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(784, 10), nn.ReLU(), nn.Linear(10, 10))
    student = pipeline.default_student(ce.Recipe(temperature=2.0, student_width=10), five_class_data(), teacher)
    assert student.state_dict()[list(student.state_dict())[-1]].shape[0] == 10


class Counting(nn.Module):
    """A teacher whose forward changes a buffer, as a FakeQuantize observer of a QAT model does in eval mode too."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x):
        self.calls += 1
        return self.net(x)


def test_sizing_the_default_student_leaves_the_callers_teacher_as_it_was():
    """A diff review: check_recipe and compress() changed a caller's teacher's buffers (0 -> 1 and 2; a QAT
    teacher's observer scales and min/max) once the checks ran the teacher to size the default student."""
    teacher, data = Counting(), five_class_data()
    recipe = ce.Recipe(temperature=2.0, student_width=10, distill_epochs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ce.check_recipe(teacher, recipe, data)
        assert teacher.calls.item() == 0
        ce.compress(teacher, recipe, data)
    assert teacher.calls.item() == 0
