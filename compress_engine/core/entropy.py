"""Entropy coding for Deep Compression stage 3: pure functions over numpy integer arrays.

- fixed width: symbols bit-packed MSB first, width(k) bits each for an alphabet of k symbols;
- canonical Huffman: code lengths from symbol counts (at most 15 bits, so decoding is one lookup in
  a 2**15-entry table per symbol), the lengths stored as nibbles (zlib'd when that is smaller);
- range coding (arithmetic coding with a static model: the symbol counts, stored as LEB128 varints),
  through `constriction` (Bamler 2022, a Rust range/ANS coder): within a fraction of a percent of the
  empirical entropy, where Huffman spends at least one bit a symbol (most of what a 2-4 cluster code
  costs). The decoder checks that the stream decodes to exactly the stored counts and that coding the
  decoded symbols again gives exactly the stream (no padding, no second spelling of the same weights);
- stream plans: the cheapest of those codings for a histogram, and the relative-index ("gap") streams
  of sparse positions: the count of zeros before each element in b bits, where the all-ones symbol is
  an escape meaning "skip 2**b - 1 zeros, no element here" (Han et al., Deep Compression, 2016);
- bitmaps: one bit per element of a (rows, cols) matrix, range-coded with an adaptive
  probability per row or per column (Krichevsky-Trofimov: (ones so far + 1/2) / (seen so far + 1)),
  so a dead output unit or a dead input costs a few bits, not one per weight.

A stream's coding mode is "fixed", "huffman" (nibble table), "huffman-zlib" (zlib'd nibble table) or
"range" (varint count table, range-coded words).
Nothing here knows about artifacts or tensors; the container (encode.py) decides what streams hold.
Functions that read bytes take untrusted input: anything malformed raises CorruptStream.
"""

import math
import zlib

import constriction
import numpy as np

HUFF_BITS = 15  # longest Huffman code; decode looks up 15-bit windows
MAX_WIDTH = 17  # widest fixed-width symbol (alphabets up to 2**17): unpack_fixed reads 24-bit windows
CHUNK = 1 << 18  # elements (or bits) processed per vectorised step, bounds temporary memory
MODES = ("fixed", "huffman", "huffman-zlib", "range")
MAX_BITMAP_STEPS = 1 << 16  # sequential decode steps of an adaptive bitmap (rows or columns), bounds decode time
_MODEL = constriction.stream.model
_QUEUE = constriction.stream.queue


class CorruptStream(ValueError):
    """Stream or table bytes that no encoder here could have written."""


def width(k):
    """Bits of a fixed-width code for an alphabet of k symbols (at least 1)."""
    return max(1, (int(k) - 1).bit_length())


# ----------------------------------------------------------------------------- fixed width

def _check_width(bits, error):
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= MAX_WIDTH:
        raise error(f"a fixed-width code takes 1 to {MAX_WIDTH} bits a symbol, not {bits!r:.40}")


def pack_fixed(vals, bits):
    """Bit-pack non-negative ints MSB first, `bits` (1 to MAX_WIDTH) each (chunks of CHUNK keep bytes aligned)."""
    _check_width(bits, ValueError)
    out = []
    for a in range(0, len(vals), CHUNK):
        mat = np.unpackbits(vals[a:a + CHUNK].astype(">u4").view(np.uint8)).reshape(-1, 32)
        out.append(np.packbits(mat[:, 32 - bits:].ravel()).tobytes())
    return b"".join(out)


def unpack_fixed(data, count, bits):
    """Inverse of pack_fixed; the caller has checked len(data) == ceil(count * bits / 8). `bits` past MAX_WIDTH
    (an alphabet no encoder here writes) raises CorruptStream."""
    _check_width(bits, CorruptStream)
    buf = np.frombuffer(bytes(data) + b"\0\0", np.uint8)
    out = np.empty(count, np.int64)
    for a in range(0, count, CHUNK):
        o = np.arange(a, min(count, a + CHUNK), dtype=np.int64) * bits
        by = o >> 3
        win = (buf[by].astype(np.int64) << 16) | (buf[by + 1].astype(np.int64) << 8) | buf[by + 2]
        out[a:a + len(o)] = (win >> (24 - bits - (o & 7))) & ((1 << bits) - 1)
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


def huffman_lengths(counts):
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


def canonical(lengths):
    """Canonical code as intervals: symbols sorted by (length, symbol) own consecutive slices of [0, 2**15)."""
    syms = np.flatnonzero(lengths)
    lens = lengths[syms].astype(np.int64)
    order = np.lexsort((syms, lens))
    syms, lens = syms[order], lens[order]
    span = np.int64(1) << (HUFF_BITS - lens)
    return syms, lens, np.cumsum(span) - span, span


def pack_table(lengths):
    """Code lengths as nibbles, zlib'd when that is smaller -> (mode, bytes)."""
    nib = np.zeros(len(lengths) + (len(lengths) & 1), np.uint8)
    nib[:len(lengths)] = lengths
    raw = ((nib[0::2] << 4) | nib[1::2]).tobytes()
    z = zlib.compress(raw, 9)
    return ("huffman-zlib", z) if len(z) < len(raw) else ("huffman", raw)


def inflate(data, limit, zdict=b""):
    """zlib-decompress untrusted bytes (made with preset dictionary `zdict`, if any), refusing more than
    `limit` bytes of output or trailing input."""
    d = zlib.decompressobj(zdict=zdict) if zdict else zlib.decompressobj()
    try:
        out = d.decompress(bytes(data), limit + 1)
    except zlib.error as e:
        raise CorruptStream(f"corrupt zlib data ({e})") from None
    if len(out) > limit or not d.eof or d.unused_data:
        raise CorruptStream("zlib data is truncated, too long or followed by garbage")
    return out


def read_table(data, mode, k):
    """Parse a Huffman table (nibble code lengths for k symbols) and check it is a prefix code."""
    need = (k + 1) // 2
    if mode == "huffman-zlib":
        data = inflate(data, need)
    if len(data) != need:
        raise CorruptStream(f"Huffman table has {len(data)} bytes, expected {need}")
    a = np.frombuffer(bytes(data), np.uint8)
    lengths = np.empty(2 * need, np.uint8)
    lengths[0::2], lengths[1::2] = a >> 4, a & 15
    if lengths[k:].any() or not lengths.any():
        raise CorruptStream("Huffman table is empty or has lengths for symbols past the alphabet")
    lengths = lengths[:k]
    _, _, start, span = canonical(lengths)
    if start[-1] + span[-1] > 1 << HUFF_BITS:
        raise CorruptStream("Huffman code lengths are not a valid prefix code")
    return lengths


def huffman_encode(syms, lengths):
    """Emit the canonical codes of `syms`, vectorised: each code is the top bits of its 15-bit interval start."""
    cs, cl, start, _ = canonical(lengths)
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


def huffman_decode(data, lengths, count):
    """Decode `count` symbols: per symbol one table lookup on the next 15 bits (windows built vectorised)."""
    syms, lens, start, span = canonical(lengths)
    filled = int(start[-1] + span[-1])
    sym_tab = np.zeros(1 << HUFF_BITS, np.int64)
    len_tab = np.zeros(1 << HUFF_BITS, np.int64)
    sym_tab[:filled], len_tab[:filled] = np.repeat(syms, span), np.repeat(lens, span)
    nbits = 8 * len(data)
    buf = np.frombuffer(bytes(data) + b"\0\0", np.uint8)
    out, p, got = [], 0, 0
    while got < count:
        if p >= nbits:
            raise CorruptStream(f"Huffman stream ends after {got} of {count} symbols")
        q = np.arange(p, min(nbits, p + CHUNK), dtype=np.int64)
        by = q >> 3
        win = (buf[by].astype(np.int64) << 16) | (buf[by + 1].astype(np.int64) << 8) | buf[by + 2]
        v = (win >> (24 - HUFF_BITS - (q & 7))) & ((1 << HUFF_BITS) - 1)
        lens_at = len_tab[v].tolist()
        i, k, lim, need, hits = 0, 0, len(q), count - got, []
        while i < lim and k < need:
            step = lens_at[i]
            if not step:
                raise CorruptStream("bit pattern that is no Huffman code")
            hits.append(i)
            i += step
            k += 1
        out.append(sym_tab[v[hits]])
        p, got = p + i, got + k
    if p > nbits or (p + 7) // 8 != len(data):
        raise CorruptStream(f"Huffman stream length does not match its {count} symbols")
    return np.concatenate(out) if out else np.zeros(0, np.int64)


# ----------------------------------------------------------------------------- streams

def stream_plan(hist, bits, huffman, syms=None):
    """Cheapest coding of a symbol stream with histogram `hist` (fixed width `bits`; with huffman=True
    also Huffman, and range coding when the symbols themselves are given as `syms`, a callable
    returning them: its size is measured by coding them) -> dict(mode, size, lengths, table, fixed)
    where fixed is the fixed-width size."""
    count = int(hist.sum())
    fixed = (count * bits + 7) // 8
    best = dict(mode="fixed", size=fixed, lengths=None, table=b"", fixed=fixed)
    if huffman and count:
        lengths = huffman_lengths(hist)
        if lengths is not None:
            mode, table = pack_table(lengths)
            size = (int(np.dot(hist.astype(np.int64), lengths)) + 7) // 8 + len(table)
            if size < best["size"]:
                best = dict(mode=mode, size=size, lengths=lengths, table=table, fixed=fixed)
        if syms is not None and len(hist) > 1:
            if int(varint_bytes(hist).sum()) + range_estimate(hist) < best["size"]:  # worth coding to measure it
                table, data = write_varints(hist), range_encode(syms(), hist)
                if len(table) + len(data) < best["size"]:
                    best = dict(mode="range", size=len(table) + len(data), lengths=None, table=table,
                                data=data, fixed=fixed)
    return best


def stream_bytes(plan, syms, bits):
    """(table, stream) bytes of symbols `syms` coded as `plan` (from stream_plan) says."""
    if plan["mode"] == "fixed":
        return b"", pack_fixed(syms, bits)
    if plan["mode"] == "range":
        return plan["table"], plan["data"]
    return plan["table"], huffman_encode(syms, plan["lengths"])


def stream_lengths_ok(mode, table_len, data_len, count, k):
    """Can a stream of `count` symbols (alphabet k) in `mode` have these table and data lengths?
    Checked before anything is decoded (the Huffman stream's exact length is checked by decoding)."""
    if count == 0:
        return mode == "fixed" and table_len == 0 and data_len == 0
    if mode == "fixed":
        return table_len == 0 and data_len == (count * width(k) + 7) // 8
    if mode == "range":  # k varints of at most 4 bytes each; whole 32-bit words
        return k <= table_len <= 4 * k and data_len % 4 == 0
    return table_len > 0 and count <= 8 * data_len and (mode == "huffman-zlib" or table_len == (k + 1) // 2)


def read_stream(mode, table, data, count, k):
    """Decode `count` symbols of an alphabet of k from a fixed-width or Huffman stream."""
    if count == 0:
        return np.zeros(0, np.int64)
    if mode == "fixed":
        syms = unpack_fixed(data, count, width(k))
    elif mode == "range":
        syms = range_decode(table, data, count, k)
    else:
        syms = huffman_decode(data, read_table(table, mode, k), count)
    if syms.size and int(syms.max()) >= k:
        raise CorruptStream(f"symbol {int(syms.max())} is outside its alphabet of {k}")
    return syms


# ----------------------------------------------------------------------------- relative indices (gaps)

def gap_plan(pos, huffman):
    """Best gap bits b (1..16) and stream coding for sorted positions, by exact cost for every b
    -> stream_plan's dict plus b, g (symbols in the stream) and d (the gaps); "fixed" is the best
    size without Huffman, so the caller knows what Huffman saved. With huffman=True, range coding
    is tried for the b whose estimate is best (it is coded, and kept if it measures smaller)."""
    d = np.diff(pos, prepend=-1) - 1  # zeros before each element
    if d.size == 0:
        return dict(b=1, g=0, mode="fixed", size=0, lengths=None, table=b"", d=d, fixed=0)
    dmax, best, fixed, ranged = int(d.max()), None, None, None
    for b in range(1, 17):
        e = (1 << b) - 1
        q = d // e
        esc = int(q.sum())
        if huffman:
            hist = np.bincount(d - q * e, minlength=e + 1)
            hist[e] += esc
            plan = stream_plan(hist, b, True)
            est = int(varint_bytes(hist).sum()) + range_estimate(hist)
            if ranged is None or est < ranged[0]:
                ranged = (est, b, hist)
        else:
            plan = stream_plan(np.array([d.size + esc]), b, False)
        fixed = plan["fixed"] if fixed is None else min(fixed, plan["fixed"])
        if best is None or plan["size"] < best["size"]:
            best = dict(plan, b=b, g=d.size + esc, d=d)
        if e > dmax:  # no escapes from here on: wider gaps only cost more
            break
    if ranged is not None and ranged[0] < best["size"]:
        _, b, hist = ranged
        plan = stream_plan(hist, b, True, syms=lambda: gap_symbols(d, b))
        if plan["size"] < best["size"]:
            best = dict(plan, b=b, g=int(hist.sum()), d=d)
    return dict(best, fixed=fixed)


def gap_symbols(d, b):
    """Gap stream for width b: each gap d becomes d // E escapes then d % E (E = 2**b - 1)."""
    e = (1 << b) - 1
    q = d // e
    syms = np.full(int(d.size + q.sum()), e, np.int64)
    syms[np.cumsum(q + 1) - 1] = d - q * e
    return syms


def gap_positions(syms, b, m, n):
    """Inverse of gap_symbols: the m positions (each < n) a decoded gap stream of width b describes."""
    e = (1 << b) - 1
    el = syms != e
    if int(el.sum()) != m or (syms.size and not el[-1]):
        raise CorruptStream(f"gap stream does not hold exactly {m} elements")
    pos = np.cumsum(np.where(el, syms + 1, e))[el] - 1
    if m and pos[-1] >= n:
        raise CorruptStream("a position lies past the end of the tensor")
    return pos


# ----------------------------------------------------------------------------- range coding (constriction)

def write_varints(values):
    """Non-negative ints (< 2**28) as LEB128 varints: 7 bits a byte, low bits first, high bit = more follows."""
    out = bytearray()
    for x in np.asarray(values, np.int64).tolist():
        while x >= 0x80:
            out.append((x & 0x7F) | 0x80)
            x >>= 7
        out.append(x)
    return bytes(out)


def varint_bytes(values):
    """Bytes each value takes as a varint (vectorised)."""
    v = np.asarray(values, np.int64)
    return 1 + (v >= 1 << 7) + (v >= 1 << 14) + (v >= 1 << 21)


def read_varints(data, k, limit):
    """Exactly k varints, each <= limit (< 2**28, so at most 4 bytes), filling `data` exactly; vectorised."""
    b = np.frombuffer(bytes(data), np.uint8)
    ends = np.flatnonzero(b < 0x80)
    if ends.size != k or not b.size or b[-1] >= 0x80:
        raise CorruptStream(f"count table does not hold exactly {k} varints")
    starts = np.concatenate(([0], ends[:-1] + 1))
    if int((ends - starts).max(initial=0)) > 3:
        raise CorruptStream("count table has a varint longer than 4 bytes")
    vals = np.zeros(k, np.int64)
    for j in range(4):
        at = starts + j
        ok = at <= ends
        vals[ok] |= (b[at[ok]].astype(np.int64) & 0x7F) << (7 * j)
    if vals.size and int(vals.max()) > limit:
        raise CorruptStream("count table has a count larger than its stream")
    return vals


def _words(data):
    return np.frombuffer(bytes(data), np.dtype("<u4")).astype(np.uint32)


def _le_words(words):
    return np.asarray(words, np.uint32).astype("<u4").tobytes()


def _categorical(counts):
    return _MODEL.Categorical(np.asarray(counts, np.float64), perfect=False)


def range_estimate(hist):
    """Bytes a static-model range coding of a stream with histogram `hist` takes, about (entropy + 2 words)."""
    h = hist[hist > 0].astype(np.float64)
    bits = float(-(h * np.log2(h / h.sum())).sum())
    return 4 * (math.ceil(bits / 32) + 2)


def range_encode(syms, counts):
    """Range-code int symbols with the static model counts/sum(counts) -> little-endian 32-bit words."""
    enc = _QUEUE.RangeEncoder()
    enc.encode(np.asarray(syms, np.int32), _categorical(counts))
    return _le_words(enc.get_compressed())


def range_decode(table, data, count, k):
    """Decode `count` symbols (< k) range-coded with the counts in `table`; the counts must sum to `count`,
    the decoded symbols must have exactly those counts and the data must be used up."""
    counts = read_varints(table, k, count)
    if int(counts.sum()) != count:
        raise CorruptStream(f"count table sums to {int(counts.sum())}, not the stream's {count} symbols")
    try:
        dec = _QUEUE.RangeDecoder(_words(data))
        syms = np.asarray(dec.decode(_categorical(counts), count), np.int64)
        done = dec.maybe_exhausted()
    except Exception as e:  # constriction refuses data no encoder could have written for this model
        raise CorruptStream(f"range-coded stream is invalid ({str(e)[:80]})") from None
    if not done or not np.array_equal(np.bincount(syms, minlength=k)[:k], counts) or syms.size != count:
        raise CorruptStream("range-coded stream does not decode to its count table (damaged or padded)")
    if range_encode(syms, counts) != bytes(data):  # canonical: exactly what the encoder writes (no padding)
        raise CorruptStream("range-coded stream has bytes past its symbols (padded or damaged)")
    return syms


# ----------------------------------------------------------------------------- bitmaps

def bitmap_shape(shape):
    """The (rows, cols) matrix a tensor's bitmap is coded as: dim 0 by everything else."""
    n = math.prod(shape)
    rows = shape[0] if len(shape) and shape[0] else 1
    return rows, n // rows


def _kt(ones, seen):
    return (ones + 0.5) / (seen + 1.0)


def bitmap_estimate(mask2d, axis):
    """Bytes bitmap_encode will take, about: the exact Krichevsky-Trofimov code length of each context's
    sequence, log2 pi*Gamma(n+1) / (Gamma(a+1/2) Gamma(n-a+1/2)) bits, plus two words."""
    import torch
    m = mask2d if axis == 1 else mask2d.T
    n = float(m.shape[0])
    a = torch.from_numpy(m.sum(0).astype(np.float64))
    nats = (math.log(math.pi) + math.lgamma(n + 1) - torch.lgamma(a + 0.5) - torch.lgamma(n - a + 0.5)).sum()
    return 4 * (math.ceil(float(nats) / math.log(2) / 32) + 2)


def bitmap_encode(mask2d, axis):
    """Range-code a bool matrix with an adaptive probability per row (axis 0: contexts are rows, the
    columns are coded one after another) or per column (axis 1) -> little-endian 32-bit words."""
    m = mask2d if axis == 1 else mask2d.T  # sequence over dim 0 of m, one context per column of m
    b = m.astype(np.int32)
    ones = np.cumsum(b, 0) - b  # exclusive: ones seen in the column before this step
    p = _kt(ones, np.arange(m.shape[0], dtype=np.float64)[:, None])
    enc = _QUEUE.RangeEncoder()
    if b.size:
        enc.encode(b.reshape(-1), _MODEL.Bernoulli(perfect=False), p.reshape(-1))
    return _le_words(enc.get_compressed())


def bitmap_decode(data, rows, cols, axis, m):
    """Inverse of bitmap_encode for a (rows, cols) matrix holding m ones -> flat sorted positions."""
    steps, ctx = (rows, cols) if axis == 1 else (cols, rows)
    if steps > MAX_BITMAP_STEPS:
        raise CorruptStream(f"bitmap of {steps} steps, more than {MAX_BITMAP_STEPS}")
    out = np.zeros((steps, ctx), bool)
    ones = np.zeros(ctx, np.int64)
    family = _MODEL.Bernoulli(perfect=False)
    try:
        dec = _QUEUE.RangeDecoder(_words(data))
        for i in range(steps):
            row = np.asarray(dec.decode(family, _kt(ones, float(i))), bool)
            out[i] = row
            ones += row
        done = dec.maybe_exhausted()
    except Exception as e:
        raise CorruptStream(f"bitmap stream is invalid ({str(e)[:80]})") from None
    if not done or int(ones.sum()) != m:
        raise CorruptStream(f"bitmap does not hold exactly {m} elements (damaged or padded)")
    mask = out if axis == 1 else out.T
    if bitmap_encode(mask, axis) != bytes(data):  # canonical: exactly what the encoder writes (no padding)
        raise CorruptStream("bitmap stream has bytes past its elements (padded or damaged)")
    return np.flatnonzero(mask)
