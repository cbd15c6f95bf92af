"""The artifact: every tensor of a state dict in as few bytes as possible, back exactly (Deep Compression stage 3).

The size of a compressed model everywhere in the product is len(encode(...)), and decode gives back
every tensor bit for bit, in its own dtype (float32, float16, bfloat16, float64, int8/16/32/64, uint8,
bool), so a decoded state dict loads strictly into a fresh instance of the model. Per tensor we pick
whichever layout is smallest:

- dense:  every element gets a value: its raw bytes, or a code into the tensor's value table;
- sparse: only elements whose bit pattern is not all zeros are stored (so -0.0 survives), their
  positions as relative indices (entropy.py: gaps of b bits with an escape symbol);
- bitmap: the same elements stored, their positions as one bit per element, range-coded (huffman=True)
  with an adaptive probability per row or per column of the (dim 0, rest) matrix, so the dead units
  and inputs a pruned layer has cost a few bits each (a plain bitmap is never smaller than 1-bit gaps);
- live-bitmap: one bit per row and per column of that matrix saying whether it holds any stored element,
  then the bitmap of the live rows x live columns only: smaller where pruning left the kept weights in a
  few units and inputs (prune focus, prune.magnitude_mask), as Bayesian compression's structured sparsity;
- the code stream and the gap stream are each fixed-width bit-packed, or with huffman=True
  canonical-Huffman or range coded (arithmetic coding, entropy.py) when that is smaller.
The layout and each stream's coding are chosen by measured size, per tensor.
docs/FORMAT.md is the byte-level specification of what is written here (enough to write a loader without this
package: the preset dictionary's bytes, every record and section, the bit orders, the range coder's model).

Grids apply to float32 tensors only. A Codebook grid is stored as the table of the values actually
used; an Affine grid as its scale and zero point per channel plus codes q - q_low. The two signed
zeros are always allowed, as extra values when the grid cannot express them. Every other tensor is
stored raw, in its own little-endian bytes.

Container (format version 3): b"CPG1", a version byte, a little-endian u32 header length, a
little-endian u32 CRC-32 (zlib.crc32) of every other byte of the artifact, a JSON header
{"meta": ..., "tensors": [records]} zlib-compressed with the preset dictionary HEADER_DICT (so the
readable field names cost no more than one-letter ones did), then each tensor's sections back to back
in the order of SECTIONS. A record's fields:

  name, shape, dtype           the tensor (dtype one of DTYPES)
  kind                         "raw" | "codebook" | "affine"
  layout                       "dense" | "sparse" | "bitmap" | "live-bitmap"
  sections                     {section name: byte length}, zero-length sections left out
  sparse:  nonzero             stored elements
           gap_bits            b, the width of a relative index (1..16)
           gap_symbols         symbols in the gap stream (elements + escapes)
           gap_coding          "fixed" | "huffman" | "huffman-zlib" | "range" (entropy.MODES)
  bitmap:  nonzero             stored elements; the "gaps" section holds the range-coded bitmap
           bitmap_axis         0 = one adaptive probability per row (columns coded in turn), 1 = per column
  live-bitmap: as bitmap, and live_rows, live_cols: how many rows / columns hold an element; the "gaps"
           section starts with ceil((rows + cols) / 8) bytes of flags (numpy.packbits of the row flags then
           the column flags, zero padding bits), then the bitmap of the (live_rows, live_cols) matrix
  coded:   code_coding         as gap_coding, for the code stream
  affine:  channels            scale / zero point pairs (1, or shape[0])
           q_low, q_levels     codes 0..q_levels-1 stand for q = q_low + code
           extra               values (float32 bit patterns) after the grid's: the signed zeros it lacks

The "bitmap" and "live-bitmap" layouts and the "range" coding were added to version 3 as new record values (readers
from before them refuse such a record by name; every earlier version-3 artifact reads as before).
Range coding is constriction 0.5's RangeEncoder with perfect=False models, pinned exactly, since the
model's fixed-point rounding is part of the bytes (tests/data holds a fixture that would catch a change).

Version 2 (one-letter record keys, float32 only) is still read: _from_v2 maps its records to this
form. decode / read_meta / size_breakdown take untrusted bytes. The checksum comes first: without it
about half of all single-byte changes past the preamble (nearly all inside a code stream) still
decoded, to other weights. Then every size is checked before anything is allocated (a crafted file can carry a
valid checksum), and anything wrong raises ArtifactError: sizes a layout's bytes bound are checked against the blob,
and what a tensor claims against MAX_ELEMENTS in all. An entropy-coded stream is the exception to the first: it can
spend less than a bit a symbol, so a 125-byte blob may rightly decode to 50 M zeros (200 MB of float32); the
elements limit is what bounds it. Version 1 (no checksum) is refused.
"""

import json
import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np
import torch

from compress_engine.core import entropy
from compress_engine.core.entropy import CorruptStream, MODES
from compress_engine.core.errors import ArtifactError

MAGIC = b"CPG1"
VERSION = 3  # what encode writes; decode also reads version 2
PREAMBLE = 13  # magic 4, version 1, header length u32 at [5:9], CRC-32 u32 at [9:13]
MAX_ELEMENTS = 50_000_000  # total over all tensors an artifact may claim
MAX_NDIM = 16
MAX_TENSORS = 100_000
MAX_HEADER = 16 << 20  # decompressed JSON header bytes
MAX_SYMBOLS = 65538  # 65536 grid values + the two signed zeros
NEG_ZERO = 0x80000000
# Sections of a tensor, in blob order, and the size_breakdown part each counts in.
SECTIONS = {"codebook": "codebook", "gap_table": "index", "gaps": "index", "code_table": "codes",
            "codes": "codes", "raw": "raw"}
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
          "float64": torch.float64, "int8": torch.int8, "int16": torch.int16, "int32": torch.int32,
          "int64": torch.int64, "uint8": torch.uint8, "bool": torch.bool}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
BITMAPS = ("bitmap", "live-bitmap")  # layouts whose positions are a range-coded bitmap
LAYOUTS = ("dense", "sparse", *BITMAPS)
_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}  # an element's bit pattern, numpy side
_TORCH_BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}  # same width, torch side
_SIGNED = {1: np.uint8, 2: np.int16, 4: np.int32, 8: np.int64}  # numpy twins of _TORCH_BITS
# zlib preset dictionary of the version-3 header: part of the format, never to be changed. Field names,
# values and common state-dict names; the most frequent (a raw dense float32 record) last, nearest.
HEADER_DICT = (
    b'running_mean running_var num_batches_tracked in_proj_weight embedding downsample conv bn fc '
    b'"dtype":"int64""dtype":"float16""dtype":"bfloat16""dtype":"float64""dtype":"bool""dtype":"uint8"'
    b'"kind":"affine","layout":"sparse","channels":,"q_low":,"q_levels":,"extra":[]'
    b'"gap_coding":"huffman-zlib""code_coding":"huffman-zlib""code_coding":"huffman"'
    b'"kind":"codebook","layout":"dense","nonzero":,"gap_bits":,"gap_symbols":,"gap_coding":"fixed",'
    b'"code_coding":"fixed","sections":{"codebook":,"gap_table":,"gaps":,"code_table":,"codes":,"raw":}}'
    b'{"meta":{"spec":{},"recipe":{}},"tensors":[{"name":".weight","shape":[],"dtype":"float32",'
    b'"kind":"raw","layout":"dense","sections":{"raw":}},{"name":".bias","shape":[],"dtype":"float32",'
    b'"kind":"raw","layout":"dense","sections":{"raw":}},{"name":"')


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


def _le(v):
    """Little-endian bytes of unsigned bit patterns (or int32 zero points)."""
    return v.astype(v.dtype.newbyteorder("<")).tobytes()


def _from_le(data, size):
    """Native-order unsigned array of `size`-byte elements from little-endian bytes."""
    return np.frombuffer(data, np.dtype(_UINT[size]).newbyteorder("<")).astype(_UINT[size])


# ----------------------------------------------------------------------------- value tables per grid

def _check_grid(name, nz_bits, ok):
    """Refuse a tensor whose non-zero elements are not all on its grid (-0.0 is always allowed)."""
    off = int(np.count_nonzero(~ok & (nz_bits != NEG_ZERO)))
    if off:
        _fail(f"tensor {name!r}: {off} non-zero element(s) are not on its grid (not exactly representable)")


def _coded(table, fields, hist, codes):
    """One layout's value description: codebook-section bytes, record fields, symbol histogram, codes."""
    return dict(table=table, fields=fields, hist=hist, codes=codes, k=len(hist))


def _codebook_values(name, grid, bits, pos):
    """Codebook grid: codes index the table of values actually used (plus the signed zeros)."""
    cb = np.ascontiguousarray(np.asarray(grid.values, dtype=np.float32))
    if cb.ndim != 1 or not 1 <= cb.size <= 65536:
        _fail(f"tensor {name!r}: Codebook.values must be 1-D with 1..65536 entries, got shape {cb.shape}")
    cb = np.unique(cb.view(np.uint32))
    nz = bits[pos]
    idx = np.searchsorted(cb, nz)
    np.minimum(idx, cb.size - 1, out=idx)
    idx = idx.astype(np.int32)  # codes are int32 (at most 65538 symbols): the same bytes as int64, half the memory
    ok = cb[idx] == nz
    _check_grid(name, nz, ok)
    del nz
    used = np.bincount(idx[ok], minlength=cb.size) > 0
    table = cb[used]
    if not ok.all():
        table = np.append(table, np.uint32(NEG_ZERO))
    codes = (np.cumsum(used) - 1).astype(np.int32)[idx]
    del idx
    codes[~ok] = table.size - 1
    hist = np.bincount(codes, minlength=table.size)
    n, m = bits.size, pos.size
    dense_table, dense_hist = table, hist
    if n > m:  # +0.0 gets the last entry in the dense table
        dense_table, dense_hist = np.append(table, np.uint32(0)), np.append(hist, n - m)

    def dense_codes():
        c = np.full(n, table.size, np.int32)
        c[pos] = codes
        return c

    return {"dense": _coded(_le(dense_table), {}, dense_hist, dense_codes),
            "sparse": _coded(_le(table), {}, hist, lambda: codes)}


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
    """Affine grid: codes are q - q_low; zeros use q = zp when that is exact, else extra values.
    Full-length temporaries are kept few and narrow (a per-tensor grid's scale and zero point stay scalars, codes
    are int32, the float64 quotient is computed in place): the bytes are the same as with int64 and float64 copies."""
    scale, zp, qmin, qmax = _affine_grid(name, grid, shape)
    n, nch = bits.size, scale.size
    row = n // nch if nch > 1 else max(n, 1)
    ch = (pos // row).astype(np.int32) if nch > 1 else None
    s, z = (scale[ch], zp[ch]) if nch > 1 else (scale[:1], zp[:1])  # one channel: broadcast, not repeated
    nz = bits[pos]
    with np.errstate(all="ignore"):
        qf = nz.view(np.float32).astype(np.float64)
        qf /= s.astype(np.float64)
        np.rint(qf, out=qf)
        qf += z
        inr = (qf >= qmin) & (qf <= qmax)
        q = qf.astype(np.int32)  # in range: an integer within int32 (_affine_grid); out of range: set to 0 below
    del qf
    q[~inr] = 0
    d = q - z  # int64 (z is): q - zp, as the pipeline dequantizes
    ok = _affine_value(d, s).view(np.uint32) == nz
    del d
    ok &= inr
    del inr
    _check_grid(name, nz, ok)
    del nz, s, z
    negz = not ok.all()
    zeros = (row - np.bincount(ch, minlength=nch)) if n and nch > 1 else (
        np.full(nch, row - pos.size, np.int64) if n else np.zeros(nch, np.int64))
    del ch
    zexact = (zp >= qmin) & (zp <= qmax) & (_affine_value(np.zeros(nch), scale).view(np.uint32) == 0)
    params = _le(scale.view(np.uint32)) + _le(zp.astype(np.int32))
    big = np.iinfo(np.int32)
    qlo = int(np.min(q, initial=big.max, where=ok))  # the kept codes' range, without copying them out
    qhi = int(np.max(q, initial=big.min, where=ok))
    stored = int(np.count_nonzero(ok))
    made = {}  # (q0, extra code) -> the nonzero elements' codes: layouts that agree share one array

    def layout(dense):
        zq = zp[zexact & (zeros > 0)] if dense else zp[:0]
        lo = min([qlo] * bool(stored) + zq.tolist(), default=0)
        hi = max([qhi] * bool(stored) + zq.tolist(), default=-1)
        q0, nq = (lo, hi - lo + 1) if stored + zq.size else (0, 0)
        sp = ([0] if dense and (zeros[~zexact] > 0).any() else []) + ([NEG_ZERO] if negz else [])
        k = nq + len(sp)
        if (q0, k - 1) not in made:
            nzc = q - np.int32(q0)
            nzc[~ok] = k - 1
            made[q0, k - 1] = nzc
        nzc = made[q0, k - 1]
        zc = np.where(zexact, zp - q0, nq)  # code of a zero per channel (nq = the +0.0 extra value)
        hist = np.bincount(nzc, minlength=k)
        if dense:
            has = zeros > 0
            hist = hist + np.bincount(zc[has], weights=zeros[has], minlength=k).astype(np.int64)

        def codes():
            if not dense:
                return nzc
            c = np.repeat(zc.astype(np.int32), row)[:n] if nch > 1 else np.full(n, zc[0], np.int32)
            c[pos] = nzc
            return c

        fields = {"channels": nch if nq else 1, "q_low": q0, "q_levels": nq, "extra": sp}
        return _coded(params if nq else b"", fields, hist, codes)

    return {"dense": layout(True), "sparse": layout(False)}


# ----------------------------------------------------------------------------- encode

def _element_bits(name, t):
    """A tensor's elements as unsigned bit patterns of its own width -> (flat array, shape, dtype name)."""
    t = torch.as_tensor(t)
    dtype = DTYPE_NAMES.get(t.dtype)
    if dtype is None or t.layout != torch.strided:
        _fail(f"tensor {name!r}: dtype {t.dtype} ({t.layout}) cannot be stored; supported: {', '.join(DTYPES)}")
    t = t.detach().cpu().contiguous()
    size = t.dtype.itemsize
    return t.view(_TORCH_BITS[size]).numpy().reshape(-1).view(_UINT[size]), tuple(t.shape), dtype


def _tensor_values(name, t, grid):
    """What a tensor's coding is chosen from, whatever the coding: (bits, stored positions, shape, dtype name,
    kind, the grid's values per layout or None)."""
    bits, shape, dtype = _element_bits(name, t)
    pos = np.flatnonzero(bits)
    if grid is not None and dtype != "float32":
        _fail(f"tensor {name!r}: a {type(grid).__name__} grid applies only to float32 tensors, this one is {dtype}")
    if grid is None:
        kind, vals = "raw", None
    elif isinstance(grid, Codebook):
        kind, vals = "codebook", _codebook_values(name, grid, bits, pos)
    elif isinstance(grid, Affine):
        kind, vals = "affine", _affine_values(name, grid, shape, bits, pos)
    else:
        _fail(f"tensor {name!r}: grid must be Codebook, Affine or None, got {type(grid).__name__}")
    return bits, pos, shape, dtype, kind, vals


def _encode_tensor(name, t, grid, huffman, values=None, write=True):
    """Pick the smallest layout for one tensor -> (record, its non-empty sections' bytes in SECTIONS order,
    best size without Huffman). `values`: _tensor_values' answer, if already computed. write=False (fixed-width
    codes only: huffman=False) gives the sections' total length instead of their bytes, which are not written."""
    bits, pos, shape, dtype, kind, vals = values or _tensor_values(name, t, grid)
    if not write and huffman:
        raise ValueError("write=False measures fixed-width codes only: huffman=False")
    best, fixed, coded = None, [], {}
    for layout in ("dense", "sparse", "bitmap"):
        if layout == "dense":
            index = dict(size=0, fixed=0)
        elif layout == "sparse":
            index = entropy.gap_plan(pos, huffman)
        else:
            index = _bitmap_plan(shape, bits.size, pos, huffman)
            if index is None:
                continue
        if kind == "raw":
            v, table = None, 0
            stream = dict(size=bits.itemsize * (pos.size if layout != "dense" else bits.size))
            stream["fixed"] = stream["size"]
        else:
            v = vals["dense" if layout == "dense" else "sparse"]
            table = len(v["table"])
            if id(v) not in coded:  # the sparse and bitmap layouts share one code stream
                coded[id(v)] = entropy.stream_plan(v["hist"], entropy.width(v["k"]), huffman, syms=v["codes"])
            stream = coded[id(v)]
        size = table + stream["size"] + index["size"]
        fixed.append(table + stream["fixed"] + index["fixed"])
        if best is None or size < best[0]:
            best = (size, layout, v, index, stream)
    _, layout, v, index, stream = best
    rec = {"name": name, "shape": list(shape), "dtype": dtype, "kind": kind, "layout": layout}
    sec = {}
    if layout == "sparse":
        gap = index
        rec.update(nonzero=int(pos.size), gap_bits=gap["b"], gap_symbols=gap["g"], gap_coding=gap["mode"])
        sec["gap_table"], sec["gaps"] = (entropy.stream_bytes(gap, entropy.gap_symbols(gap["d"], gap["b"]), gap["b"])
                                         if write else (0, gap["size"]))  # fixed width: no table, size bytes
    elif layout == "bitmap":
        layout = rec["layout"] = index["layout"]
        rec.update(nonzero=int(pos.size), bitmap_axis=index["axis"], **index["fields"])
        sec["gaps"] = index["data"]()
    if kind == "raw":
        sec["raw"] = _le(bits[pos] if layout != "dense" else bits) if write else stream["size"]
    else:
        rec.update(v["fields"], code_coding=stream["mode"])
        sec["codebook"] = v["table"]
        sec["code_table"], sec["codes"] = (entropy.stream_bytes(stream, v["codes"](), entropy.width(v["k"]))
                                           if write else (0, stream["size"]))
    lengths = {k: b if isinstance(b, int) else len(b) for k, b in sec.items()}
    rec["sections"] = {k: lengths[k] for k in SECTIONS if lengths.get(k)}
    return rec, [sec[k] for k in SECTIONS if lengths.get(k)] if write else sum(lengths.values()), min(fixed)


def _bitmap_plan(shape, n, pos, huffman):
    """The bitmap index of a tensor with `pos` stored of n elements, range-coded with an adaptive probability
    per row or per column, of the whole (rows, cols) matrix or of its live rows x live columns after their
    flags, whichever is smallest (estimated to a few bytes; coded when chosen) -> dict(size, fixed, layout,
    axis, fields, data() -> bytes), or None: without entropy coding (a plain bitmap is never smaller than
    1-bit gaps), with nothing to gain (no element, or all of them, stored), or too many decode steps."""
    if not huffman or pos.size == 0 or pos.size == n:
        return None
    rows, cols = entropy.bitmap_shape(shape)
    m2 = np.zeros(n, bool)
    m2[pos] = True
    m2 = m2.reshape(rows, cols)
    live_r, live_c = m2.any(1), m2.any(0)
    options = [("bitmap", m2, b"")]
    if not (live_r.all() and live_c.all()):  # with no dead row or column the flags would buy nothing
        options.append(("live-bitmap", m2[live_r][:, live_c], np.packbits(np.concatenate([live_r, live_c])).tobytes()))
    best = None
    for layout, m, extra in options:
        fields = {} if layout == "bitmap" else {"live_rows": int(m.shape[0]), "live_cols": int(m.shape[1])}
        for axis, steps in ((0, m.shape[1]), (1, m.shape[0])):
            if steps <= entropy.MAX_BITMAP_STEPS:
                size = len(extra) + entropy.bitmap_estimate(m, axis)
                if best is None or size < best["size"]:
                    best = dict(size=size, fixed=(n + 7) // 8, layout=layout, axis=axis, fields=fields,
                                data=lambda m=m, a=axis, e=extra: e + entropy.bitmap_encode(m, a))
    return best


def tensor_bytes(name, t, grid=None, huffman=True):
    """Bytes the sections of one tensor take in an artifact (its smallest layout and coding; the header's
    few bytes for its record not counted): what a layer costs at a setting, e.g. for a sensitivity scan."""
    _, sections, _ = _encode_tensor(name, t, grid, huffman)
    return sum(map(len, sections))


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
        text = json.dumps({"meta": meta, "tensors": records}, separators=(",", ":"))
    except (TypeError, ValueError) as e:
        _fail(f"meta must be JSON-serialisable: {e}")
    z = zlib.compressobj(9, zdict=HEADER_DICT)
    head = z.compress(text.encode("utf-8")) + z.flush()
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


def fits_limits(shapes):
    """Whether tensors of these shapes fit the format's caps: MAX_ELEMENTS in total, MAX_NDIM dims each (encode()
    refuses anything else; compress() checks its model against this before any work)."""
    shapes = list(shapes)
    return sum(math.prod(s) for s in shapes) <= MAX_ELEMENTS and all(len(s) <= MAX_NDIM for s in shapes)


def _encode_both(tensors, grids, meta, plain_meta):
    """_encode(tensors, grids, meta, True) and the length of _encode(tensors, grids, plain_meta, False), each
    tensor's values computed once and the fixed-width sections measured, not written."""
    records, sections, fixed, plain_records, plain_size = [], [], 0, [], 0
    for name, t in tensors.items():
        values = _tensor_values(name, t, grids.get(name))
        rec, sec, fix = _encode_tensor(name, t, grids.get(name), True, values)
        records.append(rec)
        sections += sec
        fixed += fix
        rec, size, _ = _encode_tensor(name, t, grids.get(name), False, values, write=False)
        plain_records.append(rec)
        plain_size += size
        del values, rec, sec
    return (_assemble(meta, records, sections), fixed - sum(map(len, sections)),
            len(_assemble(plain_meta, plain_records, [])) + plain_size)


def encode(tensors, grids=None, meta=None, huffman=False, plain_meta=None):
    """Serialize named tensors as the smallest artifact we can make; decode() restores them bit-exactly,
    each in its own dtype (DTYPES; anything else is an ArtifactError naming the tensor).

    grids[name] (Codebook / Affine / None, float32 tensors only) says how the non-zero elements are
    represented; encode computes the codes and refuses (ArtifactError) any element that is not exactly
    on its grid. meta is any JSON-able dict (architecture, recipe), returned by read_meta().
    With huffman=True and plain_meta (a dict) given, returns (artifact, plain length): the length of
    encode(tensors, grids, plain_meta, huffman=False), measured in the same pass without writing it.
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
    if not fits_limits(shapes.values()):
        _fail(f"artifact limit: at most {MAX_ELEMENTS} elements in total and {MAX_NDIM} dimensions per tensor")
    measure = huffman and plain_meta is not None
    if measure:
        if not isinstance(plain_meta, dict):
            _fail(f"plain_meta must be a dict, got {type(plain_meta).__name__}")
        blob, saved, plain = _encode_both(tensors, grids, meta, plain_meta)
    else:
        blob, saved = _encode(tensors, grids, meta, huffman)
    if huffman and saved < 64 * (len(tensors) + 1):
        # Huffman won by less than the header could have grown (a few bytes per changed field):
        # compare with the fixed-width artifact so huffman=True is never larger.
        fixed, _ = _encode(tensors, grids, meta, False)
        blob = fixed if len(fixed) <= len(blob) else blob
    return (blob, plain) if measure else blob


# ----------------------------------------------------------------------------- parse (untrusted)

_V2_KEYS = {"n": "name", "s": "shape", "k": "kind", "l": "layout", "z": "sections", "m": "nonzero",
            "b": "gap_bits", "g": "gap_symbols", "gm": "gap_coding", "cm": "code_coding", "C": "channels",
            "q0": "q_low", "nq": "q_levels", "sp": "extra"}
_V2_VALUES = {"kind": {"r": "raw", "c": "codebook", "a": "affine"}, "layout": {"d": "dense", "s": "sparse"},
              "gap_coding": dict(enumerate(MODES[:3])), "code_coding": dict(enumerate(MODES[:3]))}


def _from_v2(rec):
    """A version-2 record (one-letter keys, float32 only, six section lengths in a list) in the named
    form; values it cannot map become None, so _check_record refuses them as it would in version 3."""
    if not isinstance(rec, dict):
        return rec
    out = {"dtype": "float32"}
    for key, v in rec.items():
        if key not in _V2_KEYS:
            continue
        key = _V2_KEYS[key]
        if key in _V2_VALUES:
            v = _V2_VALUES[key].get(v) if type(v) in (str, int) else None
        elif key == "sections" and isinstance(v, list) and len(v) == len(SECTIONS):
            v = dict(zip(SECTIONS, v))
        out[key] = v
    return out


def _int(rec, key, lo, hi):
    """rec[key] as an int in [lo, hi], else ArtifactError."""
    v = rec.get(key)
    if type(v) is not int or not lo <= v <= hi:
        _fail(f"header: tensor {str(rec['name'])[:80]!r} field {key!r} = {str(v)[:40]} is not an integer in [{lo}, {hi}]")
    return v


def _one_of(rec, key, allowed):
    """rec[key] if it is one of the strings `allowed`, else ArtifactError."""
    v = rec.get(key)
    if type(v) is not str or v not in allowed:
        _fail(f"header: tensor {rec['name'][:80]!r} field {key!r} = {str(v)[:40]!r} is not one of {', '.join(allowed)}")
    return v


def _stream_checks(rec, what, mode, table_len, data_len, count, k):
    """Section lengths of a symbol stream must match its mode before anything is decoded."""
    if not entropy.stream_lengths_ok(mode, table_len, data_len, count, k):
        _fail(f"header: tensor {rec['name'][:80]!r} {what} section lengths do not match its symbol count / coding")


def _check_record(rec, blob_len):
    """Validate one named tensor record of an untrusted header -> (record with "sections" as a list in
    SECTIONS order, element count)."""
    if not isinstance(rec, dict) or not isinstance(rec.get("name"), str):
        _fail("header: tensor record is not an object with a string 'name'")
    rec = dict(rec)
    name, shape, secs = rec["name"][:80], rec.get("shape"), rec.get("sections")
    if not isinstance(shape, list) or len(shape) > MAX_NDIM or not all(type(d) is int and d >= 0 for d in shape):
        _fail(f"header: tensor {name!r} has an invalid shape")
    if any(d > MAX_ELEMENTS for d in shape):  # a size, not a malformed shape: said as the total's limit is
        _fail(f"header: tensor {name!r} claims a dimension of {max(shape)} elements, more than the limit "
              f"{MAX_ELEMENTS}")
    n = 1
    for d in shape:
        n = min(n * d, MAX_ELEMENTS + 1)
    if n > MAX_ELEMENTS:
        _fail(f"header: tensor {name!r} claims more than {MAX_ELEMENTS} elements")
    if not isinstance(secs, dict) or not all(k in SECTIONS and type(x) is int and 0 <= x <= blob_len
                                             for k, x in secs.items()):
        _fail(f"header: tensor {name!r} has invalid section lengths")
    z = rec["sections"] = [secs.get(k, 0) for k in SECTIONS]
    dtype = _one_of(rec, "dtype", tuple(DTYPES))
    kind = _one_of(rec, "kind", ("raw", "codebook", "affine"))
    layout = _one_of(rec, "layout", LAYOUTS)
    if kind != "raw" and dtype != "float32":
        _fail(f"header: tensor {name!r} is {dtype} but {kind}-coded (grids are float32 only)")
    count = n
    if layout == "sparse":
        count = _int(rec, "nonzero", 0, n)
        # elements + escapes, each escape skipping at least one zero: at most count + n (range coding may
        # spend less than a bit a symbol, so the blob's length is no bound here)
        b, g = _int(rec, "gap_bits", 1, 16), _int(rec, "gap_symbols", 0, count + n)
        if (count == 0) != (g == 0) or g < count:
            _fail(f"header: tensor {name!r} has inconsistent gap counts")
        _stream_checks(rec, "gap", _one_of(rec, "gap_coding", MODES), z[1], z[2], g, 1 << b)
    elif layout in BITMAPS:
        count = _int(rec, "nonzero", 0, n)
        rows, cols = entropy.bitmap_shape(shape)
        axis = _int(rec, "bitmap_axis", 0, 1)
        flags = 0
        if layout == "live-bitmap":
            rows, cols = _int(rec, "live_rows", 1, rows), _int(rec, "live_cols", 1, cols)
            flags = _live_flag_bytes(shape)
            if count > rows * cols:
                _fail(f"header: tensor {name!r} stores more elements than its live rows x columns hold")
        if z[1] or z[2] < flags or (z[2] - flags) % 4 or (cols if axis == 0 else rows) > entropy.MAX_BITMAP_STEPS:
            _fail(f"header: tensor {name!r} has bitmap section lengths that do not match its shape / coding")
    elif z[1] or z[2]:
        _fail(f"header: dense tensor {name!r} has index sections")
    if kind == "raw":
        if z[0] or z[3] or z[4] or z[5] != DTYPES[dtype].itemsize * count:
            _fail(f"header: raw {dtype} tensor {name!r} has wrong section lengths for {count} element(s)")
        return rec, n
    if z[5]:
        _fail(f"header: coded tensor {name!r} has a raw section")
    if kind == "codebook":
        k = z[0] // 4
        if z[0] % 4 or k > MAX_SYMBOLS:
            _fail(f"header: tensor {name!r} has an invalid codebook length")
    else:
        nch, nq = _int(rec, "channels", 1, MAX_ELEMENTS), _int(rec, "q_levels", 0, 65536)
        _int(rec, "q_low", -2 ** 31, 2 ** 31 - 1)
        sp = rec.get("extra")
        if not isinstance(sp, list) or len(sp) > 2 or not all(type(x) is int and 0 <= x < 2 ** 32 for x in sp):
            _fail(f"header: tensor {name!r} has invalid extra values")
        if not (nch == 1 or (shape and nch == shape[0])) or z[0] != (8 * nch if nq else 0):
            _fail(f"header: tensor {name!r} has an invalid channel count or parameter length")
        k = nq + len(sp)
    if count and not k:
        _fail(f"header: tensor {name!r} has codes but an empty value table")
    _stream_checks(rec, "code", _one_of(rec, "code_coding", MODES), z[3], z[4], count, k)
    return rec, n


def _check_container(blob):
    """Magic, version and checksum of untrusted bytes, before any of their content is trusted."""
    if len(blob) < 5 or blob[:4] != MAGIC:
        _fail("not a compressed-model artifact (bad magic or too short)")
    if blob[4] != 1 and len(blob) < PREAMBLE:  # every version since 2 starts with the same 13 bytes
        _fail(f"artifact truncated: {len(blob)} bytes, shorter than its {PREAMBLE}-byte preamble; re-export it")
    if blob[4] not in (2, VERSION) and len(blob) >= PREAMBLE:
        # every version since 2 seals its files as this one does, the version byte included: a file whose checksum
        # holds with a known version byte in its place is one of those with that byte changed after export (damage,
        # not a file of another release to upgrade for or re-export)
        (stored,) = struct.unpack("<I", blob[9:PREAMBLE])
        was = [v for v in (VERSION, 2) if _checksum(blob[:4] + bytes([v]) + blob[5:]) == stored]
        if was:
            _fail(f"artifact is corrupt: its version byte reads {blob[4]}, but the rest is an intact format "
                  f"{was[0]} file: that byte was changed after export; copy it again or re-export it")
        if blob[4] > VERSION and stored != _checksum(blob):
            _fail(f"artifact is corrupt: its version byte reads {blob[4]}, newer than this compression-playground "
                  f"reads (format 2 and {VERSION}), but its checksum does not match: the file was changed after "
                  "export; copy it again or re-export it")
    if blob[4] == 1:
        _fail("artifact format version 1 (from before artifacts carried a checksum) is no longer read: "
              f"re-export it to get format version {VERSION}")
    if blob[4] > VERSION:
        _fail(f"artifact format version {blob[4]} is newer than this compression-playground reads (format 2 and "
              f"{VERSION}): it was written by a later release; upgrade compression-playground to read it "
              "(pip install -U compression-playground)")
    if blob[4] not in (2, VERSION):
        _fail(f"artifact format version {blob[4]} is not supported (expected 2 or {VERSION}): re-export it")
    (stored,) = struct.unpack("<I", blob[9:PREAMBLE])
    actual = _checksum(blob)
    if stored != actual:
        need = _needed_length(blob)
        if need is not None:
            need, cut_header = need
            why = ("the file ends inside its header" if cut_header else
                   f"its header's section lengths need {need}")
            _fail(f"artifact truncated: {len(blob)} of {'at least ' * cut_header}{need} bytes ({why}): the file was cut "
                  "short after export, e.g. an interrupted download or copy; copy it again or re-export it")
        _fail(f"artifact is corrupt: checksum mismatch (stored CRC-32 {stored:08x}, computed {actual:08x}); "
              "the file was truncated, changed or extended after export: re-export it")


def _needed_length(blob):
    """For bytes whose checksum failed: (bytes the intact start of the file says it needs, whether that is only a
    lower bound) when the file is shorter than that, else None. The header must be an intact zlib stream (its
    Adler-32 checked) whose sections need more bytes than there are, or a valid zlib prefix cut by the end of the
    file; a changed byte (say in the header length) gives neither, and is reported as a checksum mismatch."""
    (hlen,) = struct.unpack("<I", blob[5:9])
    zdict = HEADER_DICT if blob[4] == VERSION else b""
    if PREAMBLE + hlen > len(blob):  # the header itself is cut: only a lower bound, if what is there is a zlib prefix
        d = zlib.decompressobj(zdict=zdict) if zdict else zlib.decompressobj()
        try:
            d.decompress(blob[PREAMBLE:], MAX_HEADER)
        except zlib.error:
            return None
        return (PREAMBLE + hlen, True) if not (d.eof or d.unconsumed_tail) else None
    try:
        head = json.loads(entropy.inflate(blob[PREAMBLE:PREAMBLE + hlen], MAX_HEADER, zdict).decode("utf-8"))
        recs = head["tensors" if blob[4] == VERSION else "t"]
        lengths = [x for r in recs for x in (r["sections"].values() if blob[4] == VERSION else r["z"])]
    except (CorruptStream, ValueError, RecursionError, KeyError, TypeError, AttributeError):
        return None
    if not all(type(x) is int and x >= 0 for x in lengths):
        return None
    need = PREAMBLE + hlen + sum(lengths)
    return (need, False) if need > len(blob) else None


def _parse(blob):
    """Check the container and header of untrusted bytes -> (meta, named records, offset of first section, bytes)."""
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        path = isinstance(blob, str) or hasattr(blob, "__fspath__")
        _fail(f"artifact must be bytes, got {type(blob).__name__}" + (
            ": read the file first, e.g. pathlib.Path(path).read_bytes()" if path else ""))
    blob = bytes(blob)
    _check_container(blob)
    (hlen,) = struct.unpack("<I", blob[5:9])
    if PREAMBLE + hlen > len(blob):
        _fail(f"artifact truncated: header claims {hlen} bytes, only {len(blob) - PREAMBLE} present")
    try:
        zdict = HEADER_DICT if blob[4] == VERSION else b""
        head = json.loads(entropy.inflate(blob[PREAMBLE:PREAMBLE + hlen], MAX_HEADER, zdict).decode("utf-8"))
    except CorruptStream as e:
        _fail(f"header: {e}")
    except (ValueError, RecursionError) as e:
        _fail(f"header is not valid UTF-8 JSON: {str(e)[:80]}")
    key = "tensors" if blob[4] == VERSION else "t"
    if not isinstance(head, dict) or not isinstance(head.get("meta"), dict) or not isinstance(head.get(key), list):
        _fail(f"header must be an object with 'meta' (object) and {key!r} (list)")
    recs = head[key]
    if len(recs) > MAX_TENSORS:
        _fail(f"header lists more than {MAX_TENSORS} tensors")
    if key == "t":
        recs = [_from_v2(r) for r in recs]
    checked = [_check_record(r, len(blob)) for r in recs]
    recs = [r for r, _ in checked]
    total = sum(n for _, n in checked)
    if total > MAX_ELEMENTS:
        _fail(f"artifact claims {total} elements, more than the limit {MAX_ELEMENTS}")
    if len({r["name"] for r in recs}) != len(recs):
        _fail("header lists a tensor name twice")
    body = sum(sum(r["sections"]) for r in recs)
    if PREAMBLE + hlen + body != len(blob):
        _fail(f"artifact is {len(blob)} bytes but its header accounts for {PREAMBLE + hlen + body} "
              "(truncated, or trailing data)")
    return head["meta"], recs, PREAMBLE + hlen, blob


# ----------------------------------------------------------------------------- decode

def _read_stream(rec, what, mode, table, data, count, k):
    """Decode `count` symbols (< k) of a stream; a malformed one is an ArtifactError naming the tensor."""
    try:
        return entropy.read_stream(mode, table, data, count, k)
    except CorruptStream as e:
        _fail(f"tensor {rec['name'][:80]!r} {what}: {e}")


def _positions(rec, n, table, data):
    """Flat positions of the stored elements of a sparse tensor, from its gap stream."""
    b = rec["gap_bits"]
    syms = _read_stream(rec, "gaps", rec["gap_coding"], table, data, rec["gap_symbols"], 1 << b)
    try:
        return entropy.gap_positions(syms, b, rec["nonzero"], n)
    except CorruptStream as e:
        _fail(f"tensor {rec['name'][:80]!r}: {e}")


def _live_flag_bytes(shape):
    """Bytes of a live-bitmap's row and column flags."""
    rows, cols = entropy.bitmap_shape(shape)
    return (rows + cols + 7) // 8


def _bitmap_positions(rec, shape, n, data):
    """Flat positions of the stored elements of a bitmap or live-bitmap tensor."""
    name = rec["name"][:80]
    rows, cols = entropy.bitmap_shape(shape)
    if rec["layout"] == "live-bitmap":
        fb = _live_flag_bytes(shape)
        bits = np.unpackbits(np.frombuffer(data[:fb], np.uint8))
        live_r, live_c = np.flatnonzero(bits[:rows]), np.flatnonzero(bits[rows:rows + cols])
        if bits[rows + cols:].any() or live_r.size != rec["live_rows"] or live_c.size != rec["live_cols"]:
            _fail(f"tensor {name!r}: live-bitmap flags do not match its live row / column counts")
        data = data[fb:]
    try:
        if rec["layout"] != "live-bitmap":
            return entropy.bitmap_decode(data, rows, cols, rec["bitmap_axis"], rec["nonzero"])
        sub = entropy.bitmap_decode(data, live_r.size, live_c.size, rec["bitmap_axis"], rec["nonzero"])
    except CorruptStream as e:
        _fail(f"tensor {name!r}: {e}")
    i, j = np.divmod(sub, live_c.size)
    if np.unique(i).size != live_r.size or np.unique(j).size != live_c.size:  # canonical: every flagged one used
        _fail(f"tensor {name!r}: a live-bitmap row or column flagged live holds no element")
    return live_r[i] * cols + live_c[j]  # sorted: both maps increase


def _values(rec, n, pos, sec):
    """Bit patterns of the stored elements (all n if dense, else those at `pos`), in the record's width."""
    count = n if pos is None else pos.size
    if rec["kind"] == "raw":
        vals = _from_le(sec[5], DTYPES[rec["dtype"]].itemsize)
        if rec["dtype"] == "bool" and vals.size and int(vals.max()) > 1:
            _fail(f"tensor {rec['name'][:80]!r}: bool element with a byte other than 0 or 1")
        return vals
    if rec["kind"] == "codebook":
        table = _from_le(sec[0], 4)
        k = table.size
    else:
        nq, sp = rec["q_levels"], np.array(rec["extra"], np.uint32)
        k = nq + sp.size
    codes = _read_stream(rec, "codes", rec["code_coding"], sec[3], sec[4], count, k)
    if rec["kind"] == "codebook":
        return table[codes]
    out = np.empty(count, np.uint32)
    base = codes < nq
    out[~base] = sp[codes[~base] - nq]
    idx = np.flatnonzero(base)
    if idx.size:
        nch = rec["channels"]
        scale = _from_le(sec[0][:4 * nch], 4).view(np.float32)
        zp = _from_le(sec[0][4 * nch:], 4).view(np.int32).astype(np.int64)
        flat = idx if pos is None else pos[idx]
        ch = flat // (n // nch) if nch > 1 else np.zeros(idx.size, np.int64)
        out[idx] = _affine_value(codes[idx] + rec["q_low"] - zp[ch], scale[ch]).view(np.uint32)
    return out


def decode(blob):
    """Artifact bytes -> {name: tensor}, each exact in its recorded dtype and in the original order;
    ArtifactError if invalid. Version-2 artifacts decode to float32 tensors, as they were stored."""
    return decode_with_meta(blob)[0]


def decode_with_meta(blob):
    """(decode(blob), read_meta(blob)) from one check of the container (its checksum over the whole blob)."""
    meta, recs, off, blob = _parse(blob)
    blob = memoryview(blob)
    out = {}
    for rec in recs:
        sec = []
        for x in rec["sections"]:
            sec.append(blob[off:off + x])
            off += x
        shape, dtype = rec["shape"], DTYPES[rec["dtype"]]
        n = math.prod(shape)
        pos = (_positions(rec, n, sec[1], sec[2]) if rec["layout"] == "sparse" else
               _bitmap_positions(rec, shape, n, sec[2]) if rec["layout"] in BITMAPS else None)
        vals = _values(rec, n, pos, sec)
        if pos is None:
            flat = vals
        else:
            flat = np.zeros(n, vals.dtype)
            flat[pos] = vals
        signed = flat.view(_SIGNED[dtype.itemsize])  # flat is a fresh array: the tensor owns it
        out[rec["name"]] = torch.from_numpy(signed).view(dtype).reshape(shape)
    return out, meta


def read_meta(blob):
    """The `meta` dict given to encode (architecture, recipe, ...), after checking the container."""
    return _parse(blob)[0]


def read_shapes(blob):
    """(meta, {tensor name: shape as a tuple}) from the header, after checking the container: what decoding would
    allocate, known before any tensor is decoded."""
    meta, recs, _, _ = _parse(blob)
    return meta, {r["name"]: tuple(r["shape"]) for r in recs}


def size_breakdown(blob):
    """Bytes per part (header, index, codes, codebook, raw) overall and per tensor; the parts sum to len(blob).

    "header" counts the 13-byte preamble (magic, version, header length, checksum) and the zlib'd JSON."""
    return breakdown_and_codings(blob)[0]


def breakdown_and_codings(blob):
    """(size_breakdown(blob), {tensor name: how its code stream is stored}): a coded tensor's code_coding, one of
    entropy.MODES ("fixed" when entropy coding would not pay, as the encoder chooses per tensor), None for a tensor
    stored raw. One parse for both."""
    _, recs, off, _ = _parse(blob)
    parts = {"header": off, "index": 0, "codes": 0, "codebook": 0, "raw": 0, "per_tensor": {}}
    codings = {}
    for rec in recs:
        mine = {"index": 0, "codes": 0, "codebook": 0, "raw": 0}
        for part, x in zip(SECTIONS.values(), rec["sections"]):
            mine[part] += x
            parts[part] += x
        parts["per_tensor"][rec["name"]] = mine
        codings[rec["name"]] = rec.get("code_coding")
    return parts, codings
