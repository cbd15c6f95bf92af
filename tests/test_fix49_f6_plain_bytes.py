"""compress() with huffman=True encoded the whole model a second time, with fixed-width codes, only to report
metrics["plain_bytes"]. encode(..., plain_meta=) now measures that length in the same pass; it must be exactly the
length of the fixed-width artifact."""

import numpy as np
import pytest
import torch

import compress_engine as ce
from compress_engine.core import encode as enc
from compress_engine.core.model import artifact_meta

RECIPES = [dict(bits=4, huffman=True), dict(sparsity=0.9, clusters=16, huffman=True),
           dict(sparsity=0.7, clusters=8, huffman=True, bias_bits=8), dict(bits=4, per_channel=True, huffman=True),
           dict(sparsity=0.95, huffman=True), dict(bits=2, symmetric=True, sparsity=0.5, huffman=True),
           dict(structured=True, sparsity=0.5, bits=8, huffman=True), dict(clusters=2, huffman=True)]


@pytest.mark.parametrize("name", ["lenet-300-100", "lenet-5", "resnet-8"])
def test_plain_bytes_is_the_fixed_width_artifacts_length_in_one_pass(fmnist, monkeypatch, name):
    model = ce.load_model(name)
    passes = []
    real = enc._encode
    monkeypatch.setattr(enc, "_encode", lambda *a: passes.append(a[3]) or real(*a))
    for kw in RECIPES:
        passes.clear()
        r = ce.compress(model, ce.Recipe(**kw), fmnist, evaluate=False)
        assert passes in ([], [False])  # no second full pass (one only where Huffman saved too little to keep)
        state = {k: v.detach().contiguous() for k, v in r.model.state_dict().items()}
        plain = real(state, r.grids, artifact_meta(r.model, r.recipe.replace(huffman=False)), False)[0]
        assert r.metrics["plain_bytes"] == len(plain), kw
        if not passes:  # the artifact is the entropy-coded one, as a plain encode() call writes it
            assert r.artifact == enc.encode(state, r.grids, artifact_meta(r.model, r.recipe), huffman=True)


def test_encode_measures_every_layout_and_dtype_exactly():
    rng = np.random.default_rng(0)
    w = torch.from_numpy(rng.standard_normal((64, 300)).astype(np.float32))
    sparse = torch.where(torch.rand(64, 300, generator=torch.Generator().manual_seed(1)) < 0.97, 0.0, w)
    levels = torch.tensor([-0.5, -0.25, 0.25, 0.5])
    shared = levels[torch.randint(0, 4, (200, 50), generator=torch.Generator().manual_seed(2))]
    shared[:150] = 0.0
    q = torch.randint(-8, 8, (32, 40), generator=torch.Generator().manual_seed(3)).float() * 0.125
    tensors = {"w": w, "sparse": sparse, "shared": shared, "q": q, "steps": torch.tensor(7),
               "mask": torch.rand(10) > 0.5, "half": w[:3].half(), "empty": torch.zeros(0, 4)}
    grids = {"shared": enc.Codebook(levels.numpy()), "q": enc.Affine(np.array([0.125], np.float32), np.array([0]),
                                                                      -8, 7)}
    blob, plain = enc.encode(tensors, grids, {"r": {"huffman": True}}, huffman=True, plain_meta={"r": {"huffman": False}})
    assert blob == enc.encode(tensors, grids, {"r": {"huffman": True}}, huffman=True)
    assert plain == len(enc.encode(tensors, grids, {"r": {"huffman": False}}, huffman=False))
