"""Uniform quantization against torch's fake_quantize kernels and torch.ao observers."""

import math
import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from compress_engine.core import prune, quantize
from compress_engine.core.errors import RecipeError
from conftest import TinyConvNet

with warnings.catch_warnings():  # torch.ao.quantization warns it is deprecated; it still works
    warnings.simplefilter("ignore")
    from torch.ao.quantization import MinMaxObserver, PerChannelMinMaxObserver

ALL_BITS = [1, 2, 3, 4, 5, 6, 7, 8, 16]


def weights(seed, shape=(32, 6, 3, 3), dist="normal"):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=g) if dist == "normal" else torch.empty(shape).exponential_(generator=g)
    if dist == "laplace":
        w = w * torch.where(torch.rand(shape, generator=g) < 0.5, -1.0, 1.0)
    return 0.1 * w + 0.01 * torch.randn(1, generator=g)  # not centred on 0


def with_half_steps(w, scale, zero_point, qmin, qmax):
    """Overwrite part of w (row 0, or all rows per channel) with values whose w / scale is
    exactly k + 0.5, so round-half-to-even decides; scale is a power of two to make it exact."""
    w = w.clone()
    flat = w.reshape(w.shape[0], -1)
    k = torch.arange(flat.shape[1], dtype=torch.float32) % (qmax - qmin + 4) + qmin - 2  # includes clamped codes
    s = scale.reshape(-1, 1) if scale.numel() > 1 else scale
    flat[:, :] = (k - zero_point.reshape(-1, 1).float() + 0.5) * s
    return w


def torch_fq(w, scale, zero_point, qmin, qmax):
    if scale.numel() == 1:
        return torch.fake_quantize_per_tensor_affine(w, float(scale), int(zero_point), qmin, qmax)
    return torch.fake_quantize_per_channel_affine(w, scale, zero_point.to(torch.int32), 0, qmin, qmax)


@pytest.mark.parametrize("bits", ALL_BITS)
@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("per_channel", [False, True])
def test_fake_quantize_with_is_bit_identical_to_torch(bits, symmetric, per_channel):
    if symmetric and bits == 1:
        pytest.skip("refused, see test_symmetric_one_bit_is_refused")
    for seed, dist in [(0, "normal"), (1, "laplace")]:
        w = weights(seed, dist=dist)
        for calibration in ["minmax", "mse"]:
            scale, zp, qmin, qmax = quantize.qparams(w, bits, symmetric, per_channel, calibration)
            ours = quantize.fake_quantize_with(w, scale, zp, qmin, qmax)
            assert torch.equal(ours, torch_fq(w, scale, zp, qmin, qmax))
        # exact half steps on power-of-two grids, with zero points all over the range
        c = w.shape[0] if per_channel else 1
        g = torch.Generator().manual_seed(seed + 10)
        scale = 2.0 ** -torch.randint(2, 9, (c,), generator=g).float()
        zp = torch.zeros(c, dtype=torch.int64) if symmetric else torch.randint(qmin, qmax + 1, (c,), generator=g)
        wh = with_half_steps(w, scale, zp, qmin, qmax)
        ours = quantize.fake_quantize_with(wh, scale, zp, qmin, qmax)
        assert torch.equal(ours, torch_fq(wh, scale, zp, qmin, qmax))
        codes = quantize.quantize_codes(wh, scale, zp, qmin, qmax)
        assert codes.dtype == torch.int64 and codes.min() >= qmin and codes.max() <= qmax
        assert torch.equal((codes - quantize._broadcast(zp, wh)).float() * quantize._broadcast(scale, wh), ours)


def test_round_half_to_even():
    scale, zp = torch.tensor([0.5]), torch.tensor([0])
    w = torch.tensor([0.25, 0.75, 1.25, -0.25, -0.75])  # w / scale = 0.5, 1.5, 2.5, -0.5, -1.5
    assert quantize.quantize_codes(w, scale, zp, -8, 7).tolist() == [0, 2, 2, 0, -2]


@pytest.mark.parametrize("per_channel", [False, True])
def test_minmax_qparams_equal_torch_observers(per_channel):
    for seed in range(5):
        w = weights(seed, shape=(16, 40))
        w[3] = 0.0  # an all-zero channel: scale falls back to float32 eps
        w[5] = w[5].abs() + 0.1  # a channel with no negative value: the range is widened to 0
        for symmetric, dtype, scheme in [(False, torch.quint8, "affine"), (True, torch.qint8, "symmetric")]:
            if per_channel:
                qscheme = getattr(torch, f"per_channel_{scheme}")
                obs = PerChannelMinMaxObserver(ch_axis=0, dtype=dtype, qscheme=qscheme)
            else:
                obs = MinMaxObserver(dtype=dtype, qscheme=getattr(torch, f"per_tensor_{scheme}"))
            obs(w)
            ref_scale, ref_zp = obs.calculate_qparams()
            scale, zp, qmin, qmax = quantize.qparams(w, 8, symmetric, per_channel)
            assert (qmin, qmax) == ((-128, 127) if symmetric else (0, 255))
            assert scale.dtype == torch.float32 and zp.dtype == torch.int64
            assert scale.shape == zp.shape == ((16,) if per_channel else (1,))
            assert torch.equal(scale, ref_scale.reshape(-1)) and torch.equal(zp, ref_zp.reshape(-1).long())


def test_qrange():
    assert quantize.qrange(8) == (0, 255) and quantize.qrange(8, symmetric=True) == (-128, 127)
    assert quantize.qrange(16) == (0, 65535) and quantize.qrange(16, True) == (-32768, 32767)
    assert quantize.qrange(1) == (0, 1) and quantize.qrange(2, True) == (-2, 1)


def mse(a, b):
    return (a.double() - b.double()).pow(2).mean().item()


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_mse_calibration_beats_minmax(bits):
    gains = []
    for symmetric in [False, True]:
        for per_channel in [False, True]:
            for seed, dist in [(2, "normal"), (3, "laplace")]:
                w = weights(seed, shape=(24, 50), dist=dist)
                e_minmax = mse(quantize.fake_quantize(w, bits, symmetric, per_channel, "minmax"), w)
                e_mse = mse(quantize.fake_quantize(w, bits, symmetric, per_channel, "mse"), w)
                assert e_mse <= e_minmax * (1 + 1e-9)
                gains.append(e_minmax / e_mse)
    if bits <= 4:
        assert max(gains) > 1.2  # with few levels, clipping the tails really helps


@pytest.mark.parametrize("bits", ALL_BITS)
def test_levels_and_exact_zero(bits):
    w = weights(4, shape=(20, 30), dist="laplace")
    w = w * prune.magnitude_mask(w, 0.5)
    for symmetric in [False, True] if bits > 1 else [False]:
        for per_channel in [False, True]:
            for calibration in ["minmax", "mse"]:
                fq = quantize.fake_quantize(w, bits, symmetric, per_channel, calibration)
                assert torch.all(fq[w == 0] == 0)
                rows = fq if per_channel else fq.reshape(1, -1)
                assert max(r.unique().numel() for r in rows) <= 2**bits
    fq = quantize.fake_quantize(torch.zeros(4, 4), 8)
    assert torch.equal(fq, torch.zeros(4, 4))


@pytest.mark.parametrize("bad", [0, 9, 17, 3.5, math.nan, "8", None, True, 32])
def test_bad_bits(bad):
    with pytest.raises(RecipeError, match=r"bits .*1\.\.8 or 16") as err:
        quantize.qrange(bad)
    assert repr(bad) in str(err.value)
    with pytest.raises(RecipeError):
        quantize.fake_quantize(torch.randn(4, 4), bad)
    with pytest.raises(RecipeError):
        quantize.quantize_model(nn.Linear(3, 3), bad)


def test_symmetric_one_bit_is_refused():
    with pytest.raises(RecipeError, match="affine"):
        quantize.qparams(torch.randn(5), 1, symmetric=True)


def test_one_bit_affine_keeps_one_sign_as_the_page_says():
    """The Quantization page's 1-bit help (pages/quantization.py ONE_BIT) said the affine grid spans "from the
    smallest weight to the largest"; it is 0 and one level max - min away, on the side reaching further, as torch's
    own fake-quantize computes it, and every weight of the other sign becomes 0. Per channel, each row its side."""
    w = torch.tensor([-0.822, -0.3, -0.01, 0.0, 0.2, 0.525])
    q = quantize.fake_quantize(w, 1)
    scale, zp, qmin, qmax = quantize.qparams(w, 1)
    ref = torch.fake_quantize_per_tensor_affine(w, float(scale[0]), int(zp[0]), qmin, qmax)
    assert torch.equal(q, ref)
    levels = set(q.tolist())
    assert 0.0 in levels and len(levels) == 2
    level = (levels - {0.0}).pop()
    assert level < 0 and level == pytest.approx(-(0.525 + 0.822), rel=1e-6)  # max - min, on the negative side
    assert (q[w > 0] == 0).all()  # every positive weight lost
    rows = quantize.fake_quantize(torch.tensor([[-0.9, 0.1, 0.3], [-0.1, 0.2, 0.8]]), 1, per_channel=True)
    assert (rows[0] <= 0).all() and (rows[1] >= 0).all() and rows[0, 0] < 0 and rows[1, 2] > 0


def test_bad_calibration_and_per_channel():
    with pytest.raises(RecipeError, match="calibration"):
        quantize.qparams(torch.randn(5), 8, calibration="percentile")
    with pytest.raises(RecipeError, match="per_channel"):
        quantize.qparams(torch.randn(5), 8, per_channel="yes")


@pytest.mark.parametrize("per_channel", [False, True])
def test_ste_passes_gradient_like_torch_fake_quantize(per_channel):
    torch.manual_seed(5)
    layer = nn.Linear(40, 12)
    with torch.no_grad():
        layer.weight.copy_(weights(5, shape=(12, 40), dist="laplace"))  # heavy tails: mse clips them
    w0 = layer.weight.detach().clone()
    scale, zp, qmin, qmax = quantize.qparams(w0, 3, False, per_channel, "mse")  # clips some weights
    x = torch.randn(8, 40)
    upstream = torch.randn(8, 12)

    # reference: torch's own fake quantize, whose backward is the clipped straight-through one
    w_ref = w0.clone().requires_grad_()
    (nn.functional.linear(x, torch_fq(w_ref, scale, zp, qmin, qmax), layer.bias) * upstream).sum().backward()

    parametrize.register_parametrization(layer, "weight", quantize.FakeQuantSTE(scale, zp, qmin, qmax))
    assert torch.equal(layer.weight, quantize.fake_quantize_with(w0, scale, zp, qmin, qmax))
    (layer(x) * upstream).sum().backward()
    grad = layer.parametrizations.weight.original.grad
    assert torch.allclose(grad, w_ref.grad, rtol=1e-6, atol=1e-7)
    codes, _, _ = quantize._unclamped_codes(w0, scale, zp)
    outside = (codes < qmin) | (codes > qmax)
    assert outside.any() and torch.all(grad[outside] == 0) and torch.all(grad[~outside] != 0)


def test_ste_with_mask_keeps_pruned_zero_and_trains():
    torch.manual_seed(6)
    layer = nn.Linear(30, 10)
    mask = prune.magnitude_mask(layer.weight, 0.6)
    prune.apply_masks(layer, {"weight": mask})
    scale, zp, qmin, qmax = quantize.qparams(layer.weight, 4, symmetric=True, per_channel=True)
    parametrize.register_parametrization(layer, "weight", quantize.FakeQuantSTE(scale, zp, qmin, qmax, mask))
    before = layer.weight.detach().clone()
    opt = torch.optim.SGD(layer.parameters(), lr=1.0)
    x, y = torch.randn(64, 30), torch.randint(0, 10, (64,))
    for _ in range(5):
        opt.zero_grad()
        nn.functional.cross_entropy(layer(x), y).backward()
        opt.step()
    after = layer.weight.detach()
    assert torch.all(after[~mask] == 0)
    assert not torch.equal(after, before)  # the float weights underneath moved across grid points
    assert torch.equal(after, quantize.fake_quantize_with(after, scale, zp, qmin, qmax))  # still on the grid


def Net():  # noqa: N802 (reads like the class it builds)
    return TinyConvNet(4, 3, 12, 64, 10)


def test_int8_latency_times_float32_and_int8_in_turns(monkeypatch):
    """The Quantization page's int8 card showed 1.7x on ResNet-8, whose int8 layers are one Linear (re-measured:
    0.8-1.2x): every int8 call was timed first, then every float32 one, so a load passing by fell on one side.
    They now take turns, and the spread of the turns' ratios comes back."""
    from compress_engine.core import train
    calls = []
    real = train.forward_ms_in_turns

    def watched(models, batch, repeats=20, seconds=None):
        hooks = [m.register_forward_pre_hook(lambda mod, args, i=i: calls.append(i)) for i, m in enumerate(models)]
        try:
            return real(models, batch, repeats, seconds)
        finally:
            for h in hooks:
                h.remove()
    monkeypatch.setattr(quantize, "forward_ms_in_turns", watched)
    res = quantize.int8_latency(Net().eval(), torch.randn(8, 1, 12, 12), repeats=4)
    assert calls == [0, 1] * 5  # a warm-up turn, then 4 timed turns: float32, int8, float32, int8, ...
    assert res["repeats"] == 4 and len(res["speedup_spread"]) == 2


def test_quantize_model_in_place():
    torch.manual_seed(7)
    model = Net()
    masks = prune.model_masks(model, 0.5)
    prune.apply_masks(model, masks)
    before = {k: p.detach().clone() for k, p in prune.compressible(model).items()}
    bias = model.fc1.bias.detach().clone()
    out = quantize.quantize_model(model, 4, symmetric=False, per_channel=True, calibration="mse", masks=masks)
    params = prune.compressible(model)
    assert list(out) == list(params)
    for name, (scale, zp, qmin, qmax) in out.items():
        assert scale.shape == (before[name].shape[0],) and (qmin, qmax) == (0, 15)
        assert torch.equal(params[name].detach(), quantize.fake_quantize_with(before[name], scale, zp, qmin, qmax))
        assert torch.all(params[name][~masks[name]] == 0)
        assert max(r.unique().numel() for r in params[name].detach()) <= 16
    assert torch.equal(model.fc1.bias, bias)  # biases are never quantized


def test_int8_latency_runs_torch_ao_dynamic_quantization():
    torch.manual_seed(8)
    model = Net().eval()
    parametrize.register_parametrization(model.fc1, "weight", prune.Masked(prune.magnitude_mask(model.fc1.weight, 0.5)))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(32, 1, 12, 12)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = quantize.int8_latency(model, x, repeats=3)
    assert not [w for w in caught if "deprecated" in str(w.message)]
    assert res["fp32_ms"] > 0 and res["int8_ms"] > 0 and res["speedup"] > 0
    assert res["int8_layers"] == ["fc1", "fc2"] and res["fp32_layers"] == ["conv"]
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())  # model untouched
    assert parametrize.is_parametrized(model.fc1)
    with pytest.raises(RecipeError, match="repeats"):
        quantize.int8_latency(model, x, repeats=0)
    assert res["repeats"] == 3
    # a time budget: kept when the calls fit in it, else fewer (never below 3); one call here takes far from either
    assert quantize.int8_latency(model, x, repeats=5, seconds=1000.0)["repeats"] == 5
    assert quantize.int8_latency(model, x, repeats=20, seconds=1e-9)["repeats"] == 3
    for bad in (0, -1.0, "1", float("nan")):
        with pytest.raises(RecipeError, match="seconds"):
            quantize.int8_latency(model, x, seconds=bad)
    lo, hi = res["speedup_spread"]
    assert 0 < lo <= hi
    # the model still works after its copies were baked (deepcopy shares the parametrized class with it)
    assert parametrize.is_parametrized(model.fc1) and torch.equal(model.fc1.weight, model.fc1.parametrizations.weight())
    assert model(x).shape == (32, 10)


def test_int8_latency_refuses_a_meta_device_model_in_words():
    """int8_latency copies the model before timing it: a meta-device one escaped with torch's own error."""
    from compress_engine.core.errors import ModelError
    with pytest.raises(ModelError, match="'conv.weight' is on the meta device"):
        quantize.int8_latency(Net().to("meta"), torch.randn(2, 1, 12, 12))
