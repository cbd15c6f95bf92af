"""Ctrl-C printed only "error: interrupted", so a command-line user could not tell whether `run --out` had left an
artifact, whether `deploy` had written one file of two, or whether `sweep --store` had kept its finished points.
The line now says what was written (checked here against the files themselves), and the exit status stays 130."""

import importlib
import json
import os

import numpy as np
import pytest

import compress_engine as ce
from compress_engine.core.encode import MAGIC
from compress_engine.playground import cli, sweeps

from small_nets import interrupt_point

NET = "import torch\nimport torch.nn as nn\ndef make():\n    torch.manual_seed(0)\n    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 3))\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_int")
    rng = np.random.default_rng(0)
    np.savez(d / "d.npz", train_x=rng.standard_normal((30, 12)).astype(np.float32), train_y=np.arange(30) % 3,
             test_x=rng.standard_normal((9, 12)).astype(np.float32), test_y=np.arange(9) % 3)
    (d / "net.py").write_text(NET)
    return d


def args(files, *more):
    return ["--model", f"{files / 'net.py'}:make", "--data", f"npz:{files / 'd.npz'}", *more]


def call(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def interrupt(*a, **k):
    raise KeyboardInterrupt


def test_run_interrupted_says_no_artifact_was_written(files, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ce, "compress", interrupt)
    out = tmp_path / "a.cpg"
    code, _, err = call(capsys, "run", *args(files, "--sparsity", "0.5", "--out", str(out)))
    assert code == 130 and not out.exists()
    assert err.strip() == f"error: interrupted; nothing was written to {str(out)!r}"
    out.write_bytes(MAGIC + b"earlier")  # an earlier run's artifact: left as it was, and said so
    code, _, err = call(capsys, "run", *args(files, "--sparsity", "0.5", "--out", str(out)))
    assert code == 130 and out.read_bytes() == MAGIC + b"earlier"
    assert err.strip() == f"error: interrupted; nothing was written to {str(out)!r} (the earlier file there is unchanged)"
    code, _, err = call(capsys, "run", *args(files, "--sparsity", "0.5"))
    assert code == 130 and err.strip() == "error: interrupted; no artifact was written (give --out FILE to keep one)"


def test_run_interrupted_after_writing_says_the_artifact_is_there(files, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "warn_collapse", interrupt)  # Ctrl-C just after --out was written
    out = tmp_path / "a.cpg"
    code, _, err = call(capsys, "run", *args(files, "--sparsity", "0.5", "--finetune-epochs", "0", "--out", str(out)))
    assert code == 130 and out.read_bytes()[:len(MAGIC)] == MAGIC
    assert err.splitlines()[-1] == f"error: interrupted; the artifact was written to {str(out)!r}"


def test_deploy_interrupted_says_which_files_it_wrote(files, tmp_path, capsys, monkeypatch):
    art = tmp_path / "m.cpg"
    code, _, err = call(capsys, "run", *args(files, "--sparsity", "0.5", "--bits", "8", "--finetune-epochs", "0",
                                             "--out", str(art)))
    assert code == 0, err
    weights, int8 = tmp_path / "m.safetensors", tmp_path / "m-int8.safetensors"
    with monkeypatch.context() as m:
        m.setattr(importlib.import_module("compress_engine.core.deploy"), "deploy_files", interrupt)
        code, _, err = call(capsys, "deploy", str(art))
    assert code == 130, err
    assert not weights.exists() and not int8.exists()
    assert err.strip() == "error: interrupted; nothing was written"
    real = cli.write_out

    def second_interrupted(path, data):
        if cli.WRITTEN:
            raise KeyboardInterrupt
        real(path, data)
    monkeypatch.setattr(cli, "write_out", second_interrupted)
    code, _, err = call(capsys, "deploy", str(art))
    assert code == 130 and weights.exists() and not int8.exists()
    assert err.strip() == f"error: interrupted; only {str(weights)!r} was written: run deploy again with --force to write them all"


def test_sweep_with_store_says_its_finished_points_are_kept(files, tmp_path, capsys, monkeypatch):
    store = tmp_path / "runs.db"
    argv = ["sweep", *args(files, "--finetune-epochs", "0", "--field", "sparsity", "--values", "0.5,0.8,0.9",
                           "--store", str(store))]
    real = sweeps.run_point
    interrupt_point(monkeypatch, 3)
    code, out, err = call(capsys, *argv)
    assert code == 130 and len(json.loads(out)) == 2
    assert err.splitlines()[-1] == (f"interrupted: 2 of 3 points finished; only their rows are printed; --store keeps "
                                    f"them in {str(store)!r} and a rerun skips them")
    # what the line says is true: a rerun runs only the third point
    calls = []
    monkeypatch.setattr(sweeps, "run_point", lambda *a: (calls.append(a), real(*a))[1])
    code, out, err = call(capsys, *argv)
    assert code == 0, err
    assert len(json.loads(out)) == 3 and len(calls) == 1


def test_train_interrupted_names_what_it_wrote_in_out_dir(files, tmp_path, capsys, monkeypatch):
    from compress_engine.playground import zoo
    out_dir = tmp_path / "ckpt"
    out_dir.mkdir()
    (out_dir / "old.txt").write_text("before")  # there before the command: not its writing
    os.utime(out_dir / "old.txt", (0, 0))
    monkeypatch.setattr(zoo, "train_sample", interrupt)  # Ctrl-C while training
    argv = ["train", "lenet-300-100", "--data", f"npz:{files / 'd.npz'}", "--out-dir", str(out_dir)]
    code, _, err = call(capsys, *argv)
    assert code == 130 and err.strip() == f"error: interrupted; nothing was written to {str(out_dir)!r}"

    def checkpoint_then_interrupted(name, data, progress=None, out_dir=None):
        (out_dir / f"{name}.safetensors").write_bytes(b"weights")
        raise KeyboardInterrupt
    monkeypatch.setattr(zoo, "train_sample", checkpoint_then_interrupted)
    code, _, err = call(capsys, *argv)
    assert code == 130
    assert err.strip() == f"error: interrupted; written before it: {str(out_dir / 'lenet-300-100.safetensors')!r}"


@pytest.mark.parametrize("cmd", ["eval", "inspect"])
def test_eval_and_inspect_interrupted_say_they_wrote_nothing(files, tmp_path, capsys, monkeypatch, cmd):
    """They said a bare "error: interrupted", which left a user wondering what was half done."""
    before = sorted(p.name for p in files.iterdir())
    monkeypatch.setattr(cli, "run", interrupt)  # Ctrl-C while the command works
    argv = [cmd, str(tmp_path / "m.cpg")] if cmd == "eval" else [cmd, *args(files)]
    code, out, err = call(capsys, *argv)
    assert code == 130 and out == ""
    assert err.strip() == f"error: interrupted; {cmd} only reads its files: nothing was written"
    assert sorted(p.name for p in files.iterdir()) == before and not any(tmp_path.iterdir())


def test_app_interrupted_says_what_the_dashboard_keeps(capsys, monkeypatch):
    monkeypatch.setattr(cli, "start_app", interrupt)  # Ctrl-C before Streamlit's own handler is in place
    code, out, err = call(capsys, "app")
    assert code == 130
    assert err.strip() == ("error: interrupted; the dashboard stopped: its saved runs and finished trained results "
                           "stay on disk")
