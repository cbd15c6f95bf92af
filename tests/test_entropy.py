"""Tests for compress_engine.core.entropy: fixed-width packing, canonical Huffman (length limit, prefix
property, round trips), stream plans and relative-index (gap) streams, and malformed bytes -> CorruptStream."""

import math
import zlib

import numpy as np
import pytest

from compress_engine.core import entropy as E


@pytest.mark.parametrize("bits", [1, 3, 8, 13, 17])
def test_fixed_width_roundtrip(bits):
    rng = np.random.default_rng(bits)
    for count in (0, 1, 7, 1000, E.CHUNK + 5):  # past one chunk, too
        vals = rng.integers(0, 1 << bits, count)
        data = E.pack_fixed(vals, bits)
        assert len(data) == (count * bits + 7) // 8
        assert np.array_equal(E.unpack_fixed(data, count, bits), vals)


def test_width():
    assert [E.width(k) for k in (1, 2, 3, 4, 5, 256, 257, 65538)] == [1, 1, 2, 2, 3, 8, 9, 17]


def test_huffman_lengths_are_limited_and_a_prefix_code():
    fib = [1, 1]
    while len(fib) < 30:
        fib.append(fib[-1] + fib[-2])
    lengths = E.huffman_lengths(np.array(fib))
    assert lengths.max() <= E.HUFF_BITS and (2.0 ** -lengths.astype(float)).sum() <= 1
    assert E.huffman_lengths(np.array([0, 5, 0])).tolist() == [0, 1, 0]  # one symbol: one bit
    assert E.huffman_lengths(np.zeros(3, np.int64)) is None


@pytest.mark.parametrize("k", [2, 5, 300])
def test_huffman_roundtrip_and_entropy(k):
    rng = np.random.default_rng(k)
    p = np.exp(-np.arange(k) / 3.0)
    syms = rng.choice(k, size=50_000, p=p / p.sum())
    hist = np.bincount(syms, minlength=k)
    lengths = E.huffman_lengths(hist)
    data = E.huffman_encode(syms, lengths)
    assert np.array_equal(E.huffman_decode(data, lengths, syms.size), syms)
    nz = hist[hist > 0]
    entropy_bytes = -(nz * np.log2(nz / syms.size)).sum() / 8
    assert len(data) == (int(np.dot(hist, lengths)) + 7) // 8
    assert entropy_bytes <= len(data) <= 1.03 * entropy_bytes + 1  # Huffman's redundancy is small here


def test_table_roundtrip_and_zlib_choice():
    lengths = np.zeros(1000, np.uint8)
    lengths[[3, 500]] = 1  # mostly unused symbols: the zlib'd table is smaller
    mode, table = E.pack_table(lengths)
    assert mode == "huffman-zlib" and len(table) < 500
    assert np.array_equal(E.read_table(table, mode, 1000), lengths)
    mode, table = E.pack_table(np.array([1, 2, 2], np.uint8))
    assert mode == "huffman" and table == b"\x12\x20"


@pytest.mark.parametrize("huffman", [False, True])
def test_stream_plan_picks_the_smaller(huffman):
    skewed = np.array([10_000, 10, 10, 10])
    plan = E.stream_plan(skewed, 2, huffman)
    assert plan["fixed"] == math.ceil(skewed.sum() * 2 / 8)
    assert (plan["mode"] != "fixed") == huffman and plan["size"] <= plan["fixed"]
    syms = np.repeat(np.arange(4), skewed)
    table, data = E.stream_bytes(plan, syms, 2)
    assert len(table) + len(data) == plan["size"]
    assert E.stream_lengths_ok(plan["mode"], len(table), len(data), syms.size, 4)
    assert np.array_equal(E.read_stream(plan["mode"], table, data, syms.size, 4), syms)
    flat = E.stream_plan(np.array([5, 5, 5, 5]), 2, huffman)  # uniform: Huffman saves nothing
    assert flat["mode"] == "fixed"


@pytest.mark.parametrize("huffman", [False, True])
def test_gap_roundtrip_with_escapes(huffman):
    rng = np.random.default_rng(0)
    n = 200_000
    pos = np.unique(np.concatenate([rng.choice(1000, 300, replace=False), [70_000, n - 1]]))
    plan = E.gap_plan(pos, huffman)
    syms = E.gap_symbols(plan["d"], plan["b"])
    assert syms.size == plan["g"] > pos.size  # the long gaps need escapes
    table, data = E.stream_bytes(plan, syms, plan["b"])
    back = E.read_stream(plan["mode"], table, data, plan["g"], 1 << plan["b"])
    assert np.array_equal(E.gap_positions(back, plan["b"], pos.size, n), pos)
    empty = E.gap_plan(np.zeros(0, np.int64), huffman)
    assert empty["g"] == 0 and empty["size"] == 0


def test_malformed_bytes_raise_corrupt_stream():
    bad = [
        lambda: E.read_table(b"\x11\x10", "huffman", 3),               # Kraft sum > 1
        lambda: E.read_table(b"\x00", "huffman", 2),                   # empty table
        lambda: E.read_table(b"\x12", "huffman", 1),                   # length past the alphabet
        lambda: E.read_table(b"\x78", "huffman-zlib", 2),              # bad zlib
        lambda: E.read_table(zlib.compress(b"\x11\x00"), "huffman-zlib", 2),  # longer than the table
        lambda: E.huffman_decode(b"\x80", np.array([2, 2], np.uint8), 1),     # incomplete code hit
        lambda: E.huffman_decode(b"\x00", np.array([1, 1], np.uint8), 9),     # stream ends early
        lambda: E.huffman_decode(b"\x00\x00", np.array([1, 1], np.uint8), 4),  # stream too long
        lambda: E.read_stream("fixed", b"", b"\xff", 1, 3),             # symbol outside the alphabet
        lambda: E.gap_positions(np.array([15]), 4, 1, 100),            # escape only
        lambda: E.gap_positions(np.array([9]), 4, 1, 4),               # past the end
        lambda: E.inflate(zlib.compress(b"x" * 100), 10),              # too long
        lambda: E.inflate(zlib.compress(b"x") + b"!", 10),             # trailing garbage
    ]
    for i, f in enumerate(bad):
        with pytest.raises(E.CorruptStream):
            f()
            pytest.fail(f"case {i} was accepted")


def test_varints_and_range_streams():
    vals = np.array([0, 1, 127, 128, 16383, 16384, 2**21, 2**27], np.int64)
    data = E.write_varints(vals)
    assert len(data) == int(E.varint_bytes(vals).sum())
    assert np.array_equal(E.read_varints(data, vals.size, 2**28), vals)
    for bad in (data[:-1], data + b"\0", b"\x80\x80\x80\x80\x01", b""):
        with pytest.raises(E.CorruptStream):
            E.read_varints(bad, vals.size if bad != b"\x80\x80\x80\x80\x01" else 1, 2**28)
    with pytest.raises(E.CorruptStream):
        E.read_varints(E.write_varints([5, 9]), 2, 8)  # a count above the stream's length
    rng = np.random.default_rng(0)
    syms = rng.choice(3, 5000, p=[0.9, 0.09, 0.01])
    hist = np.bincount(syms, minlength=3)
    plan = E.stream_plan(hist, 2, True, syms=lambda: syms)
    assert plan["mode"] == "range" and plan["size"] < E.stream_plan(hist, 2, True)["size"]
    table, data = E.stream_bytes(plan, syms, 2)
    assert E.stream_lengths_ok("range", len(table), len(data), syms.size, 3)
    assert np.array_equal(E.read_stream("range", table, data, syms.size, 3), syms)
    for bad_table, bad_data in ((E.write_varints(hist + [1, 0, 0]), data),  # counts do not sum to the stream
                                (E.write_varints(hist[::-1]), data),        # another model
                                (table, data + b"\0\0\0\0"), (table, data[:-4]), (table, b"\xff" * len(data))):
        with pytest.raises(E.CorruptStream):
            E.read_stream("range", bad_table, bad_data, syms.size, 3)


@pytest.mark.parametrize("axis", [0, 1])
def test_adaptive_bitmap(axis):
    rng = np.random.default_rng(axis)
    mask = (rng.random((50, 80)) < 0.1) & (rng.random(50) < 0.4)[:, None] & (rng.random(80) < 0.7)
    data = E.bitmap_encode(mask, axis)
    assert abs(len(data) - E.bitmap_estimate(mask, axis)) <= 8
    assert np.array_equal(E.bitmap_decode(data, 50, 80, axis, int(mask.sum())), np.flatnonzero(mask))
    assert len(E.bitmap_encode(mask, 0)) < mask.size / 8 / 3  # dead rows and columns are nearly free
    for bad in (lambda: E.bitmap_decode(data, 50, 80, axis, int(mask.sum()) + 1),
                lambda: E.bitmap_decode(data + b"\0\0\0\0", 50, 80, axis, int(mask.sum())),
                lambda: E.bitmap_decode(data, 1, E.MAX_BITMAP_STEPS + 1, 0, 1)):
        with pytest.raises(E.CorruptStream):
            bad()
