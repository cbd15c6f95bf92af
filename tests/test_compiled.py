"""A torch.compile'd model is compressed as the module it wraps (model._orig_mod): the artifact names its tensors and
class as the plain class does, so it decodes into a fresh instance of that class; structured pruning traces it; an
artifact written earlier from the wrapper ('_orig_mod.' before every name) decodes into the plain class too, in the
engine and on the command line."""

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import compress_engine as ce
from compress_engine.core.encode import encode
from compress_engine.playground.cli import main


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 4 * 4, 3)

    def forward(self, x):
        return self.fc(F.max_pool2d(F.relu(self.c1(x)), 2).flatten(1))


def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 1, 8, 8, generator=g)
    y = (x[:, 0, :4].mean((1, 2)) > 0).long() + (x[:, 0, :, :4].mean((1, 2)) > 0).long()
    return ce.Dataset.from_tensors(x[:64], y[:64], x[64:], y[64:], name="toy")


def test_a_compiled_model_is_compressed_as_the_module_it_wraps():
    torch.manual_seed(0)
    ds = data()
    res = ce.compress(torch.compile(Net()), ce.Recipe(clusters=4, finetune_epochs=1), ds)
    assert list(ce.decode(res.artifact)) == list(Net().state_dict())
    assert ce.read_meta(res.artifact)["model_class"] == "Net" and type(res.model) is Net
    fresh, _ = ce.decode_model(res.artifact, module=Net())
    assert torch.equal(ce.logits(fresh, ds.x("test")), ce.logits(res.model, ds.x("test")))
    assert ce.describe(torch.compile(Net()), ds)["model_class"] == "Net"
    assert list(ce.describe(torch.compile(Net()))["compressed"]) == ["c1.weight", "fc.weight"]


def test_a_compiled_model_is_pruned_structurally():
    torch.manual_seed(0)
    res = ce.compress(torch.compile(Net()), ce.Recipe(structured=True, sparsity=0.5), data())
    assert res.model.c1.out_channels == 4


def old_artifact():
    """An artifact as compress() wrote it from a torch.compile'd model before: every name after '_orig_mod.'."""
    torch.manual_seed(0)
    net = Net()
    state = {f"_orig_mod.{k}": v for k, v in net.state_dict().items()}
    artifact = encode(state, {}, {"spec": None, "model_class": "OptimizedModule", "recipe": {}})
    return net, artifact


def test_an_artifact_of_a_compiled_model_decodes_into_the_plain_class(tmp_path):
    net, artifact = old_artifact()
    fresh, meta = ce.decode_model(artifact, module=Net())
    assert meta["model_class"] == "OptimizedModule"
    x = data().x("test")
    assert torch.equal(ce.logits(fresh, x), ce.logits(net, x))


def test_cli_eval_decodes_an_artifact_of_a_compiled_model_into_the_plain_class(tmp_path, capsys):
    net, artifact = old_artifact()
    (tmp_path / "a.cpg").write_bytes(artifact)
    (tmp_path / "mine.py").write_text("import sys\nsys.path.insert(0, %r)\nfrom test_compiled import Net\n\n"
                                      "def make():\n    return Net()\n" % str(Path(__file__).parent))
    ds = data()
    np.savez(tmp_path / "toy.npz", train_x=ds.x("train").numpy(), train_y=ds.y("train").numpy(),
             test_x=ds.x("test").numpy(), test_y=ds.y("test").numpy())
    code = main(["eval", str(tmp_path / "a.cpg"), "--model", f"{tmp_path / 'mine.py'}:make",
                 "--data", f"npz:{tmp_path / 'toy.npz'}"])
    out = capsys.readouterr()
    assert code == 0, out.err
    want = (ce.logits(net, ds.x("test")).argmax(1) == ds.y("test")).float().mean().item()
    assert json.loads(out.out)["accuracy"] == want


def test_every_entry_point_takes_a_compiled_model_as_the_module_it_wraps(tmp_path):
    """fit_budget, the sensitivity scan, fit_flops and sweep name the plain class's layers, as compress() does: a
    scan's rows (the wrapper's '_orig_mod.' names) once did not match the pruned model's and fit_budget failed."""
    torch.manual_seed(0)
    ds, net = data(), Net()
    compiled = torch.compile(net)
    res, plan = ce.fit_budget(compiled, ds, 1_200, finetune_epochs=0, cache_dir=tmp_path)
    assert plan["fits"] and [a["layer"] for a in plan["allocation"]] == ["c1.weight", "fc.weight"]
    assert type(res.model) is Net and list(ce.decode(res.artifact)) == list(net.state_dict())
    scan = ce.sensitivity.scan(compiled, ds, sparsities=(0.5,), clusters=(4,), cache_dir=tmp_path)
    assert sorted({row["layer"] for row in scan["rows"]}) == ["c1.weight", "fc.weight"]
    res, plan = ce.fit_flops(compiled, ds, 0.6, finetune_epochs=0, cache_dir=tmp_path)
    assert type(res.model) is Net and res.model.c1.out_channels < 8
    rows = ce.sweep(compiled, ce.Recipe(layers={"c1.weight": {"sparsity": 0.5}}), ds, "clusters", [4])
    assert len(rows) == 1 and rows[0]["artifact_bytes"] > 0


def test_a_dynamo_still_being_imported_by_another_thread_is_no_error(monkeypatch):
    """A server's page run met torch._dynamo.eval_frame in sys.modules while another thread was importing it, without
    its OptimizedModule yet: 'partially initialized module ... has no attribute OptimizedModule' failed the run
    (bench/load.py, 5 sessions). Nothing can have been compiled with a class not defined yet."""
    import sys
    import types
    from compress_engine.core.model import plain_module
    monkeypatch.setitem(sys.modules, "torch._dynamo.eval_frame", types.ModuleType("torch._dynamo.eval_frame"))
    net = Net()
    assert plain_module(net) is net
