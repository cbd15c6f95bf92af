"""Data for the dashboard's charts: histograms, masks, grids and per-layer tables, as plain numpy.

Pages draw; they do not compute. Everything a chart needs that takes numpy or torch lives here
as a small pure function over the weights a run returns ({param name: numpy array}) or over its
metrics dict. No streamlit, no plotly: the functions are unit-tested like the rest of the engine.

The "compressible" weights are those the engine compresses: the `.weight` of every Linear
(out x in) and Conv2d (out x in x k x k) layer, i.e. the arrays named "*weight" with 2+ dims.
"""

import html
import math
import numbers

import numpy as np

from .cards import DEFAULT_DATA

# torch and the engine's modules on it are imported by the two functions that need them: a chart's ticks and
# palette (Home's first paint) come from here without torch's 1-2 s import.


# -----------------------------------------------------------------------------
# which weights, and their values


def compressible_names(weights):
    """Names of the compressible weights (Linear / Conv2d `.weight`, 2+ dims), in model order."""
    return [n for n, w in weights.items() if n.endswith("weight") and np.ndim(w) >= 2]


def layer_label(name):
    """A weight's name as a chart or a card shows its layer: "blocks.1.conv2.weight" -> "blocks.1.conv2"."""
    return name.removesuffix(".weight")


def values(weights, names=None, nonzero=False):
    """All entries of the named weights (default: every compressible one) as one flat float64 array;
    only the non-zero ones if `nonzero` (the weights a pruned model still stores)."""
    names = compressible_names(weights) if names is None else list(names)
    if not names:
        return np.zeros(0)
    flat = np.concatenate([np.asarray(weights[n], dtype=np.float64).ravel() for n in names])
    return flat[flat != 0] if nonzero else flat


def nonzero_values(weights, names=None):
    """The non-zero entries of the named (default: all compressible) weights, flat float64."""
    return values(weights, names, nonzero=True)


def kept_mask(weight):
    """Where a compressed weight is non-zero (kept by pruning), as a bool array of its shape."""
    return np.asarray(weight) != 0


def kept_values(dense_weight, compressed_weight):
    """The dense weight's values at the positions the compressed weight kept (non-zero), flat:
    what clustering or quantization started from after pruning."""
    return np.asarray(dense_weight, dtype=np.float64)[kept_mask(compressed_weight)]


def channel_values(weight, channel=0):
    """The entries of one output channel (row of a Linear weight, filter of a Conv weight), flat."""
    w = np.asarray(weight)
    if not 0 <= channel < w.shape[0]:
        raise IndexError(f"channel {channel} out of range: the weight has {w.shape[0]} output channels")
    return np.asarray(w[channel], dtype=np.float64).ravel()


def centroids(weight):
    """The distinct non-zero values of a clustered weight, sorted: its shared centroids."""
    w = np.asarray(weight, dtype=np.float64).ravel()
    return np.unique(w[w != 0])


# -----------------------------------------------------------------------------
# histograms


def value_range(*arrays, pad=0.0):
    """(lo, hi) covering every array (empty ones ignored), widened by `pad` × the span on each side;
    (-1, 1) if all are empty, and a span of at least 1e-6 so a histogram always has width."""
    filled = [np.asarray(a) for a in arrays if np.size(a)]
    if not filled:
        return -1.0, 1.0
    lo = float(min(a.min() for a in filled))
    hi = float(max(a.max() for a in filled))
    if hi - lo < 1e-6:
        lo, hi = lo - 0.5e-6, hi + 0.5e-6
    span = hi - lo
    return lo - pad * span, hi + pad * span


def histogram(vals, bins=100, range=None):  # noqa: A002 (numpy's name for it)
    """Counts (int64, `bins`) and edges (`bins` + 1) of `vals`, as numpy.histogram; the range
    defaults to value_range(vals). Values outside an explicit range are not counted."""
    vals = np.asarray(vals, dtype=np.float64).ravel()
    lo, hi = value_range(vals) if range is None else range
    counts, edges = np.histogram(vals, bins=bins, range=(lo, hi))
    return counts.astype(np.int64), edges


# -----------------------------------------------------------------------------
# pruning: masks and per-layer sparsity


def as_matrix(weight):
    """A weight as the 2-D matrix it acts as: Linear out×in stays, Conv out×in×k×k -> out×(in·k·k)."""
    w = np.asarray(weight)
    if w.ndim < 2:
        raise ValueError(f"a weight matrix needs 2+ dims, got shape {w.shape}")
    return w.reshape(w.shape[0], -1)


def mask_image(weight, max_side=300):
    """Where `weight` is non-zero, as an image: rows = output units, columns = inputs (a conv
    weight reshaped out × (in·k·k)). 1.0 = kept, 0.0 = pruned.

    If a side is longer than `max_side`, blocks of fr × fc weights (fr, fc = ceil(side / max_side))
    become one pixel holding the fraction of that block kept (a partial block at the edge averages
    what it has). Returns (image float64, (fr, fc)).
    """
    if max_side < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")
    kept = as_matrix(weight) != 0
    rows, cols = kept.shape
    fr, fc = math.ceil(rows / max_side), math.ceil(cols / max_side)
    if fr == fc == 1:
        return kept.astype(np.float64), (1, 1)
    R, C = math.ceil(rows / fr), math.ceil(cols / fc)
    padded = np.zeros((R * fr, C * fc), dtype=bool)
    padded[:rows, :cols] = kept
    # each block's mean over the weights it has: how many it keeps over its count (an edge block's count is
    # smaller), the exact values np.nanmean gives on a NaN-padded float64 copy, with a byte a weight instead of 8
    # (a 12.5 M-weight layer, the most a 50 MB upload holds: 25 MB, not 200 MB of float64 copies) and in under half
    # the time (300 x 784: 1.6 ms, was 3.5)
    sums = padded.reshape(R, fr, C, fc).sum(axis=(1, 3))
    count_r = np.minimum(fr, rows - fr * np.arange(R))
    count_c = np.minimum(fc, cols - fc * np.arange(C))
    return sums / np.outer(count_r, count_c), (fr, fc)


def structured_masks(model, sparsity, example_input=None):
    """Which weights of the dense model structured pruning at `sparsity` keeps, in the dense shapes:
    {name: bool array} for every compressible weight (all True where a layer is kept whole).

    The choice is the engine's own (compress_engine.core.structured): the units each group of coupled
    layers keeps, traced through the model's graph, with the input columns of the layers that read
    them. `model` is the dense nn.Module and `example_input` an input its forward takes; or, as the
    pages hold a sample model, its dense weights {name: array}, rebuilt with zoo.infer_spec and traced
    on one 28x28 image.
    """
    import torch

    from ..core import structured
    from . import zoo
    if not isinstance(model, torch.nn.Module):
        state = {k: torch.as_tensor(np.asarray(v, dtype=np.float32)) for k, v in model.items()}
        model, example_input = zoo.from_state_dict(zoo.infer_spec(state), state), torch.zeros(1, 1, 28, 28)
    kept = structured.masks(model, structured.plan(model, sparsity, example_input))
    weights = {k: v.detach() for k, v in model.state_dict().items()}
    return {name: kept[name].numpy() if name in kept else np.ones(weights[name].shape, dtype=bool)
            for name in compressible_names(weights)}


def layer_sparsity(metrics, dense_metrics=None):
    """Per compressible layer: name, shape, params (of the dense layer when dense_metrics is given,
    so structured pruning's removed units count as pruned), nonzero, sparsity = 1 - nonzero / params.
    Rows of a damaged or foreign run (a stored run's metrics are untrusted) are skipped, not a crash."""
    def ok(row):
        return (isinstance(row, dict) and isinstance(row.get("name"), str) and isinstance(row.get("shape"), list)
                and all(isinstance(row.get(k), numbers.Real) and not isinstance(row.get(k), bool)
                        for k in ("params", "nonzero")) and row["params"] > 0)
    dense = {} if dense_metrics is None else {row["name"]: row for row in dense_metrics["layers"] if ok(row)}
    layers = metrics.get("layers") if isinstance(metrics, dict) else None
    rows = []
    for row in layers if isinstance(layers, list) else []:
        if not ok(row) or not row["name"].endswith("weight") or len(row["shape"]) < 2:
            continue
        params = dense.get(row["name"], row)["params"]
        rows.append({"name": row["name"], "shape": list(row["shape"]), "params": params,
                     "nonzero": row["nonzero"], "sparsity": 1 - row["nonzero"] / params if params else 0.0})
    return rows


def zero_share(nonzero, params):
    """The share of a model's own parameters that are exactly zero, from compress()'s metrics ("nonzero_params",
    "params") or a card's counts; None if either is missing or not a count. Not metrics["sparsity"], which counts
    against the dense model: there the units structured pruning removed, or a student's missing layers, are zeros."""
    ok = all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in (nonzero, params)) and params > 0
    return 1 - nonzero / params if ok else None


def points_lost(accuracy, dense_accuracy):
    """Accuracy points a compressed model lost against its own dense model, 100 x (dense - accuracy) (negative: it
    gained); None without both. Runs of models of different dense accuracy compare at equal loss by it."""
    ok = [isinstance(a, numbers.Real) and not isinstance(a, bool) and math.isfinite(a)
          for a in (accuracy, dense_accuracy)]
    return 100 * (dense_accuracy - accuracy) if all(ok) else None


def flops_ratio(flops, dense_flops):
    """How many times fewer FLOPs than the dense model's, from compress()'s metrics ("flops", "dense_flops"); None if
    either is missing (a run stored before they were counted) or not a count."""
    ok = all(isinstance(v, numbers.Real) and not isinstance(v, bool) and v > 0 for v in (flops, dense_flops))
    return dense_flops / flops if ok else None


def flops_text(flops, dense_flops):
    """One sentence on what a model's forward pass costs against the dense model's (flops_ratio's metrics); empty
    without both counts."""
    fewer = flops_ratio(flops, dense_flops)
    if fewer is None:
        return ""
    return (f"The smaller model needs {flops / 1e6:,.2f} MFLOPs per image against the dense model's "
            f"{dense_flops / 1e6:,.2f} MFLOPs: {fewer:.1f}× fewer.")


# -----------------------------------------------------------------------------
# quantization: the grid


def quant_grid(weight, bits, symmetric=False, per_channel=False, calibration="minmax", channel=0):
    """The representable values of the grid the engine fits to `weight` (quantize.qparams with the
    same settings, as post-training quantization does): (q - zero_point) * scale for every integer q
    in [qmin, qmax], sorted. Per channel, the grid of output channel `channel`.

    Returns {"values" (float64), "scale", "zero_point", "qmin", "qmax", "channel" (None per tensor)}.
    """
    import torch

    from ..core.quantize import qparams
    w = torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32))
    scale, zero_point, qmin, qmax = qparams(w, bits, symmetric, per_channel, calibration)
    c = channel if per_channel else 0
    if not 0 <= c < len(scale):
        raise IndexError(f"channel {channel} out of range: the weight has {len(scale)} output channels")
    s, z = scale[c], zero_point[c]
    q = torch.arange(qmin, qmax + 1, dtype=torch.float32)
    grid = ((q - z.to(torch.float32)) * s).double().numpy()  # float32 ops, as fake_quantize_with
    return {"values": grid, "scale": float(s), "zero_point": int(z), "qmin": qmin, "qmax": qmax,
            "channel": c if per_channel else None}


# -----------------------------------------------------------------------------
# curves


def next_steps(options, current):
    """A slider's next values either way from `current` among its `options` (in order): [up, down], those that exist."""
    options = list(options)
    i = options.index(current)
    return [options[j] for j in (i + 1, i - 1) if 0 <= j < len(options)]


def curve_points(grid, current):
    """The sorted settings of a curve: the fixed `grid` plus the current setting."""
    return sorted(set(grid) | {current})


# -----------------------------------------------------------------------------
# axes

LOG_STEPS = ((1,), (1, 3), (1, 2, 5), (1, 1.5, 2, 3, 5, 7), (1, 2, 3, 4, 5, 6, 7, 8, 9))  # sparse to dense


TICK_SLACK = 1.05  # a log axis's tick may lie this factor beyond the data it spans


def log_ticks(values, max_ticks=8):
    """Tick values and labels for a log axis over the positive `values`: [(value, label)].

    Plotly's own log ticks label every digit of a short range ("8 9 10 2 3 … 100 2"); these are
    whole numbers from the densest of 1 / 1-3 / 1-2-5 / 1-1.5-2-3-5-7 / 1-9 per decade that fits
    `max_ticks` across the values, written out in full ("20", "50", "100", "1,000"). A tick up to TICK_SLACK
    beyond the smallest or largest value counts as inside (Plotly pads its range about that much for markers):
    runs of 20.4 and 26.1 KB get a tick at 20, not only one at 50.
    """
    v = np.asarray([x for x in np.ravel(values) if x is not None], dtype=np.float64)
    v = v[np.isfinite(v) & (v > 0)]
    if not v.size:
        return []
    lo, hi = float(v.min()), float(v.max())
    if hi / lo < 1.0001:  # one value: a tick on it
        return [(lo, tick_label(lo))]
    decades = range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
    chosen = []
    for steps in LOG_STEPS:
        ticks = [m * 10.0 ** d for d in decades for m in steps]
        inside = [t for t in ticks if lo / TICK_SLACK <= t <= hi * TICK_SLACK]
        if len(inside) > max_ticks and len(chosen) >= 2:
            break
        chosen = inside
    if len(chosen) < 2:  # a range too short for two whole ticks: the nearest ones around it too
        chosen = [t for t in ticks if lo / 1.5 <= t <= hi * 1.5]
    return [(t, tick_label(t)) for t in chosen]


def lone_ticks(value, span):
    """Ticks for a log axis over one positive `value`, spanning `span` either side of it: [(value, label)], only
    ticks inside [value / span, value * span] and at least one on each side of the value (123.39 gets 100 and
    150, not 80 90 100, all on one side, one outside). The sparsest of LOG_STEPS (then 1-9 with 1.5) that does it:
    the rounder the numbers, the easier they read."""
    lo, hi, eps = value / span, value * span, 1e-9
    decades = range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
    ticks = []
    for steps in (*LOG_STEPS, tuple(sorted({*LOG_STEPS[-1], 1.5}))):
        ticks = sorted(float(f"{m * 10.0 ** d:.6g}") for d in decades for m in steps)
        ticks = [t for t in ticks if lo * (1 - eps) <= t <= hi * (1 + eps)]
        if any(t < value * (1 - eps) for t in ticks) and any(t > value * (1 + eps) for t in ticks):
            break
    return [(t, tick_label(t)) for t in ticks]


def tick_label(x):
    """1000 -> '1,000', 20 -> '20', 0.5 -> '0.5', 1.5 -> '1.5' (float noise of 10**d removed)."""
    x = float(f"{x:.6g}")
    if x >= 1 and x == int(x):
        return f"{int(x):,}"
    return f"{x:,.6g}"


# -----------------------------------------------------------------------------
# colours: one palette for every chart of the dashboard and the benchmarks

# Handed out in this order: the first six are far-apart hues (no blue next to light blue, no red next to pink, as
# Plotly's default sequence has); brown, cyan and pink only come after them. No black: Streamlit's dark theme draws
# charts on a near-black background, where a black series vanished.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#bcbd22", "#8c564b", "#17becf", "#e377c2")
GREY = "#7f7f7f"  # references (dense lines, benchmark points): never a series colour


def chart_text(text):
    """User text (a run's name, a model's, a layer's) for a Plotly chart's hover, legend or axis, shown as typed:
    Plotly renders a subset of HTML there, so a run named '<a href="https://evil.example">x</a>' was a link and
    '<b>' bold in every session sharing the run store. '&', '<' and '>' become the entities Plotly writes back as
    those characters (it does not know '&quot;': quotes stay, harmless once no tag can open)."""
    return html.escape(str(text), quote=False)


# -----------------------------------------------------------------------------
# benchmark reference points (store.reference_points rows) as labelled series

# the source of bench/beyond.py's points (store.reference_points): its table of each model (beyond_<model>.csv: a size
# budget fit per layer, beside the dense model; its variants (seeds, settings tried) are not reference points). Here,
# not in store: the store imports torch, and Home's first paint imports this module without it
BEYOND = "beyond"
DEEP_COMPRESSION_CSV = "deep_compression.csv"  # bench/deep_compression.py's stages, fine-tuned after each
REFERENCE_SETS = {DEEP_COMPRESSION_CSV: "Deep Compression stages",
                  "techniques.csv": "each technique at 1/8-1/64 of the dense size",
                  BEYOND: "a size budget fit per layer"}  # bench/beyond.py's table of each sample model
REFERENCE_DATA = DEFAULT_DATA  # the data every REFERENCE_SETS file was measured on (bench/*.py's default)


def reference_series(points, source):
    """The reference points of one bench/results file as series to draw and label, one per model (Deep
    Compression's stages) or per model and technique (the equal-budget search, "prune @ 1/8" ...).

    Returns [{"name", "model", "bytes", "accuracy", "labels", "hover"}], each sorted by size, largest first;
    "labels" names points on the chart, briefly (Deep Compression: every stage, "+ Huffman"; a technique: its
    smallest point only, "" elsewhere, so the chart stays readable; with more than one model, the largest labelled
    point also names its model), "hover" names every point in full."""
    series = {}
    for p in points:
        if p["source"] != source:
            continue
        technique, _, budget = p["label"].partition(" @ ")
        name = (p["model"], technique if budget else "")
        s = series.setdefault(name, {"name": f"{p['model']}: {technique}" if budget else p["model"],
                                     "model": p["model"], "bytes": [], "accuracy": [], "labels": [], "hover": []})
        s["hover"].append(p["label"])
        s["bytes"].append(p["artifact_bytes"])
        s["accuracy"].append(p["accuracy"])
        s["labels"].append("" if budget else _short(p["label"]))
    out = []
    for (_, technique), s in series.items():
        order = sorted(range(len(s["bytes"])), key=lambda i: -s["bytes"][i])
        for k in ("bytes", "accuracy", "labels", "hover"):
            s[k] = [s[k][i] for i in order]
        if technique:
            s["labels"][-1] = technique
        out.append(s)
    if len({s["model"] for s in out}) > 1:  # grey lines of two models: the labelled end of each names its model
        for s in out:
            end = -1 if s["labels"][-1] and not s["labels"][0] else 0
            s["labels"][end] = f"{s['model']}: {s['labels'][end]}"
    return out


def _short(label):
    """A stage's label cut to its first step: '+ weight sharing + centroid tuning' -> '+ weight sharing',
    '+ Huffman (Deep Compression)' -> '+ Huffman', 'stretch: 97% pruned, ...' -> '97% pruned' (what a student can
    read on the chart; 'stretch', the bench's name for it, told a class nothing)."""
    name, _, details = label.split(" (")[0].partition(":")
    head = (details.split(",")[0] if details.strip() else name).strip()
    lead = "+ " if head.startswith("+ ") else ""
    return lead + head[len(lead):].split(" + ")[0]
