"""bench/distillation.py's results as the Distillation page reads them: the measured grid of students and what KD
saved against labels only, per teacher. Rows are the CSVs' own (text values, as written), re-read when a file
changes; a missing or unreadable file gives no rows (the grid is context the page can do without).

Pure reading: no streamlit, no torch.
"""

import csv
import functools
from pathlib import Path

GRID = "distillation_grid.csv"  # every student, on the labels alone and distilled at each T, mean over the seeds
GAIN = "distillation_gain.csv"  # KD against labels only, per student (and paired by seed)
TEST_IMAGES = 10_000  # the grid's errors are counted on Fashion-MNIST's full test set, where the bench measured it


@functools.lru_cache(maxsize=16)
def _rows(path, mtime):
    """The rows of one CSV as a tuple of dicts, read once per (path, mtime)."""
    with open(path, newline="", encoding="utf-8") as f:
        return tuple(csv.DictReader(f))


def rows(path):
    """The rows of the CSV at `path` as fresh dicts ([] if it is missing or unreadable)."""
    path = Path(path)
    try:
        found = _rows(str(path), path.stat().st_mtime)
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    return [dict(r) for r in found]


def distill_grid(folder, teacher):
    """The grid bench/distillation.py measured with `teacher` (every epochs it ran), from folder/GRID; each row also
    has "accuracy", its mean errors out of the TEST_IMAGES it was measured on."""
    return [{**r, "accuracy": 1 - float(r["errors_mean"]) / TEST_IMAGES}
            for r in rows(Path(folder) / GRID) if r.get("teacher") == teacher]


def distill_gains(folder, teacher, epochs):
    """What KD saved against labels only, paired by seed, for `teacher`'s grid students trained `epochs` epochs, from
    folder/GAIN: its rows with a paired_saved value, each with "fewer_in_every_seed" (bool: KD made fewer errors
    than labels only in every seed)."""
    return [{**r, "fewer_in_every_seed": r.get("saved_in_every_seed") == "True"}
            for r in rows(Path(folder) / GAIN)
            if r.get("teacher") == teacher and r.get("study") == "grid" and r.get("paired_saved")
            and int(r["epochs"]) == int(epochs)]
