"""`run --out` must not replace a file that is not an artifact, and writes the artifact whole or not at all.

Found by a command-line user: `run --model mynet.py:make_model ... --out mynet.py` (a slip of the shell's completion)
replaced their model's source with artifact bytes, without a word; and the artifact was written with write_bytes, so a
Ctrl-C or a full disk mid-write left half an artifact where the earlier one had been."""

import os

import pytest

from compress_engine.core.encode import MAGIC
from compress_engine.core.errors import RecipeError
from compress_engine.playground import cli


def test_out_over_a_non_artifact_is_refused_before_any_work(tmp_path, capsys):
    src = tmp_path / "mynet.py"
    src.write_text("import torch.nn as nn\n")
    # a missing data folder: had --out been accepted, loading the data would fail (another message)
    status = cli.main(["run", "--model", "lenet-300-100", "--data", f"idx:{tmp_path / 'nowhere'}",
                       "--out", str(src)])
    err = capsys.readouterr().err
    assert status == 2
    assert "mynet.py" in err and "not an artifact" in err and "choose a new path" in err
    assert src.read_text() == "import torch.nn as nn\n"


def test_out_over_an_artifact_or_a_new_path_is_allowed(tmp_path):
    old = tmp_path / "a.cpg"
    old.write_bytes(MAGIC + b"\x03rest")
    cli.check_out(old)                      # a rerun replaces its earlier artifact
    cli.check_out(tmp_path / "new.cpg")     # a new file
    weights = tmp_path / "mine.safetensors"
    weights.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    with pytest.raises(RecipeError, match="not an artifact"):
        cli.check_out(weights)


def test_write_out_interrupted_keeps_the_earlier_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    out = tmp_path / "a.cpg"
    out.write_bytes(b"earlier artifact")

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cli.write_out(out, MAGIC + b"x" * 1000)
    assert out.read_bytes() == b"earlier artifact"
    assert sorted(os.listdir(tmp_path)) == ["a.cpg"]
    monkeypatch.undo()
    cli.write_out(out, MAGIC + b"x" * 1000)
    assert out.read_bytes() == MAGIC + b"x" * 1000
    assert sorted(os.listdir(tmp_path)) == ["a.cpg"]
