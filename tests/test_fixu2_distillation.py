"""Distillation: the grid opens on (and follows) the epochs the students train for, so the students trained land on
it as the page promises; and the share of the student-teacher gap KD closed, which the page tells the reader to
compare, is shown for the user's pair and the grid's students."""

import csv
import sys
from pathlib import Path

from test_app import number, page
from conftest import plots

RESULTS = Path(__file__).resolve().parent.parent / "bench" / "results"


def test_the_grid_follows_the_training_epochs_until_picked(fmnist):
    at = page("distillation")
    assert not at.exception
    grid = at.radio(key="distill_grid_epochs")
    assert at.slider(key="distill_epochs").value == 5 and grid.value == 5  # it opened on 20
    assert sorted(grid.options) == ["20 epochs", "5 epochs"]
    at.slider(key="distill_epochs").set_value(20).run()
    assert not at.exception and at.radio(key="distill_grid_epochs").value == 20
    at.slider(key="distill_epochs").set_value(2).run()  # not measured: the nearest grid
    assert at.radio(key="distill_grid_epochs").value == 5
    assert any("size chart below as stars" in i.value for i in at.info)  # not on the grid: not promised there
    at.slider(key="distill_epochs").set_value(5).run()
    assert any("grid above as stars" in i.value for i in at.info)
    at.radio(key="distill_grid_epochs").set_value(20).run()  # picked here: it stays
    at.slider(key="distill_epochs").set_value(6).run()
    assert not at.exception and at.radio(key="distill_grid_epochs").value == 20


def test_the_grids_gap_closed_is_the_benchs(fmnist):
    with open(RESULTS / "distillation_gain.csv", newline="") as f:
        gains = [g for g in csv.DictReader(f) if g["study"] == "grid" and g["teacher"] == "resnet-8"
                 and int(g["epochs"]) == 5 and g["paired_saved"] and g["gap_closed_%"]]
    at = page("distillation")
    caption = next(c.value for c in at.caption if "the same seed" in c.value)
    assert gains and all(f"**{g['student']}** {g['paired_saved']} at T = {g['best_T']}" in caption
                         and f"{g['gap_closed_%']} % of its gap to the teacher closed" in caption for g in gains)


def test_your_pair_shows_the_share_of_the_gap_kd_closed(tiny):
    at = page("distillation")
    at.select_slider(key="distill_width").set_value(30)
    at.slider(key="distill_epochs").set_value(1).run()
    at.button(key="distill_train").click().run()
    assert not at.exception and not at.error
    teacher = number(next(m.value for m in at.metric if m.label == "Teacher test errors (of 500)"))
    base, kd = (number(m.value) for m in at.metric if m.label == "Test errors (of 500)")
    table = next(m.value for m in at.markdown if "Hinton et al., MNIST" in m.value)
    row = next(line for line in table.splitlines() if "gap KD closed" in line)
    assert base > teacher
    assert row.split("|")[2:4] == [f" {100 * (146 - 74) / (146 - 67):.0f} % ", f" {100 * (base - kd) / (base - teacher):.0f} % "]


def test_the_size_charts_labels_neither_overlap_nor_leave_the_plot(fmnist):
    """At 1024x768 the two 'yours' labels lay on each other, lenet-300-100's on the 300-300 point and
    teacher-1200-1200's ran off the right edge. Points that share a place are legend entries of their own, their
    labels in the hover; a label left by a point at the axis's right end reaches inwards; the top label has room."""
    import json
    import math
    from pages import charts
    at = page("distillation")
    for epochs in (5, 20):
        at.radio(key="distill_grid_epochs").set_value(epochs).run()
        spec = json.loads(next(c for c in plots(at) if "Size vs accuracy" in c))
        traces = {t["name"]: t for t in spec["data"]}
        for name in ("lenet-300-100", "lenet-5", "teacher-1200-1200"):  # each named in the legend, not by its point
            assert "text" not in traces[name]["mode"]
        assert all("text" not in t["mode"] for n, t in traces.items() if n.startswith("CNN student"))
        labelled = [(x, pos) for t in spec["data"] if "text" in t["mode"]
                    for x, pos in zip(t["x"], t["textposition"])]
        right = max(math.log10(x) for t in spec["data"] for x in t["x"])
        left = min(math.log10(x) for t in spec["data"] for x in t["x"])
        assert all(pos.endswith("left") for x, pos in labelled if math.log10(x) > right - 0.1 * (right - left))
        ys = [y for t in spec["data"] for y in t["y"]]
        assert spec["layout"]["yaxis"]["range"][1] > max(ys)
    # your two students: one size, nearly one accuracy; each its own legend entry, its label in the hover only
    fig = charts.size_accuracy([(f"yours: {k}", [{"label": k, "bytes": 358_600, "accuracy": a}],
                                 {"color": "blue", "symbol": "star-open", "hover_only": True})
                                for k, a in (("labels only", 0.8641), ("KD T = 1", 0.8667))])
    assert all(t.mode == "markers" for t in fig.data) and {t.name for t in fig.data} == {
        "yours: labels only", "yours: KD T = 1"}


def test_gap_closed_is_one_formula_for_the_page_and_the_bench():
    """The page and bench/distillation.py each wrote the share of the gap KD closes: explain.gap_closed is the one."""
    from compress_engine.playground import explain
    assert round(explain.gap_closed(146, 74, 67), 2) == 0.91  # Hinton et al. on MNIST
    assert explain.gap_closed(100, 120, 60) == -0.5 and explain.gap_closed(60, 50, 60) is None
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    import distillation as bench
    row = bench.gain_row("grid", "t", "s", "train", 5, {None: [146, 146], 20: [74, 74]}, 67)
    assert row["gap_closed_%"] == "91"
