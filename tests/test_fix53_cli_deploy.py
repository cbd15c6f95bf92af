"""`compression-playground deploy ARTIFACT`: the deployment files the Export page offers, from the command line.

A command-line user had no way to get them but Python (`ce.deploy_files`). The files must be exactly the engine's
bytes, under the Export page's names; an existing file of those names (the user's own mine.safetensors beside
mine.cpg) is refused unless --force; a bad artifact exits 2 and writes nothing."""

import json
import os
import warnings

import pytest
import torch
from torch import nn

import compress_engine as ce
from compress_engine.playground import cli


@pytest.fixture(scope="module")
def artifacts():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    x, y = torch.randn(40, 6), torch.arange(40) % 3
    data = ce.Dataset.from_tensors(x[:30], y[:30], x[30:], y[30:])
    with warnings.catch_warnings():  # tiny random data: its collapse warning is beside the point
        warnings.simplefilter("ignore")
        return {"q": ce.compress(model, ce.Recipe(sparsity=0.5, bits=4), data).artifact,
                "dense": ce.compress(model, ce.Recipe(), data).artifact}


def test_deploy_writes_the_engines_files(tmp_path, artifacts, capsys, monkeypatch):
    art = tmp_path / "mine.cpg"
    art.write_bytes(artifacts["q"])
    monkeypatch.chdir(tmp_path)  # a relative artifact path: the files go beside it
    assert cli.main(["deploy", "mine.cpg"]) == 0
    out = json.loads(capsys.readouterr().out)
    weights, int8, why_not = ce.deploy_files(artifacts["q"])
    assert why_not is None
    assert (tmp_path / "mine.safetensors").read_bytes() == weights
    assert (tmp_path / "mine-int8.safetensors").read_bytes() == int8
    assert out["weights_bytes"] == len(weights) and out["int8_bytes"] == len(int8)
    # again: both are there now, so it is refused, and --force replaces them
    assert cli.main(["deploy", "mine.cpg"]) == 2
    assert "mine.safetensors" in capsys.readouterr().err
    assert cli.main(["deploy", "mine.cpg", "--force"]) == 0


def test_deploy_refuses_to_replace_the_users_checkpoint(tmp_path, artifacts, capsys):
    (tmp_path / "mine.cpg").write_bytes(artifacts["q"])
    (tmp_path / "mine.safetensors").write_bytes(b"my own checkpoint")
    assert cli.main(["deploy", str(tmp_path / "mine.cpg")]) == 2
    err = capsys.readouterr().err
    assert "mine.safetensors" in err and "--out-dir" in err and "--force" in err
    assert (tmp_path / "mine.safetensors").read_bytes() == b"my own checkpoint"
    assert not (tmp_path / "mine-int8.safetensors").exists()
    # --out-dir, made if missing, a path with spaces
    out_dir = tmp_path / "deploy files" / "v1"
    assert cli.main(["deploy", str(tmp_path / "mine.cpg"), "--out-dir", str(out_dir)]) == 0
    assert sorted(os.listdir(out_dir)) == ["mine-int8.safetensors", "mine.safetensors"]


def test_a_refusal_in_a_deep_folder_names_the_files_whole(tmp_path, artifacts, capsys):
    """The refusal cut each path to 80 characters: in a deep folder (a pytest worker's temporary one) it read
    'deploy would replace '/tmp/.../mine.sa…'', the file name it was about lost."""
    folder = tmp_path / ("a-long-project-folder-name-" * 4)
    folder.mkdir()
    (folder / "mine.cpg").write_bytes(artifacts["q"])
    (folder / "mine.safetensors").write_bytes(b"my own checkpoint")
    assert len(str(folder / "mine.safetensors")) > 100
    assert cli.main(["deploy", str(folder / "mine.cpg")]) == 2
    assert repr(str(folder / "mine.safetensors")) in capsys.readouterr().err


def test_deploy_without_int8_says_why_and_a_bad_artifact_writes_nothing(tmp_path, artifacts, capsys):
    (tmp_path / "dense.cpg").write_bytes(artifacts["dense"])
    assert cli.main(["deploy", str(tmp_path / "dense.cpg")]) == 0
    cap = capsys.readouterr()
    assert json.loads(cap.out)["int8"] is None and "no int8 file" in cap.err
    assert sorted(os.listdir(tmp_path)) == ["dense.cpg", "dense.safetensors"]
    (tmp_path / "w.pt").write_bytes(b"PK\x03\x04 not an artifact")
    assert cli.main(["deploy", str(tmp_path / "w.pt"), "--out-dir", str(tmp_path / "o")]) == 2
    assert "not a usable artifact" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() and not (tmp_path / "w.safetensors").exists()
