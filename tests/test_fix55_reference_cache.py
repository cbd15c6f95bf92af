"""store.reference_points reads the benchmark CSVs once per state of their folder: it read all of bench/results (232
files) on every Pipeline slider press, a quarter of the page's run. A CSV added, removed or rewritten is read again."""

import os

from compress_engine.playground import store

HEAD = "model,recipe,artifact_bytes,accuracy,ratio\n"


def test_read_once_then_again_only_when_a_csv_changes(tmp_path, monkeypatch):
    (tmp_path / "a.csv").write_text(HEAD + "lenet-300-100,prune 90%,30000,0.88,35.5\n")
    reads = []
    real = store._read_reference_points
    monkeypatch.setattr(store, "_read_reference_points", lambda paths: reads.append(len(paths)) or real(paths))
    first = store.reference_points(tmp_path)
    assert [r["label"] for r in first] == ["prune 90%"] and reads == [1]
    first[0]["label"] = "changed by a caller"  # the rows given are the caller's own
    assert store.reference_points(tmp_path) == [dict(first[0], label="prune 90%")] and reads == [1]

    (tmp_path / "b.csv").write_text(HEAD + "lenet-5,16 clusters,40000,0.9,43.1\n")  # added
    assert [r["label"] for r in store.reference_points(tmp_path)] == ["prune 90%", "16 clusters"] and reads == [1, 2]
    (tmp_path / "a.csv").write_text(HEAD + "lenet-300-100,prune 95%,20000,0.85,53.3\n")  # rewritten, same size
    os.utime(tmp_path / "a.csv", ns=(1, 1))  # and an older mtime, as a copy keeping its stamp would have
    assert [r["label"] for r in store.reference_points(tmp_path)] == ["prune 95%", "16 clusters"] and reads == [1, 2, 2]
    (tmp_path / "b.csv").unlink()  # removed
    assert [r["label"] for r in store.reference_points(tmp_path)] == ["prune 95%"] and reads == [1, 2, 2, 1]
    assert store.reference_points(tmp_path / "missing") == []
