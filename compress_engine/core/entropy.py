"""Entropy coding for Deep Compression stage 3: pure functions over numpy integer arrays.

- fixed width: symbols bit-packed MSB first, width(k) bits each for an alphabet of k symbols;
- canonical Huffman: code lengths from symbol counts (at most 15 bits, so decoding is one lookup in
  a 2**15-entry table per symbol), the lengths stored as nibbles (zlib'd when that is smaller);
- stream plans: the cheapest of those codings for a histogram, and the relative-index ("gap") streams
  of sparse positions: the count of zeros before each element in b bits, where the all-ones symbol is
  an escape meaning "skip 2**b - 1 zeros, no element here" (Han et al., Deep Compression, 2016).

A stream's coding mode is "fixed", "huffman" (nibble table) or "huffman-zlib" (zlib'd nibble table).
Nothing here knows about artifacts or tensors; the container (encode.py) decides what streams hold.
Functions that read bytes take untrusted input: anything malformed raises CorruptStream.
"""

import zlib

import numpy as np

HUFF_BITS = 15  # longest Huffman code; decode looks up 15-bit windows
MAX_WIDTH = 17  # widest fixed-width symbol (alphabets up to 2**17)
CHUNK = 1 << 18  # elements (or bits) processed per vectorised step, bounds temporary memory
MODES = ("fixed", "huffman", "huffman-zlib")


class CorruptStream(ValueError):
    """Stream or table bytes that no encoder here could have written."""


def width(k):
    """Bits of a fixed-width code for an alphabet of k symbols (at least 1)."""
    return max(1, (int(k) - 1).bit_length())


# ----------------------------------------------------------------------------- fixed width

def pack_fixed(vals, bits):
    """Bit-pack non-negative ints MSB first, `bits` (<= 17) each (chunks of CHUNK keep bytes aligned)."""
    out = []
    for a in range(0, len(vals), CHUNK):
        mat = np.unpackbits(vals[a:a + CHUNK].astype(">u4").view(np.uint8)).reshape(-1, 32)
        out.append(np.packbits(mat[:, 32 - bits:].ravel()).tobytes())
    return b"".join(out)


def unpack_fixed(data, count, bits):
    """Inverse of pack_fixed; the caller has checked len(data) == ceil(count * bits / 8), bits <= 17."""
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

def stream_plan(hist, bits, huffman):
    """Cheapest coding of a symbol stream with histogram `hist` (fixed width `bits`, or Huffman if allowed)
    -> dict(mode, size, lengths, table, fixed) where fixed is the fixed-width size."""
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
    return best


def stream_bytes(plan, syms, bits):
    """(table, stream) bytes of symbols `syms` coded as `plan` (from stream_plan) says."""
    if plan["mode"] == "fixed":
        return b"", pack_fixed(syms, bits)
    return plan["table"], huffman_encode(syms, plan["lengths"])


def stream_lengths_ok(mode, table_len, data_len, count, k):
    """Can a stream of `count` symbols (alphabet k) in `mode` have these table and data lengths?
    Checked before anything is decoded (the Huffman stream's exact length is checked by decoding)."""
    if count == 0:
        return mode == "fixed" and table_len == 0 and data_len == 0
    if mode == "fixed":
        return table_len == 0 and data_len == (count * width(k) + 7) // 8
    return table_len > 0 and count <= 8 * data_len and (mode == "huffman-zlib" or table_len == (k + 1) // 2)


def read_stream(mode, table, data, count, k):
    """Decode `count` symbols of an alphabet of k from a fixed-width or Huffman stream."""
    if count == 0:
        return np.zeros(0, np.int64)
    if mode == "fixed":
        syms = unpack_fixed(data, count, width(k))
    else:
        syms = huffman_decode(data, read_table(table, mode, k), count)
    if syms.size and int(syms.max()) >= k:
        raise CorruptStream(f"symbol {int(syms.max())} is outside its alphabet of {k}")
    return syms


# ----------------------------------------------------------------------------- relative indices (gaps)

def gap_plan(pos, huffman):
    """Best gap bits b (1..16) and stream coding for sorted positions, by exact cost for every b
    -> stream_plan's dict plus b, g (symbols in the stream) and d (the gaps); "fixed" is the best
    size without Huffman, so the caller knows what Huffman saved."""
    d = np.diff(pos, prepend=-1) - 1  # zeros before each element
    if d.size == 0:
        return dict(b=1, g=0, mode="fixed", size=0, lengths=None, table=b"", d=d, fixed=0)
    dmax, best, fixed = int(d.max()), None, None
    for b in range(1, 17):
        e = (1 << b) - 1
        q = d // e
        esc = int(q.sum())
        if huffman:
            hist = np.bincount(d - q * e, minlength=e + 1)
            hist[e] += esc
            plan = stream_plan(hist, b, True)
        else:
            plan = stream_plan(np.array([d.size + esc]), b, False)
        fixed = plan["fixed"] if fixed is None else min(fixed, plan["fixed"])
        if best is None or plan["size"] < best["size"]:
            best = dict(plan, b=b, g=d.size + esc, d=d)
        if e > dmax:  # no escapes from here on: wider gaps only cost more
            break
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
