"""Weight clustering (sharing): each layer keeps only k distinct weight values.

Deep Compression (Han, Mao, Dally 2016, §3) replaces the non-zero weights of a layer by the
nearest of k shared values (centroids) found by k-means, stores a log2(k)-bit index per weight
plus the k centroids, and fine-tunes the centroids by summing the gradients of all the weights
that share them.

k-means here is one-dimensional, which makes it much cheaper than general k-means: the clusters
of an optimal (or Lloyd-stable) partition are contiguous intervals of the sorted values. So
`kmeans_1d` sorts once and keeps prefix sums of the values and their squares; then a cluster is
just its two boundaries, its count, mean and squared error are O(1) each, and a Lloyd iteration
is one `searchsorted` of the k-1 midpoints between centroids: O(k log n), not O(nk). That leaves
time for moves Lloyd cannot make (shift a boundary over several values at once; move a
centroid from a sparse region to a dense one), which reach about the error of scikit-learn's
KMeans with 10 restarts, mostly lower (they are a local search: not on every input), 10-50x faster.
"""

import math
import numbers

import numpy as np
import torch
from torch import nn

from compress_engine.core.errors import RecipeError
from compress_engine.core.model import compressible
from compress_engine.core.prune import Masked

NAME = "cluster"

INITS = ("linear", "density", "kmeans++")  # Recipe.cluster_init
MIN_K, MAX_K = 2, 256                      # Recipe.clusters / conv_clusters
CHUNK = 1 << 20  # values handled at a time where a whole layer's would take a temporary copy of them all

# -----------------------------------------------------------------------------
# argument checks


def _check_k(k):
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not MIN_K <= k <= MAX_K:
        raise RecipeError(f"k (number of clusters) must be an integer in [{MIN_K}, {MAX_K}], got {k!r}")
    return int(k)


def _check_init(init):
    if init not in INITS:
        raise RecipeError(f"init must be one of {INITS}, got {init!r}")
    return init


# -----------------------------------------------------------------------------
# interval arithmetic on sorted values (prefix sums S of x and Q of x^2, both length n+1)


def _sse(S, Q, lo, hi):
    """Sum of squared deviations from the mean of x[lo:hi], vectorised; 0 for empty intervals."""
    cnt = hi - lo
    s = S[hi] - S[lo]
    return np.maximum((Q[hi] - Q[lo]) - s * s / np.maximum(cnt, 1), 0.0)


def _cost(S, Q, lo, hi, c):
    """Sum of (x - c)^2 over x[lo:hi], vectorised."""
    return np.maximum((Q[hi] - Q[lo]) - 2 * c * (S[hi] - S[lo]) + c * c * (hi - lo), 0.0)


def _bounds(x, c):
    """Interval boundaries (k+1,) of the nearest-centroid partition of sorted x, c sorted."""
    mid = (c[:-1] + c[1:]) / 2
    return np.concatenate(([0], np.searchsorted(x, mid, side="left"), [len(x)]))


def _means(S, b):
    """Mean of each interval x[b[j]:b[j+1]] (all assumed non-empty)."""
    return (S[b[1:]] - S[b[:-1]]) / (b[1:] - b[:-1])


def _best_cuts(x, S, Q, b, iters=50):
    """For every cluster: where to cut it in two, and the SSE that cut saves (0 for clusters of
    fewer than two values). The cut is found by 2-means Lloyd inside each interval, started
    from its mean, all clusters at once: O(k log n) per step."""
    lo, hi = b[:-1], b[1:]
    ok = hi - lo >= 2
    lo1, hi1 = np.where(ok, lo + 1, lo), np.where(ok, hi - 1, lo)  # cut range; collapses if not ok
    cut = np.clip(np.searchsorted(x, (S[hi] - S[lo]) / np.maximum(hi - lo, 1)), lo1, hi1)
    for _ in range(iters):
        mid = ((S[cut] - S[lo]) / np.maximum(cut - lo, 1) + (S[hi] - S[cut]) / np.maximum(hi - cut, 1)) / 2
        new = np.clip(np.searchsorted(x, mid), lo1, hi1)
        if np.array_equal(new, cut):
            break
        cut = new
    gain = _sse(S, Q, lo, hi) - _sse(S, Q, lo, cut) - _sse(S, Q, cut, hi)
    return cut, np.where(ok, np.maximum(gain, 0.0), 0.0)


def _fill_empty(x, S, Q, b):
    """Give every empty interval a share of the data: split the clusters with the largest SSE
    saving at their best cuts and drop one of each empty interval's two equal boundaries.
    Deterministic. (Only called with more distinct values than clusters, so some cluster can
    always be split.)"""
    while (empty := np.flatnonzero(b[1:] == b[:-1])).size:
        cut, gain = _best_cuts(x, S, Q, b)
        top = np.argsort(-gain, kind="stable")[: len(empty)]
        top = top[gain[top] > 0]
        if top.size == 0:  # rounding hid every gain: cut after the first value of a mixed cluster
            top = np.flatnonzero(x[np.maximum(b[1:] - 1, 0)] > x[np.minimum(b[:-1], len(x) - 1)])[:1]
            cut[top] = np.searchsorted(x, x[b[top]], side="right")
        b = np.sort(np.concatenate((np.delete(b, empty[: len(top)] + 1), cut[top])))
    return b


def _lloyd(x, S, Q, b, iters):
    """Lloyd's iterations on boundaries: centroids = interval means, then nearest-centroid
    boundaries, until the boundaries stop changing (at most `iters` times). Each iteration is
    O(k log n): one searchsorted of the k-1 midpoints into the sorted values."""
    # the hot loop of clustering: plain slicing and ndarray methods (np.diff and friends add
    # microseconds of Python overhead per call, which dominates at a few hundred iterations)
    b = b.copy()
    for _ in range(iters):
        cnt = b[1:] - b[:-1]
        if not cnt.all():
            b = _fill_empty(x, S, Q, b)
            cnt = b[1:] - b[:-1]
        sb = S[b]
        c = (sb[1:] - sb[:-1]) / cnt
        inner = x.searchsorted((c[:-1] + c[1:]) * 0.5)
        if np.array_equal(inner, b[1:-1]):
            return b
        b[1:-1] = inner
    return _fill_empty(x, S, Q, b)


def _polish(S, Q, b, iters, window=32):
    """Move each boundary to the cut (within +-window values) that minimises the SSE of its two
    clusters, the other boundaries fixed: first every odd boundary, then every even one (their
    cluster pairs are disjoint, so all move at once), until none moves. This escapes the many
    Lloyd fixed points among sparse values (the tails), where a boundary must jump over
    several values at once to lower the error."""
    b = b.copy()
    off = np.arange(-window, window + 1)
    rows = np.arange(len(b))
    tol = 1e-9 * _total(S, Q, b)  # ignore moves that gain less than a billionth of the total
    for _ in range(iters):
        moved = False
        for first in (1, 2):
            i = np.arange(first, len(b) - 1, 2)
            lo, hi = b[i - 1, None], b[i + 1, None]
            cand = np.clip(b[i, None] + off, lo + 1, hi - 1)
            cost = _sse(S, Q, lo, cand) + _sse(S, Q, cand, hi)
            now = _sse(S, Q, lo[:, 0], b[i]) + _sse(S, Q, b[i], hi[:, 0])
            j = cost.argmin(axis=1)
            best = cost[rows[: len(i)], j]
            better = best < now - tol
            b[i[better]] = cand[better, j[better]]
            moved = moved or better.any()
        if not moved:
            break
    return b


def _descend(x, S, Q, b, iters):
    """Local descent: Lloyd's iterations and boundary polishing in turn, until neither moves,
    so the result is a Lloyd fixed point (centroids = means, boundaries = midpoints)."""
    for _ in range(iters):
        b = _lloyd(x, S, Q, b, iters)
        nb = _polish(S, Q, b, iters)
        if np.array_equal(nb, b):
            break
        b = nb
    return b


def _total(S, Q, b):
    return float(_sse(S, Q, b[:-1], b[1:]).sum())


def _refine(x, S, Q, b, iters, trials=4):
    """Split/merge search: try moving one centroid from where it is least useful to where it
    helps most -- split the cluster whose best cut saves the most error, merge the neighbour pair
    whose union costs the least -- then descend again, and keep the result if the total error
    fell. The `trials` most promising (split, merge) pairs are tried per round; stop after a
    round with no success. This fixes the allocation of clusters between dense and sparse
    regions, which Lloyd's iterations only shift one small step at a time."""
    best = _total(S, Q, b)
    for _ in range(iters):
        cut, gain = _best_cuts(x, S, Q, b)
        sse = _sse(S, Q, b[:-1], b[1:])
        merge_cost = _sse(S, Q, b[:-2], b[2:]) - sse[:-1] - sse[1:]  # merge cluster j with j+1
        si, mj = np.argsort(-gain, kind="stable")[:trials], np.argsort(merge_cost, kind="stable")[:trials]
        si, mj = np.repeat(si, len(mj)), np.tile(mj, len(si))
        ok = (si != mj) & (si != mj + 1)
        si, mj = si[ok], mj[ok]
        order = np.argsort(merge_cost[mj] - gain[si], kind="stable")[:trials]
        for i, j in zip(si[order], mj[order]):  # a few trials, never a loop over values
            nb = _descend(x, S, Q, np.sort(np.append(np.delete(b, j + 1), cut[i])), iters)
            total = _total(S, Q, nb)
            if total < best * (1 - 1e-9):
                b, best = nb, total
                break
        else:
            break
    return b


# -----------------------------------------------------------------------------
# initialisations (Deep Compression §3.1; TF-MOT's CentroidInitialization)


def _init_linear(x, k):
    """Evenly spaced between min and max: keeps centroids for the rare large weights."""
    return np.linspace(x[0], x[-1], k)


def _init_density(x, k):
    """Evenly spaced in the CDF (quantiles 0, 1/(k-1), ..., 1): dense where the weights are."""
    return np.interp(np.linspace(0, len(x) - 1, k), np.arange(len(x)), x)


def _init_kmeanspp(x, S, Q, k, rng):
    """Greedy k-means++ (Arthur & Vassilvitskii 2007, as in scikit-learn): start from a uniform
    random value; then draw 2 + ln(k) candidates with probability proportional to the squared
    distance to the nearest centroid so far (D^2 sampling) and keep the one that lowers the
    total squared distance most. On sorted values the nearest-centroid regions are intervals:
    a draw picks an interval by its D^2 mass (prefix sums, O(k)), then a value inside it, and
    each candidate set is scored in O(k log n)."""
    n = len(x)
    trials = 2 + int(math.log(k))
    c = np.array([x[rng.integers(n)]])
    for _ in range(1, k):
        b = _bounds(x, c)
        pot = _cost(S, Q, b[:-1], b[1:], c)  # D^2 mass of each current cluster
        cum = np.cumsum(pot)
        if cum[-1] <= 0:  # every value already sits on a centroid
            break
        u = rng.random(trials) * cum[-1]
        j = np.minimum(np.searchsorted(cum, u, side="right"), len(c) - 1)
        cand = np.empty(trials)
        for t in range(trials):  # a handful of draws, each vectorised over its interval
            lo, hi = b[j[t]], b[j[t] + 1]
            walk = np.cumsum((x[lo:hi] - c[j[t]]) ** 2)
            i = np.searchsorted(walk, u[t] - (cum[j[t]] - pot[j[t]]), side="right")
            cand[t] = x[min(lo + i, hi - 1, n - 1)]
        # score every candidate set at once: (trials, len(c)+1) sorted centroids
        cc = np.sort(np.concatenate((np.broadcast_to(c, (trials, len(c))), cand[:, None]), axis=1), axis=1)
        mid = (cc[:, :-1] + cc[:, 1:]) / 2
        bb = np.concatenate((np.zeros((trials, 1), int), np.searchsorted(x, mid), np.full((trials, 1), n)), axis=1)
        total = _cost(S, Q, bb[:, :-1], bb[:, 1:], cc).sum(axis=1)
        c = cc[int(np.argmin(total))]
    return c


# -----------------------------------------------------------------------------
# k-means in one dimension


def kmeans_1d(values, k, init="linear", iters=1000, seed=0, refine=True):
    """Cluster a 1-D float tensor into k groups; returns (centroids float32 (k,) ascending,
    labels int64 (n,)) with labels[i] the index of the centroid nearest to values[i].

    init: "linear" (evenly spaced between min and max), "density" (evenly spaced quantiles) or
    "kmeans++" (greedy D^2 sampling with a numpy Generator seeded by `seed`). From there:
    Lloyd's iterations until the boundaries stop changing (at most `iters` per descent; an empty
    cluster is re-seeded by splitting the cluster whose split saves the most error), then, with
    refine=True, two kinds of moves Lloyd cannot make, each followed by Lloyd again: shifting a
    boundary over several values at once (`_polish`), and moving a centroid from where it is
    least useful to where it helps most (`_refine`). Lloyd alone stalls in poor local optima --
    up to 1.5x the inertia of scikit-learn's KMeans(n_init=10) at k >= 64, from any of the
    three inits. With the moves it is mostly at or below it, and on the sample models' layers within
    a fraction of a percent either way; but they are a local search, not the optimum: on some data (an
    outlier-heavy tensor at k=2) it stays a few percent above it. refine=False gives plain
    init + Lloyd, as in Deep Compression / TF-MOT (e.g. to show how the inits differ).

    Fewer than k centroids come back when `values` has at most k distinct values (the
    centroids are then exactly those values; never padded with duplicates), or in the
    degenerate case of two means rounding to the same float32. The result depends only on the
    values and the arguments: same inputs, same output, bit for bit.
    """
    k, init = _check_k(k), _check_init(init)
    if isinstance(iters, bool) or not isinstance(iters, numbers.Integral) or iters < 1:
        raise RecipeError(f"iters must be an integer >= 1, got {iters!r}")
    v = torch.as_tensor(values).detach().cpu()
    if v.dim() != 1 or v.numel() == 0 or not v.is_floating_point():
        raise RecipeError(f"values must be a non-empty 1-D float tensor, got shape {tuple(v.shape)}, dtype {v.dtype}")
    v = v.to(torch.float64 if v.dtype == torch.float64 else torch.float32).numpy()
    if not np.isfinite(v).all():
        raise RecipeError("values must be finite (no NaN or inf)")

    # sort once; centre (for accurate prefix sums of squares); prefix sums in float64. Memory: a big layer's
    # values are many (a 19M-weight MLP's largest layer: 16M), so each array is made once, in place where it can
    # be, and dropped as soon as it is done with: x, S and Q (8 bytes a value each) are what the search needs
    xs = np.sort(v)
    few = _distinct_at_most(xs, k)
    if few is not None:
        c, shift = few.astype(np.float64), 0.0
    else:
        shift = float(xs.mean(dtype=np.float64))
        x = xs.astype(np.float64)
        del xs
        x -= shift
        S = _prefix_sums(x)
        Q = np.empty_like(S)
        np.multiply(x, x, out=Q[1:])
        Q = _prefix_sums(Q[1:], out=Q)
        if init == "linear":
            c = _init_linear(x, k)
        elif init == "density":
            c = _init_density(x, k)
        else:
            c = _init_kmeanspp(x, S, Q, k, np.random.default_rng(seed))
        b = _bounds(x, np.sort(c))
        b = _refine(x, S, Q, _descend(x, S, Q, b, iters), iters) if refine else _lloyd(x, S, Q, b, iters)
        c = _means(S, b)
        del x, S, Q  # before the labels are made
    centroids = torch.from_numpy(np.unique((c + shift).astype(np.float32)))  # sorted, no duplicates
    return centroids, nearest(torch.from_numpy(v), centroids)


def _distinct_at_most(xs, k, chunk=CHUNK):
    """The distinct values of sorted xs if there are at most k of them, else None; a chunk at a time (a mask
    of every value, and a copy of them, took 2 bytes a value for the few that count)."""
    found = [xs[:1]]
    count = 1
    for i in range(1, len(xs), chunk):
        part = xs[i:i + chunk]
        new = part[part != xs[i - 1:i - 1 + len(part)]]
        count += len(new)
        if count > k:
            return None
        found.append(new)
    return np.concatenate(found)


def _prefix_sums(x, out=None):
    """[0, x0, x0+x1, ...] (float64, len(x) + 1), summed in place: the same sums as
    np.concatenate(([0.0], np.cumsum(x))) without its copy. `out` may hold x at out[1:]."""
    out = np.empty(len(x) + 1) if out is None else out
    out[0] = 0.0
    np.cumsum(x, out=out[1:])
    return out


def nearest(values, centroids, chunk=CHUNK):
    """Index (int64) of the nearest of the sorted `centroids` for every entry of `values`
    (ties, exactly at a midpoint, go to the larger centroid). A chunk at a time: comparing float32 values with
    float64 midpoints made a float64 copy of them all."""
    c = centroids.detach().cpu().numpy().astype(np.float64)
    mid = (c[:-1] + c[1:]) / 2
    v = values.detach().cpu().numpy()
    out = np.empty(v.shape, dtype=np.int64)
    flat_v, flat_out = v.reshape(-1), out.reshape(-1)
    for i in range(0, flat_v.size, chunk):
        flat_out[i:i + chunk] = np.searchsorted(mid, flat_v[i:i + chunk], side="right")
    return torch.from_numpy(out)


def inertia(values, centroids, labels):
    """Sum of squared distances of the values to their centroids, in float64."""
    d = values.to(torch.float64) - centroids.to(torch.float64)[labels]
    return float((d * d).sum())


# -----------------------------------------------------------------------------
# clustering a weight tensor / a model


def cluster_weight(w, k, init="linear", mask=None, seed=0):
    """k-means over the kept weights of `w` (mask True, or w != 0 when mask is None).

    Returns (centroids (<= k,), labels of w's shape, int64, -1 where pruned). Pruned weights
    take no part: they would pull a centroid to zero, and they are stored apart anyway (as
    sparse positions), so they stay exactly zero.
    """
    k, init = _check_k(k), _check_init(init)
    w = w.detach()
    keep = (w != 0) if mask is None else mask.to(device=w.device, dtype=torch.bool)
    if keep.shape != w.shape:
        raise RecipeError(f"mask shape {tuple(keep.shape)} must equal the weight shape {tuple(w.shape)}")
    keep = keep.cpu()
    if not keep.any():  # a fully pruned layer: nothing to cluster
        return torch.zeros(0, dtype=torch.float32), torch.full(w.shape, -1, dtype=torch.int64)
    every = bool(keep.all())
    centroids, lab = kmeans_1d((w.cpu().reshape(-1) if every else w.cpu()[keep]).float(), k, init=init, seed=seed)
    if every:  # nothing pruned: the labels are already every weight's (no second copy of them)
        return centroids, lab.reshape(w.shape)
    labels = torch.full(w.shape, -1, dtype=torch.int64)  # made after the search, which needs the memory more
    labels[keep] = lab
    return centroids, labels


class _Lookup(torch.autograd.Function):
    """table[index] whose backward sums the gradient per table entry in a fixed order.

    Autograd's own index backward accumulates with parallel atomics on CPU, so two identical
    fine-tuning runs could differ in the last bits; bincount (float64) is serial and exact enough.
    """

    @staticmethod
    def forward(ctx, table, index):
        ctx.save_for_backward(index)
        ctx.size = table.numel()
        return table[index]

    @staticmethod
    def backward(ctx, grad):
        (index,) = ctx.saved_tensors
        summed = torch.bincount(index.flatten(), weights=grad.flatten().double(), minlength=ctx.size)
        return summed.to(grad.dtype), None


def shared_weight(centroids, labels):
    """Rebuild a weight from its centroids and labels: centroids[labels], 0 where labels == -1."""
    table = torch.cat((centroids.new_zeros(1), centroids))  # slot 0 holds the pruned zero
    return _Lookup.apply(table, labels + 1)


class Shared(nn.Module):
    """Parametrization that makes a weight centroids[labels] with trainable centroids.

    Register with torch.nn.utils.parametrize.register_parametrization(module, "weight",
    Shared(centroids, labels)). The gather's backward adds up the gradients of all the weights
    with the same label, which is exactly Deep Compression's centroid update (§3.3); pruned
    positions (label -1) read a constant zero and receive no gradient.

    The incoming weight is ignored, so the stored original
    (module.parametrizations.weight.original) never gets a gradient: its .grad stays None and
    torch's optimizers skip such parameters entirely (weight decay included), so passing
    model.parameters() is harmless. Freezing it (original.requires_grad_(False)) or leaving it
    out of the optimizer is tidier; remove the parametrization with leave_parametrized=True to
    get a plain weight back. The centroids train; model.constrained, which the pipeline registers
    this with, freezes them (requires_grad False) when the weight they replace was frozen.
    """

    def __init__(self, centroids, labels):
        super().__init__()
        self.centroids = nn.Parameter(centroids.detach().clone().to(torch.float32))
        self.register_buffer("labels", labels.detach().to(torch.int64))

    def forward(self, _w):
        return shared_weight(self.centroids, self.labels)


def cluster_model(model, k, init="linear", masks=None, seed=0):
    """Cluster every compressible weight of `model` in place (weights become centroids[labels],
    pruned ones stay 0). `k` is one cluster count for all layers or a dict name -> count (None or missing:
    that layer is left alone). `masks` (name -> bool tensor) says which weights are kept; without it,
    the zeros of each weight are taken as pruned. Returns {name: (centroids, labels)}."""
    out = {}
    for name, p in compressible(model).items():
        kk = k.get(name) if isinstance(k, dict) else k
        if kk is None:  # this layer is not clustered (a per-layer choice): its weights stay as they are
            continue
        centroids, labels = cluster_weight(p, kk, init, None if masks is None else masks.get(name), seed)
        with torch.no_grad():
            p.copy_(shared_weight(centroids, labels).to(p.dtype))
        out[name] = (centroids, labels)
    return out


# -----------------------------------------------------------------------------
# the pipeline stage


def active(recipe):
    return recipe.shares()


def epochs(recipe):
    return recipe.finetune_epochs


def apply(model, recipe, ctx):
    """Share weights in each compressible layer (recipe.clusters centroids; recipe.conv_clusters for
    convolutions if set), fine-tune the centroids, and leave each layer's codebook in ctx.grids."""
    from compress_engine.core.encode import Codebook
    r = recipe
    weights = compressible(model)
    ks = {n: r.layer(n, p.dim() > 2)[1] for n, p in weights.items()}
    # kept = the pruning mask, less any weight that is exactly zero (a dense layer's own zeros stay zeros, as
    # they do when clustering runs without pruning first: the two give the same model stage by stage or at once)
    masks = {n: (p.detach() != 0) if ctx.masks is None else ctx.masks[n] & (p.detach() != 0) for n, p in weights.items()}
    books = cluster_model(model, ks, r.cluster_init, masks, r.seed)
    if r.finetune_epochs:
        pars = {n: Shared(c, lab) for n, (c, lab) in books.items()}
        # layers left unclustered (a per-layer choice) keep their zeros while the others' centroids train
        held = {n: Masked(m) for n, m in masks.items() if n not in books}
        ctx.finetune(model, {**pars, **held}, NAME, freeze_original=True)
        books = {n: (par.centroids.detach(), par.labels) for n, par in pars.items()}
    # a layer pruned to nothing has no centroids: its (all-zero) weights need no codebook
    ctx.grids = {n: Codebook(c.numpy().astype("float32")) for n, (c, _) in books.items() if len(c)}
    return model
