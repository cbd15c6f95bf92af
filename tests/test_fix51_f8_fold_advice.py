"""A forward looping range(x.shape[2] // 4) cannot be traced; tracing's advice (loop a fixed number of steps) was cut
off by fold's str(e)[:160] in the BatchNorm-folding refusal. It is kept whole."""

import pytest

from compress_engine.core.errors import ModelError
from compress_engine.core.fold import foldable_pairs
from small_nets import CNNFold

ADVICE = "loop a fixed number of steps instead (e.g. range(self.steps), a constructor argument)"


def test_fold_refusal_keeps_the_whole_advice():
    with pytest.raises(ModelError) as e:
        foldable_pairs(CNNFold())
    assert ADVICE in str(e.value), str(e.value)
