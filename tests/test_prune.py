"""Pruning masks against torch.nn.utils.prune, the cubic schedule and Masked."""

import contextlib
import math

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils import prune as tprune

from compress_engine.core import prune
from compress_engine.core.errors import RecipeError
from conftest import TinyConvNet

SPARSITIES = [0.0, 0.1, 0.5, 0.9, 0.99, 1.0]


def fresh_layers(seed):
    torch.manual_seed(seed)
    return [nn.Linear(300, 100), nn.Conv2d(6, 16, 5), nn.Linear(37, 11)]


def Net():  # noqa: N802 (reads like the class it builds)
    return TinyConvNet(4, 3, 8, 20, 3)


@pytest.mark.parametrize("s", SPARSITIES)
def test_layer_masks_equal_l1_unstructured(s):
    for i, layer in enumerate(fresh_layers(seed=10)):
        mask = prune.magnitude_mask(layer.weight, s)
        tprune.l1_unstructured(layer, "weight", amount=s)
        assert mask.dtype == torch.bool and mask.shape == layer.weight.shape
        assert torch.equal(mask, layer.weight_mask.bool()), (i, s)
        assert int((~mask).sum()) == round(s * mask.numel())


@pytest.mark.parametrize("s", SPARSITIES)
def test_global_masks_equal_global_unstructured(s):
    layers = fresh_layers(seed=11)
    weights = {f"l{i}.weight": m.weight.detach().clone() for i, m in enumerate(layers)}
    masks = prune.global_masks(weights, s)
    tprune.global_unstructured([(m, "weight") for m in layers], pruning_method=tprune.L1Unstructured, amount=s)
    for i, m in enumerate(layers):
        assert torch.equal(masks[f"l{i}.weight"], m.weight_mask.bool()), (i, s)
    total = sum(w.numel() for w in weights.values())
    assert sum(int((~m).sum()) for m in masks.values()) == round(s * total)


def test_layer_masks_dict_and_model_masks():
    model = Net()
    weights = {k: p.detach() for k, p in prune.compressible(model).items()}
    assert list(weights) == ["conv.weight", "fc1.weight", "fc2.weight"]
    lm = prune.layer_masks(weights, 0.5)
    for k, m in lm.items():
        assert torch.equal(m, prune.magnitude_mask(weights[k], 0.5))
    assert all(torch.equal(lm[k], v) for k, v in prune.model_masks(model, 0.5, "layer").items())
    gm = prune.model_masks(model, 0.7, scope="global")
    assert all(torch.equal(gm[k], v) for k, v in prune.global_masks(weights, 0.7).items())
    with pytest.raises(RecipeError, match="scope"):
        prune.model_masks(model, 0.5, scope="row")


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("amount", [0.0, 0.3, 0.5, 0.9])
def test_structured_keep_equals_ln_structured(amount, n):
    for layer in fresh_layers(seed=12):
        keep = prune.structured_keep(layer.weight, amount, n=n)
        tprune.ln_structured(layer, "weight", amount=amount, n=n, dim=0)
        kept_rows = layer.weight_mask.flatten(1).bool().all(dim=1).nonzero().flatten()
        assert keep.dtype == torch.long
        assert torch.equal(keep, kept_rows), (amount, n)


def test_structured_keep_keeps_one_unit():
    w = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    keep = prune.structured_keep(w, 1.0)
    assert keep.tolist() == [int(w.norm(dim=1).argmax())]
    with pytest.raises(RecipeError, match="2 dims"):
        prune.structured_keep(torch.randn(5), 0.5)


def test_cubic_schedule():
    T, sf, si = 100, 0.9, 0.1
    assert prune.cubic_sparsity(0, T, sf, si) == pytest.approx(si)
    assert prune.cubic_sparsity(T, T, sf, si) == pytest.approx(sf)
    assert prune.cubic_sparsity(-5, T, sf, si) == pytest.approx(si)
    assert prune.cubic_sparsity(10 * T, T, sf, si) == pytest.approx(sf)
    assert prune.cubic_sparsity(T // 2, T, sf, si) == pytest.approx(sf + (si - sf) * 0.125)
    assert prune.cubic_sparsity(50, 100, 0.8) == pytest.approx(0.7)
    values = [prune.cubic_sparsity(t, T, sf, si) for t in range(T + 1)]
    assert all(a < b for a, b in zip(values, values[1:]))
    steps = [b - a for a, b in zip(values, values[1:])]
    assert all(a > b for a, b in zip(steps, steps[1:]))  # prunes fast first, then slowly
    with pytest.raises(RecipeError, match="initial"):
        prune.cubic_sparsity(0, T, 0.5, 0.6)
    with pytest.raises(RecipeError, match="total_steps"):
        prune.cubic_sparsity(0, 0, 0.5)


def test_apply_masks_and_masked_keeps_zeros_through_sgd():
    torch.manual_seed(0)
    model = Net()
    masks = prune.model_masks(model, 0.8, scope="global")
    prune.apply_masks(model, masks)
    for name, p in prune.compressible(model).items():
        assert torch.equal(p != 0, masks[name])
    kept_before = {k: p.detach().clone() for k, p in prune.compressible(model).items()}
    for name, m in masks.items():
        module = model.get_submodule(name.rsplit(".", 1)[0])
        parametrize.register_parametrization(module, "weight", prune.Masked(m))
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=1e-3)
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 3, (32,))
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    params = prune.compressible(model)  # the stored originals, same names
    assert list(params) == list(masks)
    for name, m in masks.items():
        module = model.get_submodule(name.rsplit(".", 1)[0])
        assert torch.all(module.weight[~m] == 0)
        assert torch.all(params[name][~m] == 0)
        assert not torch.equal(module.weight[m], kept_before[name][m])  # the kept ones did train
    # apply_masks reaches the stored original of a parametrized weight too
    prune.apply_masks(model, {"fc2.weight": torch.zeros(3, 20, dtype=torch.bool)})
    assert torch.all(params["fc2.weight"] == 0)


def test_masked_trains_the_kept_weights():
    torch.manual_seed(1)
    layer = nn.Linear(10, 4)
    mask = prune.magnitude_mask(layer.weight, 0.5)
    prune.apply_masks(layer, {"weight": mask})
    before = layer.weight.detach().clone()
    parametrize.register_parametrization(layer, "weight", prune.Masked(mask))
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    layer(torch.randn(8, 10)).pow(2).sum().backward()
    opt.step()
    after = layer.weight.detach()
    assert torch.all(after[~mask] == 0)
    assert torch.all(after[mask] != before[mask])


def _trained(model, masks, hold, opt_of, channels_last=False, steps=4):
    """`model`'s state after `steps` optimizer steps on seeded batches with `masks` held by Masked's parametrization
    (hold=False, baked in after) or by held_at_zero's gradient hooks (hold=True); laid out channels-last once they
    are in place, as fit() does."""
    prune.apply_masks(model, masks)
    if not hold:
        for name, m in masks.items():
            parametrize.register_parametrization(model.get_submodule(name.rsplit(".", 1)[0]), "weight", prune.Masked(m))
    gen = torch.Generator().manual_seed(3)
    with prune.held_at_zero(model, masks) if hold else contextlib.nullcontext():
        if channels_last:
            model.to(memory_format=torch.channels_last)
        opt = opt_of([p for p in model.parameters() if p.requires_grad])
        for _ in range(steps):
            x, y = torch.randn(32, 1, 8, 8, generator=gen), torch.randint(0, 3, (32,), generator=gen)
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    if not hold:
        for name in masks:
            parametrize.remove_parametrizations(model.get_submodule(name.rsplit(".", 1)[0]), "weight")
    return {k: v.detach().contiguous() for k, v in model.state_dict().items()}


OPTIMIZERS = {"adam": lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=1e-3),
              "fused adam": lambda ps: torch.optim.Adam(ps, lr=0.01, fused=True),
              "sgd": lambda ps: torch.optim.SGD(ps, lr=0.5, momentum=0.9, nesterov=True, weight_decay=1e-3)}


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
def test_held_at_zero_trains_as_masked_does(opt, channels_last):
    """The fixed-mask fine-tune's gradient hooks against Masked's parametrization (the forward-pass where()): the same
    weights after training, pruned ones +0.0 exactly, and the hooks gone afterwards."""
    torch.manual_seed(0)
    reference = Net()
    model = Net()
    model.load_state_dict(reference.state_dict())
    masks = prune.model_masks(model, 0.7, scope="global")
    start = {k: v.clone() for k, v in model.state_dict().items()}
    want = _trained(reference, masks, False, OPTIMIZERS[opt], channels_last)
    got = _trained(model, masks, True, OPTIMIZERS[opt], channels_last)
    assert sorted(got) == sorted(want)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-6)
    for name, m in masks.items():
        w = got[name]
        assert torch.all(w[~m] == 0) and not torch.signbit(w[~m]).any()  # +0.0, never -0.0
        assert (w[m] != start[name][m]).float().mean() > 0.5  # the kept ones trained (but a dead unit's)
    assert all(not p._backward_hooks for p in model.parameters())


def test_held_at_zero_leaves_a_frozen_weight_alone():
    torch.manual_seed(0)
    model = Net()
    masks = prune.model_masks(model, 0.5, scope="layer")
    prune.apply_masks(model, masks)
    model.fc2.weight.requires_grad_(False)
    with prune.held_at_zero(model, masks):
        model(torch.randn(4, 1, 8, 8)).sum().backward()
    assert model.fc2.weight.grad is None and torch.all(model.fc1.weight.grad[~masks["fc1.weight"]] == 0)


@pytest.mark.parametrize("bad", [-0.1, 1.5, math.nan, "0.5", True, None])
def test_invalid_sparsity(bad):
    w = torch.randn(4, 4)
    with pytest.raises(RecipeError, match="sparsity") as err:
        prune.magnitude_mask(w, bad)
    assert "[0, 1]" in str(err.value) and repr(bad) in str(err.value)
    with pytest.raises(RecipeError):
        prune.layer_masks({"w": w}, bad)
    with pytest.raises(RecipeError):
        prune.global_masks({"w": w}, bad)
    with pytest.raises(RecipeError):
        prune.structured_keep(w, bad)
    with pytest.raises(RecipeError):
        prune.cubic_sparsity(1, 10, bad)
    assert issubclass(RecipeError, ValueError)


# --- threshold lookups (magnitude_order): the same masks as topk, ties included ----------------------

def tie_heavy_tensors():
    """Tensors whose magnitudes tie a lot: small integers, +-pairs, zeros, a constant; and plain random ones."""
    g = torch.Generator().manual_seed(5)
    ints = torch.randint(-4, 5, (40, 25), generator=g).float()          # 9 values, |w| in 0..4: ties everywhere
    pairs = torch.randn(300, generator=g)
    pairs = torch.cat([pairs, -pairs])[torch.randperm(600, generator=g)]  # every |w| exactly twice
    zeros = torch.randn(16, 6, 3, 3, generator=g)
    zeros[zeros.abs() < 0.7] = 0.0                                       # about half exact zeros (and -0.0)
    zeros[0, 0, 0, 0] = -0.0
    return {"ints": ints, "pairs": pairs, "zeros": zeros, "constant": torch.full((7, 9), 0.25),
            "random": torch.randn(100, 300, generator=g), "one": torch.tensor([3.0]),
            "float64": torch.randn(50, 20, generator=g, dtype=torch.float64)}


@pytest.mark.parametrize("name", list(tie_heavy_tensors()))
def test_threshold_lookup_masks_equal_topk_masks_at_every_count(name):
    w = tie_heavy_tensors()[name]
    n = w.numel()
    counts = sorted(set(range(0, n + 1, max(1, n // 97))) | {0, 1, n - 1, n})  # ~100 counts, both ends
    for k in counts:
        s = k / n
        assert round(s * n) == k
        lookup, topk = prune.magnitude_mask(w, s), prune.magnitude_mask(w, s, cache=False)
        assert torch.equal(lookup, topk), (name, k)
        assert int((~lookup).sum()) == k
    layer = nn.Linear(1, 1)
    for s in (0.0, 0.13, 0.5, 0.77, 1.0):  # and torch.nn.utils.prune's own choice
        layer.weight = nn.Parameter(w.clone().float().reshape(w.shape[0], -1))
        tprune.l1_unstructured(layer, "weight", amount=s)
        assert torch.equal(prune.magnitude_mask(w.float().reshape(w.shape[0], -1), s), layer.weight_mask.bool())
        tprune.remove(layer, "weight")


def test_magnitude_order_is_computed_once_per_content():
    w = torch.randn(64, 32)
    order = prune.magnitude_order(w)
    assert prune.magnitude_order(w.clone()) is order  # a deep copy (as compress() prunes) finds the same order
    assert prune.magnitude_order(w.t().contiguous()) is not order  # same values, other shape: its own
    changed = w.clone()
    changed[0, 0] += 1.0
    assert prune.magnitude_order(changed) is not order
    assert torch.equal(prune.magnitude_mask(changed, 0.6), prune.magnitude_mask(changed, 0.6, cache=False))
    assert prune.magnitude_order(torch.randint(0, 3, (4, 4))) is None  # integers: topk, as before


def test_threshold_lookup_leaves_nan_to_topk():
    w = torch.randn(10, 10)
    w[3, 4] = float("nan")
    w[7, 1] = float("nan")
    for s in (0.1, 0.5, 0.97, 0.98, 0.99, 1.0):
        assert torch.equal(prune.magnitude_mask(w, s), prune.magnitude_mask(w, s, cache=False)), s


def test_model_masks_reuse_orders_and_match_topk(lenet300):
    weights = {k: p.detach() for k, p in prune.compressible(lenet300).items()}
    for scope in ("layer", "global"):
        for s in (0.3, 0.8, 0.9, 0.95, 0.99):
            got = prune.model_masks(lenet300, s, scope)
            want = (prune.layer_masks(weights, s, cache=False) if scope == "layer"
                    else prune.global_masks(weights, s, cache=False))
            assert all(torch.equal(got[k], want[k]) for k in want), (scope, s)


# ----------------------------------------------------------------------------- prune focus (issue 13)

def _focus_reference(w, sparsity, focus):
    """The focus mask computed independently: numpy scores, a stable argsort, the smallest dropped."""
    import numpy as np
    m = w.detach().abs().reshape(w.shape[0], -1).double().numpy()
    r = np.linalg.norm(m, axis=1, keepdims=True)
    c = np.linalg.norm(m, axis=0, keepdims=True)
    score = m * (r / r.mean()) ** focus * (c / c.mean()) ** focus
    keep = np.ones(m.size, bool)
    keep[np.argsort(score.reshape(-1), kind="stable")[:round(sparsity * m.size)]] = False
    return torch.from_numpy(keep.reshape(w.shape))


@pytest.mark.parametrize("shape,focus", [((60, 80), 0.5), ((60, 80), 1.0), ((12, 4, 3, 3), 2.0)])
def test_focus_mask_matches_reference_and_gathers_weights(rng, shape, focus):
    """With focus the mask is the reference's (continuous random weights: no ties), keeps the same count, and its
    kept weights sit in fewer rows and columns than plain magnitude pruning's; focus=0 is magnitude pruning."""
    w = torch.randn(shape, generator=rng) * torch.rand(shape[0], *([1] * (len(shape) - 1)), generator=rng)
    s = 0.95
    m = prune.magnitude_mask(w, s, focus=focus)
    assert torch.equal(m, _focus_reference(w, s, focus))
    plain = prune.magnitude_mask(w, s)
    assert int(m.sum()) == int(plain.sum())
    live = lambda k: (int(k.reshape(shape[0], -1).any(1).sum()), int(k.reshape(shape[0], -1).any(0).sum()))
    assert sum(live(m)) < sum(live(plain))
    assert torch.equal(prune.magnitude_mask(w, s, focus=0.0), plain)
    assert torch.equal(prune.focus_scores(w.reshape(-1), focus), w.reshape(-1).abs())  # 1-D: |w|
    g = prune.global_masks({"a": w, "b": w * 2}, s, focus=focus)
    assert int(g["a"].sum() + g["b"].sum()) == round((1 - s) * 2 * w.numel())


def test_focus_pruning_makes_the_artifact_smaller_and_exact(lenet300, small):
    """prune_focus through compress(): the same number of weights kept, fewer live units, a live-bitmap index
    smaller than plain magnitude pruning's, and the artifact decodes exactly into a fresh model."""
    import compress_engine as ce
    from compress_engine.core.encode import _parse, size_breakdown
    base = ce.Recipe(layers={"layers.0.weight": {"sparsity": 0.97}, "layers.1.weight": {"sparsity": 0.9}},
                     clusters=4, huffman=True)
    plain = ce.compress(lenet300, base, small)
    focused = ce.compress(lenet300, base.replace(prune_focus=1.0), small)
    assert focused.metrics["nonzero_params"] == plain.metrics["nonzero_params"]
    assert "live-bitmap" in {r["layout"] for r in _parse(focused.artifact)[1]}
    assert size_breakdown(focused.artifact)["index"] < 0.95 * size_breakdown(plain.artifact)["index"]
    back = ce.decode_model(focused.artifact)
    back = back[0] if isinstance(back, tuple) else back
    for name, t in focused.model.state_dict().items():
        assert torch.equal(back.state_dict()[name], t), name
    assert ce.Recipe.from_dict(ce.read_meta(focused.artifact)["recipe"]).prune_focus == 1.0
