"""A regression model, compressed: a CNN that reads how far a Fashion-MNIST image was rotated.

    python bench/regression.py            # full Fashion-MNIST, 1 thread, about 20 minutes
    python bench/regression.py --quick    # 1 training epoch on 10,000 training images: a smoke run

Every image of both splits is turned by its own angle, drawn uniformly from -45 to +45 degrees with a fixed seed
(bilinear, zero padding), and the model predicts that angle (the target is angle / 45). Garments have an upright
pose, so the angle can be read from the image; it is a real regression task on real images, with no class to
predict. The CNN is defined here as a user would write it, trained on mean squared error, then compressed with
the recipes bench/any_model.py uses for classifiers, and by the size-budget search (ce.fit_budget: a sensitivity
scan that ranks each layer's settings by how much they change the outputs, per-layer sparsity and cluster counts)
held to the bytes of the 90 % recipe. R² is on all 10,000 test images (1 is perfect, 0 is always
predicting the mean angle), RMSE is in degrees, bytes are the artifact's length, and every artifact is decoded
into a fresh instance of the class and scored again. Prints one table and writes bench/results/regression.csv.
"""

import argparse
import math
import os
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn

from any_model import BUDGET, RECIPES as ANY_MODEL_RECIPES, STRUCTURED
from report import table
import compress_engine as ce
from compress_engine.core.train import fit

MAX_DEGREES = 45.0


class AngleNet(nn.Module):
    """Two conv blocks, then two fully connected layers to one output: the angle / 45."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 16, 3, padding=1), nn.Conv2d(16, 32, 3, padding=1)
        self.fc1, self.fc2 = nn.Linear(32 * 7 * 7, 64), nn.Linear(64, 1)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def rotated(data, seed=0):
    """Each image of `data` turned by its own seeded angle in [-45, 45] degrees; the targets are angle / 45."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for split in ("train", "test"):
        x = data.x(split)
        target = torch.rand(len(x), generator=gen) * 2 - 1
        theta = target * math.radians(MAX_DEGREES)
        cos, sin = torch.cos(theta), torch.sin(theta)
        affine = torch.stack([torch.stack([cos, -sin, torch.zeros_like(cos)], 1),
                              torch.stack([sin, cos, torch.zeros_like(cos)], 1)], 1)
        turned = torch.cat([F.grid_sample(x[i:i + 5000], F.affine_grid(affine[i:i + 5000], x[i:i + 5000].shape,
                                                                      align_corners=False), align_corners=False)
                            for i in range(0, len(x), 5000)])
        out[split] = (turned, target)
    return ce.Dataset.from_tensors(*out["train"], *out["test"], name=f"{data.name} rotated")


RECIPES = {**ANY_MODEL_RECIPES, **STRUCTURED}  # bench/any_model.py's recipes, its structured one included


def row(recipe, res, dense, cpu, data):
    """A table row; a compressed run's artifact is decoded into a fresh AngleNet and scored again."""
    m = res.metrics
    again = "" if res is dense else ce.evaluate_artifact(res.artifact, data, module=AngleNet())["r2"]
    return {"recipe": recipe, "params": f"{m['params']:,}", "bytes": len(res.artifact),
            "ratio": f"{len(dense.artifact) / len(res.artifact):.1f}x", "R²": f"{m['r2']:.4f}",
            "RMSE (degrees)": f"{m['rmse'] * MAX_DEGREES:.2f}",
            "R² lost": "" if res is dense else f"{dense.metrics['r2'] - m['r2']:.4f}",
            "decoded = reported": "" if res is dense else "yes" if again == m["r2"] else f"no ({again:.4f})",
            "CPU s": f"{cpu:,.0f}"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 epoch on 10,000 training images")
    ap.add_argument("--epochs", type=int, default=10, help="training epochs (default 10)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    fmnist = ce.load_dataset("fashion-mnist")
    if args.quick:
        fmnist = fmnist.subset(10_000, 10_000)
    data = rotated(fmnist)
    epochs = 1 if args.quick else args.epochs
    torch.manual_seed(0)
    model = AngleNet()
    t = time.process_time()
    fit(model, data, epochs=epochs, lr=2e-3, seed=0)
    train_s = time.process_time() - t
    dense = ce.compress(model, ce.Recipe(), data)
    rows = [row(f"dense float32 (trained {epochs} epochs, {train_s:,.0f} CPU s)", dense, dense, 0, data)]
    rows[0]["CPU s"] = ""
    for name, recipe in RECIPES.items():
        t = time.process_time()
        res = ce.compress(model, recipe, data)
        rows.append(row(name, res, dense, time.process_time() - t, data))
        print(f"  {name}: {rows[-1]['bytes']:,} B, R² {rows[-1]['R²']}", flush=True)
    budget = rows[list(RECIPES).index(BUDGET) + 1]["bytes"]  # the 90 % recipe's bytes, each layer's settings picked
    t = time.process_time()
    with tempfile.TemporaryDirectory() as scans:
        res, _ = ce.fit_budget(model, data, budget, finetune_epochs=2, cache_dir=scans)
    rows.append(row(f"fit in {budget:,} B (ce.fit_budget: per-layer settings, 2 epochs a step)", res, dense,
                    time.process_time() - t, data))
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    table(f"A regression CNN (the angle a Fashion-MNIST image was turned by){' (--quick)' if args.quick else ''} "
          f"(1 thread; load average {load})", rows, "regression_quick" if args.quick else "regression")


if __name__ == "__main__":
    main()
