"""Concurrency: 8 browser-like sessions save runs into one SQLite run store as fast as they can.

    python bench/concurrency.py                  # 30 seconds, 8 sessions
    python bench/concurrency.py --seconds 5 --sessions 4

Each session is its own process (multiprocessing, spawn: nothing shared but the file). It saves
real-looking runs (a recipe, the metrics compress() reports for LeNet-300-100, a few-KB artifact),
and every 25 saves lists the store (as the Compare page does) and deletes one of its own runs. A save
counts as written once Store.save() has returned its id; the session remembers that id with the
SHA-256 of its artifact bytes. At the end the store is read back: every written, undeleted run must
be there with the same bytes (else it is lost or corrupt), and SQLite's integrity check must pass.

Prints one row per session and a total, and writes bench/results/concurrency.csv. "busy retries" are
the store's own retries (Store.busy_retries: SQLite said locked even after its busy_timeout wait); the
waiting SQLite does inside that timeout shows up as save latency instead.
"""

import argparse
import hashlib
import multiprocessing as mp
import os
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from report import table  # also puts this checkout on sys.path

import compress_engine as ce
from compress_engine.playground.store import Store, StoreError

LAYERS = (("layers.0.weight", [300, 784]), ("layers.0.bias", [300]), ("layers.1.weight", [100, 300]),
          ("layers.1.bias", [100]), ("layers.2.weight", [10, 100]), ("layers.2.bias", [10]))
EVERY = 25  # saves between a session's list + delete of one of its own runs


def fake_run(rng):
    """(recipe, metrics, artifact) shaped like a real LeNet-300-100 run; the artifact is 2-8 KB of random bytes."""
    sparsity = round(rng.uniform(0.5, 0.99), 2)
    sharing = rng.choice(["clusters", "bits", None])
    recipe = ce.Recipe(sparsity=sparsity, clusters=rng.choice([4, 16, 64]) if sharing == "clusters" else None,
                       bits=rng.choice([2, 4, 8]) if sharing == "bits" else None, huffman=rng.random() < 0.5,
                       seed=rng.randrange(1000))
    artifact = b"CPG1" + os.urandom(rng.randint(2_000, 8_000) - 4)
    layers = []
    for name, shape in LAYERS:
        n = shape[0] * (shape[1] if len(shape) > 1 else 1)
        kept = n if len(shape) == 1 else int(n * (1 - sparsity))
        layers.append({"name": name, "shape": shape, "params": n, "nonzero": kept,
                       "levels": recipe.clusters, "bytes": len(artifact) // len(LAYERS)})
    params = sum(r["params"] for r in layers)
    nonzero = sum(r["nonzero"] for r in layers)
    accuracy = round(rng.uniform(0.4, 0.9), 4)
    index = len(artifact) // 2
    metrics = {"params": params, "nonzero_params": nonzero, "dense_params": params, "sparsity": 1 - nonzero / params,
               "dense_bytes": 4 * params, "artifact_bytes": len(artifact), "ratio": 4 * params / len(artifact),
               "accuracy": accuracy, "dense_accuracy": 0.9013, "agreement": min(1.0, accuracy + 0.05),
               "bytes_breakdown": {"header": 300, "index": index, "codes": len(artifact) - 300 - index,
                                   "codebook": 0, "raw": 0},
               "layers": layers}
    return recipe, metrics, artifact


def session(path, n, seconds, barrier, results):
    """One browser session: save, save, save..., now and then list the store and delete one of its runs."""
    store, rng, name = Store(path), random.Random(n), f"session-{n}"
    written, deleted, latencies = {}, set(), []
    attempted = failed = listed = 0
    barrier.wait()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        recipe, metrics, artifact = fake_run(rng)
        attempted += 1
        t = time.perf_counter()
        try:
            run_id = store.save(name, recipe, metrics, artifact)
        except StoreError:  # e.g. locked for longer than the store waits: the session would show the error
            failed += 1
            continue
        latencies.append(time.perf_counter() - t)
        written[run_id] = hashlib.sha256(artifact).hexdigest()
        if len(written) % EVERY == 0:
            mine = [r["id"] for r in store.list() if r["model"] == name]
            listed += 1
            victim = rng.choice(mine)
            if store.delete([victim]) == 1:
                deleted.add(victim)
    results.put({"session": n, "attempted": attempted, "failed": failed, "written": written, "deleted": deleted,
                 "listed": listed, "latencies": latencies, "retries": store.busy_retries})


def check(path, reports):
    """Read the store back: per session, runs found, lost (written, not deleted, absent) and corrupt (other bytes)."""
    with sqlite3.connect(path) as conn:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        stored = {i: (model, None if art is None else hashlib.sha256(art).hexdigest())
                  for i, model, art in conn.execute("SELECT runs.id, model, artifact FROM runs "
                                                    "LEFT JOIN artifacts ON artifacts.run_id = runs.id")}
    rows = []
    for rep in sorted(reports, key=lambda r: r["session"]):
        name = f"session-{rep['session']}"
        expect = {i: h for i, h in rep["written"].items() if i not in rep["deleted"]}
        lat = sorted(rep["latencies"]) or [float("nan")]
        rows.append({
            "sessions": f"#{rep['session'] + 1}",
            "runs attempted": rep["attempted"],
            "runs written (acknowledged)": len(rep["written"]),
            "runs deleted": len(rep["deleted"]),
            "runs found in the store": sum(1 for model, _ in stored.values() if model == name),
            "runs lost": sum(1 for i in expect if i not in stored),
            "corrupt rows": sum(1 for i, h in expect.items() if i in stored and stored[i][1] != h),
            "save errors": rep["failed"],
            "busy retries": rep["retries"],
            "p50 save (ms)": 1000 * statistics.median(lat),
            "p99 save (ms)": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))],
            "_lat": lat,
        })
    return rows, integrity, len(stored)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="how long every session saves (default 30)")
    ap.add_argument("--sessions", type=int, default=8, help="concurrent sessions, one process each (default 8)")
    ap.add_argument("--store", type=Path, help="run store file to use (default: a new one in a temporary folder)")
    args = ap.parse_args()
    if not 0 < args.seconds <= 3600 or not 1 <= args.sessions <= 64:
        ap.error("--seconds must be in (0, 3600] and --sessions in 1..64")

    with tempfile.TemporaryDirectory() as tmp:
        path = str(args.store or Path(tmp) / "runs.sqlite")
        Store(path)  # create the schema once, before the race
        ctx = mp.get_context("spawn")
        barrier, results = ctx.Barrier(args.sessions), ctx.Queue()
        procs = [ctx.Process(target=session, args=(path, n, args.seconds, barrier, results))
                 for n in range(args.sessions)]
        for p in procs:
            p.start()
        reports = [results.get(timeout=args.seconds + 600) for _ in procs]
        for p in procs:
            p.join(60)
        rows, integrity, total = check(path, reports)
        size = os.path.getsize(path)

    lat = sorted(x for r in rows for x in r.pop("_lat"))
    rows.append({
        "sessions": f"all {args.sessions}",
        **{k: sum(r[k] for r in rows) for k in ("runs attempted", "runs written (acknowledged)", "runs deleted",
                                                 "runs found in the store", "runs lost", "corrupt rows",
                                                 "save errors", "busy retries")},
        "p50 save (ms)": 1000 * statistics.median(lat),
        "p99 save (ms)": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))],
    })
    table(f"{args.sessions} sessions saving runs into one SQLite store for {args.seconds:g} s "
          f"({os.cpu_count()} cores)", rows, "concurrency")
    all_ = rows[-1]
    print(f"\n{all_['runs written (acknowledged)'] / args.seconds:,.0f} saves/s in total; store file "
          f"{size / 2**20:,.1f} MB with {total:,} runs; PRAGMA integrity_check: {integrity}. "
          f"Found = written - deleted when nothing is lost.")


if __name__ == "__main__":
    main()
