"""Size budgets: "make it fit in N KB" with per-layer sparsity and cluster counts (mixed precision).

A uniform recipe treats every layer the same, although layers differ by an order of magnitude in what
they tolerate (sensitivity.py). Given a byte budget, `allocate` picks one setting per layer from the
sensitivity scan's grid -- a sparsity and a cluster count (k clusters: log2 k bits a kept weight; None
keeps float32 values) -- so that the layers' measured bytes fit and the summed damage is least. It is a
multiple-choice knapsack, solved exactly by dynamic programming over bytes in small units (the grid is
a few dozen settings per layer). Damage is the scan's KL(dense || compressed) of each layer alone (for
regression targets, the mean squared change of the outputs over the targets' variance), assumed additive across
layers (the usual first-order assumption of mixed-precision search, as in HAQ
and HAWQ); bytes are the encoder's own for that layer at that setting.

`fit_budget` then makes it real: scan (on a fixed subset of the *training* images, so the test set never
chooses the allocation; kept on disk), allocate under the budget less the header and carried tensors
(biases, free parameters), prune gradually while fine-tuning; then choose the cluster counts again on
the pruned model, whose index bytes are now known exactly, share weights and fine-tune the centroids,
8-bit biases, entropy coding. The artifact is measured: if it comes out over the budget, the cluster
counts are chosen again for a budget smaller by the overshoot; if none of the tries fits, the last is returned with
plan["fits"] False and an OverBudget warning. The one Recipe it returns replays the run
anywhere (CLI, Export).
"""

import copy
import math
import numbers

import numpy as np
import torch

from . import quantize, sensitivity
from .data import check_dataset
from .encode import encode, size_breakdown
from .errors import RecipeError, warn
from .model import NORMS, artifact_meta, check_model, compressible, plain_module, state_bytes
from .recipe import Recipe, renamed

MAX_UNITS = 4000  # byte budget resolution of the knapsack (units of ceil(budget / MAX_UNITS) bytes)
MARGIN = 0.02     # budget share held back in step 1 (half of it in step 2) for what fine-tuning changes
SLACK = 0.08      # what training may add to the smallest artifact the scan predicts (measured: up to ~6 % on LeNets)
KB = 1000         # the dashboard's and README's unit (playground.units)
# fit_budget's defaults, one definition for it, its probe and its recipe, and for the command line's help
EPOCHS = 4        # fine-tuning epochs per stage
LR = 1e-3         # fine-tuning learning rate
BIAS_BITS = 8     # biases on a grid of this many bits
KD = 4.0          # the soft-target temperature the Sensitivity page and the command line fit with (fit_budget's kd)


def need_bytes(weights, other):
    """The least budget fit_budget takes before training: the smallest artifact (`weights` bytes of the weights'
    smallest settings + `other` of header and carried tensors), what training may add to it (SLACK), and the share
    of the budget held back (MARGIN)."""
    return (weights + other) * (1 + SLACK) / (1 - MARGIN)


def up_kb(n_bytes, digits):
    """`n_bytes` in KB rounded up to `digits` decimals, so a budget of that many KB holds them."""
    return math.ceil(n_bytes / (KB // 10**digits)) / 10**digits


def least_kb(other, weights=None):
    """The least budget fit_budget's checks before training pass (need_bytes), in KB as its refusals name it: rounded
    up to 0.01 KB while the weights' bytes are unknown (`weights` None: refused before the scan), to 0.1 KB once
    they count. `other`: the header and carried tensors' bytes (probe_overhead()); `weights`: smallest_bytes()."""
    return up_kb(need_bytes(weights or 0, other), 2 if weights is None else 1)


def carried_words(other, largest=None):
    """'8,453 bytes of header and carried tensors (the largest: w1, 32×64, 8,192 bytes)': what an artifact holds
    beside the compressible weights (overhead()); `largest` is overhead()'s (name, shape, bytes) or None."""
    words = f"{other:,.0f} bytes of header and carried tensors"
    if largest is not None:
        name, shape, size = largest
        words += f" (the largest: {name}, {'×'.join(map(str, shape)) or 'one value'}, {size:,} bytes)"
    return words


def too_small(budget_bytes, weights, other, need, largest=None):
    """The RecipeError for a budget below `need` bytes, in KB (as the budget is given on the page and command
    line): the smallest artifact is `weights` bytes of the weights' smallest settings + `other` of the rest
    (`largest`: the largest tensor in it, overhead()'s)."""
    up = up_kb(need, 1)  # KB rounded up to 0.1 KB, so the advice given works (least_kb)
    # both in bytes too: in KB to one decimal, 0.47 KB against "about 0.4 KB" read as a contradiction
    return RecipeError(f"a budget of {budget_bytes / KB:,.4g} KB is too small for this model and recipe "
                       f"({budget_bytes:,.0f} bytes): its smallest artifact is about {weights + other:,.0f} bytes "
                       f"(the weights' smallest settings {weights:,.0f} bytes + {carried_words(other, largest)}), "
                       f"and fine-tuning needs some room beside it; give {up:,.1f} KB or more")


def too_small_before_weights(budget_bytes, other, largest=None):
    """The RecipeError for a budget under need_bytes(0, other): refused before the scan, which would only add the
    weights' bytes to what it needs. Says which rule refuses it: the header and carried tensors alone, or the room
    held beside them."""
    need = need_bytes(0, other)
    need_kb = least_kb(other)  # KB rounded up to 0.01 KB, so the budget named passes
    carried = carried_words(other, largest)
    why = (f"is smaller than this model's {carried} alone" if budget_bytes < other else
           f"holds this model's {carried}, but not the room fit_budget keeps beside them ({SLACK:.0%} for what "
           f"training may add, {MARGIN:.0%} of the budget held back)")
    return RecipeError(f"a budget of {budget_bytes / KB:,.4g} KB ({budget_bytes:,.0f} bytes) {why}, before any "
                       f"weight: only a budget of {need_kb:,.2f} KB ({math.ceil(need):,} bytes) or more passes "
                       f"this check, and the weights' smallest settings come on top (given such a budget, a "
                       f"sensitivity scan of every layer measures them and names the budget that holds them)")


def refusal(budget_bytes, other, largest=None, weights=None):
    """The RecipeError fit_budget raises for `budget_bytes` before any training, or None if it passes: under
    need_bytes(0, other) it is refused before the scan; with `weights` (the bytes of the weights' smallest scanned
    settings, smallest_bytes()) also under need_bytes(weights, other). A page asks it before queueing a fit."""
    if budget_bytes < need_bytes(0, other):
        return too_small_before_weights(budget_bytes, other, largest)
    if weights is not None and budget_bytes < need_bytes(weights, other):
        return too_small(budget_bytes, weights, other, need_bytes(weights, other), largest)
    return None


def smallest_bytes(scan, names):
    """The bytes of the named layers at their smallest scanned settings: the least any allocation can spend."""
    return sum(min(r["bytes"] for r in sensitivity.curve(scan, n)) for n in names)


def allocate(scan, budget_bytes, metric="kl"):
    """Per-layer settings from a sensitivity scan whose summed bytes fit `budget_bytes` (the compressible
    weights only) with the least summed damage -> dict:

        {"layers": {name: {"sparsity": s, "clusters": k or None}}, "bytes": predicted bytes,
         "damage": summed metric, "rows": [the chosen scan row per layer]}

    metric: "kl" (default) or "accuracy" (damage = accuracy lost). RecipeError if even the smallest
    setting of every layer does not fit."""
    if metric not in ("kl", "accuracy"):
        raise RecipeError(f"metric={metric!r}: must be 'kl' or 'accuracy'")
    if isinstance(budget_bytes, bool) or not isinstance(budget_bytes, numbers.Real) or not budget_bytes > 0:
        raise RecipeError(f"budget_bytes={budget_bytes!r}: must be a positive number of bytes")
    base = scan["dense_accuracy"]
    unit = max(1, math.ceil(budget_bytes / MAX_UNITS))
    cap = int(budget_bytes // unit)
    dp = np.full(cap + 1, np.inf)
    dp[0] = 0.0
    choices = []
    for layer in scan["layers"]:
        rows = sensitivity.curve(scan, layer["name"])
        cost = np.array([max(r["kl"], 0.0) if metric == "kl" else max(base - r["accuracy"], 0.0) for r in rows])
        size = np.array([math.ceil(r["bytes"] / unit) for r in rows])
        new = np.full(cap + 1, np.inf)
        arg = np.full(cap + 1, -1)
        for i in range(len(rows)):
            if size[i] > cap:
                continue
            cand = np.full(cap + 1, np.inf)
            cand[size[i]:] = dp[:cap + 1 - size[i]] + cost[i]
            better = cand < new
            new[better], arg[better] = cand[better], i
        if not np.isfinite(new).any():
            smallest = smallest_bytes(scan, [la["name"] for la in scan["layers"]])
            raise RecipeError(f"budget of {budget_bytes:,.0f} bytes for the weights is too small: the smallest "
                              f"setting of every layer takes {smallest:,} bytes")
        choices.append((rows, size, arg))
        dp = new
    at = int(np.nanargmin(np.where(np.isfinite(dp), dp, np.nan)))
    damage = float(dp[at])
    picked = []
    for rows, size, arg in reversed(choices):
        i = int(arg[at])
        picked.append(rows[i])
        at -= int(size[i])
    picked.reverse()
    return {"layers": {r["layer"]: {"sparsity": r["sparsity"], "clusters": r["clusters"]} for r in picked},
            "bytes": sum(r["bytes"] for r in picked), "damage": damage, "rows": picked}


def overhead(model, recipe):
    """(bytes, largest) of everything but the compressible weights in an artifact of `model` under `recipe`: the
    header (records, architecture, the recipe itself) and the carried tensors (biases on the recipe's bias grid,
    free parameters, buffers), measured by encoding the model as compress() deploys it (BatchNorm folded into the
    convs where it declares so) with those weights zeroed, and the carried tensors training moves at what they cost
    once trained (as_trained_). largest: (name, shape, bytes) of the carried tensor that takes the most bytes in it,
    None if there is none."""
    from .pipeline import deployed
    work = deployed(copy.deepcopy(model).eval())
    as_trained_(work, set(compressible(work)))
    grids = quantize.quantize_biases(work, recipe.bias_bits) if recipe.bias_bits is not None else {}
    names = set(compressible(work))
    state = {k: (torch.zeros_like(v) if k in names else v.detach()) for k, v in work.state_dict().items()}
    blob = encode(state, grids, artifact_meta(work, recipe), huffman=recipe.huffman)
    per = size_breakdown(blob)["per_tensor"]
    carried = {k: sum(per[k].values()) for k in state if k not in names}
    big = max(carried, key=carried.get, default=None)
    return len(blob), None if big is None else (big, tuple(state[big].shape), carried[big])


@torch.no_grad()
def as_trained_(model, names):
    """Give the carried tensors of `model` (all but `names`) that fine-tuning moves (trainable parameters, BatchNorm
    running statistics) and that still hold one value throughout (an untrained model's zero biases and BatchNorm
    means, its BatchNorm scales and variances of 1) distinct values about it, in place, drawn by a fixed seed: the
    encoder stores zeros for nothing and one repeated value for a few bytes, but training makes them as many
    different values, which cost their full coded size (counted as they were, an untrained MobileNet-like net's
    artifacts came out over a small budget at every try). Tensors already varied keep their values: they cost about
    the same after fine-tuning."""
    gen = torch.Generator().manual_seed(0)
    moving = {n for n, p in model.named_parameters() if p.requires_grad}
    moving |= {f"{m}.{b}" if m else b for m, mod in model.named_modules() if isinstance(mod, NORMS)
               for b in ("running_mean", "running_var") if getattr(mod, b, None) is not None}
    for name, t in model.state_dict(keep_vars=True).items():
        if name in names or name not in moving or not t.is_floating_point() or not t.numel():
            continue
        flat = t.detach().reshape(-1)
        if bool((flat == flat[0]).all()):
            scale = max(abs(float(flat[0])), 1.0) * 0.01
            t.data.copy_(flat[0] + scale * torch.randn(t.shape, generator=gen).to(t.dtype))


@renamed(epochs="finetune_epochs")
def probe_overhead(model, names, finetune_epochs=EPOCHS, lr=LR, bias_bits=BIAS_BITS, seed=0, kd=None, focus=0.0):
    """overhead() of the recipe fit_budget probes with (layers `names` at its smallest settings, its other fields
    fit_budget's of these arguments) -> (bytes, largest): what fit_budget's checks before any training reserve, so a
    page can offer the least budget they pass (need_bytes) without running one."""
    probe = budget_recipe({"layers": {n: {"sparsity": 0.99, "clusters": 2} for n in names}}, finetune_epochs, lr,
                          bias_bits, seed, kd, focus)
    return overhead(model, probe)


def overhead_bytes(model, recipe):
    """Bytes of everything but the compressible weights in an artifact of `model` under `recipe` (overhead())."""
    return overhead(model, recipe)[0]


@renamed(epochs="finetune_epochs")
def budget_recipe(allocation, finetune_epochs, lr=LR, bias_bits=BIAS_BITS, seed=0, kd=None, focus=0.0):
    """The Recipe that carries out an allocation ({"layers": {name: {"sparsity", "clusters"}}}): per-layer
    overrides, gradual pruning while fine-tuning `finetune_epochs` epochs, then weight sharing with as many epochs of
    centroid fine-tuning, low-bit biases, entropy coding."""
    pruned = any(v.get("sparsity") for v in allocation["layers"].values())
    return Recipe(layers={n: {k: v for k, v in s.items() if v is not None} or {"sparsity": 0.0}
                          for n, s in allocation["layers"].items()},
                  schedule="gradual" if finetune_epochs and pruned else "oneshot", finetune_epochs=finetune_epochs,
                  lr=lr,
                  bias_bits=bias_bits, huffman=True, seed=seed, finetune_kd=kd, prune_focus=focus)


class OverBudget(UserWarning):
    """fit_budget's warning that its artifact is over the budget after every try (plan["fits"] is False)."""


def over_budget(budget_bytes, n_bytes, tries, fix="(plan['fits'] is False): give a larger budget, or more retries"):
    """Why fit_budget's result does not fit: its artifact's bytes against the budget, after `tries` tries, and `fix`,
    what to do (a Python caller's by default; the dashboard says its own)."""
    return (f"the artifact is {n_bytes:,} bytes, {n_bytes - budget_bytes:,.0f} over the budget of "
            f"{budget_bytes:,.0f} bytes after {tries} {'try' if tries == 1 else 'tries'} {fix}")


class _Offset:
    """Reports two compress() runs as one count to the caller's progress callback."""

    def __init__(self, callback, total):
        self.callback, self.total, self.done = callback, total, 0

    def __call__(self, step, _total, loss, acc):
        return self.callback(self.done + step, self.total, loss, acc) if self.callback else None


@renamed(epochs="finetune_epochs")
def fit_budget(model, data, budget_bytes, finetune_epochs=EPOCHS, lr=LR, bias_bits=BIAS_BITS, seed=0, metric="kl",
               scan=None, progress=None, cache_dir=None, retries=2, kd=None, teacher_logits=None, focus=0.0, shipped=(),
               answers_progress=None, scan_progress=None):
    """Compress `model` to fit in `budget_bytes` (artifact bytes, header and biases included) with the
    per-layer settings that keep the most accuracy -> (compress() Result, plan dict).

    In two steps, each a compress() run: (1) per-layer sparsities from the knapsack over the re-fitted scan
    (the cluster counts it chose are only provisional), reached by gradual pruning while fine-tuning;
    (2) per-layer cluster counts chosen again on the pruned, fine-tuned model, whose index bytes are now
    exact, under what the budget has left; weight sharing and centroid fine-tuning (the assignments stay
    fixed, so the code bytes are known before training), 8-bit biases, entropy coding. The returned
    Result carries one Recipe with both steps' per-layer settings (in the artifact too): compress(model,
    result.recipe, data) replays the run to the same bytes.

    The plan holds the budget, the allocation per layer (sparsity, clusters, predicted bytes, damage), the
    overhead, the predicted and real bytes, the attempts and "fits": whether the artifact is within the budget. A
    try that comes out over it is made again for a budget smaller by the overshoot (`retries` more times at most);
    if the last is still over, its Result is returned with plan["fits"] False and an OverBudget warning saying by
    how much (the command line exits with status 1). `scan`: a re-fitted sensitivity scan to use
    (default: one on 2,000 training images, kept on disk in `cache_dir`, or read from a `shipped` directory:
    zoo.scan_dir of a sample model); the allocation can only choose among
    its sparsities, so a finer grid where the big layers sit (sensitivity.scan(..., sparsities=...)) lets it land
    closer: bench/beyond.py's LeNet-300-100 lost 0.27 points at 64x on average instead of 0.44 with one. progress(step, total, loss,
    accuracy) reports the whole fit as one count (return False to stop: train.Stopped): fine-tuning, each compress()
    run's evaluations and the last test-set evaluation of the result (a batch a step, loss and accuracy None), and the
    cluster scan between its two steps as (the steps done, total, None, None); it ends at its total. kd: fine-tune on the dense model's
    soft targets at this temperature (Recipe.finetune_kd); teacher_logits: another model's logits on every
    training input (N, C) to follow instead (a stronger model of the zoo, as in quantized distillation,
    Polino et al. 2018), with kd's temperature. With kd and no teacher_logits, the dense model's own answers on
    every training input are computed first (ResNet-8's 60,000: about a minute), with no fine-tuning step to
    report: answers_progress(done, total) follows them in inputs (return False to stop: train.Stopped). scan_progress(
    step, total, None, accuracy) follows the scan it makes when not given one, point by point, and (the points done,
    total, None, None) inside a long point, at least every train.REPORT_SECONDS (False stops it at once). focus: prune with Recipe.prune_focus (the kept weights
    gather in fewer units and inputs, whose positions cost less; the scan then prices that pruning too).
    RecipeError, before any training, if the budget cannot hold the smallest setting of every layer with some room
    (the message names the smallest budget that does, in KB). finetune_epochs: the fine-tuning epochs of each step,
    as Recipe.finetune_epochs (epochs= is its old name: still taken, with a DeprecationWarning).
    """
    from . import pipeline
    from .train import answers, batch_progress, eval_steps, fast_eval_copy, logits
    check_dataset(data)
    if isinstance(budget_bytes, bool) or not isinstance(budget_bytes, numbers.Real) or not budget_bytes > 0:
        raise RecipeError(f"budget_bytes={budget_bytes!r}: must be a positive number of bytes")
    if getattr(data, "regression", False) and (kd or teacher_logits is not None):
        raise RecipeError(f"kd fine-tunes on a teacher's softened class probabilities, but {data.name!r} holds "
                          f"regression targets, which have none: leave kd and teacher_logits unset")
    if teacher_logits is not None and not kd:  # refused before any work (the scan takes minutes)
        raise RecipeError(f"teacher_logits are followed at kd's temperature: give kd (e.g. {KD}) as well")
    model = plain_module(model)
    check_model(model, data)  # before the model is copied and encoded below: a float64 or meta model, in words
    dense = state_bytes(model)
    if budget_bytes >= dense:  # e.g. kilobytes given as bytes' thousands: there is nothing to fit
        raise RecipeError(f"budget_bytes={budget_bytes:,.0f} is no smaller than the dense model ({dense:,} bytes of "
                          f"float32): it fits as it is; give a budget below {dense:,} bytes")
    if scan is not None and scan.get("focus", 0.0) != focus:
        raise RecipeError(f"the scan given was made with focus={scan.get('focus', 0.0)} and the budget prunes with "
                          f"focus={focus}: scan with sensitivity.scan(..., focus={focus}) or leave scan=None")
    # the header and carried tensors depend on the model and the recipe's form only: a budget that cannot hold them
    # with the room kept beside them, whatever the weights take, is refused before the scan (minutes on a model of
    # one's own: a 10-byte budget ran 5 minutes, silent, then was refused)
    names = [la["name"] for la in scan["layers"]] if scan is not None else list(compressible(model))
    fixed, largest = probe_overhead(model, names, finetune_epochs, lr, bias_bits, seed, kd, focus)
    if (refused := refusal(budget_bytes, fixed, largest)) is not None:
        raise refused
    room = budget_bytes * (1 - MARGIN) - fixed
    if scan is None:
        # the scan's reports inside a point (accuracy None) pass on too: a big layer's refit is minutes long, and a
        # False returned then stops the scan at once, not at the end of the point
        scan = sensitivity.scan(model, data, split="train", cache_dir=cache_dir, refit=True, focus=focus,
                                shipped=shipped, progress=scan_progress)
        names = [la["name"] for la in scan["layers"]]
    # refused here, before any training, with a safe need: after pruning and fine-tuning, the smallest settings'
    # bytes, the header and the entropy coding all come out a little larger than the scan predicts, and a budget
    # that only just holds the prediction trained a whole stage and was then refused (3.3 KB on LeNet-300-100)
    smallest = smallest_bytes(scan, names)
    if (refused := refusal(budget_bytes, fixed, largest, smallest)) is not None:
        raise refused
    first = allocate(scan, room, metric)
    sparsity = {n: first["layers"][n]["sparsity"] for n in names}
    # step 1: prune (biases stay float32 until the very end, as in one compress() run of the whole recipe)
    prune_recipe = Recipe(layers={n: {"sparsity": s} for n, s in sparsity.items()}, lr=lr, seed=seed, finetune_kd=kd,
                          prune_focus=focus,
                          finetune_epochs=finetune_epochs,
                          schedule="gradual" if finetune_epochs and any(sparsity.values()) else "oneshot")
    # with kd, both steps follow the dense model's soft targets (as one compress() run of the recipe would)
    teacher = None if not (kd and finetune_epochs) else {
        "train": teacher_logits if teacher_logits is not None else
        logits(fast_eval_copy(pipeline.deployed(model)), data.x("train"), progress=answers_progress)}
    # what each compress() run's progress counts (its evaluations' batches and its training steps): step 2's with a
    # stand-in for the clusters it will choose
    pruning_steps = pipeline.progress_steps(model, prune_recipe, data, model_logits=teacher)
    sharing_steps = pipeline.progress_steps(model, Recipe(clusters=2, finetune_epochs=finetune_epochs, finetune_kd=kd),
                                            data, model_logits=teacher)
    # and, last, the compressed model's test-set evaluation (a batch a step), after the last try's compress()
    final_steps = eval_steps(model, len(data.y("test")))
    tracker = _Offset(progress, pruning_steps + sharing_steps + final_steps)
    pruned = pipeline.compress(model, prune_recipe, data, progress=tracker if progress else None, model_logits=teacher,
                               warn_collapse=False)  # (the result is judged once, at the end)
    tracker.done = pruning_steps

    # step 2: cluster counts on the pruned model, under what is left
    # the cluster scan between the two stages: progress hears from it at the count fine-tuning reached (loss and
    # accuracy None, as fit() reports between its steps), and can stop it
    cscan = sensitivity.scan(pruned.model, data, sparsities=(0.0,), clusters=scan["clusters"], split="train",
                             subset=scan["subset"], use_cache=False,
                             progress=(lambda *_: tracker(0, None, None, None)) if progress else None)
    target, attempts = float(budget_bytes), []
    probe = budget_recipe({"layers": {n: {"sparsity": sparsity[n], "clusters": 2} for n in names}},
                          finetune_epochs, lr, bias_bits, seed, kd, focus)
    fixed, least = overhead_bytes(model, probe), smallest_bytes(cscan, names)  # the same at every try
    for attempt in range(retries + 1):
        if attempt:  # a try again trains stage 2 once more: its steps count on from the last try's, out of a larger
            # total (they went back from step 901 of 938 to 535 of 938, which read as a stall or a restart)
            tracker.done, tracker.total = tracker.total - final_steps, tracker.total + sharing_steps
        if target * (1 - MARGIN / 2) - fixed < least:  # (rare past the check above) before step 2's training
            if attempts:  # a try has its result: it is returned over the budget (plan["fits"] False, OverBudget),
                # as when the retries run out; refused after training, it was lost and the advice did not hold
                tracker.total -= sharing_steps  # this try does not train (nothing was reported out of its total)
                break
            raise too_small(budget_bytes, least, fixed, (least + fixed) / (1 - MARGIN / 2), largest)
        second = allocate(cscan, target * (1 - MARGIN / 2) - fixed, metric)
        clusters = {n: second["layers"][n]["clusters"] for n in names}
        recipe = budget_recipe({"layers": {n: {"sparsity": sparsity[n], "clusters": clusters[n]} for n in names}},
                               finetune_epochs, lr, bias_bits, seed, kd, focus)
        share = Recipe(layers={n: {"clusters": k} for n, k in clusters.items() if k is not None}, lr=lr, seed=seed,
                       finetune_epochs=finetune_epochs, bias_bits=bias_bits, huffman=True, finetune_kd=kd)
        shared = pipeline.compress(pruned.model, share, data, progress=tracker if progress else None,
                                   model_logits=teacher, warn_collapse=False)
        state = {k: v.detach().contiguous() for k, v in shared.model.state_dict().items()}
        # and, measured in the same pass, the artifact with fixed-width codes, as compress(model, recipe, data), the
        # replay, computes it: what every compress() result carries beside (metrics["plain_bytes"])
        artifact, plain = encode(state, shared.grids, artifact_meta(shared.model, recipe), huffman=True,
                                 plain_meta=artifact_meta(shared.model, recipe.replace(huffman=False)))
        attempts.append({"target": target, "predicted": second["bytes"] + fixed, "bytes": len(artifact)})
        if len(artifact) <= budget_bytes:
            break
        # the miss is mostly an offset (carried tensors, coding that training changed), whatever the weights take:
        # take it off what the weights are given, and a little more
        target -= (len(artifact) - budget_bytes) / (1 - MARGIN / 2) + budget_bytes * MARGIN / 2
    ref_pred, ref_acc = pipeline.reference(model, data)  # step 1's compress() computed it (reference()'s cache)
    tracker.done = tracker.total - final_steps  # its count, then the last steps'
    pred = answers(fast_eval_copy(shared.model), data.x("test"), data,
                   progress=batch_progress(tracker if progress else None, final_steps))
    dense = pruned.metrics
    metrics = pipeline.measure(shared.model, shared.grids, artifact, dense["dense_params"], dense["dense_bytes"], pred,
                               data.y("test"), ref_pred, ref_acc)
    # the dense (input) and the compressed model's FLOPs, as the replay computes them
    metrics["plain_bytes"] = plain
    metrics["dense_flops"], metrics["flops"] = dense["dense_flops"], shared.metrics["flops"]
    timings = {"prune": pruned.timings.get("prune", 0.0), "cluster": shared.timings.get("cluster", 0.0),
               "total": pruned.timings["total"] + shared.timings["total"]}
    result = pipeline.Result(shared.model, metrics, artifact, recipe, {**pruned.history, **shared.history}, timings,
                             shared.grids)
    cost = {r["layer"]: r for r in second["rows"]}
    # both warnings at the caller's line (errors.warn)
    if len(artifact) > budget_bytes:
        warn(over_budget(budget_bytes, len(artifact), len(attempts)), OverBudget)
    pipeline.chance.warn_if_collapsed(metrics, data)  # at chance level, as compress() says it
    return result, {"budget_bytes": budget_bytes, "overhead_bytes": fixed, "predicted_bytes": second["bytes"] + fixed,
                    "bytes": len(artifact), "fits": len(artifact) <= budget_bytes, "attempts": attempts,
                    "recipe": recipe.to_dict(), "pruned_accuracy": pruned.metrics["accuracy"],
                    **({"pruned_r2": pruned.metrics["r2"]} if "r2" in pruned.metrics else {}),
                    "allocation": [{"layer": r["layer"], "sparsity": r["sparsity"], "clusters": clusters[r["layer"]],
                                    "predicted_bytes": cost[r["layer"]]["bytes"], "kl": r["kl"] + cost[r["layer"]]["kl"],
                                    "scan_accuracy": r["accuracy"]} for r in first["rows"]],
                    "scan_key": scan["key"]}
