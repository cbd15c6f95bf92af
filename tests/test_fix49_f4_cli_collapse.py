"""`run` on the command line says on stderr when the compressed model has collapsed to chance level (as every
dashboard page does, explain.collapsed), and the exit status stays 0. LeNet-300-100 pruned 99 % per layer, one-shot,
scores 10.00 % on Fashion-MNIST (tests/test_fixw_collapse.py)."""

import json

from compress_engine.playground.cli import main


def test_run_warns_of_a_collapsed_model_and_exits_0(capsys, fmnist):
    code = main(["run", "--model", "lenet-300-100", "--sparsity", "0.99", "--prune-scope", "layer"])
    out = capsys.readouterr()
    assert code == 0
    metrics = json.loads(out.out)["metrics"]
    assert metrics["accuracy"] < 0.11 < metrics["dense_accuracy"]
    (line,) = [ln for ln in out.err.splitlines() if "collapsed" in ln]
    assert line.startswith("warning: ") and "chance level" in line and "10.00 %" in line


def test_run_says_nothing_of_a_model_that_still_classifies(capsys, fmnist):
    code = main(["run", "--model", "lenet-300-100", "--sparsity", "0.5"])
    out = capsys.readouterr()
    assert code == 0 and "collapsed" not in out.err
