"""What every benchmark shares: medians of repeated runs, and one table printed as Markdown + saved as CSV."""

import csv
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "results"
if str(ROOT) not in sys.path:  # so `python bench/x.py` imports the engine from this checkout
    sys.path.insert(0, str(ROOT))


def median_time(fn, repeats):
    """Median wall seconds of `repeats` calls of fn(), after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def fmt(v):
    return f"{v:,.4g}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)


def table(title, rows, name):
    """Print rows (dicts with the same keys) as a Markdown table and write bench/results/<name>.csv."""
    OUT.mkdir(exist_ok=True)
    cols = list(rows[0])
    with open(OUT / f"{name}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, cols)
        w.writeheader()
        w.writerows(rows)
    cells = [[fmt(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print(f"\n### {title}\n")
    print("| " + " | ".join(c.ljust(w) for c, w in zip(cols, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print("| " + " | ".join(v.rjust(w) for v, w in zip(row, widths)) + " |")
    sys.stdout.flush()


def time_rows(timed, data):
    """Fill in "ms / 256 images" and "speed-up" (against its base row) of each (row, model, base row) in `timed`:
    each model timed in turns with its base row's model by ce.speedup, as the dashboard times them (the median of 20
    forward passes each over 256 of the data's test images, both as deployed), and a base row's time the median of
    its pairings. Call it after all training, so nothing of the run works beside the timing."""
    import compress_engine as ce
    nets = {id(r): net for r, net, _ in timed}
    dense = {}
    for r, net, base in timed:
        if r is not base:
            t = ce.speedup(nets[id(base)], net, data, seconds=None)
            r["ms / 256 images"], r["speed-up"] = f"{t['ms']:.1f}", f"{t['speedup']:.2f}x"
            dense.setdefault(id(base), []).append(t["dense_ms"])
    for r, net, base in timed:
        if r is base:
            ms = dense.get(id(r)) or [ce.speedup(net, net, data, seconds=None)["dense_ms"]]
            r["ms / 256 images"], r["speed-up"] = f"{statistics.median(ms):.1f}", "1.00x"
