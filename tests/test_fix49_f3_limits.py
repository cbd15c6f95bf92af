"""An uploaded weight file or a checked artifact is bounded in size and in the cost of running it, before anything
is decoded or scored: a 191-byte artifact claiming 30 M zero weights ran for minutes at 2.7 GB in the Export page's
thread, and a 38 MB LeNet-5 with 4,000 first filters froze the sidebar for 400 s at 4.6 GB."""

import time

import pytest
import torch
from safetensors.torch import save
from test_app import app

import compress_engine as ce
from compress_engine.core import encode as enc
from compress_engine.playground import zoo

WIDE = {"arch": "lenet5", "widths": [4000, 190, 10]}  # the 19.1 M-weight upload that froze the sidebar


def artifact(spec):
    with torch.no_grad():
        sd = {k: torch.zeros_like(v) for k, v in zoo.build(spec).state_dict().items()}
    return enc.encode(sd, meta={"spec": spec, "model_class": "LeNet5", "recipe": {"sparsity": 0.9}})


class NoData:
    """Stands for a dataset the checks must refuse before reading: only the test inputs' shape is asked."""

    def x(self, split):
        return torch.zeros(2, 1, 28, 28)


def no_decoding(monkeypatch):
    monkeypatch.setattr(zoo, "decode_with_meta", lambda *a: pytest.fail("decoded an artifact over the limit"))


def test_artifact_with_more_weights_than_the_limit_is_refused_from_its_header(monkeypatch):
    spec = {"arch": "lenet5", "widths": [20, 50, 500]}
    art = artifact(spec)
    no_decoding(monkeypatch)
    n = sum(v.numel() for v in zoo.build(spec).state_dict().values())
    start = time.perf_counter()
    with pytest.raises(zoo.OverLimit) as e:
        ce.evaluate_artifact(art, NoData(), max_params=n - 1)
    assert time.perf_counter() - start < 1
    assert f"{n:,} weights" in str(e.value) and f"limited to {n - 1:,}" in str(e.value)


def test_artifact_that_costs_too_much_per_input_is_refused_before_decoding(monkeypatch):
    art = artifact({"arch": "lenet5", "widths": [20, 50, 500]})
    no_decoding(monkeypatch)
    monkeypatch.setattr(zoo, "UPLOAD_COST", (1000, 10**9))
    with pytest.raises(zoo.OverLimit) as e:
        ce.evaluate_artifact(art, NoData(), max_params=zoo.MAX_UPLOAD_PARAMS, cost_limit=True)
    assert "4,586,000 FLOPs per input" in str(e.value) and "limited to 1,000" in str(e.value)


def test_the_costly_upload_is_refused_and_the_sample_models_pass():
    for name, (spec, _) in zoo.cards.SAMPLES.items():
        zoo.check_cost(zoo.build(spec), zoo.IMAGE, name)
    with pytest.raises(zoo.OverLimit) as e:
        zoo.check_cost(zoo.build(WIDE), zoo.IMAGE, "wide.safetensors")
    assert "wide.safetensors needs 2,547,261,000 FLOPs per input" in str(e.value)
    assert f"limited to {zoo.MAX_UPLOAD_FLOPS:,}" in str(e.value)


def test_read_weights_refuses_a_costly_model_when_asked(monkeypatch):
    sd = {k: v.contiguous() for k, v in zoo.build({"arch": "lenet5", "widths": [20, 50, 500]}).state_dict().items()}
    data = save(sd)
    monkeypatch.setattr(zoo, "UPLOAD_COST", (10**12, 1000))
    with pytest.raises(zoo.OverLimit) as e:
        ce.read_weights(data, "w.safetensors", cost_limit=True)
    assert "needs 11,520 values in its largest layer output" in str(e.value) and "w.safetensors" in str(e.value)
    ce.read_weights(data, "w.safetensors")  # a Python caller's: not limited


def test_export_check_tab_says_the_artifact_is_too_large(tiny, monkeypatch):
    art = artifact({"arch": "lenet5", "widths": [20, 50, 500]})
    monkeypatch.setattr(zoo, "MAX_UPLOAD_PARAMS", 1000)
    at = app().run().switch_page("pages/export.py").run()
    at = at.file_uploader(key="artifact_upload").upload("bomb.cpg", art).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("This artifact is too large to check here: the artifact's "
                                                     "model has 431,080 weights")
    assert "limited to 1,000" in errors[0]
