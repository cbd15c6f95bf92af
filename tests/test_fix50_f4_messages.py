"""What a reader is told about an artifact it cannot read (a deployment review): a file from a newer release was told
to "re-export it" (the user cannot: its format is newer than the installed package, which must be upgraded), and a
file cut short in transfer was reported as a checksum mismatch "truncated, changed or extended" with no sizes. Now a
newer format version says to upgrade compression-playground, and a file shorter than its header's section lengths
need says "truncated: N of M bytes"; a changed byte is still a checksum mismatch."""

import struct

import pytest
import torch

from compress_engine.core.encode import (PREAMBLE, VERSION, Codebook, _seal, decode, encode, read_meta,
                                         size_breakdown)
from compress_engine.core.errors import ArtifactError


def artifact():
    g = torch.Generator().manual_seed(0)
    w = torch.linspace(-1, 1, 8)[torch.randint(0, 8, (40, 50), generator=g)]
    w[torch.rand(w.shape, generator=g) < 0.8] = 0.0
    return encode({"w": w, "b": torch.randn(40, generator=g)}, {"w": Codebook(torch.linspace(-1, 1, 8).numpy())},
                  meta={"spec": None}, huffman=True)


def message(fn, blob):
    with pytest.raises(ArtifactError) as e:
        fn(blob)
    return str(e.value)


@pytest.mark.parametrize("fn", [decode, read_meta, size_breakdown])
def test_newer_version_says_upgrade(fn):
    blob = bytearray(artifact())
    blob[4] = VERSION + 1
    msg = message(fn, _seal(bytes(blob)))  # sealed as a later release writes it
    assert f"version {VERSION + 1} is newer" in msg and "upgrade compression-playground" in msg
    assert "re-export" not in msg


@pytest.mark.parametrize("fn", [decode, read_meta, size_breakdown])
def test_a_version_byte_changed_after_export_is_damage_not_a_newer_release(fn):
    """A diff review flipped each bit of an artifact: 3 -> 131 or 3 -> 7 in the version byte was told to upgrade
    compression-playground, which cannot help; the checksum, which covers that byte, says the file was changed."""
    for x in (0x04, 0x80, 0x02):  # 3 -> 7, 131 and 1: a version 1 file is no longer read, but this is none
        blob = bytearray(artifact())
        blob[4] ^= x
        msg = message(fn, bytes(blob))
        assert f"version byte reads {VERSION ^ x}" in msg and "changed after export" in msg, msg
        assert "upgrade" not in msg and "no longer read" not in msg, msg
    blob = bytearray(artifact())  # a newer version byte and another change: damage all the same
    blob[4], blob[-1] = VERSION + 1, blob[-1] ^ 1
    msg = message(fn, bytes(blob))
    assert "checksum does not match" in msg and "upgrade" not in msg, msg


@pytest.mark.parametrize("fn", [decode, read_meta, size_breakdown])
def test_a_file_shorter_than_its_preamble_is_truncated_whatever_its_version_byte(fn):
    """A diff review: 'CPG1' + version 9 and 3 bytes more was called changed after export (it has no checksum)."""
    for version in (VERSION, VERSION + 6):
        msg = message(fn, artifact()[:4] + bytes([version]) + b"\0\0\0")
        assert f"shorter than its {PREAMBLE}-byte preamble" in msg, msg


@pytest.mark.parametrize("fn", [decode, read_meta, size_breakdown])
def test_truncated_file_says_how_many_bytes(fn):
    blob = artifact()
    (hlen,) = struct.unpack("<I", blob[5:9])
    for cut in (len(blob) - 1, len(blob) - 100, PREAMBLE + hlen + 1, PREAMBLE + hlen):
        msg = message(fn, blob[:cut])
        assert f"artifact truncated: {cut} of {len(blob)} bytes" in msg, msg
        assert "checksum mismatch" not in msg
    for cut in (PREAMBLE + hlen - 1, PREAMBLE + 5):  # inside the header: a lower bound
        msg = message(fn, blob[:cut])
        assert f"artifact truncated: {cut} of at least {PREAMBLE + hlen} bytes" in msg, msg


def test_changed_bytes_are_still_a_checksum_mismatch():
    blob = artifact()
    (hlen,) = struct.unpack("<I", blob[5:9])
    for i in (5, 6, 8, PREAMBLE + 3, PREAMBLE + hlen // 2, len(blob) - 1):
        for x in (1, 0x80):
            b = bytearray(blob)
            b[i] ^= x
            msg = message(decode, bytes(b))
            assert "checksum mismatch" in msg and "truncated:" not in msg, (i, x, msg)
    msg = message(decode, blob + b"\0")  # extended: the header needs fewer bytes than there are
    assert "checksum mismatch" in msg


def test_one_tensor_over_the_element_limit_is_said_as_the_limit():
    """A spec-alone decoder review: one 60,000,000-element tensor was refused as 'has an invalid shape', where two
    of 30,000,000 each were told 'more than the limit 50000000'."""
    import json
    import zlib

    from compress_engine.core.encode import HEADER_DICT, MAX_ELEMENTS
    blob = artifact()
    (hlen,) = struct.unpack("<I", blob[5:9])
    head = json.loads(zlib.decompressobj(zdict=HEADER_DICT).decompress(blob[PREAMBLE:PREAMBLE + hlen]))
    records = next(v for v in head.values() if isinstance(v, list) and v and isinstance(v[0], dict) and "shape" in v[0])
    records[0]["shape"] = [60_000_000]
    z = zlib.compressobj(zdict=HEADER_DICT)
    new_head = z.compress(json.dumps(head).encode()) + z.flush()
    forged = _seal(blob[:5] + struct.pack("<I", len(new_head)) + blob[9:PREAMBLE] + new_head + blob[PREAMBLE + hlen:])
    msg = message(decode, forged)
    assert f"more than the limit {MAX_ELEMENTS}" in msg and "60000000" in msg, msg
