"""Model architectures, the sample-model registry and safe checkpoint loading.

Every model is described by a small JSON-able `spec` ({"arch": "mlp", "sizes": [...]} or
{"arch": "lenet5", "widths": [...]}) so an artifact can carry it and be rebuilt anywhere, even
after structured pruning has changed the widths.
"""

import json
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import ModelError

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample_models"
MAX_UNITS = 100_000  # no layer in a spec may be wider than this (uploaded specs are untrusted)


class MLP(nn.Module):
    """Fully connected ReLU net: sizes = [784, h1, ..., 10]; layers named fc1, fc2, ..."""

    def __init__(self, sizes, dropout=0.0):
        super().__init__()
        self.sizes = list(sizes)
        self.dropout = dropout
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(self.sizes, self.sizes[1:]))

    def forward(self, x):
        x = x.flatten(1)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.dropout(F.relu(x), self.dropout, self.training)
        return x


class LeNet5(nn.Module):
    """Caffe's LeNet-5: conv 20@5x5, pool, conv 50@5x5, pool, fc 500, fc 10 (ReLU after each hidden layer)."""

    def __init__(self, widths=(20, 50, 500), n_classes=10):
        super().__init__()
        c1, c2, f1 = self.widths = list(widths)
        self.conv1 = nn.Conv2d(1, c1, 5)
        self.conv2 = nn.Conv2d(c1, c2, 5)
        self.fc1 = nn.Linear(c2 * 4 * 4, f1)
        self.fc2 = nn.Linear(f1, n_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def build(spec):
    """A freshly initialised model from its spec; a clear ModelError for anything malformed."""
    if not isinstance(spec, dict) or spec.get("arch") not in ("mlp", "lenet5"):
        raise ModelError(f"model spec must be {{'arch': 'mlp'|'lenet5', ...}}, got {spec!r:.200}")
    key, n = ("sizes", None) if spec["arch"] == "mlp" else ("widths", 3)
    dims = spec.get(key)
    ok = (isinstance(dims, list) and (len(dims) == n if n else len(dims) >= 2)
          and all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= MAX_UNITS for d in dims))
    if not ok:
        raise ModelError(f"model spec {key} must be a list of {n or '2 or more'} integers in 1..{MAX_UNITS}, "
                         f"got {dims!r:.200}")
    if spec["arch"] == "mlp":
        return MLP(dims, spec.get("dropout", 0.0))
    return LeNet5(dims)


def spec_of(model):
    """The spec that rebuilds `model` (its current widths)."""
    if isinstance(model, MLP):
        return {"arch": "mlp", "sizes": list(model.sizes)}
    if isinstance(model, LeNet5):
        return {"arch": "lenet5", "widths": list(model.widths)}
    raise ModelError(f"no spec for {type(model).__name__}: the engine handles MLP and LeNet5 models")


def from_state_dict(spec, state_dict):
    """Build `spec`'s model and load `state_dict` into it, refusing any mismatch with a clear message."""
    model = build(spec)
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state_dict.items()}
    if want != got:
        diff = sorted(set(want.items()) ^ set(got.items()))[:4]
        raise ModelError(f"weights do not fit the {spec['arch']} architecture {spec}: mismatched tensors {diff}")
    model.load_state_dict(state_dict)
    return model.eval()


def param_count(model):
    return sum(p.numel() for p in model.parameters())


# --- sample models -------------------------------------------------------------------------

# name -> (spec, training recipe). `python -m compress_engine train NAME` reproduces the checkpoint.
SAMPLES = {
    "lenet-300-100": ({"arch": "mlp", "sizes": [784, 300, 100, 10]},
                      {"epochs": 30, "lr": 2e-3, "batch_size": 128, "weight_decay": 1e-4, "seed": 0}),
    "lenet-5": ({"arch": "lenet5", "widths": [20, 50, 500]},
                {"epochs": 20, "lr": 2e-3, "batch_size": 128, "weight_decay": 1e-4, "seed": 0}),
    "teacher-1200-1200": ({"arch": "mlp", "sizes": [784, 1200, 1200, 10], "dropout": 0.3},
                          {"epochs": 30, "lr": 1e-3, "batch_size": 128, "weight_decay": 1e-4, "seed": 0}),
}
DESCRIPTIONS = {
    "lenet-300-100": "LeNet-300-100: a 784-300-100-10 ReLU MLP (LeCun et al. 1998; Deep Compression's first model).",
    "lenet-5": "LeNet-5, Caffe variant: conv 20@5x5, max-pool, conv 50@5x5, max-pool, fc 500, fc 10.",
    "teacher-1200-1200": "Distillation teacher: 784-1200-1200-10 MLP with dropout, as in Hinton et al. 2015.",
}


def list_models():
    """Cards of the shipped sample models (architecture, parameters, accuracy, training recipe)."""
    cards = []
    for name in SAMPLES:
        path = SAMPLE_DIR / f"{name}.json"
        if path.is_file():
            cards.append(json.loads(path.read_text()))
    return cards


def model_card(name):
    path = SAMPLE_DIR / f"{name}.json"
    if name not in SAMPLES:
        raise ModelError(f"unknown model {name!r}: choose one of {', '.join(SAMPLES)}")
    if not path.is_file():
        raise ModelError(f"{path} is missing: rebuild it with `python -m compress_engine train {name}`")
    return json.loads(path.read_text())


def load_model(name):
    """The trained sample model `name`, in eval mode (weights read with safetensors: no code runs)."""
    from safetensors.torch import load_file
    card = model_card(name)
    path = SAMPLE_DIR / f"{name}.safetensors"
    try:
        state = load_file(path)
    except Exception as e:  # missing or corrupt file: say which and how to rebuild it
        raise ModelError(f"cannot read {path} ({e}); rebuild it with `python -m compress_engine train {name}`") from None
    return from_state_dict(card["spec"], state)


def student(width, depth=2):
    """A distillation student: 784-[width]*depth-10 MLP (Hinton's student is width 800)."""
    return build({"arch": "mlp", "sizes": [784] + [int(width)] * depth + [10]})


# --- structured pruning: really remove units so the dense model shrinks ------------------------

def _chain(model):
    """(layer, how its output units reach the next layer) for each hidden layer of `model`.

    Returns a list of (producer, consumer, group): the consumer's input columns for producer unit j
    are j*group ... j*group+group-1 (group > 1 where conv channels are flattened into fc1).
    """
    if isinstance(model, MLP):
        return [(a, b, 1) for a, b in zip(model.layers, model.layers[1:])]
    if isinstance(model, LeNet5):
        return [(model.conv1, model.conv2, 1), (model.conv2, model.fc1, 16), (model.fc1, model.fc2, 1)]
    raise ModelError(f"structured pruning knows MLP and LeNet5, not {type(model).__name__}")


@torch.no_grad()
def shrink(model, keep_fn):
    """A smaller copy of `model` keeping, in each hidden layer, the output units keep_fn(weight) returns.

    The kept units' incoming weights and biases are copied, and the next layer loses the input
    columns of the removed units, so the result computes exactly what the masked model computes.
    """
    keeps = [keep_fn(prod.weight) for prod, _, _ in _chain(model)]
    spec = spec_of(model)
    if isinstance(model, MLP):
        spec["sizes"] = [spec["sizes"][0]] + [len(k) for k in keeps] + [spec["sizes"][-1]]
    else:
        spec["widths"] = [len(k) for k in keeps]
    small = build(spec)
    # column index lists for each consumer, expanded by its group size
    cols = {}
    for (prod, cons, group), keep in zip(_chain(model), keeps):
        cols[id(cons)] = (keep[:, None] * group + torch.arange(group)).flatten()
    rows = {id(prod): keep for (prod, _, _), keep in zip(_chain(model), keeps)}
    by_name = dict(model.named_modules())
    for name, mod in small.named_modules():
        if not isinstance(mod, (nn.Linear, nn.Conv2d)):
            continue
        old = by_name[name]
        w, b = old.weight, old.bias
        if id(old) in rows:
            w, b = w[rows[id(old)]], b[rows[id(old)]]
        if id(old) in cols:
            w = w[:, cols[id(old)]]
        mod.weight.copy_(w)
        mod.bias.copy_(b)
    return small.eval()
