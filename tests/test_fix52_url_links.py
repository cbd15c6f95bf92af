"""A page's settings and the sidebar's model travel in the page's URL (bind="query-params", pages.common.LINK): a
teacher's reload or a link sent to the class opens the same view. Before, every slider, toggle and the model went
back to their starts.

AppTest passes at.query_params as the URL a session opens on. Its page runs run the page alone (no sidebar), so a
link's model is read by a first run of app.py (Home), as a browser's first visit does, then the page opens.
"""

import pytest

import compress_engine as ce
from test_app import app, metric, number


def opened(params, page=None, model=None):
    """A fresh session opened on a link with these query parameters; then `page` (pages/<page>.py)."""
    at = app()
    at.query_params = dict(params)
    if model:
        at.session_state["model"] = model
    at.run()
    assert not at.exception, at.exception
    if page:
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, at.exception
    return at


def test_link_opens_pruning_view(fmnist):
    at = opened({"model": "lenet-5", "prune_sparsity": "90", "prune_scope": "Per layer"}, "pruning")
    assert at.session_state["model"] == "lenet-5"
    assert at.slider(key="prune_sparsity").value == 90  # not the start (80 % global)
    assert at.radio(key="prune_scope").value == "layer"
    # the page computes what the link says: the engine's own count for LeNet-5 pruned 90 % per layer
    ref = ce.compress(ce.load_model("lenet-5"), ce.Recipe(sparsity=0.9, prune_scope="layer"), fmnist, evaluate=False)
    assert number(metric(at, "Non-zero parameters")) == ref.metrics["nonzero_params"]
    dense = ce.compress(ce.load_model("lenet-5"), ce.Recipe(), fmnist, evaluate=False)
    assert ref.metrics["nonzero_params"] < 0.2 * dense.metrics["nonzero_params"]  # the link's setting, not dense


@pytest.mark.parametrize("page, params, values", [
    ("clustering", {"cluster_k": "32", "cluster_sparsity": "50", "cluster_huffman": "true"},
     {"cluster_k": 32, "cluster_sparsity": 50, "cluster_huffman": True}),
    ("quantization", {"quant_bits": "6", "quant_calibration": "MSE (search the clipping range)"},
     {"quant_bits": 6, "quant_calibration": "mse"}),
    ("pipeline", {"pipe_sparsity": "0", "pipe_sharing": "Quantize (uniform grid)", "pipe_bits": "5"},
     {"pipe_sparsity": 0, "pipe_sharing": "quantize", "pipe_bits": 5}),
    ("export", {"export_sparsity": "70.0", "export_sharing": "uniform bits", "export_bits": "3"},
     {"export_sparsity": 70.0, "export_sharing": "uniform bits", "export_bits": 3}),
])
def test_link_sets_each_pages_knobs(fmnist, page, params, values):
    at = app()
    at.query_params = dict(params)
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, at.exception
    assert {k: at.session_state[k] for k in values} == values


def test_invalid_link_values_open_on_the_default(fmnist):
    at = opened({"model": "nope", "prune_sparsity": "500"})
    assert at.session_state["model"] == "lenet-300-100"
    note = " ".join(w.value for w in at.sidebar.warning)
    assert "nope" in note and "not on this server" in note and "upload" in note
    assert "model" not in at.query_params  # the bad value is dropped from the URL
    at.switch_page("pages/pruning.py").run()
    assert not at.exception and not at.error
    assert at.slider(key="prune_sparsity").value == 80  # the start, the out-of-range value ignored
    assert "prune_sparsity" not in at.query_params
    at.session_state["model"] = "lenet-5"  # choosing a model ends the note
    at.switch_page("pages/home.py").run()
    assert not at.exception and not at.sidebar.warning


def test_widget_default_is_the_opening(fmnist):
    """Streamlit leaves a bound widget's value out of the URL while it equals the widget's default: that default
    is the page's opening (the model's start), so 0 % sparsity, the slider's minimum, stays in a reload's URL."""
    at = app()
    at.switch_page("pages/pruning.py").run()
    assert list(at.slider(key="prune_sparsity").proto.default) == [80]
    at.session_state["model"] = "resnet-8"  # an untouched setting still follows the model, and its default with it
    at.run()
    assert at.slider(key="prune_sparsity").value == 40 and list(at.slider(key="prune_sparsity").proto.default) == [40]
    assert at.radio(key="prune_scope").value == "layer" and at.radio(key="prune_scope").proto.default == 0


def test_linked_setting_is_chosen(fmnist):
    """A link's value wins over the start on a first load; it is the visitor's choice, so a model switch keeps the
    page's settings whole (as after a moved slider), where an untouched page follows the model."""
    at = app()
    at.query_params = {"prune_sparsity": "60"}
    at.switch_page("pages/pruning.py").run()
    assert at.slider(key="prune_sparsity").value == 60
    at.session_state["model"] = "lenet-5"  # its start is 80 % global: an untouched page would move to it
    at.run()
    assert not at.exception
    assert at.slider(key="prune_sparsity").value == 60 and at.radio(key="prune_scope").value == "global"


def test_link_naming_another_sessions_teacher(fmnist):
    """Uploads are not shareable: a link naming one as Distillation's teacher opens on the default teacher, and says
    why, where it silently showed another teacher."""
    at = app()
    at.query_params = {"distill_teacher": "my-net (upload)", "distill_T": "4.0"}
    at.switch_page("pages/distillation.py").run()
    assert not at.exception
    assert at.selectbox(key="distill_teacher").value == "resnet-8" and at.slider(key="distill_T").value == 4.0
    note = " ".join(w.value for w in at.warning).replace("\\", "")  # as Markdown renders it
    assert "my-net" in note and "not on this server" in note


def test_preset_and_fit_write_the_url(fmnist):
    """A button that sets the knobs through session state (Pipeline's Deep Compression preset, Pruning's FLOPs Fit)
    puts them in the URL too, so a reload after it keeps them."""
    at = app()
    at.switch_page("pages/pipeline.py").run()
    assert "pipe_sparsity" not in at.query_params  # the start: left out of the URL
    at.button(key="pipe_preset").click().run()
    assert not at.exception
    assert at.query_params["pipe_sparsity"] == "92" and at.slider(key="pipe_sparsity").value == 92
    at = app()
    at.query_params = {"prune_structured": "true"}
    at.switch_page("pages/pruning.py").run()
    at.button(key="prune_flops_fit").click().run()
    assert not at.exception
    fitted = at.slider(key="prune_sparsity").value
    assert fitted != 80 and at.query_params["prune_sparsity"] == str(fitted)
