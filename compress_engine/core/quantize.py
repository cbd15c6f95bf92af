"""Uniform quantization: store each weight as a k-bit integer on an evenly spaced grid.

A weight w becomes the integer q = clamp(round(w / scale) + zero_point, qmin, qmax) and is read
back as (q - zero_point) * scale. "Fake" quantization does both at once in float, so a model can
be evaluated (and fine-tuned) with exactly the values its integer form would give.

- `qrange` / `qparams`: the grid. Affine grids use [0, 2^b - 1] and a zero point; symmetric
  ones use [-2^(b-1), 2^(b-1) - 1] with zero point 0. One grid per tensor or one per output
  channel (dim 0: a unit, a filter, an embedding's row; a transposed conv's dim 0 is its input
  channels). Calibrated by min/max (as torch.ao's MinMaxObserver) or by searching the clipping
  range that minimises the squared error (outliers stop stretching the grid).
- `fake_quantize_with` / `quantize_codes`: plain torch ops, ordered like torch's CPU kernel
  (float32 1/scale, round half to even), so results equal torch.fake_quantize_per_*_affine
  bit for bit.
- `FakeQuantSTE`: a parametrization for quantization-aware fine-tuning (straight-through
  estimator).
- `int8_latency`: a real int8 runtime figure through torch.ao dynamic quantization.
"""

import copy
import math
import numbers
import statistics
import warnings

import torch
from torch import nn
from torch.nn.utils import parametrize

from compress_engine.core.errors import CompressError, ModelError, RecipeError
from compress_engine.core.model import COMPRESSIBLE, CONVS, TRANSFORMER_LAYERS, check_device, compressible
from compress_engine.core.train import forward_ms_in_turns

NAME = "quantize"
BITS = (1, 2, 3, 4, 5, 6, 7, 8, 16)   # Recipe.bits
CALIBRATIONS = ("minmax", "mse")       # Recipe.calibration
EPS = torch.finfo(torch.float32).eps  # smallest scale, as torch's observers use

# -----------------------------------------------------------------------------
# the grid


def qrange(bits, symmetric=False):
    """(qmin, qmax) of a `bits`-bit grid: affine [0, 2^b - 1], symmetric [-2^(b-1), 2^(b-1) - 1]."""
    if isinstance(bits, bool) or not isinstance(bits, numbers.Integral) or bits not in BITS:
        raise RecipeError(f"bits must be an integer in 1..8 or 16, got {bits!r}")
    if symmetric and bits == 1:
        raise RecipeError(
            "bits=1 cannot be symmetric: the symmetric 1-bit grid {-1, 0} * scale is {-2m, 0} "
            "(m = max |w|), which cannot represent positive weights; use symmetric=False (affine)"
        )
    bits = int(bits)
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if symmetric else (0, 2**bits - 1)


def _grid(min_neg, max_pos, qmin, qmax, symmetric):
    """scale (float32) and zero_point (int64) for a range [min_neg <= 0, max_pos >= 0], with the
    same float32 operations, in the same order, as torch.ao's observers."""
    if symmetric:
        scale = torch.max(-min_neg, max_pos) / (float(qmax - qmin) / 2)
        scale = torch.clamp_min(scale, EPS)
        return scale, torch.zeros(scale.shape, dtype=torch.int64)
    scale = torch.clamp_min((max_pos - min_neg) / float(qmax - qmin), EPS)
    zero_point = qmin - torch.round(min_neg / scale).to(torch.int32)
    return scale, torch.clamp(zero_point, qmin, qmax).to(torch.int64)


def qparams(w, bits, symmetric=False, per_channel=False, calibration="minmax"):
    """Quantization grid for `w`: (scale float32 (C,), zero_point int64 (C,), qmin, qmax), with
    C = w.shape[0] if per_channel else 1.

    minmax: the range is [min(w), max(w)] widened to include 0 (so 0, the pruned weight, is
    exactly on the grid), as torch.ao's MinMaxObserver / PerChannelMinMaxObserver compute it.
    mse: the minmax range scaled by the ratio r in {1.00, 0.99, ..., 0.01} whose grid gives the
    least squared error (per channel when per_channel), searched coarse to fine; large outliers
    are clipped when that lets the bulk of the weights be represented finely enough to pay for
    it. Never a larger error than minmax.
    """
    qmin, qmax = qrange(bits, symmetric)
    if not isinstance(per_channel, bool):
        raise RecipeError(f"per_channel must be True or False, got {per_channel!r}")
    if calibration not in CALIBRATIONS:
        raise RecipeError(f"calibration must be one of {CALIBRATIONS}, got {calibration!r}")
    w = w.detach().to(torch.float32)
    if w.numel() == 0 or (per_channel and w.dim() == 0):
        raise RecipeError(
            f"w must be a non-empty tensor (with a channel dim if per_channel), got shape {tuple(w.shape)}")
    flat = w.reshape(w.shape[0], -1) if per_channel else w.reshape(1, -1)
    min_neg = torch.clamp_max(flat.min(dim=1).values, 0.0)
    max_pos = torch.clamp_min(flat.max(dim=1).values, 0.0)
    if calibration == "minmax":
        scale, zero_point = _grid(min_neg, max_pos, qmin, qmax, symmetric)
    else:
        scale, zero_point = _mse_grid(flat, min_neg, max_pos, qmin, qmax, symmetric)
    return scale, zero_point, qmin, qmax


def _grid_errors(flat, x, S, sum_x2, scales, zps, qmin, qmax):
    """Squared error (R, C) of each of R candidate grids (scales, zps: (R, C)) on the rows of
    `flat` (C, m); x is flat sorted per row, S its prefix sums (C, m+1), sum_x2 (C,) the sums of x * x, float64.

    Every value between two consecutive midpoints of a grid rounds to the same level, and the
    levels are evenly spaced (step = scale), so with cut_j = #values below midpoint j:
      sum (x - level(x))^2 = sum x^2 - 2 (top * S[m] - scale * sum_j S[cut_j])
                             + top^2 * m - sum_j (level_j+1^2 - level_j^2) * cut_j
    (top = highest level): O(levels log m) per grid instead of O(m). When that is not cheaper
    (many levels, short rows: 16 bits, or 8 bits per channel) the grids are applied directly.
    """
    C, m = flat.shape
    levels = qmax - qmin + 1
    if levels * math.log2(m + 1) > 2 * m:
        return _squared_error(flat, scales, zps, qmin, qmax, 2)
    R = len(scales)
    s, z = scales.double()[..., None], zps.double()[..., None]
    lv = (torch.arange(qmin, qmax + 1, dtype=torch.float64) - z) * s  # (R, C, L)
    mids = ((lv[..., :-1] + lv[..., 1:]) / 2).transpose(0, 1).reshape(C, -1)
    cut = torch.searchsorted(x, mids.contiguous())  # (C, R*(L-1))
    s_cut = S.gather(1, cut).reshape(C, R, levels - 1).transpose(0, 1)
    cut = cut.reshape(C, R, levels - 1).transpose(0, 1).double()
    top = lv[..., -1]
    sq_step = lv[..., 1:] ** 2 - lv[..., :-1] ** 2
    sum_x = S[:, -1]
    return sum_x2 - 2 * (top * sum_x - s[..., 0] * s_cut.sum(2)) + top * top * m - (sq_step * cut).sum(2)


def _mse_grid(flat, min_neg, max_pos, qmin, qmax, symmetric, steps=100, stride=5):
    """Search the clipping ratio r in {1.00, 0.99, ..., 0.01} (steps values) per row of `flat`.

    Coarse to fine: every `stride`-th ratio first, then the ratios around each row's best.
    The winner is checked against the full range (r = 1) with the real fake_quantize_with, so
    the result is never worse than minmax, even by rounding.
    """
    C, m = flat.shape
    ratios = torch.arange(steps, 0, -1, dtype=torch.float32) / steps  # ratios[0] = 1: minmax
    # x, S (8 bytes a weight each) and no other copy of a big layer at once: x sorted in place (a sort's values and
    # indices were two more), the sums of squares made once (each chunk of grids made x * x again), S summed into
    # place (cat copied it), and both dropped before the final check
    x = flat.to(torch.float64, memory_format=torch.contiguous_format)  # contiguous rows for searchsorted
    x.numpy().sort(axis=1)  # the same values in the same order as torch's sort, whose indices are not needed
    sum_x2 = (x * x).sum(1)
    S = torch.empty(C, m + 1, dtype=torch.float64)
    S[:, 0] = 0.0
    torch.cumsum(x, 1, out=S[:, 1:])

    def errors(idx):  # (R, C) errors of the ratios[idx] (R, C), per row; chunked to bound memory
        r = ratios[idx]
        sc, zp = _grid(r * min_neg, r * max_pos, qmin, qmax, symmetric)
        chunk = max(1, (1 << 20) // (C * m))
        err = torch.cat([
            _grid_errors(flat, x, S, sum_x2, s, z, qmin, qmax) for s, z in zip(sc.split(chunk), zp.split(chunk))
        ])
        return err, sc, zp

    coarse = torch.arange(0, steps, stride)[:, None].expand(-1, C)
    err, _, _ = errors(coarse)
    centre = coarse[err.argmin(0), torch.arange(C)]  # (C,)
    fine = (centre[None, :] + torch.arange(-stride + 1, stride)[:, None]).clamp(0, steps - 1)
    err, sc, zp = errors(fine)
    del x, S
    best = err.argmin(0)
    cols = torch.arange(C)
    scale, zero_point = sc[best, cols], zp[best, cols]
    full_scale, full_zp = _grid(min_neg, max_pos, qmin, qmax, symmetric)
    err_best = _squared_error(flat, scale, zero_point, qmin, qmax, 1)
    err_full = _squared_error(flat, full_scale, full_zp, qmin, qmax, 1)
    full = err_full <= err_best
    return torch.where(full, full_scale, scale), torch.where(full, full_zp, zero_point)


def _squared_error(flat, scale, zero_point, qmin, qmax, dim):
    """sum over `dim` of (fake_quantize_with(flat, ...) - flat)^2 in float64, with one float64 copy of the
    quantized values, not three (the quantized, flat's and their difference's, each then squared apart)."""
    d = fake_quantize_with(flat, scale, zero_point, qmin, qmax).double()
    d -= flat  # in float64, as flat.double() would be
    return d.pow_(2).sum(dim)


# -----------------------------------------------------------------------------
# fake quantization


def _broadcast(t, w):
    """Reshape qparams t (C,) -- or (R, C), a batch of R grids -- to broadcast against w,
    whose dim 0 is the channel dim."""
    return t.reshape(t.shape + (1,) * max(w.dim() - 1, 0))


def _unclamped_codes(w, scale, zero_point):
    """round(w * inv_scale) + zero_point in float32, and the broadcast scale and zero point."""
    s = _broadcast(scale.to(torch.float32), w)
    zp = _broadcast(zero_point.to(torch.float32), w)
    inv = torch.ones_like(s) / s  # float32 1.0f / scale, as torch's kernel
    q = w * inv  # then in place: one tensor of w's size, not three
    return q.round_().add_(zp), s, zp  # round: half to even, like nearbyint


def quantize_codes(w, scale, zero_point, qmin, qmax):
    """The integer codes clamp(round(w * (1/scale)) + zero_point, qmin, qmax) as int64."""
    q, _, _ = _unclamped_codes(w, scale, zero_point)
    return torch.clamp(q, qmin, qmax).to(torch.int64)


def fake_quantize_with(w, scale, zero_point, qmin, qmax):
    """Quantize `w` to the given grid and read it back: (clamp(round(w * inv) + zp) - zp) * scale.

    `scale`/`zero_point` have 1 entry (per tensor) or w.shape[0] (per channel, dim 0). Same
    float32 operations in the same order as torch's CPU kernel (inv = 1.0f / scale; round half
    to even; the integers are exact in float32), hence bit-identical to
    torch.fake_quantize_per_tensor_affine / torch.fake_quantize_per_channel_affine(axis=0).
    """
    q, s, zp = _unclamped_codes(w, scale, zero_point)
    return q.clamp_(qmin, qmax).sub_(zp).mul_(s)  # in place on q, w's size once


def fake_quantize(w, bits, symmetric=False, per_channel=False, calibration="minmax"):
    """`w` with every value replaced by its nearest point of a `bits`-bit grid fitted to `w`.
    Zeros stay exactly zero; at most 2^bits distinct values (per channel if per_channel)."""
    scale, zero_point, qmin, qmax = qparams(w, bits, symmetric, per_channel, calibration)
    return fake_quantize_with(w, scale, zero_point, qmin, qmax)


# -----------------------------------------------------------------------------
# quantization-aware fine-tuning


class FakeQuantSTE(nn.Module):
    """Parametrization w -> fake_quantize_with(w, grid) * mask, with a straight-through gradient.

    Register with torch.nn.utils.parametrize.register_parametrization(module, "weight",
    FakeQuantSTE(scale, zero_point, qmin, qmax, mask)). The forward value is exactly the
    quantized weight; the backward pass treats rounding as the identity (Bengio et al. 2013),
    so the float weight underneath keeps learning, and -- like torch's fake_quantize backward
    -- passes zero gradient where round(w / scale) + zero_point falls outside [qmin, qmax]
    (a clamped weight cannot move its output). The grid is fixed (buffers); the optional mask
    keeps pruned weights at exactly zero.
    """

    def __init__(self, scale, zero_point, qmin, qmax, mask=None):
        super().__init__()
        self.register_buffer("scale", scale.detach().to(torch.float32))
        self.register_buffer("zero_point", zero_point.detach().to(torch.int64))
        self.register_buffer("mask", None if mask is None else mask.detach().to(torch.bool))
        self.qmin, self.qmax = int(qmin), int(qmax)

    def forward(self, w):
        q, s, zp = _unclamped_codes(w.detach(), self.scale, self.zero_point)
        fq = (torch.clamp(q, self.qmin, self.qmax) - zp) * s
        inside = (q >= self.qmin) & (q <= self.qmax)
        out = fq + (w - w.detach()) * inside  # value fq, gradient 1 inside the range, else 0
        return out if self.mask is None else torch.where(self.mask, out, 0.0)


def quantize_model(model, bits, symmetric=False, per_channel=False, calibration="minmax", masks=None):
    """Fake-quantize every compressible weight of `model` in place, each with its own grid.
    Returns {name: (scale, zero_point, qmin, qmax)}. Pruned weights (masks False, or already
    zero) stay exactly zero: 0 is always on the grid. A weight with no elements (nn.Linear(144, 0)) has nothing to
    quantize: it is carried as it is (no grid), as pruning and clustering carry it."""
    out = {}
    for name, p in compressible(model).items():
        if p.numel() == 0:
            continue
        scale, zero_point, qmin, qmax = qparams(p, bits, symmetric, per_channel, calibration)
        with torch.no_grad():
            fq = fake_quantize_with(p.detach(), scale, zero_point, qmin, qmax)
            if masks is not None and name in masks:
                fq = torch.where(masks[name].to(fq.device), fq, 0.0)
            p.copy_(fq)
        out[name] = (scale, zero_point, qmin, qmax)
    return out


def quantize_biases(model, bits):
    """Put the bias of every compressible layer on its own per-tensor affine grid of `bits` bits (MSE
    calibrated), in place -> {bias name: encode.Affine} for the encoder. A bias is a few hundred numbers
    against hundreds of thousands of weights, yet stored as float32 it is a sixth of a 100x artifact;
    at 8 bits both LeNets (90 % pruned, 16 clusters) moved by at most 0.02 points of test accuracy."""
    from compress_engine.core.encode import Affine
    grids = {}
    for mod_name, module in model.named_modules():
        bias = getattr(module, "bias", None)
        if not isinstance(module, (nn.Linear, *CONVS)) or bias is None or bias.numel() == 0:
            continue
        scale, zp, qmin, qmax = qparams(bias, bits, calibration="mse")
        with torch.no_grad():
            bias.copy_(fake_quantize_with(bias.detach(), scale, zp, qmin, qmax))
        grids[f"{mod_name}.bias" if mod_name else "bias"] = Affine(scale.numpy().astype("float32"), zp.numpy(), qmin, qmax)
    return grids


# -----------------------------------------------------------------------------
# a real int8 runtime


def _baked_copy(model):
    """A copy of `model` in eval mode with its parametrizations baked into plain weights; `model` stays as it is.

    deepcopy shares a parametrized module's generated class (ParametrizedLinear) with the original, and
    remove_parametrizations deletes the weight's property from that class: done on the copy alone, it left the
    original without its weight (a second int8_latency of the same model failed). Each copy gets a class of its own.
    """
    out = copy.deepcopy(model).eval()
    for module in out.modules():
        if parametrize.is_parametrized(module):
            cls = type(module)
            module.__class__ = type(cls.__name__, cls.__bases__, dict(cls.__dict__))
            for name in list(module.parametrizations):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    return out


# the layer classes torch's dynamic quantization runs in int8 (exactly these: a subclass such as attention's
# out-projection is left alone by quantize_dynamic)
INT8_DYNAMIC = (nn.Linear, nn.LSTM, nn.GRU, nn.LSTMCell, nn.GRUCell, nn.RNNCell)
# torch's transformer layers read linear1/2.weight as tensors before choosing their fast path in eval mode, and an
# int8 Linear's weight is a method: those two stay float32 (in the TRANSFORMER_LAYERS of model.py)


def int8_plan(model):
    """{layer name: class} of the layers int8_latency quantizes: every INT8_DYNAMIC layer outside torch's
    transformer layers' feed-forward pair."""
    kept = {f"{name}.{child}" for name, m in model.named_modules() if isinstance(m, TRANSFORMER_LAYERS)
            for child in ("linear1", "linear2")}
    return {name: type(m) for name, m in model.named_modules() if type(m) in INT8_DYNAMIC and name not in kept}


def int8_latency(model, example_batch, repeats=20, seconds=None):
    """Median latency (ms) of `model` on `example_batch` (a tensor of its inputs, e.g. data.x("test")[:256]; anything
    else is refused, CompressError) in float32 and with int8 weights, timed in turns (a call of
    each, `repeats` times, after a warm-up call of each), so a load that comes and goes falls on both alike.

    With `seconds`, a model too slow for `repeats` turns in about that long gets fewer, at least 3; "repeats" says
    how many. "speedup" is fp32_ms / int8_ms; "speedup_spread" the lower and upper quartiles of the turns' own
    ratios, how far one measurement can be trusted on this machine now.

    The int8 model is torch.ao.quantization.quantize_dynamic(copy, int8_plan(copy), torch.qint8): Linear, LSTM and
    GRU layers (and their cells) run int8 matrix products (activations quantized on the fly), other layers
    (convolutions, embeddings, attention in-projections, and the feed-forward Linears of torch's own transformer
    layers) stay float32; the returned "int8_layers" / "fp32_layers" name the compressible ones. The model is copied
    (parametrizations baked in), never changed. A model torch's int8 layers cannot run raises ModelError. torch.ao's
    deprecation warnings are silenced here: it is still the only int8 CPU runtime inside torch itself.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, numbers.Integral) or repeats < 1:
        raise RecipeError(f"repeats must be an integer >= 1, got {repeats!r}")
    if seconds is not None and not (isinstance(seconds, numbers.Real) and seconds > 0):
        raise RecipeError(f"seconds must be a number > 0, got {seconds!r}")
    if not isinstance(example_batch, torch.Tensor):  # a Dataset, say: torch's int8 forward would be blamed for it
        given = type(example_batch).__name__
        raise CompressError(f"example_batch must be a tensor of the model's inputs (a batch of them), got a {given}: "
                            + ("pass its test inputs, e.g. data.x('test')[:256]" if hasattr(example_batch, "x") else
                               "e.g. data.x('test')[:256] of a compress_engine.Dataset, or torch.as_tensor(...)"))
    check_device(model)  # a meta-device (or GPU) model, refused in words before it is copied
    fp32 = _baked_copy(model)
    plan = int8_plan(fp32)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*deprecated.*")
        qconfig = torch.ao.quantization.default_dynamic_qconfig
        int8 = torch.ao.quantization.quantize_dynamic(copy.deepcopy(fp32), dict.fromkeys(plan, qconfig),
                                                      dtype=torch.qint8)
        try:
            with torch.inference_mode():
                int8(example_batch)
        except Exception as e:  # torch's int8 modules inside a forward that expects float ones
            raise ModelError(f"torch's int8 dynamic quantization of {', '.join(plan) or 'no layer'} cannot run "
                             f"{type(model).__name__} ({type(e).__name__}: {str(e)[:200]})") from None
        fp32_times, int8_times = forward_ms_in_turns([fp32, int8], example_batch, int(repeats), seconds)
    fp32_ms, int8_ms = statistics.median(fp32_times), statistics.median(int8_times)
    ratios = [f / max(i, 1e-9) for f, i in zip(fp32_times, int8_times)]
    q1, _, q3 = statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else ratios * 3
    return {
        "fp32_ms": fp32_ms,
        "int8_ms": int8_ms,
        "speedup": fp32_ms / int8_ms if int8_ms > 0 else math.inf,
        "speedup_spread": (q1, q3),
        "int8_layers": list(plan),
        "fp32_layers": [n for n, m in fp32.named_modules() if isinstance(m, COMPRESSIBLE) and n not in plan],
        "engine": torch.backends.quantized.engine,
        "repeats": len(fp32_times),
    }


# -----------------------------------------------------------------------------
# the pipeline stage


def active(recipe):
    return recipe.bits is not None


def epochs(recipe):
    return recipe.finetune_epochs


def apply(model, recipe, ctx):
    """Put every compressible weight on its uniform grid, fine-tune with the straight-through estimator
    (pruned weights held at zero), and leave each layer's grid in ctx.grids."""
    from compress_engine.core.encode import Affine
    r = recipe
    qp = quantize_model(model, r.bits, r.symmetric, r.per_channel, r.calibration, ctx.masks)
    pars = {n: FakeQuantSTE(*qp[n], mask=None if ctx.masks is None else ctx.masks[n]) for n in qp}
    ctx.finetune(model, pars, NAME)
    ctx.grids = {n: Affine(s.numpy().astype("float32"), zp.numpy(), qmin, qmax)
                 for n, (s, zp, qmin, qmax) in qp.items()}
    return model
