"""How long the Sensitivity page's scan takes when each setting re-evaluates only what depends on the changed layer,
against evaluating the whole model, and whether the numbers are the same.

    python bench/scans.py                                  # the three sample models, both ways (about 40 min)
    python bench/scans.py --models resnet-8 --ways rerun   # just the new way on ResNet-8 (about 10 min)
    python bench/scans.py --threads 2                      # at the Sensitivity page's 2 threads
    python bench/scans.py --variant budget --ways rerun    # the scan a size-budget Fit starts from

For each sample model, the page's scan (sensitivity.scan's default grid on 2,000 test images; no cache read or
written) at --threads torch threads (default 1; the Sensitivity page scans at the server's 2, in its training queue):
- rerun: as scan() does now (rerun.Reruns: the graph upstream of the changed layer and its side branches are run
  once per layer, each setting recomputes only what is downstream of the layer);
- whole: each setting evaluates the whole model, as scan() did before (Reruns.of disabled).
--variant budget times the scan "Fit in N KB" (fit_budget) starts from instead: 2,000 training images, each pruned
layer's kept weights re-fitted by least squares (refit=True). Each is checked against the scan shipped beside the
model (zoo.scan_dir, computed whole when the model was trained): "same rows" means every row's accuracy, KL and
bytes are equal, bit for bit. "page says" is what the page announces before a scan starts (sensitivity.expected,
from one evaluation of the 10,000 test images timed here at 2 threads, as the page's own runs are).

Prints one Markdown table and writes bench/results/scans.csv (--name).
"""

import argparse
import time

from report import table  # also puts this checkout on sys.path

import torch

import compress_engine as ce
from compress_engine.core import rerun, sensitivity
from compress_engine.core.train import fast_eval_copy, logits
from compress_engine.playground import zoo

MODELS = ("lenet-300-100", "lenet-5", "resnet-8")


def page_says(model, data):
    """What the page announces: sensitivity.expected from a timed evaluation of the test set at 2 threads."""
    torch.set_num_threads(2)
    work = fast_eval_copy(sensitivity._deployed(model))
    x = data.x("test")
    logits(work, x[:256])  # warm-up
    t0 = time.perf_counter()
    logits(work, x)
    eval_seconds = time.perf_counter() - t0
    return sensitivity.expected(model, eval_seconds, len(x), example=x[:1])[1]


VARIANTS = {"page": {}, "budget": {"split": "train", "refit": True}}  # sensitivity.scan's arguments


def timed_scan(model, data, way, threads, variant="page"):
    torch.set_num_threads(threads)
    of = rerun.Reruns.of
    if way == "whole":
        rerun.Reruns.of = lambda *a, **k: None
    try:
        t0 = time.perf_counter()
        res = sensitivity.scan(model, data, use_cache=False, **VARIANTS[variant])
        return res, time.perf_counter() - t0
    finally:
        rerun.Reruns.of = of


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    ap.add_argument("--ways", nargs="+", default=("rerun", "whole"), choices=("rerun", "whole"))
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the scans (default 1)")
    ap.add_argument("--variant", default="page", choices=VARIANTS,
                    help="page: the Sensitivity page's scan; budget: the re-fitted one on training images a Fit uses")
    ap.add_argument("--name", default="scans", help="results file name (bench/results/NAME.csv)")
    args = ap.parse_args()
    data = ce.load_dataset("fashion-mnist")
    rows = []
    for name in args.models:
        model = ce.load_model(name)
        shipped = sensitivity.cached(model, data, shipped=[zoo.scan_dir(name)], cache_dir="/nonexistent",
                                     **VARIANTS[args.variant])
        says = page_says(model, data)
        row = {"model": name, "settings": sensitivity.expected(model, 1.0, 1)[0], "page says (s)": round(says, 1)}
        for way in args.ways:
            res, seconds = timed_scan(model, data, way, args.threads, args.variant)
            row[f"{way} (s)"] = round(seconds, 1)
            row[f"{way}: same rows as shipped"] = ("no shipped scan" if shipped is None
                                                   else "yes" if res["rows"] == shipped["rows"] else "NO")
        if len(args.ways) == 2:
            row["speed-up"] = f"{row['whole (s)'] / row['rerun (s)']:.2f}x"
        rows.append(row)
        print(row, flush=True)
    table(f"Sensitivity scan ({args.variant}), {args.threads} thread(s): re-evaluating what depends on the layer vs the whole model",
          rows, args.name)


if __name__ == "__main__":
    main()
