"""A conv net that flattens with x.view(x.size(0), -1) after its convolutions (the tutorial LeNet) fails in
channels-last layout: the engine must run such a model in the default layout (compress, estimate, scan, the CLI)
and get what the model computes, while models that take channels-last keep it."""

import json

import torch
import torch.nn.functional as F
from torch import nn

import compress_engine as ce
from compress_engine.core.train import fast_eval_copy, logits
from compress_engine.playground.cli import main

MODEL_FILE = '''
import torch.nn as nn, torch.nn.functional as F
class LeNetView(nn.Module):
    def __init__(s):
        super().__init__(); s.conv1 = nn.Conv2d(1, 6, 3, padding=1); s.conv2 = nn.Conv2d(6, 16, 3, padding=1)
        s.fc1 = nn.Linear(16 * 2 * 2, 32); s.fc2 = nn.Linear(32, 10)
    def forward(s, x):
        x = F.max_pool2d(F.relu(s.conv1(x)), 2); x = F.max_pool2d(F.relu(s.conv2(x)), 2)
        return s.fc2(F.relu(s.fc1(x.view(x.size(0), -1))))
def make():
    import torch; torch.manual_seed(0); return LeNetView()
'''


def lenet_view():
    space = {}
    exec(MODEL_FILE, space)
    return space["make"]()


class Pooled(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(F.relu(self.conv(x)), 1).flatten(1))


def test_view_flatten_model_compresses_estimates_and_scans():
    ds = ce.load_dataset("digits")
    m = lenet_view().eval()
    expected = m(ds.x("test")).argmax(1)
    res = ce.compress(m, ce.Recipe(sparsity=0.5, finetune_epochs=1), ds)
    assert res.metrics["artifact_bytes"] > 0 and res.metrics["accuracy"] is not None
    est = ce.estimate(m, ds)
    assert est
    rows = ce.sensitivity.scan(m, ds, sparsities=(0.0, 0.5), clusters=(None,), use_cache=False)
    assert rows
    # the engine's copy computes what the model computes, and the caller's model is left as it was
    assert torch.equal(logits(fast_eval_copy(m), ds.x("test")).argmax(1), expected)
    assert all(p.is_contiguous() for p in m.parameters())
    from compress_engine.core.train import channels_last_ok
    assert channels_last_ok(m, ds.x("test")) is False


def test_a_model_that_takes_channels_last_still_runs_so():
    from compress_engine.core.train import channels_last_ok
    ds = ce.load_dataset("digits")
    m = Pooled().eval()
    x = ds.x("test")
    copy = fast_eval_copy(m)
    assert channels_last_ok(copy, x) is True
    assert copy.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(logits(copy, x), m(x), atol=1e-5)


def test_cli_runs_a_view_flatten_model_from_a_file(tmp_path, capsys):
    f = tmp_path / "lenet_view.py"
    f.write_text(MODEL_FILE)
    code = main(["run", "--model", f"{f}:make", "--data", "digits", "--sparsity", "0.5", "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert json.loads(out.out)["metrics"]["artifact_bytes"] > 0
