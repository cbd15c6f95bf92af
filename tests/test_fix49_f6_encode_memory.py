"""Encoding a quantized tensor peaked at about 75-80 bytes a weight (int64 and float64 full-length copies in
_affine_values and its layouts), so a 50 M-weight model needed gigabytes for its largest tensor alone. The
temporaries are now few and narrow; the bytes are the same (tests/test_encode.py's fixtures, and the roundtrip here)."""

import tracemalloc

import numpy as np
import pytest
import torch

from compress_engine.core import encode as enc


def grids_and_tensors():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(500, 2000, generator=g)
    scale = float(w.abs().max()) / 7
    per_tensor = torch.clamp(torch.round(w / scale), -8, 7) * torch.tensor(scale)
    scales = (w.abs().amax(1) / 7).numpy().astype(np.float32)
    per_row = torch.clamp(torch.round(w / torch.from_numpy(scales)[:, None]), -8, 7) * torch.from_numpy(scales)[:, None]
    return {"per_tensor": (per_tensor, enc.Affine(np.array([scale], np.float32), np.array([0]), -8, 7)),
            "per_channel": (per_row, enc.Affine(scales, np.zeros(500, np.int64), -8, 7))}


@pytest.mark.parametrize("which, limit", [("per_tensor", 40), ("per_channel", 48)])  # bytes a weight; were 75, 79
def test_affine_encoding_peaks_lower_and_roundtrips(which, limit):
    t, grid = grids_and_tensors()[which]
    tracemalloc.start()
    try:
        blob = enc.encode({"w": t}, {"w": grid}, {}, huffman=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak / t.numel() < limit
    assert torch.equal(enc.decode(blob)["w"], t)
    sparse = torch.where(t.abs() > t.abs().median(), t, 0.0)
    for huffman in (False, True):
        assert torch.equal(enc.decode(enc.encode({"w": sparse}, {"w": grid}, {}, huffman=huffman))["w"], sparse)
