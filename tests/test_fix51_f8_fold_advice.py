"""A forward looping range(x.shape[2] // 4) cannot be traced; tracing's advice (loop a fixed number of steps) was cut
off by fold's str(e)[:160] in the BatchNorm-folding refusal. It is kept whole."""

import pytest
import torch.nn.functional as F
from torch import nn

from compress_engine.core.errors import ModelError
from compress_engine.core.fold import foldable_pairs

ADVICE = "loop a fixed number of steps instead (e.g. range(self.steps), a constructor argument)"


class CNNFold(nn.Module):
    fold_batchnorm = True

    def __init__(self):
        super().__init__()
        self.c, self.bn, self.fc = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Linear(8, 4)

    def forward(self, x):
        h = F.relu(self.bn(self.c(x)))
        for _ in range(x.shape[2] // 4):
            h = h * 1.0
        return self.fc(h.mean((2, 3)))


def test_fold_refusal_keeps_the_whole_advice():
    with pytest.raises(ModelError) as e:
        foldable_pairs(CNNFold())
    assert ADVICE in str(e.value), str(e.value)
