"""Ctrl-C at any time in a sweep gives what the README documents: exit 130, the finished rows ([] before any) on
stdout and 'interrupted: 0 of N points finished' on stderr; in Python, sweeps.Interrupted. Early in a sweep (loading
the data, the checks before any point) it was a bare KeyboardInterrupt: 'error: interrupted' and nothing on stdout."""

import json

import pytest
import torch

import compress_engine as ce
from compress_engine.playground import sweeps
from compress_engine.playground.cli import main


def ctrl_c(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize("where", ["_the_data", "_refuse_before_any_point"])
def test_ctrl_c_before_any_point_is_an_interrupted_sweep(monkeypatch, where):
    monkeypatch.setattr(sweeps, where, ctrl_c)
    x, y = torch.rand(20, 1, 28, 28), torch.arange(20) % 10
    with pytest.raises(sweeps.Interrupted) as e:
        ce.sweep("lenet-300-100", ce.Recipe(), ce.Dataset.from_tensors(x, y, x, y), "sparsity", [0.5, 0.9])
    assert e.value.rows == [] and e.value.total == 2


@pytest.mark.parametrize("where", ["_the_data", "_refuse_before_any_point"])
def test_ctrl_c_before_any_point_on_the_command_line(monkeypatch, capsys, fmnist, where):
    monkeypatch.setattr(sweeps, where, ctrl_c)
    code = main(["sweep", "--model", "lenet-300-100", "--field", "sparsity", "--values", "0.5,0.8,0.9"])
    out, err = capsys.readouterr()
    assert code == 130
    assert json.loads(out) == []
    assert "interrupted: 0 of 3 points finished" in err and "error: interrupted" not in err


@pytest.mark.parametrize("where", ["user_model", "load_dataset"])
def test_ctrl_c_while_the_command_line_loads_the_model_or_data(monkeypatch, capsys, fmnist, where):
    """The command line loads the model and the data before sweep() and its handler start: Ctrl-C there said
    'error: interrupted' with nothing on stdout."""
    from compress_engine.playground import cli
    monkeypatch.setattr(*((cli, "user_model") if where == "user_model" else (ce, "load_dataset")), ctrl_c)
    code = main(["sweep", "--model", "lenet-300-100", "--field", "sparsity", "--values", "0.5,0.8,0.9"])
    out, err = capsys.readouterr()
    assert code == 130 and json.loads(out) == []
    assert "interrupted: 0 of 3 points finished" in err and "error: interrupted" not in err


def test_ctrl_c_in_a_run_is_still_a_plain_interrupt(monkeypatch, capsys, fmnist):
    from compress_engine.playground import cli
    monkeypatch.setattr(cli, "user_model", ctrl_c)
    assert main(["run", "--model", "lenet-300-100", "--sparsity", "0.5"]) == 130
    out, err = capsys.readouterr()
    assert out == "" and "error: interrupted" in err
