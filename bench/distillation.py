"""Distillation benchmark: the zoo's ResNet-8 taught to MLP students 30-800 wide and a small CNN, on Fashion-MNIST.

    python bench/distillation.py            # grid (5 and 20 epochs) + the 800-800 gap study, 1 thread
    python bench/distillation.py --quick    # 1 epoch, 1 seed, two students: smoke run -> distillation_quick*.csv
    python bench/distillation.py --epochs 20 --widths 800 --no-gap   # a part of it (e.g. in a second process)
    python bench/distillation.py --teacher lenet-5 --widths 100,800   # another sample model as the teacher

1. Grid (what the Distillation page shows before any training): each student trained on the labels
   alone (alpha = 0) and distilled at each temperature T (alpha = 1: the teacher's soft targets
   only), for 5 epochs (T = 1, 2, 4) and for 20 (T = 1), with the same lr (Adam 1e-3, cosine) and
   seeds 0, 1, 2; the CNN student for 5 epochs. The
   teacher's logits come from zoo.cached_logits (computed once, shipped beside the checkpoint), so
   no run evaluates the teacher on the training set again.
2. Gap study (Hinton et al.'s 800-800 student; seed 0), what else was tried to close its gap:
   - a transfer set with a jittered copy of every training image (random 2-pixel shift and flip, the
     teacher's own augmentation) labelled by the teacher, beside its labels-only twin on the same
     images, both for the steps of the 20-epoch runs;
   - "function matching" (Beyer et al. 2022): the training images plus 4 mixup views of them (each image
     blended with a random other, weight uniform in 0..1), all labelled by the teacher, for the steps
     of the 20-epoch runs (against the grid's 20-epoch labels-only run of the same seed);
   - longer training: 60 epochs, on the labels alone and distilled, for the 800-800 and the 100-100.

Errors are out of the 10,000 test images; "a ± b" is the mean over seeds ± half their range. The gap
closed is (labels-only errors - KD errors) / (labels-only errors - teacher errors) of the seed means;
"beyond seed noise" means every KD seed made fewer errors than every labels-only seed; "paired" compares each
KD run with the labels-only run of the same seed (the same initial weights and batch order).
Writes distillation.csv (every run), distillation_grid.csv (the page's grid) and distillation_gain.csv.
Finished runs are also appended to bench/results/distillation_runs.tmp: a stopped run, or a second
process sharing the work (e.g. --epochs 20 in one, --epochs 5 in another), resumes from them, and
a final run with the full arguments writes the tables (--fresh ignores them).
Paper (MNIST): teacher 67 errors; 800-800 student 146 on labels, 74 distilled at T = 20 (91 % of the gap).
Seeds are fixed and torch runs on a fixed number of threads (--threads, default 1), so reruns give the
same numbers on the same machine.
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from report import OUT, table  # also puts the repo on sys.path
import compress_engine as ce  # noqa: E402
from compress_engine.core.distill import distill  # noqa: E402
from compress_engine.core.model import state_bytes, student_mlp  # noqa: E402
from compress_engine.core.train import accuracy, crop_flip, logits  # noqa: E402
from compress_engine.playground import explain, zoo  # noqa: E402
from compress_engine.playground.sweeps import map_jobs  # noqa: E402

TEACHER = "resnet-8"
WIDTHS = (30, 100, 300, 800)
CNN = "cnn"  # the small CNN student: zoo.CNN_STUDENT (ResNet-8 at 8-16-32 channels)
TEMPERATURES = (1, 2, 4)
LONG_TEMPS = (1,)  # at 20 epochs only T = 1: T = 2 and 4 lost to T = 1 for every student at 5 epochs and for 30-30
#                   and 100-100 at 20 (1,337 / 1,371 vs 1,282; 1,114 / 1,16x vs T = 1's), so the 800-800's CPU goes to T = 1
CNN_TEMPS = (1,)   # a CNN student's run costs ~20x an MLP's: labels only and T = 1
ALPHA = 1.0  # soft targets only: pilots (100-100, 20 epochs, seed 0) gave 1,049 errors at T=1, alpha=1;
#             1,062 at alpha=0.9, 1,103 at 0.5; 1,075 at T=2, alpha=0.5; 1,148 at T=4, alpha=0.9; labels 1,098
LR = 1e-3
EPOCHS = (5, 20)  # 5: the page's default, so a live run lands on the grid; 20: where KD's gain shows
CNN_EPOCHS = (5,)
SEEDS = (0, 1, 2)
GAP_STUDENT = 800
PAPER = {"teacher": 67, "labels": 146, "kd": 74}


JITTER = "train + a jittered copy"
MIXUP = "train + 4 mixup views"
MIX_VIEWS = 4
LONG = 60  # epochs of the gap study's longer runs
LONG_STUDENTS = (100, 800)
_cache = {}


def label(s):
    return zoo.CNN_STUDENT_NAME if s == CNN else f"{s}-{s}"


def jittered(x):
    """Every training image once more, shifted by up to 2 pixels and flipped at random (the teacher's own
    augmentation), from a fixed seed."""
    return crop_flip(2)(x, torch.Generator().manual_seed(1000))


def mixup_views(x):
    """MIX_VIEWS blends of the training images, each image with a random other (weight uniform in 0..1), view k
    drawn from seed 5000 + k: the inputs of the function-matching transfer set."""
    views = []
    for k in range(MIX_VIEWS):
        g = torch.Generator().manual_seed(5000 + k)
        perm = torch.randperm(len(x), generator=g)
        lam = torch.rand(len(x), *([1] * (x.dim() - 1)), generator=g)
        views.append(lam * x + (1 - lam) * x[perm])
    return views


def _transfer(teacher, transfer, jitter_path):
    """(Dataset, teacher logits on its training inputs) of a transfer set, built once per process."""
    key = (teacher, transfer)
    if key not in _cache:
        if "data" not in _cache:
            _cache["data"] = ce.load_dataset("fashion-mnist")
        data = _cache["data"]
        tl = zoo.cached_logits(teacher, data)["train"]
        if transfer == JITTER:
            lg = torch.load(jitter_path, weights_only=True)
            data = ce.Dataset.from_tensors(torch.cat([data.x("train"), jittered(data.x("train"))]),
                                           torch.cat([data.y("train")] * 2), data.x("test"), data.y("test"),
                                           name="fashion-mnist+jitter")
            tl = torch.cat([tl, lg])
        elif transfer == MIXUP:  # labels: each blend's first image's (unused: its runs learn from the teacher alone)
            x = data.x("train")
            lg = torch.load(mixup_path(jitter_path), weights_only=True)
            data = ce.Dataset.from_tensors(torch.cat([x, *mixup_views(x)]),
                                           torch.cat([data.y("train")] * (1 + MIX_VIEWS)),
                                           data.x("test"), data.y("test"), name="fashion-mnist+mixup")
            tl = torch.cat([tl, lg])
        _cache[key] = data, tl
    return _cache[key]


def mixup_path(jitter_path):
    """Where the teacher's answers on the mixup views are kept (beside the jittered copy's)."""
    return Path(str(jitter_path).replace("_jitter.tmp", "_mixup.tmp"))


def train_one(teacher, study, s, T, alpha, seed, epochs, transfer, jitter_path):
    """Train one fresh student (seeded init and batch order) on the labels (T None) or distilled at T, on the
    given transfer set; its row (test errors out of the full test set). A job: in this process or on Ray."""
    data, tl = _transfer(teacher, transfer, jitter_path)
    x_test, y_test = data.x("test"), data.y("test")
    n = len(y_test)
    torch.manual_seed(seed)
    student = zoo.cnn_student(seed) if s == CNN else student_mlp(s, data)
    t0 = time.process_time()
    distill(None, student, data, temperature=T or 1, alpha=alpha, epochs=epochs, lr=LR, seed=seed,
            teacher_logits=tl)
    sec = time.process_time() - t0
    err = round((1 - accuracy(student, x_test, y_test)) * n)
    return {"study": study, "student": label(s), "params": ce.param_count(student), "bytes": state_bytes(student),
            "transfer": transfer, "T": T or "", "alpha": alpha, "epochs": epochs, "seed": seed, "test_errors": err,
            "accuracy": f"{100 * (1 - err / n):.2f}", "cpu_seconds": round(sec, 1)}


def ints(text):
    return [float(t) if "." in t else int(t) for t in text.split(",") if t]


def spread(values):
    """'mean ± half range' of a list of numbers."""
    return f"{statistics.mean(values):,.0f} ± {(max(values) - min(values)) / 2:,.0f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--teacher", default=TEACHER, help=f"sample model to distil from (default {TEACHER})")
    ap.add_argument("--widths", default=",".join(map(str, WIDTHS)) + "," + CNN,
                    help="MLP student widths, and 'cnn' for the small CNN student")
    ap.add_argument("--temps", default=",".join(map(str, TEMPERATURES)), help="temperatures of the grid")
    ap.add_argument("--long-temps", default=",".join(map(str, LONG_TEMPS)),
                    help="temperatures of the longest runs of the grid (default: T = 1 only, see LONG_TEMPS)")
    ap.add_argument("--cnn-temps", default=",".join(map(str, CNN_TEMPS)), help="temperatures for the CNN student")
    ap.add_argument("--alpha", type=float, default=ALPHA, help=f"soft-target weight of every KD run (default {ALPHA})")
    ap.add_argument("--epochs", default=",".join(map(str, EPOCHS)), help="epochs of the grid's runs (a list)")
    ap.add_argument("--cnn-epochs", default=",".join(map(str, CNN_EPOCHS)), help="epochs of the CNN student's runs")
    ap.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    ap.add_argument("--no-gap", action="store_true", help=f"skip the {GAP_STUDENT}-{GAP_STUDENT} gap study")
    ap.add_argument("--no-grid", action="store_true", help="skip the grid (e.g. while another process runs it)")
    ap.add_argument("--fresh", action="store_true", help="ignore the finished runs a stopped run left behind")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 epoch, 1 seed, students 30 and cnn")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of each run (default 1; fixed for "
                    "reproducibility: the same run gives the same errors in this process and on Ray)")
    ap.add_argument("--workers", type=int, help="run N students at a time on a local Ray runtime")
    ap.add_argument("--ray-address", help="run the students on an existing Ray cluster ('auto' on one of its machines)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        args.epochs, args.cnn_epochs, args.seeds, args.widths = "1", "1", "0", "30,cnn"
    temps, long_temps, cnn_temps, grid_epochs, cnn_epochs, seeds = map(
        ints, (args.temps, args.long_temps, args.cnn_temps, args.epochs, args.cnn_epochs, args.seeds))
    students = [w if w == CNN else int(w) for w in args.widths.split(",")]
    gap_student = students[0] if args.quick else GAP_STUDENT
    name = "distillation_quick" if args.quick else "distillation"
    if args.teacher != TEACHER:
        name += "_" + args.teacher
    t_start, cpu_start = time.perf_counter(), time.process_time()

    data = _cache["data"] = ce.load_dataset("fashion-mnist")  # this process's runs use it too
    y_test = data.y("test")
    n = len(y_test)
    teacher_logits = zoo.cached_logits(args.teacher, data)  # {"train", "test"}: computed once, kept on disk
    t_err = int((teacher_logits["test"].argmax(1) != y_test).sum())
    card = ce.model_card(args.teacher)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); teacher {args.teacher}: {t_err} errors, "
          f"{card['parameters']:,} parameters; KD alpha={args.alpha}, lr={LR}, seeds {seeds}", flush=True)

    runs = [{"study": "teacher", "student": args.teacher, "params": card["parameters"],
             "bytes": card["dense_bytes"], "transfer": "", "T": "", "alpha": "", "epochs": card["training"]["epochs"],
             "seed": card["training"]["seed"], "test_errors": t_err, "accuracy": f"{100 * (1 - t_err / n):.2f}",
             "cpu_seconds": card["training"].get("cpu_seconds", "")}]

    # every finished run is appended here, so a stopped run (a shared machine) resumes where it was
    done_path = OUT / f"{name}_runs.tmp"
    done = {}
    if done_path.is_file() and not args.fresh:
        for line in done_path.read_text().splitlines():
            row = json.loads(line)
            done[row.pop("key")] = row

    # --- the jobs: 1. the grid; 2. the gap study (the 800-800 student on a jittered transfer set) ----------------
    jobs = []  # (key, args of train_one)
    jitter_path = OUT / f"{name}_jitter.tmp"  # the teacher's answers on a jittered copy of every training image

    def job(study, s, T, seed, epochs, transfer="train"):
        alpha = 0.0 if T is None else args.alpha
        key = json.dumps([args.teacher, study, label(s), transfer, T, alpha, epochs, seed, LR])
        if key not in (k for k, _ in jobs):
            jobs.append((key, (args.teacher, study, s, T, alpha, seed, epochs, transfer, str(jitter_path))))
        return key

    grid_keys = []  # (student, epochs, {T: [keys over seeds]})
    for epochs in [] if args.no_grid else grid_epochs:
        for s in students:
            if s == CNN and epochs not in cnn_epochs:
                continue
            ts = cnn_temps if s == CNN else long_temps if epochs == max(grid_epochs) > min(grid_epochs) else temps
            grid_keys.append((s, epochs, {T: [job("grid", s, T, seed, epochs) for seed in seeds]
                                          for T in [None, *ts]}))
    gap_keys = []  # (student, transfer, epochs, {T: [key]})
    if not args.no_gap:
        s, seed = gap_student, seeds[0]
        transfer, epochs = JITTER, max(1, max(grid_epochs) // 2)  # the steps of the longest grid run
        gap_keys.append((s, transfer, epochs, {T: [job("gap", s, T, seed, epochs, transfer)] for T in (None, 1)}))
        if not jitter_path.is_file() and any(k not in done for k, _ in jobs if JITTER in k):
            torch.save(logits(ce.load_model(args.teacher), jittered(data.x("train"))), jitter_path)
        if not args.quick:  # function matching, and longer training
            passes = max(1, max(grid_epochs) // (1 + MIX_VIEWS))  # the longest grid run's steps: 20 epochs = 4 x 5
            gap_keys.append((s, MIXUP, passes, {None: [job("grid", s, None, seed, max(grid_epochs))],
                                                1: [job("gap", s, 1, seed, passes, MIXUP)]}))
            for w in LONG_STUDENTS:
                gap_keys.append((w, "train", LONG, {T: [job("gap", w, T, seed, LONG)] for T in (None, 1)}))
        path = mixup_path(jitter_path)
        if not path.is_file() and any(k not in done for k, _ in jobs if MIXUP in k):
            teacher = ce.load_model(args.teacher)
            torch.save(torch.cat([logits(teacher, v) for v in mixup_views(data.x("train"))]), path)

    todo = [(k, a) for k, a in jobs if k not in done]
    print(f"{len(jobs)} runs, {len(jobs) - len(todo)} already finished (in {done_path.name})"
          + (f"; {args.workers} at a time on Ray" if args.workers else "")
          + (f"; on the Ray cluster at {args.ray_address}" if args.ray_address else ""), flush=True)

    def finished(i, row):
        key = todo[i][0]
        done[key] = row
        with open(done_path, "a") as f:
            f.write(json.dumps({"key": key, **row}) + "\n")
        print(f"  {row['study']} {row['student']} {row['transfer']} T={row['T'] or '-'} alpha={row['alpha']} "
              f"{row['epochs']} ep seed {row['seed']}: {row['test_errors']} errors ({row['cpu_seconds']:.0f} CPU s)",
              flush=True)

    map_jobs(train_one, [a for _, a in todo], workers=args.workers, ray_address=args.ray_address,
             threads=args.threads, on_result=finished)
    runs += [done[k] for k, _ in jobs]

    grid, gains = [], []
    for s, epochs, keys in grid_keys:
        errs = {T: [done[k]["test_errors"] for k in ks] for T, ks in keys.items()}
        row = done[keys[None][0]]
        for T, e in errs.items():
            grid.append({"teacher": args.teacher, "student": label(s), "params": row["params"],
                         "bytes": row["bytes"], "T": T or "", "alpha": args.alpha if T else 0.0, "epochs": epochs,
                         "seeds": " ".join(map(str, seeds)), "errors_mean": round(statistics.mean(e), 1),
                         "errors_min": min(e), "errors_max": max(e), "teacher_errors": t_err})
        gains.append(gain_row("grid", args.teacher, label(s), "train", epochs, errs, t_err))
    for s, transfer, epochs, keys in gap_keys:
        errs = {T: [done[k]["test_errors"] for k in ks] for T, ks in keys.items()}
        gains.append(gain_row("gap", args.teacher, label(s), transfer, epochs, errs, t_err))

    table(f"Knowledge distillation from {args.teacher} on Fashion-MNIST: every run (test errors out of {n:,})",
          runs, name)
    if grid:
        table(f"The grid: test errors over seeds {seeds} (mean, min, max); KD alpha = {args.alpha}, T empty = labels "
              "only", grid, f"{name}_grid")
    if gains:
        table("KD against labels only (best T by mean errors): test errors 'mean ± half range' over seeds; gap closed "
              f"of (labels-only - teacher {t_err}); paper, MNIST 800-800: 146 -> 74 with teacher 67 = 91 %", gains,
              f"{name}_gain")
    print(f"\n{time.perf_counter() - t_start:,.0f} s wall, {time.process_time() - cpu_start:,.0f} CPU s "
          "(runs resumed from an earlier process not counted)")


def gain_row(study, teacher, student, transfer, epochs, errs, t_err):
    """Labels only vs the best T: mean ± half range, errors saved, share of the gap closed, beyond seed noise? And
    paired by seed (a KD run and its labels-only twin share their initial weights and batch order): the errors
    each seed's KD run saved, and whether it saved some in every seed."""
    labels = errs[None]
    best = min((T for T in errs if T is not None), key=lambda T: statistics.mean(errs[T]))
    kd = errs[best]
    saved = statistics.mean(labels) - statistics.mean(kd)
    closed = explain.gap_closed(statistics.mean(labels), statistics.mean(kd), t_err)
    return {"study": study, "teacher": teacher, "student": student, "transfer": transfer, "epochs": epochs,
            "seeds": len(labels),
            "labels_errors": spread(labels), "best_T": best, "kd_errors": spread(kd), "saved": round(saved, 1),
            "gap_closed_%": "" if closed is None else f"{100 * closed:.0f}",
            "beyond_seed_noise": (max(kd) < min(labels)) if len(labels) > 1 else "",
            "paired_saved": spread([a - b for a, b in zip(labels, kd)]) if len(labels) > 1 else "",
            "saved_in_every_seed": all(a > b for a, b in zip(labels, kd)) if len(labels) > 1 else ""}


if __name__ == "__main__":
    main()
