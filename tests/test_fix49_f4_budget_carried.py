"""fit_budget on a model whose carried tensors are untrained (zero biases and BatchNorm statistics cost nothing as
they are, their full size once fine-tuned): the artifact must fit, and one that still does not fit after the tries
must be said so (an OverBudget warning, plan["fits"] False, the command line's exit status 1)."""

import warnings

import pytest
import torch
from torch import nn

import compress_engine as ce
from compress_engine.core import budget


def dw(i, o, s):
    return nn.Sequential(nn.Conv2d(i, i, 3, s, 1, groups=i, bias=False), nn.BatchNorm2d(i), nn.ReLU6(inplace=True),
                         nn.Conv2d(i, o, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU6(inplace=True))


class MobileNetish(nn.Module):  # the reviewer's model (/tmp/s49/r4/models.py), untrained
    def __init__(self, nc=10):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6(inplace=True),
                                      dw(16, 32, 1), dw(32, 64, 2), dw(64, 64, 1))
        self.classifier = nn.Sequential(nn.Dropout(0.1), nn.Linear(64, nc))

    def forward(self, x):
        return self.classifier(self.features(x).mean([2, 3]))


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    torch.manual_seed(0)
    model = MobileNetish()
    digits = ce.load_dataset("digits")
    scan = ce.sensitivity.scan(model, digits, split="train", refit=True, sparsities=(0.0, 0.5, 0.9),
                               clusters=(None, 16, 4, 2), subset=500, use_cache=False)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        res, plan = ce.fit_budget(model, digits, 8000, finetune_epochs=1, kd=4.0, scan=scan)
    return model, digits, res, plan, seen


def test_untrained_carried_tensors_are_counted_and_the_artifact_fits(fitted):
    model, _, res, plan, seen = fitted
    assert plan["fits"] and len(res.artifact) <= 8000, plan["attempts"]
    assert not [w for w in seen if issubclass(w.category, budget.OverBudget)]
    # what the header and carried tensors were given is what they took once fine-tuned, within a few per cent
    weights = {a["layer"] for a in plan["allocation"]}
    carried = sum(la["bytes"] for la in res.metrics["layers"] if la["name"] not in weights)
    assert plan["overhead_bytes"] >= 0.95 * (carried + res.metrics["bytes_breakdown"]["header"])


def test_a_result_still_over_the_budget_says_so(fitted, monkeypatch):
    """One try whose carried tensors are counted as almost nothing: the artifact is over, and fit_budget says so."""
    model, digits, _, _, _ = fitted
    scan = ce.sensitivity.scan(model, digits, split="train", refit=True, sparsities=(0.0, 0.5, 0.9),
                               clusters=(None, 16, 4, 2), subset=500, use_cache=False)
    monkeypatch.setattr(budget, "overhead_bytes", lambda m, r: 10)
    with pytest.warns(budget.OverBudget, match="over the budget of 8,000 bytes after 1 try "):
        res, plan = ce.fit_budget(model, digits, 8000, finetune_epochs=0, retries=0, scan=scan)
    assert plan["fits"] is False and len(res.artifact) > 8000


def test_the_command_line_exits_1_when_the_artifact_is_over_the_budget(monkeypatch, capsys, tmp_path):
    from compress_engine.playground import cli
    torch.manual_seed(0)
    res = ce.compress(MobileNetish(), ce.Recipe(sparsity=0.5), ce.load_dataset("digits"))

    def over(model, data, budget_bytes, **kw):
        warnings.warn(budget.over_budget(budget_bytes, len(res.artifact), 3), budget.OverBudget)
        return res, {"budget_bytes": budget_bytes, "bytes": len(res.artifact), "fits": False, "attempts": [{}] * 3}
    monkeypatch.setattr(ce, "fit_budget", over)
    out = tmp_path / "small.cpg"
    code = cli.main(["run", "--model", "lenet-5", "--data", "digits", "--budget-kb", "1", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1
    assert "over the budget of 1,000 bytes after 3 tries" in err and str(out) in err
    assert out.read_bytes() == res.artifact
