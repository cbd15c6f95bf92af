"""Each technique and combination held to the same size budgets: which keeps the most accuracy?

    python bench/techniques.py                    # LeNet-300-100, budgets 1/8 .. 1/64, ~6 min on 2 idle cores
    python bench/techniques.py --quick            # budgets 1/8 and 1/32 only, no fine-tuning
    python bench/techniques.py --workers 2        # the (technique, budget) searches side by side on a local Ray runtime
    python bench/techniques.py --ray-address auto # ... on the Ray cluster this machine is part of
    python bench/techniques.py --replot           # redraw the chart from bench/results/techniques.csv only

For every technique family and budget (a fraction of the dense float32 bytes, every ratio's base), the engine searches
the family's knob for the most accurate post-training recipe whose real artifact fits the budget
(bisection on sparsity; the largest cluster count / bit width that fits; the widest student that
fits), then runs that recipe again with one fine-tuning epoch per stage (students: distillation
epochs instead). Prints the table, a technique-by-budget accuracy grid, writes
bench/results/techniques.csv (read by the dashboard's Compare page as reference points) and draws
the Pareto chart docs/techniques_pareto.png (plotly, rendered by the same headless Chromium as the
browser tests).
"""

import argparse
import csv
import math
import os

import plotly.graph_objects as go
import torch

from report import ROOT, table
import compress_engine as ce
from compress_engine.core.model import student_mlp
from compress_engine.playground import units, viz
from compress_engine.playground.store import pareto_front, recipe_summary
from compress_engine.playground.sweeps import map_jobs

KS = (256, 128, 64, 32, 16, 8, 4, 2)
BITS = (8, 7, 6, 5, 4, 3, 2, 1)
PNG = ROOT / "docs" / "techniques_pareto.png"


def smallest_sparsity(make, size_of, budget, steps=14):
    """Bisection for the least sparsity s in [0, 0.999] with size_of(make(s)) <= budget (None if none)."""
    lo, hi = 0.0, 0.999
    if size_of(make(hi)) > budget:
        return None
    if size_of(make(lo)) <= budget:
        return make(lo)
    for _ in range(steps):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if size_of(make(mid)) <= budget else (mid, hi)
    return make(round(hi, 4))


def first_fit(candidates, size_of, budget):
    """The first recipe in `candidates` (ordered from most to least faithful) that fits the budget."""
    return next((r for r in candidates if size_of(r) <= budget), None)


def student_width(params_budget):
    """Widest 784-w-w-10 student with at most `params_budget` parameters (w^2 + 796 w + 10)."""
    w = int((-796 + math.sqrt(796 ** 2 + 4 * max(0, params_budget - 10))) / 2)
    return w


def families(size_of, kd_epochs):
    """name -> (budget -> post-training Recipe that fits or None, fine-tuned variant of a recipe)."""
    ft = lambda r: r.replace(finetune_epochs=1)
    same = lambda r: r

    def widest(bytes_per_param, extra):
        def search(budget):
            w = student_width(budget / bytes_per_param)
            while w >= 10:
                r = ce.Recipe(temperature=4.0, alpha=0.9, student_width=w, distill_epochs=kd_epochs, **extra)
                if size_of(r) <= budget:
                    return r
                w -= max(1, w // 50)
            return None
        return search

    def best_of(searches):
        def search(budget):
            found = [r for r in (s(budget) for s in searches) if r is not None]
            return max(found, key=lambda r: accuracy_post(r), default=None)
        return search

    return {
        "prune (global)": (lambda b: smallest_sparsity(lambda s: ce.Recipe(sparsity=s, prune_scope="global"), size_of, b), ft),
        "structured prune": (lambda b: smallest_sparsity(lambda s: ce.Recipe(sparsity=s, structured=True), size_of, b), ft),
        "cluster": (lambda b: first_fit([ce.Recipe(clusters=k) for k in KS], size_of, b), ft),
        "quantize": (lambda b: first_fit([ce.Recipe(bits=n, per_channel=True) for n in BITS], size_of, b), ft),
        "cluster + Huffman": (lambda b: first_fit([ce.Recipe(clusters=k, huffman=True) for k in KS], size_of, b), ft),
        "prune + cluster + Huffman": (best_of([
            (lambda b, k=k: smallest_sparsity(lambda s: ce.Recipe(sparsity=s, prune_scope="global", clusters=k,
                                                                  huffman=True), size_of, b)) for k in (4, 8, 16, 32, 64)]), ft),
        "prune + quantize + Huffman": (best_of([
            (lambda b, n=n: smallest_sparsity(lambda s: ce.Recipe(sparsity=s, prune_scope="global", bits=n,
                                                                  per_channel=True, huffman=True), size_of, b))
            for n in (2, 3, 4, 6, 8)]), ft),
        "distill (student)": (widest(4, {}), same),
        "distill + quantize 8-bit": (widest(1, {"bits": 8, "per_channel": True}), same),
    }


_cache = {}
MODEL = DATA = None


def result(r):
    """compress(MODEL, r) once per recipe (the searches ask the same recipes many times)."""
    if r not in _cache:
        _cache[r] = ce.compress(MODEL, r, DATA).metrics
    return _cache[r]


def size_of(r):
    if r.temperature is not None:  # a student's size does not depend on training: skip the training
        probe = student_mlp(r.student_width, DATA)
        quick = r.replace(temperature=None, student_width=800, distill_epochs=5)
        return ce.compress(probe, quick, DATA).metrics["artifact_bytes"]
    return result(r)["artifact_bytes"]


def accuracy_post(r):
    return result(r)["accuracy"]


def pareto_png(rows, path):
    """Accuracy vs real bytes for every (technique, budget) point, with the Pareto staircase, as a PNG."""
    from playwright.sync_api import sync_playwright
    fig = go.Figure()
    for i, tech in enumerate(dict.fromkeys(r["technique"] for r in rows)):  # the dashboard's palette
        pts = [r for r in rows if r["technique"] == tech]
        colour = viz.PALETTE[i % len(viz.PALETTE)]
        fig.add_trace(go.Scatter(x=[p["artifact_bytes"] / units.KB for p in pts], y=[100 * p["accuracy"] for p in pts],
                                 mode="markers+lines", name=tech, marker=dict(size=10, color=colour),
                                 line=dict(width=1, color=colour)))
    front = [rows[i] for i in pareto_front([(r["artifact_bytes"], r["accuracy"]) for r in rows])]
    fig.add_trace(go.Scatter(x=[p["artifact_bytes"] / units.KB for p in front], y=[100 * p["accuracy"] for p in front],
                             mode="lines", line_shape="hv", name="Pareto frontier", line=dict(color="#444", dash="dot", width=2)))
    dense, low = rows[0]["dense_bytes"] / units.KB, max(0, min(100 * r["accuracy"] for r in rows) - 5)
    for frac in sorted({r["budget"] for r in rows}):  # budget lines as traces: shapes misplace on log axes
        fig.add_trace(go.Scatter(x=[dense / frac] * 2, y=[low, 100], mode="lines+text", text=["", f"1/{frac} of dense"],
                                 textposition="bottom left", line=dict(color="#bbb", dash="dash", width=1),
                                 showlegend=False, hoverinfo="skip"))
    ticks = viz.log_ticks([r["artifact_bytes"] / units.KB for r in rows] + [dense])  # "20 50 100", not "2 3 … 9"
    fig.update_layout(title=f"{rows[0]['model']} on Fashion-MNIST: accuracy at equal size budgets "
                            f"(dense {100 * rows[0]['dense_accuracy']:.2f} %)",
                      xaxis=dict(type="log", title=f"artifact size (KB, log scale; {units.CONVENTION})",
                                 tickmode="array", tickvals=[v for v, _ in ticks], ticktext=[t for _, t in ticks]),
                      yaxis=dict(title="test accuracy (%)", range=[low, 100]),
                      width=1100, height=620, template="plotly_white")
    html = fig.to_html(include_plotlyjs=True, full_html=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 620})
        page.set_content(html)
        page.wait_for_selector(".main-svg")
        page.screenshot(path=str(path))
        browser.close()


def cell(model_name, tech, frac, dense, kd_epochs, quick):
    """One (technique, budget) search and its fine-tuned recipe: the table's row. In a Ray worker the model and
    data are loaded here (MODEL and DATA are None in the copy of this script that travels to it)."""
    global MODEL, DATA
    if MODEL is None:
        MODEL, DATA = ce.load_model(model_name), ce.load_dataset("fashion-mnist")
    search, tuned = families(size_of, kd_epochs)[tech]
    budget = dense["dense_bytes"] / frac
    r = search(budget)
    if r is None:
        return {"model": model_name, "technique": tech, "budget": frac, "recipe": f"{tech} @ 1/{frac}",
                "settings": "does not fit", "artifact_bytes": "", "ratio": "", "over_budget_%": "", "accuracy_post": "",
                "accuracy": "", "dense_bytes": dense["dense_bytes"], "dense_accuracy": dense["accuracy"]}
    final = r if quick else tuned(r)
    m = result(final)
    return {"model": model_name, "technique": tech, "budget": frac, "recipe": f"{tech} @ 1/{frac}",
            "settings": recipe_summary(final.to_json()), "artifact_bytes": m["artifact_bytes"],
            "ratio": m["ratio"],
            # fine-tuning can move weights onto or off zero, which changes the sparse layout's size
            "over_budget_%": max(0.0, 100 * (m["artifact_bytes"] / budget - 1)),
            "accuracy_post": accuracy_post(r) if r.temperature is None else "",
            "accuracy": m["accuracy"], "dense_bytes": dense["dense_bytes"], "dense_accuracy": dense["accuracy"]}


def main():
    global MODEL, DATA
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="lenet-300-100")
    ap.add_argument("--budgets", default="8,16,32,64", help="denominators: 8 means 1/8 of the dense bytes")
    ap.add_argument("--kd-epochs", type=int, default=5, help="distillation epochs of each student")
    ap.add_argument("--quick", action="store_true", help="budgets 1/8 and 1/32, no fine-tuning, 1 KD epoch")
    ap.add_argument("--threads", type=int, help="torch threads of each search (default: torch's choice; with "
                    "--workers, cores // workers)")
    ap.add_argument("--workers", type=int, help="run N searches at a time on a local Ray runtime")
    ap.add_argument("--ray-address", help="run the searches on an existing Ray cluster ('auto' on one of its machines)")
    ap.add_argument("--replot", action="store_true", help=f"only redraw {PNG.relative_to(ROOT)} from the last results")
    args = ap.parse_args()
    if args.replot:
        return replot(args.model)
    on_ray = args.workers is not None or args.ray_address is not None
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = args.threads or (max(1, (os.cpu_count() or 1) // args.workers) if args.workers else torch.get_num_threads())
    budgets = [8, 32] if args.quick else [int(b) for b in args.budgets.split(",")]
    MODEL, DATA = ce.load_model(args.model), ce.load_dataset("fashion-mnist")
    dense = result(ce.Recipe())
    # budgets are fractions of the dense float32 bytes, every ratio's base on the pages (an artifact of the unchanged
    # weights skips training's zeros: 935,888 B for LeNet-300-100, so 1/8 of it was a budget 12 % tighter)
    print(f"torch {torch.__version__}, {args.model}: dense float32 {dense['dense_bytes']:,} B (unchanged weights' "
          f"artifact {dense['artifact_bytes']:,} B), accuracy {dense['accuracy']:.4f}")
    kd_epochs = 1 if args.quick else args.kd_epochs
    jobs = [(args.model, tech, frac, dense, kd_epochs, args.quick) for tech in families(size_of, kd_epochs)
            for frac in budgets]
    if on_ray:  # the workers load the model and data themselves: don't ship this process's copies with cell()
        MODEL = DATA = None
        _cache.clear()

    def show(_, row):
        size = f"{row['artifact_bytes']:>9,} B" if row["artifact_bytes"] != "" else " " * 11
        acc = f"accuracy {row['accuracy']:.4f}" if row["accuracy"] != "" else ""
        print(f"  {row['technique']:28} 1/{row['budget']:<3} {row['settings']:60} {size}  {acc}", flush=True)

    rows = map_jobs(cell, jobs, workers=args.workers, ray_address=args.ray_address, threads=threads, on_result=show)
    table(f"Same size budgets, each technique ({args.model}, Fashion-MNIST; accuracy = after fine-tuning "
          "1 epoch per stage or distillation; accuracy_post = the same recipe without fine-tuning)",
          [{k: v for k, v in r.items() if k not in ("dense_bytes", "dense_accuracy", "technique")} for r in rows],
          "techniques")
    grid = []
    for tech in dict.fromkeys(r["technique"] for r in rows):
        grid.append({"technique": tech, **{f"1/{r['budget']}": (f"{100 * r['accuracy']:.2f} %" if r["accuracy"] != "" else "—")
                                           for r in rows if r["technique"] == tech}})
    table("Accuracy by technique and budget (— = the technique cannot reach that size)", grid, "techniques_grid")
    points = [r for r in rows if r["accuracy"] != ""]
    pareto_png(points, PNG)
    print(f"\nPareto chart: {PNG.relative_to(ROOT)}")


def replot(model_name):
    """Redraw the Pareto chart from bench/results/techniques.csv (no searching, no training)."""
    with open(ROOT / "bench" / "results" / "techniques.csv", newline="") as f:
        saved = [r for r in csv.DictReader(f) if r["model"] == model_name and r["accuracy"] not in ("", None)]
    dense = ce.compress(ce.load_model(model_name), ce.Recipe(), ce.load_dataset("fashion-mnist")).metrics
    dense_bytes = round(int(saved[0]["artifact_bytes"]) * float(saved[0]["ratio"]))  # the ratios' dense float32 bytes
    points = [{"model": model_name, "technique": r["recipe"].split(" @ ")[0], "budget": int(r["budget"]),
               "artifact_bytes": int(r["artifact_bytes"]), "accuracy": float(r["accuracy"]),
               "dense_bytes": dense_bytes, "dense_accuracy": dense["accuracy"]} for r in saved]
    pareto_png(points, PNG)
    print(f"Pareto chart: {PNG.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
