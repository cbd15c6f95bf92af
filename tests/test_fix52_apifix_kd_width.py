"""A distillation student whose logits are not as wide as its teacher's (a 12-logit teacher on 10-class data and a
10-output student, or the reverse) passed check_recipe, then compress() failed with torch's raw RuntimeError inside
kd_loss, after computing the teacher's answers on the whole training set. Both now refuse it up front with a
ModelError naming both widths and the two fixes; at alpha=0 (labels only) it still runs."""

import pytest
import torch
from torch import nn

import compress_engine as ce


@pytest.fixture(scope="module")
def ds():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(200, 64, generator=g), torch.arange(200) % 10
    return ce.Dataset.from_tensors(x[:160], y[:160], x[160:], y[160:])


def net(outputs):
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, outputs))


def small(outputs):  # a student smaller than the teacher (no "not smaller" warning)
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 4), nn.Linear(4, outputs))


@pytest.mark.parametrize("teacher_w, student_w", [(12, 10), (10, 12)])
def test_unequal_widths_are_refused_before_any_work(ds, teacher_w, student_w):
    rec = ce.Recipe(temperature=2, distill_epochs=1)
    with pytest.raises(ce.ModelError) as checked:
        ce.check_recipe(net(teacher_w), rec, ds, student=net(student_w))
    msg = str(checked.value)
    assert f"{teacher_w} classes" in msg and f"student {student_w}" in msg
    assert f"give the student {teacher_w} outputs" in msg and "alpha=0" in msg
    steps = []
    with pytest.raises(ce.ModelError) as compressed:  # the same refusal, before the first progress step
        ce.compress(net(teacher_w), rec, ds, student=net(student_w), progress=lambda *a: steps.append(a))
    assert str(compressed.value) == msg and steps == []


def test_alpha_0_and_equal_widths_still_run(ds):
    rec = ce.Recipe(temperature=2, distill_epochs=1)
    assert ce.check_recipe(net(12), rec.replace(alpha=0.0), ds, student=net(10)) is None
    assert ce.compress(net(12), rec.replace(alpha=0.0), ds, student=net(10)).metrics["accuracy"] is not None
    assert ce.check_recipe(net(12), rec, ds, student=small(12)) is None
    assert ce.compress(net(12), rec, ds, student=small(12)).metrics["accuracy"] is not None
