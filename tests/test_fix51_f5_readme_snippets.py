"""The README's Python snippets run as pasted: the engine's snippet failed with a NameError (its alternative
`Dataset.from_tensors(train_x, ...)` was live code with tensors nowhere defined), and there was no example of a
model of your own. Each ```python block of README.md runs here; the engine's on a slice of Fashion-MNIST (it fine-tunes
and evaluates on the full set otherwise, about 100 s at one thread), the own-model example exactly as written."""

import re
import time
from pathlib import Path

import pytest
import torch

import compress_engine as ce

ROOT = Path(__file__).resolve().parent.parent


def snippets():
    return re.findall(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(), re.M | re.S)


def run(code):
    namespace = {"__name__": "readme_snippet"}
    exec(compile(code, "README.md", "exec"), namespace)
    return namespace


def test_the_readme_has_the_engine_snippet_and_an_own_model_example():
    blocks = snippets()
    assert sum('ce.load_model("lenet-300-100")' in b for b in blocks) == 1
    assert sum("module=MyNet()" in b and "Dataset.from_tensors(" in b and "class MyNet(nn.Module)" in b
               for b in blocks) == 1


def test_the_engine_snippet_runs_as_pasted(fmnist, monkeypatch):
    (code,) = [b for b in snippets() if 'ce.load_model("lenet-300-100")' in b]
    asked = []

    def small(name):
        asked.append(name)
        return fmnist.subset(2048, 1000)
    monkeypatch.setattr(ce, "load_dataset", small)
    t = time.perf_counter()
    ns = run(code)
    assert asked == ["fashion-mnist"]
    assert isinstance(ns["result"], ce.Result) and len(ns["result"].artifact) == ns["result"].metrics["artifact_bytes"]
    fresh, ds = ns["fresh"], ns["ds"]
    assert torch.equal(ce.predictions(fresh, ds.x("test")), ce.predictions(ns["result"].model, ds.x("test")))
    assert time.perf_counter() - t < 60


def test_the_own_model_example_runs_as_pasted(fmnist):
    (code,) = [b for b in snippets() if "class MyNet(nn.Module)" in b]
    ns = run(code)
    result, fresh = ns["result"], ns["fresh"]
    assert type(fresh).__name__ == "MyNet" and ns["meta"]["model_class"] == "MyNet"
    assert result.metrics["dense_bytes"] / len(result.artifact) > 5  # it did compress
    assert result.metrics["accuracy"] > 0.3  # fine-tuning trained the untrained net past chance (0.1)
