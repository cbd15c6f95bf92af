"""Model architectures, the sample-model registry and safe checkpoint loading.

Every model is described by a small JSON-able `spec` ({"arch": "mlp", "sizes": [...]},
{"arch": "lenet5", "widths": [...]} or {"arch": "resnet", "widths": [...], "inner": [...], ...}) so an
artifact can carry it and be rebuilt anywhere, even after structured pruning has changed the widths
or BatchNorm folding has turned each BatchNorm into a conv bias.

read_weights() takes a user's uploaded weight file: .safetensors, or a zip-format torch.save
checkpoint read with weights_only=True, so an uploaded file never runs code; the architecture is
inferred from the tensor names and shapes.
"""

import hashlib
import io
import math
import json
import os
import pickle
import platform
import re
import shlex
import struct
import time
import warnings
import zipfile
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core import flops
from ..core.encode import MAGIC, decode_with_meta, read_shapes
from ..core.errors import DatasetError, ModelError
from ..core.fold import NORMS, fold_batchnorm, foldable_pairs
from ..core.files import write_atomic
from ..core.model import MLP, arch_spec, check_model, param_count
from ..core.pipeline import deployed, describe, plain_module, scores
from ..core.structured import resize_to
from ..core.train import (accuracy, answers, crop_flip, fast_eval_copy, fit, flush_tiny_, has_conv,
                          logits, predictions)
from . import cards, units
from .cards import DESCRIPTIONS, SAMPLES, list_models, model_card  # noqa: F401 - re-exported

MAX_UNITS = 100_000  # no layer in a spec may be wider than this (uploaded specs are untrusted)
LENET_OUTPUTS = 10  # compress_engine's LeNet5 by default: Fashion-MNIST's 10 classes (28x28 greyscale images)


def lenet_spec(widths, classes=LENET_OUTPUTS):
    """A LeNet-5's spec: its [conv1, conv2, fc1] widths and, unless LENET_OUTPUTS, its classes (fc2's outputs)."""
    return {"arch": "lenet5", "widths": list(widths), **({"classes": classes} if classes != LENET_OUTPUTS else {})}


class LeNet5(nn.Module):
    """Caffe's LeNet-5: conv 20@5x5, pool, conv 50@5x5, pool, fc 500, fc 10 (ReLU after each hidden layer); fc2 of
    n_classes outputs (a spec names them as "classes" unless they are the default LENET_OUTPUTS, so a 10-class
    LeNet-5's spec, and its artifacts' headers, are as they were)."""

    def __init__(self, widths=(20, 50, 500), n_classes=LENET_OUTPUTS):
        super().__init__()
        c1, c2, f1 = widths
        self.conv1 = nn.Conv2d(1, c1, 5)
        self.conv2 = nn.Conv2d(c1, c2, 5)
        self.fc1 = nn.Linear(c2 * 4 * 4, f1)
        self.fc2 = nn.Linear(f1, n_classes)

    @property
    def widths(self):
        """[conv1 filters, conv2 filters, fc1 units], read from the layers (so it follows structured pruning)."""
        return [self.conv1.out_channels, self.conv2.out_channels, self.fc1.out_features]

    def spec(self):
        return lenet_spec(self.widths, self.fc2.out_features)

    def forward(self, x):
        # pool before ReLU: the same function (ReLU is monotonic, so it commutes with max) with 4x less
        # ReLU work on the largest activations; measured 15-20 % faster evaluation (bench/speed.py)
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


class BasicBlock(nn.Module):
    """He et al.'s basic residual block: conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU.

    The shortcut is the identity, or (project=True, when the block changes resolution or width) a
    strided 1x1 conv + BN. Without batchnorm (a folded model) the convs carry biases instead.
    """

    def __init__(self, cin, mid, cout, stride, project, batchnorm=True):
        super().__init__()
        norm = nn.BatchNorm2d if batchnorm else (lambda c: nn.Identity())
        self.conv1 = nn.Conv2d(cin, mid, 3, stride, 1, bias=not batchnorm)
        self.bn1 = norm(mid)
        self.conv2 = nn.Conv2d(mid, cout, 3, 1, 1, bias=not batchnorm)
        self.bn2 = norm(cout)
        self.shortcut = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=not batchnorm), norm(cout))
                         if project else nn.Identity())

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + self.shortcut(x))


class ResNet(nn.Module):
    """A compact residual CNN for small images: ResNet-8 at the default widths (32, 64, 128).

    stem conv3x3 -> BN -> ReLU; one basic block per stage, each later stage halving the resolution
    (strided conv, 1x1-conv shortcut) and widening; global average pooling; fc. widths[i] is stage i's
    residual width (stage 0 shares the stem's: they are added), inner[i] the width inside its block;
    both are read from the layers, so the spec follows structured pruning.
    fold_batchnorm = True asks compress() to fold every BatchNorm into its conv first, as deployment
    does: the folded model (batchnorm=False) computes the same function with one layer fewer per conv.
    """

    fold_batchnorm = True

    def __init__(self, widths=(32, 64, 128), inner=None, batchnorm=True, in_channels=1, n_classes=10):
        super().__init__()
        inner = inner or widths
        self.stem = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=not batchnorm)
        self.bn = nn.BatchNorm2d(widths[0]) if batchnorm else nn.Identity()
        cin, blocks = widths[0], []
        for i, (mid, w) in enumerate(zip(inner, widths)):
            blocks.append(BasicBlock(cin, mid, w, 1 if i == 0 else 2, project=i > 0, batchnorm=batchnorm))
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, n_classes)

    def spec(self):
        return {"arch": "resnet", "widths": [b.conv2.out_channels for b in self.blocks],
                "inner": [b.conv1.out_channels for b in self.blocks],
                "batchnorm": isinstance(self.bn, nn.BatchNorm2d),
                "in_channels": self.stem.in_channels, "classes": self.fc.out_features}

    def forward(self, x):
        x = self.blocks(F.relu(self.bn(self.stem(x))))
        return self.fc(x.mean((2, 3)))  # global average pooling


ARCHS = ("mlp", "lenet5", "resnet")
SPEC_KEYS = {"mlp": {"arch", "sizes", "dropout"}, "lenet5": {"arch", "widths", "classes"},  # what build() reads
             "resnet": {"arch", "widths", "inner", "batchnorm", "in_channels", "classes"}}


def _dims(spec, key, n=None):
    """spec[key] as a list of ints in 1..MAX_UNITS (exactly n of them, or at least 2), else ModelError."""
    dims = spec.get(key)
    ok = (isinstance(dims, list) and (len(dims) == n if n else len(dims) >= 2)
          and all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= MAX_UNITS for d in dims))
    if not ok:
        raise ModelError(f"model spec {key} must be a list of {n or '2 or more'} integers in 1..{MAX_UNITS}, "
                         f"got {dims!r:.200}")
    return dims


def _count(spec, key, default=None):
    """spec[key] (`default` if absent and one is given) as an int in 1..MAX_UNITS, else ModelError."""
    v = spec.get(key, default)
    if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= MAX_UNITS:
        raise ModelError(f"model spec {key} must be an integer in 1..{MAX_UNITS}, got {v!r:.80}")
    return v


def _resnet(spec):
    """A ResNet from {"widths": [...], "inner": [...] (1-6 stages each), "batchnorm", "in_channels", "classes"}."""
    widths = spec.get("widths")
    n = len(widths) if isinstance(widths, list) and 1 <= len(widths) <= 6 else 3
    widths, inner = _dims(spec, "widths", n), _dims(spec, "inner", n)
    cin, classes = _count(spec, "in_channels"), _count(spec, "classes")
    if not isinstance(spec.get("batchnorm"), bool):
        raise ModelError(f"model spec batchnorm must be true or false, got {spec.get('batchnorm')!r:.80}")
    return ResNet(widths, inner, spec["batchnorm"], cin, classes)


def build(spec):
    """A freshly initialised model from its spec; a clear ModelError for anything malformed."""
    if not isinstance(spec, dict) or spec.get("arch") not in ARCHS:
        raise ModelError(f"model spec must be {{'arch': 'mlp'|'lenet5'|'resnet', ...}}, got {spec!r:.200}")
    unknown = [k for k in spec if k not in SPEC_KEYS[spec["arch"]]]
    if unknown:  # an artifact's header is shown to the user: nothing in it goes unread (a 15 MB 'junk' key)
        raise ModelError(f"model spec of a {spec['arch']} has unknown key(s) {few(repr(str(k)[:40]) for k in unknown)}; "
                         f"it takes {', '.join(sorted(SPEC_KEYS[spec['arch']]))}")
    if spec["arch"] == "resnet":
        return _resnet(spec)
    key, n = ("sizes", None) if spec["arch"] == "mlp" else ("widths", 3)
    dims = _dims(spec, key, n)
    if spec["arch"] == "mlp":
        return MLP(dims, spec.get("dropout", 0.0))
    return LeNet5(dims, _count(spec, "classes", LENET_OUTPUTS))


def cnn_student(seed=0):
    """The small CNN distillation student (CNN_STUDENT), initialised from `seed` without touching the caller's
    random state: the same seed gives the same student in the bench, on the page and in a test."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build(CNN_STUDENT)


def spec_of(model):
    """The spec that rebuilds `model` (its current widths); ModelError for a model the zoo cannot rebuild."""
    spec = arch_spec(model)
    if spec is None:
        raise ModelError(f"no spec for {type(model).__name__}: the zoo rebuilds MLP, LeNet5 and ResNet models")
    return spec


# How to fix weights that do not fit their architecture (check_fits' `fix`), by where they came from
FIT_FIX = ("give the weights of a model of that architecture as it was trained: its state_dict saved unchanged "
           "(torch.save(model.state_dict(), path)), no tensor reshaped, cut or taken from another model")
ARTIFACT_FIX = ("the artifact's tensors disagree with the architecture its own header names, so the file was changed "
                "after it was written: make it again from the model (Export's Make an artifact, or python -m "
                "compress_engine run ... --out FILE.cpg) rather than editing it")


def check_fits(spec, state_dict, fix=FIT_FIX):
    """`spec`'s model built on the meta device (nothing allocated), after refusing (ModelError) a `state_dict` that
    does not fit it strictly; only the tensors' shapes are read (they may be meta tensors). The refusal names each
    tensor that does not fit, both shapes and, in words, which layer has how many inputs, outputs or channels against
    the architecture's (state_mismatch), then `fix`: how to fix it."""
    with torch.device("meta"):
        model = build(spec)
    found = state_mismatch(model, state_dict)
    if found:
        raise ModelError(f"weights do not fit the architecture they were read as ({cards.arch_text(spec)}): {found}; "
                         f"{fix}")
    return model


def from_state_dict(spec, state_dict, fix=FIT_FIX):
    """Build `spec`'s model and load `state_dict` into it, refusing any mismatch with a clear message (check_fits,
    ending with `fix`).

    The shapes are compared on the meta device first, so an untrusted spec claiming huge layers
    (an artifact's or an upload's) allocates nothing unless the given tensors really have that size.
    """
    check_fits(spec, state_dict, fix)
    model = build(spec)
    model.load_state_dict(state_dict)
    return model.eval()


# --- sample models -------------------------------------------------------------------------

# the small CNN student of the Distillation page and bench: ResNet-8 at a quarter of the width (19,810 parameters)
CNN_STUDENT = {"arch": "resnet", "widths": [8, 16, 32], "inner": [8, 16, 32], "batchnorm": True, "in_channels": 1,
               "classes": 10}
CNN_STUDENT_NAME = "cnn 8-16-32"  # how the bench's grid and the Distillation page name it
def load_model(name):
    """The trained sample model `name`, in eval mode (weights read with safetensors: no code runs)."""
    from safetensors.torch import load_file
    card = model_card(name)
    path = cards.SAMPLE_DIR / f"{name}.safetensors"
    try:
        state = load_file(path)
    except Exception as e:  # missing or corrupt file: say which and how to rebuild it
        raise ModelError(f"cannot read {path} ({e}); rebuild it with `python -m compress_engine train {name}`") from None
    flush_tiny_(state.values())  # none in the shipped files; a checkpoint rebuilt elsewhere may have them
    return from_state_dict(card["spec"], state, f"rebuild it with `python -m compress_engine train {name}`")


def fit_shapes(module, state, meta):
    """A structured-pruned artifact (its recipe has structured=True) has smaller layers than the user's class
    builds: give `module`'s layers the artifact's shapes (structured.resize_to) so that it loads strictly.
    Any other artifact leaves `module` as it is."""
    recipe = meta.get("recipe") if isinstance(meta, dict) else None
    if isinstance(recipe, dict) and recipe.get("structured") is True:
        resize_to(module, state)
    return module


def decode_model(artifact, module=None):
    """The compressed model an artifact holds, and its meta: (model, meta). Bad bytes raise ArtifactError.

    A sample-zoo architecture (the artifact's spec) is rebuilt without user code. Any other model
    is decoded into `module`, a fresh instance of the caller's own class (strict load_state_dict);
    without one, ModelError says so. A class that declares `fold_batchnorm = True` was compressed with its
    BatchNorms folded into its convs, so a folded copy of `module` is what is returned; so is it when the artifact
    holds none of the module's BatchNorms (the dashboard folds an uploaded ResNet's, as the zoo's).
    """
    state, meta = decode_with_meta(artifact)
    spec = meta.get("spec")
    if module is not None:
        if not isinstance(module, nn.Module):
            given = f"the class {module.__name__} itself" if isinstance(module, type) else f"a {type(module).__name__}"
            raise ModelError(f"module= takes a fresh instance of your model's class, e.g. module=MyNet(), not {given}")
        module = load_target(module, state, meta)
        try:  # what torch's strict load takes is taken: a module may resize a buffer as it loads (a QAT observer's
            module.load_state_dict(state, strict=True)  # per-channel scale), which a shape check beforehand refused
            problems = ""
        except RuntimeError as e:  # named in one line: missing, unexpected, mis-shaped; else torch's own words
            problems = state_mismatch(module, state) or str(e).splitlines()[0][:200] + "..."
        if problems:
            raise ModelError(f"the artifact's tensors do not fit the given {type(module).__name__} module "
                             f"({problems}); pass a fresh instance of the class that was compressed, built with the "
                             "same sizes")
        return module.eval(), meta
    if spec is None:
        raise ModelError(f"this artifact holds a {meta.get('model_class', 'user-defined')} model, whose architecture "
                         "only its own code knows: pass a fresh instance of that class, e.g. "
                         "decode_model(artifact, module=MyNet()), or load ce.decode(artifact) into it")
    return from_state_dict(spec, state, ARTIFACT_FIX), meta


def few(items, n=3, sep=", "):
    """The first n items, and how many more: "a, b, c, … (42 more)"."""
    items = list(items)
    return sep.join(items[:n]) + (f"{sep}… ({len(items) - n} more)" if len(items) > n else "")


def state_mismatch(model, state):
    """How `state` fails to fit `model` strictly, in one line naming the missing, unexpected and mis-shaped tensors
    ('10 missing (bn1.weight, …); 2 unexpected (…); 1 of the wrong shape (fc.weight is [10, 8], expected [10, 16])');
    '' if it fits. Only shapes are read: `model` may be on the meta device (an untrusted spec allocates nothing)."""
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    problems = []
    missing = [k for k in want if k not in got]
    extra = [k for k in got if k not in want]
    shapes = [f"{k} is {list(got[k])}, expected {list(want[k])}" for k in want if k in got and got[k] != want[k]]
    if missing:
        problems.append(f"{len(missing)} missing ({few(missing)})")
    if extra:
        problems.append(f"{len(extra)} unexpected ({few(extra)})")
    if shapes:
        problems.append(f"{len(shapes)} of the wrong shape ({few(shapes, sep='; ')})")
        words = shape_words({k: (got[k], want[k]) for k in want if k in got and got[k] != want[k]})
        if words:
            problems[-1] += f": {words}"
    return "; ".join(problems)


def shape_words(mismatched, n=2):
    """The shape mismatches {name: (given, expected)} in plain words, a layer at a time (its weight's, else its
    bias's), at most n of them: "layer fc1 takes 700 inputs in the weights given, 800 in the architecture". Only the
    dimensions that differ are named: a Linear weight's (outputs, inputs), a conv's (filters, input channels per
    group, kernel)."""
    said, out = set(), []
    for name in sorted(mismatched, key=lambda k: not k.endswith("weight")):  # weights first: they say the most
        layer, _, kind = name.rpartition(".")
        if layer in said:
            continue
        given, expected = mismatched[name]
        if len(given) != len(expected):
            out.append(f"{name} has {len(given)} dimension(s) in the weights given, {len(expected)} in the "
                       f"architecture")
        elif kind == "weight" and len(expected) >= 2:
            dims = [("gives", "outputs" if len(expected) == 2 else "filters (output channels)"),
                    ("takes", "inputs" if len(expected) == 2 else "input channels")]
            diff = [f"{verb} {g:,} {what}" for (verb, what), g, w in zip(dims, given, expected) if g != w]
            ref = [f"{w:,}" for g, w in zip(given[:2], expected[:2]) if g != w]
            if given[2:] != expected[2:]:
                diff.append(f"has {'×'.join(map(str, given[2:]))} kernels")
                ref.append(f"{'×'.join(map(str, expected[2:]))} kernels")
            out.append(f"layer {layer or name} {' and '.join(diff)} in the weights given, {' and '.join(ref)} in "
                       f"the architecture")
        else:
            out.append(f"{name} holds {math.prod(given):,} value(s) in the weights given, {math.prod(expected):,} in "
                       f"the architecture")
        said.add(layer)
        if len(out) == n:
            break
    rest = len({k.rpartition(".")[0] for k in mismatched}) - len(said)
    return "; ".join(out) + (f" (and {rest} more layer(s))" if out and rest > 0 else "")


def load_target(module, state, meta):
    """The module an artifact's tensors (`state`, with its `meta`) load into, made from a fresh `module`: the one a
    torch.compile wrapper holds (plain_module, as compress() compresses it), as deployed (folded if its class asks),
    folded if the artifact holds none of its BatchNorms, resized to a structured-pruned artifact's smaller layers.
    A prefix every name of `state` carries is dropped from it, in place, when the module's names are those without
    it, as CLI run --weights reads a state dict (strip_prefix_for): an artifact written from a torch.compile'd
    model names its tensors '_orig_mod.c1.weight'."""
    module = plain_module(module)
    names = strip_prefix_for(state, module.state_dict())
    if names is not state:
        state.clear()
        state.update(names)
    module = deployed(module)
    if folded_away(module, state):
        module = fold_batchnorm(module)
    fit_shapes(module, state, meta)
    return module


def folded_away(module, state):
    """Whether `state` lacks every tensor of the BatchNorms fold_batchnorm would fold into `module`'s layers (and
    has every one of those layers' weights): then it holds the folded model. False for a model fx cannot trace."""
    try:
        pairs = foldable_pairs(module) if any(isinstance(m, NORMS) for m in module.modules()) else []
    except ModelError:
        return False
    return bool(pairs) and all(f"{layer}.weight" in state for layer, _ in pairs) and not any(
        k.startswith(f"{norm}.") for _, norm in pairs for k in state)


def evaluate_artifact(artifact, data, module=None, max_params=None, cost_limit=False):
    """Decode an artifact (into `module` when it is not a zoo architecture) and score it on data's test set: its
    accuracy (and mean IoU for labels per position, exact match for multi-label tags), or R² and RMSE for regression
    targets.

    The dashboard checks only what it would take as an upload, before any tensor is decoded: max_params (it passes
    MAX_UPLOAD_PARAMS) refuses, from the header alone, an artifact whose tensors hold more values; cost_limit=True
    (it passes that too) one whose zoo architecture costs more per input than UPLOAD_COST (check_cost, on the
    architecture built with uninitialised weights): OverLimit, naming the count and the limit. By default a Python
    caller's artifact is not limited."""
    if max_params is not None or cost_limit:
        meta, shapes = read_shapes(artifact)
        total = sum(math.prod(s) for s in shapes.values())
        if max_params is not None and total > max_params:
            raise OverLimit(f"the artifact's model has {total:,} weights; artifacts checked here are limited to "
                            f"{max_params:,}, as uploads are")
        if cost_limit and module is None and meta.get("spec") is not None:
            # the header's tensors must fit its spec before the spec's model is allocated: a 99-byte artifact's
            # spec may claim 40 GB of layers (what decoding would refuse anyway, refused before allocating)
            bare = check_fits(meta["spec"], {k: torch.empty(s, device="meta") for k, s in shapes.items()},
                              ARTIFACT_FIX)
            check_cost(bare.to_empty(device="cpu"), tuple(data.x("test").shape[1:]), "the artifact's model")
    model, meta = decode_model(artifact, module)
    return score_decoded(model, meta, len(artifact), data)


class DoesNotFitData(ModelError):
    """A valid artifact whose model cannot be scored on the data given: check_model's reason (its inputs, or fewer
    outputs than the data have classes), not torch's error from the scoring."""


def score_decoded(model, meta, artifact_bytes, data):
    """evaluate_artifact's scores of a model already decoded from an artifact of artifact_bytes bytes (the CLI's
    eval decodes first, then scores that model rather than decoding it again). The model must take the data first
    (check_model on two test inputs, as compress() checks): DoesNotFitData otherwise (a 1-output regression model
    scored as a classifier read 19.47 %, every answer class 0; a tabular one failed in torch's matrix product)."""
    try:
        check_model(model, data, what="its model")
    except ModelError as e:
        raise DoesNotFitData(str(e)) from None
    pred = answers(fast_eval_copy(model), data.x("test"), data)
    return {**scores(pred, data.y("test")), "artifact_bytes": artifact_bytes,
            "params": param_count(model), "nonzero_params": sum(int(torch.count_nonzero(p)) for p in model.parameters()),
            "meta": meta, "model": model}


def card_sizes(model):
    """A card's sizes of `model`, as compress() counts the dense model (the model as deployed: a ResNet's BatchNorms
    folded): "dense_bytes", its float32 bytes, every ratio's base; "deployed_parameters", its parameters (the card's
    "parameters" are the module's, BatchNorms included); "nonzero_parameters", those not exactly zero (cards.WHY_ZEROS
    says why a trained model has zeros)."""
    d = describe(model)
    return {"dense_bytes": d["dense_bytes"], "deployed_parameters": d["params"],
            "nonzero_parameters": d["nonzero_params"]}


def card_head(model, data, n=cards.HEAD):
    """What a card keeps of `model`'s answers: its predicted classes for data's first n test images, with a hash
    of those images, so a page can show them without torch (cards.head_predictions)."""
    x = data.x("test")[:n].contiguous()
    pred = predictions(model, x).tolist()  # runs in inference mode
    return {"data": data.name, "inputs": cards.inputs_digest(x.numpy()), "predictions": pred}


# --- a sample model's outputs, computed once and kept on disk -------------------------------------

LOGITS_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "compression-playground"


def cached_logits(name, data, cache_dir=None, ship=False, compute=True):
    """Sample model `name`'s logits on every training and test input of `data`: {"train": (N, C), "test": (M, C)}.

    Distillation needs the teacher's answer on all 60,000 training images, and the page its accuracy
    on the 10,000 test images: for resnet-8 that is about 80 s of convolutions at 1 thread, so it is
    done once and kept on disk. Read from, in order: the shipped sample_models/<name>.logits.safetensors
    (written beside the checkpoint with ship=True, as `train` does); then <name>.<data hash>.logits.safetensors
    in `cache_dir` (default LOGITS_CACHE, ~/.cache/compression-playground). Each file records hashes of
    the checkpoint and of the data (Dataset.fingerprint) and is used only if both match; else the logits are computed
    and written to the cache (or, with ship=True, beside the checkpoint). compute=False: None instead of computing.
    """
    from safetensors import safe_open
    from safetensors.torch import save as safetensors_bytes
    model_card(name)  # an unknown name or a missing card: a clear ModelError
    weights = hashlib.blake2b((cards.SAMPLE_DIR / f"{name}.safetensors").read_bytes(), digest_size=16).hexdigest()
    key = {"model": name, "weights": weights, "data": data.name, "inputs": data.fingerprint()}  # computed once
    shipped = cards.SAMPLE_DIR / f"{name}.logits.safetensors"
    cached = Path(cache_dir or LOGITS_CACHE) / f"{name}.{key['inputs'][:16]}.logits.safetensors"
    for path in (shipped, cached):
        try:
            with safe_open(path, "pt") as f:
                if f.metadata() == key:
                    return {k: f.get_tensor(k) for k in ("train", "test")}
        except Exception:  # missing, unreadable or another format: the next place, or recompute below
            pass
    if not compute:
        return None
    out = all_logits(load_model(name), data)
    try:  # atomic: a concurrent reader never sees half a file
        write_atomic(shipped if ship else cached, safetensors_bytes(out, metadata=key))
    except OSError:  # a read-only or full disk: the answers are still right, only not kept
        pass
    return out


def kept_test_logits(name, data):
    """{"test": sample model `name`'s logits on data's test set} when they are kept on disk (shipped, as resnet-8's,
    or cached), else None, never computed: compress(model_logits=...) and dense_reference() then take the dense
    model's answers from them instead of evaluating it once more (ResNet-8: 5-7 s)."""
    kept = cached_logits(name, data, compute=False)
    return {"test": kept["test"]} if kept else None


def all_logits(model, data, progress=None):
    """`model`'s logits on every training and test input of `data`: {"train": (N, C), "test": (M, C)};
    progress(done, total) after each batch, over both sets (a ResNet takes about a minute for Fashion-MNIST's
    70,000 images on 2 cores, so a page can show how far it got); returning False from it stops (train.Stopped,
    nothing returned)."""
    total, out = len(data.x("train")) + len(data.x("test")), {}
    for split, offset in (("train", 0), ("test", len(data.x("train")))):
        out[split] = logits(model, data.x(split), progress=None if progress is None else
                            lambda done, _total, offset=offset: progress(offset + done, total)).contiguous()
    return out


# --- uploaded weights: read without running code, architecture inferred -------------------------

MAX_UPLOAD_BYTES = units.MAX_UPLOAD_MB * units.MB  # file size, in bytes
MAX_UPLOAD_PARAMS = 20_000_000  # elements over all tensors, checked before any tensor is touched
MAX_UPLOAD_TENSORS = 256
MAX_UPLOAD_INDEX = 1 << 20      # a safetensors JSON header / a checkpoint's pickle (a state dict's is KBs)
# read_state's caps (tensors, index bytes): an upload's; the command line's --weights, the user's own file of any
# model (no cap a real state dict meets; safetensors itself reads headers of up to 100 MB)
UPLOAD_CAPS, OWN_FILE_CAPS = (MAX_UPLOAD_TENSORS, MAX_UPLOAD_INDEX), (1 << 20, 100 << 20)
IMAGE, CLASSES = cards.IMAGE, cards.CLASSES  # Fashion-MNIST: 28x28 images of one channel, 10 classes
INPUTS = math.prod(IMAGE)
LENET5_KEYS = {f"{layer}.{p}" for layer in ("conv1", "conv2", "fc1", "fc2") for p in ("weight", "bias")}
MLP_KEY = re.compile(r"layers\.(\d{1,4})\.(weight|bias)")
RESNET_BLOCK = re.compile(r"blocks\.(\d{1,4})\.")
BN_COUNTER = ".num_batches_tracked"  # a BatchNorm's integer count of training batches; evaluation never reads it
SAVE_HINT = "save it with torch.save(model.state_dict(), path) or safetensors.torch.save_file(model.state_dict(), path)"
ARCH_HINT = ("an MLP state dict (layers.0.weight, layers.0.bias, layers.1.weight, ...: 784 inputs, 10 outputs), "
             "a LeNet-5 one (conv1, conv2, fc1, fc2: .weight and .bias each) or a ResNet one (stem, bn, blocks.0, "
             "blocks.1, ..., fc: 1 input channel, 10 outputs), as compress_engine's MLP / LeNet5 / ResNet name them")


def data_text(dataset=None):
    """The data an upload must run on, in words, from `dataset`'s input shape and labels (Fashion-MNIST's IMAGE and
    CLASSES without one): 'the data here (idx:/f) are 16x16 greyscale images (1 channel) in 5 classes'."""
    shape, name = (IMAGE, "Fashion-MNIST") if dataset is None else (dataset.input_shape, dataset.name)
    if len(shape) == 3:
        c, h, w = shape
        inputs = f"{h}x{w} greyscale images (1 channel)" if c == 1 else f"{h}x{w} images of {c} channels"
    elif len(shape) == 1:
        inputs = f"rows of {shape[0]} features"
    else:
        inputs = f"inputs of shape {'x'.join(map(str, shape))}"
    need, exact = outputs_needed(dataset)
    labels = (f"with {need} regression target(s) each" if dataset is not None and dataset.regression else
              f"with {need} multi-label tags" if dataset is not None and dataset.multilabel else f"in {need} classes")
    return f"the data here ({name}) are {inputs} {labels}"


def outputs_needed(dataset=None):
    """(n, exact) of the outputs a model for `dataset` must have: at least its classes (more are fine, as check_model
    has it), exactly its regression targets or tags; without data exactly Fashion-MNIST's CLASSES, as a sample model."""
    if dataset is None:
        return CLASSES, True
    if dataset.regression:
        return math.prod(dataset.label_shape), True
    return dataset.n_classes, dataset.multilabel


def _outputs_fit(n, dataset):
    need, exact = outputs_needed(dataset)
    return n == need if exact else n >= need


def _outputs_text(dataset):
    need, exact = outputs_needed(dataset)
    return f"{need}" if exact else f"{need} or more"


def pages_take(dataset=None):
    """Whether the dashboard's pages run on `dataset` (Fashion-MNIST without one): dataset.require(IMAGE, CLASSES),
    the pages' own data check."""
    try:
        if dataset is not None:
            dataset.require(input_shape=IMAGE, n_outputs=CLASSES)
    except DatasetError:
        return False
    return True


def _must(dataset, subject, verb="be"):
    """What a refusal says the model needed: "its sizes must be" where the sidebar takes such a model, else (on data
    no page takes, where the sidebar takes none) what a model for the engine and the command line would have."""
    if pages_take(dataset):
        return f"{subject} must {verb}"
    return {"be": "for the engine and the command line a model for these data has sizes",
            "take": "for the engine and the command line a model for these data must take"}[verb]


def sidebar_takes(dataset=None):
    """What the sidebar takes on `dataset` (Fashion-MNIST without one), as a clause ending a refusal: nothing on data
    the dashboard's pages cannot take (pages_take)."""
    if not pages_take(dataset):
        return (f"the sidebar takes no model on these data: the dashboard's pages (sample models and uploads) take "
                f"{IMAGE[1]}x{IMAGE[2]} greyscale images (1 channel) in at most {CLASSES} classes")
    shape, out = (IMAGE if dataset is None else dataset.input_shape), _outputs_text(dataset)
    takes = [f"an MLP of {math.prod(shape)} inputs and {out} outputs"]
    if shape == IMAGE:  # its outputs read from fc2.weight's rows
        takes.append(f"a LeNet-5 of {out} outputs")
    if len(shape) == 3:
        takes.append(f"a ResNet of {shape[0]} input channel(s) and {out} outputs")
    return "on these data the sidebar takes " + (", ".join(takes[:-1]) + " or " + takes[-1] if len(takes) > 1
                                                  else takes[0])


def command_line_text(name, dataset=None):
    """The sentence every refusal of an upload ends with: the engine and the command line take any PyTorch model, on
    any data: --data DATA, the data the model was made for (this server's `dataset` only where it was: a tabular
    model given the server's images fails on them)."""
    here = f"; this server's are {shlex.quote(cards.DEFAULT_DATA if dataset is None else dataset.name)}"
    return (f"Any other PyTorch model, or one made for other data, is compressed by the engine (ce.compress) and the "
            f"command line, which run your own code: python -m compress_engine run --model your_model.py:make_model "
            f"--weights {name} --data DATA (make_model returns your nn.Module; DATA is the data it was made for, "
            f"e.g. csv:yours.csv, idx:folder or npz:file.npz{here}; see the README's Command line)")


def refusal_tail(name, dataset=None):
    """How a refusal of upload `name` ends: what the sidebar takes on `dataset`, then the command line's way."""
    return f"{sidebar_takes(dataset)}. {command_line_text(name, dataset)}"


class OverLimit(ModelError):
    """A valid upload or artifact whose model is larger, or costs more to run, than the dashboard takes."""


# What the dashboard lets an upload's (or a checked artifact's) model cost per Fashion-MNIST image: it scores that
# model on the whole test set (10,000 images, in batches of 256: train.batches) in the session's own thread, so a
# model at these limits must score it in about a minute at 1 thread and hold under 1 GB per batch (measured on the
# 2-core machine: the commit adding them). FLOPs as flops.count counts them: ResNet-8 at twice its widths
# (296,344,576) fits, a one-block ResNet of width 128 (464,230,912) does not. The largest layer output: 256
# channels of 28x28 values (a LeNet-5 of 256 first filters makes 147,456).
MAX_UPLOAD_FLOPS = 300_000_000
MAX_UPLOAD_VALUES = 256 * INPUTS
UPLOAD_COST = (MAX_UPLOAD_FLOPS, MAX_UPLOAD_VALUES)


def cost(model, shape=IMAGE):
    """(FLOPs, the largest output of any layer in values) of one input of `shape` through `model`, FLOPs as
    flops.count counts them (its counter leaves torch._dynamo unimported, which a forward on the meta device imports:
    1.1 s on a first upload); None for a model that does not run on such an input (its evaluation fails at the first batch,
    saying why). The model runs once more, in eval mode (its mode is restored), on one zero input. A model that runs
    but whose FLOPs the counter fails to count raises the counter's error (check_cost refuses it, saying so)."""
    x = torch.zeros(1, *shape)
    sizes = [0]
    was = model.training
    model.eval()
    hooks = [m.register_forward_hook(lambda m, args, out: sizes.append(out.numel() if isinstance(out, torch.Tensor)
                                                                       else 0)) for m in model.modules()]
    try:
        with torch.no_grad():
            model(x)
    except Exception:  # noqa: BLE001 -- a mismatch of model and data, refused where it is evaluated
        return None
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    return flops.count(model, x), max(sizes)


def check_cost(model, shape, what):
    """Refuse (OverLimit) `model` if one input of `shape` costs more FLOPs, or makes a larger layer output, than
    UPLOAD_COST (FLOPs, values): scoring it would hold the dashboard's session for minutes and GBs (a LeNet-5 of
    4,000 first filters froze it for 400 s at 4.6 GB); and one whose FLOPs cannot be counted, which the limit would
    otherwise let through unchecked."""
    try:
        got = cost(model, shape)
    except Exception as e:  # noqa: BLE001 -- the counter's failure, whatever it is, is named in the refusal
        raise OverLimit(f"{what}'s FLOPs per input could not be counted ({type(e).__name__}: {str(e)[:200]}), so it "
                        "cannot be checked against the limits of models uploaded or checked here; the Python API and "
                        "the command line take it") from None
    if got is None:
        return
    for n, most, unit in zip(got, UPLOAD_COST, ("FLOPs per input", "values in its largest layer output")):
        if n > most:
            raise OverLimit(f"{what} needs {n:,} {unit}; models uploaded or checked here are limited to {most:,} "
                            "(the dashboard scores them on the whole test set as you wait); the Python API and "
                            "the command line take it")


def read_weights(data, filename, max_bytes=MAX_UPLOAD_BYTES, cost_limit=False, dataset=None):
    """An uploaded weight file (`data`: its bytes; `filename`: its name) -> the model it holds (eval mode); no byte of
    it can run code.

    `.safetensors` is read with safetensors; `.pt` / `.pth` must be torch.save's zip format and is
    read with torch.load(weights_only=True), which refuses pickled code and objects. Which of the two reads a file
    is decided by its first bytes when they say (a zip, or a safetensors header), so a file saved under the other
    format's suffix is read all the same; by the suffix otherwise. The content must
    be a state dict (possibly under "state_dict" or "model", its names possibly behind a prefix such as
    'module.' or 'model.') of an MLP of any sizes, a LeNet-5 of
    any widths or a ResNet of 1-6 blocks at any widths (BatchNorm or folded); the architecture is
    inferred from the names and shapes. Anything else (too big,
    empty, corrupt, code, non-tensors, unknown names, wrong shapes or dtypes, NaN/inf) raises
    ModelError naming the file, the problem and how to fix it. cost_limit=True (the dashboard's) also refuses a
    model costing more per input than UPLOAD_COST (check_cost: OverLimit); a Python caller's is not limited.
    The model must run on `dataset` (its inputs; at least as many outputs as it has classes, as check_model has it),
    or, without one, on Fashion-MNIST with its 10 outputs; a refusal names these data, what the sidebar takes on them
    and the command line (command_line_text).
    """
    name = _file_label(filename)
    suffix = Path(filename).suffix.lower()
    if suffix not in (".safetensors", ".pt", ".pth"):
        raise ModelError(f"{name}: weight files must end in .safetensors, .pt or .pth; {SAVE_HINT}")
    _check_upload_size(data, name, max_bytes)
    state = _strip_prefix(_as_state_dict(read_state(bytes(data), name, suffix), name))
    spec = infer_spec(state, name, dataset)
    flush_tiny_(state.values())  # they would make every evaluation of the upload several times slower
    try:
        model = from_state_dict(spec, state)
    except ModelError as e:
        raise ModelError(f"{name}: {e}") from None
    if dataset is not None:  # the engine's check, as Export's for an artifact (describe): the data's inputs and outputs
        try:
            check_model(model, dataset, name)
        except ModelError as e:
            raise ModelError(f"{e}; {refusal_tail(name, dataset)}") from None
    if cost_limit:  # before it is scored
        check_cost(model, IMAGE if dataset is None else dataset.input_shape, name)
    return model


def read_state(data, name, suffix, caps=UPLOAD_CAPS):
    """{tensor name: tensor} from a weight file's bytes (`name` says which file in messages, `suffix` is its name's),
    no byte of it running code: the sidebar's uploads (read_weights) and the command line's --weights read files here.

    Which reader takes the file is decided by what its first bytes are, not by its name: a zip is torch.save's (its
    entries checked, then torch.load(weights_only=True)), a safetensors header is safetensors' (which never
    unpickles), so a file saved under the other format's suffix is read all the same; other bytes by `suffix`. A
    training checkpoint's state dict under "state_dict" / "model" is taken out. `caps` (tensors, header or pickle
    bytes) bound what is read before any tensor is built: UPLOAD_CAPS for an upload, OWN_FILE_CAPS for a user's own
    file. ModelError names the file, what is wrong and how to save it."""
    if not data:
        raise ModelError(f"{name} is empty (0 bytes); {SAVE_HINT}")
    kind = next((k for magic, k in OTHER_FILES if data.startswith(magic)), None)
    if kind:  # a renamed file: say what it is, not what its first bytes mean read as a weight file's header
        raise ModelError(f"{name} is {kind}, not a weight file, though its name ends in {suffix}; {SAVE_HINT}")
    kind = "torch" if data[:4] == ZIP_MAGIC else "safetensors" if _looks_safetensors(data, caps) else None
    if kind is None and data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        kind = "torch"  # a pickle (protocol 2-5) under any name: the torch reader says what it is and refuses it
    if kind is None:
        kind = "safetensors" if suffix == ".safetensors" else "torch"
    loaded = _load_safetensors(data, name, caps) if kind == "safetensors" else _load_torch(data, name, caps)
    return _tensor_dict(_unwrap(loaded), name, caps)


# The first bytes of files people upload by mistake (torch.save's .pt is a zip: "PK" is not among them).
OTHER_FILES = ((b"\x89PNG\r\n\x1a\n", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
               (b"%PDF", "a PDF document"), (b"\x1f\x8b", "a gzip archive"),
               (MAGIC, "a compressed artifact (.cpg: the Export page opens those)"))


ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since PyTorch 1.6 is a zip file


def _looks_safetensors(data, caps=UPLOAD_CAPS):
    """Whether `data` begins as a safetensors file does: an 8-byte little-endian header length (at most caps' index
    bytes, so a zip's or a pickle's first bytes never pass) and then the JSON header's '{'."""
    return len(data) >= 10 and struct.unpack("<Q", data[:8])[0] <= caps[1] and data[8:9] == b"{"


def _file_label(filename):
    """The upload's name for messages (a str, shortened), refusing a non-str name."""
    if not isinstance(filename, str) or not filename:
        raise ModelError(f"an uploaded weight file needs a file name ending in .safetensors, .pt or .pth, "
                         f"got {filename!r:.80}")
    return repr(filename[:80])


def _check_upload_size(data, name, max_bytes):
    """Bytes, at most max_bytes (read_state refuses an empty file)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ModelError(f"{name}: weight data must be bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise ModelError(f"{name} is {_size(len(data))}; weight uploads are limited to {_size(max_bytes)} here "
                         "(the largest sample model is 9.6 MB)")


def _size(n):
    return units.size(n)  # the dashboard's convention: 1 MB = 1,000,000 bytes


def _load_safetensors(data, name, caps=UPLOAD_CAPS):
    """{name: tensor} from safetensors bytes, after checking the header length it claims."""
    from safetensors.torch import load
    if len(data) < 8:
        raise ModelError(f"{name} is {len(data)} bytes: too short for a safetensors file (8-byte header length)")
    (hlen,) = struct.unpack("<Q", data[:8])
    if hlen > len(data) - 8:
        raise ModelError(f"{name}: its safetensors header claims {hlen:,} bytes but only {len(data) - 8:,} follow "
                         "(truncated, or not a safetensors file)")
    if hlen > caps[1]:
        raise ModelError(f"{name}: its safetensors header is {hlen:,} bytes; more than {caps[1]:,} bytes "
                         "of tensor names and metadata is refused")
    try:
        header = json.loads(data[8:8 + hlen])
    except (ValueError, TypeError, RecursionError):
        header = {}  # safetensors itself explains what is wrong with the header, below
    entries = sum(k != "__metadata__" for k in header) if isinstance(header, dict) else 0
    if entries > caps[0]:
        raise ModelError(f"{name} holds {entries:,} tensors; the architectures here have at most {caps[0]:,}")
    try:
        loaded = load(data)
    except Exception as e:  # safetensors raises its own SafetensorError (and others) for any corruption
        raise ModelError(f"{name} is not a readable safetensors file ({str(e)[:160]}); {SAVE_HINT}") from None
    # in the file's order (load's is a hash map's, another at each call): messages list names in a stable order
    return {k: loaded[k] for k in sorted(loaded, key=lambda k: (header[k]["data_offsets"][0], k))}


def _load_torch(data, name, caps=UPLOAD_CAPS):
    """torch.load(weights_only=True) of a zip-format checkpoint whose zip entries were checked first."""
    if data[:1] == b"\x80":  # pickle protocol 2+: a bare pickle, or torch.save's pre-1.6 format
        raise ModelError(f"refused: {name} is a bare pickle or a pre-1.6 PyTorch checkpoint; only torch.save's "
                         f"zip format is read (with weights_only=True, so no code can run): {SAVE_HINT}")
    if data[:4] != ZIP_MAGIC:
        raise ModelError(f"{name} is not a PyTorch checkpoint (torch.save writes a zip file; this one starts "
                         f"with {data[:4]!r}); {SAVE_HINT}")
    _check_zip(data, name, caps)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "pickle protocol 4", TorchScript notices: the errors say it
            return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as e:  # weights_only's unpickler met something it will not build
        found = re.search(r"GLOBAL ([\w.]+)|got (<class '[\w.]+'>)", str(e))
        if found or "Can only" in str(e):
            what = f" ({found.group(1) or found.group(2)})" if found else ""
            raise ModelError(f"refused: {name} contains code/objects other than tensors{what}; {SAVE_HINT}") from None
        detail = re.search(r"Unsupported operand \d+|String is too long|[^\n]*persistent[^\n]*", str(e))
        raise ModelError(f"{name} is not a readable PyTorch checkpoint (corrupt pickle data: "
                         f"{detail.group(0)[:80] if detail else 'unreadable'}); {SAVE_HINT}") from None
    except Exception as e:  # corrupt zip records, TorchScript archives, truncated data, ...
        kind = "a TorchScript archive (code)" if "TorchScript" in str(e) else "corrupt or truncated"
        raise ModelError(f"{name} is not a readable state-dict checkpoint: {kind} ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:120] if str(e) else 'no detail'}); {SAVE_HINT}") from None


def _check_zip(data, name, caps=UPLOAD_CAPS):
    """Bound what torch.load may allocate, before it reads anything: torch.save writes uncompressed
    entries (a compressed one could claim gigabytes), one per tensor storage, and a small pickle."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as e:
        raise ModelError(f"{name} is not a readable PyTorch checkpoint (corrupt zip: {e}); {SAVE_HINT}") from None
    if any(i.filename.rsplit("/", 1)[-1] == "constants.pkl" or "/code/" in i.filename for i in entries):
        raise ModelError(f"refused: {name} is a TorchScript archive (torch.jit.save writes code with the weights), "
                         f"not a state dict: load it in your own Python with model = torch.jit.load(path), then "
                         f"{SAVE_HINT}")
    if any(i.compress_type != zipfile.ZIP_STORED for i in entries) or sum(i.file_size for i in entries) > len(data):
        raise ModelError(f"refused: {name} has compressed or oversized zip entries, which torch.save never "
                         f"writes; {SAVE_HINT}")
    pickles = [i.file_size for i in entries if i.filename.endswith(".pkl")]
    if len(entries) > 4 * caps[0] or sum(pickles) > caps[1]:
        raise ModelError(f"refused: {name} has {len(entries):,} zip entries and {sum(pickles):,} bytes of pickle; "
                         f"a state dict of at most {caps[0]:,} tensors needs far fewer; {SAVE_HINT}")
    try:  # torch.load reads no checksum: a flipped byte in a tensor would load as a wrong weight
        bad = archive.testzip()
    except (zipfile.BadZipFile, ValueError, EOFError, OSError) as e:
        bad = f"? ({e})"
    if bad is not None:
        raise ModelError(f"{name} is damaged: its zip entry {bad} fails its CRC-32 check (the file changed after "
                         f"torch.save wrote it, e.g. a broken download or copy); save or download it again")


def _unwrap(obj):
    """A training checkpoint's state dict: obj["state_dict"] or obj["model"] (up to two levels)."""
    for _ in range(2):
        if isinstance(obj, dict) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
            inner = [obj[k] for k in ("state_dict", "model") if isinstance(obj.get(k), dict)]
            if inner:
                obj = inner[0]
                continue
        break
    return obj


def _tensor_dict(obj, name, caps=UPLOAD_CAPS):
    """`obj` if it is a state dict: {str: tensor}, not empty, of at most caps' tensors; else ModelError."""
    if not isinstance(obj, dict):
        raise ModelError(f"{name} holds a {type(obj).__name__}, not a state dict (tensor names -> tensors); "
                         f"{SAVE_HINT}")
    if not obj:
        raise ModelError(f"{name} holds an empty state dict: no tensors to load; {SAVE_HINT}")
    if len(obj) > caps[0]:
        raise ModelError(f"{name} holds {len(obj):,} entries; the architectures here have at most {caps[0]:,}")
    for k, v in obj.items():
        if not isinstance(k, str):
            raise ModelError(f"{name}: entry name {k!r:.60} is a {type(k).__name__}; a state dict's names are "
                             f"strings such as 'layers.0.weight' ({SAVE_HINT})")
        if not isinstance(v, torch.Tensor):
            raise ModelError(f"{name}: entry {k[:60]!r} is a {type(v).__name__}, not a tensor; a state dict holds "
                             f"only tensors ({SAVE_HINT})")
    return obj


def _as_state_dict(obj, name):
    """A state dict read_state returned, as an upload's: at most MAX_UPLOAD_PARAMS weights -> {name: contiguous float32
    tensor} (finite; a BatchNorm's counter an int64 scalar)."""
    total = sum(v.numel() for v in obj.values())
    if total > MAX_UPLOAD_PARAMS:
        raise ModelError(f"{name} claims {total:,} weights; uploads are limited to {MAX_UPLOAD_PARAMS:,}")
    return {k: _bn_counter(k, v, name) if k.endswith(BN_COUNTER) else _float_tensor(k, v, name)
            for k, v in obj.items()}


def _bn_counter(key, t, name):
    """A BatchNorm's num_batches_tracked: one non-negative whole number (a file converted with .half() holds it as a
    float), kept as the int64 scalar BatchNorm holds."""
    ok = (t.numel() == 1 and t.layout == torch.strided and t.device.type == "cpu" and not t.is_quantized
          and not t.is_complex() and t.dtype != torch.bool)
    v = float(t.reshape(())) if ok else None
    if v is None or not (0 <= v < 2 ** 62 and v == int(v)):
        raise ModelError(f"{name}: tensor {key!r} must be one non-negative whole number (a BatchNorm's count of "
                         f"training batches), got a {t.dtype} tensor of shape {list(t.shape)}"
                         + (f" holding {v}" if v is not None else ""))
    return torch.tensor(int(v), dtype=torch.int64)


def _float_tensor(key, t, name):
    """One uploaded tensor as a dense float32 copy, refusing integer/bool/complex dtypes and NaN/inf."""
    kind = ("a quantized" if t.is_quantized else f"a {t.layout}" if t.layout != torch.strided
            else f"a {t.device.type}" if t.device.type != "cpu" else None)
    if kind:
        raise ModelError(f"{name}: tensor {key!r} is {kind} tensor; store plain dense float tensors "
                         f"({SAVE_HINT})")
    if not t.is_floating_point():
        raise ModelError(f"{name}: tensor {key!r} has dtype {t.dtype}; weights must be floating point "
                         "(float32, float16, bfloat16 or float64)")
    f = t.detach().to(torch.float32).contiguous()
    bad = f.numel() - int(torch.isfinite(f).sum())
    if bad:
        raise ModelError(f"{name}: tensor {key!r} has {bad:,} NaN or infinite value(s) (after conversion to "
                         "float32); such a model cannot be evaluated or compressed: fix the training run")
    return f


def _known_names(keys):
    """Whether tensor names are those of an architecture infer_spec reads (its shapes are checked later)."""
    return "stem.weight" in keys or set(keys) == LENET5_KEYS or all(MLP_KEY.fullmatch(k) for k in keys)


def _prefix_cuts(state):
    """`state`, then `state` with the first part of every name dropped (DataParallel's 'module.', Lightning's
    'model.', a wrapper's 'net.'), and so on, while every name has a first part and they all share it."""
    names = state
    while True:
        yield names
        heads = {k.partition(".")[0] for k in names}
        if len(heads) != 1 or not all("." in k for k in names):
            return
        cut = len(next(iter(heads))) + 1
        names = {k[cut:]: v for k, v in names.items()}


def _strip_prefix(state):
    """`state` without the name prefix its training code put before every tensor (one or several parts) when the names
    left are those of a known architecture; else `state` as it is (the refusal then quotes the names as the file has
    them)."""
    return next((names for names in _prefix_cuts(state) if _known_names(names)), state)


def strip_prefix_for(state, model_names):
    """`state` without the name prefix its training code put before every tensor, for a model whose names are known
    (the command line's --model): the cut whose names are most of `model_names` (the fewest cuts on a tie), so
    `state` as it is when no cut matches more of them; a mismatch is then named in the model's terms."""
    want = set(model_names)
    return max(_prefix_cuts(state), key=lambda names: len(want & set(names)))


def infer_spec(state, name="weights", dataset=None):
    """The spec of an MLP, LeNet-5 or ResNet state dict from its tensor names and shapes; ModelError otherwise, also
    for one that cannot run on `dataset` (on Fashion-MNIST without one).

    Only names and dimensions are read here; from_state_dict then checks every shape against the spec. On data the
    dashboard's pages do not take (pages_take) a model that fits them is still read, for a caller of the engine; a
    refusal then says what a model for them would be (for the engine and the command line) beside "the sidebar takes
    no model on these data", not what it "must be".
    """
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    if "stem.weight" in shapes:
        return _resnet_spec(state, shapes, name, dataset)
    if set(shapes) == LENET5_KEYS:
        _need_ndim(shapes, name, {"conv1.weight": 4, "conv2.weight": 4, "fc1.weight": 2, "fc2.weight": 2})
        _lenet_fits_the_data(shapes, name, dataset)
        return lenet_spec([shapes[f"{la}.weight"][0] for la in ("conv1", "conv2", "fc1")], shapes["fc2.weight"][0])
    layers = sorted({int(m.group(1)) for m in map(MLP_KEY.fullmatch, shapes) if m})
    expect = {f"layers.{i}.{p}" for i in range(len(layers)) for p in ("weight", "bias")}
    # LeNet-5's names are compared with only for a near LeNet-5 (most of them, and few others: a bias missing, a layer
    # more); a torchvision ResNet shares conv1.weight with it and is none. Else: say what the shapes look like
    near_lenet = len(LENET5_KEYS & set(shapes)) >= 6 and len(set(shapes) - LENET5_KEYS) <= 2
    if not layers and not near_lenet:
        raise ModelError(_unknown_layout(shapes, name, dataset))
    if not layers or set(shapes) != expect:
        near = expect if layers else LENET5_KEYS
        extra, missing = sorted(set(shapes) - near)[:4], sorted(near - set(shapes))[:4]
        raise ModelError(f"{name}: tensor names do not fit a known architecture (unexpected {extra}, missing "
                         f"{missing}); expected {ARCH_HINT}")
    _need_ndim(shapes, name, {f"layers.{i}.weight": 2 for i in layers})
    sizes = [shapes["layers.0.weight"][1]] + [shapes[f"layers.{i}.weight"][0] for i in layers]
    inputs = math.prod(IMAGE if dataset is None else dataset.input_shape)
    if sizes[0] != inputs or not _outputs_fit(sizes[-1], dataset):
        raise ModelError(f"{name}: an MLP of sizes {sizes} cannot run here: {data_text(dataset)} ({inputs} inputs "
                         f"each), so {_must(dataset, 'its sizes')} [{inputs}, ..., {_outputs_text(dataset)}]; "
                         f"{refusal_tail(name, dataset)}")
    return {"arch": "mlp", "sizes": sizes}


def _lenet_fits_the_data(shapes, name, dataset=None):
    """A LeNet-5 made for other images or classes, or one the data cannot take, refused saying so (as an MLP's or a
    ResNet's is): its input channels, its outputs (fc2.weight's rows, one a class: a 5-class LeNet-5 is read as one,
    and fits data of 5 classes), and fc1's inputs, which give the image size it was built for (each 5x5 conv takes 4
    pixels off a side, each 2x2 pool halves it: 28x28 images leave conv2's channels 4x4 each, 32x32 ones 5x5). The
    LeNet-5 here (compress_engine's LeNet5) takes 28x28 greyscale images."""
    cin, c2, fc1_in, classes = (shapes["conv1.weight"][1], shapes["conv2.weight"][0], shapes["fc1.weight"][1],
                                shapes["fc2.weight"][0])
    side = round((fc1_in / c2) ** 0.5)
    other_size = fc1_in != c2 * 16 and shapes["conv1.weight"][2:] == shapes["conv2.weight"][2:] == (5, 5)
    outputs_ok = _outputs_fit(classes, dataset)
    other_io = cin != 1 or not outputs_ok
    data_ok = (IMAGE if dataset is None else dataset.input_shape) == IMAGE
    if not (other_size or other_io or not data_ok):
        return
    head = (f"a LeNet-5 with {cin} input channel(s) and {classes} outputs" if other_io or not data_ok else
            f"a LeNet-5 whose fc1 takes {fc1_in} inputs")
    built = ""
    if other_size:
        built = ((f"it was built for {4 * side + 12}x{4 * side + 12} images (conv2's {c2} channels {side}x{side} "
                  "each after the second pooling)" if side > 0 and c2 * side * side == fc1_in else
                  f"its fc1 takes {fc1_in} inputs, which is not conv2's {c2} channels times a square image") + "; ")
    if not outputs_ok:
        built += (f"its fc2.weight is {list(shapes['fc2.weight'])}: {classes} outputs, one a class, for "
                  f"{_outputs_text(dataset)} classes here; ")
    musts = (["conv1.weight must be [.., 1, 5, 5]"] * (cin != 1)
             + [f"fc2.weight must have {_outputs_text(dataset)} rows (train it on these data, or choose the data it "
                f"was trained on)"] * (not outputs_ok)
             + [f"fc1.weight must be [.., {c2 * 16}]"] * other_size)
    musts = (", so it cannot run on these data" if not (data_ok and pages_take(dataset)) else
             f", so {' and '.join(musts)}" if musts else "")
    yours = "" if outputs_ok else f", and yours has {classes} outputs"
    raise ModelError(f"{name}: {head} cannot run here: {built}{data_text(dataset)}; the sidebar's LeNet-5 "
                     f"(compress_engine's LeNet5) takes {IMAGE[1]}x{IMAGE[2]} images of 1 channel (greyscale), which "
                     f"leave conv2's channels 4x4 each, and gives an output a class (fc2.weight's rows){yours}"
                     f"{musts}; {refusal_tail(name, dataset)}")


def _unknown_layout(shapes, name, dataset=None):
    """The refusal of a state dict whose names are none of the sidebar's architectures: which one its shapes come
    closest to (an MLP or a LeNet-5 under other names: the renaming that makes it one; a ResNet), or none (an
    LSTM, depthwise convolutions, GroupNorm, ...), and that the engine and the command line take any model."""
    weights = [k for k, s in shapes.items() if k.endswith("weight") and len(s) >= 2]  # Linear / conv, file order
    linear = [shapes[k] for k in weights if len(shapes[k]) == 2]
    convs = [shapes[k] for k in weights if len(shapes[k]) == 4]
    layers = [k[:-len("weight")] for k in weights]  # 'net.1.', 'features.0.', ...
    bias_only = all(k in weights or (len(s) == 1 and k.endswith("bias") and k[:-4] in layers)
                    for k, s in shapes.items())  # nothing but Linear / conv weights and their biases
    chain = all(a[0] == b[1] for a, b in zip(linear, linear[1:]))
    # depthwise: a conv taking 1 channel per group ([out, 1, k, k], out > 1) when there are several: one of them may
    # take the greyscale image (and the file's order need not be the forward's), the others are depthwise. A grouped
    # conv of g > 1 channels per group is not told apart: its weight's [out, in / groups, k, k] looks like a plain
    # conv's, and matching in / groups against the earlier layers' outputs calls a ResNet's 1x1 shortcut (its
    # block's input, not the conv before it) or a conv after a concatenation grouped, which they are not
    depthwise = [k for k in weights if len(shapes[k]) == 4 and shapes[k][1] == 1 < shapes[k][0]][1:]
    odd = ([f"recurrent layers ({k})" for k in shapes if re.search(r"weight_[ih]h", k)][:1]
           + [f"depthwise or grouped convolutions ({k} {list(shapes[k])})" for k in depthwise][:1]
           + [f"norms without running statistics (GroupNorm or LayerNorm: {k})" for k, s in shapes.items()
              if k.endswith("weight") and len(s) == 1 and k[:-len("weight")] + "running_mean" not in shapes][:1]
           + [f"a {len(s)}-D tensor ({k} {list(s)})" for k, s in shapes.items()
              if len(s) not in (1, 2, 4) and not k.endswith(BN_COUNTER[1:])][:1])  # a BatchNorm's counter is 0-D

    def rename(target):
        return ", ".join(f"{a}* to {b}.*" for a, b in list(zip(layers, target))[:4]) + (", ..." if len(layers) > 4
                                                                                         else "")

    def refused_renamed(target):
        """Why the file, renamed layer by layer to `target`, would still be refused ('' if it would load): renaming is
        suggested only then. Its shapes go through infer_spec and from_state_dict's check, on the meta device."""
        fake = {}
        for k, s in shapes.items():
            i = next(i for i, p in enumerate(layers) if k.startswith(p) and k[len(p):] in ("weight", "bias"))
            fake[f"{target[i]}.{k[len(layers[i]):]}"] = torch.empty(s, device="meta")
        try:
            spec = infer_spec(fake, name, dataset)
            with torch.device("meta"):
                problems = state_mismatch(build(spec), fake)
        except ModelError as e:
            return str(e).removeprefix(f"{name}: ").removesuffix(f"; {refusal_tail(name, dataset)}")
        return f"its tensors would not fit ({problems})" if problems else ""

    own_data = ("the command line below runs it as your code defines it, without renaming, on these data or your own "
                "(--data)")
    if not odd and bias_only and not convs and linear and chain:
        sizes = [linear[0][1]] + [w[0] for w in linear]
        target = [f"layers.{i}" for i in range(len(linear))]
        near = (f"its shapes are those of an MLP {'-'.join(map(str, sizes))} (Linear layers only, as "
                "nn.Sequential(Flatten, Linear, ReLU, Linear, ...) saves them)")
        why = refused_renamed(target)
        near += (f", which the sidebar cannot take under any names: {why}; {own_data}" if why else
                 "; the weights do not say which activation is between the layers, and the MLP here has ReLU: if "
                 f"yours does too, rename {rename(target)} and upload it again")
    elif not odd and bias_only and [len(shapes[k]) for k in weights] == [4, 4, 2, 2]:
        target = ["conv1", "conv2", "fc1", "fc2"]
        near = "its shapes are those of a LeNet-5 (two convolutions, then two Linear layers)"
        why = refused_renamed(target)
        near += (f", which the sidebar cannot take under any names: {why}; {own_data}" if why else
                 "; if it computes what compress_engine's LeNet5 does (5x5 conv, 2x2 max-pool, ReLU, twice, then "
                 f"fc1, ReLU, fc2), rename {rename(target)} and upload it again")
    elif not odd and convs and any(k.endswith("running_mean") for k in shapes):
        near = ("its shapes (convolutions with BatchNorm) come closest to the ResNet here, whose tensors are named "
                "stem, bn, blocks.0.conv1, blocks.0.bn1, ..., fc (compress_engine.playground.zoo.ResNet)")
    else:
        near = "its shapes come closest to none of them" + (f": it has {', '.join(odd)}" if odd else "")
    found = few(shapes, 4)
    return (f"{name}: tensor names ({found}) do not fit a known architecture, and {near}. The sidebar takes "
            f"{ARCH_HINT}; {refusal_tail(name, dataset)}")


def _resnet_spec(state, shapes, name, dataset=None):
    """A ResNet's spec from its stem, blocks and fc (from_state_dict then checks every other tensor). A state dict
    saved without BatchNorm's batch counters gets them (as 0) here, in place: evaluation never reads them."""
    blocks = sorted({int(m.group(1)) for m in map(RESNET_BLOCK.match, shapes) if m})
    if not 1 <= len(blocks) <= 6 or blocks != list(range(len(blocks))):
        raise ModelError(f"{name}: a ResNet state dict needs blocks.0, blocks.1, ... (1 to 6 of them, numbered from "
                         f"0), found blocks {blocks[:8]}; expected {ARCH_HINT}")
    convs = [f"blocks.{i}.conv{j}.weight" for i in blocks for j in (1, 2)]
    missing = [k for k in ["fc.weight", *convs] if k not in shapes]
    if missing:
        raise ModelError(f"{name}: a ResNet state dict (it has stem.weight) is missing {missing[:4]}; "
                         f"expected {ARCH_HINT}")
    _need_ndim(shapes, name, {"stem.weight": 4, "fc.weight": 2, **{k: 4 for k in convs}})
    spec = {"arch": "resnet", "widths": [shapes[f"blocks.{i}.conv2.weight"][0] for i in blocks],
            "inner": [shapes[f"blocks.{i}.conv1.weight"][0] for i in blocks], "batchnorm": "bn.weight" in shapes,
            "in_channels": shapes["stem.weight"][1], "classes": shapes["fc.weight"][0]}
    shape = IMAGE if dataset is None else dataset.input_shape
    if len(shape) != 3 or spec["in_channels"] != shape[0] or not _outputs_fit(spec["classes"], dataset):
        raise ModelError(f"{name}: a ResNet with {spec['in_channels']} input channel(s) and {spec['classes']} "
                         f"outputs cannot run here: {data_text(dataset)}, so {_must(dataset, 'it', 'take')} "
                         + (f"{shape[0]} input channel(s)" if len(shape) == 3 else "images")
                         + f" and have {_outputs_text(dataset)} outputs; {refusal_tail(name, dataset)}")
    if spec["batchnorm"]:
        for key in [k[:-len("running_mean")] for k in shapes if k.endswith(".running_mean")]:
            state.setdefault(key + BN_COUNTER[1:], torch.tensor(0))
    return spec


def _need_ndim(shapes, name, ndims):
    """Each named weight must have the given number of dimensions (and none of them 0) before its
    dimensions are read as layer widths."""
    for key, nd in ndims.items():
        if len(shapes[key]) != nd or 0 in shapes[key]:
            raise ModelError(f"{name}: tensor {key!r} has shape {list(shapes[key])}, expected {nd} non-zero "
                             f"dimensions; expected {ARCH_HINT}")


# --- training the sample models -------------------------------------------------------------

def train_sample(name, data, progress=None, out_dir=None):
    """Train sample model `name` from scratch with its recorded recipe; write its checkpoint and card to `out_dir`
    (default: the shipped ones, replaced, with its scans and, for the teacher, its logits).

    Seeded, so the same machine reproduces the same weights. Returns the card (a dict).
    """

    from safetensors.torch import save as safetensors_bytes
    spec, recipe = SAMPLES[name]
    threads = torch.get_num_threads()
    torch.set_num_threads(recipe.get("threads", threads))  # recorded so a rebuild uses the same float sums
    torch.manual_seed(recipe["seed"])
    model = build(spec)
    if has_conv(model):
        model = model.to(memory_format=torch.channels_last)
    aug = recipe.get("augment")
    t0, cpu0 = time.perf_counter(), time.process_time()
    try:
        fit(model, data, epochs=recipe["epochs"], lr=recipe["lr"], batch_size=recipe["batch_size"],
            weight_decay=recipe["weight_decay"], seed=recipe["seed"], progress=progress,
            momentum=recipe.get("momentum"), warmup=recipe.get("warmup_steps", 100),
            transform=crop_flip(aug["crop_pad"], aug.get("hflip", True)) if aug else None)
    finally:
        seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - cpu0
        torch.set_num_threads(threads)
    model = model.to(memory_format=torch.contiguous_format)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    flush_tiny_(state.values())  # fit() flushes as it trains; this keeps the saved file clean whatever trained it
    acc = accuracy(model, data.x("test"), data.y("test"))
    out_dir = Path(out_dir) if out_dir else cards.SAMPLE_DIR
    write_atomic(out_dir / f"{name}.safetensors", safetensors_bytes(state))
    card = {
        "name": name,
        "description": DESCRIPTIONS[name],
        "spec": spec,
        "parameters": param_count(model),
        **card_sizes(model),
        "test_accuracy": round(acc, 4),
        "test_set": cards.test_set_text(data),
        "training": dict(recipe, optimizer=(f"SGD, Nesterov momentum {recipe['momentum']}" if recipe.get("momentum")
                                            else "Adam") + ", linear warm-up then cosine decay",
                         loss="cross-entropy", train_images=len(data.y("train")), seconds=round(seconds, 1),
                         cpu_seconds=round(cpu_seconds, 1), threads=recipe.get("threads", threads),
                         torch=torch.__version__, machine=platform.machine()),
        "reproduce": f"python -m compress_engine train {name}",
        "test_head": card_head(model, data),
    }
    write_atomic(out_dir / f"{name}.json", json.dumps(card, indent=2) + "\n")
    if recipe.get("ship_logits") and out_dir == cards.SAMPLE_DIR:
        cached_logits(name, data, ship=True)  # the default distillation teacher: its answers ship with it
    if out_dir == cards.SAMPLE_DIR:
        ship_scans(name, data)  # the Sensitivity page's scans of the new weights
    return card


# --- the sensitivity scans shipped beside the sample models -------------------------------------------

BUDGET_FOCUS = 1.0  # Recipe.prune_focus of the Sensitivity page's budget fit with its focus box ticked (bench/beyond.py)
# The Sensitivity page's scans of a model, as sensitivity.scan's keyword arguments: the one-shot scan it draws, and
# the re-fitted scans on training images that its "Fit in N KB" starts from, without and with prune focus.
PAGE_SCANS = ({}, {"split": "train", "refit": True}, {"split": "train", "refit": True, "focus": BUDGET_FOCUS})


def scan_dir(name):
    """Where sample model `name`'s shipped sensitivity scans are, as <key>.json (read-only to the dashboard)."""
    return cards.SAMPLE_DIR / "scans" / name


def ship_scans(name, data, progress=None):
    """Compute PAGE_SCANS of sample model `name` on `data` and write them to scan_dir(name), replacing what was
    there (scans of earlier weights): the Sensitivity page then draws at once for every sample model (ResNet-8's
    one-shot scan alone takes 11 minutes at one thread). train_sample does it after training; `python -m
    compress_engine scans NAME` does it alone (e.g. after sensitivity.FORMAT changes): a scan of these weights and
    format already in the folder is read, not computed again. Returns the scans' files."""
    from ..core import sensitivity
    model, folder = load_model(name), scan_dir(name)
    keys = [sensitivity.scan(model, data, cache_dir=folder, progress=progress, **kw)["key"] for kw in PAGE_SCANS]
    for old in folder.glob("*.json"):
        if old.stem not in keys:
            old.unlink()
    paths = [folder / f"{k}.json" for k in keys]
    for p in paths:
        p.chmod(0o644)  # written through a private temporary file; shipped files are for everyone to read
    return paths
