"""A process killed between write_atomic's write and rename left its `.<name>.<random>.tmp` file in the
trained-results folder forever: TrainedCache's trim looked only at *.cpgt, so it was neither counted nor removed.
The trim now removes such files of its own naming once they are core.files.STALE_S old, never a fresh one (a
writer may be writing it) and never another file."""

import os
import subprocess
import sys
import time
from pathlib import Path

import compress_engine as ce
from compress_engine.core import files
from compress_engine.playground.trained import TrainedCache

ROOT = Path(__file__).resolve().parents[1]

KILLED = """
import os, sys
from compress_engine.core import files
os.replace = lambda *a: os._exit(9)  # killed after the write, before the rename
files.write_atomic(sys.argv[1], b"half a result")
"""


def killed_write(path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", KILLED, str(path)], env=env, cwd=ROOT, timeout=120)
    assert done.returncode == 9
    [tmp] = [p for p in path.parent.iterdir() if p.name.startswith(f".{path.name}.") and p.name.endswith(".tmp")]
    return tmp


def fake():
    return {"recipe": ce.Recipe(sparsity=0.5, finetune_epochs=1).to_json(), "artifact": b"\x07" * 10,
            "metrics": {"artifact_bytes": 10, "accuracy": 0.9}, "history": {}, "timings": {}}


def age(path, seconds):
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_the_trim_removes_a_killed_writers_old_temporary_file_only(tmp_path):
    cache = TrainedCache(tmp_path)
    k1, k2, k3 = (TrainedCache.key("m", ce.Recipe(sparsity=s, finetune_epochs=1), "d") for s in (0.1, 0.2, 0.3))
    old = killed_write(tmp_path / f"{k1}.cpgt")
    fresh = killed_write(tmp_path / f"{k2}.cpgt")
    age(old, files.STALE_S + 60)
    age(fresh, files.STALE_S - 60)  # a writer could still be at it
    other = tmp_path / ".notes.json.abcd1234.tmp"  # not a trained result's temporary file
    other.write_text("x")
    age(other, files.STALE_S + 60)
    assert cache.put(k3, "lenet-300-100", fake())
    assert not old.exists() and fresh.exists() and other.exists() and cache.get(k3) is not None


def test_remove_stale_temporaries_counts_and_skips_what_is_gone(tmp_path):
    stale = killed_write(tmp_path / "a.json")
    age(stale, files.STALE_S + 1)
    assert files.remove_stale_temporaries(tmp_path, "*.cpgt") == 0 and stale.exists()  # another name's
    assert files.remove_stale_temporaries(tmp_path, "a.json") == 1 and not stale.exists()
    assert files.remove_stale_temporaries(tmp_path / "missing") == 0
