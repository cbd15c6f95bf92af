"""compress_engine.core.train: subnormal weights never ship, never survive training, never come out of compress()."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import compress_engine as ce
from compress_engine.core.train import fit, flush_subnormals_

SAMPLES = sorted((Path(__file__).resolve().parent.parent / "sample_models").glob("*.safetensors"))


def subnormals(tensors):
    """How many values of the floating tensors lie strictly between 0 and their dtype's smallest normal."""
    return sum(int(((t != 0) & (t.abs() < torch.finfo(t.dtype).tiny)).sum()) for t in tensors if t.is_floating_point())


def test_flush_zeroes_exactly_the_subnormals_of_each_dtype():
    for dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
        tiny = torch.finfo(dtype).tiny
        t = torch.tensor([tiny, -tiny, tiny / 4, -tiny / 4, 0.0, -0.0, 1.0], dtype=dtype)
        assert subnormals([t]) == 2
        assert flush_subnormals_([t]) == 2
        assert t.tolist() == [tiny, -tiny, 0.0, 0.0, 0.0, -0.0, 1.0]
        assert not torch.signbit(t[3])  # a flushed value is +0, which the encoder stores as "no element"
    ints = torch.tensor([1, 0, -3])
    assert flush_subnormals_([ints]) == 0 and ints.tolist() == [1, 0, -3]


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_shipped_checkpoints_hold_no_subnormal_weight(path):
    # they made LeNet-5's evaluation 20x slower (8.6 s instead of 0.4 s) and faked a 27-40x int8 speed-up
    assert subnormals(load_file(path).values()) == 0


def test_training_leaves_no_subnormal_weight(small):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    with torch.no_grad():  # the top rows of pixels are background (all 0): their weights get no gradient,
        model[1].weight[:, :56] = 1e-40  # so only flushing can remove these subnormals
    assert subnormals(model.parameters()) == 560
    fit(model, small, epochs=1, lr=1e-3, weight_decay=1e-4)
    assert subnormals(model.parameters()) == 0


def test_compress_output_holds_no_subnormal_weight(lenet300, small):
    r = ce.compress(lenet300, ce.Recipe(sparsity=0.8, clusters=8, finetune_epochs=1), small)
    assert subnormals(r.model.state_dict().values()) == 0
    assert subnormals(ce.decode(r.artifact).values()) == 0
