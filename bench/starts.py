"""The setting each technique page opens on, for each sample model a visitor can choose: one-shot accuracy.

    python bench/starts.py            # ~2 min on 2 idle cores (ResNet-8: 5 s an evaluation)
    python bench/starts.py --preset --models resnet-8 --try 0.8:layer 0.9:layer   # the Pipeline's button, fine-tuned

For every model in the sidebar and every technique page, the page's first setting (pages/common.starts: STARTS,
with its architecture's ARCH_STARTS) is applied without fine-tuning and evaluated on all 10,000 test images, beside the
dense model. Where a model has its own start, the shared STARTS entry is measured too, to show why, and so is a
start that changed (BEFORE). Table
written to bench/results/starts.csv. The test (tests/test_app_walkthrough.py) checks each start loses at most
3 points on 2,000 test images. --preset measures the Pipeline's "Deep Compression recipe" button instead
(pages/common.deep_compression: it fine-tunes 1 epoch after pruning and after sharing), beside the shared preset
and any pruning settings tried, to bench/results/presets.csv.
"""

import argparse
import time

import torch

from report import table
import compress_engine as ce
from pages import common

SIDEBAR = ("lenet-300-100", "lenet-5", "resnet-8")  # the models the sidebar offers (not the distillation teacher)
# Starts before commit ab11854, measured beside the present ones: Export had no threshold control (always per layer).
BEFORE = {"export": {"sparsity": 0.5, "clusters": 16, "huffman": True}}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", nargs="+", default=list(SIDEBAR))
    ap.add_argument("--preset", action="store_true", help="measure the Pipeline's Deep Compression button instead "
                    "(common.deep_compression: it fine-tunes, minutes a run on ResNet-8), beside the shared preset")
    ap.add_argument("--try", dest="tried", nargs="*", default=[], metavar="SPARSITY:SCOPE",
                    help="with --preset, the preset at these pruning settings too, e.g. 0.8:layer")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = ce.load_dataset("fashion-mnist")
    rows = []
    for name in args.models:
        net = ce.load_model(name)
        given = {"test": ce.logits(net, data.x("test"))}  # the dense model's answers, once (not in every run)
        dense = float((given["test"].argmax(1) == data.y("test")).float().mean())
        if args.preset:
            rows += presets(name, net, data, given, dense, args.tried)
            continue
        own = common.starts(name)
        for page, shared in common.STARTS.items():
            tried = []
            for fields, which in ((own[page], "opens on"), (shared, "shared STARTS"),
                                  (BEFORE.get(page), "before ab11854")):
                if fields is None or fields in tried:
                    continue
                tried.append(fields)
                m = ce.compress(net, ce.Recipe(**fields), data, model_logits=given).metrics
                rows.append({"model": name, "page": page, "setting": which,
                             "recipe": ", ".join(f"{k}={v}" for k, v in fields.items()),
                             "accuracy_%": round(100 * m["accuracy"], 2),
                             "vs_dense_pts": round(100 * (m["accuracy"] - dense), 2), "ratio": round(m["ratio"], 1)})
                print(rows[-1], flush=True)
    if args.preset:
        table("The Pipeline's Deep Compression button, fine-tuned, all 10,000 test images (points against the dense "
              "model)", rows, "presets")
    else:
        table("Each page's first setting, one-shot, all 10,000 test images (points against the dense model)", rows,
              "starts")


def presets(name, net, data, given, dense, tried):
    """Rows for the Pipeline preset of model `name`: the button's, the shared one, and each SPARSITY:SCOPE tried."""
    own, rows, done = common.deep_compression(name), [], []
    candidates = [(own, "the button"), (common.DEEP_COMPRESSION, "shared preset")]
    for spec in tried:
        sparsity, scope = spec.split(":")
        candidates.append(({**own, "sparsity": float(sparsity), "prune_scope": scope}, "tried"))
    for fields, which in candidates:
        if fields in done:
            continue
        done.append(fields)
        t, cpu = time.perf_counter(), time.process_time()
        m = ce.compress(net, ce.Recipe(**fields), data, model_logits=given).metrics
        rows.append({"model": name, "setting": which, "recipe": ", ".join(f"{k}={v}" for k, v in fields.items()),
                     "accuracy_%": round(100 * m["accuracy"], 2),
                     "vs_dense_pts": round(100 * (m["accuracy"] - dense), 2),
                     "ratio": round(m["ratio"], 1), "wall_s": round(time.perf_counter() - t),
                     "cpu_s": round(time.process_time() - cpu)})
        print(rows[-1], flush=True)
    return rows


if __name__ == "__main__":
    main()
