"""How good, and how quick, is the accuracy estimate a page shows while a slow model is evaluated?

    python bench/estimate.py                         # the three sample models, 2 threads (about 2 minutes)
    python bench/estimate.py --models resnet-8 --samples 1000

For each sample model and a few one-shot recipes (pruned 30 / 50 / 70 % per layer, quantized to 4 bits), this
compresses the model without evaluating it, then:
- evaluates it on all 10,000 test images (the truth, and how long the dashboard waits for it);
- times ce.estimate on 1,000 of them against the dense model's answers (what the dashboard shows first; --inputs)
  and gives its answer for the sample every page uses (seed 0);
- draws --samples further seeded samples of the same size and says how often the 95 % interval held the truth,
  and how wide it was on average, without a reference (a proportion sampled without replacement) and with the
  dense model's answers as the reference (the regression estimator). Scoring a sample is a subset of the
  whole test set's answers, so these reuse the full evaluation's answers with the engine's own estimator rather
  than running the model again per sample (the first, seed 0, is checked to be ce.estimate's exactly).

Prints one Markdown table and writes bench/results/estimate.csv (--name).
"""

import argparse
import os
import time

from report import table  # also puts this checkout on sys.path

import torch

import compress_engine as ce
from compress_engine.core import pipeline

MODELS = ("lenet-300-100", "lenet-5", "resnet-8")
RECIPES = {"pruned 30 % per layer": dict(sparsity=0.3, prune_scope="layer"),
           "pruned 50 % per layer": dict(sparsity=0.5, prune_scope="layer"),
           "pruned 70 % per layer": dict(sparsity=0.7, prune_scope="layer"),
           "4 bits": dict(bits=4)}


def sampled(hits, ref_hits, ref_all, total, inputs, seed):
    """The engine's estimate from seed `seed`'s sample, read off the whole test set's per-input hits (plain, with the
    reference): ((accuracy, margin), (accuracy, margin))."""
    idx = torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:inputs].sort().values
    ones = torch.ones(len(idx), dtype=torch.float64)
    return (pipeline._regression_estimate(hits[idx], ones, total),
            pipeline._regression_estimate(hits[idx], ones, total, (ref_hits[idx], ref_all)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--inputs", type=int, default=pipeline.ESTIMATE_INPUTS, help="test inputs an estimate scores")
    ap.add_argument("--samples", type=int, default=500, help="seeded samples for the interval's coverage")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--name", default="estimate")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = ce.load_dataset("fashion-mnist")
    y, rows = ds.y("test"), []
    total = len(y)
    for name in args.models:
        model = ce.load_model(name)
        ref, ref_acc = ce.reference(model, ds)
        ref_hits = (ref == y).double()
        for label, fields in RECIPES.items():
            res = ce.compress(model, ce.Recipe(**fields), ds, evaluate=False)
            t = time.perf_counter()
            pred = ce.predictions(res.model, ds.x("test"))
            full_s = time.perf_counter() - t
            hits = (pred == y).double()
            truth = hits.mean().item()
            t = time.perf_counter()
            est = ce.estimate(res.model, ds, inputs=args.inputs, reference=ref)
            est_s = time.perf_counter() - t
            first = sampled(hits, ref_hits, ref_acc, total, args.inputs, 0)[1]
            assert abs(first[0] - est["accuracy"]) < 1e-9 and abs(first[1] - est["margin"]) < 1e-12, (first, est)
            draws = [sampled(hits, ref_hits, ref_acc, total, args.inputs, s) for s in range(args.samples)]
            held = [sum(abs(d[i][0] - truth) <= d[i][1] for d in draws) / len(draws) for i in (0, 1)]
            width = [sum(d[i][1] for d in draws) / len(draws) for i in (0, 1)]
            rows.append({
                "model": name, "recipe": label, "accuracy, all 10,000 (%)": f"{100 * truth:.2f}",
                "agrees with dense (%)": f"{100 * (pred == ref).double().mean().item():.1f}",
                "estimate, the pages' sample (%)": f"{100 * est['accuracy']:.2f} ± {100 * est['margin']:.2f}",
                "mean ± (pts): plain / with reference": f"{100 * width[0]:.2f} / {100 * width[1]:.2f}",
                f"interval held the truth, {args.samples} samples: plain / reference":
                    f"{100 * held[0]:.1f} % / {100 * held[1]:.1f} %",
                "seconds: estimate / all 10,000": f"{est_s:.2f} / {full_s:.2f}",
            })
            print(rows[-1], flush=True)
    table(f"The accuracy estimate on {args.inputs:,} of {total:,} test images (ce.estimate), {args.threads} "
          f"threads; load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}", rows, args.name)


if __name__ == "__main__":
    main()
