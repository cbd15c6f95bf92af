"""A model Ray cannot pickle (an attribute holding a threading.Lock or a file open for writing), swept with --workers:
ray.put failed after Ray had started, with Ray's 132-line traceback, exit status 1, and an empty sweep group left in
the store. It is refused before Ray starts and before anything is stored, one line naming the attribute."""

import pytest
import torch
from torch import nn

import compress_engine as ce
from compress_engine.core.errors import ModelError
from compress_engine.playground import sweeps
from compress_engine.playground.cli import main

ray = pytest.importorskip("ray")

MODEL = '''
import threading, torch
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(x.flatten(1))

def make():
    m = Net()
    m.fc.lock = threading.Lock()
    return m
'''


class Lambdy(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(64, 10)
        self.act = lambda t: t.relu()  # Ray's cloudpickle sends a lambda: no refusal

    def forward(self, x):
        return self.fc(self.act(x.flatten(1)))


def test_cli_refuses_an_unpicklable_model_in_one_line_and_stores_nothing(tmp_path, capsys):
    (tmp_path / "mine.py").write_text(MODEL)
    db = tmp_path / "runs.db"
    code = main(["sweep", "--model", f"{tmp_path / 'mine.py'}:make", "--data", "digits", "--field", "sparsity",
                 "--values", "0.5,0.9", "--clusters", "8", "--workers", "2", "--store", str(db)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert "'fc.lock'" in err and "_thread.lock" in err and "remove it from the model" in err, err
    assert not ray.is_initialized()  # refused before Ray started
    assert ce.Store(db).sweeps() == []  # no empty sweep group left behind


def test_api_names_an_open_file(tmp_path):
    model = Lambdy()
    with open(tmp_path / "log.txt", "w") as f:
        model.log = f
        with pytest.raises(ModelError, match=r"'log' \(a _io.TextIOWrapper\).*remove it from the model"):
            sweeps.sweep(model, ce.Recipe(clusters=8), "digits", "sparsity", [0.5], workers=2)
    assert not ray.is_initialized()


def test_a_lambda_attribute_is_not_refused():
    sweeps._sendable(ray, Lambdy())  # no error: Ray's cloudpickle pickles it
