"""Structured pruning's real speed-up on this CPU: each model against its structurally pruned copies, timed as the
dashboard's Pruning page times them, at 1 and 2 threads, on a batch of 256 test images and on one image.

    python bench/speedup.py                                  # every model and student, about 12 minutes
    python bench/speedup.py --models resnet-8 lenet-5 --rounds 9
    python bench/speedup.py --students only                  # distillation's students against their teacher

Each model is pruned one-shot with ce.compress (structured=True; 25, 50 and 75 % of every group's units, as
bench/structured.py does) and timed against the dense model by ce.speedup: both as deployed (BatchNorm folded where
the class asks, convs channels-last), float32, a call of one and then of the other, `--repeats` times (10x as many
on one image), the median of each. Timing in turns lets a load that comes and goes on the machine fall on both
alike. That is one round; each pair gets `--rounds` rounds, taken round-robin over the three pruned models. The
table gives the medians over rounds of each time and speed-up, and the range of the rounds' speed-ups, since a
burst of load on this shared host can still move one round. Timing one model after the other, as
bench/structured.py and bench/flops.py did before, gave ResNet-8 at 25 % 1.99x in one and 1.13x in the other.

The zoo's models are timed as shipped. bench/structured.py's ResNeXt, ViT and LSTM are timed at their seeded
initialisation, untrained: a forward pass's time depends on the layers' shapes, which the sparsity fixes (every
group keeps the same number of units whichever units they are), not on the weights' values (as long as none is
subnormal; fresh initialisations have none, and the engine flushes them). Accuracy is not measured here; it is in
bench/structured.py. Prints one table and writes bench/results/speedup.csv (speedup_<names>.csv for a subset).

A second table times bench/distillation.py's students (MLPs 30-30 to 800-800 and the small CNN, seeded
initialisation, as deployed) against their teacher, the zoo's ResNet-8, as the Distillation page's button does
(bench/results/speedup_students.csv).
"""

import argparse
import os
import statistics

import torch

from report import table
import compress_engine as ce
from compress_engine.core import flops
from compress_engine.core.fold import deployed
from compress_engine.core.model import MLP, param_count
from compress_engine.playground.zoo import CNN_STUDENT_NAME, cnn_student
from distillation import TEACHER, WIDTHS as STUDENT_WIDTHS
from structured import MODELS as TRAINED_HERE

ZOO = {"lenet-300-100": "LeNet-300-100", "lenet-5": "LeNet-5", "resnet-8": "the zoo's ResNet-8 (BatchNorm folded)"}
OTHERS = {k: v for k, v in TRAINED_HERE.items() if v[1] is not None}  # key -> (label, class, lr, epochs)
SPARSITIES = (0.25, 0.5, 0.75)
SETTINGS = ((1, 256), (2, 256), (1, 1))  # (threads, batch)


def model_of(key):
    """(label, the dense model) for --models `key`."""
    if key in ZOO:
        return f"{ZOO[key]}, as shipped", ce.load_model(key)
    label, make, _, _ = OTHERS[key]
    torch.manual_seed(0)
    return f"{label}, seeded initialisation", make()


def timings(dense, smaller, data, repeats, rounds):
    """{(tag, (threads, batch)): [ce.speedup's result per round]} of each (tag, model) of `smaller` against `dense`.
    The rounds go round all the smaller models in turn, so a burst of load on the machine falls on one round."""
    out = {}
    threads = torch.get_num_threads()
    try:
        for n, batch in SETTINGS:
            torch.set_num_threads(n)
            for _ in range(rounds):
                for tag, small in smaller:
                    out.setdefault((tag, (n, batch)), []).append(ce.speedup(
                        dense, small, data, batch_size=batch, seconds=None,
                        repeats=repeats * (10 if batch == 1 else 1)))
    finally:
        torch.set_num_threads(threads)
    return out


def summary(results):
    """The medians over rounds of the pruned model's time and of the speed-up, with the rounds' range of speed-ups."""
    ups = sorted(r["speedup"] for r in results)
    ms = statistics.median(r["ms"] for r in results)
    spread = f" ({ups[0]:.2f}-{ups[-1]:.2f})" if len(ups) > 1 else ""
    return f"{ms:.3g} ms, {statistics.median(ups):.2f}x{spread}"


def column(n, batch):
    return f"{n} thread{'s' if n > 1 else ''}, {batch} image{'s' if batch > 1 else ''}: ms, speed-up"


def student_rows(data, args):
    """Distillation's students (bench/distillation.py's MLPs and small CNN, seeded initialisation) against the zoo's
    ResNet-8, their teacher, as the Distillation page's timing button times them."""
    teacher = ce.load_model(TEACHER)
    torch.manual_seed(0)
    students = [(f"{w}-{w} MLP", MLP([28 * 28, w, w, 10])) for w in STUDENT_WIDTHS]
    students.append((CNN_STUDENT_NAME, cnn_student(0)))
    times = timings(teacher, students, data, args.repeats, args.rounds)
    x = data.x("test")[:1]
    rows = []
    for tag, m in [(f"{TEACHER} (teacher, as shipped, BatchNorm folded)", teacher), *students]:
        row = {"model": tag, "params": f"{param_count(deployed(m)):,}",
               "MFLOPs / image": f"{flops.count(deployed(m), x) / 1e6:.2f}"}
        for setting in SETTINGS:  # the teacher's time: the median of all its pairings
            pairs = [r["dense_ms"] for t, _ in students for r in times[t, setting]]
            row[column(*setting)] = (f"{statistics.median(pairs):.3g} ms" if m is teacher
                                     else summary(times[tag, setting]))
        rows.append(row)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", choices=[*ZOO, *OTHERS], default=[*ZOO, *OTHERS])
    ap.add_argument("--repeats", type=int, default=10, help="turns per pair and round on 256 images (10x on one)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds per pair: the table gives the median and range")
    ap.add_argument("--students", choices=("yes", "no", "only"), default="yes",
                    help="also (or only) time distillation's students against their teacher")
    args = ap.parse_args()
    data = ce.load_dataset("fashion-mnist")
    rows = []
    for key in args.models if args.students != "only" else ():
        label, model = model_of(key)
        pruned = [(s, ce.compress(model, ce.Recipe(structured=True, sparsity=s), data, evaluate=False))
                  for s in SPARSITIES]  # all pruning first, then all timing
        times = timings(model, [(s, res.model) for s, res in pruned], data, args.repeats, args.rounds)
        dense_metrics = pruned[0][1].metrics
        dense_row = {"model": label, "structured": "dense", "params": f"{dense_metrics['dense_params']:,}",
                     "MFLOPs / image": f"{dense_metrics['dense_flops'] / 1e6:.2f}", "FLOPs share": "100.0%"}
        for setting in SETTINGS:  # the dense model's time: the median of all its pairings
            ms = statistics.median(r["dense_ms"] for s, _ in pruned for r in times[s, setting])
            dense_row[column(*setting)] = f"{ms:.3g} ms"
        rows.append(dense_row)
        for s, res in pruned:
            m = res.metrics
            rows.append({"model": "", "structured": f"{s:.0%}", "params": f"{m['params']:,}",
                         "MFLOPs / image": f"{m['flops'] / 1e6:.2f}",
                         "FLOPs share": f"{m['flops'] / m['dense_flops']:.1%}",
                         **{column(*k): summary(times[s, k]) for k in SETTINGS}})
        print(f"  {label}: done", flush=True)
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    how = (f"{args.rounds} rounds of {args.repeats} turns on 256 images, {10 * args.repeats} on one: the medians over "
           f"rounds of time and speed-up, and the rounds' range of speed-ups; load average {load}")
    if args.students != "no":
        table(f"Distillation's students against their teacher, each timed in turns with it (ce.speedup; {how})",
              student_rows(data, args), "speedup_students")
    if not rows:
        return
    name = "speedup" + ("" if args.models == [*ZOO, *OTHERS] else "_" + "_".join(args.models))
    table(f"Structured pruning's speed-up, each pruned model timed in turns with its dense one (ce.speedup; {how})",
          rows, name)


if __name__ == "__main__":
    main()
