"""Structured pruning's refusal of a forward looping range(x.shape[2] // 4) went on after tracing's advice (loop a
fixed number of steps) with the older '(as pack_padded_sequence, .item(), .tolist() and NumPy do)', which such a model
does not use. It ends with tracing's advice."""

import pytest
import torch

from compress_engine.core.errors import ModelError
from compress_engine.core.structured import prune_structured
from small_nets import CNNFold

ADVICE = "loop a fixed number of steps instead (e.g. range(self.steps), a constructor argument)"


def test_structured_refusal_has_no_stale_advice():
    with pytest.raises(ModelError) as e:
        prune_structured(CNNFold(), 0.5, torch.randn(2, 3, 8, 8))
    message = str(e.value)
    assert ADVICE in message, message
    assert "pack_padded_sequence" not in message and "NumPy" not in message, message
