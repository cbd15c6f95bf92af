"""Your own model, not a sample one: a recurrent net, a small vision transformer and two segmentation nets (a class
per pixel), compressed by the engine.

    python bench/any_model.py            # all four models, full Fashion-MNIST, 1 thread, about two hours
    python bench/any_model.py --quick    # 1 training epoch, 10,000 training images: a smoke run (the size-budget
                                         # searches still scan their whole grids: 10+ min for pixels)
    python bench/any_model.py --models pixels   # one model (lstm, vit, pixels, unet): a segmentation net, 40+ min

Each model is defined here as a user would write it (nothing in the zoo knows it), trained from a fixed seed on
Fashion-MNIST's 60,000 training images (for the segmentation nets, labelled per pixel: see pixel_labels; their
accuracy is over the scored pixels, and their mean IoU has a column of its own), then compressed with the same
recipes: Deep Compression's shape (prune, share weights, Huffman; fine-tuned), 4-bit quantization-aware
fine-tuning, and the engine's size-budget search (ce.fit_budget: a sensitivity scan, per-layer sparsity and
cluster counts, fine-tuned on the dense model's soft targets) held to the bytes of the 90 % recipe. "compressed
share" is the part of the model's parameters the engine compresses (the rest, biases and norms, is carried
exactly); accuracy is on all 10,000 test images, bytes are the artifact's length, and every artifact is decoded
into a fresh instance of the model's class and re-scored. The two segmentation nets (the U-Net has transposed
convs, skip connections joined by torch.cat and BatchNorm folded into the convs as deployment does) also get
structured pruning: whole channels removed, so the dense float32 model itself shrinks; so does the ViT, whose
transformer layers lose half their feed-forward units (torch's nn.TransformerEncoderLayer, whose attention and
LayerNorms keep every channel). The dense row also times
256 test images in float32 and with torch's int8 dynamic quantization (ce.int8_latency: the LSTM and Linear
layers in int8). Prints one table and writes bench/results/any_model.csv.
"""

import argparse
import os
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn

from report import table
import compress_engine as ce
from compress_engine.core.model import compressible
from compress_engine.core.train import fit


class RowLSTM(nn.Module):
    """The 28 rows of an image, top to bottom, through an LSTM; its last hidden state to a linear head."""

    def __init__(self, hidden=128):
        super().__init__()
        self.lstm = nn.LSTM(28, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 10)

    def forward(self, x):
        out, _ = self.lstm(x.reshape(-1, 28, 28))
        return self.head(out[:, -1])


class TinyViT(nn.Module):
    """7x7 patches (16 tokens) embedded to 64 dims, learned positions, 2 pre-norm transformer layers, mean pool."""

    def __init__(self, d=64, layers=2, heads=4, ff=128):
        super().__init__()
        self.patch = nn.Linear(49, d)
        self.pos = nn.Parameter(torch.zeros(1, 16, d))
        layer = nn.TransformerEncoderLayer(d, heads, ff, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm, self.head = nn.LayerNorm(d), nn.Linear(d, 10)

    def forward(self, x):
        p = x.reshape(-1, 4, 7, 4, 7).permute(0, 1, 3, 2, 4).reshape(-1, 16, 49)
        return self.head(self.norm(self.encoder(self.patch(p) + self.pos)).mean(1))


class PixelNet(nn.Module):
    """A small encoder-decoder for a class per pixel: convs at 28, 14 and 7 pixels (max-pooled), a global-context
    Linear (which garment is it?), upsampled back with skip connections added FPN-style, a 1x1 head of 11 classes."""

    def __init__(self, widths=(16, 32, 64), classes=11):
        super().__init__()
        a, b, c = widths
        self.e1, self.e2 = nn.Conv2d(1, a, 3, padding=1), nn.Conv2d(a, b, 3, padding=1)
        self.e3 = nn.Conv2d(b, c, 3, padding=1)
        self.context = nn.Linear(c, c)
        self.lat2, self.d2 = nn.Conv2d(c, b, 1), nn.Conv2d(b, b, 3, padding=1)
        self.lat1, self.head = nn.Conv2d(b, a, 1), nn.Conv2d(a, classes, 1)

    def forward(self, x):
        f1 = torch.relu(self.e1(x))
        f2 = torch.relu(self.e2(F.max_pool2d(f1, 2)))
        f3 = torch.relu(self.e3(F.max_pool2d(f2, 2)))
        f3 = torch.relu(f3 + self.context(f3.mean((2, 3)))[:, :, None, None])
        u2 = torch.relu(self.d2(f2 + self.lat2(F.interpolate(f3, scale_factor=2))))
        return self.head(torch.relu(f1 + self.lat1(F.interpolate(u2, scale_factor=2))))


class UNet(nn.Module):
    """A U-Net for a class per pixel: two levels down (3x3 conv + BatchNorm + ReLU, max-pooled), a bottleneck, two
    levels back up by 2x2 transposed convs, each joined by torch.cat to the encoder's map of its size (the skip
    connections) and merged by a conv block; a 1x1 head of 11 classes. It asks compress() to fold its
    BatchNorms into the convs (fold_batchnorm), as deployment does: first, or after structured pruning."""
    fold_batchnorm = True

    def __init__(self, widths=(12, 24, 48), classes=11):
        super().__init__()
        a, b, c = widths

        def block(i, o):
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU())
        self.e1, self.e2, self.mid = block(1, a), block(a, b), block(b, c)
        self.up2, self.d2 = nn.ConvTranspose2d(c, b, 2, stride=2), block(2 * b, b)
        self.up1, self.d1 = nn.ConvTranspose2d(b, a, 2, stride=2), block(2 * a, a)
        self.head = nn.Conv2d(a, classes, 1)

    def forward(self, x):
        f1 = self.e1(x)
        f2 = self.e2(F.max_pool2d(f1, 2))
        u2 = self.d2(torch.cat([f2, self.up2(self.mid(F.max_pool2d(f2, 2)))], 1))
        return self.head(self.d1(torch.cat([f1, self.up1(u2)], 1)))


def pixel_labels(data):
    """Fashion-MNIST as segmentation: every pixel labelled background (intensity <= 0.02) or its garment
    (1 + class, intensity > 0.15); the faint edge pixels between are -100, not scored (as void borders are)."""
    def labels(split):
        x, y = data.x(split)[:, 0], data.y(split)
        out = torch.where(x > 0.15, y[:, None, None] + 1, torch.zeros((), dtype=torch.int64))
        return out.masked_fill((x > 0.02) & (x <= 0.15), -100)
    return ce.Dataset.from_tensors(data.x("train"), labels("train"), data.x("test"), labels("test"),
                                   classes=("background",) + tuple(data.classes), name=f"{data.name} pixels")


MODELS = {"LSTM (28 rows, 128 units)": (RowLSTM, 3e-3), "ViT (16 patches, 2 layers, 64 dims)": (TinyViT, 2e-3),
          "segmentation: a class per pixel (encoder-decoder CNN)": (PixelNet, 3e-3),
          "segmentation: a U-Net (transposed convs, torch.cat skips, BatchNorm folded)": (UNet, 3e-3)}
KEYS = dict(zip(("lstm", "vit", "pixels", "unet"), MODELS))  # --models names
PER_PIXEL = (PixelNet, UNet)
BUDGET = "prune 90 % + 8 clusters + Huffman, 2 epochs each"  # fit_budget is held to this recipe's bytes
RECIPES = {
    "prune 80 % + 16 clusters + Huffman, 1 epoch each": ce.Recipe(sparsity=0.8, clusters=16, huffman=True,
                                                                  finetune_epochs=1),
    "prune 90 % + 8 clusters + Huffman, 2 epochs each": ce.Recipe(sparsity=0.9, clusters=8, huffman=True,
                                                                  finetune_epochs=2),
    "4-bit per channel, 1 epoch QAT": ce.Recipe(bits=4, per_channel=True, finetune_epochs=1),
}
# structured pruning follows the segmentation nets through (bench/regression.py runs it too); in the ViT it removes
# feed-forward units alone (attention, LayerNorms and the residual stream keep every channel); the LSTM's hidden
# units go too, in bench/structured.py (with their FLOPs and latency)
STRUCTURED = {"structured: half of every layer's channels removed, 2 epochs": ce.Recipe(structured=True, sparsity=0.5,
                                                                                        finetune_epochs=2, lr=1e-3)}
TRANSFORMER_STRUCTURED = {"structured: half of each transformer layer's feed-forward units removed, 2 epochs":
                          STRUCTURED["structured: half of every layer's channels removed, 2 epochs"]}


def structured_recipes(make):
    """The structured-pruning row(s) of model class `make`: {label: recipe}."""
    return STRUCTURED if make in PER_PIXEL else TRANSFORMER_STRUCTURED if make is TinyViT else {}


def iou(result):
    """The mean IoU column: segmentation's score for the per-pixel model, empty for the classifiers."""
    v = result.metrics.get("mean_iou")
    return "" if v is None else f"{v:.2%}"


def compressed_row(recipe, res, dense, cpu, make, data):
    """A compressed run's table row, its artifact decoded into a fresh make() and scored again."""
    again = ce.evaluate_artifact(res.artifact, data, module=make())["accuracy"]
    params = res.metrics["params"]  # fewer than the dense model's only when structured pruning removed channels
    return {"model": "", "recipe": recipe, "params": f"{params:,}" if params != dense.metrics["params"] else "",
            "compressed share": "",
            "bytes": len(res.artifact), "ratio": f"{len(dense.artifact) / len(res.artifact):.1f}x",
            "accuracy": f"{res.metrics['accuracy']:.2%}", "mean IoU": iou(res),
            "loss": f"{100 * (dense.metrics['accuracy'] - res.metrics['accuracy']):.2f}",
            "decoded = reported": "yes" if again == res.metrics["accuracy"] else f"no ({again:.2%})",
            "CPU s": f"{cpu:,.0f}", "256 images: float32 / int8 ms": ""}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    ap.add_argument("--quick", action="store_true", help="1 epoch on 10,000 training images")
    ap.add_argument("--epochs", type=int, default=15, help="training epochs of each model (default 15)")
    ap.add_argument("--models", nargs="+", choices=sorted(KEYS), default=sorted(KEYS),
                    help="which models (default all); a subset writes bench/results/any_model_<names>.csv")
    args = ap.parse_args()
    torch.set_num_threads(1)
    fmnist = ce.load_dataset("fashion-mnist")
    if args.quick:
        fmnist = fmnist.subset(10_000, 10_000)
    epochs = 1 if args.quick else args.epochs
    rows = []
    for key in sorted(args.models, key=list(KEYS).index):
        label, (make, lr) = KEYS[key], MODELS[KEYS[key]]
        data = pixel_labels(fmnist) if make in PER_PIXEL else fmnist
        torch.manual_seed(0)
        model = make()
        t = time.process_time()
        fit(model, data, epochs=epochs, lr=lr, seed=0)
        train_s = time.process_time() - t
        dense = ce.compress(model, ce.Recipe(), data)  # dense.model is the model as deployed (the U-Net's BN folded)
        params = dense.metrics["params"]
        share = sum(p.numel() for p in compressible(dense.model).values()) / params
        t8 = ce.int8_latency(model, data.x("test")[:256], repeats=20)
        rows.append({"model": label, "recipe": f"dense float32 (trained {epochs} epochs, {train_s:,.0f} CPU s)",
                     "params": f"{params:,}", "compressed share": f"{share:.1%}", "bytes": len(dense.artifact),
                     "ratio": "1x", "accuracy": f"{dense.metrics['accuracy']:.2%}", "mean IoU": iou(dense), "loss": "",
                     "decoded = reported": "", "CPU s": "",
                     "256 images: float32 / int8 ms": f"{t8['fp32_ms']:.1f} / {t8['int8_ms']:.1f}"})
        done = {}
        for name, recipe in {**RECIPES, **structured_recipes(make)}.items():
            t = time.process_time()
            res = ce.compress(model, recipe, data)
            rows.append(compressed_row(name, res, dense, time.process_time() - t, make, data))
            done[name] = len(res.artifact)
            print(f"  {label}: {name}: {rows[-1]['bytes']:,} B, {rows[-1]['accuracy']}", flush=True)
        budget = done[BUDGET]  # the 90 % recipe's bytes: the same size, each layer's settings picked for it
        t = time.process_time()
        with tempfile.TemporaryDirectory() as scans:
            res, _ = ce.fit_budget(model, data, budget, finetune_epochs=2, kd=4.0, cache_dir=scans)
        rows.append(compressed_row(f"fit in {budget:,} B (ce.fit_budget: per-layer settings, 2 epochs a step)", res,
                                   dense, time.process_time() - t, make, data))
        print(f"  {label}: budget: {rows[-1]['bytes']:,} B, {rows[-1]['accuracy']}", flush=True)
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    name = "any_model" + ("" if set(args.models) == set(KEYS) else "_" + "_".join(args.models))
    table(f"Models the zoo does not know, on Fashion-MNIST{' (--quick)' if args.quick else ''} "
          f"(1 thread; load average {load})", rows, name + "_quick" if args.quick else name)


if __name__ == "__main__":
    main()
