"""Engine speed against the targets in README.md's Speed section: recipes, evaluation GFLOP/s, clustering vs
scikit-learn, a sweep.

    python bench/speed.py             # ~4 min on 2 idle cores; run it with nothing else busy
    python bench/speed.py --quick     # fewer repeats and no scikit-learn n_init=10
    python bench/speed.py --only 6,7  # some of the sections below

Tables (each also written to bench/results/speed_*.csv):
  1. this machine's torch.matmul peak (float32, all threads), the yardstick for evaluation;
  2. evaluation of each sample model on the 10,000 test images: seconds, GFLOP/s, % of the peak;
     for LeNet-5 also the variants that explain its number (layout, batch size, threads, op order)
     and a per-operation breakdown;
  3. post-training recipe (prune 90 % + 16 clusters, no fine-tuning) applied + evaluated;
  4. weight clustering against scikit-learn KMeans on the same weights (time and inertia);
  5. a 40-point post-training sparsity sweep of LeNet-300-100;
  6. subnormal weights: each sample model evaluated as shipped now, and with as many of its
     smallest weights made subnormal as the checkpoints held before they were flushed;
  7. dense float32 against int8 (torch.ao dynamic quantization) latency, same batch, same process;
  8. tiny weights (normal, but below 2^-63, so their products are subnormal): each sample model evaluated,
     and trained for a few Adam steps at 1 thread, as shipped now and as shipped before they were flushed
     (the checkpoints of commit PRE_FLUSH, read with git);
  9. fit()'s flush of tiny weights: one epoch of the Distillation page's default student (a 784-100-100-10 MLP)
     at 1 thread, flushing after every optimizer step (as fit() did) and every train.FLUSH_EVERY steps (as now);
 10. one fine-tuning epoch of each sample model at the training pool's 1 thread (in float32, and where the CPU has
     AMX in bfloat16 mixed precision, as the dashboard then trains), against one evaluation of the test set: the
     ratio the pages use to say how long fine-tuning a model will take;
 11. fit() in float32 and bfloat16 mixed precision on the Distillation page's 100-100 and 800-800 MLP students.
Times are medians of repeated runs in one process after a warm-up run.
"""

import argparse
import copy
import subprocess
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from report import ROOT, median_time, table
import compress_engine as ce
from compress_engine.core import cluster, train
from compress_engine.core.prune import compressible, magnitude_mask
from compress_engine.core.quantize import int8_latency
from compress_engine.core.train import fast_eval_copy, logits, tiny_limit

TARGET_S = {"lenet-300-100": 0.15, "lenet-5": 0.6}
# subnormal weights the checkpoints held before they were flushed (commit "Subnormal weights ...")
SHIPPED_SUBNORMALS = {"lenet-300-100": 17_779, "lenet-5": 76_884, "teacher-1200-1200": 185_181}
# weights in (2^-126, 2^-63) they still held after that, until train.flush_tiny_ took them too (commit "Weights below
# 2^-63 ...": flushing them changed no logit of the 10,000 test images by a single bit)
SHIPPED_TINY = {"lenet-300-100": 23_214, "lenet-5": 30_612, "teacher-1200-1200": 432_499}
PRE_FLUSH = "56408ec"  # the last commit whose checkpoints held them


@torch.no_grad()
def with_subnormals(model, count):
    """A copy of `model` whose `count` smallest non-zero |weights| are replaced by subnormal values of
    the same sign (about 1e-39): what the checkpoints looked like before the flush."""
    m = copy.deepcopy(model)
    params = [p for p in m.parameters()]
    flat = torch.cat([p.flatten() for p in params])
    order = torch.argsort(flat.abs().masked_fill(flat == 0, float("inf")))[:count]
    flat[order] = torch.sign(flat[order]) * 1e-39
    torch.nn.utils.vector_to_parameters(flat, params)
    return m


def pre_flush(name):
    """Sample model `name` as shipped at PRE_FLUSH (read from git: its tiny weights unflushed), or None with
    why, when this is not a git checkout holding that commit."""
    from safetensors.torch import load
    from compress_engine.playground import zoo
    try:
        blob = subprocess.run(["git", "show", f"{PRE_FLUSH}:sample_models/{name}.safetensors"], cwd=ROOT,
                              capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        return None, f"git show {PRE_FLUSH}:sample_models/{name}.safetensors failed ({e})"
    return zoo.from_state_dict(zoo.model_card(name)["spec"], load(blob)).eval(), None


def adam_step_s(model, data, steps):
    """Seconds per Adam step (batch 128, lr 1e-5, weight decay 1e-4) of a copy of `model`, at the current thread
    count, without fit()'s flush (so tiny weights stay as they are)."""
    m = copy.deepcopy(model).train()
    opt = torch.optim.Adam(m.parameters(), lr=1e-5, weight_decay=1e-4)
    x, y = data.x("train"), data.y("train")
    gen = torch.Generator().manual_seed(0)

    def run(n):
        for _ in range(n):
            idx = torch.randint(0, len(y), (128,), generator=gen)
            loss = F.cross_entropy(m(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    run(3)
    return median_time(lambda: run(steps), 3) / steps


def tiny_rows(data, reps):
    rows = []
    threads = torch.get_num_threads()
    for name, count in SHIPPED_TINY.items():
        model, x = ce.load_model(name), data.x("test")
        dirty, why = pre_flush(name)
        if dirty is None:
            print(f"section 8 skipped: {why}; it needs a git clone with history")
            return []
        held = sum(int(((p != 0) & (p.abs() < tiny_limit(p.dtype))).sum()) for p in dirty.parameters())
        assert held == count, f"{name} at {PRE_FLUSH} holds {held:,} tiny weights, not {count:,}"
        row = {"model": name, "tiny_weights": count,
               "eval_with_s": median_time(lambda: logits(fast_eval_copy(dirty), x), reps),
               "eval_flushed_s": median_time(lambda: logits(fast_eval_copy(model), x), reps)}
        torch.set_num_threads(1)
        try:
            steps = 10 if name == "lenet-5" else 30
            row["step_with_ms"] = 1000 * adam_step_s(dirty, data, steps)
            row["step_flushed_ms"] = 1000 * adam_step_s(model, data, steps)
        finally:
            torch.set_num_threads(threads)
        row["eval_slowdown"] = row["eval_with_s"] / row["eval_flushed_s"]
        row["step_slowdown"] = row["step_with_ms"] / row["step_flushed_ms"]
        rows.append(row)
    return rows


def flush_rows(data, reps):
    """Seconds per training epoch of a 100-100 MLP at 1 thread, for each flush cadence of fit()."""
    from compress_engine.core import train
    from compress_engine.core.model import student_mlp
    rows, threads, cadence = [], torch.get_num_threads(), train.FLUSH_EVERY
    torch.set_num_threads(1)
    try:
        for every in (1, cadence):
            train.FLUSH_EVERY = every
            seconds = median_time(lambda: train.fit(student_mlp(100, data), data, epochs=1), max(2, reps // 3))
            rows.append({"flush every (steps)": every, "epoch_s": seconds})
    finally:
        train.FLUSH_EVERY = cadence
        torch.set_num_threads(threads)
    for r in rows:
        r["vs every step"] = r["epoch_s"] / rows[0]["epoch_s"]
    return rows


def epoch_rows(data, names):
    """One fine-tuning epoch (the Pruning page's "Fine-tune 1 epoch": 50 % per layer, then 1 epoch with the mask held)
    at the training pool's 1 thread, against one evaluation of the test set at all threads (what the page measures
    anyway): their ratio is what the pages multiply a model's evaluation time by to say how long an epoch takes."""
    rows, threads = [], torch.get_num_threads()
    t = time.perf_counter()
    getattr(train, "adam", torch.optim.Adam)([torch.zeros(1, requires_grad=True)], lr=1e-3)  # imports torch._dynamo
    print(f"(a process's first optimizer took {time.perf_counter() - t:.2f} s, once: not in the epochs below)")
    for name in names:
        model = ce.load_model(name)
        work = fast_eval_copy(model)
        logits(work, data.x("test")[:256])
        eval_s = median_time(lambda: logits(work, data.x("test")), 3)
        row = {"model": name, f"evaluation_s ({threads} threads)": eval_s}
        for precision in train.PRECISIONS if ce.native_bfloat16() else ("float32",):
            torch.set_num_threads(1)
            try:
                t = time.perf_counter()
                ce.compress(model, ce.Recipe(sparsity=0.5, finetune_epochs=1, precision=precision), data,
                            evaluate=False)
                tuned = time.perf_counter() - t
                t = time.perf_counter()
                ce.compress(model, ce.Recipe(sparsity=0.5), data, evaluate=False)
                epoch_s = tuned - (time.perf_counter() - t)
            finally:
                torch.set_num_threads(threads)
            row[f"epoch_s ({precision}, 1 thread)"] = epoch_s
            row[f"{precision} epoch / evaluation"] = epoch_s / eval_s
        rows.append(row)
    return rows


def precision_rows(data, reps):
    """One epoch of the Distillation page's MLP students (fit(), batch 128, 1 thread), in float32 and in bfloat16
    mixed precision: seconds (median) and test accuracy after it."""
    from compress_engine.core.model import student_mlp
    rows, threads = [], torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for width in (100, 800):
            row = {"student": f"{width}-{width} MLP"}
            for precision in train.PRECISIONS:
                def one():
                    torch.manual_seed(0)
                    model = student_mlp(width, data)
                    train.fit(model, data, epochs=1, precision=precision)
                    return model
                row[f"epoch_s ({precision})"] = median_time(one, max(2, reps // 3))
                row[f"accuracy ({precision})"] = train.accuracy(one(), data.x("test"), data.y("test"))
            rows.append(row)
    finally:
        torch.set_num_threads(threads)
    return rows


def subnormal_rows(data, reps):
    rows = []
    for name, count in SHIPPED_SUBNORMALS.items():
        model = ce.load_model(name)
        x = data.x("test")
        clean = median_time(lambda: logits(fast_eval_copy(model), x), reps)
        dirty_model = fast_eval_copy(with_subnormals(model, count))
        dirty = median_time(lambda: logits(dirty_model, x), max(1, reps // 3))
        rows.append({"model": name, "subnormal_weights": count, "with_subnormals_s": dirty,
                     "flushed_s": clean, "slowdown": dirty / clean})
    return rows


def int8_rows(data, reps):
    """Dense float32 vs int8 dynamic quantization, one batch of 256 test images, timed in turns (int8_latency); the
    spread is the lower and upper quartiles of the turns' own speed-ups."""
    rows = []
    for name in (*SHIPPED_SUBNORMALS, "resnet-8"):  # ResNet-8: one Linear, nine convolutions staying float32
        model = ce.load_model(name)
        batch = data.x("test")[:256]
        if any(isinstance(m, nn.Conv2d) for m in model.modules()):
            batch = batch.contiguous(memory_format=torch.channels_last)
        r = int8_latency(model, batch, repeats=10 * reps)
        rows.append({"model": name, "batch": 256, "fp32_ms": r["fp32_ms"], "int8_ms": r["int8_ms"],
                     "int8_speedup": r["speedup"], "speedup_q1": r["speedup_spread"][0],
                     "speedup_q3": r["speedup_spread"][1], "repeats": r["repeats"], "int8_layers": len(r["int8_layers"]),
                     "fp32_layers": len(r["fp32_layers"])})
    return rows


def matmul_peak(n=2048, repeats=10):
    a, b = torch.randn(n, n), torch.randn(n, n)
    sec = median_time(lambda: torch.matmul(a, b), repeats)
    return 2 * n ** 3 / sec / 1e9


def flops_per_image(model):
    """Multiply-adds x 2 of one forward pass (conv and linear layers; activations and pools not counted)."""
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, nn.Linear):
            total += 2 * mod.in_features * mod.out_features
        elif isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
            total += 2 * k * out[0].numel()
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    with torch.inference_mode():
        model(torch.zeros(1, 1, 28, 28))
    for h in handles:
        h.remove()
    return total


@torch.inference_mode()
def forward_all(model, x, batch, channels_last):
    """Like train.logits, with the layout and batch size as knobs (for the variants table)."""
    for i in range(0, len(x), batch):
        xb = x[i:i + batch]
        model(xb.contiguous(memory_format=torch.channels_last) if channels_last else xb.contiguous())


def eval_row(label, model, x, peak, repeats, batch=None, channels_last=None):
    """Seconds and GFLOP/s of evaluating all of x: the engine's own logits(), or a variant of it."""
    if batch is None:
        run = lambda: logits(model, x)
    else:
        run = lambda: forward_all(model, x, batch, channels_last)
    sec = median_time(run, repeats)
    gflops = flops_per_image(model) * len(x) / 1e9
    return {"model / variant": label, "seconds": sec, "GFLOP": gflops, "GFLOP/s": gflops / sec,
            "%_of_matmul_peak": 100 * gflops / sec / peak}


class ReluFirst(nn.Module):
    """LeNet-5 as it was first written, ReLU before max-pool (the engine now pools first: same outputs)."""

    def __init__(self, m):
        super().__init__()
        self.conv1, self.conv2, self.fc1, self.fc2 = m.conv1, m.conv2, m.fc1, m.fc2

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def lenet5_ops(m, x, batch, repeats):
    """Per-operation seconds over the whole test set (batches of `batch`, channels-last)."""
    ops = [("conv1", m.conv1), ("pool1", lambda t: F.max_pool2d(t, 2)), ("relu1", F.relu),
           ("conv2", m.conv2), ("pool2", lambda t: F.max_pool2d(t, 2)), ("relu2", F.relu),
           ("flatten", lambda t: t.flatten(1)), ("fc1", m.fc1), ("relu3", F.relu), ("fc2", m.fc2)]
    flop = {"conv1": 2 * 25 * m.conv1.out_channels * 24 * 24,
            "conv2": 2 * 25 * m.conv1.out_channels * m.conv2.out_channels * 8 * 8,
            "fc1": 2 * m.fc1.in_features * m.fc1.out_features, "fc2": 2 * m.fc2.in_features * m.fc2.out_features}
    batches = [x[i:i + batch].contiguous(memory_format=torch.channels_last) for i in range(0, len(x), batch)]
    rows, inputs = [], batches
    with torch.inference_mode():
        for name, op in ops:
            outs = []
            sec = median_time(lambda: outs.__setitem__(slice(None), [op(b) for b in inputs]), repeats)
            out_mb = sum(o.numel() for o in outs) * 4 / 1e6
            g = flop.get(name, 0) * len(x) / 1e9
            rows.append({"op": name, "ms": 1000 * sec, "output_MB": out_mb, "GFLOP": g,
                         "GFLOP/s": g / sec if g else "", "GB/s written": out_mb / 1e3 / sec})
            inputs = outs
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="1,2,3,4,5,6,7,8,9,10,11", help="comma-separated section numbers to run")
    args = ap.parse_args()
    only = set(args.only.split(","))
    reps = 3 if args.quick else 9
    data = ce.load_dataset("fashion-mnist")
    x = data.x("test")
    models = {name: ce.load_model(name) for name in ("lenet-300-100", "lenet-5")}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    if "6" in only:
        table("Subnormal weights: evaluation of the 10,000 test images, as shipped now (flushed) and with the "
              "subnormals the checkpoints held before", subnormal_rows(data, reps), "speed_subnormal")
    if "8" in only:
        table(f"Tiny weights (normal, below 2^-63): evaluation of the 10,000 test images ({torch.get_num_threads()} "
              "threads) and an Adam step (1 thread), as shipped now (flushed) and as shipped before, with them",
              tiny_rows(data, reps), "speed_tiny")
    if "9" in only:
        table("fit()'s flush of tiny weights: one epoch of a 784-100-100-10 MLP (batch 128, 1 thread)",
              flush_rows(data, reps), "speed_flush")
    if "10" in only:
        table("One fine-tuning epoch (1 thread, as the training pool runs it) against one evaluation of the test set",
              epoch_rows(data, ("lenet-300-100", "lenet-5", "resnet-8")), "speed_epoch")
    if "11" in only:
        table("fit() in float32 and in bfloat16 mixed precision: one epoch of the Distillation page's students "
              "(1 thread)", precision_rows(data, reps), "speed_precision")
    if "7" in only:
        table("Dense float32 vs int8 (torch.ao dynamic, Linear layers) latency, batch of 256, same process, in turns",
              int8_rows(data, reps), "speed_int8")
    if not only & {"1", "2", "3", "4", "5"}:
        return

    # 1-2. matmul peak and evaluation throughput
    peak = matmul_peak()
    table("torch.matmul peak (2048 x 2048 float32)", [{"threads": torch.get_num_threads(), "GFLOP/s": peak}],
          "speed_matmul")
    rows = [eval_row(name, fast_eval_copy(m), x, peak, reps) for name, m in models.items()]
    l5, fast = models["lenet-5"], fast_eval_copy(models["lenet-5"])
    plain = copy.deepcopy(l5).eval()
    rows += [eval_row("lenet-5, default layout (NCHW), batch 256", plain, x, peak, reps, 256, False)]
    rows += [eval_row(f"lenet-5, channels-last, batch {b}", fast, x, peak, reps, b, True) for b in (64, 1000, 10000)]
    rows.append(eval_row("lenet-5, ReLU before pool (as before), channels-last, batch 256", fast_eval_copy(ReluFirst(l5)),
                         x, peak, reps, 256, True))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows.append(eval_row("lenet-5, 1 thread", fast, x, peak, reps))
    torch.set_num_threads(threads)
    table("Evaluation of the 10,000 test images (FLOPs = 2 x multiply-adds of conv and linear layers)", rows,
          "speed_eval")
    table("LeNet-5 per operation, whole test set, channels-last, batches of 256",
          lenet5_ops(fast_eval_copy(l5), x, 256, reps), "speed_lenet5_ops")

    # 3. post-training recipe applied + evaluated
    recipe = ce.Recipe(sparsity=0.9, clusters=16)
    rows = []
    for name, model in models.items():
        out = {}
        sec = median_time(lambda: out.__setitem__("r", ce.compress(model, recipe, data)), reps)
        res = out["r"]
        rows.append({"model": name, "recipe": "prune 90% + 16 clusters", "median_s": sec, "target_s": TARGET_S[name],
                     "met": "yes" if sec <= TARGET_S[name] else "NO",
                     "stages_ms": " ".join(f"{k}={1000 * v:.0f}" for k, v in res.timings.items() if k != "total"),
                     "accuracy": res.metrics["accuracy"]})
    table("Post-training recipe applied and evaluated on 10,000 test images", rows, "speed_recipe")

    # 4. clustering vs scikit-learn on the same values
    from sklearn.cluster import KMeans
    w = torch.cat([p.detach().flatten() for p in compressible(models["lenet-300-100"]).values()])
    kept = w[magnitude_mask(w, 0.9)]
    rows = []
    for label, values in ((f"all {len(w):,} weights", w), (f"{len(kept):,} kept after 90% pruning", kept)):
        xs = values.double().numpy().reshape(-1, 1)
        for k in (4, 16, 64, 256):
            ours = {}
            t_ours = median_time(lambda: ours.update(zip("cl", cluster.kmeans_1d(values, k, "kmeans++", seed=0))), 5)
            row = {"values": label, "k": k, "ours_ms": 1000 * t_ours,
                   "ours_inertia": cluster.inertia(values, ours["c"], ours["l"])}
            for n_init in ((1,) if args.quick else (1, 10)):
                km = {}
                t_sk = median_time(lambda: km.update(m=KMeans(n_clusters=k, n_init=n_init, init="k-means++",
                                                              random_state=0).fit(xs)), 1 if n_init == 10 else 3)
                row[f"sk{n_init}_ms"] = 1000 * t_sk
                row[f"sk{n_init}_inertia/ours"] = float(km["m"].inertia_) / row["ours_inertia"]
                row[f"speedup_vs_sk{n_init}"] = t_sk / t_ours
            rows.append(row)
    table("Weight clustering: ours (k-means++ init, refined) vs scikit-learn KMeans "
          "(inertia/ours > 1: sklearn's clustering is worse)", rows, "speed_cluster")

    # 5. a 40-point sweep
    values = [round(i / 40, 3) for i in range(40)]
    base = ce.Recipe(clusters=16)
    sec = median_time(lambda: ce.sweep(models["lenet-300-100"], base, data, "sparsity", values,
                                             threads=torch.get_num_threads()), max(1, reps // 3))
    table("40-point post-training sweep (sparsity 0 to 0.975, 16 clusters), LeNet-300-100",
          [{"points": 40, "seconds": sec, "per_point_ms": 1000 * sec / 40, "target_s": 5.0,
            "met": "yes" if sec <= 5 else "NO"}], "speed_sweep")


if __name__ == "__main__":
    main()
