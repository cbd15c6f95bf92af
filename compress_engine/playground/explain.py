"""The numbers behind the Distillation and Pipeline pages' explanations.

Soft targets of one image at a few temperatures, test errors out of the test set, the partial
recipes whose artifacts measure each step of a compression pipeline, the steps of a size waterfall,
and the published figures we compare against (Hinton et al. 2015; Han et al. 2015, 2016).

Pure functions over numbers, tensors and Recipes: no streamlit, no plotly (pages draw what these
return). Sizes are never computed from formulas here: the pipeline's stages are recipes that the
page runs, and each bar of the waterfall is the length of a real artifact.
"""

import numpy as np
import torch

from ..core import chance
from ..core.distill import soft_targets
from ..core.entropy import width
from ..core.recipe import Recipe
from . import units
from .cards import data_label
from .viz import DEEP_COMPRESSION_CSV, REFERENCE_DATA

# Hinton, Vinyals & Dean, "Distilling the knowledge in a neural network" (2015), §3, MNIST:
# test errors out of 10,000 of a 1200-1200 teacher and of an 800-800 student without / with distillation.
HINTON_MNIST = {"teacher": 67, "student": 146, "distilled": 74, "teacher_width": 1200, "student_width": 800,
                "test_images": 10_000, "temperature": 20}  # and the temperature they distilled at

# Deep Compression (Han, Mao & Dally, ICLR 2016) on MNIST: total compression of the stored weights, and
# test error (%) before and after; pruning alone (Han, Pool, Tran & Dally, NeurIPS 2015, Table 1) keeps
# 1 weight in 12 on both nets. Both lost no accuracy: the errors fell slightly.
DEEP_COMPRESSION = {
    "lenet-300-100": {"architecture": "LeNet-300-100", "total": 40.0, "pruning": 12.0,
                      "error_dense": 1.64, "error_compressed": 1.58, "error_pruned": 1.59},
    "lenet-5": {"architecture": "LeNet-5", "total": 39.0, "pruning": 12.0,
                "error_dense": 0.80, "error_compressed": 0.74, "error_pruned": 0.77},
}
EQUAL_LOSS_PTS = 0.5  # a ratio is compared with the paper's only if it loses at most this many points more


# -----------------------------------------------------------------------------
# distillation


def soft_target_table(logits, temperatures):
    """{T: softmax(logits / T) as float64 numpy} for one image's logits (10 numbers) at each temperature.

    Uses the engine's own distill.soft_targets, so the page shows exactly what the student learns from.
    """
    z = torch.as_tensor(np.asarray(logits, dtype=np.float32))
    if z.ndim != 1:
        raise ValueError(f"logits of one image must be 1-D, got shape {tuple(z.shape)}")
    return {float(t): soft_targets(z, float(t)).double().numpy() for t in temperatures}


def entropy_bits(p):
    """Shannon entropy of a probability vector in bits: 0 for a one-hot answer, log2(10) ≈ 3.32 for uniform."""
    p = np.asarray(p, dtype=np.float64)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def test_errors(accuracy, n_test):
    """Misclassified test images, from an accuracy over `n_test` images (rounded to a whole image)."""
    return int(round((1.0 - accuracy) * n_test))


# -----------------------------------------------------------------------------
# pipeline: the stages of a recipe and its size waterfall


def code_bits(levels):
    """Bits of a fixed-width index into `levels` shared values: ceil(log2 levels), at least 1 (entropy.width, the
    width the artifact's fixed-width codes take)."""
    return width(levels)


# what each part of an artifact holds (encode.size_breakdown's parts), for the pages that show them
ARTIFACT_PARTS = {
    "header": "the architecture, the recipe and each tensor's record (zlib'd JSON), so the artifact rebuilds itself",
    "index": "where the kept weights sit (pruning): gaps between their positions, or a bitmap where that is smaller",
    "codes": "each kept weight's code into its layer's codebook or grid: fixed-width, or Huffman- or range-coded "
             "where that is smaller",
    "codebook": "each layer's shared values (clusters' centroids, or a grid's scale and zero point)",
    "raw": "float32 values stored as they are (a pruned layer's kept weights when nothing shares them, biases "
           "unless quantized, and every tensor the recipe leaves alone)",
}


# how an entropy-coded tensor's code stream is stored (a metrics layer's "coding"; "fixed" and None: a fixed width)
CODINGS = {"huffman": "Huffman-coded", "huffman-zlib": "Huffman-coded", "range": "range-coded"}


def stored_as(r, huffman):
    """A tensor's storage as the artifact holds it: the encoder codes each tensor's codes as is cheapest (fixed
    width when entropy coding would not pay, else Huffman or range coding), and an entropy-coded tensor has no
    fixed width, so it says what its bytes measure per kept weight. `r`: a compress() metrics layer; huffman: the
    recipe's (Clustering's per-tensor table)."""
    if not r["levels"]:
        return "float32"
    coding = CODINGS.get(r.get("coding"))
    if coding is None:  # fixed width (or a record from before metrics named the coding, without Huffman)
        return f"{r['levels']} centroids, {code_bits(r['levels'])} bit" + (
            " (entropy coding would not pay)" if huffman and r.get("coding") == "fixed" else "")
    if not r["nonzero"]:
        return f"{r['levels']} centroids, {coding}"
    return f"{r['levels']} centroids, {coding}: {8 * r['bytes'] / r['nonzero']:.1f} bits a kept weight"


TURNS_TO_TELL = 7  # fewer turns than this (a slow model) give no spread worth a claim


def int8_verdict(timing, seconds):
    """(whether quantize.int8_latency's `timing`, taken in about `seconds`, had turns enough to show its speed-up,
    what to say of it: '' for a difference its spread shows)."""
    lo, hi, n = *timing["speedup_spread"], timing["repeats"]
    if n < TURNS_TO_TELL:
        return False, f"only {n} turns fit in about {seconds:g} s for this model: too few to tell a difference"
    return True, "no difference is measurable here now" if lo <= 1 <= hi else ""


def training_epochs(recipe):
    """The epochs compress() trains for `recipe`, as its progress counts them: finetune_epochs after each stage that
    trains (pruning, then clustering or quantization), and a distillation's own. Deep Compression's "1 epoch" is 2:
    one after pruning, one after clustering (938 steps for ResNet-8)."""
    from ..core.pipeline import STAGES
    return sum(stage.epochs(recipe) for stage in STAGES if stage.active(recipe))


def stage_recipes(recipe):
    """The partial recipes whose artifacts measure each step of `recipe`: [(stage, label, Recipe)].

    Stages, each present only if the recipe does it: "dense" (float32, Recipe()), "prune" (sparse float32
    with relative indices: the sparsity alone), "share" (+ clustering or quantization: bit-packed codes),
    "huffman" (+ Huffman coding: the whole recipe). All are post-training (finetune_epochs=0, one-shot
    schedule): fine-tuning keeps the masks and the code widths, so it barely moves the sizes; a page that
    fine-tunes swaps the last stage's size for its trained artifact's.
    """
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a compress_engine.Recipe, got {type(recipe).__name__}")
    post = recipe.replace(finetune_epochs=0, schedule="oneshot")
    stages = [("dense", "dense float32", Recipe())]
    if post.sparsity > 0:
        what = "units" if post.structured else "weights"
        stages.append(("prune", f"pruned {100 * post.sparsity:g} % of {what}",
                       post.replace(clusters=None, bits=None, huffman=False)))
    if post.clusters is not None:
        stages.append(("share", f"{post.clusters} clusters ({code_bits(post.clusters)}-bit codes)",
                       post.replace(huffman=False)))
    elif post.bits is not None:
        stages.append(("share", f"{post.bits}-bit quantized", post.replace(huffman=False)))
    if post.huffman:
        stages.append(("huffman", "Huffman coded", post))
    return stages


def waterfall(sizes):
    """Steps of a size waterfall from [(label, bytes)] in pipeline order (the first is the dense model).

    Returns {"x", "measure", "y", "text"} for plotly's Waterfall: the first bar absolute, one relative
    bar per later stage (its change in bytes, negative when it saves), then a "total" bar: the final size.
    """
    if not sizes:
        raise ValueError("a waterfall needs at least the dense size")
    labels = [label for label, _ in sizes]
    sz = [int(b) for _, b in sizes]
    steps = [sz[0]] + [b - a for a, b in zip(sz, sz[1:])]
    return {"x": labels + ["final artifact"],
            "measure": ["absolute"] + ["relative"] * (len(sz) - 1) + ["total"],
            "y": steps + [sz[-1]],
            "text": [units.kb(sz[0])] + [units.signed_kb(d) for d in steps[1:]] + [units.kb(sz[-1])]}


def paper_comparison(model_name, dense_bytes, final_bytes, dense_accuracy, final_accuracy, pruned_bytes=None,
                     pruned_accuracy=None, dense_params=None, pruned_nonzero=None, one_shot_pruning=False):
    """Our compression ratios beside Deep Compression's for the same architecture, each with its accuracy
    loss, compared only at equal loss; None if the paper has no figure for this model.

    Returns {"architecture", "rows": [...]}, one row per stage: "pruning alone" (ours: dense bytes / pruned
    artifact bytes, and dense / non-zero parameters in "ours_params", since the paper's 12× counts weights,
    not bytes; ours is None without a pruning stage) and "whole pipeline" (dense / final artifact bytes).
    Each row: stage, paper (ratio), paper_loss and ours_loss (accuracy points lost against each one's own
    dense model; negative = gained), ours, ours_params, comparable (ours loses at most EQUAL_LOSS_PTS more
    than the paper) and verdict (one sentence that never claims a ratio won at a larger loss).
    one_shot_pruning: our pruning-alone stage was measured one-shot while the run it belongs to was fine-tuned (the
    paper's 12x is after retraining): a loss beyond the paper's is then no verdict on the ratio, only what one-shot
    pruning costs; that row has "one_shot" True.
    """
    ref = DEEP_COMPRESSION.get(model_name)
    if ref is None:
        return None

    def row(stage, paper, paper_error, ours, ours_accuracy, ours_params=None, one_shot=False):
        paper_loss = round(paper_error - ref["error_dense"], 2)
        loss = None if ours is None or ours_accuracy is None else 100 * (dense_accuracy - ours_accuracy)
        comparable = loss is not None and loss <= max(paper_loss, 0.0) + EQUAL_LOSS_PTS
        theirs = "none" if paper_loss <= 0 else f"{paper_loss:.2f} points"
        one_shot = one_shot and ours is not None and not comparable
        if ours is None:
            verdict = f"{stage}: this recipe has no such stage."
        elif one_shot:
            verdict = (f"{stage}: measured one-shot, without the fine-tuning your run had. Ours ({ours:,.1f}×) lost "
                       f"{loss:.2f} points before any retraining; the paper's {paper:g}× is after retraining (it lost "
                       f"{theirs}). One-shot against retrained is no verdict on the ratio: the fine-tuned figures "
                       "are the whole pipeline's.")
        elif comparable:
            verdict = (f"{stage}: at equal accuracy loss (ours {max(loss, 0):.2f} points, the paper's {theirs}) ours is "
                       f"{ours:,.1f}×, the paper's {paper:g}×.")
        else:
            verdict = (f"{stage}: not comparable. Ours ({ours:,.1f}×) loses {loss:.2f} points of accuracy, the "
                       f"paper's {paper:g}× lost {theirs}; a ratio counts only at equal loss (at most "
                       f"{EQUAL_LOSS_PTS:g} points more).")
        return {"stage": stage, "paper": paper, "paper_loss": paper_loss, "ours": ours, "ours_loss": loss,
                "ours_params": ours_params, "comparable": comparable, "one_shot": one_shot, "verdict": verdict}

    pruned = None if pruned_bytes is None else dense_bytes / pruned_bytes
    params = None if not pruned_nonzero or dense_params is None else dense_params / pruned_nonzero
    return {"architecture": ref["architecture"], "equal_loss_pts": EQUAL_LOSS_PTS,
            "rows": [row("pruning alone", ref["pruning"], ref["error_pruned"], pruned, pruned_accuracy, params,
                         one_shot_pruning),
                     row("whole pipeline", ref["total"], ref["error_compressed"], dense_bytes / final_bytes,
                         final_accuracy)]}


def bench_deep_compression(points, model_name):
    """What bench/deep_compression.py measured for `model_name`, from its rows in store.reference_points(bench/results)
    (source viz.DEEP_COMPRESSION_CSV): 'made LeNet-5 12.0× smaller by pruning alone at 0.34 points lost, and 42.0×
    with the whole pipeline at 0.40 points, on Fashion-MNIST', each loss against the bench's own dense model, on the data the bench
    measured (named: a page on other data quotes it beside its own). '' without its rows."""
    rows = [p for p in points if p["source"] == DEEP_COMPRESSION_CSV and p["model"] == model_name]
    dense = next((p for p in rows if p["label"] == "dense float32"), None)
    pruned = next((p for p in rows if p["label"].startswith("pruned")), None)
    whole = next((p for p in rows if "(Deep Compression)" in p["label"]), None)
    if dense is None or pruned is None or whole is None or not (pruned["ratio"] and whole["ratio"]):
        return ""
    lost = lambda p: f"{100 * (dense['accuracy'] - p['accuracy']):.2f} points"
    name = DEEP_COMPRESSION.get(model_name, {}).get("architecture", model_name)
    return (f"made {name} {pruned['ratio']:,.1f}× smaller by pruning alone at {lost(pruned)} lost, and "
            f"{whole['ratio']:,.1f}× with the whole pipeline at {lost(whole)}, on {data_label(REFERENCE_DATA)}")


def rounded_to_zero(metrics, dense_metrics, pruned=False):
    """Why a quantized (or clustered) model has fewer non-zero parameters than the dense one (or, `pruned`, than
    the pruned one it was quantized from), when it does: the weights within half a step of zero round onto the
    grid's zero level. '' when none did."""
    lost = dense_metrics["nonzero_params"] - metrics["nonzero_params"]
    if lost <= 0:
        return ""
    share = lost / max(1, dense_metrics["nonzero_params"])
    of = "those pruning kept" if pruned else "the dense model's non-zero ones"  # the share's base, said
    return (f"**{lost:,} weights ({units.pct(share)} of {of}) are now exactly "
            f"zero**, {'beyond the pruned ones' if pruned else 'with no pruning'}: they lay within half a "
            "grid step of 0, so rounding put them on the grid's zero level (q = z, which stands for 0). The "
            "fewer the bits, the wider the step and the more weights land there. The artifact stores them as "
            "gaps between the non-zero positions, as it does for pruned weights, so they cost almost nothing.")


# --- distillation: what bench/distillation.py's grid (distillation_grid.csv rows) says ---------------------

def said_list(items):
    """'a', 'a and b', 'a, b and c'."""
    items = list(items)
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else "".join(items)


def temperature_lesson(grid, teacher):
    """What the measured grid says of T, for each training length at which it tried more than one T: the T at which
    each student made the fewest errors (mean of the seeds), and any T that left every student trained at it with
    more errors than the labels alone. "" if the grid tried one T or none."""
    said = []
    for epochs in sorted({int(r["epochs"]) for r in grid}):
        at = [r for r in grid if int(r["epochs"]) == epochs]
        labels = {r["student"]: float(r["errors_mean"]) for r in at if not r["T"]}
        kd = {}  # student: {T: mean errors}, in the grid's order
        for r in at:
            if r["T"]:
                kd.setdefault(r["student"], {})[r["T"]] = float(r["errors_mean"])
        temps = sorted({t for errs in kd.values() for t in errs}, key=float)
        if len(temps) < 2:
            continue
        best = {}
        for student, errs in kd.items():
            if len(errs) > 1:
                best.setdefault(min(errs, key=errs.get), []).append(student)
        groups = [f"at T = {t} for {said_list(best[t])}" for t in sorted(best, key=float)]
        text = (f"In the grid ({teacher} teaching, {epochs} epochs, mean of {len(at[0]['seeds'].split())} seeds), "
                "of the temperatures tried, the fewest errors came "
                + (", ".join(groups[:-1]) + ", and " + groups[-1] if len(groups) > 1 else "".join(groups)) + ".")
        behind = [s for t in best for s in best[t] if s in labels and kd[s][t] > labels[s]]
        if behind:
            text += f" Even at its best T, {said_list(behind)} made more errors than on the labels alone."
        for t in temps:
            tried = [s for s, errs in kd.items() if t in errs and s in labels]
            if tried and all(kd[s][t] > labels[s] for s in tried):
                text += (f" At T = {t} " + (f"all {len(tried)} students trained at it" if len(tried) > 1 else tried[0])
                         + " made more errors than on the labels alone.")
        said.append(text)
    return " ".join(said)


def grid_best_T(rows):
    """The T of a distillation grid's rows (one training length) with the fewest errors summed over the students
    tried at every T: the CNN student, tried at one, would tilt a plain sum towards it."""
    temps = {r["T"] for r in rows if r["T"]}
    everywhere = [s for s in dict.fromkeys(r["student"] for r in rows)
                  if temps <= {r["T"] for r in rows if r["student"] == s}]
    return min(sorted(temps, key=float), key=lambda t: sum(float(r["errors_mean"]) for r in rows
                                                           if r["T"] == t and r["student"] in everywhere))


GAP_CLOSED = "(labels-only errors − KD errors) / (labels-only errors − teacher errors)"  # gap_closed(), in words


def gap_closed(labels_errors, kd_errors, teacher_errors):
    """The share of the student-teacher gap KD closed, GAP_CLOSED (Hinton et al.: 146 -> 74 errors, teacher 67:
    0.91); None when the labels-only student is no worse than the teacher (no gap to close). Negative: KD made
    more errors than the labels alone."""
    gap = labels_errors - teacher_errors
    return (labels_errors - kd_errors) / gap if gap > 0 else None


# the collapse criterion is the engine's (compress() and fit_budget() warn with it); the pages and the CLI read it here
CHANCE_MARGIN, chance_level, collapsed = chance.CHANCE_MARGIN, chance.chance_level, chance.collapsed
