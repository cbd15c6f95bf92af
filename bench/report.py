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


def time_rows(timed, x):
    """Fill in "ms / 256 images" (the median of 20 forward passes over x) and "speed-up" (against its base row) of
    each (row, model, base row) in `timed`, one model after another. Call it after all training, so nothing of the
    run works beside the timing."""
    from compress_engine.core.train import median_forward_ms
    for r, net, _ in timed:
        r["ms / 256 images"] = median_forward_ms(net.eval(), x)
    for r, _, base in timed:
        r["speed-up"] = f"{base['ms / 256 images'] / r['ms / 256 images']:.2f}x"
    for r, _, _ in timed:
        r["ms / 256 images"] = f"{r['ms / 256 images']:.1f}"
