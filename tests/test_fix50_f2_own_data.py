"""The dashboard on data of fewer classes than the sample models score (a reviewer's 5-class 28x28 IDX folder):
Home and Distillation name a class the model outputs that the data have not, students train (their logits as wide
as the teacher's), and the pages say where a number was measured when it is not on the server's data."""

import base64
import json

import numpy as np
import pytest
import torch

import compress_engine as ce
from conftest import serve_data, write_idx, plots


@pytest.fixture(scope="session")
def five_idx(fmnist, tmp_path_factory):
    """600 training and 300 test images of Fashion-MNIST classes 0-4 as an IDX folder (classes '0'-'4'), the first
    test image one lenet-300-100 takes for a class of 5-9."""
    folder = tmp_path_factory.mktemp("five-classes")
    for split, n in (("train", 600), ("test", 300)):
        y = fmnist.y(split)
        keep = torch.nonzero(y < 5).flatten()
        if split == "test":
            pred = ce.predictions(ce.load_model("lenet-300-100"), fmnist.x("test")[keep])
            odd = keep[pred >= 5][0]  # a class-0-4 image lenet-300-100 calls one of 5-9
            keep = torch.cat([odd[None], keep[keep != odd]])
        keep = keep[:n]
        images = (fmnist.x(split)[keep, 0] * 255).round().to(torch.uint8).numpy()
        stem = "train" if split == "train" else "t10k"
        write_idx(folder / f"{stem}-images-idx3-ubyte", images)
        write_idx(folder / f"{stem}-labels-idx1-ubyte", y[keep].numpy())
    return f"idx:{folder}"


@pytest.fixture
def five(five_idx, monkeypatch):
    """The dashboard pointed at the 5-class folder."""
    return serve_data(five_idx, monkeypatch)


# --- the engine: a default student on data of fewer classes than its teacher ---------------------------------

@pytest.mark.parametrize("alpha, T", [(0.0, 1.0), (0.5, 4.0), (1.0, 2.0)])
def test_a_student_trains_from_a_teacher_of_more_classes(five_idx, alpha, T):
    """compress() of lenet-300-100 (10 outputs) into the default MLP student on 5-class data failed in kd_loss ('The
    size of tensor a (10) must match the size of tensor b (5)'), even at alpha = 0, where the teacher has no weight.
    The student now scores the teacher's 10 classes, with or without the teacher's cached logits."""
    data, teacher = ce.load_dataset(five_idx), ce.load_model("lenet-300-100")
    assert data.n_classes == 5
    recipe = ce.Recipe(temperature=T, alpha=alpha, student_width=30, distill_epochs=1)
    res = ce.compress(teacher, recipe, data)
    assert res.model.layers[-1].out_features == 10 and 0 <= res.metrics["accuracy"] <= 1
    given = {"train": ce.logits(teacher, data.x("train")), "test": ce.logits(teacher, data.x("test"))}
    again = ce.compress(teacher, recipe, data, model_logits=given)
    assert again.metrics["accuracy"] == res.metrics["accuracy"] and again.artifact == res.artifact


def test_labels_only_needs_no_teacher_logits_of_the_students_width():
    """At alpha = 0 kd_loss is the labels' cross-entropy alone: a teacher of another width (or none) is fine."""
    from compress_engine.core.distill import kd_loss
    s, y = torch.randn(8, 5, requires_grad=True), torch.randint(0, 5, (8,))
    want = torch.nn.functional.cross_entropy(s, y)
    assert torch.equal(kd_loss(s, torch.randn(8, 10), y, 3.0, 0.0), want)
    assert torch.equal(kd_loss(s, None, y, 1.0, 0.0), want)


# --- Home ----------------------------------------------------------------------------------------------------

def home_captions(at):
    spec = json.loads(plots(at)[0])
    return [a["text"] for a in spec["layout"]["annotations"]]


def test_home_names_a_predicted_class_the_data_have_not(five):
    """Home raised IndexError (captions = [head["classes"][p] ...]) when lenet-300-100 predicted class 6 for a test
    image of 5-class data; it now names output 6 as no class of these data, in red (wrong)."""
    from test_app import app
    at = app().run()
    assert not at.exception, at.exception
    pred = ce.predictions(ce.load_model("lenet-300-100"), ce.load_dataset(five).x("test")[:1]).item()
    first = home_captions(at)[0]
    assert pred >= 5 and first.startswith(f"{pred}<br>(not a class of these data)<br>(wrong: is ")


# --- Distillation ----------------------------------------------------------------------------------------------

def distillation(teacher="lenet-300-100"):
    from test_app import page
    at = page("distillation")
    at.selectbox(key="distill_teacher").set_value(teacher).run()
    assert not at.exception, at.exception
    return at


def soft_target_spec(at):
    return json.loads(next(c for c in plots(at) if "soft targets" in c))


def test_distillation_shows_every_output_of_a_teacher_of_more_classes(five):
    """With lenet-300-100 teaching on 5-class data the page raised IndexError (data.classes[answer]) for a test image
    it calls a class of 5-9, and the soft-target chart drew 5 of the teacher's 10 probabilities. It now names the
    answer, and the chart draws all 10 (outputs 5-9 named as no class of these data), summing to 100 %."""
    at = distillation()
    pred = ce.predictions(ce.load_model("lenet-300-100"), ce.load_dataset(five).x("test")[:1]).item()
    assert any(f"Teacher's answer: **{pred} (not a class of these data)** ✗" in c.value for c in at.caption)
    spec = soft_target_spec(at)
    assert spec["layout"]["xaxis"]["type"] == "category"  # '0'-'4' are names: as numbers, Plotly dropped outputs 5-9
    for bars in spec["data"]:
        assert bars["x"] == ["0", "1", "2", "3", "4"] + [f"{i} (not a class of these data)" for i in range(5, 10)]
        y = bars["y"]
        y = np.frombuffer(base64.b64decode(y["bdata"]), y["dtype"]) if isinstance(y, dict) else np.array(y)
        assert len(y) == 10 and abs(y.sum() - 100) < 1e-3


def test_distillation_trains_both_students_on_data_of_fewer_classes(five):
    """'Student without KD failed (RuntimeError: The size of tensor a (10) must match the size of tensor b (5) ...)'
    on any data of fewer than 10 classes: both students now train, and the widths' parameter counts the slider's help
    gives are the students' trained (scoring the teacher's 10 classes)."""
    at = distillation()
    assert at.select_slider(key="distill_width").help.startswith("10-10 has 8,070 parameters")  # 10 outputs (8,015 with 5)
    at.select_slider(key="distill_width").set_value(30)
    at.slider(key="distill_T").set_value(2.0)
    at.slider(key="distill_epochs").set_value(1).run()
    at.button(key="distill_train").click().run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    params = [m.value for m in at.metric if m.label == "Parameters"]
    assert params == ["24,790", "24,790"]  # 784·30 + 30 + 30·30 + 30 + 30·10 + 10: ten outputs, as the teacher's
    assert len([m for m in at.metric if m.label == "Test errors (of 300)"]) == 2


def test_home_shows_the_accuracy_on_these_data_not_the_cards(five):
    """Home showed lenet-300-100's card accuracy (Fashion-MNIST's, 90.13 %) as its test accuracy on other data, under a
    caption 'on Fashion-MNIST ... accuracy on all 10,000 test images'. On other data it now shows the accuracy
    measured on them (the dense run's), naming the card's in its help, and the caption names these data and their
    test images."""
    from test_app import app
    at = app().run()
    assert not at.exception, at.exception
    data, card = ce.load_dataset(five), ce.model_card("lenet-300-100")
    acc = ce.compress(ce.load_model("lenet-300-100"), ce.Recipe(), data).metrics["accuracy"]
    shown = next(m for m in at.metric if m.label.startswith("Test accuracy"))
    assert shown.label == "Test accuracy" and shown.value == f"{100 * acc:.2f} %" != f"{100 * card['test_accuracy']:.2f} %"
    assert f"on {card['test_set']}" in shown.help
    assert any(f"accuracy on {five}, all 300 test images." in c.value for c in at.caption)
    assert not any("Fashion-MNIST" in c.value or "10,000" in c.value for c in at.caption)


def test_distillation_says_its_grid_and_cards_are_of_fashion_mnist_on_other_data(five):
    """On other data the Distillation page drew the shipped grid (Fashion-MNIST's: 'test errors (of 10,000)',
    'teacher: 597 errors', 'on the full test set') and the sample models at their cards' Fashion-MNIST accuracies as if
    on the server's data. The grid, its caption and the size chart's points measured elsewhere now name their data,
    and the teacher is drawn at its accuracy measured on these data."""
    at = distillation("resnet-8")
    specs = [json.loads(c) for c in plots(at)]
    grid = next(s for s in specs if "every student" in s["layout"]["title"]["text"])
    assert grid["layout"]["title"]["text"].startswith("Measured: every student, with and without KD on fashion-mnist<br>")
    assert grid["layout"]["yaxis"]["title"]["text"] == "test errors on fashion-mnist (of 10,000)"
    assert grid["layout"]["annotations"][0]["text"].startswith("teacher on fashion-mnist: ")
    assert any("on the full test set of fashion-mnist, not your data (" in c.value for c in at.caption)
    size = next(s for s in specs if s["layout"]["title"]["text"].startswith("Size vs accuracy"))
    names = [t["name"] for t in size["data"]]
    assert "lenet-5 (its card's accuracy, on fashion-mnist)" in names
    assert all(n.endswith("on fashion-mnist)") for n in names if n.startswith(("students", "CNN student")))
    errors = number(next(m.value for m in at.metric if m.label == "Teacher test errors (of 300)"))
    teacher = next(t for t in size["data"] if t["name"] == "teacher")
    assert teacher["y"] == [pytest.approx(100 * (1 - errors / 300))] != [100 * ce.model_card("resnet-8")["test_accuracy"]]


def number(text):
    return float(text.replace(",", "").split()[0])
