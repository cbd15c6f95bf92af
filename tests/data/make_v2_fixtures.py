"""How the format-version-2 fixtures beside this file were made: run once at commit f565704, when
encode() still wrote version 2 (it refuses to run against a newer encoder), and kept as the record of
what each fixture holds. Each v2-*.cpg has a v2-*.safetensors beside it with the tensors it must decode
to, bit for bit (float32, as version 2 stored everything); its metadata holds the artifact's meta
("meta") and the tensor order ("order") as JSON. tests/test_encode.py decodes them with today's decoder.

    PYTHONPATH=. .venv/bin/python tests/data/make_v2_fixtures.py
"""

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from compress_engine.core.encode import VERSION, Affine, Codebook, decode, encode, read_meta

HERE = Path(__file__).resolve().parent


def bits(*patterns):
    """float32 tensor from raw bit patterns (NaN payloads, -0.0, subnormals survive)."""
    return torch.from_numpy(np.array(patterns, np.uint32).view(np.float32))


def raw_mlp():
    """A small MLP's state dict, raw: dense weights, a sparse (pruned) weight, special float32 values,
    an int64 counter (stored by v2 as float32), a scalar and an empty tensor."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    t = {k: v.detach().clone() for k, v in net.state_dict().items()}
    w = t["2.weight"]
    w[torch.rand(w.shape) < 0.7] = 0.0
    w[0, :3] = -0.0
    t["2.weight"] = w
    t["special"] = bits(0x7FC00001, 0xFFC00000, 0x7F800000, 0xFF800000, 0x80000000, 0x00000001, 0x807FFFFF)
    t["steps"] = torch.tensor([3, 0, -7])  # int64: v2 stores and decodes it as float32
    t["scalar"] = torch.tensor(0.125)
    t["empty"] = torch.zeros(0, 4)
    return dict(tensors=t, grids=None, huffman=False, meta={"spec": {"arch": "mlp"}, "note": "raw"})


def codebook_huffman():
    """Weight sharing: a pruned, skewed codebook tensor (sparse layout, Huffman-coded codes), a dense
    codebook tensor, a tensor with long gaps (escapes) and a raw bias; huffman=True."""
    rng = np.random.default_rng(1)
    values = np.array([0.5, -1.0, 2.0, 0.25], np.float32)
    s = torch.from_numpy(values[rng.choice(4, size=(24, 25), p=[0.85, 0.1, 0.04, 0.01])])
    s[torch.from_numpy(rng.random((24, 25)) < 0.6)] = 0.0
    s[0, 1] = -0.0
    book = np.unique(rng.standard_normal(8).astype(np.float32))
    d = torch.from_numpy(book[rng.integers(0, book.size, (10, 12))])
    far = torch.zeros(600)
    far[list(range(0, 120, 3)) + [590]] = 0.5  # long gap: escapes in a Huffman-coded gap stream
    t = {"fc.weight": s, "conv.weight": d, "far": far, "fc.bias": torch.from_numpy(rng.standard_normal(24).astype(np.float32))}
    grids = {"fc.weight": Codebook(values), "conv.weight": Codebook(book), "far": Codebook(values)}
    return dict(tensors=t, grids=grids, huffman=True, meta={"recipe": {"sparsity": 0.6, "clusters": 4, "huffman": True}})


def affine_per_channel():
    """Uniform quantization: a per-channel 4-bit affine tensor with pruned zeros (+0.0 and -0.0), a
    channel whose zero point lies outside [qmin, qmax] (zeros need extra values), and a per-tensor
    symmetric 8-bit tensor."""
    rng = np.random.default_rng(2)
    qmin, qmax, c = 0, 15, 6
    scale = (rng.random(c) * 0.1 + 0.001).astype(np.float32)
    zp = rng.integers(qmin, qmax + 1, c)
    zp[5] = 20
    q = rng.integers(qmin, qmax + 1, (c, 10))
    w = torch.from_numpy(q - zp[:, None]).to(torch.float32) * torch.from_numpy(scale[:, None])
    w[torch.from_numpy(rng.random((c, 10)) < 0.4)] = 0.0
    w[1, 0], w[5, 9] = -0.0, 0.0
    s8 = np.array([0.02], np.float32)
    v = torch.from_numpy(rng.integers(-128, 128, (5, 7))).to(torch.float32) * torch.from_numpy(s8)
    t = {"layer.weight": w, "head.weight": v}
    grids = {"layer.weight": Affine(scale, zp, qmin, qmax), "head.weight": Affine(s8, np.zeros(1, np.int64), -128, 127)}
    return dict(tensors=t, grids=grids, huffman=False, meta={"recipe": {"bits": 4, "per_channel": True}})


def main():
    assert VERSION == 2, "the fixtures are format version 2: run this at commit f565704"
    for name, make in (("raw-mlp", raw_mlp), ("codebook-huffman", codebook_huffman), ("affine", affine_per_channel)):
        case = make()
        blob = encode(case["tensors"], case["grids"], case["meta"], huffman=case["huffman"])
        out = decode(blob)
        assert read_meta(blob) == case["meta"] and list(out) == list(case["tensors"])
        for k, v in case["tensors"].items():
            assert torch.equal(out[k].view(torch.int32), v.to(torch.float32).contiguous().view(torch.int32)), k
        (HERE / f"v2-{name}.cpg").write_bytes(blob)
        save_file(out, str(HERE / f"v2-{name}.safetensors"), metadata={"meta": json.dumps(case["meta"]), "order": json.dumps(list(out))})
        print(f"v2-{name}.cpg: {len(blob)} bytes")


if __name__ == "__main__":
    main()
