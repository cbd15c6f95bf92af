"""compress(): the one chain every page, script and benchmark runs.

    [distill teacher -> student] -> prune -> [fine-tune] -> cluster | quantize -> [fine-tune] -> encode -> metrics

Each fine-tuning stage keeps the constraints of the stages before it (torch parametrizations):
pruned weights stay zero, clustered weights stay on their (trained) centroids, quantized weights
stay on their grid. The artifact's length is the size; decoding it gives the exact final weights.
"""

import copy
import math
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.utils.parametrize as P

from . import cluster, prune, quantize
from ..playground import zoo as models
from .encode import Affine, Codebook, decode, encode, read_meta, size_breakdown
from .distill import distill
from .errors import CompressError
from .recipe import Recipe
from .train import fast_eval_copy, fit, has_conv, logits, median_forward_ms


@dataclass
class Result:
    model: torch.nn.Module      # the compressed model (weights exactly as decoded from `artifact`)
    metrics: dict               # deterministic numbers: parameters, bytes, ratio, accuracy, per layer
    artifact: bytes             # encode()d weights + spec + recipe; len(artifact) is the size
    recipe: Recipe
    history: dict = field(default_factory=dict)   # stage -> list of training losses
    timings: dict = field(default_factory=dict)   # wall-clock seconds per stage (not deterministic)


# --- dense reference, computed once per (model, dataset) ----------------------------------------

_reference = weakref.WeakKeyDictionary()


def reference(model, data):
    """Predictions and accuracy of the uncompressed `model` on the test set (cached per model object).

    The cache assumes sample models are not changed in place; compress() never changes its input.
    """
    hit = _reference.get(model)
    if hit is None or hit[0] is not data:
        pred = logits(fast_eval_copy(model), data.x("test")).argmax(1)
        hit = (data, pred, (pred == data.y("test")).float().mean().item())
        _reference[model] = hit
    return hit[1], hit[2]


# --- constraints during fine-tuning -----------------------------------------------------------

def _owner(model, name):
    """(module, attribute) of a parameter name such as 'layers.0.weight'."""
    path, _, attr = name.rpartition(".")
    return model.get_submodule(path), attr


@contextmanager
def constrained(model, parametrizations, freeze_original=False):
    """Register {param name: parametrization} on `model`; on exit bake them into plain weights."""
    for name, par in parametrizations.items():
        module, attr = _owner(model, name)
        P.register_parametrization(module, attr, par)
        if freeze_original:
            getattr(module.parametrizations, attr).original.requires_grad_(False)
    try:
        yield model
    finally:
        for name in parametrizations:
            module, attr = _owner(model, name)
            P.remove_parametrizations(module, attr, leave_parametrized=True)
            getattr(module, attr).requires_grad_(True)


class _Progress:
    """Turns each stage's (step, total) into one count over the whole recipe for the caller."""

    def __init__(self, callback, total):
        self.callback, self.total, self.done = callback, total, 0

    def stage(self, steps):
        if self.callback is None:
            return None
        offset = self.done
        self.done += steps

        def report(step, _total, loss, acc):
            return self.callback(offset + step, self.total, loss, acc)
        return report


def _gradual(model, masks_par, final, scope, total):
    """on_step hook: Zhu & Gupta cubic ramp to `final` sparsity over the first 3/4 of fine-tuning,
    re-computing magnitude masks every ~1 % of steps on the currently kept weights."""
    ramp = max(1, int(total * 0.75))
    every = max(1, total // 100)

    def on_step(step, _total):
        if step % every or step > ramp:
            return
        s = prune.cubic_sparsity(step + every, ramp, final)
        kept = {name: (par.mask * _owner(model, name)[0].parametrizations.weight.original).detach()
                for name, par in masks_par.items()}
        new = prune.layer_masks(kept, s) if scope == "layer" else prune.global_masks(kept, s)
        for name, par in masks_par.items():
            par.mask.copy_(new[name] & par.mask)
    return on_step


# --- the chain --------------------------------------------------------------------------------

def compress(model, recipe, data, progress=None, measure_latency=False):
    """Apply `recipe` to (a copy of) `model`, evaluate on data's full test set, encode; return a Result.

    progress(step, total, loss, accuracy) reports every training stage as one count; return False
    from it to stop (raises train.Stopped, nothing is returned). Same recipe + seed => same numbers.
    """
    if not isinstance(recipe, Recipe):
        raise CompressError(f"recipe must be a compress_engine.Recipe, got {type(recipe).__name__}")
    r = recipe
    timings, history = {}, {}
    t_start = time.perf_counter()
    ref_pred, ref_acc = reference(model, data)
    dense_params = models.param_count(model)
    work = copy.deepcopy(model).to(memory_format=torch.contiguous_format).eval()
    steps_per_epoch = math.ceil(len(data.y("train")) / 128)
    n_ft = (r.sparsity > 0) + (r.clusters is not None or r.bits is not None)
    total = steps_per_epoch * ((r.distill_epochs if r.temperature else 0) + r.finetune_epochs * n_ft)
    tracker = _Progress(progress, total)
    tune = dict(lr=r.lr, seed=r.seed)

    def tick(stage, t0):
        timings[stage] = time.perf_counter() - t0
        return time.perf_counter()

    t = time.perf_counter()
    if r.temperature is not None:
        torch.manual_seed(r.seed)
        student = models.student(r.student_width)
        history["distill"] = distill(work, student, data, r.temperature, r.alpha, r.distill_epochs,
                                     seed=r.seed, progress=tracker.stage(steps_per_epoch * r.distill_epochs))
        work = student.eval()
        t = tick("distill", t)

    masks = None
    if r.sparsity > 0:
        epochs = r.finetune_epochs
        stage = tracker.stage(steps_per_epoch * epochs)
        if r.structured:
            work = models.shrink(work, lambda w: prune.structured_keep(w, r.sparsity))
            if epochs:
                history["prune"] = fit(work, data, epochs, progress=stage, **tune)
        elif r.schedule == "gradual":
            masks = {n: torch.ones_like(p, dtype=torch.bool) for n, p in prune.compressible(work).items()}
            pars = {n: prune.Masked(m) for n, m in masks.items()}
            with constrained(work, pars):
                hook = _gradual(work, pars, r.sparsity, r.prune_scope, epochs * steps_per_epoch)
                history["prune"] = fit(work, data, epochs, progress=stage, on_step=hook, **tune)
            masks = {n: par.mask.clone() for n, par in pars.items()}
            prune.apply_masks(work, masks)
        else:
            masks = prune.model_masks(work, r.sparsity, r.prune_scope)
            prune.apply_masks(work, masks)
            if epochs:
                with constrained(work, {n: prune.Masked(m) for n, m in masks.items()}):
                    history["prune"] = fit(work, data, epochs, progress=stage, **tune)
        t = tick("prune", t)

    grids = {}
    if r.clusters is not None:
        ks = {n: r.conv_clusters if r.conv_clusters and p.dim() == 4 else r.clusters
              for n, p in prune.compressible(work).items()}
        books = cluster.cluster_model(work, ks, r.cluster_init, masks, r.seed)
        if r.finetune_epochs:
            pars = {n: cluster.Shared(c, lab) for n, (c, lab) in books.items()}
            with constrained(work, pars, freeze_original=True):
                history["cluster"] = fit(work, data, r.finetune_epochs,
                                         progress=tracker.stage(steps_per_epoch * r.finetune_epochs), **tune)
            books = {n: (par.centroids.detach(), par.labels) for n, par in pars.items()}
        # a layer pruned to nothing has no centroids: its (all-zero) weights need no codebook
        grids = {n: Codebook(c.numpy().astype("float32")) for n, (c, _) in books.items() if len(c)}
        t = tick("cluster", t)
    elif r.bits is not None:
        qp = quantize.quantize_model(work, r.bits, r.symmetric, r.per_channel, r.calibration, masks)
        if r.finetune_epochs:
            pars = {n: quantize.FakeQuantSTE(*qp[n], mask=None if masks is None else masks[n]) for n in qp}
            with constrained(work, pars):
                history["quantize"] = fit(work, data, r.finetune_epochs,
                                          progress=tracker.stage(steps_per_epoch * r.finetune_epochs), **tune)
        grids = {n: Affine(s.numpy().astype("float32"), zp.numpy(), qmin, qmax)
                 for n, (s, zp, qmin, qmax) in qp.items()}
        t = tick("quantize", t)

    work.eval()
    state = {k: v.detach().contiguous() for k, v in work.state_dict().items()}
    meta = {"spec": models.spec_of(work), "recipe": r.to_dict()}
    artifact = encode(state, grids, meta, huffman=r.huffman)
    t = tick("encode", t)

    pred = logits(fast_eval_copy(work), data.x("test")).argmax(1)
    t = tick("evaluate", t)
    metrics = measure(work, grids, artifact, dense_params, pred, data.y("test"), ref_pred, ref_acc)
    if measure_latency:
        timings.update(latency(work))
    timings["total"] = time.perf_counter() - t_start
    return Result(work, metrics, artifact, r, history, timings)


def measure(model, grids, artifact, dense_params, pred, y, ref_pred, ref_acc):
    """Deterministic metrics of a compressed model: counts, real bytes, ratio, accuracy, agreement."""
    layers = []
    parts = size_breakdown(artifact)
    for name, p in model.state_dict().items():
        g = grids.get(name)
        levels = (len(g.values) if isinstance(g, Codebook) else
                  g.qmax - g.qmin + 1 if isinstance(g, Affine) else None)
        layers.append({"name": name, "shape": list(p.shape), "params": p.numel(),
                       "nonzero": int(torch.count_nonzero(p)), "levels": levels,
                       "bytes": sum(parts["per_tensor"].get(name, {}).values())})
    params = sum(row["params"] for row in layers)
    nonzero = sum(row["nonzero"] for row in layers)
    acc = (pred == y).float().mean().item()
    return {
        "params": params, "nonzero_params": nonzero, "dense_params": dense_params,
        "sparsity": 1 - nonzero / dense_params,
        "dense_bytes": 4 * dense_params, "artifact_bytes": len(artifact),
        "ratio": 4 * dense_params / len(artifact),
        "accuracy": acc, "dense_accuracy": ref_acc,
        "agreement": (pred == ref_pred).float().mean().item(),
        "bytes_breakdown": {k: v for k, v in parts.items() if k != "per_tensor"},
        "layers": layers,
    }


def latency(model, batch_size=256, repeats=20):
    """Median CPU wall time of one forward pass over a batch of 28x28 images (milliseconds)."""
    m = fast_eval_copy(model)
    x = torch.rand(batch_size, 1, 28, 28)
    if has_conv(m):
        x = x.contiguous(memory_format=torch.channels_last)
    return {"latency_ms": median_forward_ms(m, x, repeats), "latency_batch": batch_size}


def decode_model(artifact):
    """Rebuild the compressed model an artifact holds: (model, meta). Bad bytes raise ArtifactError."""
    state = decode(artifact)
    meta = read_meta(artifact)
    spec = meta.get("spec") if isinstance(meta, dict) else None
    return models.from_state_dict(spec, state), meta


def evaluate_artifact(artifact, data):
    """Decode an artifact, rebuild its model and score it on data's test set."""
    model, meta = decode_model(artifact)
    pred = logits(fast_eval_copy(model), data.x("test")).argmax(1)
    return {"accuracy": (pred == data.y("test")).float().mean().item(), "artifact_bytes": len(artifact),
            "params": models.param_count(model), "nonzero_params": sum(int(torch.count_nonzero(p)) for p in model.parameters()),
            "meta": meta, "model": model}


def sweep(model, recipe, data, field_name, values, progress=None):
    """compress() at each value of one recipe field; returns one metrics dict per value (plus the value)."""
    rows = []
    for i, v in enumerate(values):
        res = compress(model, recipe.replace(**{field_name: v}), data)
        rows.append({field_name: v, **{k: res.metrics[k] for k in
                     ("params", "nonzero_params", "artifact_bytes", "ratio", "accuracy", "agreement")}})
        if progress and progress(i + 1, len(values), None, res.metrics["accuracy"]) is False:
            break
    return rows
