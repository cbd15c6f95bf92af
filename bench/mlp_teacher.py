"""Hinton et al.'s teacher on Fashion-MNIST: can a 1200-1200 MLP with dropout and jittered inputs beat its students?

    python bench/mlp_teacher.py                   # the two variants below, one after the other, 1 thread
    python bench/mlp_teacher.py --workers 2       # side by side on a local Ray runtime
    python bench/mlp_teacher.py --variants 0.5:0 --epochs 40   # dropout 0.5, no jitter

Hinton et al. (2015) distilled a 784-1200-1200-10 MLP trained with dropout and inputs jittered by up to
2 pixels (67 MNIST errors) into an unregularised 800-800 MLP (146 -> 74 errors). KD can only close a gap
that exists: this trains that teacher here (Adam, lr 1e-3, warm-up + cosine, weight decay 1e-4, batch 128,
seed 0; jitter = train.crop_flip: a random shift of up to 2 pixels and a horizontal flip per image, each
epoch) and sets it beside the shipped teacher-1200-1200 (dropout 0.3, no jitter) and the 800-800 student on
the labels alone (bench/distillation.py, 20 epochs, mean of 3 seeds). Errors out of the 10,000 test images.
cpu_s is the run's CPU seconds; first/last epoch: CPU seconds of the first and last epoch (a model whose
unused weights decay towards zero once slowed down as it trained: train.flush_tiny_).
Writes bench/results/mlp_teacher.csv.
"""

import argparse
import csv
import statistics
import time

import torch

from report import OUT, table  # also puts the repo on sys.path
import compress_engine as ce  # noqa: E402
from compress_engine.core.model import MLP  # noqa: E402
from compress_engine.core.train import accuracy, crop_flip, fit  # noqa: E402
from compress_engine.playground.sweeps import map_jobs  # noqa: E402

SIZES = [784, 1200, 1200, 10]
VARIANTS = ((0.3, 2), (0.5, 2))  # (dropout, jitter pixels): Hinton et al.'s recipe at two dropout rates
EPOCHS = 40


def train_one(dropout, pad, epochs):
    """Train one teacher variant from seed 0 -> its row."""
    data = ce.load_dataset("fashion-mnist")
    torch.manual_seed(0)
    model = MLP(SIZES, dropout=dropout)
    marks = [time.process_time()]

    def progress(step, total, loss, acc):
        if acc is not None:
            marks.append(time.process_time())

    fit(model, data, epochs=epochs, lr=1e-3, batch_size=128, weight_decay=1e-4, seed=0, progress=progress,
        transform=crop_flip(pad) if pad else None)
    acc = accuracy(model, data.x("test"), data.y("test"))
    n = len(data.y("test"))
    return {"model": "1200-1200 MLP", "dropout": dropout, "jitter": f"{pad} px + flip" if pad else "none",
            "epochs": epochs, "test_errors": round((1 - acc) * n), "accuracy": f"{100 * acc:.2f}",
            "cpu_s": round(marks[-1] - marks[0], 1), "first_epoch_cpu_s": round(marks[1] - marks[0], 1),
            "last_epoch_cpu_s": round(marks[-1] - marks[-2], 1)}


def references():
    """The shipped teacher (its card) and the 800-800 student on the labels alone (distillation.csv)."""
    card = ce.model_card("teacher-1200-1200")
    data = ce.load_dataset("fashion-mnist")
    acc = accuracy(ce.load_model("teacher-1200-1200"), data.x("test"), data.y("test"))
    rows = [{"model": "teacher-1200-1200 (shipped)", "dropout": card["spec"].get("dropout", 0.0), "jitter": "none",
             "epochs": card["training"]["epochs"], "test_errors": round((1 - acc) * len(data.y("test"))),
             "accuracy": f"{100 * acc:.2f}", "cpu_s": card["training"].get("cpu_seconds", ""),
             "first_epoch_cpu_s": "", "last_epoch_cpu_s": ""}]
    path = OUT / "distillation.csv"
    if path.is_file():
        with open(path) as f:
            errs = [int(r["test_errors"]) for r in csv.DictReader(f)
                    if r["study"] == "grid" and r["student"] == "800-800" and r["epochs"] == "20" and r["T"] == ""]
        if errs:
            rows.append({"model": f"800-800 student, labels only (mean of {len(errs)} seeds)", "dropout": 0.0,
                         "jitter": "none", "epochs": 20, "test_errors": round(statistics.mean(errs)),
                         "accuracy": f"{100 - statistics.mean(errs) / 100:.2f}", "cpu_s": "",
                         "first_epoch_cpu_s": "", "last_epoch_cpu_s": ""})
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", default=",".join(f"{d}:{p}" for d, p in VARIANTS),
                    help="dropout:jitter-pixels pairs, comma-separated (jitter 0 = none)")
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--workers", type=int, help="run N variants at a time on a local Ray runtime")
    args = ap.parse_args()
    torch.set_num_threads(1)
    jobs = [(float(d), int(p), args.epochs) for d, p in (v.split(":") for v in args.variants.split(",") if v)]
    t0 = time.perf_counter()
    rows = map_jobs(train_one, jobs, workers=args.workers, threads=1,
                    on_result=lambda i, row: print(f"  {row}", flush=True))
    table("A 784-1200-1200-10 MLP teacher as in Hinton et al. on Fashion-MNIST (1 thread; test errors out of 10,000)",
          rows + references(), "mlp_teacher")
    print(f"\n{time.perf_counter() - t0:,.0f} s wall")


if __name__ == "__main__":
    main()
