"""A run store this program may not write (a read-only folder or file: chmod -R a-w) made Compare show no saved runs
and advise "Move that file away (the dashboard makes a new store there)", about a healthy file: every SQLite error
but "locked" counted as damage. Now its runs are read, and a save says what is not writable and the fix.

Root ignores file modes, so as root the checks run in a child without the capabilities that bypass them (setpriv)."""

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import compress_engine as ce
from compress_engine.playground.store import Store

ROOT = Path(__file__).resolve().parents[1]
DROP = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner", "--"]

CHILD = """
import json, sys
import compress_engine as ce
from compress_engine.playground.store import Store, StoreError
out = {}
try:
    s = Store(sys.argv[1])
    runs = s.list()
    out.update(read_only=s.read_only, names=[r["name"] for r in runs], artifact=s.get(runs[0]["id"])["artifact"].hex())
except StoreError as e:
    out["open_error"] = str(e)
else:
    m = {"params": 10, "nonzero_params": 5, "artifact_bytes": 3, "ratio": 1.0, "accuracy": 0.5}
    for what, write in [("save", lambda: s.save("lenet-5", ce.Recipe(sparsity=0.5), m, b"abc")),
                        ("rename", lambda: s.rename(runs[0]["id"], "other")), ("delete", lambda: s.delete([1]))]:
        try:
            write()
            out[what] = "written"
        except StoreError as e:
            out[what] = str(e)
print(json.dumps(out))
"""


def unprivileged(path):
    cmd = [sys.executable, "-c", CHILD, str(path)]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None or subprocess.run(DROP + ["true"], capture_output=True).returncode:
            pytest.skip("running as root without setpriv: cannot make a file unwritable")
        cmd = DROP + cmd
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def kept_store(folder):
    path = folder / "runs.sqlite"
    store = Store(path)
    run = store.save("lenet-5", ce.Recipe(sparsity=0.5), {"params": 10, "nonzero_params": 5, "artifact_bytes": 3,
                                                          "ratio": 1.0, "accuracy": 0.5}, b"xyz")
    store.rename(run, "demo")
    return path


def read_only(p):
    p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def check(out, what, fix):
    assert out.get("open_error") is None, out
    assert out["read_only"] is True and out["names"] == ["demo"] and out["artifact"] == b"xyz".hex()
    for op in ("save", "rename", "delete"):
        text = out[op]
        assert "cannot be written" in text and what in text and fix in text, (op, text)
        assert "Move that file away" not in text and "not a usable run store" not in text


def test_a_read_only_folder_is_read_and_a_save_names_the_folder(tmp_path):
    path = kept_store(tmp_path / "store")
    before = path.read_bytes()
    read_only(path)
    read_only(path.parent)
    try:
        out = unprivileged(path)
    finally:
        path.parent.chmod(0o755)
    check(out, f"its folder {path.parent} is not writable", "make that folder writable or give the run store "
                                                            "another file path")
    assert path.read_bytes() == before


def test_a_read_only_file_in_a_writable_folder_is_read_and_a_save_names_the_file(tmp_path):
    path = kept_store(tmp_path / "store")
    read_only(path)
    check(unprivileged(path), "the file is not writable", "make it writable or give the run store another file path")


def test_no_store_in_a_read_only_folder_says_the_folder_is_not_writable(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    read_only(folder)
    try:
        out = unprivileged(folder / "runs.sqlite")
    finally:
        folder.chmod(0o755)
    assert "cannot be written" in out["open_error"] and str(folder) in out["open_error"], out
    assert "Move that file away" not in out["open_error"]
