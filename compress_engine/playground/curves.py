"""One-shot results shipped beside a sample model: the runs its pages ask for first, answered without evaluating.

ResNet-8 takes 5-7 s to evaluate the 10,000 test images on 2 cores, and a page's curve is 8-14 runs, so its
Pruning page took over a minute to finish. The metrics of the runs the technique pages ask for at their first
settings are computed once (`scripts/ship_curves.py` runs the pages and records them) and shipped as
sample_models/curves/<name>.json. A page then finds them there: a curve point is read, and a run it draws is
applied without its evaluation (compress(evaluate=False)) and given the shipped accuracy, after every other
metric has been checked to be the same. Anything else (another setting, an upload, other weights or data) is
computed as before.

    runs = shipped("resnet-8", model_fingerprint(model), data.fingerprint())   # {recipe JSON: metrics}, or {}
    compress(model, recipe, data, runs)   # a Result: evaluated only when runs does not hold this recipe

File: {"format": FORMAT, "model": model fingerprint, "data": data fingerprint, "evaluate_s": seconds one evaluation
took when it was made (a hint, until this machine measures one), "runs": {recipe JSON: metrics}}.
The fingerprints are the run store's (playground.sweeps), so a retrained checkpoint or other data is a miss.
A file that does not read back is a miss too, never an error.
"""

import json

from ..core.files import write_atomic
from .cards import SAMPLE_DIR

FORMAT = 2  # bump when compress() would give a shipped recipe other metrics (2: flops, dense_flops)
EVALUATED = ("accuracy", "dense_accuracy", "agreement")  # the metrics only an evaluation gives


def path(name):
    """Where sample model `name`'s shipped runs are (read-only to the dashboard)."""
    return SAMPLE_DIR / "curves" / f"{name}.json"


def shipped(name, model_id, data_id, with_seconds=False):
    """{recipe JSON: metrics} shipped for sample model `name` with these weights and data, else {}. with_seconds:
    (runs, the seconds one evaluation took when they were made, or None)."""
    runs, seconds = {}, None
    try:
        doc = json.loads(path(name).read_text())
        if (doc.get("format"), doc.get("model"), doc.get("data")) == (FORMAT, model_id, data_id):
            runs, seconds = doc.get("runs"), doc.get("evaluate_s")
    except (OSError, ValueError, AttributeError):
        pass
    if not (isinstance(runs, dict) and all(isinstance(m, dict) for m in runs.values())):
        runs, seconds = {}, None
    seconds = seconds if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and seconds > 0 else None
    return (runs, seconds) if with_seconds else runs


def complete(metrics, known):
    """The metrics of a run applied without evaluation, given the evaluated ones `known` shipped for its recipe; None
    unless every metric but those that the shipped run has is the same in both (then the shipped run is not this
    one: evaluate it). A metric compress() gained after the file was made (a layer's "coding") is not in it, and
    comes from the run itself: it never depends on an evaluation."""
    rest = json.loads(json.dumps({k: v for k, v in metrics.items() if k not in EVALUATED}))
    if not _holds(rest, {k: v for k, v in known.items() if k not in EVALUATED}) or any(
            known.get(k) is None for k in EVALUATED):
        return None
    return {**metrics, **{k: known[k] for k in EVALUATED}}


def _holds(fresh, shipped):
    """Whether `fresh` has every value `shipped` has, the same (dicts key by key, recursively; lists item by item, of
    the same length): keys only `fresh` has are metrics added since."""
    if isinstance(shipped, dict):
        return isinstance(fresh, dict) and all(k in fresh and _holds(fresh[k], v) for k, v in shipped.items())
    if isinstance(shipped, list):
        return (isinstance(fresh, list) and len(fresh) == len(shipped)
                and all(_holds(a, b) for a, b in zip(fresh, shipped)))
    return fresh == shipped


def compress(model, recipe, data, runs, model_logits=None):
    """compress_engine.compress(model, recipe, data, model_logits=model_logits), evaluated, unless `runs` (shipped())
    holds this recipe: then it is applied without the evaluation and given the shipped accuracy (complete());
    ResNet-8: 0.3 s instead of 5-7 s."""
    import compress_engine as ce  # its public compress, looked up at the call (scripts/ship_curves.py records it)
    known = runs.get(recipe.to_json())
    if known is not None:
        res = ce.compress(model, recipe, data, evaluate=False)
        metrics = complete(res.metrics, known)
        if metrics is not None:
            res.metrics = metrics
            return res
    # (the pages say when a result collapsed: not a CollapseWarning in the server's log too)
    return ce.compress(model, recipe, data, model_logits=model_logits, warn_collapse=False)


def ship(name, model_id, data_id, runs, evaluate_s=None):
    """Write `runs` ({recipe JSON: evaluated metrics}) as sample model `name`'s shipped runs, replacing the file;
    evaluate_s: the seconds one evaluation took here."""
    for recipe_json, m in runs.items():
        if any(m.get(k) is None for k in EVALUATED):
            raise ValueError(f"{name}: the run {recipe_json} was not evaluated; only evaluated runs ship")
    target = path(name)
    doc = {"format": FORMAT, "model": model_id, "data": data_id, "evaluate_s": evaluate_s,
           "runs": dict(sorted(runs.items()))}
    write_atomic(target, json.dumps(doc, separators=(",", ":")))
    return target
