"""Per-layer sensitivity: how much each layer's accuracy and bytes move when only that layer is compressed.

Layers differ by an order of magnitude in how much compression they take (Han et al. 2015, fig. 6;
Distiller's and NNI's sensitivity analysis). `scan` compresses one layer at a time, the others left
dense, over a grid of settings: magnitude pruning at each sparsity, k-means weight sharing at each
cluster count (k clusters = log2 k bits a weight), and every pair of the two. For each point it records

- accuracy on a fixed subset of a split (the same images every time, so points compare exactly),
- KL(dense || compressed), the mean divergence of the model's predictions from the dense model's
  (cached once per scan): a smooth measure of damage that still moves where accuracy is flat,
- bytes: what that layer alone costs in the artifact at that setting, measured by the encoder
  (encode.tensor_bytes), so "cheap bytes" are real bytes.

The pruning and clustering are those of the pipeline (prune.magnitude_mask, cluster.cluster_weight),
one-shot, without fine-tuning: the scan ranks layers, fine-tuning then recovers much of what it shows
lost. budget.py turns a scan into per-layer settings under a byte budget.

Each setting recomputes only the part of the model downstream of its layer (rerun.Reruns: the same bits as
evaluating the whole model), so a scan at one thread takes 4 s (LeNet-300-100), 27 s (LeNet-5) and 11 min
(ResNet-8), where whole evaluations took 5 s, 49 s and 22 min (bench/scans.py); the Sensitivity page's, at 2
threads, 6 min for an uploaded ResNet-8 (15 before). It reports progress, can be stopped, and is kept on disk
keyed by the model's weights, the data subset and the grid (`cache_dir`; default $COMPRESS_CACHE or
~/.cache/compression-playground/sensitivity), so it is computed once per model. `shipped` directories are read
after it and never written: the sample models' scans ship beside them (zoo.ship_scans), so the dashboard shows
those at once.
"""

import hashlib
import json
import math
import numbers
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import cluster, prune, train
from .encode import Codebook, tensor_bytes
from .data import IGNORE, SPLITS, check_dataset
from .errors import RecipeError
from .files import write_atomic
from .recipe import check
from .rerun import Reruns
from .model import check_model, compressible, owner, plain_module
from .train import Stopped, fast_eval_copy, logits, match_rate, r2_score

FORMAT = 4  # bump when the same model and grid would scan to different numbers (encoder or algorithm changes); a
# change that moves only some models' numbers may name itself in those models' keys instead (_variant)
SPARSITIES = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99)
CLUSTERS = (None, 64, 32, 16, 8, 4, 2)   # None: the kept weights stay float32
SUBSET = 2000                            # images the scan evaluates (a fixed, seeded choice of the split)


def default_cache_dir():
    """$COMPRESS_CACHE/sensitivity, else ($XDG_CACHE_HOME or ~/.cache)/compression-playground/sensitivity."""
    env = os.environ.get("COMPRESS_CACHE")
    base = Path(env).expanduser() if env else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "compression-playground"
    return base / "sensitivity"


# --- arguments ------------------------------------------------------------------------------------

def _check_grid(sparsities, clusters, split, subset):
    def bad(name, value, allowed):
        raise RecipeError(f"sensitivity {name}={str(value)[:80]}: {allowed}")
    try:
        sparsities = sorted({float(s) for s in sparsities})
        clusters = list(dict.fromkeys(clusters))
    except (TypeError, ValueError):
        bad("grid", (sparsities, clusters), "sparsities must be numbers and clusters a list of counts or None")
    if not sparsities or not all(0.0 <= s <= 0.999 for s in sparsities):
        bad("sparsities", sparsities, "give one or more numbers between 0.0 and 0.999")
    for k in clusters:
        if k is not None and (isinstance(k, bool) or not isinstance(k, numbers.Integral)
                              or not cluster.MIN_K <= k <= cluster.MAX_K):
            bad("clusters", k, f"each must be None (float32) or an integer in {cluster.MIN_K}..{cluster.MAX_K}")
    if not clusters:
        bad("clusters", clusters, "give one or more cluster counts (None = float32)")
    if split not in SPLITS:
        bad("split", split, f"must be one of {', '.join(SPLITS)}")
    if isinstance(subset, bool) or not isinstance(subset, numbers.Integral) or subset < 1:
        bad("subset", subset, "must be a whole number of images >= 1")
    clusters = [None] * (None in clusters) + sorted((k for k in clusters if k is not None), reverse=True)
    return sparsities, clusters


def subset_index(n, size, seed=0):
    """The fixed images a scan evaluates: `size` of n, chosen by a seeded permutation (all n if size >= n)."""
    if size >= n:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:size].sort().values


# --- the cache key --------------------------------------------------------------------------------

def _hash_tensors(h, items):
    for name, t in items:
        t = t.detach().contiguous().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(memoryview(t.numpy()).cast("B"))


def scan_key(model, x, y, sparsities, clusters, split):
    """Hash of what a scan's numbers depend on: the model's class and state, the evaluated images and labels,
    the grid and FORMAT."""
    h = hashlib.sha256(f"{FORMAT}|{type(model).__qualname__}|{split}|{sparsities}|{clusters}|".encode())
    _hash_tensors(h, model.state_dict().items())
    _hash_tensors(h, [("x", x), ("y", y)])
    return h.hexdigest()[:32]


def _read_cache(path):
    try:
        out = json.loads(path.read_text())
        return out if isinstance(out, dict) and out.get("format") == FORMAT else None
    except (OSError, ValueError):  # missing, unreadable or damaged: a miss, never an error
        return None


def _write_cache(path, result):
    """Write atomically: a concurrent reader sees the whole scan or none."""
    try:
        write_atomic(path, json.dumps(result))
    except OSError:  # a read-only or full disk: the scan is still returned, just not kept
        pass


def _variant(split, refit, focus, model):
    """The part of a scan's key beyond model, images and grid. A re-fitted scan of `model` with a unit of more than
    REFIT_MAX_INPUTS inputs, which refit no longer solves, names the cap too: its numbers differ from what the same
    model and grid scanned to before the cap, and such a scan kept on disk then must not be found. So does one of a
    model with a layer whose refit could cost more than REFIT_MAX_FLOPS (every unit solving all the inputs it may),
    which refit then may leave unsolved. Every other scan's numbers are as before the caps, so its key is too (the
    sample models' shipped scans stay valid, as a FORMAT bump would not leave them)."""
    shapes = [(p.shape[0], p[0].numel()) for p in compressible(model).values() if p.dim()] if refit else []
    capped = any(fan_in > REFIT_MAX_INPUTS for _, fan_in in shapes)
    costly = any(solve_flops(torch.full((out,), min(fan_in, REFIT_MAX_INPUTS))) > REFIT_MAX_FLOPS
                 for out, fan_in in shapes)
    return (split + ("+refit" if refit else "") + (f"+refitmax{REFIT_MAX_INPUTS}" if capped else "")
            + (f"+refitflops{REFIT_MAX_FLOPS:.0e}" if costly else "") + (f"+focus{float(focus)!r}" if focus else ""))


def cached(model, data, sparsities=SPARSITIES, clusters=CLUSTERS, split="test", subset=SUBSET, cache_dir=None,
           refit=False, focus=0.0, shipped=()):
    """The kept scan for these arguments (in cache_dir, else in a `shipped` directory), or None (never computes)."""
    sparsities, clusters = _check_grid(sparsities, clusters, split, subset)
    idx = subset_index(len(data.y(split)), subset)
    key = scan_key(model, data.x(split)[idx], data.y(split)[idx], sparsities, clusters, _variant(split, refit, focus, model))
    return _find(key, cache_dir, shipped)


def _find(key, cache_dir, shipped):
    """The scan called `key` in cache_dir (default_cache_dir()), else in the first of the `shipped` directories
    that has it; None if none has (a damaged or other-format file counts as none)."""
    for folder in (Path(cache_dir or default_cache_dir()), *map(Path, shipped)):
        hit = _read_cache(folder / f"{key}.json")
        if hit is not None:
            return hit
    return None


# --- the scan -------------------------------------------------------------------------------------

def _deployed(model):
    """The model as compress() compresses it (BatchNorm folded into convs where the model asks for it)."""
    from . import pipeline
    return getattr(pipeline, "deployed", lambda m: m)(model)


def _kl(dense_logp, out, y):
    """Mean KL(dense || out) over the images (or over the scored positions of per-position labels `y`), in nats."""
    logp = F.log_softmax(out.double(), 1)
    kl = (dense_logp.exp() * (dense_logp - logp)).sum(1)
    scored = y != IGNORE
    return float((kl if bool(scored.all()) else kl[scored]).mean())


def gram(model, module, x, chunk=250, tick=None):
    """G = X^T X (float64) of the inputs `module` (nn.Linear, or nn.Conv1d/2d with groups=1) sees when `model`
    runs on x, each input patch a row (convolutions unfolded); None for any other module. tick() after each chunk."""
    conv = isinstance(module, (nn.Conv1d, nn.Conv2d))
    if not isinstance(module, nn.Linear) and not (conv and module.groups == 1 and module.padding_mode == "zeros"):
        return None
    grams = []

    def hook(_m, inp, _out):
        a = inp[0].detach()
        if isinstance(module, nn.Conv1d):
            a = a.unsqueeze(2)
        if conv:
            two = (lambda v: (1, v[0]) if isinstance(module, nn.Conv1d) else v)
            a = F.unfold(a.contiguous(), two(module.kernel_size), two(module.dilation), two(module.padding),
                         two(module.stride)).transpose(1, 2)
        a = a.reshape(-1, a.shape[-1]).double()
        grams.append(a.T @ a)

    handle = module.register_forward_hook(hook)
    try:
        with torch.inference_mode():
            for i in range(0, len(x), chunk):
                model(x[i:i + chunk])
                if tick is not None:
                    tick()
    finally:
        handle.remove()
    return sum(grams) if grams else None


REFIT_MAX_INPUTS = 1200  # refit solves a kept x kept system per output unit (O(kept^3)): a unit keeping more inputs
# keeps its magnitude-pruned weights instead. Every sample model's units are within it (the largest fan-in,
# teacher-1200-1200's, is 1,200), so their scans are as before.
REFIT_MAX_FLOPS = 2e11  # a layer's refit at one setting solving more than this (solve_flops) solves none of its units:
# the cost grows as units x kept^3, and a 2000 x 2000 layer at sparsity 0.5 took minutes a setting. Every layer of the
# sample models whose scans ship is within it even were each unit to keep all its inputs (the most, LeNet-5's 500 x
# 800: solve_flops gives 1.7e11), so those scans are as before.


def solve_flops(kept):
    """The floating-point operations of refit's solves for units keeping `kept` inputs each (a tensor of counts):
    2/3 k^3 for a k x k LU factorisation."""
    return float((kept.double() ** 3).sum()) * 2 / 3


def refit(w, mask, g, damp=0.01, tick=None):
    """The kept weights of each output unit re-fitted by least squares to reproduce the dense layer's outputs on
    the inputs whose Gram matrix is g (the optimal-brain-surgeon reconstruction SparseGPT and OBC use,
    damped by `damp` of the mean diagonal): a cheap stand-in for what fine-tuning recovers after pruning,
    so that a scan with refit=True ranks settings by what is left after recovery, not before.
    Each unit costs a solve of its kept inputs (O(kept^3)): a unit that keeps more than REFIT_MAX_INPUTS inputs is
    left as magnitude pruning left it (its kept weights as they were), and so is every unit of a layer whose solves
    would cost more than REFIT_MAX_FLOPS (solve_flops), which bounds a big layer's cost at each setting.
    tick(), if given, is called after each unit solved (scan reports progress from it)."""
    w2 = w.reshape(w.shape[0], -1).double()
    m2 = mask.reshape(mask.shape[0], -1)
    kept = m2.sum(1)
    solved = kept[(kept > 0) & (kept <= REFIT_MAX_INPUTS)]
    if not solved.numel() or solve_flops(solved) > REFIT_MAX_FLOPS:  # no unit to solve, or too many operations
        return torch.where(mask & (w != 0), w, 0.0)
    gw = w2 @ g
    out = torch.zeros_like(w2)
    eye_d = damp * float(g.diagonal().mean())
    for r in range(w2.shape[0]):
        keep = m2[r].nonzero().squeeze(1)
        if keep.numel() > REFIT_MAX_INPUTS:
            out[r, keep] = w2[r, keep]
        elif keep.numel():
            a = g[keep[:, None], keep]  # one gather (g[keep][:, keep] copied kept x inputs first), damped in place
            a.diagonal().add_(eye_d)
            out[r, keep] = torch.linalg.solve(a, gw[r, keep])
            if tick is not None:
                tick()
    out = out.float().reshape(w.shape)
    return torch.where(mask & (out != 0), out, 0.0)  # +0.0 where pruned (and a weight refitted to exactly 0)


def _pruned(w, sparsity, g=None, focus=0.0, tick=None):
    """`w` pruned to `sparsity` (magnitude, or prune.focus_scores with focus), its kept weights re-fitted when a
    Gram matrix g is given: the first of the pipeline's stages on one layer. The same for every cluster count, so a
    scan computes it once per sparsity (bench/scans.py --variant budget: LeNet-5's scan 30.8 -> 17.2 s at 2 threads)."""
    mask = prune.magnitude_mask(w, sparsity, focus=focus)
    return torch.where(mask, w, 0.0) if g is None or sparsity == 0 else refit(w, mask, g, tick=tick)


def _shared(pruned, k):
    """A pruned layer's kept weights shared among k k-means centroids (k None: kept as they are) -> (weight,
    Codebook or None): what the pipeline's stages make of one layer, before fine-tuning."""
    mask = pruned != 0
    if k is None or not mask.any():
        return pruned, None
    centroids, labels = cluster.cluster_weight(pruned, k, mask=mask)
    return cluster.shared_weight(centroids, labels).detach(), Codebook(centroids.numpy().astype(np.float32))


def _damage(dense_out, out, y, dense_logp, scale):
    """(score, damage) of a model's outputs `out` on a scan's samples: accuracy and KL(dense || out) for class
    labels (for multi-label tags, over every tag, and the tags' Bernoulli KLs summed); for regression targets
    (scale = their mean variance), R² and the mean squared change of the outputs over that variance, the R² the
    change would cost if it added to the dense model's error independently."""
    if y.is_floating_point():
        return r2_score(out.reshape(y.shape), y), float(((out.double() - dense_out.double()) ** 2).mean()) / scale
    if y.dtype == torch.bool:  # multi-label: each tag a yes/no of its own, the KL of each summed over the tags
        p, q = torch.sigmoid(dense_out.double()), out.double()
        kl = p * (F.logsigmoid(dense_out.double()) - F.logsigmoid(q)) + (1 - p) * (
            F.logsigmoid(-dense_out.double()) - F.logsigmoid(-q))
        return match_rate(out > 0, y, y), float(kl.sum(1).mean())
    return match_rate(out.argmax(1), y, y), _kl(dense_logp, out, y)


def scan(model, data, sparsities=SPARSITIES, clusters=CLUSTERS, split="test", subset=SUBSET, progress=None,
         cache_dir=None, use_cache=True, refit=False, focus=0.0, shipped=()):
    """Scan every compressible layer alone over the grid sparsities x clusters; returns a JSON-able dict:

        {"format", "key", "split", "subset", "dense_accuracy", "sparsities", "clusters", "seconds",
         "layers": [{"name", "shape", "params", "dense_bytes"}],      # in model order
         "rows": [{"layer", "sparsity", "clusters", "accuracy", "kl", "bytes"}]}

    For regression targets (then also "score": "r2") the accuracy fields hold R² and "kl" holds the mean squared
    change of the outputs over the targets' variance (_damage): both rank settings as they do for classes.

    clusters None means the kept weights stay float32. `model` is any nn.Module compress() takes (it is
    not changed); `data` a Dataset; the scan evaluates `subset` fixed images of `split`. refit=True
    re-fits each pruned layer's kept weights by least squares on those images' activations (`refit`),
    an estimate of the damage left after fine-tuning (what a size budget needs); refit=False is plain
    one-shot pruning (what the page teaches: Han et al.'s sensitivity curves). focus: prune as
    Recipe.prune_focus does (prune.focus_scores), for a budget whose recipe prunes that way.
    progress(step, total, None, accuracy) is called after each point, and progress(step, total, None, None) (the
    points done so far) inside a long one once train.REPORT_SECONDS have passed since the last call: between a
    point's steps (pruning, clustering, evaluating, measuring its bytes) and inside a big layer's Gram matrix and
    refit, so a single step (a big layer's clustering or bytes) still goes that long without one; returning False
    stops the scan (raises train.Stopped, nothing is kept). With use_cache, a scan already
    on disk in `cache_dir` or in one of the read-only `shipped` directories is returned at once, and a new one is
    written to `cache_dir`.
    """
    sparsities, clusters = _check_grid(sparsities, clusters, split, subset)
    model = plain_module(model)
    check_dataset(data)
    check_model(model, data)
    idx = subset_index(len(data.y(split)), subset)
    x, y = data.x(split)[idx], data.y(split)[idx]
    focus = check("prune_focus", focus)  # Recipe.prune_focus's own range and message
    key = scan_key(model, x, y, sparsities, clusters, _variant(split, refit, focus, model))
    path = Path(cache_dir or default_cache_dir()) / f"{key}.json"
    if use_cache:
        hit = _find(key, cache_dir, shipped)
        if hit is not None:
            return hit
    t0, reported = time.perf_counter(), time.monotonic()
    work = fast_eval_copy(_deployed(model))
    dense_out = logits(work, x)
    regression = getattr(data, "regression", False)
    dense_logp = F.log_softmax(dense_out.double(), 1) if y.dtype == torch.int64 else None  # classes' KL only
    scale = max(float(y.double().var(0, correction=0).mean()), 1e-12) if regression else None
    dense_acc = _damage(dense_out, dense_out, y, dense_logp, scale)[0]
    params = compressible(work)
    total, step, rows = len(params) * len(sparsities) * len(clusters), 0, []

    def alive():  # inside a long setting (a big layer's steps), progress(step, total, None, None) as fit() reports
        nonlocal reported  # between its steps: once train.REPORT_SECONDS have passed since the last report
        if progress is not None and time.monotonic() - reported >= train.REPORT_SECONDS:
            reported = time.monotonic()
            if progress(step, total, None, None) is False:
                raise Stopped("sensitivity scan stopped by the user")

    layers = []
    for n, p in params.items():  # a big layer's dense bytes take seconds to measure
        alive()
        layers.append({"name": n, "shape": list(p.shape), "params": p.numel(),
                       "dense_bytes": tensor_bytes(n, p.detach())})
    alive()
    reruns = Reruns(work)
    for name, p in params.items():
        saved = p.detach().clone()
        g = gram(work, owner(work, name)[0], x, tick=alive) if refit else None
        evaluate = reruns.of(name, x, dense_out) or (lambda: logits(work, x))  # only what depends on this layer
        try:
            for s in sparsities:
                pruned = _pruned(saved, s, g, focus, tick=alive)
                for k in clusters:
                    alive()  # between a point's steps too: each takes seconds on a big layer
                    w, grid = _shared(pruned, k)
                    alive()
                    with torch.no_grad():
                        p.copy_(w)
                    out = evaluate()
                    alive()
                    acc, damage = _damage(dense_out, out, y, dense_logp, scale)
                    rows.append({"layer": name, "sparsity": s, "clusters": k, "accuracy": acc,
                                 "kl": damage, "bytes": tensor_bytes(name, w, grid)})
                    step += 1
                    reported = time.monotonic()
                    if progress is not None and progress(step, total, None, acc) is False:
                        raise Stopped("sensitivity scan stopped by the user")
        finally:
            evaluate = None  # this layer's kept values go before the next layer's are computed
            with torch.no_grad():
                p.copy_(saved)
    result = {"format": FORMAT, "key": key, "split": split, "refit": refit, "focus": float(focus), "subset": len(idx), "dense_accuracy": dense_acc,
              **({"score": "r2"} if regression else {}),
              "sparsities": sparsities, "clusters": clusters, "layers": layers, "rows": rows,
              "seconds": time.perf_counter() - t0}
    if use_cache:
        _write_cache(path, result)
    return result


SETTING_COST = 1.2  # a scan's setting costs about this many evaluations of its images, times its layer's share of
# the model (Reruns.shares), both at the page's 2 threads, with compress, encode and KL: measured 19.9 s for LeNet-5's
# scan where 1.2 predicts 18.7 (bench/scans.py --threads 2), 6.3 min for an uploaded ResNet-8's on the page where it
# predicts 7.2 (bench/uploads.py --scan)


def expected(model, eval_seconds, images, sparsities=SPARSITIES, clusters=CLUSTERS, subset=SUBSET, example=None):
    """(settings, seconds): how many settings scan() evaluates for `model` (each compressible layer alone, at
    every sparsity x cluster count) and about how long it takes, given that evaluating `images` images took
    `eval_seconds` here. With an `example` input (one image), each layer's settings cost only the share of the
    model that depends on it (Reruns.shares), as scan() evaluates them; without, a whole evaluation each. A page
    can ask before starting a scan that takes minutes."""
    layers = compressible(model)
    shares = Reruns(fast_eval_copy(model)).shares(example) if example is not None else {}  # a copy: run, not changed
    per_setting = SETTING_COST * eval_seconds * min(subset, images) / max(images, 1)
    grid = len(sparsities) * len(clusters)
    return len(layers) * grid, sum(grid * per_setting * shares.get(name, 1.0) for name in layers)


# --- reading a scan -------------------------------------------------------------------------------

def curve(result, layer, sparsity=None, clusters="any"):
    """Rows of one layer along one axis: fix sparsity (e.g. 0.0) to get accuracy vs clusters, or fix
    clusters (e.g. None) to get accuracy vs sparsity."""
    return [r for r in result["rows"] if r["layer"] == layer
            and (sparsity is None or r["sparsity"] == sparsity)
            and (clusters == "any" or r["clusters"] == clusters)]


def summary(result, tolerance=0.005):
    """One row per layer, what a reader needs in seconds: how fragile it is and where its cheap bytes are.

    For each layer: its parameters and dense bytes; `max_sparsity`, the highest scanned sparsity that
    loses at most `tolerance` accuracy (one-shot, float32 values); `min_clusters`, the fewest scanned
    clusters (at sparsity 0) within the same tolerance; `cheapest_bytes`, the smallest bytes of any grid
    point within it; and the accuracy lost at 90 % sparsity (the fragility at a glance)."""
    base = result["dense_accuracy"]
    out = []
    for layer in result["layers"]:
        rows = curve(result, layer["name"])
        ok = [r for r in rows if base - r["accuracy"] <= tolerance]
        prune_ok = [r["sparsity"] for r in ok if r["clusters"] is None]
        cl_ok = [r["clusters"] for r in ok if r["sparsity"] == 0.0 and r["clusters"] is not None]
        at90 = [r for r in rows if r["clusters"] is None and math.isclose(r["sparsity"], 0.9)]
        out.append({"layer": layer["name"], "params": layer["params"], "dense_bytes": layer["dense_bytes"],
                    "max_sparsity": max(prune_ok, default=0.0), "min_clusters": min(cl_ok, default=None),
                    "cheapest_bytes": min((r["bytes"] for r in ok), default=layer["dense_bytes"]),
                    "loss_at_90": base - at90[0]["accuracy"] if at90 else None})
    return out


def most_fragile(rows):
    """summary()'s row of the layer that can be pruned least on its own within the tolerance (lowest max_sparsity),
    and of those the one that loses most at 90 % pruned: the layer the summary's table ranks first. Ranked by the
    loss at 90 % alone, ResNet-8's blocks.1.conv2 (50 % within it) came before stem.weight (0 %)."""
    return min(rows, key=lambda r: (r["max_sparsity"], -(r["loss_at_90"] or 0)))


def cheapest(rows):
    """summary()'s row of the layer that sheds the most bytes within the tolerance."""
    return max(rows, key=lambda r: r["dense_bytes"] - r["cheapest_bytes"])
