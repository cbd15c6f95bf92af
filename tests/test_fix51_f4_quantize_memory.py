"""MSE calibration of a big layer held about ten times its float32 size at once (a 16M-weight layer: 619 MB above its
61 MB): the sort's float64 values and int64 indices, the prefix sums copied on concatenation, x * x made again for
every chunk of candidate grids, and the final check's float64 copies of the quantized values, of the layer and of
their difference, each squared apart, while x and S were still alive. It now makes x (sorted in place), x * x once,
S summed into place, and one float64 copy per final check, after x and S are gone; fake_quantize_with works in place
on its one result. The numbers are the same bit for bit (tests/test_quantize.py compares with torch's kernels).

The test counts torch's allocations of the layer's size (not memory measured, nor time): every new float64 tensor of
as many values as the layer that an operation returns in new memory."""

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from compress_engine.core import quantize


class Counting(TorchDispatchMode):
    def __init__(self, numel):
        super().__init__()
        self.numel, self.made = numel, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        given = {a.untyped_storage().data_ptr() for a in (*args, *(kwargs or {}).values()) if torch.is_tensor(a)}
        for t in out if isinstance(out, (tuple, list)) else (out,):  # new memory: not a view, in place or out=
            if torch.is_tensor(t) and t.numel() >= self.numel and t.untyped_storage().data_ptr() not in given:
                self.made.append((str(func), t.dtype))
        return out


def test_mse_calibration_makes_few_copies_of_a_big_layer():
    w = torch.randn(400, 2500, generator=torch.Generator().manual_seed(0))
    with Counting(w.numel()) as c:
        quantize.qparams(w, 8, calibration="mse")
    doubles = [f for f, dtype in c.made if dtype == torch.float64]
    assert len(doubles) <= 5, doubles  # x, x * x, S, and one per final check (the best grid's, the full range's)
    assert not [f for f, dtype in c.made if dtype == torch.int64], c.made  # no sort indices


def test_fake_quantize_with_makes_one_tensor_of_the_layers_size():
    w = torch.randn(400, 2500, generator=torch.Generator().manual_seed(0))
    scale, zp, qmin, qmax = quantize.qparams(w, 8)
    with Counting(w.numel()) as c:
        out = quantize.fake_quantize_with(w, scale, zp, qmin, qmax)
    assert len(c.made) == 1 and torch.equal(out, torch.fake_quantize_per_tensor_affine(w, scale, zp, qmin, qmax))
