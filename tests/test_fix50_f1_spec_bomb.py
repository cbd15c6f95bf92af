"""An artifact's header spec is checked against the header's tensors before the spec's model is allocated: a
99-byte artifact whose spec claims a 278 M-weight (or a 20 G-weight) MLP is refused at once with the clear
'weights do not fit the architecture' ModelError, by the dashboard's limited check (what Export calls) as by the
unlimited one, instead of allocating 1 GB (or raising torch's raw RuntimeError for 40 GB). Real artifacts of the
sample models, plain and structured-pruned, still pass the limited check."""

import time
import tracemalloc

import pytest
import torch

import compress_engine as ce
from compress_engine.core import encode as enc
from compress_engine.playground import zoo


class NoData:
    def x(self, split):
        return torch.zeros(2, 1, 28, 28)


@pytest.mark.parametrize("sizes", [[784, 100000, 2000, 10], [784, 100000, 100000, 100000, 10]])
def test_spec_bomb_is_refused_before_allocating(sizes):
    blob = enc.encode({"layers.0.weight": torch.zeros(3, 3)}, meta={"spec": {"arch": "mlp", "sizes": sizes}})
    assert len(blob) < 200
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ce.CompressError) as e:
            ce.evaluate_artifact(blob, NoData(), max_params=zoo.MAX_UPLOAD_PARAMS, cost_limit=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 5
    assert peak < 50 * 2**20
    assert isinstance(e.value, ce.ModelError)
    assert "weights do not fit the architecture" in str(e.value)
    with pytest.raises(ce.ModelError, match="weights do not fit the architecture"):
        ce.evaluate_artifact(blob, NoData())


@pytest.mark.parametrize("name,recipe", [
    ("lenet-300-100", ce.Recipe(sparsity=0.9, bits=4)),
    ("lenet-300-100", ce.Recipe(sparsity=0.5, structured=True)),
    ("lenet-5", ce.Recipe(sparsity=0.8, clusters=16)),
    ("resnet-8", ce.Recipe(bits=8)),
])
def test_sample_models_artifacts_pass_the_limited_check(fmnist, name, recipe):
    data = fmnist.subset(64, 100, "fashion-mnist[tiny]")
    result = ce.compress(ce.load_model(name), recipe, data)
    got = ce.evaluate_artifact(result.artifact, data, max_params=zoo.MAX_UPLOAD_PARAMS, cost_limit=True)
    assert got["artifact_bytes"] == len(result.artifact)
    assert got["accuracy"] == pytest.approx(result.metrics["accuracy"])
