"""A classifier may return more logits than the data has classes (fits_logits), so the refusal of too few says
'at least', not an exact (N, classes) shape the engine does not require."""

import pytest
import torch
from torch import nn

import compress_engine as ce
from compress_engine.core.model import check_model


def test_too_few_logits_are_refused_with_at_least_the_class_count():
    x, y = torch.randn(40, 1, 8, 8), torch.arange(40) % 4
    ds = ce.Dataset.from_tensors(x, y, x, y)
    with pytest.raises(ce.ModelError, match=r"returns \(2, 3\) .*at least 4 class scores on dim 1; more are fine"):
        check_model(nn.Sequential(nn.Flatten(), nn.Linear(64, 3)), ds)
    check_model(nn.Sequential(nn.Flatten(), nn.Linear(64, 6)), ds)  # more outputs than classes: taken
