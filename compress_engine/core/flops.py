"""FLOPs budgets: structured pruning to "at most this share of the model's FLOPs", counted exactly.

People ask for a model that is 4x cheaper to run, not for a fraction of units. `fit_flops(model, data, 0.25)`
prunes whole units (structured.py) until the dense model needs at most a quarter of its FLOPs, then fine-tunes:

- `count`: a model's forward FLOPs on one input, as torch's FlopCounterMode counts them (a multiply-add is 2),
  plus what it does not see inside torch's fused LSTM op: 2 per weight of every layer, per time step.
- `Costs`: the FLOPs of the model pruned by any plan, without building it. A Linear's, a conv's or an RNN layer's
  FLOPs are its dense FLOPs times the share of its weights the plan keeps (the positions it runs at do not change),
  everything else stays; equal to `count` of the smaller model, tested on every kind of model structured.py prunes.
- `uniform` (the default): every group loses the same fraction of its units, the smallest that fits, found by
  bisection on exact FLOPs.
- `search` (searched=True): a fraction per group instead. One greedy path from the dense model down: each step
  moves one group by one of `fractions` (1/8 of its units), the move whose pruned model loses the least per FLOP
  saved, measured whole (one-shot, the BatchNorms' statistics measured again, folded: what compress() does before
  fine-tuning; the loss is sensitivity.scan's KL(dense || pruned) on 1,000 training images, the adaptive-BatchNorm
  evaluation of EagleEye, Li et al. 2020, inside NetAdapt's greedy loop, Yang et al. 2018). Any budget reads its point off
  the one path (`pick`), which is kept on disk. bench/flops.py measures it against uniform pruning at equal FLOPs,
  both fine-tuned: on ResNet-8 and a ResNeXt it did not win, so it is an option to compare, not the default (README).
"""

import bisect
import copy
import math
import numbers
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from . import structured
from .errors import RecipeError
from .fold import deployed
from .model import check_model, plain_module
from .recipe import RANGES, Recipe, renamed
from .sensitivity import FORMAT, _damage, _find, _write_cache, default_cache_dir, scan_key, subset_index
from .train import Stopped, fast_eval_copy, logits, recalibrate_batchnorm

FRACTIONS = tuple(i / 8 for i in range(8))  # the fractions of its units a group may lose: 0, 1/8, ..., 7/8
SUBSET = 1000  # training images the search evaluates each candidate on (a fixed, seeded choice)


# --- counting ---------------------------------------------------------------------------------------

class _Counter(TorchDispatchMode):
    """FlopCounterMode's count, made safe beside other threads: torch's own formulas (flop_registry), applied as its
    dispatch handler applies them (an op that decomposes counts as its parts), with each op's FLOPs added to every
    module of the counted copy that is running.

    FlopCounterMode finds the running modules with hooks that every module of the process runs
    (register_module_forward_pre_hook). In a dashboard server, a training step in another thread then went through
    them and failed ("'ParametrizedLinear' object has no attribute 'weight'", tests/test_load.py). Here the hooks are
    on the counted copy's own modules, which no other thread has, and a dispatch mode is per thread. The counts equal
    FlopCounterMode's (tests/test_flops.py, on every kind of model the engine prunes)."""

    @classmethod
    def _should_skip_dynamo(cls):
        # torch's opt-out (TorchDispatchMode._should_skip_dynamo): otherwise the handler is wrapped in
        # torch._disable_dynamo, whose first call imports torch._dynamo (1.2 s here, once per process) for nothing:
        # no count runs torch.compile
        return False

    def __init__(self, model):
        super().__init__()
        self.total, self.per_module, self.inside = 0, {}, []
        self.hooks = [h for name, m in model.named_modules() if name for h in (
            m.register_forward_pre_hook(self._enter(name)), m.register_forward_hook(self._leave))]

    def _enter(self, name):
        return lambda module, args: self.inside.append(name)  # None: the module's inputs stay

    def _leave(self, module, args, out):
        self.inside.pop()  # returns None: the module's output stays

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not torch.ops.prim.device.default:
            with self:
                out = func.decompose(*args, **kwargs)
            if out is not NotImplemented:
                return out
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            n = formula(*args, **kwargs, out_val=out)
            self.total += n
            for name in set(self.inside):
                self.per_module[name] = self.per_module.get(name, 0) + n
        return out


def _counted(model, example):
    """(FLOPs of one input, {module name: FLOPs the counter saw}, {RNN module name: time steps}, the copy) of a deep
    copy in eval mode; with gradients on, so torch's transformer layers take the path of plain ops the counter sees.
    The total adds what the counter misses inside torch's fused LSTM op (_rnn_flops)."""
    work = copy.deepcopy(model).eval()
    steps = {}
    names = {m: n for n, m in work.named_modules()}
    hooks = [m.register_forward_pre_hook(
        lambda m, args: steps.__setitem__(names[m], args[0].shape[1 if m.batch_first else 0]))
        for m in work.modules() if isinstance(m, nn.RNNBase)]
    inputs = tuple(x[:1] for x in example) if isinstance(example, (tuple, list)) else (example[:1],)
    counter = _Counter(work)
    hooks += counter.hooks
    try:
        with counter, torch.enable_grad():
            work(*inputs)
    finally:
        for h in hooks:
            h.remove()
    per_module = counter.per_module
    mods = dict(work.named_modules())
    missed = sum(_rnn_flops(mods[name], t, per_module.get(name, 0)) for name, t in steps.items())
    return counter.total + missed, per_module, steps, work


def _rnn_flops(rnn, steps, counted):
    """What the counter missed of an RNN's matrix products: 2 FLOPs per weight of each layer and direction, per time
    step (gates x hidden x (inputs + hidden)), less what it counted (it sees torch's GRU and RNN run step by step with
    gradients on, not its fused LSTM)."""
    return max(2 * steps * sum(w.numel() for name, w in rnn.named_parameters() if name.startswith("weight_"))
               - counted, 0)


def count(model, example):
    """Forward FLOPs of `model` on one input (example[:1]): FlopCounterMode's count, plus the matrix products of
    every recurrent layer it does not see inside torch's fused RNN op."""
    return _counted(model, example)[0]


def count_or_none(model, example):
    """count(), or None for a model the counter cannot run (one whose forward refuses gradients, say): compress()
    reports FLOPs beside its other metrics and must not fail for want of them."""
    try:
        return count(model, example)
    except Exception:  # noqa: BLE001 -- any failure of the count only leaves the figure out
        return None


class Costs:
    """The FLOPs of `model` pruned by any plan, without building it: a Linear's, a conv's or an RNN layer's FLOPs
    are its dense FLOPs times the share of its weights the plan keeps (the positions it runs at do not change), and
    everything else (attention's products, a layer the plan leaves whole) stays as it is."""

    def __init__(self, model, example):
        total, per_module, steps, work = _counted(model, example)
        self.model, self.example = model, example
        self.per_weight = {}  # parameter name -> FLOPs per weight it keeps
        for name, m in work.named_modules():
            if isinstance(m, nn.RNNBase) and name in steps:
                for attr, w in m.named_parameters():
                    if attr.startswith("weight_"):
                        self.per_weight[f"{name}.{attr}"] = 2 * steps[name]
            elif isinstance(m, nn.RNNCellBase) and per_module.get(name):  # every step it was called, counted
                for attr in ("weight_ih", "weight_hh"):
                    self.per_weight[f"{name}.{attr}"] = per_module[name] / (m.weight_ih.numel() + m.weight_hh.numel())
            elif (not any(True for _ in m.children()) and isinstance(getattr(m, "weight", None), torch.Tensor)
                  and per_module.get(name)):
                self.per_weight[f"{name}.weight"] = per_module[name] / m.weight.numel()
        params = dict(work.named_parameters())
        self.numel = {n: params[n].numel() for n in self.per_weight}
        self.dense = total
        self.fixed = self.dense - sum(c * self.numel[n] for n, c in self.per_weight.items())

    def of(self, kept):
        """FLOPs when each weight named in `kept` ({parameter name: weights kept}) keeps that many."""
        return round(self.fixed + sum(c * kept.get(n, self.numel[n]) for n, c in self.per_weight.items()))

    def of_plan(self, plan):
        """FLOPs of structured.apply(model, plan)."""
        return self.of({n: int(m.sum()) for n, m in structured.masks(self.model, plan).items()})

    def of_sparsity(self, s):
        """FLOPs of uniform structured pruning at `s` (Recipe(structured=True, sparsity=s): every group loses round(s * its
        units)), what compress() reports as metrics["flops"] for that recipe before any distillation."""
        return self.of_plan(structured.plan(self.model, s, self.example))

    def smallest_sparsity(self, budget, sparsities):
        """The first of `sparsities` (ascending; a slider's values, say) whose uniform structured pruning costs at
        most `budget` FLOPs, None if even the last does not: a bisection, as FLOPs only fall as the sparsity grows
        (about log2(len) plans costed)."""
        i = bisect.bisect_left(sparsities, True, key=lambda s: self.of_sparsity(s) <= budget)
        return sparsities[i] if i < len(sparsities) else None


# --- the search -------------------------------------------------------------------------------------

def _check_fractions(fractions):
    ok = (isinstance(fractions, (tuple, list)) and len(fractions) >= 2 and fractions[0] == 0
          and all(isinstance(f, numbers.Real) and not isinstance(f, bool) and 0 <= f < 1 for f in fractions)
          and list(fractions) == sorted(set(fractions)))
    if not ok:
        raise RecipeError(f"fractions={fractions!r}: must be increasing fractions of units in [0, 1), starting at 0, "
                          f"e.g. {FRACTIONS}")
    return tuple(float(f) for f in fractions)


def _knobs(groups):
    """What the search gives a fraction each, from plan()'s groups: a group, or all the layers of one RNN (they share
    one hidden size) -> [{"producers": every producer, "names": the one producer of each group that names it in
    plan()'s amounts, "units", "blocks"}]."""
    knobs = {}
    for g in groups:
        rnn = structured.RNN_LAYER.fullmatch(g.producers[0])
        k = knobs.setdefault(rnn[1] if rnn else g.producers[0],
                             {"producers": [], "names": [], "units": g.units, "blocks": g.blocks})
        k["producers"] += g.producers
        k["names"].append(g.producers[0])
    return list(knobs.values())


def _amounts(knobs, fractions):
    """plan()'s amounts for one fraction per knob (the knobs that lose units)."""
    return {name: f for k, f in zip(knobs, fractions) if f for name in k["names"]}


def _kept(knobs, plan):
    """The units each knob keeps under `plan`."""
    kept = {g.producers[0]: len(g.keep) for g in plan.groups}
    return [kept[k["names"][0]] for k in knobs]


def search(model, data, fractions=FRACTIONS, subset=SUBSET, split="train", progress=None, cache_dir=None,
           use_cache=True):
    """The greedy path from the dense model down to every group at the largest of `fractions`; returns a JSON-able
    dict:

        {"format", "key", "split", "subset", "fractions", "dense_accuracy", "dense_flops", "seconds",
         "groups": [{"producers": [layer names], "names", "units": n, "blocks": b}],   # all of one RNN's layers: one
         "path": [{"fractions": [one per group], "kept": [units kept per group], "flops", "accuracy", "kl"}]}

    The path starts dense; each next point moves one group to its next fraction: the move, of one per group, whose
    pruned model (one-shot, BatchNorm statistics measured again, folded: what compress(Recipe(structured=True)) does
    before fine-tuning) loses the least per FLOP saved, measured whole, not summed from groups pruned alone. The
    damage ("kl") is sensitivity.scan's: KL(dense || pruned) on `subset` fixed images of `split` (for regression
    targets the mean squared change of the outputs over the targets' variance; "accuracy" then holds R²). FLOPs are
    exact (Costs). Every FLOPs target then reads its point off the one path (`pick`), so the search runs once per
    model: it is kept on disk in cache_dir (default: the sensitivity scans' folder), keyed by the weights, the
    images and the fractions. progress(step, total, None, accuracy) after each model evaluated (return False to
    stop: raises train.Stopped). ModelError if structured pruning finds nothing to remove."""
    fractions = _check_fractions(fractions)
    model = plain_module(model)
    check_model(model, data)
    idx = subset_index(len(data.y(split)), subset)
    x, y = data.x(split)[idx], data.y(split)[idx]
    example = data.x("test")[:2]
    key = scan_key(model, x, y, fractions, None, f"structured-path+{split}")
    if use_cache and (hit := _find(key, cache_dir, ())) is not None:
        return hit
    t0 = time.perf_counter()
    model = copy.deepcopy(model).eval()
    folded = deployed(copy.deepcopy(model))
    rank_by = None if folded is model else folded
    groups = _knobs(structured.plan(model, 0.0, example).groups)
    costs = Costs(model, example)
    dense_out = logits(fast_eval_copy(folded), x)
    regression = getattr(data, "regression", False)
    dense_logp = F.log_softmax(dense_out.double(), 1) if y.dtype == torch.int64 else None
    scale = max(float(y.double().var(0, correction=0).mean()), 1e-12) if regression else None
    dense_acc = _damage(dense_out, dense_out, y, dense_logp, scale)[0]

    def point(at):
        p = structured.plan(model, 0.0, example, rank_by=rank_by, amounts=_amounts(groups, [fractions[j] for j in at]))
        small = structured.apply(model, p)
        recalibrate_batchnorm(small, data.x("train"))
        acc, kl = _damage(dense_out, logits(fast_eval_copy(deployed(small)), x), y, dense_logp, scale)
        return {"fractions": [fractions[j] for j in at], "kept": _kept(groups, p), "flops": costs.of_plan(p),
                "accuracy": acc, "kl": max(kl, 0.0)}

    at, step = [0] * len(groups), 0
    total = len(groups) * (len(fractions) - 1) * (len(groups) + 1) // 2  # at most, if every move saves FLOPs
    path = [{"fractions": [0.0] * len(groups), "kept": [g["units"] for g in groups], "flops": costs.dense,
             "accuracy": dense_acc, "kl": 0.0}]
    while True:
        now, best = path[-1], None
        for i in range(len(groups)):
            if at[i] + 1 == len(fractions):
                continue
            cand = point(at[:i] + [at[i] + 1] + at[i + 1:])
            step += 1
            if progress is not None and progress(step, total, None, cand["accuracy"]) is False:
                raise Stopped("structured pruning search stopped by the user")
            saved = now["flops"] - cand["flops"]
            if saved > 0:
                key_ = ((cand["kl"] - now["kl"]) / saved, -saved)
                if best is None or key_ < best[0]:
                    best = (key_, i, cand)
        if best is None:
            break
        _, i, cand = best
        at[i] += 1
        path.append(cand)
    result = {"format": FORMAT, "key": key, "split": split, "subset": len(idx), "fractions": list(fractions),
              "dense_accuracy": dense_acc, "dense_flops": costs.dense, **({"score": "r2"} if regression else {}),
              "groups": groups,
              "path": path, "seconds": time.perf_counter() - t0}
    if use_cache:
        _write_cache(Path(cache_dir or default_cache_dir()) / f"{key}.json", result)
    return result


def pick(result, target, model, example, costs=None):
    """Per-group fractions from a search()'s path within `target` (a share of the dense FLOPs) -> (point, amounts):
    the first point of the path that fits, with its last move taken only as far as the budget needs (the group it
    moved keeps as many more units as still fit; their FLOPs are exact, their damage lies between the two points').
    `point` is the path's point, with "flops" and "kept" of what is picked; amounts ({producer: fraction} of the
    groups that lose units) is plan()'s. costs: the model's Costs, if the caller has them. RecipeError if no point
    fits: the path ends at the fewest FLOPs the searched fractions reach."""
    budget = target * result["dense_flops"]
    path = result["path"]
    at = next((i for i, p in enumerate(path) if p["flops"] <= budget), None)
    if at is None:
        raise out_of_reach(target, path[-1]["flops"], result["dense_flops"],
                            f"with every group at the largest fraction searched ({result['fractions'][-1]:g})")
    point, groups = dict(path[at]), result["groups"]
    fractions = list(point["fractions"])
    if at:  # the group the last move thinned: try each drop between the two points, the fewest first
        before = path[at - 1]["fractions"]
        i = next(i for i, (a, b) in enumerate(zip(before, fractions)) if a != b)
        costs = costs or Costs(model, example)
        per = groups[i]["units"] // groups[i]["blocks"]
        low, high = per - path[at - 1]["kept"][i] // groups[i]["blocks"], per - point["kept"][i] // groups[i]["blocks"]
        for drop in range(low + 1, high):
            share = drop / per
            p = structured.plan(model, 0.0, example,
                                amounts=_amounts(groups, fractions[:i] + [share] + fractions[i + 1:]))
            if (cost := costs.of_plan(p)) <= budget:
                fractions[i] = share
                point.update(fractions=fractions, kept=_kept(groups, p), flops=cost)
                break
    return point, _amounts(groups, fractions)


def uniform(model, example, budget, costs=None):
    """The smallest fraction s whose uniform structured pruning (Recipe(structured=True, sparsity=s): every group loses
    round(s * its units)) costs at most `budget` FLOPs, found by bisection on exact FLOPs (they only fall as s
    grows) -> (s, FLOPs at s). RecipeError if even the largest fraction a recipe takes does not fit."""
    costs = costs or Costs(model, example)
    at = costs.of_sparsity
    top = RANGES["sparsity"][1]
    if (floor := at(top)) > budget:
        raise out_of_reach(budget / costs.dense, floor, costs.dense, f"with {top:g} of every group's units removed")
    lo, hi = 0.0, top
    for _ in range(40):  # far finer than any group's units
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if at(mid) <= budget else (mid, hi)
    # round() takes halves to even, so at s = (d + 1/2) / units exactly some groups drop d units and others d + 1: a
    # point that fits by itself, which bisection steps over
    pers = {g.units // g.blocks for g in structured.plan(model, 0.0, example).groups}
    tie = max(((d + 0.5) / per for per in pers for d in range(per) if (d + 0.5) / per <= hi), default=None)
    if tie is not None and at(tie) <= budget:
        hi = tie
    kept = [len(g.keep) for g in structured.plan(model, hi, example).groups]
    for digits in (2, 3, 4, 6):  # a readable fraction that keeps the same units, if one does
        s = math.ceil(hi * 10 ** digits) / 10 ** digits
        if s <= top and [len(g.keep) for g in structured.plan(model, s, example).groups] == kept:
            return s, at(s)
    return hi, at(hi)


def out_of_reach(target, floor, dense, how, percent=False):
    """The RecipeError refusing a FLOPs target (a share of the dense model's `dense` FLOPs) that `floor` FLOPs, the
    fewest `how` leaves, still exceed: it names the least target that fits, rounded up to a thousandth (0.1 %).
    percent=True writes the shares in % (the Pruning page's budget box), else as fractions (fit_flops' target)."""
    least = math.ceil(1000 * floor / dense) / 1000
    share = (lambda s: f"{100 * s:g} %") if percent else (lambda s: f"{s:g}")
    asked = f"A budget of {share(target)}" if percent else f"target={share(target)}"
    return RecipeError(f"{asked} of the FLOPs is out of reach: {how} the model still needs {floor:,} of its "
                       f"{dense:,} FLOPs; ask for at least {share(least)}")


@renamed(epochs="finetune_epochs")
def fit_flops(model, data, target, finetune_epochs=2, lr=1e-3, seed=0, kd=None, searched=False, fractions=FRACTIONS,
              search_result=None, progress=None, cache_dir=None):
    """Structured-prune `model` to at most `target` (a share in (0, 1)) of its FLOPs, then fine-tune
    `finetune_epochs` epochs (Recipe.finetune_epochs; epochs= is its old name, still taken with a DeprecationWarning)
    -> (compress() Result, plan dict).

    By default every group loses the same fraction of its units, the smallest that fits (`uniform`). searched=True
    gives each group its own fraction instead, read off `search`'s path (search_result: one to use; default: one on
    1,000 training images, kept on disk). bench/flops.py compares the two at equal budgets: on its models the
    search's one-shot measure did not pick better fractions than uniform pruning once both were fine-tuned (README).
    The Result's recipe (structured=True; a sparsity, or one per group in Recipe.layers) replays the run:
    compress(model, result.recipe, data). The plan holds the target, the dense, budgeted and counted FLOPs (count()
    of the result's model), and each group's producers, units, kept units and fraction (searched: also the point's
    one-shot accuracy and damage). kd: fine-tune on the dense model's soft targets at this temperature
    (Recipe.finetune_kd). progress(step, total, loss, accuracy) reports the search's evaluations and the fine-tuning
    steps as one count (return False to stop: train.Stopped). RecipeError for a target out of range or out of reach,
    before any fine-tuning."""
    from .budget import _Offset
    from .pipeline import compress, progress_steps
    if isinstance(target, bool) or not isinstance(target, numbers.Real) or not 0 < target < 1:
        raise RecipeError(f"target={target!r}: must be the share of the dense model's FLOPs to keep, above 0 and "
                          f"below 1 (0.5 = half)")
    model = plain_module(model)  # as compress() does: what the path and the replay compress is the same module
    recipe_of = dict(finetune_epochs=finetune_epochs, lr=lr, seed=seed, finetune_kd=kd)
    Recipe(structured=True, **recipe_of)  # its fields refused before any work
    example = data.x("test")[:2]
    knobs = _knobs(structured.plan(model, 0.0, example).groups)
    costs = Costs(model, example)
    budget = target * costs.dense
    evaluations = len(knobs) * (len(_check_fractions(fractions)) - 1) * (len(knobs) + 1) // 2 if searched else 0
    # the search's evaluations, then what compress()'s progress counts (a stand-in sparsity for the one chosen)
    tracker = _Offset(progress, evaluations + progress_steps(model, Recipe(structured=True, sparsity=0.5, **recipe_of),
                                                             data))
    extra = {}
    if searched:
        if search_result is None:
            search_result = search(model, data, fractions, progress=tracker if progress else None,
                                   cache_dir=cache_dir)
        tracker.done = evaluations
        point, amounts = pick(search_result, target, model, example, costs)
        recipe = Recipe(structured=True, layers={name: {"sparsity": f} for name, f in
                                                 structured.producer_weights(model, amounts).items()}, **recipe_of)
        shares, predicted = point["fractions"], point["flops"]
        extra = {"one_shot_accuracy": point["accuracy"], "damage": point["kl"], "search_key": search_result["key"]}
    else:
        share, predicted = uniform(model, example, budget, costs)
        recipe = Recipe(structured=True, sparsity=share, **recipe_of)
        shares = [share] * len(knobs)
    result = compress(model, recipe, data, progress=tracker if progress else None)
    kept = _kept(knobs, structured.plan(model, 0.0, example, amounts=_amounts(knobs, shares)))
    return result, {"target": target, "searched": searched, "dense_flops": costs.dense, "budget_flops": budget,
                    "predicted_flops": predicted, "flops": count(result.model, example),
                    "groups": [{**k, "kept": n, "fraction": f} for k, n, f in zip(knobs, kept, shares)],
                    "recipe": recipe.to_dict(), **extra}
