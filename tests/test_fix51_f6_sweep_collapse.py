"""`run` warned on stderr when the compressed model had collapsed to chance level; `sweep` printed such a point's
accuracy without a word. Each collapsed point of a sweep now gets run's warning (cli.warn_collapse) after its line,
naming the point."""

import compress_engine as ce
from compress_engine.playground import cli, sweeps
from compress_engine.playground.explain import chance_level

MODEL = '''
import torch
from torch import nn

def make():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
'''


def test_a_collapsed_sweep_point_is_warned_as_run_warns(tmp_path, monkeypatch, capsys):
    data = ce.load_dataset("digits")
    chance = chance_level(data)

    def fake_point(model, data, recipe, threads=1):  # sparsity 0.9 collapses to chance, 0.5 does not
        acc = chance if recipe.sparsity == 0.9 else 0.8
        m = {"params": 650, "nonzero_params": 65, "artifact_bytes": 100, "ratio": 26.0, "accuracy": acc,
             "agreement": acc, "dense_accuracy": 0.9}
        return m, b""

    monkeypatch.setattr(sweeps, "run_point", fake_point)
    (tmp_path / "mine.py").write_text(MODEL)
    code = cli.main(["sweep", "--model", f"{tmp_path / 'mine.py'}:make", "--data", "digits", "--field", "sparsity",
                     "--values", "0.5,0.9"])
    err = capsys.readouterr().err
    assert code == 0, err
    cli.warn_collapse({"metrics": {"accuracy": chance, "dense_accuracy": 0.9}}, data)  # run's warning
    run_line = capsys.readouterr().err.strip()
    lines = err.strip().splitlines()
    assert lines[0].startswith("point 1/2: sparsity=0.5 ")
    assert lines[1].startswith("point 2/2: sparsity=0.9 ")
    assert lines[2] == run_line.replace("warning: ", "warning: sparsity=0.9: ", 1)
    assert len(lines) == 3
