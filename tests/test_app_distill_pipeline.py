"""AppTest of the Distillation and Pipeline pages.

Each page renders without an exception and its main control moves the metric it should. The training
buttons (distil two students; fine-tune the pipeline) run on a tiny IDX slice of Fashion-MNIST,
selected through pages.common.DATASET, so they take seconds.
"""

import compress_engine as ce
from test_app import metric, number, page

from compress_engine import Recipe
TEACHER = "teacher-1200-1200"


def metrics(at, label):
    return [m.value for m in at.metric if m.label == label]


def charts(at):
    return at.get("plotly_chart")


# --- distillation ---------------------------------------------------------------------------------

def test_distillation_soft_targets_follow_the_temperature(fmnist):
    at = page("distillation", model="lenet-5")
    assert not at.error
    assert any(TEACHER in c.value and "not the sidebar's model" in c.value for c in at.caption)
    assert metric(at, "Teacher parameters") == "2,395,210"
    assert any("KL" in x.value and "CE" in x.value for x in at.latex)
    assert any("146" in c.value and "74" in c.value and "67" in c.value for c in at.caption)
    assert at.select_slider(key="distill_width").value == 800

    at.slider(key="distill_T").set_value(1.0).run()
    assert not at.exception
    sharp = number(metric(at, "Top class at chosen T"))
    assert sharp == number(metric(at, "Top class at T = 1"))
    at.slider(key="distill_T").set_value(20.0).run()
    assert not at.exception
    soft = number(metric(at, "Top class at chosen T"))
    assert soft < sharp and number(metric(at, "Entropy at chosen T")) > 1.0
    assert len(charts(at)) == 2  # the image and the soft targets (no training results yet)

    at.number_input(key="distill_image").set_value(1).run()  # test image 1 is a pullover
    at.toggle(key="distill_log").set_value(True).run()
    assert not at.exception and not at.error
    assert any("True class: **Pullover**" in c.value for c in at.caption)
    assert at.button(key="distill_train") and not metrics(at, "Test accuracy")


def test_distillation_trains_both_students(tiny):
    at = page("distillation")
    at.select_slider(key="distill_width").set_value(30)
    at.slider(key="distill_epochs").set_value(1)
    at.slider(key="distill_T").set_value(8.0).run()
    assert not at.exception and metric(at, "Teacher parameters") == "2,395,210"

    at.button(key="distill_train").click().run()
    assert not at.exception and not at.error
    trained = at.session_state["trained"]
    assert sorted(k[0] for k in trained) == [TEACHER, TEACHER]
    errs = metrics(at, "Test errors (of 500)")
    assert len(errs) == 2 and all(0 <= number(e) <= 500 for e in errs)
    assert metrics(at, "Parameters") == ["24,790"] * 2  # 784·30 + 30 + 30·30 + 30 + 30·10 + 10
    assert len(charts(at)) == 3  # + the size-vs-accuracy chart
    assert any("Hinton et al., MNIST" in x.value and "| 146 |" in x.value for x in at.markdown)
    at.run()  # a rerun shows the stored students; nothing left to train
    assert not at.exception and len(metrics(at, "Test errors (of 500)")) == 2
    assert "distill_train" not in [b.key for b in at.button]

    # a new temperature needs a new distilled student, but the labels-only one is reused (α = 0)
    at.slider(key="distill_T").set_value(4.0).run()
    assert not at.exception and not metrics(at, "Test accuracy")
    at.button(key="distill_train").click().run()
    assert not at.exception and len(at.session_state["trained"]) == 3


# --- pipeline -------------------------------------------------------------------------------------

def test_pipeline_controls_move_size_and_parameters(fmnist):
    at = page("pipeline")
    assert not at.error
    assert at.slider(key="pipe_sparsity").value == 80 and at.radio(key="pipe_sharing").value == "cluster"
    at.slider(key="pipe_sparsity").set_value(90).run()
    at.radio(key="pipe_scope").set_value("layer").run()
    nz90, kb90 = number(metric(at, "Non-zero parameters")), number(metric(at, "Artifact size"))
    assert len(charts(at)) == 3  # waterfall, paper's ratio, byte breakdown

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
    recipe = Recipe(sparsity=0.8, prune_scope="global", clusters=16, huffman=True, finetune_epochs=1)
    assert ("lenet-300-100", recipe.to_json()) in at.session_state["trained"]
    at.run()  # a rerun keeps the trained result; the button is gone
    assert not at.exception and "pipe_train" not in [b.key for b in at.button]
    assert any(c.value.startswith("Fine-tuned 1 epoch") for c in at.caption)


def test_pipeline_renders_for_lenet5(tiny):
    at = page("pipeline", model="lenet-5")
    assert not at.error
    assert number(metric(at, "Non-zero parameters")) < 0.25 * 431_080  # 80 % pruned
    assert any("12×" in c.value for c in at.caption)
