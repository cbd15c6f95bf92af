"""AppTest of the Distillation and Pipeline pages.

Each page renders without an exception and its main control moves the metric it should. The training
buttons (distil two students; fine-tune the pipeline) run on a tiny IDX slice of Fashion-MNIST,
selected through pages.common.DATASET, so they take seconds.
"""

import csv
import json
import statistics
from pathlib import Path

import pytest
from streamlit.proto.Metric_pb2 import Metric

import compress_engine as ce
from compress_engine.playground import units
from test_app import metric, number, page

from compress_engine import Recipe
from conftest import plots
TEACHER = "resnet-8"


def metrics(at, label):
    return [m.value for m in at.metric if m.label == label]


def charts(at):
    return plots(at)


def chart_text(at):
    """Every plotly figure of the page as one JSON string (trace names, tick labels, titles)."""
    return " ".join(c for c in charts(at))


# --- distillation ---------------------------------------------------------------------------------

def test_distillation_shows_the_measured_grid_before_any_training(fmnist):
    at = page("distillation", model="lenet-5")
    assert not at.error
    assert at.selectbox(key="distill_teacher").value == TEACHER
    assert metric(at, "Teacher parameters") == f"{ce.describe(ce.load_model(TEACHER))['params']:,}"  # as deployed
    assert number(metric(at, "Teacher test accuracy")) >= 93.5
    assert any("KL" in x.value and "CE" in x.value for x in at.latex)
    assert any("146" in c.value and "74" in c.value and "67" in c.value for c in at.caption)
    assert at.select_slider(key="distill_width").value == 100 and at.slider(key="distill_T").value == 1.0
    assert at.radio(key="distill_grid_epochs").value == 5  # the grid of the epochs slider's students (5)
    # image, soft targets, the bench's grid and the size chart: all there before any training
    assert len(charts(at)) == 4 and not metrics(at, "Test accuracy")
    text = chart_text(at)
    assert "labels only" in text and "KD, T = 1" in text and "teacher:" in text and "800-800" in text
    at.radio(key="distill_grid_epochs").set_value(5).run()  # 5 epochs: every T, and the CNN student
    text = chart_text(at)
    assert not at.exception and "KD, T = 2" in text and "KD, T = 4" in text and "cnn 8-16-32" in text
    for name in ("lenet-300-100", "lenet-5", "teacher-1200-1200", TEACHER):  # every sample model on the size chart
        assert name in text
    assert "KB" in text and "MB" in text and '"type":"log"' in text.replace(" ", "")

    assert at.slider(key="distill_view_T").value > 1  # the soft-target panel opens at a T > 1 (f5's fix)
    at.slider(key="distill_view_T").set_value(1.0).run()
    assert not at.exception
    sharp = number(metric(at, "Top class at viewed T = 1"))
    assert sharp == number(metric(at, "Top class at T = 1"))
    card = next(m for m in at.metric if m.label == "Top class at viewed T = 1")  # the same T: no change, no arrow
    assert card.proto.delta == "no change" and card.proto.direction == Metric.MetricDirection.NONE
    at.slider(key="distill_view_T").set_value(20.0).run()
    assert not at.exception
    soft = number(metric(at, "Top class at viewed T = 20"))
    card = next(m for m in at.metric if m.label == "Top class at viewed T = 20")  # softer, neither good nor bad: grey
    assert card.proto.delta.startswith("-") and card.proto.color == Metric.MetricColor.GRAY
    assert soft < sharp and number(metric(at, "Entropy at viewed T = 20")) > 1.0

    at.number_input(key="distill_image").set_value(1).run()  # test image 1 is a pullover
    at.toggle(key="distill_log").set_value(True).run()
    assert not at.exception and not at.error
    assert any("True class: **Pullover**" in c.value for c in at.caption)
    assert at.button(key="distill_train") and not metrics(at, "Test accuracy")

    at.selectbox(key="distill_teacher").set_value("lenet-5").run()  # any sample model can teach
    assert not at.exception and not at.error and metric(at, "Teacher parameters") == "431,080"
    assert any("No measured grid" in i.value for i in at.info)


def test_distillation_trains_both_students(tiny):
    at = page("distillation")
    at.select_slider(key="distill_width").set_value(30)
    at.slider(key="distill_epochs").set_value(1)
    at.slider(key="distill_T").set_value(8.0).run()
    assert not at.exception and at.selectbox(key="distill_teacher").value == TEACHER

    at.button(key="distill_train").click().run()
    assert not at.exception and not at.error
    trained = at.session_state["trained"]
    assert sorted(k[0] for k in trained) == [TEACHER, TEACHER]
    errs = metrics(at, "Test errors (of 500)")
    assert len(errs) == 2 and all(0 <= number(e) <= 500 for e in errs)
    assert metrics(at, "Parameters") == ["24,790"] * 2  # 784·30 + 30 + 30·30 + 30 + 30·10 + 10
    # 1 epoch is not on the measured grid (5 and 20): the students are on the size chart, and the page says why
    assert "30-30, 1 ep, labels only" in chart_text(at) and "30-30, 1 ep, KD T = 8" in chart_text(at)
    assert any("trained for 1 epoch:" in c.value and "5 and 20" in c.value for c in at.caption)
    assert any("Hinton et al., MNIST" in x.value and "| 146 |" in x.value for x in at.markdown)
    at.run()  # a rerun shows the stored students; nothing left to train
    assert not at.exception and len(metrics(at, "Test errors (of 500)")) == 2
    assert "distill_train" not in [b.key for b in at.button]
    # how much faster the student answers than the teacher: timed on request, in turns, on a batch and on one image
    assert at.button(key="distill_speed_go").label == "Time the teacher and the student on this CPU"
    at.button(key="distill_speed_go").click().run()
    assert not at.exception and not at.error
    ((key, timed),) = at.session_state["distill_speed"].items()
    assert key[0] == TEACHER and timed["batch"] == 256 and timed["one"]["batch"] == 1
    assert metric(at, "Speed-up") == units.ratio(timed["speedup"])
    assert timed["speedup"] == timed["dense_ms"] / timed["ms"]
    kd_flops = [r for k, r in trained.items() if ce.Recipe.from_json(r["recipe"]).temperature][0]["metrics"]
    fewer = kd_flops["dense_flops"] / kd_flops["flops"]
    assert fewer > 10 and any(f"The FLOPs fall {fewer:.1f}×" in c.value and "One image at a time" in c.value
                              for c in at.caption)
    assert at.button(key="distill_speed_go").label == "Time again"

    # a new temperature needs a new distilled student, but the labels-only one is reused (α = 0)
    at.slider(key="distill_T").set_value(4.0).run()
    assert not at.exception and len(metrics(at, "Test accuracy")) == 1  # the labels-only student, kept
    at.button(key="distill_train").click().run()
    assert not at.exception and len(at.session_state["trained"]) == 3

    # the small CNN student: ResNet-8 at 8-16-32 channels, BatchNorm folded once trained
    at.radio(key="distill_kind").set_value(at.radio(key="distill_kind").options[1]).run()
    at.button(key="distill_train").click().run()
    assert not at.exception and not at.error and len(at.session_state["trained"]) == 5
    params = {number(p) for p in metrics(at, "Parameters")}
    assert len(params) == 1 and 15_000 < params.pop() < 20_000


def test_your_students_land_on_the_grid_of_their_epochs(tiny):
    at = page("distillation")
    at.select_slider(key="distill_width").set_value(30)
    at.slider(key="distill_epochs").set_value(5)
    at.radio(key="distill_grid_epochs").set_value(5).run()
    at.button(key="distill_train").click().run()
    assert not at.exception and not at.error
    text = chart_text(at)
    assert "yours: 30-30, 5 ep, labels only" in text and "yours: 30-30, 5 ep, KD T = 1" in text  # stars on the grid
    at.radio(key="distill_grid_epochs").set_value(20).run()  # the 20-epoch grid: not theirs, so no stars on it
    grid = next(c for c in charts(at) if "Measured:" in c)  # the size chart has them all
    assert "yours: 30-30" not in grid and any("choose 5 epochs" in c.value for c in at.caption)


def test_alpha_zero_is_the_labels_only_run_trained_once_and_never_called_kd(tiny):
    """At α = 0 the teacher's soft targets get no weight: the page trained a second, identical student and called it
    "With KD" ("student, distilled", "+0.00 pts vs labels only"). It now says α = 0 is the labels-only run and
    trains only that student; raising α brings the distilled one back."""
    at = page("distillation")
    at.select_slider(key="distill_width").set_value(30)
    at.slider(key="distill_epochs").set_value(1)
    at.slider(key="distill_T").set_value(4.0)
    at.slider(key="distill_alpha").set_value(0.0).run()
    assert not at.exception and not at.error
    assert any("α = 0 is the labels-only run" in i.value for i in at.info)
    assert not any("With KD" in m.value for m in at.markdown)
    at.button(key="distill_train").click().run()
    assert not at.exception and not at.error
    trained = at.session_state["trained"]
    assert len(trained) == 1 and [Recipe.from_json(r["recipe"]).alpha for r in trained.values()] == [0.0]
    assert len(metrics(at, "Test accuracy")) == 1 and not any(m.delta for m in at.metric if m.label == "Test accuracy")
    assert "30-30, 1 ep, labels only" in chart_text(at) and "30-30, 1 ep, KD" not in chart_text(at)
    assert not any("distilled" in m.value for m in at.markdown)  # no "student, distilled" row
    assert "distill_train" not in [b.key for b in at.button]  # nothing left to train at α = 0
    at.slider(key="distill_alpha").set_value(0.5).run()  # a teacher with weight: the distilled student, once
    assert any("With KD" in m.value for m in at.markdown) and len(metrics(at, "Test accuracy")) == 1
    at.button(key="distill_train").click().run()
    assert not at.exception and len(at.session_state["trained"]) == 2 and len(metrics(at, "Test accuracy")) == 2


def test_the_teacher_and_students_are_counted_as_deployed_as_their_sizes_are(tiny):
    """ResNet-8's card showed 308,074 parameters (the module's, BatchNorms included) beside 1,229.6 KB, which is
    4 bytes for each of the 307,402 it has once BatchNorm is folded. The card, and every student's share of the
    teacher, now count the model as deployed, as the size does."""
    from compress_engine.playground import zoo
    card = ce.model_card(TEACHER)
    deployed = ce.describe(ce.load_model(TEACHER))["params"]
    assert deployed == card["deployed_parameters"] < card["parameters"] and 4 * deployed == card["dense_bytes"]
    at = page("distillation")
    shown = next(m for m in at.metric if m.label == "Teacher parameters")
    assert shown.value == f"{deployed:,}" and shown.proto.delta == "once BatchNorm is folded"
    assert f"{card['parameters']:,}" in shown.proto.help
    wide = 784 * 800 + 800 + 800 * 800 + 800 + 800 * 10 + 10  # 800-800 has no BatchNorm: as built, as deployed
    assert f"800-800 has {wide:,} parameters ({wide / deployed:.0%} of {TEACHER}'s)" in \
        at.select_slider(key="distill_width").help
    at.select_slider(key="distill_width").set_value(30)
    at.slider(key="distill_epochs").set_value(1).run()
    at.button(key="distill_train").click().run()
    card_of = next(m for m in at.metric if m.label == "Parameters")
    assert card_of.value == "24,790" and card_of.proto.delta == f"{24_790 / deployed:.0%} of the teacher's"
    # the CNN student: the count its help gives is the count it shows once trained (BatchNorm folded in both)
    cnn = ce.describe(zoo.cnn_student(0))["params"]
    assert cnn < ce.param_count(zoo.cnn_student(0)) and f"({cnn:,} parameters)" in at.radio(key="distill_kind").help
    at.radio(key="distill_kind").set_value(at.radio(key="distill_kind").options[1]).run()
    at.button(key="distill_train").click().run()
    assert not at.exception and not at.error and metrics(at, "Parameters") == [f"{cnn:,}"] * 2


def test_the_temperature_help_says_only_what_the_grid_measured(fmnist):
    """The T slider's help said "T = 1 taught best and T = 4 made every MLP student worse (the grid)", but in
    distillation_grid.csv 800-800 at 5 epochs made fewer errors at T = 2 than at T = 1, and at T = 1 more than on the
    labels alone. The help is now read from the grid: each student's best T, and a T that hurt every student."""
    results = Path(__file__).resolve().parent.parent / "bench" / "results"
    with open(results / "distillation_grid.csv", newline="") as f:
        grid = [r for r in csv.DictReader(f) if r["teacher"] == TEACHER and r["epochs"] == "5"]
    labels = {r["student"]: float(r["errors_mean"]) for r in grid if not r["T"]}
    kd = {}
    for r in grid:
        if r["T"]:
            kd.setdefault(r["student"], {})[r["T"]] = float(r["errors_mean"])
    best = {}
    for student, errs in kd.items():
        if len(errs) > 1:
            best.setdefault(min(errs, key=errs.get), []).append(student)
    assert best["2"] == ["800-800"] and kd["800-800"]["1"] > labels["800-800"]  # what the old help got wrong
    at = page("distillation")
    said = at.slider(key="distill_T").help
    assert "T = 1 taught best" not in said and "In the grid (resnet-8 teaching, 5 epochs, mean of 3 seeds)" in said
    for t, students in best.items():
        assert f"at T = {t} for {', '.join(students[:-1])}{' and ' if len(students) > 1 else ''}{students[-1]}" in said
    for t in {t for errs in kd.values() for t in errs}:
        hurt_all = all(errs[t] > labels[s] for s, errs in kd.items() if t in errs)
        assert (f"At T = {t} all" in said) == (hurt_all and sum(t in errs for errs in kd.values()) > 1), t
    assert "At T = 4 all 4 students" in said and "At T = 2" not in said
    at.selectbox(key="distill_teacher").set_value("lenet-5").run()  # no grid measured with it: no claim about one
    assert not at.exception and "grid" not in at.slider(key="distill_T").help


def test_the_size_chart_draws_the_students_at_the_grids_best_t(fmnist):
    """The size chart draws the distilled students "at the grid's best T". At 5 epochs it drew T = 2: each T's errors
    were summed over the students tried at it, and T = 1's sum alone held the CNN student's (tried at T = 1 only).
    The best T is now the fewest errors over the students tried at every T."""
    results = Path(__file__).resolve().parent.parent / "bench" / "results"
    with open(results / "distillation_grid.csv", newline="") as f:
        grid = [r for r in csv.DictReader(f) if r["teacher"] == TEACHER and r["epochs"] == "5" and r["T"]]
    temps = {r["T"] for r in grid}
    tried = {s for s in {r["student"] for r in grid} if {r["T"] for r in grid if r["student"] == s} == temps}
    total = {t: sum(float(r["errors_mean"]) for r in grid if r["T"] == t and r["student"] in tried) for t in temps}
    best = min(total, key=total.get)
    assert best == "1" and len(temps) > 1 and "cnn 8-16-32" not in tried
    at = page("distillation")
    at.radio(key="distill_grid_epochs").set_value(5).run()
    assert not at.exception and f"students, KD T = {best} (mean of seeds)" in chart_text(at)


def test_saved_students_are_named_and_the_cnn_is_not_taken_for_the_mlp(tiny, tmp_path, monkeypatch):
    """A student is stored under its teacher's name. The CNN student's recipe is the MLP's (its width is unused),
    so saving it after the MLP of the same setting said "Already saved" and kept nothing: its key now names it."""
    from compress_engine.playground.store import Store
    monkeypatch.setenv("COMPRESS_STORE", str(tmp_path / "runs.sqlite"))
    at = page("distillation")
    at.select_slider(key="distill_width").set_value(30)
    at.slider(key="distill_epochs").set_value(1).run()
    at.button(key="distill_train").click().run()
    at.button(key="distill_save_kd").click().run()
    at.radio(key="distill_kind").set_value(at.radio(key="distill_kind").options[1]).run()
    at.button(key="distill_train").click().run()
    at.button(key="distill_save_kd").click().run()
    at.button(key="distill_save_kd").click().run()  # the same CNN student again: still one run
    assert not at.exception and not at.error
    rows = Store().list()
    assert sorted(r["name"] for r in rows) == ["30-30 student", "cnn 8-16-32 student"]
    assert {r["model"] for r in rows} == {TEACHER} and {r["technique"] for r in rows} == {"distill"}
    assert len({r["params"] for r in rows}) == 2


def test_the_page_says_what_kd_saved_paired_by_seed_as_the_bench_measured(fmnist):
    """Under the grid, for the epochs shown: each student's errors saved by KD against its labels-only twin of the
    same seed, read from bench/results/distillation_gain.csv, and which saved some in every seed."""
    results = Path(__file__).resolve().parent.parent / "bench" / "results"
    with open(results / "distillation_gain.csv", newline="") as f:
        gains = [g for g in csv.DictReader(f) if g["study"] == "grid" and g["teacher"] == "resnet-8"]
    at = page("distillation")
    for epochs in (20, 5):
        at.radio(key="distill_grid_epochs").set_value(epochs).run()
        assert not at.exception
        caption = next(c.value for c in at.caption if "the same seed" in c.value)
        shown = [g for g in gains if int(g["epochs"]) == epochs]
        assert len(shown) >= 4
        for g in shown:
            said = f"**{g['student']}** {g['paired_saved']} at T = {g['best_T']}"
            assert said in caption, (said, caption)
            assert (f"{said} (fewer in every seed)" in caption) == (g["saved_in_every_seed"] == "True")


def test_the_pages_grid_is_the_benchs_runs():
    """bench/results/distillation_grid.csv, which the page draws, is what bench/distillation.py measured: each
    point is the mean, min and max of its seeds' runs in distillation.csv, and the teacher's errors are its own."""
    results = Path(__file__).resolve().parent.parent / "bench" / "results"
    with open(results / "distillation.csv", newline="") as f:
        runs = list(csv.DictReader(f))
    with open(results / "distillation_grid.csv", newline="") as f:
        grid = list(csv.DictReader(f))
    teacher = next(r for r in runs if r["study"] == "teacher")
    assert grid and {g["student"] for g in grid} >= {"30-30", "100-100", "300-300", "800-800", "cnn 8-16-32"}
    for g in grid:
        errs = [int(r["test_errors"]) for r in runs if r["study"] == "grid" and r["student"] == g["student"]
                and r["T"] == g["T"] and r["epochs"] == g["epochs"]]
        assert len(errs) == len(g["seeds"].split()) >= 3, g
        assert (float(g["errors_mean"]), int(g["errors_min"]), int(g["errors_max"])) == (
            round(statistics.mean(errs), 1), min(errs), max(errs)), g
        assert g["teacher_errors"] == teacher["test_errors"] and g["teacher"] == teacher["student"]


# --- pipeline -------------------------------------------------------------------------------------

def test_pipeline_controls_move_size_and_parameters(fmnist):
    at = page("pipeline")
    assert not at.error
    assert at.slider(key="pipe_sparsity").value == 80 and at.radio(key="pipe_sharing").value == "cluster"
    at.slider(key="pipe_sparsity").set_value(90).run()
    at.radio(key="pipe_scope").set_value("layer").run()
    nz90, kb90 = number(metric(at, "Non-zero parameters")), number(metric(at, "Artifact size"))
    assert len(charts(at)) == 3  # waterfall, paper's ratio, byte breakdown
    # each stage's row is that stage's own artifact (the shared stage read off the Huffman run's plain_bytes)
    model, post = ce.load_model("lenet-300-100"), ce.Recipe(sparsity=0.9, clusters=16, huffman=True)
    stages = at.dataframe[0].value
    for label, r in [("pruned 90 % of weights", post.replace(clusters=None, huffman=False)),
                     ("16 clusters (4-bit codes)", post.replace(huffman=False)), ("Huffman coded", post)]:
        res = ce.compress(model, r, fmnist)
        row = stages[stages["stage"] == label].iloc[0]
        assert row["KB"] == pytest.approx(len(res.artifact) / 1000) and row["accuracy (%)"] == pytest.approx(
            100 * res.metrics["accuracy"])
    # the dense bar is the float32 weights every ratio divides (not the unchanged weights' artifact, which skips the
    # weights training left at zero): 1.0x, and the size Home's card gives
    dense_row = stages[stages["stage"] == "dense float32"].iloc[0]
    assert dense_row["ratio"] == "1.0×" and dense_row["KB"] == ce.model_card("lenet-300-100")["dense_bytes"] / 1000

    at.slider(key="pipe_sparsity").set_value(0).run()
    assert not at.exception
    dense_nz = sum(int(p.count_nonzero()) for p in ce.load_model("lenet-300-100").parameters())
    assert number(metric(at, "Non-zero parameters")) == dense_nz > 5 * nz90
    assert number(metric(at, "Artifact size")) > kb90

    at.slider(key="pipe_sparsity").set_value(90).run()
    at.toggle(key="pipe_huffman").set_value(False).run()
    assert not at.exception and number(metric(at, "Artifact size")) > kb90
    at.radio(key="pipe_sharing").set_value("none").run()
    assert not at.exception
    unshared = number(metric(at, "Artifact size"))
    at.radio(key="pipe_sharing").set_value("quantize").run()
    assert not at.exception and not at.error
    assert at.select_slider(key="pipe_bits").value == 6
    assert number(metric(at, "Artifact size")) < unshared
    at.radio(key="pipe_scope").set_value("global").run()
    assert not at.exception and number(metric(at, "Non-zero parameters")) == nz90
    at.select_slider(key="pipe_bits").set_value(1).run()  # 1 bit: every kept weight rounds onto the zero level
    kept = number(metric(at, "Non-zero parameters"))
    said = [i.value for i in at.info if "are now exactly zero" in i.value]
    assert len(said) == 1 and "beyond the pruned ones" in said[0] and kept < nz90 / 10, (said, kept)
    # the 1-bit step falls to near 0: its label goes inside the bar, not under it over the axis's stage names
    fall = next(t for t in (json.loads(c)["data"][0] for c in charts(at)) if t["type"] == "waterfall")
    big = [i for i, (m, v) in enumerate(zip(fall["measure"], fall["y"])) if m == "relative" and v < -fall["y"][0] / 3]
    assert big and all(fall["textposition"][i] == "inside" for i in big), fall["textposition"]
    assert fall["textposition"][0] == "outside"
    at.select_slider(key="pipe_bits").set_value(6).run()

    # no stage on: the waterfall ends at the artifact the cards show (the dense bar alone said 1.0x beside 1.1x)
    at.slider(key="pipe_sparsity").set_value(0)
    at.radio(key="pipe_sharing").set_value("none").run()
    stages = at.dataframe[0].value
    assert list(stages["stage"]) == ["dense float32", "artifact (the trained zeros skipped)"]
    assert stages["KB"].iloc[-1] == pytest.approx(number(metric(at, "Artifact size")), abs=0.05)
    assert stages["ratio"].iloc[-1] == metric(at, "Compression ratio")

    # the preset: 92 % global, 16 clusters, Huffman, 1 epoch (which waits behind its button)
    at.button(key="pipe_preset").click().run()
    assert not at.exception and not at.error
    assert at.slider(key="pipe_sparsity").value == 92 and at.radio(key="pipe_scope").value == "global"
    assert at.select_slider(key="pipe_clusters").value == 16 and at.toggle(key="pipe_huffman").value
    assert at.slider(key="pipe_epochs").value == 1 and at.button(key="pipe_train")
    assert number(metric(at, "Compression ratio")) > 30
    assert any("Shown without fine-tuning" in c.value for c in at.caption)
    assert any("12×" in c.value for c in at.caption)


def test_pipeline_fine_tunes_behind_its_button(tiny):
    at = page("pipeline")
    oneshot = number(metric(at, "Test accuracy"))
    at.slider(key="pipe_epochs").set_value(1).run()
    assert number(metric(at, "Test accuracy")) == oneshot  # not trained yet
    at.button(key="pipe_train").click().run()
    assert not at.exception and not at.error
    assert number(metric(at, "Test accuracy")) != oneshot
    assert any(c.value.startswith("Fine-tuned 1 epoch") for c in at.caption)
    from pages import common
    recipe = Recipe(sparsity=0.8, prune_scope="global", clusters=16, huffman=True, finetune_epochs=1,
                    precision=common.training_precision())  # the dashboard's (bfloat16 where the CPU has AMX)
    assert ("lenet-300-100", recipe.to_json()) in at.session_state["trained"]
    at.run()  # a rerun keeps the trained result; the button is gone
    assert not at.exception and "pipe_train" not in [b.key for b in at.button]
    assert any(c.value.startswith("Fine-tuned 1 epoch") for c in at.caption)


def test_pipeline_renders_for_lenet5(tiny):
    at = page("pipeline", model="lenet-5")
    assert not at.error
    assert number(metric(at, "Non-zero parameters")) < 0.25 * 431_080  # 80 % pruned
    assert any("12×" in c.value for c in at.caption)
