"""Property tests (hypothesis): encode/decode is bit-exact for any shape, sparsity and grid the engine
builds; any recipe dict or JSON text gives a Recipe or a RecipeError, nothing else; compress() with
random valid recipes gives an artifact whose length is its size and which decodes to the model.

(tests/test_encode.py already feeds decode random and mangled bytes; not repeated here.)
"""

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import roundtrip, same
import compress_engine as ce
from compress_engine.playground import zoo as models
from compress_engine.core.encode import Affine, Codebook, decode, encode
from compress_engine.core.quantize import qrange
from compress_engine.core.recipe import BITS, CHOICES, RANGES, Recipe

FIELDS = list(Recipe.__dataclass_fields__)


def fast(n):
    """settings for n examples: no per-example deadline (the machine is shared), no slowness health checks."""
    return settings(max_examples=n, deadline=None, suppress_health_check=[
        HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])


# ----------------------------------------------------------------------------- encode / decode

shapes = st.lists(st.integers(0, 7), min_size=0, max_size=4).filter(lambda s: math.prod(s) <= 400)
specials = st.sampled_from([np.inf, -np.inf, np.nan, 1e-45, -1e-45, 3.4e38, -3.4e38, 1.0, -1.0])


def sparsify(w, sparsity, rng):
    """Zero a `sparsity` fraction of the elements, half of them as -0.0 (as w * mask gives)."""
    flat = w.reshape(-1).copy()
    drop = rng.random(flat.size) < sparsity
    flat[drop] = np.where(rng.random(int(drop.sum())) < 0.5, np.float32(0.0), np.float32(-0.0))
    return flat.reshape(w.shape)


@st.composite
def raw_tensor(draw, shape, rng):
    """Any float32 bit patterns (NaN payloads, infinities, subnormals), or normal weights, no grid."""
    if draw(st.booleans()):
        bits = rng.integers(0, 2 ** 32, size=shape, dtype=np.uint64).astype(np.uint32)
        return bits.view(np.float32), None
    return rng.standard_normal(shape).astype(np.float32), None


@st.composite
def codebook_tensor(draw, shape, rng):
    """Weight sharing as cluster.py leaves it: k float32 centroids (2..256), every element one of them."""
    k = draw(st.integers(2, 256))
    values = (rng.standard_normal(k) * 10.0 ** draw(st.integers(-6, 3))).astype(np.float32)
    if draw(st.booleans()):
        values[0] = draw(specials)
    values = np.unique(values)
    w = values[rng.integers(0, values.size, size=shape)] if values.size else np.zeros(shape, np.float32)
    return w.astype(np.float32).reshape(shape), Codebook(values)


@st.composite
def affine_tensor(draw, shape, rng):
    """Uniform quantization as quantize.py builds it: qrange(bits), positive float32 scales, zero points
    clamped into [qmin, qmax] (0 if symmetric), per tensor or per output channel; values on the grid."""
    bits = draw(st.sampled_from(BITS))
    symmetric = draw(st.booleans()) and bits > 1  # a symmetric 1-bit grid is refused (qrange)
    per_channel = draw(st.booleans()) and len(shape) >= 1 and shape[0] >= 1
    qmin, qmax = qrange(bits, symmetric)
    c = shape[0] if per_channel else 1
    scale = (rng.random(c) * 10.0 ** draw(st.integers(-6, 2)) + 1e-8).astype(np.float32)
    zp = np.zeros(c, np.int64) if symmetric else rng.integers(qmin, qmax + 1, c)
    q = rng.integers(qmin, qmax + 1, size=shape)
    bshape = (c,) + (1,) * (len(shape) - 1) if per_channel else ()
    w = (torch.from_numpy(np.asarray(q - zp.reshape(bshape))).to(torch.float32)
         * torch.from_numpy(scale.reshape(bshape)))  # the engine's float32(q - zp) * scale
    return w.numpy().astype(np.float32).reshape(shape), Affine(scale, zp, qmin, qmax)


@fast(200)
@given(st.data())
def test_decode_encode_is_bit_exact(data):
    """decode(encode(x)) == x bit for bit, for 1-3 tensors of any shape (0-4 dims, empty ones too),
    sparsity 0..1, raw / codebook (2..256 values) / affine (1-8 or 16 bits, per tensor or channel) grids,
    with and without Huffman coding; the size breakdown sums to the artifact's length."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1), label="seed"))
    tensors, grids = {}, {}
    for i in range(data.draw(st.integers(1, 3), label="tensors")):
        shape = tuple(data.draw(shapes, label="shape"))
        kind = data.draw(st.sampled_from([raw_tensor, codebook_tensor, affine_tensor]), label="grid")
        w, grid = data.draw(kind(shape, rng))
        w = sparsify(w, data.draw(st.floats(0, 1), label="sparsity"), rng)
        tensors[f"t{i}"] = torch.from_numpy(np.ascontiguousarray(w).reshape(shape))
        if grid is not None:
            grids[f"t{i}"] = grid
    huffman = data.draw(st.booleans(), label="huffman")
    blob = roundtrip(tensors, grids, huffman, meta={"case": 1})
    if huffman:
        assert len(blob) <= len(encode(tensors, grids, meta={"case": 1}))


# ----------------------------------------------------------------------------- recipes from anywhere

scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(-2 ** 1000, 2 ** 1000),  # beyond float range too
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, 2, 4, 8, 16, 0.5, 0.9, 0.999, 1.0, -1, 2 ** 31, 1e-7, 1e308, -0.0]),
    st.text(max_size=12), st.sampled_from([v for vs in CHOICES.values() for v in vs] + ["", "None", "true"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                      max_leaves=6)
field_names = st.one_of(st.sampled_from(FIELDS), st.text(max_size=15))


def builds_or_recipe_error(make):
    """make() returns a Recipe (which survives a JSON round trip) or raises RecipeError; anything else fails."""
    try:
        r = make()
    except ce.RecipeError as e:
        assert str(e)
        return None
    assert isinstance(r, Recipe) and Recipe.from_json(r.to_json()) == r
    return r


@fast(250)
@given(st.dictionaries(st.sampled_from(FIELDS), values, max_size=6))
def test_any_field_values_build_a_recipe_or_raise_recipe_error(fields):
    builds_or_recipe_error(lambda: Recipe(**fields))
    builds_or_recipe_error(lambda: Recipe.from_dict(fields))


@fast(200)
@given(st.dictionaries(field_names, values, max_size=6))
def test_any_dict_builds_a_recipe_or_raises_recipe_error(fields):
    builds_or_recipe_error(lambda: Recipe.from_dict(fields))


@fast(200)
@given(st.one_of(st.text(max_size=200), st.dictionaries(field_names, values, max_size=6).map(json.dumps),
                 values.map(json.dumps)))
def test_any_text_builds_a_recipe_or_raises_recipe_error(text):
    builds_or_recipe_error(lambda: Recipe.from_json(text))


@pytest.mark.parametrize("make", [
    lambda: Recipe(sparsity=10 ** 400),
    lambda: Recipe.from_dict({"seed": -(10 ** 400)}),
    lambda: Recipe.from_json("[" * 100_000),
    lambda: Recipe.from_dict({1: 2, "a": 3}),
], ids=["huge-int-sparsity", "huge-int-seed", "deep-json", "mixed-type-keys"])
def test_inputs_the_properties_found(make):
    """Inputs the properties above found (each once raised OverflowError, RecursionError or TypeError)."""
    with pytest.raises(ce.RecipeError):
        make()


# ----------------------------------------------------------------------------- compress() end to end

@st.composite
def valid_recipes(draw):
    """Small valid recipes: every technique, fine-tuning at most one epoch of the tiny data."""
    structured = draw(st.booleans())
    ft = draw(st.integers(0, 1))
    share = draw(st.sampled_from(["none", "clusters", "bits"]))
    distil = draw(st.integers(0, 5)) == 0
    bits = draw(st.sampled_from(BITS)) if share == "bits" else None
    fields = dict(
        sparsity=draw(st.sampled_from([0.0, 0.3, 0.9, 0.999]) | st.floats(*RANGES["sparsity"])),
        structured=structured,
        prune_scope="layer" if structured else draw(st.sampled_from(CHOICES["prune_scope"])),
        schedule=draw(st.sampled_from(CHOICES["schedule"])) if ft and not structured else "oneshot",
        clusters=draw(st.integers(2, 256 if not ft else 16)) if share == "clusters" else None,  # tuning 256: ~4 s
        cluster_init=draw(st.sampled_from(CHOICES["cluster_init"])),
        bits=bits, symmetric=draw(st.booleans()) and bits != 1, per_channel=draw(st.booleans()),
        calibration=draw(st.sampled_from(CHOICES["calibration"])),
        temperature=draw(st.floats(*RANGES["temperature"])) if distil else None,
        student_width=draw(st.integers(10, 24)), distill_epochs=1, finetune_epochs=ft,
        huffman=draw(st.booleans()), seed=draw(st.integers(0, 2 ** 31 - 1)))
    return Recipe(**fields)


@pytest.fixture(scope="module")
def tiny_data(tiny_idx):
    """The conftest's tiny IDX folder, read by the engine, cut to 256 training images (2 steps an epoch)
    and 200 test images: the properties hold for any data, and the machine is shared."""
    d = ce.load_dataset(tiny_idx)
    return d.subset(256, 200, d.name)


@pytest.fixture(scope="module")
def tiny_models():
    torch.manual_seed(0)
    return [models.build({"arch": "mlp", "sizes": [784, 24, 12, 10]}).eval(),
            models.build({"arch": "lenet5", "widths": [3, 4, 16]}).eval()]


@fast(20)
@given(recipe=valid_recipes(), which=st.integers(0, 1))
def test_compress_artifact_is_the_size_and_the_weights(tiny_data, tiny_models, recipe, which):
    res = ce.compress(tiny_models[which], recipe, tiny_data)
    assert res.metrics["artifact_bytes"] == len(res.artifact)
    out = decode(res.artifact)
    state = res.model.state_dict()
    assert list(out) == list(state)
    for name, t in state.items():
        assert same(out[name], t.contiguous()), name
    rebuilt, meta = ce.decode_model(res.artifact)
    assert meta["recipe"] == recipe.changes() and meta["spec"] == models.spec_of(res.model)
    assert ce.Recipe.from_dict(meta["recipe"]) == recipe
    again = rebuilt.state_dict()  # a fresh model's order; fine-tuning may re-register weights after biases
    assert sorted(again) == sorted(state) and all(same(again[k], state[k].contiguous()) for k in state)
