"""The dashboard's cost limit on an uploaded model (zoo.UPLOAD_COST) is an argument (cost_limit=True, which the
sidebar and Export's artifact check pass), sized so ResNet-8 at twice its widths and a LeNet-5 of 256 first filters
pass while the 38 MB LeNet-5 of 4,000 first filters that froze a session is refused; a Python caller is not
limited. Counting the cost does not import torch._dynamo (1.2 s on the first upload), and README states the limits
the code holds."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save

import compress_engine as ce
from compress_engine.core import encode as enc
from compress_engine.playground import zoo

ROOT = Path(__file__).resolve().parents[1]
WIDE_RESNET = {"arch": "resnet", "widths": [128], "inner": [128], "batchnorm": True, "in_channels": 1, "classes": 10}
RESNET8_X2 = {"arch": "resnet", "widths": [64, 128, 256], "inner": [64, 128, 256], "batchnorm": True,
              "in_channels": 1, "classes": 10}
LENET_256 = {"arch": "lenet5", "widths": [256, 50, 500]}
BOMB = {"arch": "lenet5", "widths": [4000, 190, 10]}  # /tmp/s49/r3/wbomb.py: float16, 38 MB


def upload(spec, half=False):
    sd = {k: (v.half() if half and v.is_floating_point() else v).contiguous()
          for k, v in zoo.build(spec).state_dict().items()}
    return save(sd)


@pytest.mark.parametrize("spec", [RESNET8_X2, LENET_256])
def test_models_within_the_limits_are_taken_by_the_dashboard(spec):
    assert isinstance(ce.read_weights(upload(spec), "mine.safetensors", cost_limit=True), torch.nn.Module)


def test_width_128_one_block_resnet_is_over_the_flops_limit_but_a_python_caller_takes_it():
    data = upload(WIDE_RESNET)
    with pytest.raises(zoo.OverLimit) as e:
        ce.read_weights(data, "wide.safetensors", cost_limit=True)
    assert (f"needs 464,230,912 FLOPs per input; models uploaded or checked here are limited to "
            f"{zoo.MAX_UPLOAD_FLOPS:,}") in str(e.value)
    assert isinstance(ce.read_weights(data, "wide.safetensors"), torch.nn.Module)


def test_the_bomb_is_still_refused():
    data = upload(BOMB, half=True)
    assert len(data) <= zoo.MAX_UPLOAD_BYTES
    with pytest.raises(zoo.OverLimit, match="needs 2,547,261,000 FLOPs per input"):
        ce.read_weights(data, "wbomb.safetensors", cost_limit=True)


class NoData:
    def x(self, split):
        return torch.zeros(2, 1, 28, 28)


def test_costly_artifact_is_refused_before_decoding_only_with_the_limit(monkeypatch):
    with torch.no_grad():
        sd = {k: torch.zeros_like(v) for k, v in zoo.build(WIDE_RESNET).state_dict().items()}
    art = enc.encode(sd, meta={"spec": WIDE_RESNET, "model_class": "ResNet", "recipe": {"sparsity": 0.9}})
    decoded = []
    real = zoo.decode_with_meta
    monkeypatch.setattr(zoo, "decode_with_meta", lambda *a: decoded.append(1) or real(*a))
    with pytest.raises(zoo.OverLimit, match="464,230,912 FLOPs per input"):
        ce.evaluate_artifact(art, NoData(), max_params=zoo.MAX_UPLOAD_PARAMS, cost_limit=True)
    assert not decoded


def test_counting_the_cost_does_not_import_dynamo():
    code = ("import sys, torch; from compress_engine.playground import zoo; from safetensors.torch import save\n"
            "sd = {k: v.contiguous() for k, v in zoo.build({'arch': 'lenet5', 'widths': [20, 50, 500]})"
            ".state_dict().items()}\n"
            "zoo.read_weights(save(sd), 'w.safetensors', cost_limit=True)\n"
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True,
                         env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "False"


def test_readme_states_the_limits_the_code_holds():
    text = " ".join(ROOT.joinpath("README.md").read_text().split())
    assert zoo.UPLOAD_COST == (zoo.MAX_UPLOAD_FLOPS, zoo.MAX_UPLOAD_VALUES)
    for n in (zoo.MAX_UPLOAD_PARAMS, zoo.MAX_UPLOAD_FLOPS, zoo.MAX_UPLOAD_VALUES):
        assert f"{n:,}" in text
    with torch.device("meta"):
        wide = zoo.build(WIDE_RESNET)
    assert f"width 128 ({zoo.cost(wide.to_empty(device='cpu'))[0]:,} FLOPs) does not" in text
    assert zoo.cost(zoo.build(RESNET8_X2))[0] <= zoo.MAX_UPLOAD_FLOPS < zoo.cost(wide)[0]
    assert "1 to 6 blocks at any widths" not in text


def test_the_sidebar_refuses_the_bomb_and_export_checks_an_artifact_with_the_limit(tiny, monkeypatch):
    import re

    from test_uploads import sidebar_app, upload as sidebar_upload
    at = sidebar_upload(sidebar_app(), "wbomb.safetensors", upload(BOMB, half=True))
    errors = [re.sub(r"\\(.)", r"\1", e.value) for e in at.sidebar.error]
    assert not at.exception and len(errors) == 1 and "needs 2,547,261,000 FLOPs per input" in errors[0]
    seen = {}
    real = zoo.evaluate_artifact
    monkeypatch.setattr(ce, "evaluate_artifact", lambda *a, **k: seen.update(k) or real(*a, **k))
    from test_app import app
    with torch.no_grad():
        sd = {k: torch.zeros_like(v) for k, v in zoo.build(LENET_256).state_dict().items()}
    art = enc.encode(sd, meta={"spec": LENET_256, "model_class": "LeNet5", "recipe": {"sparsity": 0.9}})
    at = app().run().switch_page("pages/export.py").run()
    at = at.file_uploader(key="artifact_upload").upload("x.cpg", art).run()
    assert not at.exception and seen.get("cost_limit") is True
