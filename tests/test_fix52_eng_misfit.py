"""Weights that do not fit their architecture (an upload whose layers do not chain, an artifact whose tensors
disagree with its header) were refused in tensor shapes only ('fc1.weight is [500, 700], expected [500, 800]'), with
no word of what that means or what to do. The refusal now also says, in words, which layer takes or gives how many
inputs, outputs or channels against the architecture's, and how to fix it; never torch's raw load_state_dict error."""

import io

import pytest
import torch
from test_app import app

import compress_engine as ce
from compress_engine.core.encode import encode
from compress_engine.core.model import artifact_meta
from compress_engine.playground import zoo

RAW = ("size mismatch", "copying a param")


def misfit_artifact():
    """A LeNet-5 artifact whose fc1 holds [500, 700] where its header's LeNet-5 20-50-500 has [500, 800]."""
    torch.manual_seed(0)
    model = zoo.LeNet5()
    state = dict(model.state_dict())
    state["fc1.weight"] = torch.randn(500, 700)
    return encode(state, {}, artifact_meta(model, ce.Recipe()), huffman=False)


def test_an_artifact_whose_tensors_misfit_its_header_is_refused_in_words():
    with pytest.raises(ce.ModelError) as e:
        ce.decode_model(misfit_artifact())
    said = str(e.value)
    assert "fc1.weight is [500, 700], expected [500, 800]" in said  # the layer and both shapes
    assert "layer fc1 takes 700 inputs in the weights given, 800 in the architecture" in said  # in words
    assert "make it again" in said and "--out FILE.cpg" in said  # what to do
    assert not any(r in said for r in RAW)
    # the dashboard's limited check (Export's) refuses it before decoding, in the same words
    with pytest.raises(ce.ModelError) as limited:
        x = torch.rand(4, 1, 28, 28)
        ce.evaluate_artifact(misfit_artifact(), ce.Dataset.from_tensors(x, torch.arange(4), x, torch.arange(4)),
                             max_params=zoo.MAX_UPLOAD_PARAMS, cost_limit=True)
    assert "layer fc1 takes 700 inputs" in str(limited.value) and "make it again" in str(limited.value)


def test_into_the_users_module_too():
    with pytest.raises(ce.ModelError, match=r"layer fc1 takes 700 inputs in the weights given, 800 in the "
                                            r"architecture\); pass a fresh instance"):
        ce.decode_model(misfit_artifact(), module=zoo.LeNet5())


def test_an_upload_whose_layers_do_not_chain_says_which_and_how_to_fix():
    torch.manual_seed(0)
    state = zoo.LeNet5((6, 16, 120)).state_dict()
    state["conv2.weight"] = torch.randn(16, 4, 5, 5)  # conv2 takes 4 channels, conv1 gives 6
    buf = io.BytesIO()
    torch.save(state, buf)
    with pytest.raises(ce.ModelError) as e:
        ce.read_weights(buf.getvalue(), "mine.pt")
    said = str(e.value)
    assert said.startswith("'mine.pt': weights do not fit the architecture they were read as (LeNet-5 with widths "
                           "6-16-120)")
    assert "layer conv2 takes 4 input channels in the weights given, 6 in the architecture" in said
    assert "torch.save(model.state_dict(), path)" in said and not any(r in said for r in RAW)


def test_words_for_each_kind_of_difference():
    words = zoo.shape_words({"fc.weight": ((12, 64), (10, 64)), "fc.bias": ((12,), (10,)),
                             "conv.weight": ((8, 1, 3, 3), (8, 1, 5, 5)), "bn.running_mean": ((7,), (8,)),
                             "head.weight": ((3, 4), (3, 4, 1))}, n=5)
    assert "layer fc gives 12 outputs in the weights given, 10 in the architecture" in words
    assert "fc.bias" not in words  # its layer is named once, by its weight
    assert "layer conv has 3×3 kernels in the weights given, 5×5 kernels in the architecture" in words
    assert "bn.running_mean holds 7 value(s) in the weights given, 8 in the architecture" in words
    assert "head.weight has 2 dimension(s) in the weights given, 3 in the architecture" in words
    assert zoo.shape_words({f"l{i}.weight": ((1, 2), (1, 3)) for i in range(4)}).endswith("(and 2 more layer(s))")


def test_exports_check_tab_shows_it_in_words(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESS_STORE", str(tmp_path / "runs.sqlite"))
    at = app().run().switch_page("pages/export.py").run()
    at = at.file_uploader(key="artifact_upload").upload("theirs.cpg", misfit_artifact()).run()
    assert not at.exception
    said = " ".join(e.value for e in at.error).replace("\\", "")
    assert "layer fc1 takes 700 inputs in the weights given, 800 in the architecture" in said, said
    assert "make it again" in said and not any(r in said for r in RAW)
