"""A model with as many outputs as the data have classes, or more, is taken by the sidebar on those data (a 784-100-5
MLP was refused on a 5-class folder, though Export's check scored the same model compressed, 86.33 %): read_weights
with the server's data accepts exactly what the engine's check of a model against data accepts (check_model, which
Export's artifact check runs through describe), and every page runs on such an upload."""

import io

import pytest
import torch

import compress_engine as ce
from test_fix50_f2_own_data import five_idx  # noqa: F401 - the 5-class 28x28 IDX folder fixture
from test_fix50_f6_upload_messages import data, lenet, mlp
from compress_engine.playground import zoo

CASES = [mlp(784, 100, 5), mlp(784, 100, 10), mlp(784, 100, 3), mlp(256, 30, 5), lenet(), lenet(28, 5),
         lenet(16, 5)]


SHAPES = [((1, 28, 28), 5), ((1, 28, 28), 10), ((1, 16, 16), 5)]


def spec_of(state):
    """The model a state dict holds, read on whichever data it was made for (the spec is the architecture alone);
    None when the sidebar builds it on none (a LeNet-5 built for other than 28x28 images)."""
    if "layers.0.weight" in state:  # an MLP: its sizes are its shapes
        return {"arch": "mlp", "sizes": [state["layers.0.weight"].shape[1]]
                + [state[f"layers.{i}.weight"].shape[0] for i in range(len(state) // 2)]}
    try:  # a LeNet-5 of 28x28 images, of the outputs it has (fix52: read from fc2.weight, no longer 10 only)
        return zoo.infer_spec(state, dataset=data((1, 28, 28), state["fc2.weight"].shape[0], "d"))
    except ce.ModelError:
        return None


@pytest.mark.parametrize("shape, classes", SHAPES)
def test_the_sidebar_takes_what_exports_check_takes(shape, classes):
    """read_weights(dataset=) accepts a model exactly when the engine's check of a model against data (check_model,
    through describe, as Export's artifact check runs it) does, for each model the sidebar can build. (A diff review
    found this test skipping every model of other than 10 outputs: it read each as a Fashion-MNIST model first.)"""
    ds, compared = data(shape, classes, "d"), 0
    for blob in CASES:
        state = torch.load(io.BytesIO(blob), weights_only=True)
        spec = spec_of(state)
        try:
            zoo.read_weights(blob, "mine.pt", dataset=ds)
            sidebar = True
        except ce.ModelError:
            sidebar = False
        if spec is None:  # a LeNet-5 for 16x16 images: refused on any data
            assert not sidebar
            continue
        try:
            ce.describe(zoo.from_state_dict(spec, state), ds)
            engine = True
        except ce.ModelError:
            engine = False
        assert sidebar == engine, (spec, shape, classes)
        compared += 1
    assert compared == len(CASES) - 1  # all but the LeNet-5 for 16x16 images


def test_an_upload_of_as_many_outputs_as_classes_works_on_every_page(five_idx, monkeypatch):  # noqa: F811
    """A 784-100-5 MLP uploaded on 5-class data (the sidebar gives read_weights the server's data):
    added, then every page runs on it, and it teaches two students on Distillation."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from pages import common
    from test_app import app
    monkeypatch.setattr(common, "DATASET", five_idx)
    at = app().run()
    at = at.sidebar.file_uploader(key="weights_upload").upload("five.pt", mlp(784, 100, 5)).run()
    assert not at.exception and not at.sidebar.error, [e.value for e in at.sidebar.error]
    name = at.session_state["model"]
    assert name.startswith("upload-five-")
    for page in ("pruning", "quantization", "clustering", "pipeline", "sensitivity", "distillation", "compare",
                 "export"):
        at.session_state["model"] = name
        at = at.switch_page(f"pages/{page}.py").run()
        assert not at.exception and not at.error, (page, at.exception, [e.value for e in at.error])
    at.session_state["model"] = name
    at = at.switch_page("pages/distillation.py").run()
    at.selectbox(key="distill_teacher").set_value(name).run()
    at.slider(key="distill_epochs").set_value(1).run()
    at.session_state["model"] = name
    at.button(key="distill_train").click().run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    assert {m.label: m.value for m in at.metric}["Teacher parameters"] == "79,005"  # 784·100 + 100 + 100·5 + 5
    assert len([m for m in at.metric if m.label.startswith("Test errors")]) == 2


def test_as_many_outputs_as_classes_or_more_are_taken():
    five = data((1, 28, 28), 5, "five")
    for blob, arch in ((mlp(784, 100, 5), "mlp"), (mlp(784, 100, 10), "mlp"), (lenet(), "lenet5")):
        assert zoo.arch_spec(zoo.read_weights(blob, "mine.pt", cost_limit=True, dataset=five))["arch"] == arch
    with pytest.raises(ce.ModelError, match=r"so its sizes must be \[784, \.\.\., 5 or more\]; on these data the "
                                            r"sidebar takes an MLP of 784 inputs and 5 or more outputs"):
        zoo.read_weights(mlp(784, 100, 3), "mine.pt", dataset=five)
