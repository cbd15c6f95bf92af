"""Deep Compression stage 3: store (pruned, shared or quantized) weights in as few bytes as possible.

The size of a compressed model everywhere in the product is len(encode(...)), and decode gives back
every float32 weight bit for bit. Per tensor we pick whichever layout is smallest:

- dense:  every element gets a value: raw float32, or a code into the tensor's value table;
- sparse: only elements whose bit pattern is not +0.0 are stored (so -0.0 survives), their
  positions as relative indices (the count of zeros before each, in b bits; the all-ones symbol
  is an escape meaning "skip 2**b - 1 zeros, no element here"), as in Deep Compression;
- the code stream and the gap stream are each fixed-width bit-packed, or with huffman=True
  canonical-Huffman coded when that is smaller (code lengths <= 15 bits, so decode is a
  2**15-entry table lookup per symbol).

A Codebook grid is stored as the table of the values actually used; an Affine grid as its
scale and zero point per channel plus codes q - q0. The two signed zeros are always allowed,
as extra table entries when the grid cannot express them.

Container (format version 2): b"CPG1", a version byte, a little-endian u32 header length, a
little-endian u32 CRC-32 (zlib.crc32) of every other byte of the artifact, a zlib-compressed JSON
header {"meta": ..., "t": [tensor records]}, then for each tensor six sections back to back:
codebook (values f32, or scales f32 + zero points i32), gap Huffman table, gap stream,
code Huffman table, code stream, raw float32 values. A record holds name "n", shape "s",
kind "k" (r raw / c codebook / a affine), layout "l" (d / s), section lengths "z", and:
sparse: "m" non-zeros, "b" gap bits, "g" gap symbols, "gm" gap mode; coded: "cm" code mode
(0 fixed width, 1 Huffman with a nibble table, 2 Huffman with a zlib'd nibble table);
affine: "C" channels, "q0" lowest q, "nq" q values, "sp" extra values (float32 bit patterns).
decode / read_meta / size_breakdown take untrusted bytes. The checksum comes first: without it about
half of all single-byte changes past the preamble (nearly all inside a code stream) still decoded,
to other weights. Then every
size is checked against the blob before anything is allocated (a crafted file can carry a valid
checksum), and anything wrong raises ArtifactError. Version 1 (no checksum) is refused.
"""

import json
import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np
import torch

from compress_engine.core.errors import ArtifactError

MAGIC = b"CPG1"
VERSION = 2
PREAMBLE = 13  # magic 4, version 1, header length u32 at [5:9], CRC-32 u32 at [9:13]
MAX_ELEMENTS = 50_000_000  # total over all tensors an artifact may claim
MAX_NDIM = 16
MAX_TENSORS = 100_000
MAX_HEADER = 16 << 20  # decompressed JSON header bytes
MAX_SYMBOLS = 65538  # 65536 grid values + the two signed zeros
HUFF_BITS = 15  # longest Huffman code; decode looks up 15-bit windows
CHUNK = 1 << 18  # elements (or bits) processed per vectorised step, bounds temporary memory
NEG_ZERO = 0x80000000
SECTIONS = ("codebook", "index", "index", "codes", "codes", "raw")  # part each section counts in


@dataclass(frozen=True, eq=False)
class Codebook:
    """Weight sharing: every non-zero element equals one of `values` (float32, shape (k,))."""
    values: np.ndarray


@dataclass(frozen=True, eq=False)
class Affine:
    """Uniform grid: value = float32(q - zero_point[c]) * scale[c], qmin <= q <= qmax, c = index on axis 0."""
    scale: np.ndarray
    zero_point: np.ndarray
    qmin: int
    qmax: int


def _fail(msg):
    raise ArtifactError(msg)


# ----------------------------------------------------------------------------- bit packing

def _width(k):
    """Bits of a fixed-width code for an alphabet of k symbols (at least 1)."""
    return max(1, (int(k) - 1).bit_length())


def _pack_fixed(vals, width):
    """Bit-pack non-negative ints MSB first, `width` (<= 17) bits each (chunks of CHUNK keep bytes aligned)."""
    out = []
    for a in range(0, len(vals), CHUNK):
        bits = np.unpackbits(vals[a:a + CHUNK].astype(">u4").view(np.uint8)).reshape(-1, 32)
        out.append(np.packbits(bits[:, 32 - width:].ravel()).tobytes())
    return b"".join(out)


def _unpack_fixed(data, count, width):
    """Inverse of _pack_fixed; the caller has checked len(data) == ceil(count * width / 8), width <= 17."""
    buf = np.frombuffer(bytes(data) + b"\0\0", np.uint8)
    out = np.empty(count, np.int64)
    for a in range(0, count, CHUNK):
        o = np.arange(a, min(count, a + CHUNK), dtype=np.int64) * width
        by = o >> 3
        win = (buf[by].astype(np.int64) << 16) | (buf[by + 1].astype(np.int64) << 8) | buf[by + 2]
        out[a:a + len(o)] = (win >> (24 - width - (o & 7))) & ((1 << width) - 1)
    return out


# ----------------------------------------------------------------------------- canonical Huffman

def _tree_depths(w):
    """Leaf depths of a Huffman tree over ascending weights w (two-queue method, O(n))."""
    n = len(w)
    parent, inner, i, j = [0] * (2 * n - 1), [], 0, 0
    for k in range(n - 1):
        total = 0
        for _ in range(2):
            if i < n and (j >= len(inner) or w[i] <= inner[j]):
                node, x, i = i, w[i], i + 1
            else:
                node, x, j = n + j, inner[j], j + 1
            parent[node] = n + k
            total += x
        inner.append(total)
    depth = [0] * (2 * n - 1)
    for node in range(2 * n - 3, -1, -1):
        depth[node] = depth[parent[node]] + 1
    return depth[:n]


def _huffman_lengths(counts):
    """Code length per symbol (0 = unused), all <= HUFF_BITS, halving counts until they fit; None if impossible."""
    used = np.flatnonzero(counts)
    lengths = np.zeros(len(counts), np.uint8)
    if used.size == 1:
        lengths[used] = 1
        return lengths
    if used.size == 0 or used.size > 1 << HUFF_BITS:
        return None
    c = counts[used].astype(np.int64)
    while True:
        order = np.argsort(c, kind="stable")
        depth = np.array(_tree_depths(c[order].tolist()))
        if depth.max() <= HUFF_BITS:
            lengths[used[order]] = depth
            return lengths
        c = (c + 1) >> 1


def _canonical(lengths):
    """Canonical code as intervals: symbols sorted by (length, symbol) own consecutive slices of [0, 2**15)."""
    syms = np.flatnonzero(lengths)
    lens = lengths[syms].astype(np.int64)
    order = np.lexsort((syms, lens))
    syms, lens = syms[order], lens[order]
    span = np.int64(1) << (HUFF_BITS - lens)
    return syms, lens, np.cumsum(span) - span, span


def _pack_table(lengths):
    """Code lengths as nibbles, zlib'd when that is smaller -> (mode 1 or 2, bytes)."""
    nib = np.zeros(len(lengths) + (len(lengths) & 1), np.uint8)
    nib[:len(lengths)] = lengths
    raw = ((nib[0::2] << 4) | nib[1::2]).tobytes()
    z = zlib.compress(raw, 9)
    return (2, z) if len(z) < len(raw) else (1, raw)


def _inflate(data, limit, what):
    """zlib-decompress untrusted bytes, refusing more than `limit` bytes of output or trailing input."""
    d = zlib.decompressobj()
    try:
        out = d.decompress(bytes(data), limit + 1)
    except zlib.error as e:
        _fail(f"{what}: corrupt zlib data ({e})")
    if len(out) > limit or not d.eof or d.unused_data:
        _fail(f"{what}: zlib data is truncated, too long or followed by garbage")
    return out


def _read_table(data, mode, k, what):
    """Parse a Huffman table (nibble code lengths for k symbols) and check it is a prefix code."""
    need = (k + 1) // 2
    if mode == 2:
        data = _inflate(data, need, what)
    if len(data) != need:
        _fail(f"{what}: Huffman table has {len(data)} bytes, expected {need}")
    a = np.frombuffer(bytes(data), np.uint8)
    lengths = np.empty(2 * need, np.uint8)
    lengths[0::2], lengths[1::2] = a >> 4, a & 15
    if lengths[k:].any() or not lengths.any():
        _fail(f"{what}: Huffman table is empty or has lengths for symbols past the alphabet")
    lengths = lengths[:k]
    _, _, start, span = _canonical(lengths)
    if start[-1] + span[-1] > 1 << HUFF_BITS:
        _fail(f"{what}: Huffman code lengths are not a valid prefix code")
    return lengths


def _huff_encode(syms, lengths):
    """Emit the canonical codes of `syms`, vectorised: each code is the top bits of its 15-bit interval start."""
    cs, cl, start, _ = _canonical(lengths)
    code_of = np.zeros(len(lengths), ">u2")
    len_of = np.zeros(len(lengths), np.uint8)
    code_of[cs], len_of[cs] = start << 1, cl  # MSB-aligned in 16 bits
    cols = np.arange(16, dtype=np.uint8)
    bits = []
    for a in range(0, len(syms), CHUNK):
        s = syms[a:a + CHUNK]
        mat = np.unpackbits(code_of[s].view(np.uint8)).reshape(-1, 16)
        bits.append(mat[cols < len_of[s][:, None]])
    return np.packbits(np.concatenate(bits)).tobytes()


def _huff_decode(data, lengths, count, what):
    """Decode `count` symbols: per symbol one table lookup on the next 15 bits (windows built vectorised)."""
    syms, lens, start, span = _canonical(lengths)
    filled = int(start[-1] + span[-1])
    sym_tab = np.zeros(1 << HUFF_BITS, np.int64)
    len_tab = np.zeros(1 << HUFF_BITS, np.int64)
    sym_tab[:filled], len_tab[:filled] = np.repeat(syms, span), np.repeat(lens, span)
    nbits = 8 * len(data)
    buf = np.frombuffer(bytes(data) + b"\0\0", np.uint8)
    out, p, got = [], 0, 0
    while got < count:
        if p >= nbits:
            _fail(f"{what}: Huffman stream ends after {got} of {count} symbols")
        q = np.arange(p, min(nbits, p + CHUNK), dtype=np.int64)
        by = q >> 3
        win = (buf[by].astype(np.int64) << 16) | (buf[by + 1].astype(np.int64) << 8) | buf[by + 2]
        v = (win >> (24 - HUFF_BITS - (q & 7))) & ((1 << HUFF_BITS) - 1)
        lens_at = len_tab[v].tolist()
        i, k, lim, need, hits = 0, 0, len(q), count - got, []
        while i < lim and k < need:
            step = lens_at[i]
            if not step:
                _fail(f"{what}: bit pattern that is no Huffman code")
            hits.append(i)
            i += step
            k += 1
        out.append(sym_tab[v[hits]])
        p, got = p + i, got + k
    if p > nbits or (p + 7) // 8 != len(data):
        _fail(f"{what}: Huffman stream length does not match its {count} symbols")
    return np.concatenate(out) if out else np.zeros(0, np.int64)


# ----------------------------------------------------------------------------- stream choice

def _stream_plan(hist, width, huffman):
    """Cheapest coding of a symbol stream with histogram `hist`: dict(mode, size, lengths, table, fixed size)."""
    count = int(hist.sum())
    fixed = (count * width + 7) // 8
    best = dict(mode=0, size=fixed, lengths=None, table=b"", fixed=fixed)
    if huffman and count:
        lengths = _huffman_lengths(hist)
        if lengths is not None:
            mode, table = _pack_table(lengths)
            size = (int(np.dot(hist.astype(np.int64), lengths)) + 7) // 8 + len(table)
            if size < best["size"]:
                best = dict(mode=mode, size=size, lengths=lengths, table=table, fixed=fixed)
    return best


def _stream_bytes(plan, syms, width):
    """Build (table, stream) bytes for a plan from _stream_plan."""
    if plan["mode"] == 0:
        return b"", _pack_fixed(syms, width)
    return plan["table"], _huff_encode(syms, plan["lengths"])


def _gap_plan(pos, huffman):
    """Best gap bits b (1..16) and stream coding for sparse positions, by exact cost for every b.

    "fixed" is the best size without Huffman, so encode knows what Huffman saved."""
    d = np.diff(pos, prepend=-1) - 1  # zeros before each non-zero
    if d.size == 0:
        return dict(b=1, g=0, mode=0, size=0, lengths=None, table=b"", d=d, fixed=0)
    dmax, best, fixed = int(d.max()), None, None
    for b in range(1, 17):
        e = (1 << b) - 1
        q = d // e
        esc = int(q.sum())
        if huffman:
            hist = np.bincount(d - q * e, minlength=e + 1)
            hist[e] += esc
            plan = _stream_plan(hist, b, True)
        else:
            plan = _stream_plan(np.array([d.size + esc]), b, False)
        fixed = plan["fixed"] if fixed is None else min(fixed, plan["fixed"])
        if best is None or plan["size"] < best["size"]:
            best = dict(plan, b=b, g=d.size + esc, d=d)
        if e > dmax:  # no escapes from here on: wider gaps only cost more
            break
    return dict(best, fixed=fixed)


def _gap_symbols(d, b):
    """Gap stream for width b: each gap d becomes d // E escapes then d % E (E = 2**b - 1)."""
    e = (1 << b) - 1
    q = d // e
    syms = np.full(int(d.size + q.sum()), e, np.int64)
    syms[np.cumsum(q + 1) - 1] = d - q * e
    return syms


# ----------------------------------------------------------------------------- value tables per grid

def _check_grid(name, nz_bits, ok):
    """Refuse a tensor whose non-zero elements are not all on its grid (-0.0 is always allowed)."""
    off = int(np.count_nonzero(~ok & (nz_bits != NEG_ZERO)))
    if off:
        _fail(f"tensor {name!r}: {off} non-zero element(s) are not on its grid (not exactly representable)")


def _le32(v):
    """Little-endian bytes of 32-bit values (float32 bit patterns, int32)."""
    return v.astype("<u4").tobytes()


def _coded(table, fields, hist, codes):
    """One layout's value description: codebook-section bytes, header fields, symbol histogram, codes."""
    return dict(table=table, fields=fields, hist=hist, codes=codes, k=len(hist))


def _raw_values(bits, pos):
    """Grid None: values are raw float32, for every element (dense) or the non-zeros (sparse)."""
    return {"d": dict(raw=bits, count=bits.size), "s": dict(raw=bits[pos], count=pos.size)}


def _codebook_values(name, grid, bits, pos):
    """Codebook grid: codes index the table of values actually used (plus the signed zeros)."""
    cb = np.ascontiguousarray(np.asarray(grid.values, dtype=np.float32))
    if cb.ndim != 1 or not 1 <= cb.size <= 65536:
        _fail(f"tensor {name!r}: Codebook.values must be 1-D with 1..65536 entries, got shape {cb.shape}")
    cb = np.unique(cb.view(np.uint32))
    nz = bits[pos]
    idx = np.minimum(np.searchsorted(cb, nz), cb.size - 1)
    ok = cb[idx] == nz
    _check_grid(name, nz, ok)
    used = np.bincount(idx[ok], minlength=cb.size) > 0
    table = cb[used]
    if not ok.all():
        table = np.append(table, np.uint32(NEG_ZERO))
    codes = np.where(ok, (np.cumsum(used) - 1)[idx], table.size - 1)
    hist = np.bincount(codes, minlength=table.size)
    n, m = bits.size, pos.size
    dense_table, dense_hist = table, hist
    if n > m:  # +0.0 gets the last entry in the dense table
        dense_table, dense_hist = np.append(table, np.uint32(0)), np.append(hist, n - m)

    def dense_codes():
        c = np.full(n, table.size, np.int64)
        c[pos] = codes
        return c

    return {"d": _coded(_le32(dense_table), {}, dense_hist, dense_codes),
            "s": _coded(_le32(table), {}, hist, lambda: codes)}


def _affine_grid(name, grid, shape):
    """Validate an Affine grid against a tensor shape -> (scale f32, zero point i64, qmin, qmax).

    Zero points may come as floats (some torch APIs keep them so) if every one is an integer."""
    scale = np.asarray(grid.scale, dtype=np.float32).reshape(-1)
    zp = np.asarray(grid.zero_point)
    qmin, qmax = grid.qmin, grid.qmax
    integral = zp.dtype.kind in "iu" or (zp.dtype.kind == "f" and bool(np.all(np.isfinite(zp) & (zp == np.round(zp)))))
    if not integral or zp.ndim != 1 or np.asarray(grid.scale).ndim != 1 or zp.size != scale.size:
        _fail(f"tensor {name!r}: Affine scale and zero_point must be 1-D of equal length, zero_point integer")
    if not (scale.size == 1 or (len(shape) >= 1 and scale.size == shape[0])):
        _fail(f"tensor {name!r}: Affine has {scale.size} channels, need 1 or shape[0] for shape {tuple(shape)}")
    if not all(isinstance(v, (int, np.integer)) for v in (qmin, qmax)) or not 1 <= int(qmax) - int(qmin) + 1 <= 65536:
        _fail(f"tensor {name!r}: Affine needs integer qmin <= qmax with at most 65536 levels")
    lim = 2 ** 31
    if not (-lim <= int(qmin) and int(qmax) < lim and (zp.size == 0 or (zp.min() >= -lim and zp.max() < lim))):
        _fail(f"tensor {name!r}: Affine qmin, qmax and zero_point must fit in int32")
    return scale, zp.astype(np.int64), int(qmin), int(qmax)


def _affine_value(d, scale):
    """The pipeline's dequantization: float32(q - zp) * scale in float32 (torch ops, bit-exact)."""
    return (torch.from_numpy(np.ascontiguousarray(d, dtype=np.int64)).to(torch.float32)
            * torch.from_numpy(np.ascontiguousarray(scale, dtype=np.float32))).numpy()


def _affine_values(name, grid, shape, bits, pos):
    """Affine grid: codes are q - q0; zeros use q = zp when that is exact, else extra table entries."""
    scale, zp, qmin, qmax = _affine_grid(name, grid, shape)
    n, nch = bits.size, scale.size
    row = n // nch if nch > 1 else max(n, 1)
    ch = pos // row
    s, z, nz = scale[ch], zp[ch], bits[pos]
    with np.errstate(all="ignore"):
        qf = np.rint(nz.view(np.float32).astype(np.float64) / s.astype(np.float64)) + z
    inr = (qf >= qmin) & (qf <= qmax)
    q = np.where(inr, qf, 0).astype(np.int64)
    ok = inr & (_affine_value(q - z, s).view(np.uint32) == nz)
    _check_grid(name, nz, ok)
    negz = not ok.all()
    zeros = (row - np.bincount(ch, minlength=nch)) if n else np.zeros(nch, np.int64)
    zexact = (zp >= qmin) & (zp <= qmax) & (_affine_value(np.zeros(nch), scale).view(np.uint32) == 0)
    params = scale.astype("<f4").tobytes() + zp.astype("<i4").tobytes()

    def layout(dense):
        qs = q[ok]
        zq = zp[zexact & (zeros > 0)] if dense else zp[:0]
        allq = np.concatenate([qs, zq])
        q0, nq = (int(allq.min()), int(allq.max() - allq.min() + 1)) if allq.size else (0, 0)
        sp = ([0] if dense and (zeros[~zexact] > 0).any() else []) + ([NEG_ZERO] if negz else [])
        k = nq + len(sp)
        nzc = np.where(ok, q - q0, nq + len(sp) - 1)
        zc = np.where(zexact, zp - q0, nq)  # code of a zero per channel (nq = the +0.0 extra value)
        hist = np.bincount(nzc, minlength=k)
        if dense:
            has = zeros > 0
            hist = hist + np.bincount(zc[has], weights=zeros[has], minlength=k).astype(np.int64)

        def codes():
            if not dense:
                return nzc
            c = np.repeat(zc, row)[:n] if nch > 1 else np.full(n, zc[0], np.int64)
            c[pos] = nzc
            return c

        fields = {"C": nch if nq else 1, "q0": q0, "nq": nq, "sp": sp}
        return _coded(params if nq else b"", fields, hist, codes)

    return {"d": layout(True), "s": layout(False)}


# ----------------------------------------------------------------------------- encode

def _as_float32(name, t):
    """A tensor as a contiguous float32 numpy array; other dtypes only if converting is exact."""
    t = torch.as_tensor(t).detach().cpu()
    if t.dtype != torch.float32:
        f = t.to(torch.float32) if not t.is_complex() else None
        if f is None or not torch.equal(f.to(t.dtype), t):
            _fail(f"tensor {name!r}: dtype {t.dtype} cannot be stored exactly as float32")
        t = f
    return t.contiguous().numpy()


def _encode_tensor(name, t, grid, huffman):
    """Pick the smallest layout for one tensor -> (header record, six section bytes, best size without Huffman)."""
    w = _as_float32(name, t)
    bits = w.reshape(-1).view(np.uint32)
    pos = np.flatnonzero(bits)
    if grid is None:
        kind, vals = "r", _raw_values(bits, pos)
    elif isinstance(grid, Codebook):
        kind, vals = "c", _codebook_values(name, grid, bits, pos)
    elif isinstance(grid, Affine):
        kind, vals = "a", _affine_values(name, grid, w.shape, bits, pos)
    else:
        _fail(f"tensor {name!r}: grid must be Codebook, Affine or None, got {type(grid).__name__}")
    best, fixed = None, []
    for layout in ("d", "s"):
        v = vals[layout]
        gap = _gap_plan(pos, huffman) if layout == "s" else dict(size=0, fixed=0)
        stream = dict(size=4 * v["count"], fixed=4 * v["count"]) if kind == "r" else \
            _stream_plan(v["hist"], _width(v["k"]), huffman)
        table = 0 if kind == "r" else len(v["table"])
        size = table + stream["size"] + gap["size"]
        fixed.append(table + stream["fixed"] + gap["fixed"])
        if best is None or size < best[0]:
            best = (size, layout, v, gap if layout == "s" else None, stream)
    _, layout, v, gap, stream = best
    rec = {"n": name, "s": list(w.shape), "k": kind, "l": layout}
    sec = [b""] * 6
    if gap:
        rec.update(m=int(pos.size), b=gap["b"], g=gap["g"], gm=gap["mode"])
        sec[1], sec[2] = _stream_bytes(gap, _gap_symbols(gap["d"], gap["b"]), gap["b"])
    if kind == "r":
        sec[5] = _le32(v["raw"])
    else:
        rec.update(v["fields"], cm=stream["mode"])
        sec[0] = v["table"]
        sec[3], sec[4] = _stream_bytes(stream, v["codes"](), _width(v["k"]))
    rec["z"] = [len(x) for x in sec]
    return rec, sec, min(fixed)


def _checksum(blob):
    """CRC-32 of every byte of an artifact except its own 4-byte field at [9:13]."""
    return zlib.crc32(memoryview(blob)[PREAMBLE:], zlib.crc32(memoryview(blob)[:9])) & 0xFFFFFFFF


def _seal(blob):
    """`blob` with the CRC field at [9:13] set to the checksum of the rest (encode's last step)."""
    blob = bytearray(blob)
    blob[9:PREAMBLE] = struct.pack("<I", _checksum(blob))
    return bytes(blob)


def _assemble(meta, records, sections):
    """Container bytes: magic, version, u32 header length, u32 CRC-32, zlib JSON header, sections."""
    try:
        text = json.dumps({"meta": meta, "t": records}, separators=(",", ":"))
    except (TypeError, ValueError) as e:
        _fail(f"meta must be JSON-serialisable: {e}")
    head = zlib.compress(text.encode("utf-8"), 9)
    return _seal(b"".join([MAGIC, bytes([VERSION]), struct.pack("<I", len(head)), b"\0" * 4, head] + sections))


def _encode(tensors, grids, meta, huffman):
    """encode() for one huffman setting -> (blob, section bytes Huffman saved over fixed width)."""
    records, sections, fixed = [], [], 0
    for name, t in tensors.items():
        rec, sec, fix = _encode_tensor(name, t, grids.get(name), huffman)
        records.append(rec)
        sections += sec
        fixed += fix
    return _assemble(meta, records, sections), fixed - sum(map(len, sections))


def encode(tensors, grids=None, meta=None, huffman=False):
    """Serialize named tensors as the smallest artifact we can make; decode() restores them bit-exactly.

    grids[name] (Codebook / Affine / None) says how the non-zero elements are represented; encode
    computes the codes and refuses (ArtifactError) any element that is not exactly on its grid.
    meta is any JSON-able dict (architecture, recipe), returned by read_meta().
    """
    grids = dict(grids or {})
    meta = {} if meta is None else meta
    if not isinstance(meta, dict):
        _fail(f"meta must be a dict, got {type(meta).__name__}")
    if not all(isinstance(k, str) for k in tensors) or len(tensors) > MAX_TENSORS:
        _fail(f"tensors must be a dict with at most {MAX_TENSORS} str names")
    unknown = sorted(set(grids) - set(tensors))
    if unknown:
        _fail(f"grids given for unknown tensors: {unknown[:5]}")
    shapes = {k: tuple(torch.as_tensor(t).shape) for k, t in tensors.items()}
    if sum(math.prod(s) for s in shapes.values()) > MAX_ELEMENTS or any(len(s) > MAX_NDIM for s in shapes.values()):
        _fail(f"artifact limit: at most {MAX_ELEMENTS} elements in total and {MAX_NDIM} dimensions per tensor")
    blob, saved = _encode(tensors, grids, meta, huffman)
    if huffman and saved < 64 * (len(tensors) + 1):
        # Huffman won by less than the header could have grown (a few bytes per changed field):
        # compare with the fixed-width artifact so huffman=True is never larger.
        fixed, _ = _encode(tensors, grids, meta, False)
        blob = fixed if len(fixed) <= len(blob) else blob
    return blob


# ----------------------------------------------------------------------------- parse (untrusted)

def _int(rec, key, lo, hi):
    """rec[key] as an int in [lo, hi], else ArtifactError."""
    v = rec.get(key)
    if type(v) is not int or not lo <= v <= hi:
        _fail(f"header: tensor field {key!r} = {str(v)[:40]} is not an integer in [{lo}, {hi}]")
    return v


def _stream_checks(what, mode, table_len, data_len, count, width, k):
    """Section lengths of a symbol stream must match its mode before anything is decoded."""
    if count == 0:
        ok = mode == 0 and table_len == 0 and data_len == 0
    elif mode == 0:
        ok = table_len == 0 and data_len == (count * width + 7) // 8
    else:
        ok = table_len > 0 and count <= 8 * data_len and (mode == 2 or table_len == (k + 1) // 2)
    if not ok:
        _fail(f"header: {what} section lengths do not match its symbol count / coding mode")


def _check_record(rec, blob_len):
    """Validate one tensor record of an untrusted header; returns its element count."""
    if not isinstance(rec, dict) or not isinstance(rec.get("n"), str):
        _fail("header: tensor record is not an object with a string name 'n'")
    name, shape, z = rec["n"], rec.get("s"), rec.get("z")
    if not isinstance(shape, list) or len(shape) > MAX_NDIM or not all(
            type(d) is int and 0 <= d <= MAX_ELEMENTS for d in shape):
        _fail(f"header: tensor {name[:80]!r} has an invalid shape")
    n = 1
    for d in shape:
        n = min(n * d, MAX_ELEMENTS + 1)
    if n > MAX_ELEMENTS:
        _fail(f"header: tensor {name[:80]!r} claims more than {MAX_ELEMENTS} elements")
    if not isinstance(z, list) or len(z) != 6 or not all(type(x) is int and 0 <= x <= blob_len for x in z):
        _fail(f"header: tensor {name[:80]!r} has invalid section lengths")
    kind, layout = rec.get("k"), rec.get("l")
    if kind not in ("r", "c", "a") or layout not in ("d", "s"):
        _fail(f"header: tensor {name[:80]!r} has unknown kind or layout")
    count = n
    if layout == "s":
        count = _int(rec, "m", 0, n)
        b, g, gm = _int(rec, "b", 1, 16), _int(rec, "g", 0, 8 * blob_len), _int(rec, "gm", 0, 2)
        if (count == 0) != (g == 0) or g < count:
            _fail(f"header: tensor {name[:80]!r} has inconsistent gap counts")
        _stream_checks("gap", gm, z[1], z[2], g, b, 1 << b)
    elif z[1] or z[2]:
        _fail(f"header: dense tensor {name[:80]!r} has index sections")
    if kind == "r":
        if z[0] or z[3] or z[4] or z[5] != 4 * count:
            _fail(f"header: raw tensor {name[:80]!r} has wrong section lengths")
        return n
    if z[5]:
        _fail(f"header: coded tensor {name[:80]!r} has a raw section")
    if kind == "c":
        k = z[0] // 4
        if z[0] % 4 or k > MAX_SYMBOLS:
            _fail(f"header: tensor {name[:80]!r} has an invalid codebook length")
    else:
        nch, nq = _int(rec, "C", 1, MAX_ELEMENTS), _int(rec, "nq", 0, 65536)
        _int(rec, "q0", -2 ** 31, 2 ** 31 - 1)
        sp = rec.get("sp")
        if not isinstance(sp, list) or len(sp) > 2 or not all(type(x) is int and 0 <= x < 2 ** 32 for x in sp):
            _fail(f"header: tensor {name[:80]!r} has invalid extra values 'sp'")
        if not (nch == 1 or (shape and nch == shape[0])) or z[0] != (8 * nch if nq else 0):
            _fail(f"header: tensor {name[:80]!r} has an invalid channel count or parameter length")
        k = nq + len(sp)
    if count and not k:
        _fail(f"header: tensor {name[:80]!r} has codes but an empty value table")
    _stream_checks("code", _int(rec, "cm", 0, 2), z[3], z[4], count, _width(k), k)
    return n


def _check_container(blob):
    """Magic, version and checksum of untrusted bytes, before any of their content is trusted."""
    if len(blob) < 5 or blob[:4] != MAGIC:
        _fail("not a compressed-model artifact (bad magic or too short)")
    if blob[4] == 1:
        _fail("artifact format version 1 (from before artifacts carried a checksum) is no longer read: "
              f"re-export it to get format version {VERSION}")
    if blob[4] != VERSION:
        _fail(f"artifact format version {blob[4]} is not supported (expected {VERSION}): re-export it")
    if len(blob) < PREAMBLE:
        _fail(f"artifact truncated: {len(blob)} bytes, shorter than its {PREAMBLE}-byte preamble; re-export it")
    (stored,) = struct.unpack("<I", blob[9:PREAMBLE])
    actual = _checksum(blob)
    if stored != actual:
        _fail(f"artifact is corrupt: checksum mismatch (stored CRC-32 {stored:08x}, computed {actual:08x}); "
              "the file was truncated, changed or extended after export: re-export it")


def _parse(blob):
    """Check the container and header of untrusted bytes -> (meta, records, offset of first section, bytes)."""
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        _fail(f"artifact must be bytes, got {type(blob).__name__}")
    blob = bytes(blob)
    _check_container(blob)
    (hlen,) = struct.unpack("<I", blob[5:9])
    if PREAMBLE + hlen > len(blob):
        _fail(f"artifact truncated: header claims {hlen} bytes, only {len(blob) - PREAMBLE} present")
    try:
        head = json.loads(_inflate(blob[PREAMBLE:PREAMBLE + hlen], MAX_HEADER, "header").decode("utf-8"))
    except (ValueError, RecursionError) as e:
        if isinstance(e, ArtifactError):
            raise
        _fail(f"header is not valid UTF-8 JSON: {str(e)[:80]}")
    if not isinstance(head, dict) or not isinstance(head.get("meta"), dict) or not isinstance(head.get("t"), list):
        _fail("header must be an object with 'meta' (object) and 't' (list)")
    recs = head["t"]
    if len(recs) > MAX_TENSORS:
        _fail(f"header lists more than {MAX_TENSORS} tensors")
    total = sum(_check_record(r, len(blob)) for r in recs)
    if total > MAX_ELEMENTS:
        _fail(f"artifact claims {total} elements, more than the limit {MAX_ELEMENTS}")
    if len({r["n"] for r in recs}) != len(recs):
        _fail("header lists a tensor name twice")
    body = sum(sum(r["z"]) for r in recs)
    if PREAMBLE + hlen + body != len(blob):
        _fail(f"artifact is {len(blob)} bytes but its header accounts for {PREAMBLE + hlen + body} "
              "(truncated, or trailing data)")
    return head["meta"], recs, PREAMBLE + hlen, blob


# ----------------------------------------------------------------------------- decode

def _read_stream(what, mode, table, data, count, k):
    """Decode `count` symbols (< k) of a fixed-width or Huffman stream."""
    if count == 0:
        return np.zeros(0, np.int64)
    if mode == 0:
        syms = _unpack_fixed(data, count, _width(k))
    else:
        syms = _huff_decode(data, _read_table(table, mode, k, what), count, what)
    if syms.size and int(syms.max()) >= k:
        _fail(f"{what}: symbol {int(syms.max())} is outside its alphabet of {k}")
    return syms


def _positions(rec, n, table, data):
    """Flat positions of the stored elements of a sparse tensor, from its gap stream."""
    b, m, g = rec["b"], rec["m"], rec["g"]
    e = (1 << b) - 1
    syms = _read_stream(f"tensor {rec['n'][:80]!r} gaps", rec["gm"], table, data, g, 1 << b)
    el = syms != e
    if int(el.sum()) != m or (g and not el[-1]):
        _fail(f"tensor {rec['n'][:80]!r}: gap stream does not hold exactly {m} elements")
    pos = np.cumsum(np.where(el, syms + 1, e))[el] - 1
    if m and pos[-1] >= n:
        _fail(f"tensor {rec['n'][:80]!r}: a position lies past the end of the tensor")
    return pos


def _values(rec, n, pos, sec):
    """float32 bit patterns of the stored elements (all n if dense, else those at `pos`)."""
    count = n if pos is None else pos.size
    if rec["k"] == "r":
        return np.frombuffer(sec[5], "<u4").astype(np.uint32)
    if rec["k"] == "c":
        table = np.frombuffer(sec[0], "<u4").astype(np.uint32)
        k = table.size
    else:
        nq, sp = rec["nq"], np.array(rec["sp"], np.uint32)
        k = nq + sp.size
    codes = _read_stream(f"tensor {rec['n'][:80]!r} codes", rec["cm"], sec[3], sec[4], count, k)
    if rec["k"] == "c":
        return table[codes]
    out = np.empty(count, np.uint32)
    base = codes < nq
    out[~base] = sp[codes[~base] - nq]
    idx = np.flatnonzero(base)
    if idx.size:
        nch = rec["C"]
        scale = np.frombuffer(sec[0][:4 * nch], "<f4").astype(np.float32)
        zp = np.frombuffer(sec[0][4 * nch:], "<i4").astype(np.int64)
        flat = idx if pos is None else pos[idx]
        ch = flat // (n // nch) if nch > 1 else np.zeros(idx.size, np.int64)
        out[idx] = _affine_value(codes[idx] + rec["q0"] - zp[ch], scale[ch]).view(np.uint32)
    return out


def decode(blob):
    """Artifact bytes -> {name: float32 tensor}, exact and in the original order; ArtifactError if invalid."""
    _, recs, off, blob = _parse(blob)
    blob = memoryview(blob)
    out = {}
    for rec in recs:
        sec = []
        for x in rec["z"]:
            sec.append(blob[off:off + x])
            off += x
        shape = rec["s"]
        n = math.prod(shape)
        pos = _positions(rec, n, sec[1], sec[2]) if rec["l"] == "s" else None
        vals = _values(rec, n, pos, sec)
        if pos is None:
            flat = vals
        else:
            flat = np.zeros(n, np.uint32)
            flat[pos] = vals
        out[rec["n"]] = torch.from_numpy(flat.view(np.float32).reshape(shape))  # flat is a fresh array
    return out


def read_meta(blob):
    """The `meta` dict given to encode (architecture, recipe, ...), after checking the container."""
    return _parse(blob)[0]


def size_breakdown(blob):
    """Bytes per part (header, index, codes, codebook, raw) overall and per tensor; the parts sum to len(blob).

    "header" counts the 13-byte preamble (magic, version, header length, checksum) and the zlib'd JSON."""
    _, recs, off, _ = _parse(blob)
    parts = {"header": off, "index": 0, "codes": 0, "codebook": 0, "raw": 0, "per_tensor": {}}
    for rec in recs:
        mine = {"index": 0, "codes": 0, "codebook": 0, "raw": 0}
        for part, x in zip(SECTIONS, rec["z"]):
            mine[part] += x
            parts[part] += x
        parts["per_tensor"][rec["n"]] = mine
    return parts
