"""A CSV of identical rows was refused, after 88 s at 2.9 GB for 100 MB, with a false reason ("it holds too few
rows"): the split hashes each row's content, so equal rows always fall on the same side. The message now says so,
and a table is bounded by its float32 bytes, checked before it is read."""

import tracemalloc

import numpy as np
import pytest

import compress_engine as ce
from compress_engine.playground import sources


def write(path, rows, cols=3):
    path.write_text(",".join(f"f{j}" for j in range(cols)) + ",label\n" + rows)
    return path


def test_identical_rows_say_why_none_is_held_out(tmp_path):
    path = write(tmp_path / "same.csv", "1,2,3,a\n" * 50)
    with pytest.raises(ce.DatasetError) as e:
        ce.load_dataset(f"csv:{path}")
    text = str(e.value)
    assert "its 50 rows are only 1 different one" in text and "equal rows always fall on the same side" in text
    assert "too few rows" not in text and "add different rows" in text


def test_the_table_is_refused_from_its_size_as_float32_before_it_is_read(tmp_path, monkeypatch):
    path = write(tmp_path / "wide.csv", "".join(f"{i % 10},{i % 7},{i % 3},{i % 2}\n" for i in range(1000)))
    monkeypatch.setattr(sources, "MAX_DATA_BYTES", 10_000)  # the file is under it, its 12,000 float bytes not
    assert path.stat().st_size < 10_000
    monkeypatch.setattr(sources, "_csv_row_floats", lambda *a: pytest.fail("read a row"))
    with pytest.raises(ce.DatasetError, match=r"up to 1,000 rows of 3 feature columns: 12,000 bytes as float32 "
                                              r"\(limit 10,000\)"):
        ce.load_dataset(f"csv:{path}")


def test_a_table_keeps_floats_not_strings(tmp_path):
    """Peak memory of reading a 2,000x200 table: its 1.6 MB of floats (and a 1 MB read buffer), not a Python string
    per cell (about 55 bytes each: 22 MB)."""
    rng = np.random.default_rng(0)
    body = "".join(",".join(f"{v:.3f}" for v in r) + f",{i % 3}\n" for i, r in enumerate(rng.random((2000, 200))))
    path = write(tmp_path / "t.csv", body, cols=200)
    tracemalloc.start()
    try:
        x, labels, features, names = sources._csv_table(path, None, ())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert x.shape == (2000, 200) and x.dtype == np.float32 and len(labels) == 2000 and names == ["label"]
    assert peak < 3 * x.nbytes
