"""The Pipeline page's paper comparison: the bench's figures read from bench/results per model (its caption said
"12 epochs per stage" where bench/deep_compression.py trains LeNet-5 4), and a fine-tuned run's one-shot
pruning-alone stage no longer judged "not comparable ... loses" against the paper's retrained 12x."""

import csv

from test_app import ROOT, page
from test_app_techniques import chart

from compress_engine.playground import explain, store


def caption_of(at):
    return next(c.value for c in at.caption if "Their figures are on MNIST" in c.value)


def test_the_caption_reads_the_bench_figures_of_the_model_shown(tiny):
    rows = [r for r in csv.DictReader(open(ROOT / "bench/results/deep_compression.csv")) if r["model"] == "lenet-5"]
    pruned = next(r for r in rows if r["recipe"].startswith("pruned"))
    text = caption_of(page("pipeline", model="lenet-5"))
    assert "12 epochs" not in text and "within half a point" not in text
    assert f"{float(pruned['ratio']):,.1f}× smaller by pruning alone at {float(pruned['loss_pts']):.2f} points" in text
    assert "LeNet-5" in text and "deep_compression.csv" in text


def test_bench_text_is_per_model():
    points = store.reference_points(ROOT / "bench" / "results")
    a, b = (explain.bench_deep_compression(points, m) for m in ("lenet-300-100", "lenet-5"))
    assert a and b and a != b and "LeNet-300-100" in a
    # named by its data: a page on other data quotes it beside "ours on <their data>" (an own-data review)
    assert a.endswith(", on Fashion-MNIST") and b.endswith(", on Fashion-MNIST")  # as the caption's "ours on" says it
    assert explain.bench_deep_compression(points, "resnet-8") == ""


def test_a_one_shot_pruning_stage_gets_no_verdict_against_the_retrained_paper():
    # the review's numbers: LeNet-5, the Deep Compression recipe fine-tuned, its pruning stage one-shot at -4.46 pts
    comp = explain.paper_comparison("lenet-5", 1_724_000, 34_000, 0.92, 0.9151, pruned_bytes=162_600,
                                    pruned_accuracy=0.8754, dense_params=431_080, pruned_nonzero=34_000,
                                    one_shot_pruning=True)
    prune = comp["rows"][0]
    assert prune["one_shot"] and "not comparable" not in prune["verdict"] and "loses" not in prune["verdict"]
    assert "one-shot" in prune["verdict"] and "after retraining" in prune["verdict"]
    plain = explain.paper_comparison("lenet-5", 1_724_000, 34_000, 0.92, 0.9151, pruned_bytes=162_600,
                                     pruned_accuracy=0.8754)["rows"][0]
    assert not plain["one_shot"] and "not comparable" in plain["verdict"]  # a one-shot run judged as it is


def test_a_fine_tuned_pipeline_marks_its_one_shot_pruning_stage(tiny):
    at = page("pipeline", model="lenet-5")
    at.button(key="pipe_preset").click().run()
    at.button(key="pipe_train").click().run()
    assert not at.exception and not at.error
    assert any(c.value.startswith("Fine-tuned 1 epoch") for c in at.caption)
    bars = [t for t in chart(at, "Ratio and accuracy change")["data"] if t.get("text")]
    ours = bars[1]
    loss = -float(ours["text"][0].split("<br>")[1].split()[0])
    assert loss > explain.EQUAL_LOSS_PTS  # the one-shot stage lost more than the paper allows (as in the review)
    text = " ".join(m.value for m in at.markdown)
    assert "pruning alone: not comparable" not in text and "pruning alone: measured one-shot" in text
    assert ours["marker"]["pattern"]["shape"][0] == "." and "one-shot" in ours["text"][0]
    assert "measured one-shot" in caption_of(at)
