"""Sweeps on Ray: throughput with 1 and 2 workers here, Ray's overhead per point, and a simulated 1-64 worker curve.

    python bench/ray_scaling.py            # ~3-5 min on 2 cores
    python bench/ray_scaling.py --points 20 --repeats 1

1. Measured (this machine, a local Ray runtime of 2 CPUs): the 40-point post-training sweep of
   LeNet-300-100 (sparsity 0 to 0.975, 16 clusters; bench/speed.py's) in-process and on Ray with 1 and
   2 workers, every point on 1 torch thread, in interleaved rounds (the best round of each is kept: on a
   shared machine the load drifts between runs). Ray's start-up (ray.init, then the workers' first
   points: importing torch, loading the model and data) is timed apart; the timed sweeps run on warm
   workers. Every backend's rows are checked to be identical.
2. Overhead: a no-op Ray task's round trip (one in flight: submit, schedule, run, fetch), the cost per
   task with many in flight, the run store's write of one point (the driver does it, one at a time), and
   what Ray adds per point in the real sweep ((1-worker wall - in-process wall) / points).
3. Simulated: the same driver loop (at most `workers` points in flight; when one finishes the driver
   sends the next, then writes the result to the run store, one result at a time), replayed with point
   costs drawn from those measured here (the best in-process round's points, and three fine-tuned
   points), plus the measured per-task overhead and store write, for 1 to 64 workers and sweeps of 40
   and 400 points (median of 200 draws). It assumes a core per worker and no contention between
   workers: the ceiling that a cluster of idle machines approaches.

Writes bench/results/ray_scaling_measured.csv, ray_scaling_overhead.csv and ray_scaling_simulated.csv.
"""

import argparse
import heapq
import os
import random
import statistics
import tempfile
import time

import torch

from report import table  # also puts the repo on sys.path
import compress_engine as ce  # noqa: E402
from compress_engine.playground import sweeps  # noqa: E402
from compress_engine.playground.store import Store  # noqa: E402

MODEL, DATA = "lenet-300-100", "fashion-mnist"
BASE = ce.Recipe(clusters=16)
WORKERS = (1, 2, 4, 8, 16, 32, 64)
SIZES = (40, 400)
FINETUNED = (0.8, 0.9, 0.95)  # sparsities of the fine-tuned points whose cost is measured
DRAWS = 200


def noop():
    return None


def simulate(costs, workers, n, overhead, write, rng):
    """Makespan of sweeps.sweep's Ray loop: `workers` points in flight, each a drawn cost + overhead on its own
    core; the driver takes finished points one at a time: it sends the next point, then writes (write s)."""
    draw = [rng.choice(costs) for _ in range(n)]
    running = []  # finish times of the points in flight
    for i in range(min(workers, n)):
        heapq.heappush(running, draw[i] + overhead)
    sent, driver = min(workers, n), 0.0
    while running:
        finish = heapq.heappop(running)
        driver = max(driver, finish)
        if sent < n:
            heapq.heappush(running, driver + draw[sent] + overhead)
            sent += 1
        driver += write
    return driver


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=int, default=40, help="points of the measured sweep (default 40)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds of the measured sweeps (best kept)")
    args = ap.parse_args()
    import ray
    values = [round(0.975 * i / (args.points - 1), 4) for i in range(args.points)]
    cores = os.cpu_count()
    load = os.getloadavg()[0]
    print(f"torch {torch.__version__}, ray {ray.__version__}, {cores} cores, load average {load:.1f} at the start; "
          f"{args.points}-point sweep of {MODEL} (sparsity 0-0.975, 16 clusters), 1 torch thread per point", flush=True)

    # --- fine-tuned points (1 epoch): a second, longer kind of point for the simulation ----------------------------
    model, data = ce.load_model(MODEL), ce.load_dataset(DATA)
    tuned = []
    for v in FINETUNED:
        t = time.perf_counter()
        sweeps.run_point(model, data, BASE.replace(sparsity=v, finetune_epochs=1), 1)
        tuned.append(time.perf_counter() - t)
    print(f"  fine-tuned points (1 epoch): {', '.join(f'{c:.2f}' for c in tuned)} s", flush=True)

    # --- Ray: start-up, then in-process / 1 worker / 2 workers in interleaved rounds ------------------------------
    t = time.perf_counter()
    sweeps.start_local(2)
    init = time.perf_counter() - t
    t = time.perf_counter()
    sweeps.sweep(MODEL, BASE, DATA, "sparsity", values[:2], workers=2, threads=1)  # each worker: torch, model, data
    warm = time.perf_counter() - t
    walls, rows, costs = {}, {}, None
    kinds = {"in-process": {}, "ray, 1 worker": {"workers": 1}, "ray, 2 workers": {"workers": 2}}
    for r in range(args.repeats):
        for label, kw in kinds.items():
            stamps = []  # in-process, the time each point ends: their differences are the points' costs
            t = time.perf_counter()
            rows[label] = sweeps.sweep(MODEL, BASE, DATA, "sparsity", values, threads=1,
                                       progress=lambda *_: stamps.append(time.perf_counter()), **kw)
            sec = time.perf_counter() - t
            if sec < walls.get(label, (float("inf"),))[0]:
                walls[label] = (sec,)
                if not kw:  # the best in-process round's point costs (the first also holds the dense reference)
                    costs = [b - a for a, b in zip(stamps, stamps[1:])]
            print(f"  round {r + 1}, {label}: {sec:.2f} s", flush=True)
    assert rows["ray, 1 worker"] == rows["ray, 2 workers"] == rows["in-process"], "Ray rows differ from in-process"

    # --- overhead --------------------------------------------------------------------------------------------
    task = ray.remote(noop).options(num_cpus=1)
    ray.get(task.remote())
    trips = []
    for _ in range(100):
        t = time.perf_counter()
        ray.get(task.remote())
        trips.append(time.perf_counter() - t)
    t = time.perf_counter()
    ray.get([task.remote() for _ in range(1000)])
    many = (time.perf_counter() - t) / 1000
    ray.shutdown()
    with tempfile.TemporaryDirectory() as tmp:  # the driver's write of one point into a fresh store
        store = Store(os.path.join(tmp, "runs.sqlite"))
        res = ce.compress(model, BASE.replace(sparsity=0.9), data)
        group = store.sweep_group("g", MODEL, DATA, "sparsity", BASE)
        writes = []
        for i in range(50):
            t = time.perf_counter()
            store.save(MODEL, BASE.replace(sparsity=0.9), res.metrics, res.artifact, sweep=group, data=DATA,
                       point_key=f"k{i}")
            writes.append(time.perf_counter() - t)
    trip, write = statistics.median(trips), statistics.median(writes)
    n = len(values)
    base = walls["in-process"][0]
    per_point = (walls["ray, 1 worker"][0] - base) / n

    measured = [{"backend": "in-process", "workers": 1, "points": n, "wall_s": round(base, 2),
                 "points_per_s": round(n / base, 2), "speedup": 1.0}]
    for w in (1, 2):
        sec = walls[f"ray, {w} worker{'s' * (w > 1)}"][0]
        measured.append({"backend": "ray (warm)", "workers": w, "points": n, "wall_s": round(sec, 2),
                         "points_per_s": round(n / sec, 2), "speedup": round(base / sec, 2)})
    table(f"Measured here: {n}-point sweep, 1 torch thread per point, best of {args.repeats} interleaved rounds "
          f"(rows identical in all three); Ray start-up apart: ray.init {init:.1f} s, first 2 points on fresh "
          f"workers {warm:.1f} s; load average {load:.1f} -> {os.getloadavg()[0]:.1f} (shared machine)", measured,
          "ray_scaling_measured")

    overhead = [
        {"what": "point cost in-process (median; min-max)", "ms": round(1000 * statistics.median(costs), 1),
         "note": f"{1000 * min(costs):.0f}-{1000 * max(costs):.0f} ms, stdev {1000 * statistics.stdev(costs):.0f} ms "
                 "(the best in-process round)"},
        {"what": "fine-tuned point in-process (1 epoch, median)", "ms": round(1000 * statistics.median(tuned)),
         "note": f"{len(tuned)} points, {1000 * min(tuned):.0f}-{1000 * max(tuned):.0f} ms"},
        {"what": "no-op Ray task, round trip, 1 in flight (median)", "ms": round(1000 * trip, 2),
         "note": f"p90 {1000 * sorted(trips)[89]:.2f} ms"},
        {"what": "no-op Ray task, 1000 in flight, per task", "ms": round(1000 * many, 2), "note": "throughput bound"},
        {"what": "run store write of one point by the driver (median)", "ms": round(1000 * write, 2),
         "note": f"{len(res.artifact):,} B artifact + metrics, one transaction"},
        {"what": "Ray's cost per point in the sweep, 1 worker", "ms": round(1000 * per_point, 1),
         "note": "(ray 1-worker wall - in-process wall) / points: scheduling, shipping metrics and the artifact"
                 + ("; below 0: the machine's load drift is larger than Ray's cost" if per_point < 0 else "")},
    ]
    table("Ray's overhead per point (local runtime)", overhead, "ray_scaling_overhead")

    # --- simulated ----------------------------------------------------------------------------------------------
    rng = random.Random(0)
    over = max(trip, per_point)  # what a point costs on Ray beyond its compute, as measured here (at least a trip)
    sim = []
    for kind, pool, sizes, wr in (("post-training", costs, SIZES, write),
                                  ("post-training, no store", costs, SIZES[1:], 0.0),
                                  ("fine-tuned 1 epoch", tuned, SIZES[1:], write)):
        for size in sizes:
            one = statistics.median(simulate(pool, 1, size, over, wr, rng) for _ in range(DRAWS))
            for w in WORKERS:
                spans = sorted(simulate(pool, w, size, over, wr, rng) for _ in range(DRAWS))
                span = statistics.median(spans)
                sim.append({"points": f"{size} {kind}", "workers": w, "makespan_s": round(span, 2),
                            "p90_s": round(spans[int(0.9 * DRAWS)], 2), "points_per_s": round(size / span, 1),
                            "speedup": round(one / span, 1), "efficiency_%": round(100 * one / span / w)})
    for w in (1, 2):  # the model against the measurement
        got = walls[f"ray, {w} worker{'s' * (w > 1)}"][0]
        model_s = statistics.median(simulate(costs, w, n, over, 0.0, rng) for _ in range(DRAWS))  # no store there
        print(f"check: {w} worker(s), {n} points: simulated {model_s:.2f} s, measured {got:.2f} s")
    table(f"Simulated: point costs drawn from the {len(costs)} measured post-training points (median "
          f"{1000 * statistics.median(costs):.0f} ms) or the {len(tuned)} fine-tuned ones, "
          f"+ {1000 * over:.1f} ms Ray overhead per point, driver writes {1000 * write:.1f} ms each (--store); one "
          f"idle core per worker; start-up ({init + warm:.0f} s here) not included", sim, "ray_scaling_simulated")


if __name__ == "__main__":
    main()
