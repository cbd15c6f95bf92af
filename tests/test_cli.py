"""Command line: real runs print JSON; every bad flag, name or file exits with status 2 and one line on
stderr naming the flag, the value and what is allowed, never a traceback."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from compress_engine.playground.cli import MAX_SWEEP_VALUES, main

from small_nets import interrupt_point


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_run_prints_metrics(capsys, fmnist, tmp_path):
    art = tmp_path / "a.cpg"
    code, out, _ = run(capsys, "run", "--model", "lenet-300-100", "--sparsity", "0.9", "--clusters", "16",
                       "--huffman", "true", "--json", "--out", str(art))
    assert code == 0
    res = json.loads(out)
    assert res["recipe"]["clusters"] == 16 and res["recipe"]["huffman"] is True
    assert res["metrics"]["artifact_bytes"] == art.stat().st_size
    code, out, _ = run(capsys, "eval", str(art))
    assert code == 0 and json.loads(out)["accuracy"] == pytest.approx(res["metrics"]["accuracy"])


def test_run_on_a_sample_model_takes_the_dense_answers_from_its_kept_logits(capsys, fmnist, monkeypatch):
    """resnet-8 ships its logits on Fashion-MNIST: `run` reads the dense model's answers from them rather than
    evaluating the dense model (5-7 s); the metrics against the dense model are what that evaluation gives."""
    import compress_engine as ce
    from compress_engine.core import pipeline
    monkeypatch.setattr(pipeline, "reference", lambda *a, **k: pytest.fail("evaluated the dense model again"))
    code, out, _ = run(capsys, "run", "--model", "resnet-8", "--sparsity", "0.3", "--json")
    assert code == 0
    m = json.loads(out)["metrics"]
    assert m["dense_accuracy"] == pytest.approx(ce.model_card("resnet-8")["test_accuracy"], abs=1e-6)
    assert 0.9 < m["agreement"] < 1 and m["accuracy"] > 0.9


def test_scans_ships_the_sensitivity_pages_scans_and_drops_older_ones(capsys, tiny_idx, tmp_path, monkeypatch):
    """`scans NAME` writes the page's scans beside the model (here: a folder of the test's, one scan on the tiny
    slice), removes scans of earlier weights, and the engine then reads them from there."""
    import compress_engine as ce
    from compress_engine.playground import zoo
    folder = tmp_path / "scans" / "lenet-300-100"
    monkeypatch.setattr(zoo, "scan_dir", lambda name: tmp_path / "scans" / name)
    monkeypatch.setattr(zoo, "PAGE_SCANS", ({},))
    folder.mkdir(parents=True)
    (folder / "0123456789abcdef0123456789abcdef.json").write_text("{}")  # a scan of older weights
    code, out, _ = run(capsys, "scans", "lenet-300-100", "--data", tiny_idx)
    assert code == 0
    (path,) = json.loads(out)["lenet-300-100"]
    assert sorted(folder.iterdir()) == [Path(path)] and oct(Path(path).stat().st_mode & 0o777) == "0o644"
    hit = ce.sensitivity.cached(ce.load_model("lenet-300-100"), ce.load_dataset(tiny_idx), cache_dir=tmp_path / "none",
                                shipped=[folder])
    assert hit is not None and Path(path).stem == hit["key"]
    code, _, err = run(capsys, "scans", "no-such-model")
    assert code == 2 and "no-such-model" in err


def test_sweep_lists_rows(capsys, fmnist):
    code, out, _ = run(capsys, "sweep", "--field", "bits", "--values", "8,4,2", "--sparsity", "0.5")
    rows = json.loads(out)
    assert code == 0 and [r["bits"] for r in rows] == [8, 4, 2]
    assert rows[0]["artifact_bytes"] > rows[2]["artifact_bytes"]


def test_optional_fields_take_none(capsys, fmnist):
    code, out, _ = run(capsys, "run", "--bits", "none", "--clusters", "None", "--sparsity", "0.5")
    assert code == 0 and json.loads(out)["recipe"]["bits"] is None


# --- hostile input ------------------------------------------------------------------------------

def _files(tmp_path):
    """Files the eval cases point at: {name: path}."""
    (tmp_path / "folder.cpg").mkdir()
    (tmp_path / "text.cpg").write_text('{"sparsity": 0.9}')
    (tmp_path / "empty.cpg").write_bytes(b"")
    (tmp_path / "random.cpg").write_bytes(os.urandom(4096))
    (tmp_path / "cpg-magic-only.cpg").write_bytes(b"CPG1" + b"\0" * 60)
    with open(tmp_path / "huge.cpg", "wb") as f:  # sparse: 257 MB of size, no disk used
        f.truncate(257 << 20)
    (tmp_path / "loop.cpg").symlink_to(tmp_path / "loop.cpg")
    os.mkfifo(tmp_path / "pipe.cpg")
    return tmp_path


values = lambda n: ",".join(["0.5"] * n)  # noqa: E731

BAD = {  # what is wrong -> (argv, words stderr must contain); {tmp} is a folder of odd files (_files)
    # argument syntax (argparse, reported as one line)
    "no command": ([], "required: cmd"),
    "unknown command": (["bogus"], "invalid choice: 'bogus'"),
    "unknown flag": (["run", "--nope", "1"], "unrecognized arguments: --nope"),
    "flag without value": (["run", "--sparsity"], "argument --sparsity: expected one argument"),
    "typo in flag": (["run", "--sparsty", "0.5"], "unrecognized arguments: --sparsty"),
    # recipe flags
    "sparsity 1.5": (["run", "--sparsity", "1.5"], "--sparsity='1.5': must be between 0.0 and 0.999"),
    "sparsity -0.1": (["run", "--sparsity=-0.1"], "--sparsity='-0.1': must be between"),
    "sparsity nan": (["run", "--sparsity", "nan"], "--sparsity='nan': must be a finite number"),
    "sparsity inf": (["run", "--sparsity", "inf"], "--sparsity='inf': must be a finite number"),
    "sparsity -inf": (["run", "--sparsity=-inf"], "--sparsity='-inf': must be a finite number"),
    "sparsity 1e999": (["run", "--sparsity", "1e999"], "must be a finite number"),
    "sparsity empty": (["run", "--sparsity", ""], "--sparsity='': must be a number"),
    "sparsity word": (["run", "--sparsity", "lots"], "--sparsity='lots': must be a number"),
    "sparsity none": (["run", "--sparsity", "none"], "--sparsity='none': must be a number"),
    "bits 9": (["run", "--bits", "9"], "--bits='9': must be one of 1-8 or 16"),
    "bits 4.5": (["run", "--bits", "4.5"], "--bits='4.5': must be a whole number"),
    "bits 0": (["run", "--bits", "0"], "must be one of 1-8 or 16"),
    "clusters abc": (["run", "--clusters", "abc"], "--clusters='abc': must be a number or None"),
    "clusters 1": (["run", "--clusters", "1"], "--clusters='1': must be between 2 and 256"),
    "clusters 10^6": (["run", "--clusters", "1000000"], "must be between 2 and 256"),
    "clusters and bits": (["run", "--clusters", "16", "--bits", "4"], "choose weight clustering or uniform"),
    "huffman maybe": (["run", "--huffman", "maybe"], "--huffman='maybe': must be true or false"),
    "huffman 1": (["run", "--huffman", "1"], "must be true or false"),
    "prune scope": (["run", "--prune-scope", "GLOBAL"], "--prune-scope='GLOBAL': must be one of layer, global"),
    "schedule": (["run", "--schedule", "slow"], "must be one of oneshot, gradual"),
    "gradual without epochs": (["run", "--sparsity", "0.5", "--schedule", "gradual"], "needs finetune_epochs >= 1"),
    "lr 0": (["run", "--lr", "0"], "--lr='0': must be between 1e-06 and 1.0"),
    "lr 1e308": (["run", "--lr", "1e308"], "must be between 1e-06 and 1.0"),
    "temperature 0.5": (["run", "--temperature", "0.5"], "--temperature='0.5': must be between 1.0 and 20.0"),
    "finetune 51": (["run", "--finetune-epochs", "51"], "must be between 0 and 50"),
    "seed -1": (["run", "--seed=-1"], "--seed='-1': must be between 0 and 2147483647"),
    "seed 2^31": (["run", "--seed", str(2**31)], "must be between 0 and 2147483647"),
    "seed 5000 digits": (["run", "--seed", "9" * 5000], "--seed: the value is 5,000 characters long"),
    "student width 5": (["run", "--temperature", "4", "--student-width", "5"], "must be between 10 and 2000"),
    # models and datasets
    "model unknown": (["run", "--model", "nope"], "--model 'nope': unknown model; choose one of lenet-300-100"),
    "model empty": (["run", "--model", ""], "--model '': unknown model"),
    "model 10k chars": (["run", "--model", "m" * 10_000], "unknown model"),
    "model path": (["run", "--model", "../sample_models/lenet-5"], "unknown model"),
    "data missing folder": (["run", "--data", "idx:/nonexistent"], "does not exist"),
    "data empty idx": (["run", "--data", "idx:"], "'idx:' needs a folder"),
    "data missing image folder": (["run", "--data", "images:/nonexistent"], "dataset folder /nonexistent does not exist; give 'images:' a folder of images"),
    "data NUL": (["run", "--data", "idx:/tmp/a\0b"], "contains a NUL byte"),
    "data unknown": (["run", "--data", "mnist"], "unknown dataset 'mnist'"),
    "data empty folder": (["run", "--data", "idx:{tmp}/folder.cpg"], "lacks train-images-idx3-ubyte(.gz)"),
    # --out
    "out is a folder": (["run", "--out", "{tmp}"], "is a folder; give a file path"),
    "out in missing folder": (["run", "--out", "{tmp}/no/such/a.cpg"], "does not exist; create it"),
    "out NUL": (["run", "--out", "a\0b.cpg"], "--out 'a\\x00b.cpg' contains a NUL byte"),
    # sweep
    "sweep no field": (["sweep", "--values", "1"], "required: --field"),
    "sweep no values": (["sweep", "--field", "sparsity"], "required: --values"),
    "sweep unknown field": (["sweep", "--field", "colour", "--values", "1"], "--field 'colour' is not a recipe field"),
    "sweep values empty": (["sweep", "--field", "sparsity", "--values", ""], "--values is empty"),
    "sweep values commas": (["sweep", "--field", "sparsity", "--values", ",,,"], "--values is empty"),
    "sweep empty item": (["sweep", "--field", "sparsity", "--values", "0.1,,0.5"], "--values item 2 of 3 is empty"),
    "sweep NaN": (["sweep", "--field", "sparsity", "--values", "0.1,nan"],
                  "--values item 2 of 2, sparsity='nan': must be a finite number"),
    "sweep inf": (["sweep", "--field", "sparsity", "--values", "inf"], "sparsity='inf': must be a finite number"),
    "sweep out of range": (["sweep", "--field", "bits", "--values", "4,99"], "item 2 of 2, bits='99': must be one of"),
    "sweep wrong type": (["sweep", "--field", "huffman", "--values", "true,0.5"],
                         "huffman='0.5': must be true or false"),
    "sweep clashes with flags": (["sweep", "--field", "bits", "--values", "4", "--clusters", "16"],
                                 "item 1 of 1, bits='4': clusters=16 and bits=4"),
    "sweep 101 values": (["sweep", "--field", "sparsity", "--values", values(MAX_SWEEP_VALUES + 1)],
                         "--values has 101 values; a sweep runs at most 100"),
    "sweep 10^5 values": (["sweep", "--field", "sparsity", "--values", values(100_000)], "characters long"),
    "sweep bad other flag": (["sweep", "--field", "bits", "--values", "4", "--sparsity", "2"], "--sparsity='2'"),
    # train
    "train no name": (["train"], "required: name"),
    "train unknown name": (["train", "nope"], "invalid choice: 'nope' (choose from 'lenet-300-100'"),
    "train path as name": (["train", "../../etc/passwd"], "invalid choice"),
    "train bad data": (["train", "lenet-5", "--data", "idx:/nonexistent"], "does not exist"),
    "train out-dir a file": (["train", "lenet-5", "--out-dir", "{tmp}/text.cpg"], "is a file; give a folder"),
    "train out-dir unmakeable": (["train", "lenet-5", "--out-dir", "{tmp}/text.cpg/sub"], "cannot be made"),
    # eval
    "eval no path": (["eval"], "required: artifact"),
    "eval missing file": (["eval", "/nonexistent.cpg"], "artifact file '/nonexistent.cpg' does not exist"),
    "eval folder": (["eval", "{tmp}/folder.cpg"], "is a folder, not an artifact file"),
    "eval fifo": (["eval", "{tmp}/pipe.cpg"], "is not a regular file"),
    "eval device": (["eval", "/dev/zero"], "is not a regular file"),
    "eval symlink loop": (["eval", "{tmp}/loop.cpg"], "cannot read artifact file"),
    "eval unreadable path": (["eval", "{tmp}/text.cpg/inside"], "cannot read artifact file"),
    "eval NUL": (["eval", "a\0b.cpg"], "contains a NUL byte"),
    "eval 257 MiB": (["eval", "{tmp}/huge.cpg"], "is 269.5 MB; artifacts are at most 268.4 MB"),  # 1 MB = 10⁶ bytes
    "eval empty file": (["eval", "{tmp}/empty.cpg"], "is not a usable artifact"),
    "eval JSON text": (["eval", "{tmp}/text.cpg"], "is not a usable artifact"),
    "eval random bytes": (["eval", "{tmp}/random.cpg"], "is not a usable artifact"),
    "eval magic only": (["eval", "{tmp}/cpg-magic-only.cpg"], "is not a usable artifact"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_exits_2_with_one_line(capsys, tmp_path, fmnist, case):
    argv, words = BAD[case]
    tmp = _files(tmp_path)
    code, out, err = run(capsys, *[a.replace("{tmp}", str(tmp)) for a in argv])
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert words.replace("{tmp}", str(tmp)) in err, err
    assert len(err) < 1000


def test_a_reader_that_stops_early_and_a_warning_give_one_line_each(tiny_idx):
    """`... | head` closes the pipe before the JSON is written: no BrokenPipeError traceback. An engine warning (a
    student bigger than its teacher) prints as one 'warning:' line, as errors do, not Python's file:line form."""
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, "-m", "compress_engine", "run", "--model", "lenet-300-100",
                             "--temperature", "2", "--distill-epochs", "1", "--data", tiny_idx],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    proc.stdout.close()  # the reader is gone before anything is written
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == 1
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    warned = [line for line in err.splitlines() if not line.startswith("step ")]  # (run's progress lines aside)
    assert warned == ["warning: the default student, an MLP of recipe.student_width=800, has 1,276,810 parameters, no "
                      "fewer than the teacher's 266,610: distilling into it makes the model bigger; give a smaller "
                      "student (student=, or student_width; --student-width on the command line)"], err


def test_train_refuses_to_replace_an_installed_packages_sample_model(capsys, monkeypatch):
    """A checkout rebuilds sample_models/ in place; an installed package's copy is every user's, so train wants
    --out-dir there, and says how to use what it writes."""
    monkeypatch.setattr("compress_engine.playground.cards.INSTALLED", True)
    monkeypatch.setattr("compress_engine.playground.zoo.train_sample", lambda *a, **k: pytest.fail("it trained"))
    code, out, err = run(capsys, "train", "lenet-5")
    assert code == 2 and out == ""
    assert "train would replace lenet-5, shipped inside the installed package" in err
    assert "--out-dir DIR" in err and "--model lenet-5 --weights DIR/lenet-5.safetensors" in err


def test_scans_refuses_to_replace_an_installed_packages_scans(capsys, monkeypatch):
    """A deployment review ran `scans lenet-300-100 --data idx:...` in a pip-installed (non-editable) package: it
    deleted the shipped scan from site-packages and wrote its own there, for every user of that install."""
    monkeypatch.setattr("compress_engine.playground.cards.INSTALLED", True)
    monkeypatch.setattr("compress_engine.playground.zoo.ship_scans", lambda *a, **k: pytest.fail("it scanned"))
    code, out, err = run(capsys, "scans", "lenet-300-100")
    assert code == 2 and out == ""
    assert "scans would replace the sensitivity scans shipped inside the installed package" in err


# --- the user's own model, weights and data ------------------------------------------------------

NETS = '''
import torch
from torch import nn


def make_model():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU(), nn.Linear(16, 10))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = make_model()

    def forward(self, x):
        return self.body(x)


def make_list():
    return [1, 2]


def broken():
    raise RuntimeError("no GPU here")


NOT_CALLABLE = 3
'''


def always(cls, model):
    """The model's weights with its output layer answering `cls` whatever the input: a visible fingerprint."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    last = [k for k in state if k.endswith(".weight")][-1]
    state[last].zero_()
    state[last[:-len("weight")] + "bias"].zero_()[cls] = 5.0
    return state


@pytest.fixture
def user(tmp_path):
    """A folder with the user's model file, weight files (good and bad) and an IDX dataset of 28x28 noise."""
    import importlib.util

    from safetensors.torch import save_file

    from conftest import write_idx
    (tmp_path / "nets.py").write_text(NETS)
    (tmp_path / "crash.py").write_text("raise ImportError('needs foo')\n")
    (tmp_path / "exits.py").write_text("raise SystemExit(3)\n")
    (tmp_path / "pkg.py").mkdir()
    (tmp_path / "dir.pt").mkdir()
    spec = importlib.util.spec_from_file_location("_test_nets", tmp_path / "nets.py")
    nets = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(nets)
    torch.manual_seed(0)
    model = nets.make_model()
    save_file(always(3, model), tmp_path / "mine.safetensors")
    torch.save({"epoch": 7, "state_dict": {"body." + k: v for k, v in always(5, model).items()}},
               tmp_path / "net.pt")
    wrong = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10), nn.Linear(10, 10))
    save_file(wrong.state_dict(), tmp_path / "wrong.safetensors")
    torch.save(model, tmp_path / "code.pt")  # a pickled module: code, refused by weights_only=True
    torch.save([torch.zeros(3)], tmp_path / "list.pt")
    (tmp_path / "garbage.safetensors").write_bytes(b"not weights " * 20)
    (tmp_path / "garbage.pt").write_bytes(b"not weights " * 20)
    torch.save({"state_dict": {"head.0.weight": torch.zeros(16, 784)}}, tmp_path / "half.pt")
    torch.save(model.state_dict(), tmp_path / "bare.pt", _use_new_zipfile_serialization=False)  # pre-1.6 format
    (tmp_path / "empty.pt").write_bytes(b"")
    data = tmp_path / "idx"
    data.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 200), ("t10k", 100)):
        write_idx(data / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(data / f"{split}-labels-idx1-ubyte", np.arange(n, dtype=np.uint8) % 10)
    return tmp_path


def test_user_model_weights_and_data_run_and_eval(capsys, user):
    """run/eval with the user's own file, weights and IDX folder: the weights really load (the net always answers
    3, so accuracy is the share of 3s: 10 %), and the artifact decodes into the user's module."""
    data = f"idx:{user / 'idx'}"
    code, out, err = run(capsys, "run", "--model", f"{user}/nets.py:make_model", "--weights",
                         str(user / "mine.safetensors"), "--data", data, "--sparsity", "0.5",
                         "--out", str(user / "mine.cpg"))
    assert code == 0, err
    metrics = json.loads(out)["metrics"]
    assert metrics["accuracy"] == pytest.approx(0.1)
    assert metrics["artifact_bytes"] == (user / "mine.cpg").stat().st_size
    code, out, err = run(capsys, "eval", str(user / "mine.cpg"), "--model", f"{user}/nets.py:make_model",
                         "--data", data)
    assert code == 0, err
    assert json.loads(out)["accuracy"] == pytest.approx(0.1)
    code, out, err = run(capsys, "eval", str(user / "mine.cpg"), "--data", data)  # no code: cannot rebuild it
    assert code == 2 and "--model path/to/file.py:callable" in err and err.count("\n") == 1, err
    code, out, err = run(capsys, "eval", str(user / "mine.cpg"), "--model", "lenet-300-100", "--data", data)
    assert code == 2 and "does not fit the model from --model 'lenet-300-100'" in err, err


def test_eval_with_model_of_a_folded_artifact(capsys, user):
    """`run` folds ResNet-8's BatchNorms into its convs; `eval ... --model resnet-8` checked the artifact against
    the unfolded module and refused it: "tensors 45 missing (..., bn1.running_mean, ...)". It loads as decode_model
    does now, and scores what run reported."""
    data = f"idx:{user / 'idx'}"
    code, out, err = run(capsys, "run", "--model", "resnet-8", "--data", data, "--sparsity", "0.5",
                         "--out", str(user / "r8.cpg"))
    assert code == 0, err
    reported = json.loads(out)["metrics"]["accuracy"]
    code, out, err = run(capsys, "eval", str(user / "r8.cpg"), "--model", "resnet-8", "--data", data)
    assert code == 0, err
    assert json.loads(out)["accuracy"] == reported


def test_eval_decodes_the_artifact_once(capsys, user, monkeypatch):
    """eval decoded every artifact twice: once to check the data fits, again to score it. Counted at the one
    decoder both paths (zoo spec, the user's --model) go through (encode.decode_with_meta, under decode too)."""
    from compress_engine.core import encode
    from compress_engine.playground import cli, zoo
    data = f"idx:{user / 'idx'}"
    code, out, err = run(capsys, "run", "--model", "lenet-300-100", "--data", data, "--sparsity", "0.5",
                         "--out", str(user / "l3.cpg"))
    assert code == 0, err
    reported = json.loads(out)["metrics"]["accuracy"]
    calls = []
    real = encode.decode_with_meta

    def counted(*a, **k):
        calls.append(1)
        return real(*a, **k)
    for where in (encode, zoo, cli):  # decode() and decode_model go through it too
        monkeypatch.setattr(where, "decode_with_meta", counted)
    for extra in ([], ["--model", "lenet-300-100"]):
        calls.clear()
        code, out, err = run(capsys, "eval", str(user / "l3.cpg"), "--data", data, *extra)
        assert code == 0, err
        assert json.loads(out)["accuracy"] == reported
        assert len(calls) == 1, (extra, len(calls))


def test_eval_on_data_the_model_cannot_take_is_one_line(capsys, user):
    """`eval zoo.cpg --data digits` of a 28x28 LeNet-5 printed torch's traceback (exit 1): the artifact's model is
    checked against the data before scoring, as run and sweep do, with or without --model."""
    code, out, err = run(capsys, "run", "--model", "lenet-5", "--data", f"idx:{user / 'idx'}", "--sparsity", "0.5",
                         "--out", str(user / "l5.cpg"))
    assert code == 0, err
    for extra in ([], ["--model", "lenet-5"]):
        code, out, err = run(capsys, "eval", str(user / "l5.cpg"), "--data", "digits", *extra)
        assert code == 2 and out == "" and err.count("\n") == 1, err
        assert err.startswith("error: artifact ") and "cannot be scored on --data 'digits'" in err
        assert "(2, 1, 8, 8)" in err and "give --data the dataset it was compressed on" in err

def test_sweep_shows_each_point_and_ctrl_c_prints_the_finished_rows(capsys, user, monkeypatch):
    """A CLI sweep showed nothing until its end, and Ctrl-C without --store lost every finished point (stdout empty).
    Each point now prints a line on stderr as it finishes; Ctrl-C prints the finished rows, as a full run prints
    them, says on stderr that they are partial, and exits 130."""
    argv = ["sweep", "--model", f"{user}/nets.py:make_model", "--weights", str(user / "mine.safetensors"),
            "--data", f"idx:{user / 'idx'}", "--field", "sparsity", "--values", "0.5,0.8,0.9,0.95"]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    full = json.loads(out)
    lines = err.splitlines()
    assert len(lines) == 4 and lines[0].startswith("point 1/4: sparsity=0.5 accuracy 0.1000, ")
    assert lines[3].startswith("point 4/4: sparsity=0.95 accuracy ") and lines[3].endswith(" s")
    interrupt_point(monkeypatch, 3)
    code, out, err = run(capsys, *argv)
    assert code == 130 and json.loads(out) == full[:2]
    assert err.splitlines()[-1] == "interrupted: 2 of 4 points finished; only their rows are printed"

def test_negative_values_are_read_and_floats_print_as_float32_holds_them(capsys, user):
    """'--values -0.1,0.5' gave argparse's 'expected one argument' with no hint; it is read as --values=-0.1,0.5 (and
    refused for its range, naming the item). Accuracies printed with float32's noise (0.8981999754905701): a float
    that is a float32 prints as the shortest decimal of that float32; the rows stay equal as floats32."""
    import struct
    for argv in (["--values", "-0.1,0.5"], ["--values=-0.1,0.5"]):
        code, out, err = run(capsys, "sweep", "--field", "sparsity", *argv)
        assert code == 2 and err == "error: --values item 1 of 2, sparsity='-0.1': must be between 0.0 and 0.999\n"
    from compress_engine.playground.cli import float32_short
    code, out, err = run(capsys, "run", "--model", f"{user}/nets.py:make_model", "--data", f"idx:{user / 'idx'}",
                         "--weights", str(user / "mine.safetensors"), "--sparsity", "0.5")
    assert code == 0, err
    metrics = json.loads(out)["metrics"]
    assert metrics["accuracy"] == 0.1 and metrics["dense_accuracy"] == 0.1  # float32(0.1) is 0.10000000149011612
    noisy = {"a": [0.8981999754905701, 1.3259972489683631, 3, True]}  # a float32, a float64, an int, a bool
    assert float32_short(noisy) == {"a": [0.8982, 1.3259972489683631, 3, True]}
    for x in (0.8981999754905701, 1e-45, 3.3e38, 3.4028234663852886e38, -0.0, 0.1234567):
        f32 = struct.unpack("<f", struct.pack("<f", x))[0]
        assert struct.pack("<f", float32_short(f32)) == struct.pack("<f", f32) and len(repr(float32_short(f32))) < 16

def test_inspect_says_what_run_would_do_before_any_work(capsys, user):
    """inspect: the user's file and weights, checked on the data as run checks them; the JSON names the compressed
    weights, the carried parameters and what structured pruning would keep. Data the model cannot take is refused."""
    data = f"idx:{user / 'idx'}"
    code, out, err = run(capsys, "inspect", "--model", f"{user}/nets.py:make_model", "--weights",
                         str(user / "mine.safetensors"), "--data", data)
    assert code == 0, err
    report = json.loads(out)
    assert report["compressed"] == {"1.weight": [16, 784], "3.weight": [10, 16]} and report["carried_params"] == 26
    assert report["structured"]["prunable"] == {"1": "8 of 16"} and report["int8_layers"] == ["1", "3"]
    code, out, err = run(capsys, "inspect", "--model", f"{user}/nets.py:make_model", "--data", "digits")
    assert code == 2 and "fails on the data's inputs of shape (2, 1, 8, 8)" in err, err


def test_user_model_runs_on_a_folder_of_images(capsys, user):
    """--data images:/folder?size=28: ten class folders of greyscale PNGs of three sizes, loaded at 28x28 (sorted
    names: c0 .. c9), ten test images each; the user's net always answers class 3, so accuracy is exactly 10 %, and
    eval reads the folder again."""
    image = pytest.importorskip("PIL.Image", reason="Pillow reads image folders")
    rng = np.random.default_rng(1)
    for split, n in (("train", 3), ("test", 10)):
        for c in range(10):
            (user / "pngs" / split / f"c{c}").mkdir(parents=True)
            for i in range(n):
                side = (28, 40, 21)[i % 3]
                image.fromarray(rng.integers(0, 256, (side, side + i), dtype=np.uint8), "L").save(
                    user / "pngs" / split / f"c{c}" / f"{i}.png")
    data = f"images:{user / 'pngs'}?size=28"
    code, out, err = run(capsys, "run", "--model", f"{user}/nets.py:make_model", "--weights",
                         str(user / "mine.safetensors"), "--data", data, "--clusters", "8", "--out", str(user / "p.cpg"))
    assert code == 0, err
    assert json.loads(out)["metrics"]["accuracy"] == pytest.approx(0.1)
    code, out, err = run(capsys, "eval", str(user / "p.cpg"), "--model", f"{user}/nets.py:make_model", "--data", data)
    assert code == 0 and json.loads(out)["accuracy"] == pytest.approx(0.1), err


def test_a_structured_pruned_user_model_evals_with_its_own_file(capsys, user):
    """Structured pruning makes the user's layers smaller than make_model() builds them: eval still decodes the
    artifact into the file's model, resized to the artifact's layers (16 -> 8 hidden units)."""
    data = f"idx:{user / 'idx'}"
    code, out, err = run(capsys, "run", "--model", f"{user}/nets.py:make_model", "--weights",
                         str(user / "mine.safetensors"), "--data", data, "--sparsity", "0.5", "--structured", "true",
                         "--out", str(user / "small.cpg"))
    assert code == 0, err
    metrics = json.loads(out)["metrics"]
    assert metrics["params"] == 784 * 8 + 8 + 8 * 10 + 10
    code, out, err = run(capsys, "eval", str(user / "small.cpg"), "--model", f"{user}/nets.py:make_model",
                         "--data", data)
    assert code == 0, err
    res = json.loads(out)
    assert res["params"] == metrics["params"] and res["accuracy"] == pytest.approx(metrics["accuracy"])


def test_user_class_with_torch_checkpoint_sweeps(capsys, user):
    """A class as the callable, a torch.save training checkpoint ({"state_dict": ...}) as the weights."""
    code, out, err = run(capsys, "sweep", "--model", f"{user}/nets.py:Net", "--weights", str(user / "net.pt"),
                         "--data", f"idx:{user / 'idx'}", "--field", "sparsity", "--values", "0,0.5")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["sparsity"] for r in rows] == [0, 0.5] and all(r["accuracy"] == pytest.approx(0.1) for r in rows)


@pytest.mark.parametrize("callable_, file, save", [
    ("make_model", "st_named.pt", "safetensors"),             # read by content, not by its suffix
    ("make_model", "zip_named.safetensors", "torch"),
    ("make_model", "lightning.pt", {"state_dict": "model."}),  # a Lightning checkpoint
    ("make_model", "net.pt", "body."),                         # Net's weights: the wrapper's attribute is dropped
    ("Net", "dp.bin", "module.body."),                         # DataParallel around Net: module. only is dropped
    ("Net", "net.pt", "body.")])                               # Net's own names: nothing is dropped
def test_weights_are_read_as_uploads_are_with_the_prefix_the_model_needs_dropped(user, callable_, file, save):
    """--weights reads a file as the sidebar reads an upload (zoo.read_state): by what its bytes are, a training
    checkpoint's state dict taken out; a prefix before every name is dropped as far as the names then match the
    --model's, whatever they are (not only the zoo's architectures). The loaded model answers 5 whatever the input."""
    from safetensors.torch import save_file

    from compress_engine.playground import cli
    torch.manual_seed(0)
    state = always(5, nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU(), nn.Linear(16, 10)))
    path = user / file
    if save == "safetensors":
        save_file(state, path)
    elif isinstance(save, dict):
        torch.save({"epoch": 3, "state_dict": {save["state_dict"] + k: v for k, v in state.items()}}, path)
    elif save == "torch":
        torch.save(state, path)
    elif file != "net.pt":
        torch.save({save + k: v for k, v in state.items()}, path)
    args = cli.parser().parse_args(["run", "--model", f"{user}/nets.py:{callable_}", "--weights", str(path)])
    model = cli.user_model(args, cli.model_ref(args.model))
    assert model(torch.rand(4, 1, 28, 28)).argmax(1).tolist() == [5] * 4


def test_data_name_goes_to_load_dataset(capsys, user, monkeypatch):
    """--data is any name the engine's load_dataset accepts: the command line passes it through unchanged."""
    import compress_engine as ce
    real = ce.load_dataset(f"idx:{user / 'idx'}")
    seen = []
    monkeypatch.setattr(ce, "load_dataset", lambda name: seen.append(name) or real)
    code, out, err = run(capsys, "run", "--model", f"{user}/nets.py:make_model", "--data", "npz:/some/where.npz")
    assert code == 0 and seen == ["npz:/some/where.npz"], err


USER_BAD = {  # (argv, words stderr must contain); {tmp} is the `user` folder. --data points nowhere: each
    # error must come first, before any data is read
    "model file missing": (["--model", "{tmp}/nope.py:make_model"], "'{tmp}/nope.py' does not exist"),
    "model file is a folder": (["--model", "{tmp}/pkg.py:make"], "is not a regular file"),
    "model without callable": (["--model", "{tmp}/nets.py"], "name the callable in that file after a colon"),
    "model callable typo": (["--model", "{tmp}/nets.py:make_modle"], "nets.py has no 'make_modle'; it defines "
                                                                     "make_model, Net"),
    "model callable not a name": (["--model", "{tmp}/nets.py:1abc"], "'1abc' is not a Python name"),
    "model returns a list": (["--model", "{tmp}/nets.py:make_list"], "make_list() returned 'list', not a torch.nn"),
    "model callable raises": (["--model", "{tmp}/nets.py:broken"], "broken() raised RuntimeError: no GPU here"),
    "model not callable": (["--model", "{tmp}/nets.py:NOT_CALLABLE"], "NOT_CALLABLE is not callable"),
    "model file raises": (["--model", "{tmp}/crash.py:f"], "running crash.py failed: ImportError: needs foo"),
    "model file exits": (["--model", "{tmp}/exits.py:f"], "running exits.py failed: SystemExit: 3"),
    "weights missing": (["--weights", "{tmp}/nope.safetensors"], "--weights '{tmp}/nope.safetensors' does not exist"),
    "weights folder": (["--weights", "{tmp}/dir.pt"], "--weights '{tmp}/dir.pt' is not a regular file"),
    "weights suffix": (["--weights", "{tmp}/nets.py"], "weight files must end in .safetensors, .pt"),
    "weights mismatch": (["--weights", "{tmp}/wrong.safetensors"],
                         # (the --model path is cut at 80 characters, so the tail after it is what is checked)
                         "tensors 2 unexpected (4.bias, 4.weight); 3 of the wrong shape (1.weight is [32, 784], "
                         "expected [16, 784]"),
    "weights missing keys": (["--weights", "{tmp}/half.pt"], "tensors 4 missing (1.weight, 1.bias, 3.weight, … "
                                                              "(1 more)); 1 unexpected (head.0.weight)"),
    "weights code": (["--weights", "{tmp}/code.pt"], "refused: --weights '{tmp}/code.pt' contains code/objects other "
                                                     "than tensors (torch.nn.modules.container.Sequential)"),
    "weights list": (["--weights", "{tmp}/list.pt"], "holds a list, not a state dict"),
    "weights garbage safetensors": (["--weights", "{tmp}/garbage.safetensors"], "garbage.safetensors': its "
                                    "safetensors header claims"),
    "weights garbage pt": (["--weights", "{tmp}/garbage.pt"], "garbage.pt' is not a PyTorch checkpoint (torch.save "
                                                              "writes a zip file; this one starts with b'not '"),
    "weights bare pickle": (["--weights", "{tmp}/bare.pt"], "refused: --weights '{tmp}/bare.pt' is a bare pickle"),
    "weights empty": (["--weights", "{tmp}/empty.pt"], "--weights '{tmp}/empty.pt' is empty (0 bytes)"),
    "weights into a sample model": (["--model", "lenet-300-100", "--weights", "{tmp}/mine.safetensors"],
                                    "does not fit the model from --model 'lenet-300-100'"),
}


@pytest.mark.parametrize("cmd", ["run", "sweep"])
@pytest.mark.parametrize("case", list(USER_BAD))
def test_bad_user_model_or_weights_exit_2(capsys, user, case, cmd):
    argv, words = USER_BAD[case]
    if "--model" not in argv:
        argv = ["--model", "{tmp}/nets.py:make_model", *argv]
    extra = ["--field", "sparsity", "--values", "0.5"] if cmd == "sweep" else []
    code, out, err = run(capsys, cmd, *[a.replace("{tmp}", str(user)) for a in argv], *extra,
                         "--data", f"idx:{user}/no-data")
    assert code == 2 and out == "" and err.startswith("error: ") and err.count("\n") == 1, err
    assert words.replace("{tmp}", str(user)) in err, err


def test_eval_checks_model_before_data(capsys, user):
    (user / "empty.cpg").write_bytes(b"")
    code, _, err = run(capsys, "eval", str(user / "empty.cpg"), "--model", f"{user}/nope.py:f",
                       "--data", "idx:/nonexistent")
    assert code == 2 and "nope.py' does not exist" in err, err


# --- app --------------------------------------------------------------------------------------------

def test_app_serves_the_checkout_through_its_launcher(monkeypatch, tmp_path):
    import sys
    from pathlib import Path

    from streamlit.web import cli as st_cli
    seen = {}
    monkeypatch.setattr(st_cli, "main", lambda: seen.update(cwd=os.getcwd(), argv=list(sys.argv)) or 0)
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # restored afterwards: the launcher sets streamlit's argv
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path)  # restored afterwards: app changes into the checkout
    assert main(["app", "--server.port", "8599"]) == 0
    root = Path(__file__).resolve().parent.parent
    assert Path(seen["cwd"]) == root
    assert seen["argv"][:3] == ["streamlit", "run", str(root / "app.py")]
    assert seen["argv"][-2:] == ["--server.port", "8599"] and "--server.headless" in seen["argv"]


def test_import_and_the_app_command_start_without_torch(tmp_path):
    """`import compress_engine` resolves every public name on first use, and `app` reaches streamlit before
    anything imports torch (its server comes up first; Home's first run imports none either)."""
    import subprocess
    import sys
    code = """
import sys
import compress_engine as ce
assert "torch" not in sys.modules, "import compress_engine imported torch"
from streamlit.web import cli as st_cli
seen = []
st_cli.main = lambda: seen.append("torch" in sys.modules) or 0
from compress_engine.__main__ import main
assert main(["app", "--server.port", "8599"]) == 0 and seen == [False], seen
assert all(getattr(ce, name) is not None for name in ce.__all__) and set(ce.__all__) <= set(dir(ce))
assert "torch" in sys.modules and ce.sensitivity.__name__ == "compress_engine.core.sensitivity"
try:
    ce.no_such_name
except AttributeError as e:
    assert "no_such_name" in str(e)
else:
    raise AssertionError("an unknown name resolved")
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_app_outside_a_checkout_says_where_the_dashboard_is(capsys, monkeypatch, tmp_path):
    from compress_engine.playground import launch
    monkeypatch.setattr(launch, "__file__", str(tmp_path / "site" / "compress_engine" / "playground" / "launch.py"))
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "app")
    assert code == 2 and "comes with the source checkout" in err and err.count("\n") == 1, err
