"""Magnitude pruning: which weights to drop, when, and how to keep them dropped.

Han et al. (2015) showed that most weights of a trained network can be set to zero (the ones
with the smallest magnitude) with little loss of accuracy, especially after fine-tuning. This
module computes those choices as plain boolean masks (True = kept) over tensors:

- `magnitude_mask` / `layer_masks` / `global_masks`: unstructured pruning, one layer at a time
  or with one threshold shared by all layers. They select exactly the same entries as
  `torch.nn.utils.prune.l1_unstructured` / `global_unstructured` (same count, same `topk` call).
  A tensor's first mask needs no sort: its threshold is found by selection (`MagnitudeSelection`,
  torch.kthvalue); from its second, its magnitudes are sorted once (`magnitude_order`, kept by content),
  so a mask at any other sparsity is a threshold lookup: a page's slider re-prunes the same weights many times.
  With focus > 0 (Recipe.prune_focus) the magnitudes are weighted by their row's and column's norms
  (`focus_scores`), so the kept weights gather in fewer units and inputs, whose positions the
  artifact stores for less (encode.py's live-bitmap layout).
- `cubic_sparsity`: Zhu & Gupta's (2017) gradual schedule for pruning during training.
- `Masked`: a parametrization that keeps pruned weights at exactly zero during fine-tuning.
- `structured_keep`: the output units (rows of a Linear weight, filters of a Conv weight) one layer alone would
  keep, the selection of `torch.nn.utils.prune.ln_structured`: the reference the tests hold structured pruning to.
  The product removes whole units with compress_engine.core.structured.plan, which ranks them the same way but
  keeps the layers a residual, a concat or a norm ties together in step.

How much each layer loses when pruned alone is compress_engine.core.sensitivity.scan (accuracy and bytes).

- `apply`: the pipeline stage (one-shot or gradual, per layer or global, or structured through
  compress_engine.core.structured, then the BatchNorms' statistics measured again), with masked fine-tuning.

The "compressible" weights of a model are the `.weight` of every nn.Linear, nn.Conv1d/2d/3d, transposed conv
and embedding table and the attention in-projections (compress_engine.core.model.compressible), keyed by parameter
name ("fc1.weight"); biases are never pruned.
"""

import hashlib
import math
import numbers
import threading
from collections import OrderedDict
from contextlib import contextmanager

import torch
from torch import nn

from compress_engine.core.errors import RecipeError
from compress_engine.core.fold import deployed
from compress_engine.core.model import compressible
from compress_engine.core.train import recalibrate_batchnorm

NAME = "prune"
SCOPES = ("layer", "global")         # Recipe.prune_scope
SCHEDULES = ("oneshot", "gradual")   # Recipe.schedule

# -----------------------------------------------------------------------------
# argument checks


def _check_fraction(name, value):
    """Return `value` as a float if it is a real number in [0, 1], else raise RecipeError."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and 0.0 <= value <= 1.0
    if not ok:  # NaN fails the range comparison too
        raise RecipeError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


# -----------------------------------------------------------------------------
# unstructured magnitude pruning


class MagnitudeOrder:
    """One tensor's |w|, sorted once: the mask that drops the n smallest is then a threshold lookup.

    The lookup is the topk selection itself, not an approximation: when the n-th and (n+1)-th smallest
    magnitudes differ, the n smallest entries are one set whichever algorithm picks them. When they are
    equal (a tie straddles the threshold) or |w| holds NaN, `mask` returns None and the caller uses
    torch.topk, which breaks such ties its own way.
    """

    def __init__(self, w):
        self.sorted = w.detach().abs().reshape(-1).sort().values
        self.has_nan = self.sorted.numel() > 0 and bool(torch.isnan(self.sorted[-1]))  # NaN sorts last

    def mask(self, w, n_prune):
        """Flat bool mask keeping all but the n_prune smallest |w|, or None (a tie at the threshold, or NaN)."""
        n = self.sorted.numel()
        if self.has_nan:
            return None
        if n_prune >= n:
            return torch.zeros(n, dtype=torch.bool, device=w.device)
        return _threshold_mask(w, self.sorted[n_prune - 1].item(), self.sorted[n_prune].item())


def _threshold_mask(w, below, above):
    """|w| > below, the n smallest dropped, when the n-th smallest magnitude `below` is smaller than the (n+1)-th
    `above`; None when they tie (topk then breaks the tie its own way)."""
    return w.detach().abs().reshape(-1) > below if below < above else None


class MagnitudeSelection:
    """MagnitudeOrder's mask for a tensor pruned once, without sorting: the n-th and (n+1)-th smallest |w| by
    selection (torch.kthvalue, the same values as the sorted ones), so the mask is the same. Two selections of
    42 M magnitudes take 1.6 s at one thread where the sort takes 8.6 s; a tensor pruned again is sorted then
    (magnitude_order), for the threshold lookups of the sparsities after it."""

    def mask(self, w, n_prune):
        a = w.detach().abs().reshape(-1)
        if bool(torch.isnan(a).any()):
            return None
        if n_prune >= a.numel():
            return torch.zeros(a.numel(), dtype=torch.bool, device=w.device)
        return _threshold_mask(w, torch.kthvalue(a, n_prune).values.item(),
                               torch.kthvalue(a, n_prune + 1).values.item())


_ORDERS = OrderedDict()         # content key -> MagnitudeOrder, least recently used first
_ORDERS_LOCK = threading.Lock()  # pages prune from several sessions' threads at once
_ORDERS_MAX_ELEMENTS = 16_000_000  # about 64 MB of sorted float32 magnitudes
_PRUNED_ONCE = OrderedDict()  # content keys pruned once (not sorted), the latest _PRUNED_ONCE_MAX
_PRUNED_ONCE_MAX = 1024


def _content_key(w):
    """dtype, shape and a digest of the values: compress() prunes deep copies, so identity cannot be the key."""
    t = w.detach().contiguous()
    return str(t.dtype), tuple(t.shape), hashlib.blake2b(t.numpy().reshape(-1).view("uint8"), digest_size=16).digest()


def _orderable(w):
    return w.device.type == "cpu" and w.dtype in (torch.float32, torch.float64, torch.float16) and w.numel() > 0


def _order_for_mask(w):
    """What magnitude_mask looks the threshold up in: the MagnitudeOrder of a tensor already sorted or pruned
    before (magnitude_order), a MagnitudeSelection for one met the first time (compress() prunes each layer once),
    None for a tensor neither handles."""
    if not _orderable(w):
        return None
    key = _content_key(w)
    with _ORDERS_LOCK:
        if key not in _ORDERS and key not in _PRUNED_ONCE:
            _PRUNED_ONCE[key] = None
            while len(_PRUNED_ONCE) > _PRUNED_ONCE_MAX:
                _PRUNED_ONCE.popitem(last=False)
            return MagnitudeSelection()
    return magnitude_order(w, key)


def magnitude_order(w, key=None):
    """The MagnitudeOrder of `w`, sorted once per distinct tensor content and kept (least recently used go
    first beyond about 16M values), or None for a tensor it does not handle (not a float CPU tensor).
    `key`: _content_key(w), if already computed."""
    if not _orderable(w):
        return None
    key = key or _content_key(w)
    with _ORDERS_LOCK:
        order = _ORDERS.get(key)
        if order is not None:
            _ORDERS.move_to_end(key)
            return order
    # outside the lock: sorting takes milliseconds for a sample model's layer, but about 1 s for 7.5 M values and 9 s
    # for 42 M at one thread, and when a tie straddles the threshold magnitude_mask still runs topk, about as long
    order = MagnitudeOrder(w)
    with _ORDERS_LOCK:
        _ORDERS[key] = order
        total = sum(o.sorted.numel() for o in _ORDERS.values())
        while total > _ORDERS_MAX_ELEMENTS and len(_ORDERS) > 1:
            total -= _ORDERS.popitem(last=False)[1].sorted.numel()
    return order


def focus_scores(w, focus):
    """|w| weighted toward strong units and inputs: |w_ij| * (r_i / mean r)^focus * (c_j / mean c)^focus, with
    r and c the L2 norms of the rows and columns of w as a (dim 0, rest) matrix (a conv's filters by their
    input-channel x kernel positions), the matrix the artifact's bitmap codes. focus=0 is |w| itself; at 1 a
    weight in a unit half as strong as the mean must be twice as large to stay. Kept weights then gather in
    fewer rows and columns (as group-sparse and Bayesian compression's pruning leaves them), and an empty row
    or column costs one bit. Tensors of fewer than 2 dims score |w|."""
    a = w.detach().abs()
    if not focus or a.dim() < 2:
        return a
    m = a.reshape(a.shape[0], -1)
    r, c = m.norm(dim=1, keepdim=True), m.norm(dim=0, keepdim=True)
    tiny = torch.finfo(m.dtype).tiny
    return (m * (r / r.mean().clamp_min(tiny)).pow(focus) * (c / c.mean().clamp_min(tiny)).pow(focus)).view(a.shape)


def magnitude_mask(w, sparsity, cache=True, focus=0.0):
    """Bool mask of `w`'s shape that drops the round(sparsity * numel) smallest-|w| entries (smallest
    focus_scores with focus > 0: then nothing is cached).

    The count uses Python's round (as torch.nn.utils.prune does), and the entries are those of
    `torch.topk(|w|, k, largest=False)`, so the mask equals l1_unstructured's, ties included. With
    cache (the default) the first call finds the threshold by selection (MagnitudeSelection), the magnitudes of
    `w` are sorted once at the second (magnitude_order), and later calls with the same values at any sparsity
    only compare against a threshold; ties at the threshold still go to topk.
    cache=False always calls topk (for weights that change between calls, e.g. during gradual pruning).
    """
    sparsity = _check_fraction("sparsity", sparsity)
    n_prune = round(sparsity * w.numel())
    if n_prune == 0:
        return torch.ones(w.shape, dtype=torch.bool, device=w.device)
    if focus and w.dim() >= 2:
        w, cache = focus_scores(w, focus), False
    order = _order_for_mask(w) if cache else None
    mask = order.mask(w, n_prune) if order is not None else None
    if mask is None:
        mask = torch.ones(w.numel(), dtype=torch.bool, device=w.device)
        drop = torch.topk(w.detach().abs().reshape(-1), k=n_prune, largest=False).indices
        mask[drop] = False
    return mask.view(w.shape)


def layer_masks(weights, sparsity, cache=True, focus=0.0):
    """Prune every tensor of `weights` (dict name -> tensor) to the same sparsity on its own."""
    return {name: magnitude_mask(w, sparsity, cache, focus) for name, w in weights.items()}


def global_masks(weights, sparsity, cache=True, focus=0.0):
    """One magnitude threshold across all tensors of `weights`: the smallest round(sparsity * N)
    of all N weights are dropped, wherever they are, so layers with many small weights lose
    more. Same masks as prune.global_unstructured(..., pruning_method=prune.L1Unstructured),
    given the tensors in the same order.
    """
    if not weights:
        return {}
    flat = torch.cat([(focus_scores(w, focus) if focus else w.detach()).reshape(-1) for w in weights.values()])
    masks = magnitude_mask(flat, sparsity, cache and not focus).split([w.numel() for w in weights.values()])
    return {name: m.view(w.shape) for (name, w), m in zip(weights.items(), masks)}


# -----------------------------------------------------------------------------
# structured pruning


def structured_keep(w, amount, n=2):
    """Sorted indices (LongTensor) of the output units of `w` (dim 0) to keep.

    Drops the round(amount * w.shape[0]) units with the smallest L_n norm over all other dims,
    the same choice as prune.ln_structured(module, "weight", amount, n=n, dim=0), except that at
    least one unit is always kept (a layer with no outputs would cut the network in two).
    Use the indices to slice the weight, its bias and the next layer's input dim.
    """
    amount = _check_fraction("amount", amount)
    ok = isinstance(n, numbers.Real) and not isinstance(n, bool) and n > 0  # inf is allowed
    if not ok:
        raise RecipeError(f"n (norm order) must be a positive number, e.g. 1 or 2, got {n!r}")
    if w.dim() < 2:
        raise RecipeError(f"w must have at least 2 dims for structured pruning, got shape {tuple(w.shape)}")
    units = w.shape[0]
    n_drop = min(round(amount * units), units - 1)
    norms = torch.norm(w.detach(), p=n, dim=list(range(1, w.dim())))
    keep = torch.topk(norms, k=units - n_drop, largest=True).indices
    return keep.sort().values


# -----------------------------------------------------------------------------
# gradual pruning schedule


def cubic_sparsity(step, total_steps, final, initial=0.0):
    """Sparsity at `step` of Zhu & Gupta's (2017) schedule: s_f + (s_i - s_f) * (1 - t/T)^3.

    Prunes fast at first, while the network has many redundant weights, and slowly near the
    end, leaving time to recover. `step` outside [0, total_steps] is clamped, so the result
    always lies in [initial, final].
    """
    final = _check_fraction("final", final)
    initial = _check_fraction("initial", initial)
    if initial > final:
        raise RecipeError(f"initial sparsity must be <= final ({final}), got {initial}")
    if isinstance(total_steps, bool) or not isinstance(total_steps, numbers.Integral) or total_steps < 1:
        raise RecipeError(f"total_steps must be an integer >= 1, got {total_steps!r}")
    if isinstance(step, bool) or not isinstance(step, numbers.Real) or math.isnan(step):
        raise RecipeError(f"step must be a number, got {step!r}")
    t = min(max(float(step), 0.0), float(total_steps))
    return final + (initial - final) * (1.0 - t / total_steps) ** 3


# -----------------------------------------------------------------------------
# applying masks to a model


def apply_masks(model, masks):
    """Zero the pruned weights of `model` in place for each name in `masks`.

    Pruned weights become +0.0 exactly: multiplying by the mask would leave -0.0 for negative
    weights, which the encoder must then store as a separate value.
    """
    params = compressible(model)
    with torch.no_grad():
        for name, mask in masks.items():
            if name not in params:
                raise RecipeError(f"mask name {name!r} is not a compressible weight; known: {sorted(params)}")
            p = params[name]
            p.copy_(torch.where(mask.to(p.device), p, 0.0))  # not w * mask: that leaves -0.0


def model_masks(model, sparsity, scope="layer", focus=0.0):
    """Magnitude masks for the compressible weights of `model`.

    scope="layer": every layer at `sparsity`; scope="global": one threshold over all layers.
    """
    weights = {name: p.detach() for name, p in compressible(model).items()}
    if scope == "layer":
        return layer_masks(weights, sparsity, focus=focus)
    if scope == "global":
        return global_masks(weights, sparsity, focus=focus)
    raise RecipeError(f"scope must be one of {SCOPES}, got {scope!r}")


class Masked(nn.Module):
    """Parametrization w -> w * mask, for fine-tuning with masks that change (gradual pruning) or layers held at
    zero beside a parametrization of others (clustering's unclustered layers); a fixed mask alone is held more
    cheaply by held_at_zero.

    Register with torch.nn.utils.parametrize.register_parametrization(module, "weight",
    Masked(mask)): the forward pass only ever sees masked weights, and the gradient reaching the
    stored weight is multiplied by the mask too, so pruned weights stay exactly zero whatever
    the optimizer does (momentum, weight decay and Adam all leave a zero-gradient zero alone
    once the stored weight is zero there; apply_masks first).
    """

    def __init__(self, mask):
        super().__init__()
        self.register_buffer("mask", mask.detach().to(torch.bool))

    def forward(self, w):
        return torch.where(self.mask, w, 0.0)  # +0.0 where pruned (w * mask gives -0.0)


@contextmanager
def held_at_zero(model, masks):
    """Inside the block, the gradient reaching each weight named in `masks` is zero where its mask is False, so the
    weights apply_masks zeroed stay zero through fine-tuning (Adam, momentum and weight decay all leave a weight of
    zero with a zero gradient at zero). Masked does the same through the forward pass, where the mask is needed
    for masks that change (gradual pruning); for a fixed mask this costs one multiply a weight and step instead of a
    where() in the forward and another in the backward pass: an epoch of LeNet-300-100 at 80 % took 1.10 s instead
    of 1.61 at one thread, LeNet-5's 14.2 s instead of 14.7 (bench/training_pace.py). apply_masks first: the weights
    must be zero where pruned.
    A frozen weight (requires_grad False) gets no gradient to mask."""
    params = compressible(model)
    handles = []
    for name, mask in masks.items():
        p = params[name]
        if p.requires_grad:
            handles.append(p.register_hook(_times(mask.to(p.device))))
    try:
        yield model
    finally:
        for h in handles:
            h.remove()


def _times(mask):
    """A gradient hook multiplying by `mask` (bool), kept as a float tensor laid out as the gradient is (fit may
    train channels-last), made once per layout."""
    kept = {}

    def hook(grad):
        key = (grad.dtype, grad.stride())
        if key not in kept:
            kept[key] = torch.empty_like(grad).copy_(mask)
        return grad * kept[key]
    return hook


# -----------------------------------------------------------------------------
# the pipeline stage


def active(recipe):
    return recipe.prunes()


def epochs(recipe):
    return recipe.finetune_epochs


def _gradual(model, pars, final, scope, total, focus=0.0):
    """on_step hook: Zhu & Gupta cubic ramp to `final` sparsity (a number, or with scope "layer" a dict
    name -> sparsity) over the first 3/4 of fine-tuning, re-computing magnitude masks every ~1 % of steps
    on the currently kept weights."""
    ramp = max(1, int(total * 0.75))
    every = max(1, total // 100)

    def on_step(step, _total):
        if step % every or step > ramp:
            return
        weights = compressible(model)  # the originals under the masks
        kept = {name: (par.mask * weights[name]).detach() for name, par in pars.items()}
        if isinstance(final, dict):
            new = {n: magnitude_mask(w, cubic_sparsity(step + every, ramp, final[n]), cache=False, focus=focus)
                   for n, w in kept.items()}
        else:  # the weights change every step: nothing to reuse, so no sorted copies kept
            s = cubic_sparsity(step + every, ramp, final)
            new = layer_masks(kept, s, False, focus) if scope == "layer" else global_masks(kept, s, False, focus)
        for name, par in pars.items():
            par.mask.copy_(new[name] & par.mask)
    return on_step


def apply(model, recipe, ctx):
    """Prune `model` (in place, or a smaller copy when structured) as `recipe` says, fine-tuning with the
    pruned weights held at zero; leaves the masks in ctx.masks for the stages after it."""
    r = recipe
    if r.structured:  # a model that folds its BatchNorms still has them here (compress folds after this stage)
        from compress_engine.core.structured import prune_structured, weight_amounts
        folded = deployed(model)
        model = prune_structured(model, r.sparsity, ctx.example, rank_by=None if folded is model else folded,
                                 amounts=weight_amounts(r.layer_sparsities()))
        recalibrate_batchnorm(model, ctx.data.x("train"), seed=r.seed)  # what each BatchNorm sees has changed
        ctx.finetune(model, {}, NAME)
        return model
    weights = compressible(model)
    per_layer = {n: r.layer(n, p.dim() > 2)[0] for n, p in weights.items()} if r.layers else None
    if r.schedule == "gradual":
        pars = {n: Masked(torch.ones_like(p, dtype=torch.bool)) for n, p in weights.items()}
        hook = _gradual(model, pars, per_layer or r.sparsity, r.prune_scope, ctx.steps(r.finetune_epochs), r.prune_focus)
        ctx.finetune(model, pars, NAME, on_step=hook)
        masks = {n: par.mask.clone() for n, par in pars.items()}
        apply_masks(model, masks)
    else:
        masks = ({n: magnitude_mask(p.detach(), per_layer[n], focus=r.prune_focus) for n, p in weights.items()}
                 if per_layer else model_masks(model, r.sparsity, r.prune_scope, r.prune_focus))
        apply_masks(model, masks)
        with held_at_zero(model, masks):
            ctx.finetune(model, {}, NAME)
        apply_masks(model, masks)  # exactly +0.0 where pruned, whatever an optimizer made of a zero gradient there
    ctx.masks = masks
    return model
