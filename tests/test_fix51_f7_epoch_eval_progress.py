"""fit() evaluates the whole test set at the end of each epoch when given a progress callback (the accuracy its
report carries): minutes for a big model (a ResNet-18's 10,000 test images), during which it said nothing and could
not be stopped. It now reports (step, total, None, None) at that evaluation's batches once train.REPORT_SECONDS
have passed, and a False from it stops the run there."""

import pytest
import torch
from torch import nn

import compress_engine as ce
from compress_engine.core import train

clock = [100.0]


class SlowToEvaluate(nn.Module):
    """A linear model whose every forward pass in eval mode takes 2 s of a fake clock (a big model's test batch)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        if not self.training:
            clock[0] += 2.0
        return self.fc(x)


def _data():  # 8 training rows (one step an epoch at batch_size 8), 3,000 test rows: 3 batches of 1,000
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(3008, 6, generator=g), torch.randint(0, 3, (3008,), generator=g)
    return ce.Dataset.from_tensors(x[:8], y[:8], x[8:], y[8:])


def test_the_epochs_evaluation_reports_and_can_be_stopped(monkeypatch):
    monkeypatch.setattr(train.time, "monotonic", lambda: clock[0])
    torch.manual_seed(0)
    seen = []
    train.fit(SlowToEvaluate(), _data(), epochs=2, batch_size=8, progress=lambda *a: seen.append(a))
    during = [(s, t) for s, t, loss, acc in seen if loss is None and acc is None]
    assert during == [(1, 2)] * 3 + [(2, 2)] * 3  # each epoch's 3 test batches, at the step reached
    assert [(s, t) for s, t, loss, acc in seen if acc is not None] == [(1, 2), (2, 2)]  # then each epoch's accuracy
    calls = []

    def stop_in_the_evaluation(step, total, loss, acc):
        calls.append((step, loss, acc))
        return not (loss is None and acc is None)
    with pytest.raises(ce.Stopped):
        train.fit(SlowToEvaluate(), _data(), epochs=2, batch_size=8, progress=stop_in_the_evaluation)
    assert calls[-1] == (1, None, None) and all(acc is None for *_, acc in calls)  # stopped before its accuracy
