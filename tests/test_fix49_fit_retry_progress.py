"""fit_budget's progress through a try again: a try over the budget trains its second stage once more, and the steps
it reports must count on (step 901 of 938 went back to 535 of 938 on ResNet-8's Fit, read as a stall or a restart)."""

import warnings

import torch
from torch import nn

import compress_engine as ce
from compress_engine.core import budget, pipeline


def test_a_try_again_counts_its_steps_on_out_of_a_larger_total(monkeypatch):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    digits = ce.load_dataset("digits")
    scan = ce.sensitivity.scan(model, digits, split="train", sparsities=(0.0, 0.5), clusters=(None, 4, 2),
                               subset=300, use_cache=False)
    monkeypatch.setattr(budget, "overhead_bytes", lambda m, r: 10)  # every try misses: the header is not counted
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", budget.OverBudget)
        _, plan = ce.fit_budget(model, digits, 1900, finetune_epochs=1, retries=1, scan=scan,
                                progress=lambda step, total, *_: seen.append((step, total)))
    assert len(plan["attempts"]) == 2, plan["attempts"]
    stage2 = pipeline.progress_steps(model, ce.Recipe(clusters=2, finetune_epochs=1), digits)  # its count
    assert [s for s, _ in seen] == sorted(s for s, _ in seen), seen  # never back
    first, last = sorted({t for _, t in seen})  # pruning and stage 2, then stage 2 again
    assert last == first + stage2 and seen[-1] == (last, last)
