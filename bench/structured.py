"""Structured pruning: whole channels, units and feed-forward units removed, so the dense float32 model itself gets
smaller and faster, on four kinds of model.

    python bench/structured.py                   # all four, full Fashion-MNIST, 1 thread, about an hour and a quarter
    python bench/structured.py --quick           # 1 training epoch on 10,000 images, 1 fine-tuning epoch: a smoke run
    python bench/structured.py --models resnext  # some of: resnet-8, resnext, vit, lstm

The models: the zoo's ResNet-8 as shipped (BatchNorm folded into the convs, as deployment does); a ResNeXt-style CNN
written here as a user would (bottlenecks around 3x3 convs of 8 groups, BatchNorm, projection shortcuts);
bench/any_model.py's small vision transformer (torch's nn.TransformerEncoderLayer, whose feed-forward units are what
structured pruning can remove); and bench/any_model.py's LSTM, which reads an image's 28 rows (its hidden units go:
every gate's rows and the recurrent columns). The last three are trained here from a fixed seed. Each is pruned at
25, 50 and 75 % of the units of every group structured pruning finds (ce.describe lists them), once one-shot and
once fine-tuned for 2 epochs (Adam, lr 1e-3). Both recalibrate the BatchNorms' statistics on 1,024 training images
right after the pruning (train.recalibrate_batchnorm); the column before "one-shot" leaves them as trained. Accuracy
is on all 10,000 test images; every fine-tuned artifact is decoded into a fresh instance of the model's class and
scored again. FLOPs are ce.flops.count's: torch's FlopCounterMode for one image (plus an LSTM's from its weight matrices' sizes
and the sequence length: FlopCounterMode does not see inside torch's fused RNN op); latency is the median of 20
forward passes of 256 test images on 1 thread (the model as deployed, float32, in inference mode), each pruned
model timed in turns with its dense one (ce.speedup, as the dashboard times them), after all the training (so run
nothing else meanwhile; bench/speedup.py times the same shapes alone, without training). Prints one table and writes
bench/results/structured.csv (structured_<names>.csv for a subset).
"""

import argparse
import os
import time

import torch
import torch.nn.functional as F
from torch import nn

from report import table, time_rows
import compress_engine as ce
from compress_engine.core import structured
from compress_engine.core.flops import count as flops
from compress_engine.core.fold import deployed
from compress_engine.core.train import accuracy, fit
from any_model import RowLSTM, TinyViT

SPARSITIES = (0.25, 0.5, 0.75)


class Bottleneck(nn.Module):
    """ResNeXt's block: 1x1 conv, 3x3 conv of `groups` groups (stride 2), 1x1 conv, each with BatchNorm, added to
    a strided 1x1 projection of the input."""

    def __init__(self, cin, width, groups=8):
        super().__init__()
        self.reduce, self.bn1 = nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width)
        self.grouped = nn.Conv2d(width, width, 3, stride=2, padding=1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.expand, self.bn3 = nn.Conv2d(width, width, 1, bias=False), nn.BatchNorm2d(width)
        self.project, self.bn4 = nn.Conv2d(cin, width, 1, stride=2, bias=False), nn.BatchNorm2d(width)

    def forward(self, x):
        h = F.relu(self.bn2(self.grouped(F.relu(self.bn1(self.reduce(x))))))
        return F.relu(self.bn3(self.expand(h)) + self.bn4(self.project(x)))


class ResNeXt(nn.Module):
    """A stem conv (32 channels), bottlenecks of 64 and 128 channels at 14 and 7 pixels, global pooling, a head."""
    fold_batchnorm = True  # deployed with BatchNorm folded into the convs

    def __init__(self):
        super().__init__()
        self.stem, self.bn = nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32)
        self.block1, self.block2 = Bottleneck(32, 64), Bottleneck(64, 128)
        self.fc = nn.Linear(128, 10)

    def forward(self, x):
        x = self.block2(self.block1(F.relu(self.bn(self.stem(x)))))
        return self.fc(x.mean((2, 3)))


# --models name -> (label, class or None for the zoo's resnet-8, training lr, training epochs)
MODELS = {"resnet-8": ("the zoo's ResNet-8 (BatchNorm folded)", None, None, 0),
          "resnext": ("ResNeXt-style CNN (3x3 convs of 8 groups)", ResNeXt, 3e-3, 8),
          "vit": ("ViT (torch's transformer layers, 2 of them)", TinyViT, 2e-3, 15),
          "lstm": ("LSTM (28 rows, 128 hidden units)", RowLSTM, 3e-3, 15)}


def stale_statistics(model, sparsity, data):
    """One-shot accuracy with the BatchNorms' statistics as trained: compress's structured steps but the
    recalibration (None for a model without BatchNorm)."""
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return None
    small = structured.prune_structured(model, sparsity, data.x("test")[:2], rank_by=deployed(model))
    return accuracy(deployed(small).eval(), data.x("test"), data.y("test"))


def row(label, sparsity, res, one_shot, dense, x, cpu, make, data, stale=None):
    """A table row of a compressed run; its latency columns are filled in at the end (see main)."""
    again = ce.evaluate_artifact(res.artifact, data, module=make() if make else None)["accuracy"]
    return {"model": label, "structured": f"{sparsity:.0%}" if sparsity else "dense",
            "params": f"{res.metrics['params']:,}", "MFLOPs / image": f"{flops(res.model, x) / 1e6:.2f}",
            "bytes": f"{len(res.artifact):,}",
            "one-shot, BatchNorm statistics as trained": f"{stale:.2%}" if stale is not None else "",
            "one-shot": f"{one_shot:.2%}" if one_shot is not None else "",
            "fine-tuned": f"{res.metrics['accuracy']:.2%}",
            "loss (points)": f"{100 * (dense - res.metrics['accuracy']):.2f}" if sparsity else "",
            "ms / 256 images": "", "speed-up": "",
            "decoded = reported": "yes" if again == res.metrics["accuracy"] else f"no ({again:.2%})",
            "CPU s": f"{cpu:,.0f}" if sparsity else ""}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 epoch on 10,000 training images, 1 fine-tuning epoch")
    ap.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = ce.load_dataset("fashion-mnist")
    if args.quick:
        data = data.subset(10_000, 10_000)
    x = data.x("test")[:256]
    tune = 1 if args.quick else 2
    rows, timed = [], []  # timed: (row, deployed model, the dense row of its model)
    for key in args.models:
        label, make, lr, epochs = MODELS[key]
        torch.manual_seed(0)
        if make is None:
            model = ce.load_model(key)
            label_dense = "as shipped"
        else:
            model = make()
            t = time.process_time()
            fit(model, data, epochs=1 if args.quick else epochs, lr=lr, seed=0)
            label_dense = f"trained {1 if args.quick else epochs} epochs, {time.process_time() - t:,.0f} CPU s"
        dense = ce.compress(model, ce.Recipe(), data)  # as deployed: BatchNorm folded where the class asks
        base = row(f"{label}, {label_dense}", 0, dense, None, dense.metrics["accuracy"], x, 0, make, data)
        rows.append(base)
        timed.append((base, dense.model, base))
        for s in SPARSITIES:
            one_shot = ce.compress(model, ce.Recipe(structured=True, sparsity=s), data).metrics["accuracy"]
            t = time.process_time()
            res = ce.compress(model, ce.Recipe(structured=True, sparsity=s, finetune_epochs=tune, lr=1e-3), data)
            cpu = time.process_time() - t
            stale = stale_statistics(model, s, data)
            r = row("", s, res, one_shot, dense.metrics["accuracy"], x, cpu, make, data, stale)
            rows.append(r)
            timed.append((r, res.model, base))
            print(f"  {label}: {s:.0%}: {r['params']} params, {r['fine-tuned']}", flush=True)
    time_rows(timed, data)  # latency last, each model in turns with its dense one, nothing else running
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    name = "structured" + ("" if args.models == list(MODELS) else "_" + "_".join(args.models))
    table(f"Structured pruning: smaller and faster dense models{' (--quick)' if args.quick else ''} "
          f"(1 thread; load average {load})", rows, name + "_quick" if args.quick else name)


if __name__ == "__main__":
    main()
