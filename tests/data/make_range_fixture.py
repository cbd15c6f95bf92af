"""How v3-live-bitmap.cpg beside this file was made (with constriction 0.5.0): a format-3 artifact whose
tensors use every coding added for issue 13 -- range-coded codes and gaps, adaptive bitmaps (per row, and
of the live rows x columns after their flags), an 8-bit affine bias -- and v3-range-bitmap.safetensors,
the tensors it must decode to. Range coding's bytes depend on constriction's fixed-point model, so this
fixture is what catches a change there (tests/test_encode.py decodes it with today's decoder, and
checks that today's encoder writes it). v3-range-bitmap.cpg is the same tensors as this script wrote
them before the live-bitmap layout existed (cols.weight as a per-column bitmap): it must keep decoding.

    PYTHONPATH=. .venv/bin/python tests/data/make_range_fixture.py
"""

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from compress_engine.core.encode import Affine, Codebook, _parse, decode, encode

HERE = Path(__file__).resolve().parent


def tensors():
    """Deterministic tensors, each shaped so that one of the new codings is its smallest form."""
    rng = np.random.default_rng(13)
    values = np.array([-0.75, -0.25, 0.25, 0.75], np.float32)
    live = rng.random(60) < 0.3  # 60 units, most of them pruned away entirely (dead rows)
    w = np.where((rng.random((60, 200)) < 0.2) & live[:, None],
                 values[rng.choice(4, (60, 200), p=[0.02, 0.48, 0.48, 0.02])], 0)  # skewed codes: range-coded
    cols = np.where((rng.random((40, 90)) < 0.6) & (rng.random(90) < 0.2), values[rng.choice(4, (40, 90))], 0)
    bursts = np.zeros(4000, np.float32)  # runs of neighbours: mostly 0-gaps, which Huffman codes in a whole bit
    for start in rng.choice(3900, 25, replace=False):
        bursts[start:start + rng.integers(5, 40)] = rng.standard_normal() + 3
    bias = np.round(rng.standard_normal(60) * 20).astype(np.float32) / np.float32(16)
    out = {"rows.weight": torch.from_numpy(w.astype(np.float32)), "rows.bias": torch.from_numpy(bias),
           "cols.weight": torch.from_numpy(cols.astype(np.float32)), "bursts": torch.from_numpy(bursts)}
    grids = {"rows.weight": Codebook(values), "cols.weight": Codebook(values),
             "rows.bias": Affine(np.array([1 / 16], np.float32), np.array([128]), 0, 255)}
    return out, grids


def main():
    t, grids = tensors()
    blob = encode(t, grids, meta={"fixture": "range-bitmap"}, huffman=True)
    out = decode(blob)
    assert all(torch.equal(out[k].view(torch.int32), v.view(torch.int32)) for k, v in t.items())
    recs = {r["name"]: r for r in _parse(blob)[1]}
    print({k: (r["layout"], r.get("bitmap_coding"), r.get("bitmap_axis"), r.get("gap_coding"), r.get("code_coding"))
           for k, r in recs.items()})
    (HERE / "v3-live-bitmap.cpg").write_bytes(blob)
    save_file({k: v.contiguous() for k, v in t.items()}, HERE / "v3-range-bitmap.safetensors")


if __name__ == "__main__":
    main()
