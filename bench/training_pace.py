"""What made the training pool's fine-tuning job slow on 2 cores, measured one cause at a time (issue 12's fine-tune
switch: goals 3 s on LeNet-300-100, 10 s on LeNet-5; bench/latency.py --finetune 1 times the switch itself).

    python bench/training_pace.py                 # sections 1-3, about 2 minutes
    python bench/training_pace.py --only 4        # 4 needs Chromium (apt install chromium)
    python bench/training_pace.py --only 5        # about 4 minutes (ResNet-8's fine-tunes)

  1. the pruning mask: one fine-tuning epoch (80 % global, 1 thread) with the mask held by prune.Masked's
     parametrization (a where() in every forward and backward pass) and by prune.held_at_zero (the gradient masked);
  2. idle OpenMP workers: a 2-thread LeNet-5 training step in a new thread, while another thread's idle libgomp
     worker is alive (more OpenMP threads than cores: libgomp stops spinning) and after jobs.release_threads gave
     it back;
  3. thread count and precision: one fine-tuning job (80 % global, 1 epoch) in a training-pool worker, on 1 and 2
     threads, in float32 and bfloat16 mixed precision (where the CPU has AMX), with the test accuracy after it;
  4. the browser beside a job: headless Chromium's CPU while a page run redraws a progress bar 5 times a second
     and once a second (the followed job's bar, pages/common.PROGRESS_EVERY), and while it only waits;
  5. the result's evaluation after a fine-tune (80 % global, 1 epoch, 2 threads, the dashboard's precision): compress()
     evaluating the fine-tuned weights again, as it did, against reusing the last epoch's evaluation of them
     (pipeline.Context.answers_of), in turns; ResNet-8 once each (a run takes about a minute), at the Pruning page's
     start for a ResNet (40 % per layer: 80 % global leaves it at 31 % after an epoch).
Times are medians of repeated runs in one process after a warm-up run.
"""

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time

import torch
import torch.nn.functional as F

from report import ROOT, median_time, table
import compress_engine as ce
from compress_engine.core import pipeline, prune, train
from compress_engine.core.model import constrained
from compress_engine.playground import jobs
from compress_engine.playground.zoo import LeNet5

MODELS = ("lenet-300-100", "lenet-5")
RECIPE = dict(sparsity=0.8, prune_scope="global")
RESNET = dict(sparsity=0.4, prune_scope="layer")  # the Pruning page's start for a ResNet (pages/common.ARCH_STARTS)


def pruned(name):
    """The sample model `name`, pruned 80 % global, and its masks."""
    model = ce.load_model(name)
    masks = prune.model_masks(model, RECIPE["sparsity"], RECIPE["prune_scope"])
    prune.apply_masks(model, masks)
    return model, masks


def mask_rows(data, reps):
    rows = []
    torch.set_num_threads(1)
    for name in MODELS:
        row = {"model": name}
        for how in ("Masked (where)", "held_at_zero (gradient)"):
            def epoch():
                model, masks = pruned(name)
                if how.startswith("Masked"):
                    with constrained(model, {n: prune.Masked(m) for n, m in masks.items()}):
                        train.fit(model, data, epochs=1, lr=5e-4)
                else:
                    with prune.held_at_zero(model, masks):
                        train.fit(model, data, epochs=1, lr=5e-4)
            row[f"epoch_s, {how}"] = median_time(epoch, reps)
        rows.append(row)
    torch.set_num_threads(THREADS)
    return rows


def step_ms(steps=100):
    """Mean ms of a LeNet-5 training step (batch 128, channels-last, fused Adam) on 2 threads, in the
    calling thread."""
    torch.set_num_threads(2)
    model = LeNet5().to(memory_format=torch.channels_last)
    x = torch.randn(128, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (128,))
    opt = torch.optim.Adam(model.parameters(), fused=True)

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    for _ in range(10):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return 1000 * (time.perf_counter() - t) / steps


def in_thread(fn):
    out = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]


def worker_rows(reps):
    rows = []
    for _ in range(reps):
        torch.set_num_threads(2)
        torch.ones(512, 512) @ torch.ones(512, 512)  # this (main) thread now holds an idle OpenMP worker
        alive = in_thread(step_ms)
        released = jobs.release_threads()
        alone = in_thread(step_ms)
        rows.append((alive, alone, released))
    alive, alone = (statistics.median(r[i] for r in rows) for i in (0, 1))
    return [{"2-thread LeNet-5 step, another thread's idle worker alive (ms)": alive,
             "after release_threads gave it back (ms)": alone, "released": rows[0][2],
             "OpenMP threads vs cores": f"3 vs {os.cpu_count()} -> 2 vs {os.cpu_count()}"}]


def pool_rows(data):
    rows = []
    precisions = train.PRECISIONS if ce.native_bfloat16() else ("float32",)
    for name in MODELS:
        model = ce.load_model(name)
        for precision in precisions:
            for threads in (1, 2):
                recipe = ce.Recipe(**RECIPE, finetune_epochs=1, precision=precision)

                def work(progress):
                    t = time.perf_counter()
                    res = ce.compress(model, recipe, data, progress=progress, warn_collapse=False)
                    return time.perf_counter() - t, res.metrics["accuracy"]
                jobs.release_threads()  # no idle worker of this thread in the way
                seconds, accuracy = jobs.Pool(workers=1, threads=threads).submit((name, precision, threads),
                                                                                  work).result(900)
                rows.append({"model": name, "precision": precision, "threads": threads, "job_s": seconds,
                             "test accuracy": accuracy})
    return rows


APP = '''
import time, streamlit as st
every = {every}
st.button("go")
bar = st.progress(0.0, text="x")
t0, i = time.time(), 0
while time.time() - t0 < 40:
    time.sleep(0.2); i += 1
    if every and i % every == 0:
        bar.progress(min(1.0, i / 200), text=f"step {{i}}")
'''


def browser_rows():
    sys.path.insert(0, str(ROOT / "bench"))
    from chromium import app_server, have_chromium, launch
    from playwright.sync_api import sync_playwright
    if not have_chromium():
        raise SystemExit("section 4 needs Chromium: apt-get install chromium")

    def cpu(pids):
        total = 0
        for pid in pids:
            try:
                fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            except OSError:
                pass
        return total / os.sysconf("SC_CLK_TCK")
    rows = []
    for label, every in (("page run waiting, nothing redrawn", 0), ("bar redrawn 5 times a second", 1),
                         ("bar redrawn once a second", 5)):
        with app_server(APP.format(every=every), settings=ROOT) as (url, _), sync_playwright() as pw:
            browser = launch(pw)
            page = browser.new_page()
            page.goto(url)
            page.wait_for_selector("text=go")
            time.sleep(5)
            pids = subprocess.run(["pgrep", "chromium"], capture_output=True, text=True).stdout.split()
            before = cpu(pids)
            time.sleep(10)
            rows.append({"page": label, "Chromium CPU (cores)": (cpu(pids) - before) / 10})
            browser.close()
    return rows


def final_rows(data, reps):
    precision = "bfloat16" if ce.native_bfloat16() else "float32"
    answers_of = pipeline.Context.answers_of
    rows = []
    torch.set_num_threads(2)
    for name in MODELS + ("resnet-8",):
        model = ce.load_model(name)
        ce.reference(model, data)  # the dense model's evaluation, cached before either is timed
        recipe = ce.Recipe(**(RESNET if name == "resnet-8" else RECIPE), finetune_epochs=1, precision=precision)
        runs = {False: [], True: []}
        for i in range(1 if name == "resnet-8" else reps + 1):  # the LeNets: a warm-up pair first
            for reuse in (False, True):
                pipeline.Context.answers_of = answers_of if reuse else (lambda self, m: None)
                try:
                    res = ce.compress(model, recipe, data, progress=lambda *a: None, warn_collapse=False)
                finally:
                    pipeline.Context.answers_of = answers_of
                if i or name == "resnet-8":
                    runs[reuse].append((res.timings["total"], res.timings["evaluate"], res.metrics["accuracy"]))
        again, kept = ([statistics.median(r[k] for r in runs[reuse]) for k in (0, 1)] for reuse in (False, True))
        same = {r[2] for r in runs[False] + runs[True]}
        rows.append({"model": name, "pruned": f"{recipe.sparsity:.0%} {recipe.prune_scope}",
                     "precision": precision, "runs": len(runs[True]),
                     "job s, evaluated again": again[0], "job s, answers reused": kept[0],
                     "result's evaluation s, again": again[1], "reused": kept[1],
                     "test accuracy": same.pop() if len(same) == 1 else f"differs: {sorted(same)}"})
    torch.set_num_threads(THREADS)
    return rows


THREADS = torch.get_num_threads()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="1,2,3", help="comma-separated section numbers to run (4: Chromium)")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    only = set(args.only.split(","))
    data = ce.load_dataset("fashion-mnist")
    train.prepare_training()  # a process's first optimizer imports torch._dynamo (0.9 s): not in the times below
    print(f"torch {torch.__version__}, {os.cpu_count()} cores, AMX bfloat16: {ce.native_bfloat16()}")
    if "1" in only:
        table("The pruning mask during fine-tuning: one epoch at 1 thread (80 % global)", mask_rows(data, args.repeats),
              "pace_mask")
    if "2" in only:
        table("Idle OpenMP workers: a 2-thread LeNet-5 training step in a new thread (batch 128)",
              worker_rows(max(3, args.repeats)), "pace_workers")
    if "3" in only:
        table("A fine-tuning job in a training-pool worker (80 % global, 1 epoch, with its evaluations): threads and "
              "precision", pool_rows(data), "pace_pool")
    if "4" in only:
        table("Headless Chromium's CPU beside a page run following a job (10 s)", browser_rows(), "pace_browser")
    if "5" in only:
        table("The result's evaluation after a fine-tune (1 epoch, 2 threads): evaluated again, or the "
              "last epoch's answers reused", final_rows(data, args.repeats), "pace_final")


if __name__ == "__main__":
    main()
