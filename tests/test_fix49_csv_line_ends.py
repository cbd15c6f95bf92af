"""CSV files whose lines end in a lone CR (Excel for Mac's "CSV (Macintosh)") loaded before today's streaming reader
and then raised a raw IndexError: it counted rows by \\n alone. Every line-end style loads the same table."""

import numpy as np
import pytest

from compress_engine.playground import sources


def table(n=200):
    rng = np.random.default_rng(0)
    rows = ["a,b,label"] + [f"{rng.normal():.4f},{rng.normal():.4f},{i % 3}" for i in range(n)]
    return rows


@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("final", [True, False])
def test_every_line_end_loads_the_same_table(tmp_path, end, final):
    rows = table()
    plain = tmp_path / "plain.csv"
    plain.write_bytes(("\n".join(rows) + "\n").encode())
    other = tmp_path / "other.csv"
    other.write_bytes((end.join(rows) + (end if final else "")).encode())
    want, got = sources.read_csv(plain, "t"), sources.read_csv(other, "t")
    for split in ("train", "test"):
        assert np.array_equal(want.x(split).numpy(), got.x(split).numpy())
        assert np.array_equal(want.y(split).numpy(), got.y(split).numpy())


def test_line_count_of_a_crlf_split_between_blocks(tmp_path):
    p = tmp_path / "t.csv"
    p.write_bytes(b"a,b\r\n1,2\r\n3,4\r5,6")
    assert sources._lines(p, chunk=4) == sources._lines(p) == 4  # the \r\n at bytes 3-4 spans two 4-byte blocks
