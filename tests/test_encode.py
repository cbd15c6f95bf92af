"""Tests for compress_engine.core.encode: bit-exact round trips for every grid, layout and dtype (a full
state dict loads strictly into a fresh model), size claims (sparse beats dense, Huffman near the entropy
bound and never worse than fixed width), format-version-2 artifacts still decoding, and hostile
artifacts (truncations, byte flips, random bytes, lying headers of both versions) -> ArtifactError only."""

import json
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open

from torch import nn

from compress_engine.core.encode import (DTYPES, HEADER_DICT, MAGIC, PREAMBLE, VERSION, Affine, Codebook, _parse,
                                         _seal, decode, encode, read_meta, size_breakdown)
from compress_engine.core import entropy
from compress_engine.core.errors import ArtifactError
from conftest import roundtrip, same

SHAPES = [(), (7,), (300,), (12, 30), (4, 3, 5, 5)]


def sparsify(w, frac, rng, neg=True):
    """Zero a fraction of the elements; with neg, half of them as -0.0 (as w * mask gives)."""
    w = w.clone()
    drop = torch.from_numpy(np.asarray(rng.random(w.shape) < frac))
    w[drop] = 0.0
    if neg:
        w[drop & torch.from_numpy(np.asarray(rng.random(w.shape) < 0.5))] = -0.0
    return w


def codebook_tensor(shape, k, rng, zeros=0.0, zero_in_book=False):
    values = np.unique(rng.standard_normal(k).astype(np.float32))
    if zero_in_book:
        values[0] = 0.0
    w = torch.from_numpy(np.asarray(values[rng.integers(0, len(values), shape)]).reshape(shape))
    return w.masked_fill(torch.from_numpy(np.asarray(rng.random(shape) < zeros)), 0.0), Codebook(values)


def affine_tensor(shape, bits, per_channel, rng, symmetric=False):
    qmin, qmax = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if symmetric else (0, 2 ** bits - 1)
    c = shape[0] if per_channel else 1
    scale = (rng.random(c) * 0.1 + 0.001).astype(np.float32)
    zp = rng.integers(qmin, qmax + 1, c) if not symmetric else np.zeros(c, np.int64)
    q = np.asarray(rng.integers(qmin, qmax + 1, shape))
    bshape = (c,) + (1,) * (len(shape) - 1) if per_channel else ()
    w = torch.from_numpy(q - zp.reshape(bshape)).to(torch.float32) * torch.from_numpy(scale.reshape(bshape))
    return w.reshape(shape), Affine(scale, zp, qmin, qmax)


# ----------------------------------------------------------------------------- round trips

@pytest.mark.parametrize("huffman", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_raw_dense_roundtrip(shape, huffman):
    rng = np.random.default_rng(0)
    w = torch.from_numpy(rng.standard_normal(shape).astype(np.float32).reshape(shape))
    special = torch.tensor([float("nan"), float("inf"), -float("inf"), -0.0, 1e-45])
    roundtrip({"w": w, "b": torch.zeros(0), "s": special}, huffman=huffman)


@pytest.mark.parametrize("huffman", [False, True])
@pytest.mark.parametrize("frac", [0.0, 0.5, 0.9, 0.99, 1.0])
def test_raw_sparse_roundtrip(frac, huffman):
    rng = np.random.default_rng(1)
    w = sparsify(torch.from_numpy(rng.standard_normal((300, 100)).astype(np.float32)), frac, rng)
    far = torch.zeros(200_000)
    far[[70_000, 199_999]] = 1.5  # gaps past 2**16: escapes at every gap width
    blob = roundtrip({"w": w, "v": sparsify(torch.randn(50), frac, rng), "far": far}, huffman=huffman)
    index = size_breakdown(blob)["per_tensor"]["w"]["index"]
    assert (index == 0) == (frac == 0)  # dense without zeros, sparse (relative indices) with


@pytest.mark.parametrize("huffman", [False, True])
@pytest.mark.parametrize("k", [2, 16, 256])
@pytest.mark.parametrize("zeros,zero_in_book", [(0.0, False), (0.3, False), (0.3, True), (0.9, False)])
def test_codebook_roundtrip(k, zeros, zero_in_book, huffman):
    rng = np.random.default_rng(k)
    tensors, grids = {}, {}
    for i, shape in enumerate(SHAPES):
        tensors[f"t{i}"], grids[f"t{i}"] = codebook_tensor(shape, k, rng, zeros, zero_in_book)
    tensors["neg0"], grids["neg0"] = codebook_tensor((40, 40), k, rng, 0.0)
    tensors["neg0"] = sparsify(tensors["neg0"], 0.5, rng)  # -0.0 is always allowed
    roundtrip(tensors, grids, huffman)


@pytest.mark.parametrize("huffman", [False, True])
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("bits", [1, 2, 4, 8, 16])
def test_affine_roundtrip(bits, per_channel, huffman):
    rng = np.random.default_rng(bits)
    tensors, grids = {}, {}
    for i, shape in enumerate(SHAPES[1:]):
        for sym in (False, True):
            if sym and bits == 1:
                continue
            name = f"t{i}{sym}"
            tensors[name], grids[name] = affine_tensor(shape, bits, per_channel, rng, sym)
    w, g = affine_tensor((64, 50), bits, per_channel, rng)
    tensors["pruned"], grids["pruned"] = sparsify(w, 0.9, rng), g
    tensors["scalar"], grids["scalar"] = affine_tensor((1,), bits, False, rng)
    tensors["scalar"] = tensors["scalar"].reshape(())
    roundtrip(tensors, grids, huffman)


def test_affine_zero_not_on_grid_and_negative_scale():
    """Zeros are allowed even when zp is outside [qmin, qmax] or 0 * scale would be -0.0."""
    q = torch.tensor([[3, 4, 5, 6], [3, 3, 7, 7]])
    w = (q - 2).float() * torch.tensor([[0.5], [-0.25]])
    w[0, 0] = 0.0
    w[1, 1] = 0.0
    w[1, 2] = -0.0
    g = Affine(np.array([0.5, -0.25], np.float32), np.array([2.0, 2.0]), 3, 7)  # float zp, integral
    for huffman in (False, True):
        roundtrip({"w": w}, {"w": g}, huffman)


def test_empty_and_scalar_with_grids():
    cb = Codebook(np.array([0.5, -1.0], np.float32))
    af = Affine(np.array([0.1], np.float32), np.array([0]), -8, 7)
    tensors = {"e1": torch.zeros(0), "e2": torch.zeros(3, 0), "s1": torch.tensor(0.5), "s0": torch.tensor(0.0),
               "a1": torch.tensor(3.0) * torch.tensor(0.1, dtype=torch.float32), "a0": torch.tensor(-0.0)}
    grids = {"e1": cb, "e2": af, "s1": cb, "s0": cb, "a1": af, "a0": af}
    for huffman in (False, True):
        roundtrip(tensors, grids, huffman)


def test_large_tensor_crosses_chunks():
    rng = np.random.default_rng(5)
    w, g = codebook_tensor((600, 784), 4, rng)
    p = np.array([0.85, 0.1, 0.04, 0.01])  # skewed, so Huffman is chosen for the codes
    w = torch.from_numpy(np.sort(g.values)[rng.choice(4, size=(600, 784), p=p)])
    blob = roundtrip({"w": w, "r": torch.randn(300_000)}, {"w": g}, huffman=True)
    assert size_breakdown(blob)["codes"] < 600 * 784 * 2 // 8


def test_meta_and_argument_errors():
    meta = {"spec": {"arch": "lenet-300-100"}, "recipe": {"sparsity": 0.9, "clusters": 16}}
    blob = encode({"w": torch.ones(3)}, meta=meta)
    assert read_meta(blob) == meta and read_meta(encode({})) == {}
    with pytest.raises(ArtifactError, match="unknown"):
        encode({"a": torch.zeros(2)}, {"b": None})
    with pytest.raises(ArtifactError):
        encode({"a": torch.zeros(2)}, meta={"x": object()})


# ----------------------------------------------------------------------------- dtypes

def exact(a, b):
    """Same shape, same dtype and the same bytes (so -0.0, NaN payloads and subnormals count)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    bits = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[a.dtype.itemsize]
    return torch.equal(a.contiguous().view(bits), b.contiguous().view(bits))


def from_bits(patterns, dtype):
    """A tensor of `dtype` from raw bit patterns of its width."""
    np_bits = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[dtype.itemsize]
    signed = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[dtype.itemsize]
    arr = np.array(patterns, dtype=np.uint64).astype(np_bits)
    return torch.from_numpy(arr.view({1: np.uint8, 2: np.int16, 4: np.int32, 8: np.int64}[dtype.itemsize])).view(signed).view(dtype)


def dtype_cases():
    """Per dtype: hard values (signed zeros, NaN payloads, infinities, subnormals, extremes) and a
    mostly-zero tensor (sparse layout)."""
    cases = {
        "float16": from_bits([0x8000, 0x0000, 0x7E01, 0xFE00, 0x7C01, 0x7C00, 0xFC00, 0x0001, 0x83FF, 0x7BFF], torch.float16),
        "bfloat16": from_bits([0x8000, 0x7FC1, 0xFF81, 0x7F80, 0x0001, 0x807F, 0x7F7F, 0x3F80], torch.bfloat16),
        "float64": from_bits([1 << 63, 0x7FF8000000000001, 0xFFF0000000000001, 0x7FF0000000000000, 1,
                              0x800FFFFFFFFFFFFF, 0x3FF0000000000001], torch.float64),
        "float32": from_bits([NEG0, 0x7FC00001, 0xFF800001, 1, 0x807FFFFF], torch.float32),
    }
    for dt in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8):
        info = torch.iinfo(dt)
        cases[str(dt).split(".")[1]] = torch.tensor([info.min, info.max, 0, -1 if info.min else 1, 1], dtype=dt)
    cases["bool"] = torch.tensor([[True, False, True], [False, False, True]])
    return cases


NEG0 = 0x80000000


def test_supported_dtypes_are_all_covered():
    assert set(dtype_cases()) == set(DTYPES)


@pytest.mark.parametrize("huffman", [False, True])
def test_every_dtype_roundtrips_exactly(huffman):
    """Every supported dtype comes back in its own dtype, bit for bit: dense, sparse (mostly zeros),
    scalar, empty and multi-dimensional, in the original order."""
    tensors = {}
    for name, t in dtype_cases().items():
        tensors[name] = t
        z = torch.zeros(500, dtype=t.dtype)
        z[[3, 250, 499]] = t.reshape(-1)[:3]
        tensors[name + ".sparse"] = z.reshape(5, 100)
        tensors[name + ".scalar"] = t.reshape(-1)[1].clone()
        tensors[name + ".empty"] = torch.zeros(0, 3, dtype=t.dtype)
        tensors[name + ".strided"] = t.reshape(-1).repeat(3)[::2]  # not contiguous
    blob = encode(tensors, huffman=huffman)
    out = decode(blob)
    assert list(out) == list(tensors)
    for k, t in tensors.items():
        assert exact(out[k], t), k
    per = size_breakdown(blob)["per_tensor"]
    assert per["float64.sparse"]["index"] > 0 and per["float64.sparse"]["raw"] == 3 * 8  # sparse, own width
    assert per["bool"]["raw"] + per["bool"]["index"] <= 6


def test_float32_stays_the_default_and_integer_floats_are_not_converted():
    out = decode(encode({"i": torch.tensor([3, 0, -7]), "x": torch.tensor([1.0 + 2 ** -40], dtype=torch.float64)}))
    assert out["i"].dtype == torch.int64 and out["i"].tolist() == [3, 0, -7]
    assert out["x"].dtype == torch.float64 and out["x"].item() == 1.0 + 2 ** -40


def test_unsupported_dtypes_and_grids_on_other_dtypes_are_refused():
    for t in (torch.zeros(2, dtype=torch.complex64), torch.zeros(2, dtype=torch.uint16),
              torch.zeros(2, dtype=torch.float8_e4m3fn)):
        with pytest.raises(ArtifactError, match=f"'odd'.*{str(t.dtype).split('.')[1]}"):
            encode({"w": torch.ones(2), "odd": t})
    with pytest.raises(ArtifactError, match="'h'.*float32.*float16"):
        encode({"h": torch.ones(3, dtype=torch.float16)}, {"h": Codebook(np.ones(1, np.float32))})
    with pytest.raises(ArtifactError, match="'i'.*float32.*int8"):
        encode({"i": torch.ones(3, dtype=torch.int8)}, {"i": Affine(np.ones(1, np.float32), np.zeros(1), -8, 7)})


class BNNet(nn.Module):
    """Conv + BatchNorm + Linear with buffers of every other kind a state dict can carry."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(16, 3)
        self.register_buffer("mask", torch.zeros(4, dtype=torch.bool))
        self.register_buffer("ids", torch.zeros(5, dtype=torch.int32))
        self.register_buffer("h16", torch.zeros(3, dtype=torch.float16))
        self.register_buffer("bf", torch.zeros(3, dtype=torch.bfloat16))
        self.register_buffer("scale64", torch.zeros(2, dtype=torch.float64))

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))


def test_batchnorm_state_dict_loads_strictly_into_a_fresh_model():
    """The complete state dict (num_batches_tracked int64, running statistics, bool / int / half buffers)
    with a Codebook conv and an Affine fc: decoded tensors equal the originals in value and dtype, and
    load strictly into a fresh instance, which then computes exactly what the original did."""
    torch.manual_seed(0)
    net = BNNet()
    net.train()
    for _ in range(3):
        net(torch.randn(8, 2, 4, 4))  # running stats move, num_batches_tracked = 3
    net.mask[[0, 2]] = True
    net.ids.copy_(torch.tensor([7, -2 ** 31, 2 ** 31 - 1, 0, 5]))
    net.h16.copy_(torch.tensor([0.1, -0.0, 65504.0]))
    net.bf.copy_(torch.tensor([1e-40, 3.0, -1.5]))
    net.scale64.copy_(torch.tensor([1 / 3, -1e-310], dtype=torch.float64))
    values = np.array([-0.5, 0.25, 0.75], np.float32)
    with torch.no_grad():
        net.conv.weight.copy_(torch.from_numpy(values[np.random.default_rng(0).integers(0, 3, (4, 2, 3, 3))]))
        net.conv.weight[0] = 0.0
        scale = np.full(3, 0.125, np.float32)
        net.fc.weight.copy_(torch.randint(-8, 8, (3, 16)).float() * 0.125)
    state = net.state_dict()
    assert state["bn.num_batches_tracked"].dtype == torch.int64 and state["bn.num_batches_tracked"].item() == 3
    grids = {"conv.weight": Codebook(values), "fc.weight": Affine(scale, np.zeros(3, np.int64), -8, 7)}
    for huffman in (False, True):
        out = decode(encode(state, grids, huffman=huffman))
        assert list(out) == list(state)
        for k, t in state.items():
            assert exact(out[k], t), k
        fresh = BNNet()
        fresh.load_state_dict(out, strict=True)
        for k, t in fresh.state_dict().items():
            assert exact(t, state[k]), k
        net.eval(), fresh.eval()
        x = torch.randn(2, 2, 4, 4)
        assert torch.equal(fresh(x), net(x))


# ----------------------------------------------------------------------------- previous format

DATA = Path(__file__).resolve().parent / "data"
V2_FIXTURES = ["raw-mlp", "codebook-huffman", "affine"]
HEADER_DICT_CRC = 0x4766D029


@pytest.mark.parametrize("name", V2_FIXTURES)
def test_v2_artifacts_still_decode(name):
    """Artifacts written by format version 2 (tests/data/make_v2_fixtures.py) decode to the same tensors,
    bit for bit and in order, with the same meta; their size breakdown still adds up."""
    blob = (DATA / f"v2-{name}.cpg").read_bytes()
    assert blob[4] == 2
    with safe_open(str(DATA / f"v2-{name}.safetensors"), "pt") as f:
        info = f.metadata()
        expected = {k: f.get_tensor(k) for k in json.loads(info["order"])}
    out = decode(blob)
    assert list(out) == list(expected)
    for k, t in expected.items():
        assert same(out[k], t), k
    assert read_meta(blob) == json.loads(info["meta"])
    parts = size_breakdown(blob)
    assert sum(parts[p] for p in ("header", "index", "codes", "codebook", "raw")) == len(blob)
    assert list(parts["per_tensor"]) == list(expected)


@pytest.mark.parametrize("name", ["raw-mlp", "codebook-huffman"])
def test_v3_is_no_larger_than_v2(name):
    """The same float32 tensors, grids and meta re-encoded today: named fields and dtypes cost no bytes
    (the header's preset dictionary pays for the names), and no tensor's sections grew (range coding and
    bitmaps, added since, may make them smaller)."""
    old = (DATA / f"v2-{name}.cpg").read_bytes()
    meta, recs, _, _ = _parse(old)
    tensors = decode(old)
    grids = {r["name"]: Codebook(np.unique(tensors[r["name"]].numpy())) for r in recs if r["kind"] == "codebook"}
    new = encode(tensors, grids, meta, huffman=name.endswith("huffman"))
    old_parts, new_parts = size_breakdown(old)["per_tensor"], size_breakdown(new)["per_tensor"]
    assert new_parts.keys() == old_parts.keys()
    assert all(sum(new_parts[t].values()) <= sum(old_parts[t].values()) for t in old_parts)
    if not name.endswith("huffman"):  # without entropy coding nothing new applies: the same sections
        assert new_parts == old_parts
    assert len(new) <= len(old)


def test_header_dictionary_is_frozen():
    """Every version-3 header is compressed with HEADER_DICT: changing it breaks every artifact made."""
    assert zlib.crc32(HEADER_DICT) == HEADER_DICT_CRC, "HEADER_DICT is part of format version 3: do not change it"


# ----------------------------------------------------------------------------- grid checks

def test_codebook_off_grid_refused():
    w = torch.tensor([0.5, 0.0, -1.0, 0.25, 0.75])
    with pytest.raises(ArtifactError, match=r"'fc1.weight'.*2 non-zero"):
        encode({"fc1.weight": w}, {"fc1.weight": Codebook(np.array([0.5, -1.0], np.float32))})
    with pytest.raises(ArtifactError):
        encode({"w": w}, {"w": Codebook(np.zeros((0,), np.float32))})


def test_affine_off_grid_refused():
    w, g = affine_tensor((10, 10), 4, True, np.random.default_rng(0))
    bad = w.clone()
    bad[0, 0] = torch.nextafter(bad[0, 0], torch.tensor(9.0)) if bad[0, 0] != 0 else 1e-3
    bad[1, 1] = 1e6  # far outside [qmin, qmax]
    with pytest.raises(ArtifactError, match=r"'w'.*2 non-zero"):
        encode({"w": bad}, {"w": g})
    with pytest.raises(ArtifactError, match="channels"):
        encode({"w": w}, {"w": Affine(np.ones(3, np.float32), np.zeros(3, np.int64), 0, 15)})
    with pytest.raises(ArtifactError, match="levels"):
        encode({"w": w}, {"w": Affine(np.ones(1, np.float32), np.zeros(1, np.int64), 0, 70000)})


# ----------------------------------------------------------------------------- sizes

def test_sparse_beats_dense():
    rng = np.random.default_rng(2)
    w = sparsify(torch.from_numpy(rng.standard_normal((300, 784)).astype(np.float32)), 0.9, rng, neg=False)
    blob = roundtrip({"w": w})
    assert len(blob) < 0.55 * 4 * w.numel()  # 10 % of the values + ~4-5 bits per position
    assert size_breakdown(blob)["index"] > 0
    w, g = codebook_tensor((300, 784), 16, rng, zeros=0.9)
    blob = roundtrip({"w": w}, {"w": g})
    dense_bits = math.ceil(math.log2(17)) * w.numel()
    assert len(blob) < 0.5 * dense_bits / 8 and size_breakdown(blob)["index"] > 0


@pytest.mark.parametrize("case", range(6))
def test_huffman_never_larger(case):
    rng = np.random.default_rng(case)
    shape = [(5,), (300, 100), (64, 3, 3, 3), (1000,), (2,), (200, 200)][case]
    w, g = codebook_tensor(shape, [2, 16, 256, 3, 2, 7][case], rng, zeros=[0, 0.5, 0.9, 0.99, 0, 0.7][case])
    for tensors, grids in (({"w": w}, {"w": g}), ({"w": w}, None), ({"w": w, "b": torch.randn(10)}, {"w": g})):
        assert len(encode(tensors, grids, huffman=True)) <= len(encode(tensors, grids, huffman=False))


def test_huffman_near_entropy():
    rng = np.random.default_rng(3)
    values = (np.arange(1, 257, dtype=np.float32) / 64)
    p = np.exp(-0.5 * ((np.arange(256) - 128) / 12.0) ** 2)
    idx = rng.choice(256, size=200_000, p=p / p.sum())
    w = torch.from_numpy(values[idx])
    blob = roundtrip({"w": w}, {"w": Codebook(values)}, huffman=True)
    counts = np.bincount(idx, minlength=256)
    pe = counts[counts > 0] / idx.size
    entropy_bytes = -(counts[counts > 0] * np.log2(pe)).sum() / 8
    codes = size_breakdown(blob)["codes"]
    table_bound = (counts > 0).sum() // 2 + 1  # nibble per used symbol at most
    assert codes <= 1.01 * entropy_bytes + table_bound
    fixed = math.ceil(math.log2((counts > 0).sum())) * idx.size / 8
    assert codes < 0.85 * fixed  # well under fixed width


def test_huffman_lengths_are_limited():
    """Fibonacci counts would need codes longer than 15 bits: the limited code still round-trips."""
    fib = [1, 1]
    while len(fib) < 30:
        fib.append(fib[-1] + fib[-2])
    values = np.arange(1, 31, dtype=np.float32)
    w = torch.from_numpy(np.repeat(values, np.minimum(fib, 20000)))
    roundtrip({"w": w}, {"w": Codebook(values)}, huffman=True)


# ----------------------------------------------------------------------------- hostile input

def build(head, body=b"", magic=MAGIC, version=VERSION):
    """Hand-made artifact from a header object and body bytes, with a correct checksum: only the
    decoder's own bounds checks stand between such a crafted file and the caller. A version-3 header
    is compressed with the format's preset dictionary, as encode does."""
    z = zlib.compressobj(zdict=HEADER_DICT) if version == VERSION else zlib.compressobj()
    h = z.compress(json.dumps(head).encode()) + z.flush()
    return container(len(h), h + body, magic, version)


def header(blob):
    """(header object, header length) of a version-3 artifact."""
    hlen = struct.unpack("<I", blob[5:9])[0]
    z = zlib.decompressobj(zdict=HEADER_DICT)
    return json.loads(z.decompress(blob[PREAMBLE:PREAMBLE + hlen])), hlen


def container(hlen, rest, magic=MAGIC, version=VERSION):
    """Preamble claiming a header of `hlen` bytes, then `rest`, sealed with a correct CRC-32."""
    return _seal(magic + bytes([version]) + struct.pack("<I", hlen) + b"\0" * 4 + rest)


def check_hostile(blob):
    """Any bytes: decode / read_meta / size_breakdown return something or raise ArtifactError only."""
    for fn in (decode, read_meta, size_breakdown):
        try:
            fn(blob)
        except ArtifactError:
            pass


def refused(fn, blob):
    """The ArtifactError message fn(blob) raises, or None if it returned."""
    try:
        fn(blob)
    except ArtifactError as e:
        return str(e)
    return None


def _small_artifacts():
    """Two small real artifacts: codebook, affine, raw dense and raw sparse tensors at fixed width (with
    huffman=True this one falls back to the same bytes), and a skewed codebook tensor Huffman-coded."""
    rng = np.random.default_rng(9)
    w, g = codebook_tensor((20, 30), 8, rng, zeros=0.7)
    a, ga = affine_tensor((6, 10), 4, True, rng)
    tensors = {"w": w, "a": sparsify(a, 0.5, rng), "b": torch.randn(5, generator=torch.Generator().manual_seed(9)),
               "r": sparsify(torch.from_numpy(rng.standard_normal(40).astype(np.float32)), 0.8, rng)}
    out = {"mixed": encode(tensors, {"w": g, "a": ga}, meta={"m": 1})}
    values = np.array([0.5, -1.0, 2.0, 0.25], np.float32)
    skewed = torch.from_numpy(values[rng.choice(4, size=(24, 25), p=[0.85, 0.1, 0.04, 0.01])])
    out["skewed-huffman"] = encode({"s": sparsify(skewed, 0.6, rng, neg=False)}, {"s": Codebook(values)},
                                   huffman=True)
    return out


SMALL = _small_artifacts()
# How many hostile variants the tests below try (reported with issue 6): every non-zero XOR of every
# byte, every proper prefix plus one extension per artifact.
N_FLIPS = 255 * sum(map(len, SMALL.values()))
N_TRUNCATIONS = sum(len(b) + 1 for b in SMALL.values())


def test_small_artifacts_cover_huffman():
    rec = _parse(SMALL["skewed-huffman"])[1][0]
    assert rec["layout"] == "sparse" and rec["code_coding"] != "fixed"  # codes Huffman-coded
    assert all(decode(b) for b in SMALL.values())


@pytest.mark.parametrize("name", SMALL, ids=[f"{k}-{len(b) + 1}-truncations" for k, b in SMALL.items()])
def test_every_truncation_is_refused(name):
    blob, tried = SMALL[name], 0
    for i in range(len(blob)):
        for fn in (decode, read_meta, size_breakdown):
            assert refused(fn, blob[:i]) is not None, (fn.__name__, i)
        tried += 1
    assert "checksum" in refused(decode, blob + b"\0")
    assert tried + 1 == len(blob) + 1


@pytest.mark.parametrize("name", SMALL, ids=[f"{k}-{255 * len(b)}-flips" for k, b in SMALL.items()])
def test_every_byte_flip_is_refused(name):
    """Every single-byte change anywhere (all 255 non-zero XORs at every position) raises ArtifactError:
    past the magic and version bytes, always as a checksum mismatch (CRC-32 catches every burst of at
    most 32 bits). Re-sealed with a valid CRC, 58 % of "mixed"'s and 29 % of "skewed-huffman"'s flips past the
    preamble decode to other weights (nearly 100 % inside a fixed-width code stream)."""
    blob, tried, missed = SMALL[name], 0, []
    for i in range(len(blob)):
        for x in range(1, 256):
            b = bytearray(blob)
            b[i] ^= x
            msg = refused(decode, bytes(b))
            tried += 1
            if msg is None or (i >= 5 and "checksum" not in msg):
                missed.append((i, x, msg))
        b = bytearray(blob)
        b[i] ^= 0x80
        if refused(read_meta, bytes(b)) is None or refused(size_breakdown, bytes(b)) is None:
            missed.append((i, 0x80, "read_meta / size_breakdown"))
    assert not missed, missed[:5]
    assert tried == 255 * len(blob)


def test_checksum_message_and_old_versions():
    blob = bytearray(SMALL["mixed"])
    blob[-1] ^= 1
    for fn in (decode, read_meta, size_breakdown):
        with pytest.raises(ArtifactError, match=r"artifact is corrupt: checksum mismatch.*re-export it"):
            fn(bytes(blob))
    v1 = bytearray([*MAGIC, 1]) + SMALL["mixed"][5:]
    v1[9] ^= 0xFF  # a version 1 file has no checksum there (a format 3 file's with the byte changed is damage)
    with pytest.raises(ArtifactError, match="version 1.*re-export"):
        decode(bytes(v1))
    with pytest.raises(ArtifactError, match="version 9"):
        decode(build({"meta": {}, "tensors": []}, version=9))


def test_valid_checksum_does_not_bypass_the_checks():
    """A crafted file whose CRC is right is still refused when its header lies. And what the checksum
    is for: re-sealed bit flips in the sections mostly still decode, to other weights."""
    blob = SMALL["mixed"]
    head, hlen = header(blob)
    body = blob[PREAMBLE + hlen:]
    assert decode(build(head, body)).keys() == decode(blob).keys()  # the untouched header is fine
    for lie in ({"shape": [2, 3]}, {"sections": {"codes": 10 ** 6}}, {"nonzero": 10 ** 6}, {"kind": "raw"},
                {"code_coding": "huffman"}, {"dtype": "float64"}, {"dtype": "int8"}):
        bad = json.loads(json.dumps(head))
        bad["tensors"][0].update(lie)
        msg = refused(decode, build(bad, body))
        assert msg is not None and "checksum" not in msg, lie
    msg = refused(decode, build(head, body[:-1]))  # one byte short, re-sealed
    assert msg is not None and "checksum" not in msg
    original, changed = decode(blob), 0
    for i in range(PREAMBLE + hlen, len(blob)):
        b = bytearray(blob)
        b[i] ^= 1
        try:
            out = decode(_seal(b))
        except ArtifactError as e:
            assert "checksum" not in str(e)
            continue
        changed += any(not same(out[k], original[k]) for k in original)
    assert changed > 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300), st.sampled_from(["raw", "magic", "sealed"]))
def test_random_bytes(data, mode):
    if mode == "raw":
        check_hostile(data)
    elif mode == "magic":
        check_hostile(MAGIC + bytes([VERSION]) + data)
    else:  # past the checksum: only the decoder's own checks remain
        check_hostile(_seal(MAGIC + bytes([VERSION]) + data.ljust(8, b"\0")))


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_random_body_after_valid_header(data):
    """A real header followed by random section bytes of the right total length (re-sealed)."""
    rng = np.random.default_rng(4)
    w, g = codebook_tensor((10, 12), 4, rng, zeros=0.6)
    blob = encode({"w": w, "b": torch.randn(3)}, {"w": g}, huffman=data.draw(st.booleans()))
    hlen = struct.unpack("<I", blob[5:9])[0]
    n = len(blob) - PREAMBLE - hlen
    check_hostile(_seal(blob[:PREAMBLE + hlen] + data.draw(st.binary(min_size=n, max_size=n))))


def record(**kw):
    """A version-2 record (one-letter keys); the lying-header cases below are written in this form."""
    rec = {"n": "w", "s": [4], "k": "r", "l": "d", "z": [0, 0, 0, 0, 0, 16]}
    rec.update(kw)
    return rec


V3_KEYS = {"n": "name", "s": "shape", "k": "kind", "l": "layout", "z": "sections", "m": "nonzero", "b": "gap_bits",
           "g": "gap_symbols", "gm": "gap_coding", "cm": "code_coding", "C": "channels", "q0": "q_low",
           "nq": "q_levels", "sp": "extra"}
V3_VALUES = {"k": {"r": "raw", "c": "codebook", "a": "affine"}, "l": {"d": "dense", "s": "sparse"},
             "gm": {0: "fixed", 1: "huffman", 2: "huffman-zlib"}, "cm": {0: "fixed", 1: "huffman", 2: "huffman-zlib"}}
SECTION_NAMES = ["codebook", "gap_table", "gaps", "code_table", "codes", "raw"]


def to_v3(head):
    """The same header in version 3 (named fields, float32): lies stay lies (unknown values kept)."""
    def rec3(r):
        if not isinstance(r, dict):
            return r
        out = {"dtype": "float32"}
        for k, v in r.items():
            if k in V3_VALUES and type(v) in (str, int) and v in V3_VALUES[k]:
                v = V3_VALUES[k][v]
            if k == "z" and isinstance(v, list) and len(v) == 6:
                v = dict(zip(SECTION_NAMES, v))
            out[V3_KEYS.get(k, k)] = v
        return out
    return {"meta": head["meta"], "tensors": [rec3(r) for r in head["t"]]}


def lying(rec, body):
    return {"meta": {}, "t": rec if isinstance(rec, list) else [rec]}, body


@pytest.mark.parametrize("head,body", [
    lying(record(s=[10 ** 6, 10 ** 6]), b"\0" * 16),                                  # 10^12 elements
    lying(record(s=[2 ** 40] * 8), b""),                                                 # product overflow
    lying([record(n=c, s=[30_000_000], l="s", m=0, b=1, g=0, gm=0, z=[0] * 6) for c in "ab"], b""),  # total
    lying(record(z=[0, 0, 0, 0, 0, 10 ** 9]), b"\0" * 16),                            # more than the blob
    lying([record(), record()], b"\0" * 32),                                            # duplicate name
    ({"meta": [], "t": []}, b""),                                                         # schema
    lying(record(s=[4.0]), b"\0" * 16),
    lying(record(s=[-4]), b"\0" * 16),
    lying(record(k="x"), b"\0" * 16),
    lying(record(z=[0, 0, 0, 0, 0, True]), b"\0"),
    lying([["w", [4]]], b""),
    lying(record(l="s", m=5, b=1, g=5, gm=0, z=[0, 0, 1, 0, 0, 20]), b"\0" * 21),      # m > n
    lying(record(l="s", m=1, b=4, g=1, gm=0, z=[0, 0, 1, 0, 0, 4]), b"\xf0" + b"\0" * 4),  # escape only
    lying(record(l="s", m=1, b=4, g=1, gm=0, z=[0, 0, 1, 0, 0, 4]), b"\x90" + b"\0" * 4),  # position 9 >= 4
    lying(record(k="c", z=[12, 0, 0, 0, 1, 0], cm=0), b"\0" * 12 + b"\xff"),          # code 3 >= 3 entries
    lying(record(k="c", z=[12, 0, 0, 2, 1, 0], cm=1), b"\0" * 12 + b"\x11\x10" + b"\0"),  # Kraft sum > 1
    lying(record(k="c", z=[8, 0, 0, 1, 1, 0], cm=1), b"\0" * 8 + b"\x22" + b"\x80"),    # incomplete code hit
    lying(record(k="c", z=[8, 0, 0, 1, 1, 0], cm=2), b"\0" * 8 + b"\x78" + b"\0"),     # bad zlib table
    lying(record(k="c", z=[8, 0, 0, 1, 2, 0], cm=1), b"\0" * 8 + b"\x11" + b"\0\0"),  # stream too long
    lying(record(k="a", C=3, q0=0, nq=2, sp=[], cm=0, z=[24, 0, 0, 0, 1, 0]), b"\0" * 25),  # C != shape[0]
    lying(record(k="a", C=1, q0=0, nq=2, sp=[2 ** 40], cm=0, z=[8, 0, 0, 0, 1, 0]), b"\0" * 9),
])
@pytest.mark.parametrize("version", [2, 3])
def test_lying_headers(head, body, version):
    """Crafted headers with a correct checksum: refused by the bounds checks, not by the CRC, whether
    written with version 2's one-letter keys or version 3's named fields."""
    blob = build(head if version == 2 else to_v3(head), body, version=version)
    check_hostile(blob)
    with pytest.raises(ArtifactError) as e:
        decode(blob)
    assert "checksum" not in str(e.value)


def test_hand_made_huffman_artifact():
    """The smallest valid Huffman artifact: 2 codebook entries, codes of 1 bit, 4 symbols (both versions)."""
    head, body = lying(record(k="c", z=[8, 0, 0, 1, 1, 0], cm=1), struct.pack("<2f", 0.5, -2.0) + b"\x11" + b"\x50")
    for blob in (build(head, body, version=2), build(to_v3(head), body)):
        out = decode(blob)["w"]
        assert out.tolist() == [0.5, -2.0, 0.5, -2.0] and out.dtype == torch.float32


def raw3(**kw):
    """A version-3 raw dense record of 4 elements."""
    rec = {"name": "w", "shape": [4], "dtype": "float32", "kind": "raw", "layout": "dense", "sections": {"raw": 16}}
    rec.update(kw)
    return {"meta": {}, "tensors": [rec]}


@pytest.mark.parametrize("head,body", [
    (raw3(dtype="float128"), b"\0" * 16),                                        # unknown dtype name
    (raw3(dtype="complex64", sections={"raw": 32}), b"\0" * 32),
    (raw3(dtype=["float32"]), b"\0" * 16),                                       # not a string
    (raw3(dtype=None), b"\0" * 16),
    ({"meta": {}, "tensors": [{k: v for k, v in raw3()["tensors"][0].items() if k != "dtype"}]}, b"\0" * 16),
    (raw3(dtype="float64"), b"\0" * 16),                                         # 16 bytes for 4 float64
    (raw3(dtype="float16"), b"\0" * 16),                                         # ... for 4 float16
    (raw3(dtype="bool"), b"\0" * 16),
    (raw3(dtype="int8", sections={"raw": 3}), b"\0" * 3),
    (raw3(dtype="int16", layout="sparse", nonzero=1, gap_bits=2, gap_symbols=1, gap_coding="fixed",
          sections={"gaps": 1, "raw": 4}), b"\0" * 5),                          # 1 stored int16 in 4 bytes
    (raw3(dtype="bool", sections={"raw": 4}), b"\0\1\2\1"),                    # bool byte 2
    (raw3(dtype="bool", layout="sparse", nonzero=1, gap_bits=2, gap_symbols=1, gap_coding="fixed",
          sections={"gaps": 1, "raw": 1}), b"\0\xff"),                          # stored bool 255
    (raw3(dtype="int8", kind="codebook", code_coding="fixed", sections={"codebook": 8, "codes": 1}),
     b"\0" * 9),                                                                 # grid on an int8 tensor
    (raw3(dtype="float16", kind="affine", channels=1, q_low=0, q_levels=2, extra=[], code_coding="fixed",
          sections={"codebook": 8, "codes": 1}), b"\0" * 9),
    (raw3(sections={"raw": 16, "bogus": 0}), b"\0" * 16),                        # unknown section
    (raw3(sections=[0, 0, 0, 0, 0, 16]), b"\0" * 16),                           # version 2's list
    (raw3(kind="r"), b"\0" * 16),                                                # version 2's value
    (raw3(layout="sparse", nonzero=1, gap_bits=2, gap_symbols=1, gap_coding=0, sections={"gaps": 1, "raw": 4}),
     b"\0" * 5),                                                                 # coding as an int
    ({"meta": {}, "t": raw3()["tensors"]}, b"\0" * 16),                          # version 2's list key
])
def test_lying_v3_headers(head, body):
    """Version-3 headers that lie about dtypes (names, itemsize vs section lengths, bool bytes, grids on
    other dtypes) or mix in version 2's spellings: ArtifactError, not the CRC."""
    blob = build(head, body)
    check_hostile(blob)
    with pytest.raises(ArtifactError) as e:
        decode(blob)
    assert "checksum" not in str(e.value)


def test_v2_records_cannot_claim_a_dtype():
    """Version 2 stored float32 only: a dtype field in a version-2 record is ignored."""
    head, body = lying(record(dtype="float64"), struct.pack("<4f", 1, 2, 3, 4))
    out = decode(build(head, body, version=2))["w"]
    assert out.dtype == torch.float32 and out.tolist() == [1, 2, 3, 4]


def test_container_errors():
    ok = build({"meta": {}, "tensors": []})
    assert decode(ok) == {} and size_breakdown(ok)["header"] == len(ok)
    assert size_breakdown(ok)["header"] == PREAMBLE + struct.unpack("<I", ok[5:9])[0]
    for bad in (b"", b"CPG", b"XXXX" + ok[4:], build({"meta": {}, "tensors": []}, version=9), "not bytes", None,
                MAGIC + bytes([VERSION]) + b"\0" * 7):
        with pytest.raises(ArtifactError):
            decode(bad)
    sealed = (_seal(ok[:5] + b"\xff" * 4 + ok[9:]),                      # header longer than the file
              container(5, b"hello"),                                    # not zlib
              container(len(zlib.compress(b"[[[")), zlib.compress(b"[[[")),  # not JSON
              container(0, b""),                                         # empty header
              _seal(ok[:-1] + b"\0"))                                     # corrupt zlib stream
    for bad in sealed:
        with pytest.raises(ArtifactError) as e:
            decode(bad)
        assert "checksum" not in str(e.value)
    bomb = zlib.compress(b" " * (20 << 20))
    with pytest.raises(ArtifactError, match="header"):
        read_meta(container(len(bomb), bomb))
    deep = zlib.compress(b"[" * 100_000)
    with pytest.raises(ArtifactError, match="header"):
        read_meta(container(len(deep), deep))


# ----------------------------------------------------------------------------- range coding and bitmaps (issue 13)

def _new_codings():
    import sys
    sys.path.insert(0, str(DATA))
    from make_range_fixture import tensors
    return tensors()


def test_range_bitmap_fixture_still_decodes():
    """tests/data/v3-range-bitmap.cpg (written by make_range_fixture.py with constriction 0.5.0 before the
    live-bitmap layout) decodes to the exact tensors today; v3-live-bitmap.cpg (the same tensors, today's
    layouts) too, and today's encoder writes it byte for byte: range coding's output depends on
    constriction's fixed-point models, so a change there shows up here first."""
    t, grids = _new_codings()
    with safe_open(DATA / "v3-range-bitmap.safetensors", "pt") as f:
        want = {name: f.get_tensor(name) for name in f.keys()}
    for fixture, cols_layout in (("v3-range-bitmap.cpg", "bitmap"), ("v3-live-bitmap.cpg", "live-bitmap")):
        blob = (DATA / fixture).read_bytes()
        recs = {r["name"]: r for r in _parse(blob)[1]}
        assert recs["rows.weight"]["layout"] == "bitmap" and recs["rows.weight"]["bitmap_axis"] == 0
        assert recs["cols.weight"]["layout"] == cols_layout
        assert recs["rows.weight"]["code_coding"] == "range" and recs["bursts"]["gap_coding"] == "range"
        out = decode(blob)
        assert set(out) == set(want) and all(same(out[name], want[name]) for name in want), fixture
    assert encode(t, grids, meta={"fixture": "range-bitmap"}, huffman=True) == blob


def test_new_codings_are_smaller_and_exact():
    """Each new coding is chosen only where it measures smaller than Huffman and relative indices; without
    entropy coding nothing changes."""
    t, grids = _new_codings()
    with_new = roundtrip(t, grids, huffman=True)
    fixed = roundtrip(t, grids, huffman=False)
    assert all(r["layout"] != "bitmap" and r.get("code_coding", "fixed") == "fixed" and
               r.get("gap_coding", "fixed") == "fixed" for r in _parse(fixed)[1])
    new, old = size_breakdown(with_new)["per_tensor"], size_breakdown(fixed)["per_tensor"]
    for name in ("rows.weight", "cols.weight", "bursts"):  # the index and code streams (raw values stay raw)
        assert new[name]["index"] + new[name]["codes"] < 0.8 * (old[name]["index"] + old[name]["codes"]), name
    # the dead rows of rows.weight: the bitmap costs well under the 1-bit-per-position of plain gaps
    assert new["rows.weight"]["index"] < 0.5 * t["rows.weight"].numel() / 8


@pytest.mark.parametrize("seed", range(6))
def test_bitmap_and_range_roundtrip_random(seed):
    """Random sparse codebook tensors of many shapes (1-D, wide, tall, 4-D, one row, one column)."""
    rng = np.random.default_rng(seed)
    shape = [(300,), (3, 500), (500, 3), (8, 4, 3, 3), (1, 777), (777, 1)][seed]
    w, g = codebook_tensor(shape, [2, 3, 4, 8, 16, 5][seed], rng, zeros=[0.97, 0.8, 0.5, 0.9, 0.99, 0.95][seed])
    live = torch.from_numpy(rng.random(shape[0]) < 0.3).reshape((-1,) + (1,) * (len(shape) - 1))
    for tensor in (w, torch.where(live, w, 0.0)):
        roundtrip({"w": tensor}, {"w": g}, huffman=True)
        roundtrip({"w": tensor}, None, huffman=True)


def _focused(rows=200, cols=300, live=(20, 40), density=0.3, seed=0):
    """A codebook tensor whose kept weights sit in a few rows and columns (as prune focus leaves them)."""
    rng = np.random.default_rng(seed)
    values = np.array([-0.5, 0.5], np.float32)
    r = rng.choice(rows, live[0], replace=False)
    c = rng.choice(cols, live[1], replace=False)
    w = np.zeros((rows, cols), np.float32)
    block = np.where(rng.random(live) < density, values[rng.choice(2, live)], 0)
    block[np.arange(live[0]), rng.integers(0, live[1], live[0])] = 0.5  # every live row and column holds one
    block[rng.integers(0, live[0], live[1]), np.arange(live[1])] = -0.5
    w[np.ix_(r, c)] = block
    return torch.from_numpy(w), Codebook(values)


@pytest.mark.parametrize("seed", range(4))
def test_live_bitmap_roundtrip_and_smaller(seed):
    """Kept weights gathered in a few units and inputs: the live-bitmap layout is chosen, decodes exactly, and
    its index is smaller than the plain adaptive bitmap's (measured by encoding with that layout barred)."""
    shape, live = [((200, 300), (20, 40)), ((50, 20, 5, 5), (10, 100)), ((120, 400), (30, 50)),
                   ((400, 120), (50, 30))][seed]
    rows, cols = shape[0], math.prod(shape[1:])
    w, g = _focused(rows, cols, live, seed=seed)
    w = w.reshape(shape)
    blob = roundtrip({"w": w}, {"w": g}, huffman=True)
    rec = _parse(blob)[1][0]
    assert rec["layout"] == "live-bitmap" and (rec["live_rows"], rec["live_cols"]) == live
    m2 = (w.numpy() != 0).reshape(rows, cols)  # the whole matrix's adaptive bitmap, the layout before this one
    whole = min(entropy.bitmap_estimate(m2, a) for a in (0, 1))
    assert size_breakdown(blob)["index"] < 0.8 * whole


def test_live_bitmap_on_a_pruned_layer_with_no_dead_row_or_column():
    """A random mask with every row and column live: no flags are written (plain bitmap or relative indices)."""
    rng = np.random.default_rng(3)
    w = torch.from_numpy(np.where(rng.random((40, 60)) < 0.5, np.float32(0.5), np.float32(0)))
    w[:, 0] = 0.5
    w[0, :] = 0.5
    assert _parse(roundtrip({"w": w}, {"w": Codebook(np.array([0.5], np.float32))}, huffman=True))[1][0]["layout"] \
        != "live-bitmap"


def test_lying_live_bitmap_headers_and_damaged_flags():
    """Wrong live counts, more elements than the live block holds, flags lost or padded: refused by name."""
    w, g = _focused()
    blob = encode({"w": w}, {"w": g}, huffman=True)
    rec = _parse(blob)[1][0]
    assert rec["layout"] == "live-bitmap"
    for lie in (dict(live_rows=rec["live_rows"] + 1), dict(live_cols=rec["live_cols"] - 1), dict(live_rows=0),
                dict(live_cols=301), dict(live_rows=None), dict(layout="bitmap"), dict(nonzero=20 * 40 + 1),
                dict(live_rows=1, live_cols=1)):
        bad = _with_record(blob, **lie)
        check_hostile(bad)
        msg = refused(decode, bad)
        assert msg is not None and "checksum" not in msg, lie
    head, hlen = header(blob)
    body = bytearray(blob[PREAMBLE + hlen:])
    start, fb = rec["sections"][0], (200 + 300 + 7) // 8  # the flags follow the codebook
    for i in range(start, start + fb):  # every flag byte changed: the counts, the canonical check or the bitmap notice
        for x in (1, 0x10, 0x80):
            b = bytearray(body)
            b[i] ^= x
            bad = build(head, bytes(b))
            check_hostile(bad)
            assert refused(decode, bad) is not None, (i, x)


def test_entropy_coding_beats_huffman_on_small_alphabets():
    """2-4 cluster codes, where Huffman cannot go below one bit a symbol: range coding comes within 2 % of the
    empirical entropy (plus its count table)."""
    rng = np.random.default_rng(5)
    values = np.array([-1.0, 1.0, 2.0], np.float32)
    idx = rng.choice(3, size=50_000, p=[0.9, 0.08, 0.02])
    blob = roundtrip({"w": torch.from_numpy(values[idx])}, {"w": Codebook(values)}, huffman=True)
    counts = np.bincount(idx)
    entropy_bytes = -(counts * np.log2(counts / idx.size)).sum() / 8
    assert size_breakdown(blob)["codes"] <= 1.02 * entropy_bytes + 16
    assert _parse(blob)[1][0]["code_coding"] == "range"


def _with_record(blob, **changes):
    """`blob` with its first tensor record's fields changed (re-sealed: only the decoder's checks remain)."""
    head, hlen = header(blob)
    head["tensors"][0].update(changes)
    return build(head, blob[PREAMBLE + hlen:])


def test_lying_bitmap_and_range_headers():
    t, grids = _new_codings()
    blob = encode({"w": t["rows.weight"]}, {"w": grids["rows.weight"]}, huffman=True)
    rec = _parse(blob)[1][0]
    assert rec["layout"] == "bitmap" and rec["code_coding"] == "range"
    for lie in (dict(bitmap_axis=2), dict(bitmap_axis=None), dict(bitmap_axis=1), dict(nonzero=rec["nonzero"] + 1),
                dict(nonzero=rec["nonzero"] - 1), dict(layout="sparse"), dict(code_coding="huffman"),
                dict(shape=[200, 60]), dict(shape=[12000]), dict(shape=[1, 12000]), dict(bitmap_axis=True)):
        bad = _with_record(blob, **lie)
        check_hostile(bad)
        msg = refused(decode, bad)
        assert msg is not None and "checksum" not in msg, lie
    steps = build({"meta": {}, "tensors": [{"name": "w", "shape": [1, 70_000], "dtype": "float32", "kind": "raw",
                                            "layout": "bitmap", "nonzero": 1, "bitmap_axis": 0,
                                            "sections": {"gaps": 4, "raw": 4}}]}, b"\0" * 8)
    assert "bitmap section" in refused(decode, steps)  # more decode steps than allowed: refused unread


def test_damaged_range_and_bitmap_sections():
    """Every byte of the range-coded and bitmap sections XORed with 1..255 and re-sealed: ArtifactError or
    some tensors, never another exception; truncated or padded sections are refused."""
    t, grids = _new_codings()
    blob = encode({"w": t["rows.weight"]}, {"w": grids["rows.weight"]}, huffman=True)
    _, hlen = header(blob)
    start = PREAMBLE + hlen
    refusals = 0
    for i in range(start, len(blob)):
        for x in (1, 0x80, 0xFF):
            b = bytearray(blob)
            b[i] ^= x
            check_hostile(_seal(bytes(b)))
            refusals += refused(decode, _seal(bytes(b))) is not None
    assert refusals > (len(blob) - start) * 3 // 2  # the count checks catch most changes
    head, _ = header(blob)
    sec = head["tensors"][0]["sections"]
    for k in ("gaps", "codes", "code_table"):
        for delta in (-4, 4, -1):
            bad = json.loads(json.dumps(head))
            bad["tensors"][0]["sections"][k] = sec[k] + delta
            body = bytearray(blob[start:])
            if delta > 0:
                off = sum(v for name, v in sec.items() if list(sec).index(name) <= list(sec).index(k))
                body[off:off] = b"\x01" * delta
            else:
                off = sum(v for name, v in sec.items() if list(sec).index(name) <= list(sec).index(k))
                del body[off + delta:off]
            msg = refused(decode, build(bad, bytes(body)))
            assert msg is not None and "checksum" not in msg, (k, delta)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_random_range_sections_after_valid_header(data):
    """A real range/bitmap header followed by random section bytes of the right lengths (re-sealed)."""
    t, grids = _new_codings()
    blob = encode({"w": t["cols.weight"], "g": t["bursts"]}, {"w": grids["cols.weight"]}, huffman=True)
    hlen = struct.unpack("<I", blob[5:9])[0]
    n = len(blob) - PREAMBLE - hlen
    check_hostile(_seal(blob[:PREAMBLE + hlen] + data.draw(st.binary(min_size=n, max_size=n))))


def test_range_coded_gaps_below_one_bit_a_symbol():
    """Found by bench/beyond.py: a lightly pruned layer's gaps are nearly all 0 and range coding spends less
    than a bit on each, so the decoder's bound on the gap count must come from the tensor, not the blob."""
    rng = np.random.default_rng(2)
    w = torch.from_numpy(rng.standard_normal((300, 784)).astype(np.float32))
    w[torch.from_numpy(rng.random((300, 784)) < 0.03)] = 0.0
    blob = roundtrip({"w": w}, None, huffman=True)
    rec = _parse(blob)[1][0]
    assert rec["layout"] == "sparse" and rec["gap_coding"] == "range"
    assert rec["gap_symbols"] > 8 * (rec["sections"][1] + rec["sections"][2])
    assert "gap_symbols" in refused(decode, _with_record(blob, gap_symbols=2 * w.numel() + 1))


def test_a_path_given_for_an_artifact_is_told_to_be_read(tmp_path):
    """decode_model('x.cpg', ...) said only 'artifact must be bytes, got str'."""
    import compress_engine as ce
    for given in ("x.cpg", tmp_path / "x.cpg"):
        with pytest.raises(ce.ArtifactError, match=r"got (str|PosixPath): read the file first, e\.g\. "
                                                   r"pathlib\.Path\(path\)\.read_bytes\(\)"):
            ce.decode_model(given)
    with pytest.raises(ce.ArtifactError) as e:
        ce.decode([1, 2])
    assert "read the file" not in str(e.value)
