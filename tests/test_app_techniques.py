"""AppTest of the three post-training technique pages: pruning, clustering, quantization.

Each page renders without an exception and its main control moves the metric it should. Training
(the pruning page's fine-tune switch and fine-tuned curve) runs on a tiny IDX slice of Fashion-MNIST,
selected through pages.common.DATASET, so it takes seconds.
"""

import json
import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import compress_engine as ce
from compress_engine.core import structured
from compress_engine.playground import units
from test_app import metric, number, page
from conftest import plots


def chart(at, title):
    """The plotly spec of the chart with this title."""
    specs = [json.loads(c) for c in plots(at)]
    return next(s for s in specs if s["layout"].get("title", {}).get("text", "").startswith(title))


def finetuned_points(at):
    """The sparsities (%) of the pruning page's fine-tuned curve (empty if it is not drawn)."""
    series = [t for t in chart(at, "Accuracy vs sparsity")["data"] if t.get("name") == "fine-tuned 1 epoch"]
    return set(series[0]["x"]) if series else set()


# --- pruning ------------------------------------------------------------------------------------

def test_pruning_sparsity_scope_and_structure(fmnist):
    at = page("pruning")
    assert at.slider(key="prune_sparsity").value == 80
    at.slider(key="prune_sparsity").set_value(0).run()
    assert not at.exception
    dense_nz, dense_kb = number(metric(at, "Non-zero parameters")), number(metric(at, "Artifact size"))
    assert dense_nz == sum(int(p.count_nonzero()) for p in ce.load_model("lenet-300-100").parameters())

    at.slider(key="prune_sparsity").set_value(90).run()
    at.radio(key="prune_scope").set_value("layer").run()
    assert not at.exception and not at.error
    nz, kb = number(metric(at, "Non-zero parameters")), number(metric(at, "Artifact size"))
    assert nz < 0.15 * dense_nz and kb < dense_kb / 4
    # the size's change and the ratio have one base: the dense float32 bytes Home's card gives
    dense_float = ce.model_card("lenet-300-100")["dense_bytes"] / 1000
    size_card = next(m for m in at.metric if m.label == "Artifact size")
    assert number(size_card.delta) == pytest.approx(kb - dense_float, abs=0.051)
    assert number(metric(at, "Compression ratio")) == pytest.approx(dense_float / kb, abs=0.051)
    layer_acc = number(metric(at, "Test accuracy"))

    at.radio(key="prune_scope").set_value("global").run()
    assert not at.exception
    assert number(metric(at, "Non-zero parameters")) == nz  # same count, other weights
    assert number(metric(at, "Test accuracy")) != layer_acc
    # the caption names the layer the one threshold cut hardest, read off the chart beside it (it said "the big
    # layers hardest" under a ResNet-8 chart where the biggest layer lost least)
    bars = next(b for b in chart(at, "Sparsity per layer")["data"] if b["type"] == "bar")
    hardest = bars["x"][max(range(len(bars["text"])), key=lambda i: float(bars["text"][i].split()[0]))]
    said = next(c.value for c in at.caption if c.value.startswith("One threshold for every layer"))
    assert (said.startswith(f"One threshold for every layer: here {hardest} lost the most")
            or said.startswith(f"One threshold for every layer: here the biggest layer, {hardest}, lost the most")), said
    assert said.count(hardest) == 1, said  # it named the layer twice when the hardest hit was the biggest

    # structured forces the per-layer scope (the Recipe refuses global + structured)
    at.toggle(key="prune_structured").set_value(True).run()
    assert not at.exception and not at.error
    assert at.radio(key="prune_scope").value == "layer" and at.radio(key="prune_scope").disabled
    assert number(metric(at, "Non-zero parameters")) < 0.2 * dense_nz
    # what the smaller model costs to run, as FlopCounterMode counts the model torch's own pruning would leave
    model, x = ce.load_model("lenet-300-100"), torch.zeros(1, 1, 28, 28)
    small = structured.prune_structured(model, 0.9, x)
    with FlopCounterMode(display=False) as counter:
        small(x)
    said = [c.value for c in at.caption if "MFLOPs per image" in c.value]
    assert said and f"needs {counter.get_total_flops() / 1e6:,.2f} MFLOPs per image against the dense model's 0.53" \
        in said[0], said
    # the slider and the curve speak of units now, and each one-shot point says what its model costs to run
    assert at.slider(key="prune_sparsity").label == "Sparsity: share of each layer's units removed"
    curve = chart(at, "Accuracy vs sparsity")
    assert curve["layout"]["xaxis"]["title"]["text"] == "units removed per layer (%)"
    oneshot = next(t for t in curve["data"] if t.get("name") == "one-shot")
    assert oneshot["text"][oneshot["x"].index(90)].endswith(f", {counter.get_total_flops() / 1e6:,.2f} MFLOPs")

    at.selectbox(key="prune_mask_layer").set_value("layers.1.weight").run()
    assert not at.exception
    assert at.button(key="prune_ft_curve")  # the fine-tuned curve waits behind its button
    assert at.button(key="prune_save")


def test_pruning_fits_a_flops_budget(tiny):
    """Structured mode's FLOPs budget moves the slider to the smallest whole % whose model, as compress() builds and
    counts it, fits; one % less does not. A budget no sparsity reaches says what to ask for, and nothing moves.
    (On the tiny slice: FLOPs and timings do not depend on how many test images the page's curve scores.)"""
    at = page("pruning", model="lenet-5")
    assert not at.number_input  # a FLOPs budget means whole units: only in structured mode
    at.toggle(key="prune_structured").set_value(True).run()
    at.number_input(key="prune_flops_pct").set_value(25.0).run()
    at.button(key="prune_flops_fit").click().run()
    assert not at.exception and not at.error
    pct = at.slider(key="prune_sparsity").value
    model = ce.load_model("lenet-5")
    data = ce.load_dataset(tiny)  # the page's data
    flops = {p: ce.compress(model, ce.Recipe(structured=True, sparsity=p / 100), data, evaluate=False).metrics
             for p in (pct - 1, pct)}
    dense = flops[pct]["dense_flops"]
    assert flops[pct]["flops"] <= 0.25 * dense < flops[pct - 1]["flops"]
    assert f"{pct} % is the smallest sparsity that fits 25 % of the FLOPs." in [c.value for c in at.caption]
    assert any(f"needs {flops[pct]['flops'] / 1e6:,.2f} MFLOPs per image" in c.value for c in at.caption)

    # and how much faster it really runs here: timed on request, beside what the FLOPs say
    assert not [m for m in at.metric if m.label == "Speed-up"]
    at.button(key="prune_speed_go").click().run()
    assert not at.exception and not at.error
    (timed,) = at.session_state["prune_speed"].values()
    assert metric(at, "Speed-up") == f"{timed['speedup']:.1f}×" and timed["speedup"] == timed["dense_ms"] / timed["ms"]
    assert any(f"The FLOPs fall {dense / flops[pct]['flops']:.1f}×" in c.value for c in at.caption)
    one = timed["one"]  # and one image at a time, a single request
    assert one["batch"] == 1 and one["speedup"] == one["dense_ms"] / one["ms"]
    assert any(f"One image at a time (a single request, {one['repeats']} turns)" in c.value
               and f"{units.ratio(one['speedup'])} faster" in c.value for c in at.caption)
    assert at.button(key="prune_speed_go").label == "Time again"
    timing = ce.speedup
    try:  # a timing that fails says so on the page, and the button stays
        ce.speedup = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("out of memory"))
        at.button(key="prune_speed_go").click().run()
    finally:
        ce.speedup = timing
    assert not at.exception
    assert [e.value for e in at.error] == ["Timing failed (RuntimeError: out of memory); press the button to try again."]
    assert at.button(key="prune_speed_go").label == "Time the dense and the pruned model on this CPU"

    at.number_input(key="prune_flops_pct").set_value(0.1).run()
    at.button(key="prune_flops_fit").click().run()
    assert not at.exception
    assert at.slider(key="prune_sparsity").value == pct
    (error,) = at.error
    assert "A budget of 0.1 % of the FLOPs is out of reach: with 99 % of every layer's units removed" in error.value
    floor = ce.compress(model, ce.Recipe(structured=True, sparsity=0.99), data, evaluate=False).metrics["flops"]
    assert f"ask for at least {math.ceil(1000 * floor / dense) / 10:g} %" in error.value, error.value
    at.slider(key="prune_sparsity").set_value(60).run()  # said once; and the fit's caption goes with its value
    assert not at.error and not any("smallest sparsity" in c.value for c in at.caption)


def test_pruning_fine_tune_switch_and_curve(tiny, monkeypatch):
    from pages import common
    at = page("pruning")
    at.slider(key="prune_sparsity").set_value(95).run()
    oneshot = number(metric(at, "Test accuracy"))
    real, asked = common.train_run, []
    monkeypatch.setattr(common, "train_run", lambda *a, **kw: asked.append(kw.get("cancel_resets")) or real(*a, **kw))
    at.toggle(key="prune_finetune").set_value(True).run()
    assert not at.exception and not at.error
    assert set(asked) == {"prune_finetune"}  # its Cancel turns the switch off: the one-shot page again, not an empty one
    assert number(metric(at, "Test accuracy")) != oneshot
    assert finetuned_points(at) == {0, 95}

    at.button(key="prune_ft_curve").click().run()
    assert not at.exception and not at.error
    assert finetuned_points(at) == {0, 30, 50, 70, 80, 85, 90, 93, 95, 97, 99}
    assert "prune_ft_curve" not in [b.key for b in at.button]  # every point done: the button is gone


def test_save_run_from_a_technique_page(tiny, tmp_path, monkeypatch):
    from compress_engine.playground.store import Store
    monkeypatch.setenv("COMPRESS_STORE", str(tmp_path / "runs.sqlite"))
    at = page("clustering")
    at.slider(key="cluster_sparsity").set_value(50).run()
    at.button(key="cluster_save").click().run()
    assert not at.exception and not at.error
    rows = Store().list()
    assert len(rows) == 1 and rows[0]["technique"] == "prune+cluster" and rows[0]["model"] == "lenet-300-100"
    # keyed as a sweep keys the same point (model, recipe, the data's name and content): stored once, either way
    from compress_engine.playground import sweeps
    _, model_id, _ = sweeps._the_model("lenet-300-100", None)
    _, data_id, _ = sweeps._the_data(tiny)
    assert Store().stored_points([sweeps.point_key(model_id, ce.Recipe.from_json(rows[0]["recipe"]), data_id)])


# --- clustering -----------------------------------------------------------------------------------

def test_clustering_k_huffman_and_pruning(fmnist):
    at = page("clustering")
    assert at.select_slider(key="cluster_k").value == 16
    kb16, acc16 = number(metric(at, "Artifact size")), number(metric(at, "Test accuracy"))
    at.select_slider(key="cluster_k").set_value(4).run()
    assert not at.exception
    kb4, acc4 = number(metric(at, "Artifact size")), number(metric(at, "Test accuracy"))
    assert kb4 < kb16 and acc4 < acc16

    at.toggle(key="cluster_huffman").set_value(True).run()
    assert not at.exception and number(metric(at, "Artifact size")) < kb4

    at.slider(key="cluster_sparsity").set_value(90).run()
    at.radio(key="cluster_init").set_value("kmeans++").run()
    at.selectbox(key="cluster_layer").set_value("layers.2.weight").run()
    assert not at.exception and not at.error
    assert number(metric(at, "Non-zero parameters")) < 0.15 * 266_610
    assert any("⌈" in x.value or "lceil" in x.value for x in at.latex)


# --- quantization ---------------------------------------------------------------------------------

def test_quantization_bits_scheme_and_int8(fmnist):
    at = page("quantization")
    assert at.select_slider(key="quant_bits").value == 4
    kb4 = number(metric(at, "Artifact size"))
    assert number(metric(at, "float32")) > 0 and number(metric(at, "int8")) > 0  # the torch.ao runtime
    at.select_slider(key="quant_bits").set_value(8).run()
    assert not at.exception
    assert number(metric(at, "Artifact size")) > kb4

    at.radio(key="quant_per_channel").set_value(True).run()
    at.radio(key="quant_calibration").set_value("mse").run()
    assert not at.exception and not at.error
    assert any("channel 0" in c.value for c in at.caption)

    # the Recipe refuses a symmetric 1-bit grid: moving to 1 bit switches the grid to affine and disables it, saying
    # why, instead of blanking the page with the refusal
    at.radio(key="quant_symmetric").set_value(True).run()
    at.select_slider(key="quant_bits").set_value(1).run()
    assert not at.exception and not at.error
    grid = at.radio(key="quant_symmetric")
    assert grid.value is False and grid.disabled and "affine" in grid.help
    assert "q in [0, 1]" in " ".join(c.value for c in at.caption)  # the histogram's grid: affine 1-bit

    at.select_slider(key="quant_bits").set_value(16).run()
    assert not at.exception and not at.error


# --- the conv model, on the tiny slice --------------------------------------------------------------

def test_pages_render_for_lenet5(tiny):
    for name in ("pruning", "clustering", "quantization"):
        at = page(name, model="lenet-5")
        assert not at.error
        assert number(metric(at, "Non-zero parameters")) > 0
    at = page("pruning", model="lenet-5")
    at.selectbox(key="prune_mask_layer").set_value("conv2.weight").run()
    at.toggle(key="prune_structured").set_value(True).run()
    assert not at.exception and not at.error


# --- settings outlive leaving a page -------------------------------------------------------------

def test_a_pages_settings_are_there_when_the_visitor_comes_back(tiny):
    """Streamlit drops the state of widgets a run does not draw: a teacher who set 6 bits, showed Pruning and came
    back found the start (4 bits) again, and a Fit's budget was gone while it trained on. Kept settings come back,
    whether the page starts them (quant_bits), gives a default (cluster_sparsity, budget_kb) or neither (the grid)."""
    at = page("quantization")
    at.select_slider(key="quant_bits").set_value(6).run()
    at.radio(key="quant_calibration").set_value("mse").run()
    at.switch_page("pages/clustering.py").run()
    at.slider(key="cluster_sparsity").set_value(30).run()
    at.switch_page("pages/sensitivity.py").run()
    at.number_input(key="budget_kb").set_value(20.0).run()
    at.switch_page("pages/pruning.py").run()
    at.toggle(key="prune_finetune").set_value(True).run()
    at.switch_page("pages/home.py").run()
    assert not at.exception, at.exception
    at.switch_page("pages/quantization.py").run()
    assert at.select_slider(key="quant_bits").value == 6 and at.radio(key="quant_calibration").value == "mse"
    at.switch_page("pages/clustering.py").run()
    assert at.slider(key="cluster_sparsity").value == 30
    at.switch_page("pages/sensitivity.py").run()
    assert at.number_input(key="budget_kb").value == 20.0
    at.switch_page("pages/pruning.py").run()
    assert at.toggle(key="prune_finetune").value is True
    assert not at.exception, at.exception


def test_a_setting_tied_to_the_model_starts_again_for_another_model(tiny):
    """The fine-tune switch trains, and the budget's range is the model's: another model starts them afresh."""
    at = page("pruning")
    at.toggle(key="prune_finetune").set_value(True).run()
    at.switch_page("pages/sensitivity.py").run()
    start = at.number_input(key="budget_kb").value
    at.number_input(key="budget_kb").set_value(start + 3).run()
    at.session_state["model"] = "lenet-5"
    at.switch_page("pages/pruning.py").run()
    assert at.toggle(key="prune_finetune").value is False
    at.session_state["model"] = "lenet-5"  # again: AppTest keeps the sidebar widget's last value once a run reran
    at.switch_page("pages/sensitivity.py").run()
    assert at.number_input(key="budget_kb").value != start + 3
    assert not at.exception, at.exception
