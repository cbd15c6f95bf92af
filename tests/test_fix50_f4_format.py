"""docs/FORMAT.md is enough to write a decoder: a reviewer deploying artifacts to a device-side loader had to copy the
header's preset dictionary out of the source and guess the zero point's type, the Huffman nibble and bit order and the
range coder's model. The decoder below is written from docs/FORMAT.md alone (standard library and numpy; no
compress_engine, which only makes the artifacts and the expected tensors; constriction only for one cross-check of the
documented model) and must give back every tensor bit for bit, for artifacts of every layout and coding the encoder
chooses; the ResNet and LeNet-5 it rebuilds from the header's spec, as the doc's layer list says, must compute what the
package's decoded model computes."""

import bisect
import hashlib
import json
import math
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

DOC = Path(__file__).resolve().parents[1] / "docs" / "FORMAT.md"


# ----------------------------------------------------------------------------- the decoder, from docs/FORMAT.md only

def header_dict():
    text = DOC.read_text()
    block = text.split("<!-- HEADER_DICT hex begin -->", 1)[1].split("<!-- HEADER_DICT hex end -->", 1)[0]
    hexed = "".join(line.strip() for line in block.splitlines() if re.fullmatch(r"[0-9a-f]+", line.strip()))
    d = bytes.fromhex(hexed)
    assert len(d) == 781 and hashlib.sha256(d).hexdigest() in text
    return d


ITEMSIZE = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int8": 1, "int16": 2, "int32": 4, "int64": 8,
            "uint8": 1, "bool": 1}
UINT = {1: "<u1", 2: "<u2", 4: "<u4", 8: "<u8"}
ORDER = ("codebook", "gap_table", "gaps", "code_table", "codes", "raw")
P24 = 1 << 24
MASK64 = (1 << 64) - 1


def msb_bits(data):
    return np.unpackbits(np.frombuffer(bytes(data), np.uint8))  # bit t = bit 7 - t%8 of byte t//8


def read_fixed(data, n, w):
    assert len(data) == (n * w + 7) // 8
    bits = msb_bits(data)[:n * w].reshape(n, w).astype(np.int64)
    return bits @ (np.int64(1) << np.arange(w - 1, -1, -1, dtype=np.int64))


def read_huffman(table, data, n, k, zlibbed):
    if zlibbed:
        table = zlib.decompress(table)
    assert len(table) == (k + 1) // 2
    lengths = []
    for byte in table:
        lengths += [byte >> 4, byte & 15]
    lengths = lengths[:k]
    code, prev, codes = -1, 0, {}
    for length, sym in sorted((length, s) for s, length in enumerate(lengths) if length):
        code = (code + 1) << (length - prev) if code >= 0 else 0
        prev = length
        codes[length, code] = sym
    out, cur, clen, used = [], 0, 0, 0
    for bit in msb_bits(data).tolist():
        if len(out) == n:
            break
        used += 1
        cur, clen = (cur << 1) | bit, clen + 1
        if (clen, cur) in codes:
            out.append(codes[clen, cur])
            cur, clen = 0, 0
    assert len(out) == n and (used + 7) // 8 == len(data)  # the data ends with the last code's byte
    return np.array(out, np.int64)


class RangeDecoder:
    """Section 6.4.1, 64-bit state, 32-bit words, 24-bit precision."""

    def __init__(self, data):
        assert len(data) % 4 == 0
        self.words = list(struct.unpack(f"<{len(data) // 4}I", data))
        self.at, self.point = 0, 0
        got = 0
        while got < 2 and self.at < len(self.words):
            self.point = (self.point << 32) | self.words[self.at]
            self.at, got = self.at + 1, got + 1
        if got == 1:
            self.point <<= 32
        self.lower, self.range = 0, MASK64

    def decode(self, cdf):
        scale = self.range >> 24
        quantile = ((self.point - self.lower) & MASK64) // scale
        assert quantile < P24
        s = bisect.bisect_right(cdf, quantile) - 1
        self.lower = (self.lower + scale * cdf[s]) & MASK64
        self.range = scale * (cdf[s + 1] - cdf[s])
        if self.range < 1 << 32:
            self.lower = (self.lower << 32) & MASK64
            self.range <<= 32
            self.point = (self.point << 32) & MASK64
            if self.at < len(self.words):
                self.point |= self.words[self.at]
                self.at += 1
        return s

    def done(self):
        return self.at == len(self.words)


def categorical_cdf(counts):
    """Section 6.4.2."""
    k = len(counts)
    scale = float(P24 - k) / float(sum(counts))
    cdf, run = [], 0
    for i, c in enumerate(counts):
        cdf.append(int(float(run) * scale) + i)
        run += c
    return cdf + [P24]


def bernoulli_cdf(p):
    """Section 6.4.3."""
    q = 1.0 - p
    scale = float(P24 - 2) / (q + p)
    return [0, int(q * scale) + 1, P24]


def read_varints(data, k):
    vals, x, shift = [], 0, 0
    for byte in data:
        x |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            vals.append(x)
            x, shift = 0, 0
    assert len(vals) == k and shift == 0
    return vals


def read_range(table, data, n, k):
    counts = read_varints(table, k)
    assert sum(counts) == n
    cdf = categorical_cdf(counts)
    dec = RangeDecoder(data)
    out = np.array([dec.decode(cdf) for _ in range(n)], np.int64)
    assert dec.done()
    return out


def read_stream(mode, table, data, n, k):
    if n == 0:
        assert mode == "fixed" and not table and not data
        return np.zeros(0, np.int64)
    if mode == "fixed":
        assert not table
        return read_fixed(data, n, max(1, (k - 1).bit_length()))
    if mode in ("huffman", "huffman-zlib"):
        return read_huffman(table, data, n, k, mode == "huffman-zlib")
    assert mode == "range"
    return read_range(table, data, n, k)


def read_bitmap(data, rows, cols, axis):
    """Section 5.2: the (rows, cols) mask, Krichevsky-Trofimov contexts per column (axis 1) or per row (axis 0)."""
    mask = np.zeros((rows, cols), bool)
    dec = RangeDecoder(data)
    steps, ctx = (rows, cols) if axis == 1 else (cols, rows)
    ones = [0] * ctx
    for i in range(steps):
        for j in range(ctx):
            bit = dec.decode(bernoulli_cdf((ones[j] + 0.5) / (i + 1.0)))
            ones[j] += bit
            if axis == 1:
                mask[i, j] = bit
            else:
                mask[j, i] = bit
    assert dec.done()
    return mask


def doc_decode(blob):
    """Artifact bytes -> (meta, {name: (dtype name, shape, flat bit patterns as unsigned ints)})."""
    assert blob[:4] == b"CPG1" and blob[4] == 3
    (hlen,) = struct.unpack("<I", blob[5:9])
    (crc,) = struct.unpack("<I", blob[9:13])
    assert crc == zlib.crc32(blob[:9] + blob[13:])
    z = zlib.decompressobj(zdict=header_dict())
    head = json.loads(z.decompress(blob[13:13 + hlen]).decode("utf-8"))
    assert z.eof and not z.unused_data
    off, out = 13 + hlen, {}
    for rec in head["tensors"]:
        sec = {}
        for name in ORDER:
            size = rec["sections"].get(name, 0)
            sec[name] = blob[off:off + size]
            off += size
        shape, dtype = rec["shape"], rec["dtype"]
        n = math.prod(shape)
        size = ITEMSIZE[dtype]
        layout = rec["layout"]
        if layout == "dense":
            pos = np.arange(n)
        elif layout == "sparse":
            b = rec["gap_bits"]
            e = (1 << b) - 1
            s = read_stream(rec["gap_coding"], sec["gap_table"], sec["gaps"], rec["gap_symbols"], 1 << b)
            el = s != e
            pos = np.cumsum(np.where(el, s + 1, e))[el] - 1
            assert pos.size == rec["nonzero"] and (not s.size or el[-1])
        else:
            rows = shape[0] if shape and shape[0] else 1
            cols = n // rows
            data = sec["gaps"]
            if layout == "bitmap":
                pos = np.flatnonzero(read_bitmap(data, rows, cols, rec["bitmap_axis"]))
            else:
                nflag = (rows + cols + 7) // 8
                flags = msb_bits(data[:nflag])
                live_r, live_c = np.flatnonzero(flags[:rows]), np.flatnonzero(flags[rows:rows + cols])
                assert (live_r.size, live_c.size) == (rec["live_rows"], rec["live_cols"])
                sub = read_bitmap(data[nflag:], live_r.size, live_c.size, rec["bitmap_axis"])
                i, j = np.nonzero(sub)
                pos = np.sort(live_r[i] * cols + live_c[j])
            assert pos.size == rec["nonzero"]
        count = pos.size
        if rec["kind"] == "raw":
            assert len(sec["raw"]) == count * size
            vals = np.frombuffer(sec["raw"], UINT[size])
        else:
            if rec["kind"] == "codebook":
                table = np.frombuffer(sec["codebook"], "<u4")
                k = table.size
            else:
                nq, extra = rec["q_levels"], rec["extra"]
                k = nq + len(extra)
            codes = read_stream(rec["code_coding"], sec["code_table"], sec["codes"], count, k)
            if rec["kind"] == "codebook":
                vals = table[codes]
            else:
                nch = rec["channels"]
                scale = np.frombuffer(sec["codebook"][:4 * nch], "<f4")
                zp = np.frombuffer(sec["codebook"][4 * nch:], "<i4").astype(np.int64)
                c = pos // (n // nch) if nch > 1 else np.zeros(count, np.int64)
                vals = np.zeros(count, np.uint32)
                base = codes < nq
                d = codes[base] + rec["q_low"] - zp[c[base]]
                vals[base] = (d.astype(np.float32) * scale[c[base]]).view(np.uint32)
                vals[~base] = np.array(extra, np.uint32)[codes[~base] - nq]
        flat = np.zeros(n, UINT[size])
        flat[pos] = vals
        out[rec["name"]] = (dtype, shape, flat)
    assert off == len(blob)
    return head["meta"], out, head["tensors"]


# ----------------------------------------------------------------------------- the checks

SIGNED = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def check(blob, seen):
    """The doc's decoder agrees bit for bit with the package's on every tensor; record which codings it met."""
    from compress_engine.core.encode import DTYPE_NAMES, decode
    meta, got, recs = doc_decode(blob)
    want = decode(blob)
    assert list(got) == list(want)
    for name, t in want.items():
        dtype, shape, flat = got[name]
        assert dtype == DTYPE_NAMES[t.dtype] and tuple(shape) == tuple(t.shape), name
        bits = t.contiguous().view(SIGNED[t.element_size()]).reshape(-1).numpy().view(UINT[t.element_size()])
        assert np.array_equal(flat, bits), name
    for r in recs:
        seen.add(("kind", r["kind"]))
        seen.add(("layout", r["layout"]))
        seen.add(("dtype", r["dtype"]))
        for key in ("gap_coding", "code_coding", "bitmap_axis"):
            if key in r:
                seen.add((key, r[key]))
        if r["kind"] == "affine":
            seen.add(("affine", "per-channel" if r["channels"] > 1 else "per-tensor", bool(r["extra"])))
    return meta, got


def synthetic():
    """Artifacts made with encode() directly: every dtype, signed zeros, grids of each kind, skewed code and gap
    streams (Huffman, zlib'd tables, range coding) and masks with dead rows / columns (bitmaps)."""
    from compress_engine.core.encode import Affine, Codebook, encode
    g = torch.Generator().manual_seed(0)
    out = []
    plain = {"w": torch.randn(7, 5, generator=g), "h": torch.randn(9, generator=g).half(),
             "bf": torch.randn(6, generator=g).bfloat16(), "d": torch.randn(3, 2, generator=g).double(),
             "i8": torch.randint(-128, 127, (11,), generator=g, dtype=torch.int8),
             "i16": torch.tensor([-3, 0, 7], dtype=torch.int16), "i32": torch.tensor([1 << 30, -5], dtype=torch.int32),
             "i64": torch.tensor([12345678901, 0, -1]), "u8": torch.arange(5, dtype=torch.uint8),
             "b": torch.tensor([True, False, True]), "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 3)}
    out.append(encode(plain, meta={"spec": None}))
    # pruned: 90 % zeros (one -0.0 among them), raw values, fixed and entropy-coded gaps
    w = torch.randn(64, 100, generator=g)
    w[torch.rand(w.shape, generator=g) < 0.9] = 0.0
    w[0, 1] = -0.0
    out += [encode({"w": w}), encode({"w": w}, huffman=True)]
    # clustered: 16 shared values, some zeros
    cb = torch.linspace(-1, 1, 16)
    c = cb[torch.randint(0, 16, (40, 30), generator=g)]
    c[torch.rand(c.shape, generator=g) < 0.3] = 0.0
    c[3, 3] = -0.0
    out += [encode({"c": c}, {"c": Codebook(cb.numpy())}), encode({"c": c}, {"c": Codebook(cb.numpy())}, huffman=True)]
    # affine per tensor and per channel at several bit widths, zero points that do and do not give an exact zero
    for bits, per_channel, zero in ((2, False, 1), (4, False, 3), (8, False, 128), (3, True, 2), (8, True, 100)):
        nch = 12 if per_channel else 1
        scale = (torch.rand(nch, generator=g) * 0.1 + 0.01).numpy().astype(np.float32)
        zp = np.full(nch, zero, np.int64)
        q = torch.randint(0, 1 << bits, (12, 25), generator=g)
        s = torch.from_numpy(np.repeat(scale, 12 // nch))[:, None]
        z = torch.from_numpy(np.repeat(zp, 12 // nch))[:, None]
        a = (q - z).to(torch.float32) * s
        a[torch.rand(a.shape, generator=g) < 0.5] = 0.0
        if bits == 8 and per_channel:
            a[1, 2] = -0.0  # not on the grid: an extra value
        grid = Affine(scale, zp, 0, (1 << bits) - 1)
        out += [encode({"a": a}, {"a": grid}), encode({"a": a}, {"a": grid}, huffman=True)]
    # a grid without zero (zero point outside the range): zeros become extra values
    a = torch.full((4, 50), 0.5)
    a[:, ::3] = 0.0
    a[0, 0] = -0.0
    out.append(encode({"a": a}, {"a": Affine(np.float32([0.25]), np.int64([-1]), 0, 3)}))
    # skewed codes (range coding) and a wide gap alphabet (zlib'd Huffman table)
    sk = torch.where(torch.rand(64, 64, generator=g) < 0.02, torch.tensor(1.0), torch.tensor(-1.0))
    out.append(encode({"sk": sk}, {"sk": Codebook(np.float32([-1, 1]))}, huffman=True))
    many = torch.zeros(100_000)  # gaps of about 700: a 10-bit gap alphabet of 3 used symbols
    many[torch.cumsum(690 + 10 * torch.randint(0, 3, (140,), generator=g), 0)] = 1.0
    huff = torch.zeros(5000)
    huff[torch.cumsum(torch.randint(1, 9, (600,), generator=g), 0)] = 1.0
    out.append(encode({"many": many, "huff": huff}, huffman=True))
    # pruning that leaves a few units / inputs alive (bitmaps), both contexts
    m = torch.randn(96, 80, generator=g)
    m[torch.rand(96, generator=g) < 0.7] = 0.0
    m[:, torch.rand(80, generator=g) < 0.6] = 0.0
    m[torch.rand(m.shape, generator=g) < 0.3] = 0.0
    dens = torch.linspace(0.05, 0.6, 200)
    rows = torch.randn(200, 200, generator=g) * (torch.rand(200, 200, generator=g) < dens[:, None])
    cols = torch.randn(200, 200, generator=g) * (torch.rand(200, 200, generator=g) < dens[None])
    cbm = torch.linspace(-1, 1, 4)[torch.randint(0, 4, (96, 80), generator=g)] * (m != 0)
    out.append(encode({"m": m, "rows": rows, "cols": cols, "cbm": cbm},
                      {"cbm": Codebook(torch.linspace(-1, 1, 4).numpy())}, huffman=True))
    return out


def test_header_dict_in_the_doc_is_the_one_the_encoder_uses():
    from compress_engine.core.encode import HEADER_DICT
    assert header_dict() == HEADER_DICT


def test_documented_range_model_is_constrictions():
    """Sections 6.4.2 / 6.4.3 against constriction 0.5.0 itself: the documented cdf decodes its words."""
    import importlib.metadata
    import constriction
    assert importlib.metadata.version("constriction") == "0.5.0"  # the version the doc names
    rng = np.random.default_rng(0)
    counts = [0, 5, 1, 900, 3, 0, 91]
    syms = rng.permutation(np.repeat(np.arange(len(counts)), counts)).astype(np.int32)
    enc = constriction.stream.queue.RangeEncoder()
    enc.encode(syms, constriction.stream.model.Categorical(np.asarray(counts, np.float64), perfect=False))
    words = np.asarray(enc.get_compressed(), np.uint32).astype("<u4").tobytes()
    dec = RangeDecoder(words)
    assert [dec.decode(categorical_cdf(counts)) for _ in syms] == syms.tolist() and dec.done()
    bits = (rng.random(3000) < 0.1).astype(np.int32)
    p = rng.random(3000) * 0.98 + 0.01
    enc = constriction.stream.queue.RangeEncoder()
    enc.encode(bits, constriction.stream.model.Bernoulli(perfect=False), p)
    dec = RangeDecoder(np.asarray(enc.get_compressed(), np.uint32).astype("<u4").tobytes())
    assert [dec.decode(bernoulli_cdf(float(x))) for x in p] == bits.tolist() and dec.done()


def test_doc_decoder_is_bit_exact_on_every_layout_and_coding():
    seen = set()
    for blob in synthetic():
        check(blob, seen)
    need = {("kind", "raw"), ("kind", "codebook"), ("kind", "affine"),
            ("layout", "dense"), ("layout", "sparse"), ("layout", "bitmap"), ("layout", "live-bitmap"),
            ("bitmap_axis", 0), ("bitmap_axis", 1),
            ("affine", "per-tensor", False), ("affine", "per-channel", False), ("affine", "per-tensor", True),
            *(("dtype", d) for d in ITEMSIZE),
            *(("gap_coding", m) for m in ("fixed", "huffman", "huffman-zlib", "range")),
            *(("code_coding", m) for m in ("fixed", "huffman", "range"))}
    assert need <= seen, sorted(need - seen, key=str)


def lenet5_forward(t, x):
    """docs/FORMAT.md section 7, lenet5."""
    x = F.relu(F.max_pool2d(F.conv2d(x, t["conv1.weight"], t["conv1.bias"]), 2))
    x = F.relu(F.max_pool2d(F.conv2d(x, t["conv2.weight"], t["conv2.bias"]), 2))
    x = F.relu(F.linear(x.flatten(1), t["fc1.weight"], t["fc1.bias"]))
    return F.linear(x, t["fc2.weight"], t["fc2.bias"])


def resnet_forward(spec, t, x):
    """docs/FORMAT.md section 7, resnet with "batchnorm": false (folded)."""
    assert spec["batchnorm"] is False and not any(".bn" in k or k.startswith("bn.") for k in t)
    x = F.relu(F.conv2d(x, t["stem.weight"], t["stem.bias"], 1, 1))
    for s in range(len(spec["widths"])):
        p, stride = f"blocks.{s}.", 1 if s == 0 else 2
        h = F.relu(F.conv2d(x, t[p + "conv1.weight"], t[p + "conv1.bias"], stride, 1))
        h = F.conv2d(h, t[p + "conv2.weight"], t[p + "conv2.bias"], 1, 1)
        short = x if s == 0 else F.conv2d(x, t[p + "shortcut.0.weight"], t[p + "shortcut.0.bias"], stride, 0)
        x = F.relu(h + short)
    return F.linear(x.mean((2, 3)), t["fc.weight"], t["fc.bias"])


def as_tensors(got):
    return {k: torch.from_numpy(flat.view(np.float32).copy()).reshape(shape) for k, (dt, shape, flat) in got.items()
            if dt == "float32"}


@pytest.mark.parametrize("name, recipe", [
    ("lenet-5", dict(sparsity=0.9, clusters=16, huffman=True)),
    ("lenet-5", dict(sparsity=0.9, bits=4, huffman=True)),
    ("resnet-8", dict(sparsity=0.9, clusters=16, huffman=True)),
    ("resnet-8", dict(sparsity=0.8)),
    ("resnet-8", dict(sparsity=0.7, bits=6, per_channel=True, huffman=True, prune_focus=1.0)),
    ("resnet-8", dict(sparsity=0.5, structured=True, huffman=True)),
])
def test_doc_decoder_and_layers_on_sample_model_artifacts(fmnist, name, recipe):
    import compress_engine as ce
    data = fmnist.subset(256, 64, "fmnist[tiny]")
    res = ce.compress(ce.load_model(name), ce.Recipe(**recipe), data, evaluate=False)
    meta, got = check(res.artifact, set())
    model, _ = ce.decode_model(res.artifact)
    x = data.x("test")[:64]
    t = as_tensors(got)
    with torch.no_grad():
        mine = lenet5_forward(t, x) if meta["spec"]["arch"] == "lenet5" else resnet_forward(meta["spec"], t, x)
        theirs = model(x)
    assert torch.allclose(mine, theirs, atol=1e-5, rtol=1e-5)
    assert x.dtype == torch.float32 and x.shape[1:] == (1, 28, 28) and 0 <= float(x.min()) and float(x.max()) <= 1
