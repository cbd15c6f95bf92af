"""Refusals of torch.nn.utils.prune hooks and of tied weights give a statement to run. It was not Python inside an
nn.Sequential, nn.ModuleList or nn.ModuleDict ('model.0', 'model.blocks.1', 'model.d.1'), ModuleDict keys came out as
numbers (model.d[1]) and names that are no identifiers ('my-a', an OrderedDict's 'fc-in') as attributes; a pruned bias
(any tensor but a compressed weight) was not refused at all, and its artifact held fc1.bias_orig and fc1.bias_mask, so
it did not load into a fresh instance; global pruning named one layer a round. Each test runs the advised statement
(every one the message gives) and compresses the model."""

import re
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
import torch.nn.utils.prune as prune
from torch import nn

import compress_engine as ce
from compress_engine.core.errors import ModelError
from small_nets import Plain, RECIPE, data

class Blocks(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(20, 20), nn.Linear(20, 20)])
        self.head = nn.Linear(20, 4)

    def forward(self, x):
        for b in self.blocks:
            x = F.relu(b(x))
        return self.head(x)


class Dict(nn.Module):
    def __init__(self, a="1", b="my-a"):
        super().__init__()
        self.keys = (a, b)
        self.d = nn.ModuleDict({a: nn.Linear(20, 20), b: nn.Linear(20, 20)})
        self.head = nn.Linear(20, 4)

    def forward(self, x):
        return self.head(F.relu(self.d[self.keys[1]](F.relu(self.d[self.keys[0]](x)))))


def ordered():
    return nn.Sequential(OrderedDict([("fc-in", nn.Linear(20, 20)), ("act", nn.ReLU()), ("fc-mid", nn.Linear(20, 20)),
                                      ("a2", nn.ReLU()), ("out", nn.Linear(20, 4))]))


def sequential():
    return nn.Sequential(nn.Linear(20, 20), nn.ReLU(), nn.Linear(20, 4))


def follow(model, pattern):
    """Refused with a statement matching `pattern`: run it; the model then compresses."""
    with pytest.raises(ModelError) as e:
        ce.compress(model, RECIPE, data())
    found = re.search(pattern, str(e.value))
    assert found, str(e.value)
    exec(found.group(1), {"model": model, "nn": nn, "torch": torch})
    return ce.compress(model, RECIPE, data())


PRUNE = r"with (torch\.nn\.utils\.prune\.remove\(.*\)) \((?:it|each) keeps"
CASES = {  # model, the layer to prune in it
    "sequential": (sequential, lambda m: m[0]),
    "modulelist": (Blocks, lambda m: m.blocks[1]),
    "moduledict '1'": (Dict, lambda m: m.d["1"]),
    "moduledict 'my-a'": (Dict, lambda m: m.d["my-a"]),
    "ordereddict sequential 'fc-in'": (ordered, lambda m: m[0]),
    "root": (lambda: nn.Sequential(nn.Flatten(), nn.Linear(20, 4))[1], lambda m: m),
}


@pytest.mark.parametrize("case", CASES)
def test_prune_remove_advice_runs_in_every_container(case):
    build, layer = CASES[case]
    torch.manual_seed(0)
    model = build()
    prune.l1_unstructured(layer(model), "weight", 0.5)
    follow(model, PRUNE)


def test_a_pruned_bias_is_refused_and_the_advice_makes_it_storable():
    torch.manual_seed(0)
    model = Plain()
    prune.l1_unstructured(model.fc1, "bias", 0.5)
    result = follow(model, PRUNE)
    assert "fc1.bias" in ce.decode(result.artifact)
    fresh, _ = ce.decode_model(result.artifact, module=Plain())  # failed: fc1.bias_orig, fc1.bias_mask unexpected
    x = data().x("test")
    assert torch.equal(fresh(x), result.model(x))


def test_global_pruning_lists_every_tensor_so_one_round_suffices():
    torch.manual_seed(0)
    model = Plain()
    prune.global_unstructured([(model.fc1, "weight"), (model.fc2, "weight"), (model.fc2, "bias")],
                              pruning_method=prune.L1Unstructured, amount=0.4)
    follow(model, PRUNE)  # compresses after one round


TIED = r"e\.g\. (.*?) \(each is then"


@pytest.mark.parametrize("build", [lambda: Dict("1", "2"), lambda: Dict("my-a", "my-b"), ordered],
                         ids=["moduledict '1'", "moduledict 'my-a'", "ordereddict 'fc-in'"])
def test_untie_advice_runs(build):
    torch.manual_seed(0)
    model = build()
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    layers[1].weight = layers[0].weight
    follow(model, TIED)
