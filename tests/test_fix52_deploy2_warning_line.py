"""Every engine warning meant for the user points at the user's own line (the first frame outside compress_engine),
found by one helper (errors.warn) instead of hand-counted stacklevels that wrappers (@renamed, fit_flops calling
compress, fit_budget's inner steps) shifted: fit_flops' CollapseWarning used to point into flops.py."""

import sys
import warnings

import pytest
import torch
from torch import nn

import compress_engine as ce
from small_nets import gaussian_mlp as trained


@pytest.fixture(scope="module")
def easy():
    return trained(3.0)


def here():
    """The line number of the caller's next line: where the call under test is."""
    return sys._getframe(1).f_lineno + 1


def caught_at(caught, category):
    found = [w for w in caught if issubclass(w.category, category)]
    assert found, f"no {category.__name__}: {[str(w.message)[:80] for w in caught]}"
    return [(w.filename, w.lineno) for w in found]


def test_compress_collapse_warns_at_the_callers_line(easy):
    model, ds = easy
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = here()
        ce.compress(model, ce.Recipe(sparsity=0.999), ds)
    assert set(caught_at(caught, ce.CollapseWarning)) == {(__file__, line)}


def test_fit_budget_collapse_and_renamed_keyword_warn_at_the_callers_line(tmp_path):
    model, ds = trained(0.2)  # 400 bytes bring it to chance level
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = here()
        ce.fit_budget(model, ds, 400, finetune_epochs=0, cache_dir=tmp_path)
    assert set(caught_at(caught, ce.CollapseWarning)) == {(__file__, line)}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = here()
        ce.fit_budget(model, ds, 400, epochs=0, cache_dir=tmp_path)  # the old name: a DeprecationWarning too
    assert set(caught_at(caught, ce.CollapseWarning)) == {(__file__, line)}
    assert set(caught_at(caught, DeprecationWarning)) == {(__file__, line)}


def test_fit_flops_collapse_warns_at_the_callers_line(easy):
    _, ds = easy
    torch.manual_seed(0)  # two hidden layers of 16: a tenth of the FLOPs leaves a unit or two, at chance level
    model = nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(ds.x("train")), ds.y("train")).backward()
        opt.step()
    model.eval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = here()
        ce.fit_flops(model, ds, 0.08, finetune_epochs=0)
    assert set(caught_at(caught, ce.CollapseWarning)) == {(__file__, line)}


def test_a_student_no_smaller_warns_at_the_callers_line(easy):
    model, ds = easy
    student = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = here()
        ce.compress(model, ce.Recipe(temperature=4, distill_epochs=1), ds, student=student)
    assert (__file__, line) in caught_at(caught, UserWarning)
    assert all(w.filename == __file__ for w in caught if "no fewer than the teacher" in str(w.message))
