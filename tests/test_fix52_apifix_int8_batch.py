"""int8_latency(model, ds), a Dataset given where a batch of inputs belongs, blamed torch ("cannot run MLP
(AttributeError: 'Dataset' object has no attribute 'flatten')"). A non-tensor example_batch is now refused in words
that say what to pass; a tensor still gets its timings."""

import pytest
import torch
from torch import nn

import compress_engine as ce


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    x, y = torch.randn(40, 16), torch.arange(40) % 4
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4)), ce.Dataset.from_tensors(
        x[:30], y[:30], x[30:], y[30:])


def test_a_dataset_is_refused_with_what_to_pass(setup):
    model, ds = setup
    with pytest.raises(ce.CompressError) as e:
        ce.int8_latency(model, ds, repeats=1)
    msg = str(e.value)
    assert "example_batch must be a tensor" in msg and "got a Dataset" in msg and "data.x('test')[:256]" in msg
    assert "cannot run" not in msg  # not torch's failure


def test_a_list_is_refused_and_a_tensor_runs(setup):
    model, ds = setup
    with pytest.raises(ce.CompressError, match="got a list"):
        ce.int8_latency(model, [[0.0] * 16], repeats=1)
    out = ce.int8_latency(model, ds.x("test"), repeats=1)
    assert out["repeats"] == 1 and out["int8_layers"] == ["1", "3"]
