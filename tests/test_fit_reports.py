"""fit() reported progress every 50 steps only: a teacher's ResNet-8 fine-tune sat on "starting…" for 30-50 s (its
first 50 steps) with no step count and no way for Stop to act. It now reports after the first step, every
report_every steps, and whenever train.REPORT_SECONDS have passed since its last report."""

import torch
from torch import nn

import compress_engine as ce
from compress_engine.core import train


def _data(n):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g)
    return ce.Dataset.from_tensors(x, y, x[:8], y[:8])


def test_progress_after_the_first_step_and_at_least_every_report_seconds(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(train.time, "monotonic", lambda: clock[0])

    def slow_step(step, total):  # every optimizer step takes 0.4 s of the fake clock
        clock[0] += 0.4

    seen = []
    train.fit(nn.Linear(6, 3), _data(40 * 4), epochs=1, batch_size=4, report_every=50, on_step=slow_step,
              progress=lambda step, total, loss, acc: seen.append((step, acc is None)))
    steps = [s for s, mid in seen if mid]
    assert steps[0] == 1  # the first step says the run has started
    assert steps == [1, 4, 7, 10, 13, 16, 19, 22, 25, 28, 31, 34, 37]  # 1 s = 2.5 steps: every third after the first
    assert seen[-1] == (40, False)  # the epoch's end, with its accuracy


def test_a_quick_run_still_reports_every_report_every_steps():
    seen = []
    train.fit(nn.Linear(6, 3), _data(120), epochs=1, batch_size=1, report_every=50,
              progress=lambda step, total, loss, acc: seen.append(step) if acc is None else None)
    assert seen[0] == 1 and {50, 100} <= set(seen)


def test_a_runs_progress_counts_to_the_steps_it_takes_when_a_last_batch_of_one_joins():
    """129 training samples are one batch (a last batch of one joins the one before it), but compress() counted
    ceil(129 / 128) = 2 steps an epoch: its progress never reached its total."""
    seen = []
    ce.compress(nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)), ce.Recipe(sparsity=0.5, finetune_epochs=2),
                _data(129), progress=lambda step, total, *rest: seen.append((step, total)), evaluate=False)
    assert seen and seen[-1][0] == seen[-1][1] == 2
