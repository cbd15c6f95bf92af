"""Structured pruning on real graphs: remove whole channels and units wherever the graph allows it.

Removing output unit c of a layer (a row of a Linear weight, a filter of a conv) is only safe if
everything that reads unit c loses it too. This module finds those dependencies the way Torch-Pruning's
DepGraph (Fang et al., CVPR 2023) does, but on a torch.fx trace instead of an autograd trace:

1. `torch.fx.symbolic_trace` the model and run ShapeProp on `example_input`, so every value has a shape.
2. Walk the graph in order, following each prunable layer's channels ("producers": nn.Linear,
   nn.Conv1d/2d/3d and nn.ConvTranspose1d/2d/3d with groups=1; a transposed conv's weight is (in, out, *k), so
   its units are weight dim 1, and so are an nn.Embedding's or nn.EmbeddingBag's (num_embeddings, dims); grouped
   convs as in ResNeXt and RegNet, whose every group keeps as many filters and input channels as the others)
   through the ops that keep channels apart:
   - elementwise ops (relu, gelu, sigmoid, tanh, dropout, identity, ...), pooling over spatial dims and
     resizing them (F.interpolate, nn.Upsample);
   - BatchNorm1d/2d/3d, which is pruned with its producer (weight, bias, running mean and variance), and
     depthwise convs (groups = channels, as in MobileNet's blocks), whose filters are pruned with it alike;
   - flatten / view(N, -1) / reshape(N, -1): conv channel c of a C x H x W map becomes the Linear input
     columns c*H*W ... c*H*W + H*W - 1;
   - mean / sum / amax / amin, and max / min (values), over other dims; squeezing other size-1 dims; mul / div /
     add / sub with a scalar; transpose / permute (the channels move with the dim that holds them); picking or
     slicing other dims (x[:, -1], the last step of a sequence);
   - residual additions (and products) of two followed tensors: their producers become ONE group that
     keeps the same channels, chosen by their summed importance; one of them may be size 1 in every other dim
     (a squeeze-and-excitation gate or a global-context vector, x * g[:, :, None, None], unsqueezed);
   - torch.cat of feature maps along their channel dim (a U-Net's skip connections, a DenseNet block): each
     group keeps its offset among the joined channels, and a BatchNorm or layer after the join loses each
     group's removed channels at that offset (inputs no layer makes, such as the model's input, only take
     up room).
   The channels end at "consumers" (Linear / Conv layers that read them), which lose input columns.
3. Everything else that a followed channel reaches blocks its group, with a reason: the model output
   (so the final layer and any channel that reaches the output are never pruned), cat along another dim
   or after a flatten, a residual add of joined channels, split,
   matmul, attention, grouped transposed convs, LayerNorm, any module whose inside the
   trace does not show (nn.TransformerEncoder, nn.MultiheadAttention) and any unknown function. A
   layer called twice or a parameter shared between layers blocks too. Unknown means refused: Torch-
   Pruning treats unknown ops as elementwise, which silently breaks e.g. attention.
4. nn.RNN, nn.LSTM and nn.GRU (any number of layers, one or two directions): each layer's hidden units are a group
   of its own (`rnn[k]`, see _RNNLayer), read by the next layer, the last layer's by whatever reads the output
   sequence, and any layer's by whatever reads its final state (h_n[k], one direction's units); a layer before the
   RNN loses the inputs of its layer 0. Their cells (nn.RNNCell, LSTMCell, GRUCell) stepped in a loop of the user's
   own are one producer over all their steps, with whatever makes their state (an encoder's Linear) in its group.
After pruning, prune_structured runs the smaller model once on example_input: a tensor of a layer's old size that
the trace cannot see (a learned initial state) is a ModelError saying so, not a crash later.
5. Inside torch's own transformer layers (nn.TransformerEncoderLayer / DecoderLayer, alone or in an
   nn.TransformerEncoder, nn.Transformer, ...), which the trace shows as one call, the feed-forward block's hidden
   units are a group of their own: linear1's rows and bias, linear2's input columns (see TRANSFORMER_LAYERS).

The pruned model computes exactly what the dense model computes with the removed units' weights,
biases and BatchNorm scales zeroed and the consumers' matching input columns zeroed (`masks`).

    p = plan(model, 0.5, example_input)   # which units of which layers are kept, grouped
    small = apply(model, p)               # a smaller deep copy: same classes, the user's forward runs
    small = prune_structured(model, 0.5, example_input)   # both in one call
"""

import contextlib
import copy
import io
import math
import operator
import re
import sys
from collections import Counter, namedtuple
from dataclasses import dataclass, field

import torch
import torch.fx as fx
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata
from torch.nn.utils import parametrize

from compress_engine.core import tracing
from compress_engine.core.errors import ModelError
from compress_engine.core.model import NORMS, TRANSFORMER_LAYERS, TRANSPOSED
from compress_engine.core.prune import _check_fraction

# an embedding table's units are its dims, weight columns (num_embeddings, embedding_dim): an embedding-bag's too
EMBEDDINGS = (nn.Embedding, nn.EmbeddingBag)
PRODUCERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, *TRANSPOSED, *EMBEDDINGS)
ELEMENTWISE_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
                       nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Softsign,
                       nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity)
POOL_MODULES = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
                nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
                nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.LPPool1d, nn.LPPool2d, nn.LPPool3d)
# functions and tensor methods, by name (torch.relu, F.relu, x.relu(), ...)
ELEMENTWISE = {"relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "mish", "hardswish",
               "hardsigmoid", "hardtanh", "sigmoid", "tanh", "softplus", "softsign", "dropout", "dropout1d",
               "dropout2d", "dropout3d", "alpha_dropout", "contiguous", "clone", "neg", "abs",
               "zeros_like", "ones_like"}  # (a fresh state of a value's shape: its channels are that value's)
# resizing over every dim after the channels (N, C, *spatial): nn.Upsample (and its Nearest / Bilinear subclasses)
RESIZE_MODULES = (nn.Upsample,)
RESIZE = {"interpolate", "upsample", "upsample_nearest", "upsample_bilinear"}
POOLS = {f"{kind}_pool{d}d" for kind in ("max", "avg", "adaptive_avg", "adaptive_max", "lp") for d in (1, 2, 3)}
BINARY = {operator.add, operator.sub, operator.mul, operator.truediv, torch.add, torch.sub, torch.mul, torch.div}
BINARY_METHODS = {"add", "sub", "mul", "div"}
REDUCE = {"mean", "sum", "amax", "amin"}
PAIRS = {"max", "min"}  # along a dim: (values, indices), the values reduced as REDUCE reduces
HARMLESS = {"dtype", "device", "ndim", "is_cuda", "requires_grad"}  # tensor attributes that say nothing of channels

CATS = {"cat", "concat", "concatenate"}  # torch.cat and its aliases: channels joined along their dim

# torch's transformer layers (alone, or inside nn.TransformerEncoder / Decoder / nn.Transformer): torch.fx keeps
# them whole, as it keeps every torch.nn module, but the hidden units of their feed-forward block (linear1 ->
# activation -> dropout -> linear2, in their own forward) are read by linear2 alone, so they form a group of their
# own wherever the layer is used. Attention heads are not pruned: nn.MultiheadAttention projects queries, keys
# and values to exactly embed_dim, so it cannot drop a head. (TRANSFORMER_LAYERS: model.py)

# Recurrent layers (torch.fx keeps them whole too): layer k of an nn.RNN / LSTM / GRU, all its directions, is a
# producer named `rnn[k]` (see _RNNLayer), each of its hidden units a row per gate of weight_ih_lk and weight_hh_lk
# (and their biases) plus a column of weight_hh_lk; layer k + 1 reads them through weight_ih_l(k+1)'s columns.
RNN_GATES = {nn.RNN: 1, nn.GRU: 3, nn.LSTM: 4}  # rows per hidden unit in each weight matrix, gate-major
# their cells, stepped in a loop of the user's own (a decoder): each call's state feeds the next call, so the cell
# is one producer however often the trace calls it, its units read by its own weight_hh and whatever reads them
CELL_GATES = {nn.RNNCell: 1, nn.GRUCell: 3, nn.LSTMCell: 4}

# The channels of one group, as they lie in a value: along dimension `dim`, unit c of `units` occupies
# positions o*span*inner + (offset + c)*inner + i for o < outer, i < inner (outer = inner = 1 until a flatten;
# offset = 0 and span = units until a torch.cat puts other channels beside them; units with offset + c outside
# 0 .. span - 1 are not in the value: h_n[k] of a bidirectional RNN holds one direction's). A followed value is a
# tuple of Flows, one per group whose channels it holds: one, or several side by side after a torch.cat; they
# share dim, outer, inner and span.
Flow = namedtuple("Flow", "group dim outer inner units offset span")


@dataclass(frozen=True)
class _RNNValue:
    """What a call of an nn.RNN / LSTM / GRU gives before a getitem picks a tensor out of it: the (output, state)
    pair (kind "call"), an LSTM's (h_n, c_n) (kind "states") or a final state h_n / c_n (kind "state", shape
    (layers * D, N, H)). `layers`: the Flow of each layer's units. Iterating gives those Flows, so blocking the
    value blocks the whole RNN."""
    kind: str
    layers: tuple
    dirs: int
    lstm: bool

    def __iter__(self):
        return iter(self.layers)


@dataclass(frozen=True)
class _Pair:
    """x.max(dim) / x.min(dim) before a getitem or .values picks the values out: `values` is their Flows."""
    values: tuple

    def __iter__(self):
        return iter(self.values)


class _Blocked(Exception):
    """Raised while following a node: the followed channels reach something that is not channel-wise."""


@dataclass(frozen=True)
class Group:
    """Layers whose output units are kept or removed together.

    producers: the layers whose output units (weight rows / filters, and bias entries) are removed;
    norms: (layer, offset, span) for each BatchNorm or depthwise conv pruned with them: it keeps features (or
    filters) offset + c of its
    span for every kept unit c (offset 0 and span = units, unless a torch.cat put other channels beside them);
    consumers: (layer, outer, inner, offset, span) for each layer that reads the units: it keeps input columns
    o*span*inner + (offset + c)*inner + i for every kept unit c;
    keep: the kept unit indices (sorted LongTensor), out of `units`;
    blocks: the units fall into this many equal runs (c // (units / blocks)) that keep as many units each: a grouped
    conv among the producers or consumers (groups = blocks, or a divisor of it) needs the same count in every group.
    """
    producers: tuple
    norms: tuple
    consumers: tuple
    units: int
    keep: torch.Tensor = field(compare=False)
    blocks: int = 1


@dataclass(frozen=True)
class Plan:
    """What structured pruning at `amount` removes: prunable `groups`, and the layers it leaves whole
    with the reason (`skipped`: {layer name: why})."""
    amount: float
    groups: tuple
    skipped: dict

    def keep(self):
        """{producer layer name: kept output unit indices}."""
        return {name: g.keep for g in self.groups for name in g.producers}

    def __str__(self):
        lines = [f"structured pruning at {self.amount:g}:"]
        for g in self.groups:
            lines.append(f"  keep {len(g.keep)} of {g.units} units of {' + '.join(g.producers)}"
                         + (f" ({len(g.keep) // g.blocks} in each of {g.blocks} "
                            f"{'directions' if any(map(_rnn_of, g.producers)) else 'conv groups'})"
                            if g.blocks > 1 else "")
                         + (f" (with {', '.join(n[0] for n in g.norms)})" if g.norms else "")
                         + f"; inputs of {', '.join(c[0] for c in g.consumers) or 'nothing'} follow")
        lines += [f"  {name} kept whole: {why}" for name, why in self.skipped.items()]
        return "\n".join(lines)


def _depthwise(m):
    """A depthwise conv (groups = in = out channels > 1, as in MobileNet): filter c reads channel c alone, so it is
    channel-wise, and pruned with the channels it reads, as a BatchNorm is."""
    return (isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and m.groups > 1
            and m.groups == m.in_channels == m.out_channels)


def _grouped(m):
    """A conv with groups > 1 that is not depthwise (ResNeXt's, RegNet's): output channel o reads input channels
    g * in / groups ... (g + 1) * in / groups - 1 of its group g = o // (out / groups) alone. Each group's filters and
    inputs are pruned alike, so every group keeps as many of each."""
    return isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and m.groups > 1 and not _depthwise(m)


def _channelwise(m):
    """A BatchNorm or depthwise conv: a layer with one slice of parameters per channel, sliced with its group."""
    return isinstance(m, NORMS) or _depthwise(m)


def _features(m):
    """The channels a channel-wise layer has now (its weight's dim 0 for a depthwise conv)."""
    return m.num_features if isinstance(m, NORMS) else m.weight.shape[0]


class _RNNLayer:
    """Layer k of an nn.RNN / LSTM / GRU with all its directions (producer name `rnn[k]`), as structured pruning
    sees it: D * H output units in D blocks (direction d's hidden unit j is unit d * H + j, where the layer's output
    puts it), and D * H (or the input size, for k = 0) input features. One hidden size holds for every layer and
    direction, so each keeps as many units (they drop round(amount * H) each) and the RNN is pruned whole or not
    at all. A removed unit's rows (every gate) and biases are gone with its column of weight_hh: with them zeroed,
    the dense RNN holds that unit at 0 (its cell and state start at 0 and stay there), so masks() are exact."""

    def __init__(self, rnn, k):  # k None: an nn.RNNCell / LSTMCell / GRUCell (weight_ih, weight_hh, ...)
        self.rnn, self.k = rnn, k
        self.dirs = 2 if getattr(rnn, "bidirectional", False) else 1
        self.gates = {**RNN_GATES, **CELL_GATES}[type(rnn)]
        self.suffixes = tuple(("" if k is None else f"_l{k}") + d for d in ("", "_reverse")[:self.dirs])
        self.hidden = getattr(rnn, f"weight_hh{self.suffixes[0]}").shape[1]
        self.units = self.dirs * self.hidden
        self.inputs = getattr(rnn, f"weight_ih{self.suffixes[0]}").shape[1]

    def norms(self):
        """L2 norm of each unit's rows (every gate) of weight_ih and weight_hh together, direction by direction."""
        out = []
        for s in self.suffixes:
            w = torch.cat([getattr(self.rnn, f"weight_{m}{s}").detach() for m in ("ih", "hh")], 1)
            out.append(w.reshape(self.gates, self.hidden, -1).pow(2).sum((0, 2)).sqrt())
        return torch.cat(out)

    def unit_slices(self, keep):
        """[(attribute, dim, bool mask along that dim)] of what keeping units `keep` (bool, D * H) keeps."""
        out = []
        for d, s in enumerate(self.suffixes):
            j = keep[d * self.hidden:(d + 1) * self.hidden]
            rows = j.repeat(self.gates)  # row g * H + j of every gate g
            out += [(f"{name}{s}", 0, rows) for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
                    if getattr(self.rnn, f"{name}{s}", None) is not None]
            out.append((f"weight_hh{s}", 1, j))
        return out

    def input_slices(self, keep):
        """[(attribute, dim, mask)] of what keeping input features `keep` (bool) keeps: weight_ih's columns."""
        return [(f"weight_ih{s}", 1, keep) for s in self.suffixes]


RNN_LAYER = re.compile(r"(.*)\[(\d+)\]")  # the producer name of layer k of an RNN: `rnn[k]`


def _layer(mods, name):
    """The layer a plan names: a module, or an _RNNLayer for `rnn[k]` or a cell; None if there is none."""
    part = RNN_LAYER.fullmatch(name)
    if part and type(mods.get(part[1])) in RNN_GATES and int(part[2]) < mods[part[1]].num_layers:
        return _RNNLayer(mods[part[1]], int(part[2]))
    return _RNNLayer(mods[name], None) if type(mods.get(name)) in CELL_GATES else mods.get(name)


def _rnn_of(name):
    """The RNN module's name in a producer name `rnn[k]`, else None."""
    part = RNN_LAYER.fullmatch(name)
    return part[1] if part else None


def _axes(m):
    """(output axis, input axis) of a producer's weight: (0, 1), or (1, 0) for a transposed conv's (in, out, *k)."""
    return (1, 0) if isinstance(m, (*TRANSPOSED, *EMBEDDINGS)) else (0, 1)


# -----------------------------------------------------------------------------
# public API


def plan(model, amount, example_input, rank_by=None, amounts=None):
    """Trace `model` on `example_input` and choose, per group of coupled layers, the units to keep.

    Importance of a unit is the L2 norm of its weights in each producer, summed over the group's
    producers; round(amount * units) units are dropped, at least one kept, ties broken as
    prune.structured_keep breaks them (so a single layer keeps exactly what structured_keep keeps). Where grouped
    convs make or read the units, each of the group's `blocks` runs of units drops round(amount * units / blocks)
    of its own.
    rank_by: another model whose producers have the same names and shapes to take those norms from (the model
    with its BatchNorms folded, whose weights are what each unit really multiplies with).
    amounts: {producer: fraction} for groups to prune by another amount than `amount` (a producer is a layer's
    name, or `rnn[k]` for layer k of an RNN): every producer a group names must agree, as must an RNN's layers.
    Raises ModelError, before any work, if the model cannot be traced or nothing in it is prunable.
    """
    amount = _check_fraction("amount", amount)
    amounts = {name: _check_fraction(f"amounts[{name!r}]", a) for name, a in (amounts or {}).items()}
    gm = _trace(model, example_input)
    shared = _shared_modules(gm)
    found, skipped = _analyze(gm, shared)
    inner, why = _feed_forwards(gm, shared)
    found, skipped = _whole_rnns(found + inner, {**skipped, **why})
    if not found:
        why = "; ".join(f"{name}: {reason}" for name, reason in skipped.items()) or "it has no Linear/Conv layer"
        raise ModelError(f"structured pruning found nothing it can remove in {type(model).__name__}: {why}")
    mods = dict(gm.named_modules() if rank_by is None else rank_by.named_modules())
    fractions = _group_amounts(found, skipped, amount, amounts)
    groups = []
    for (producers, norms, consumers, units, blocks), share in zip(found, fractions):
        score = sum(_unit_norms(_layer(mods, name)) for name in producers).reshape(blocks, units // blocks)
        best = torch.topk(score, k=kept_units(units, blocks, share) // blocks, dim=1, largest=True).indices
        keep = (best + torch.arange(blocks)[:, None] * score.shape[1]).reshape(-1).sort().values
        groups.append(Group(producers, norms, consumers, units, keep, blocks))
    return Plan(amount, tuple(groups), skipped)


def kept_units(units, blocks, share):
    """How many of a group's `units` plan() keeps at fraction `share`: each of its `blocks` runs of units drops
    round(share * units / blocks) of its own, and keeps at least one."""
    per = units // blocks
    return (per - min(round(share * per), per - 1)) * blocks


def producer_weights(model, amounts):
    """plan()'s amounts ({producer: fraction}) as a recipe's per-layer sparsities ({compressible weight name:
    fraction}), the inverse of weight_amounts: fc1 -> fc1.weight, lstm[0] -> lstm.weight_ih_l0, a cell -> its
    weight_ih."""
    mods = dict(model.named_modules())
    out = {}
    for name, share in amounts.items():
        part = RNN_LAYER.fullmatch(name)
        attr = (f"weight_ih_l{part[2]}" if part else "weight_ih" if type(mods.get(name)) in CELL_GATES else "weight")
        out[f"{part[1] if part else name}.{attr}"] = share
    return out


def weight_amounts(sparsities):
    """{compressible weight name: fraction} (a recipe's per-layer sparsities) as plan()'s amounts: fc1.weight
    speaks for producer fc1, lstm.weight_ih_l0 and weight_hh_l0 (and their _reverse) for lstm[0]."""
    out = {}
    for name, share in sparsities.items():
        path, _, attr = name.rpartition(".")
        rnn = re.fullmatch(r"weight_(?:ih|hh)_l(\d+)(?:_reverse)?", attr)
        producer = f"{path}[{rnn[1]}]" if rnn else path
        if out.setdefault(producer, share) != share:
            raise ModelError(f"the per-layer sparsities give the weights of {producer} different fractions "
                             f"({out[producer]:g} and {share:g}); structured pruning removes its units whole: give "
                             "them one")
    return out


def _group_amounts(found, skipped, amount, amounts):
    """The fraction each found group drops: `amount`, or what `amounts` says for its producers. ModelError for a
    name that is no producer, for producers of one group (or layers of one RNN) given different fractions."""
    named = {name for g in found for name in g[0]}
    unknown = [name for name in amounts if name not in named]
    if unknown:
        why = "; ".join(f"{n} is kept whole: {skipped[n]}" for n in unknown[:3] if n in skipped)
        raise ModelError(f"a fraction of its own is given to {', '.join(map(repr, unknown[:3]))}, but structured "
                         f"pruning removes no units there{f' ({why})' if why else ''}; it removes units of "
                         f"{', '.join(sorted(named))}")
    out, per_rnn = [], {}
    for producers, *_ in found:
        given = {amounts[name] for name in producers if name in amounts}
        if len(given) > 1:
            raise ModelError(f"{' + '.join(producers)} are given different fractions, but they lose the same units "
                             "(their outputs are added together): give them one fraction")
        share = given.pop() if given else amount
        for name in producers:
            if _rnn_of(name) is not None and per_rnn.setdefault(_rnn_of(name), share) != share:
                raise ModelError(f"the layers of `{_rnn_of(name)}` are given different fractions, but they share one "
                                 "hidden size: give them one fraction")
        out.append(share)
    return out


@torch.no_grad()
def apply(model, plan):
    """A deep copy of `model` with the plan's units removed: Linear / Conv / BatchNorm parameters and
    buffers sliced and their in_/out_features, in_/out_channels and num_features updated. The module
    classes and the model's forward are unchanged; `model` itself is not modified."""
    _check_fits(model, plan)
    small = copy.deepcopy(model)
    mods = dict(small.named_modules())
    units, features, columns = _kept(small, plan)
    for name, keep in units.items():
        if isinstance(layer := _layer(mods, name), _RNNLayer):
            for attr, dim, kept in layer.unit_slices(keep):
                _slice(layer.rnn, (attr,), dim, kept.nonzero().squeeze(1))
            continue
        _slice(mods[name], ("weight",), _axes(mods[name])[0], keep.nonzero().squeeze(1))
        _slice(mods[name], ("bias",), 0, keep.nonzero().squeeze(1))
    for name, keep in features.items():
        _slice(mods[name], ("weight", "bias", "running_mean", "running_var"), 0, keep.nonzero().squeeze(1))
    for name, keep in columns.items():
        m = _layer(mods, name)
        if isinstance(m, _RNNLayer):
            for attr, dim, kept in m.input_slices(keep):
                _slice(m.rnn, (attr,), dim, kept.nonzero().squeeze(1))
        elif _grouped(m):  # weight (out, in / groups, *k): each group's rows keep their group's kept inputs
            per_row = _grouped_columns(m, keep)
            idx = per_row.nonzero()[:, 1].reshape(len(per_row), -1)
            m.weight = nn.Parameter(m.weight.detach().gather(1, idx.reshape(*idx.shape, *[1] * (m.weight.dim() - 2))
                                                             .expand(-1, -1, *m.weight.shape[2:])).clone(),
                                    requires_grad=m.weight.requires_grad)
        else:
            _slice(m, ("weight",), _axes(m)[1], keep.nonzero().squeeze(1))
    for name in {*units, *features, *columns}:
        _sync_sizes(mods[_rnn_of(name) or name])
    return small


def _sync_sizes(m):
    """Set a Linear / Conv / BatchNorm layer's size attributes (in_/out_features, in_/out_channels,
    num_features) from its tensors, after apply() or resize_to() changed them."""
    if isinstance(m, nn.Linear):
        m.out_features, m.in_features = m.weight.shape
    elif isinstance(m, EMBEDDINGS):
        m.embedding_dim = m.weight.shape[1]
    elif type(m) in RNN_GATES:
        m.hidden_size, m.input_size = m.weight_hh_l0.shape[1], m.weight_ih_l0.shape[1]
    elif type(m) in CELL_GATES:
        m.hidden_size, m.input_size = m.weight_hh.shape[1], m.weight_ih.shape[1]
    elif _depthwise(m):
        m.in_channels = m.out_channels = m.groups = m.weight.shape[0]
    elif isinstance(m, TRANSPOSED):
        m.in_channels, m.out_channels = m.weight.shape[0], m.weight.shape[1] * m.groups
    elif isinstance(m, PRODUCERS):
        m.out_channels, m.in_channels = m.weight.shape[0], m.weight.shape[1] * m.groups
    elif isinstance(m, NORMS) and (m.running_mean is not None or m.weight is not None):
        m.num_features = len(m.running_mean if m.running_mean is not None else m.weight)


@torch.no_grad()
def resize_to(module, state):
    """Give the Linear / Conv / BatchNorm layers of `module` the smaller shapes their tensors have in `state`, in
    place, as apply() made them: a fresh instance of the user's class, built at its original sizes, then takes a
    structured-pruned artifact's state dict with load_state_dict(strict=True). Only what apply() shrinks is
    resized (a weight's first two dims, an embedding table's dims but never its rows, a bias, a norm's four vectors,
    an RNN's matrices; never larger, never another dim); the new tensors are empty until loaded. Any other mismatch
    is left as it is, for load_state_dict to report."""
    mods, resized = dict(module.named_modules()), set()
    for key, t in state.items():
        path, _, attr = key.rpartition(".")
        m = mods.get(path)
        shrinks = (attr in ("weight", "bias") and isinstance(m, PRODUCERS) or
                   attr in ("weight", "bias", "running_mean", "running_var") and isinstance(m, NORMS) or
                   type(m) in RNN_GATES and attr in m._flat_weights_names or
                   type(m) in CELL_GATES and attr in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        cur = getattr(m, attr, None) if shrinks else None
        if (not isinstance(t, torch.Tensor) or not isinstance(cur, torch.Tensor) or t.shape == cur.shape
                or t.dim() != cur.dim() or t.shape[2:] != cur.shape[2:]
                or any(a > b for a, b in zip(t.shape, cur.shape))
                or isinstance(m, EMBEDDINGS) and t.shape[0] != cur.shape[0]):  # another vocabulary: not pruning's
            continue
        new = torch.empty(t.shape, dtype=cur.dtype)
        setattr(m, attr, nn.Parameter(new, requires_grad=cur.requires_grad) if isinstance(cur, nn.Parameter) else new)
        resized.add(path)
    for path in resized:
        _sync_sizes(mods[path])


def prune_structured(model, amount, example_input, rank_by=None, amounts=None):
    """plan() then apply(): a smaller copy of `model` with round(amount * units) units of every
    prunable group removed (or as `amounts` says for some; ranked by rank_by's weights, if given: see plan()).
    ModelError if the smaller model no longer runs on example_input: its forward made a tensor of a pruned layer's
    old size that the trace cannot see (a learned initial state, a size written as a number)."""
    p = plan(model, amount, example_input, rank_by, amounts)
    small = apply(model, p)
    inputs = tuple(example_input) if isinstance(example_input, (tuple, list)) else (example_input,)
    try:
        with torch.no_grad():
            copy.deepcopy(small).eval()(*inputs)
    except Exception as e:
        pruned = ", ".join(name for g in p.groups if len(g.keep) < g.units for name in g.producers)
        raise ModelError(f"structured pruning removed units of {pruned}, but the smaller {type(model).__name__} no "
                         f"longer runs ({type(e).__name__}: {str(e)[:200]}): its forward makes a tensor of a layer's "
                         "old size (a learned initial state, or a size written as a number, say); size it from the "
                         "layer (x.new_zeros(n, self.cell.hidden_size)), or keep that layer whole with a fraction of "
                         "0 for it") from None
    return small


def masks(model, plan):
    """{parameter name: bool mask of its dense shape} of what the plan keeps (True = kept), for every
    parameter the plan slices: producer rows and biases, BatchNorm weights and biases, consumer
    columns. The dense model with these zeroed computes exactly what apply(model, plan) computes."""
    _check_fits(model, plan)
    mods = dict(model.named_modules())
    out = {}

    def mask(name, attr):
        key = f"{name}.{attr}" if name else attr
        if key not in out:
            out[key] = torch.ones_like(getattr(mods[name], attr), dtype=torch.bool)
        return out[key]

    units, features, columns = _kept(model, plan)
    for kept, slices in ((units, "unit_slices"), (columns, "input_slices")):
        for name in [n for n in kept if isinstance(_layer(mods, n), _RNNLayer)]:
            layer, rnn = _layer(mods, name), _rnn_of(name) or name
            for attr, dim, keep in getattr(layer, slices)(kept.pop(name)):
                mask(rnn, attr).movedim(dim, 0)[~keep] = False
    for name, keep in list(columns.items()):
        m = mods[name]
        if _grouped(m):
            mask(name, "weight")[~_grouped_columns(m, keep)] = False
            del columns[name]
    for kept, axis_of, attrs in ((units, lambda m: _axes(m)[0], ("weight", "bias")),
                                 (features, lambda m: 0, ("weight", "bias")),
                                 (columns, lambda m: _axes(m)[1], ("weight",))):
        for name, keep in kept.items():
            for attr in attrs:  # a transposed conv's units lie along weight dim 1, its inputs along dim 0
                if getattr(mods[name], attr, None) is not None:
                    mask(name, attr).movedim(axis_of(mods[name]) if attr == "weight" else 0, 0)[~keep] = False
    return out


def _kept(model, plan):
    """What the plan keeps, as bool masks by layer name: producers' output units, BatchNorm features, and
    consumers' input columns (a layer after a torch.cat reads several groups: each one clears its own)."""
    mods = dict(model.named_modules())
    units, features, columns = {}, {}, {}
    for g in plan.groups:
        drop = torch.ones(g.units, dtype=torch.bool)
        drop[g.keep] = False
        dropped = drop.nonzero().squeeze(1)
        for name in g.producers:
            units[name] = ~drop
        for name, offset, span in g.norms:
            feats = features.setdefault(name, torch.ones(span, dtype=torch.bool))
            feats[_here(dropped, offset, span) + offset] = False
        for name, outer, inner, offset, span in g.consumers:
            keep = columns.setdefault(name, torch.ones(_inputs(_layer(mods, name)), dtype=torch.bool))
            keep[_columns(dropped, outer, inner, offset, span)] = False
    return units, features, columns


# -----------------------------------------------------------------------------
# tracing


def _trace(model, example_input):
    """A GraphModule of a deep copy of `model` with every node's output shape (ShapeProp) recorded.

    The copy runs in eval mode without gradients, so the user's model (BatchNorm statistics,
    training flags) is never touched."""
    if not isinstance(model, nn.Module):
        raise ModelError(f"structured pruning takes a torch.nn.Module, got {type(model).__name__}")
    inputs = tuple(example_input) if isinstance(example_input, (tuple, list)) else (example_input,)
    if not inputs or not all(isinstance(x, torch.Tensor) for x in inputs):
        raise ModelError("example_input must be a tensor (or a tuple of tensors) the model's forward accepts, "
                         f"got {type(example_input).__name__}")
    name = type(model).__name__
    try:
        gm = tracing.symbolic_trace(copy.deepcopy(model))
    except SyntaxError as e:  # fx writes the graph as Python; a module path it cannot spell fails to compile
        line = " ".join(str(e.text or "").split())[:120]
        raise ModelError(f"structured pruning cannot trace {name} with torch.fx: the code fx wrote for its graph "
                         f"does not compile ({line!r}), as when a submodule's name is a Python keyword (an "
                         "nn.ModuleDict key such as 'in' or 'class'): rename that submodule") from None
    except Exception as e:  # TraceError for control flow on tensors, and whatever else fx cannot follow
        advice = _trace_advice(e)
        raise ModelError(f"structured pruning cannot trace {name} with torch.fx ({type(e).__name__}: "
                         f"{_one_line(e)})" + (f"; {advice}" if advice else "")) from None
    gm.eval()
    shapes, printed = _Shapes(gm), io.StringIO()
    try:  # torch's ShapeProp prints a traceback to stderr before it raises: the refusal below says it in one line
        with torch.no_grad(), contextlib.redirect_stderr(printed):
            shapes.propagate(*inputs)
    except Exception as e:
        raise _propagate_error(model, inputs, shapes.node, e) from None
    sys.stderr.write(printed.getvalue())  # what the forward itself printed (warnings), as it printed it
    return gm


class _Shapes(ShapeProp):
    """ShapeProp that keeps the node it is running: after an error, the one that failed."""
    node = None

    def run_node(self, n):
        self.node = n
        return super().run_node(n)


def _one_line(e, limit=300):
    return " ".join(str(e).split())[:limit]


def _trace_advice(e):
    """What a forward needs for fx to trace it, for the cause of TraceError `e` where it can be told ('' where `e`
    says it itself: tracing's advice for a loop over a tensor's size)."""
    text = str(e)
    if tracing.NOT_AN_INT in text:
        return ""
    if "control flow" in text:
        return ("it needs a forward without Python control flow on tensor values (if / while on a tensor, loops "
                "over a tensor's size)")
    if "'len' is not supported" in text or "cannot be iterated" in text:
        return ("fx runs forward on stand-ins for tensors, on which Python's len() and iteration (a for loop, "
                "unpacking) do not run: it needs a forward (and layers) without them on computed values, e.g. "
                "x.size(0) for len(x)")
    return ("fx runs forward on stand-ins for tensors, and this call needs real values (as pack_padded_sequence, "
            ".item(), .tolist() and NumPy do): structured pruning needs a forward without such calls")


def _propagate_error(model, inputs, node, e):
    """The ModelError for a traced graph that fails on `inputs` at `node`: if `model` itself runs on them, the trace
    computes something else than the forward (Python checks such as isinstance or len were fixed when fx traced it);
    else the model does not take such inputs."""
    cause = e.__cause__ if e.__cause__ is not None and str(e).startswith("ShapeProp error") else e
    shapes = ", ".join(str(tuple(x.shape)) for x in inputs)
    where = ""
    if node is not None:
        got = [tuple(a.meta["tensor_meta"].shape) for a in node.all_input_nodes
               if isinstance(a.meta.get("tensor_meta"), TensorMetadata)]
        what = (f"layer {node.target!r}" if node.op == "call_module" else
                f"{getattr(node.target, '__name__', node.target)} ({node.name})")
        where = f" at {what}" + (f" on input{'s' if len(got) > 1 else ''} of shape {', '.join(map(str, got))}"
                                 if got else "")
    why = f"{type(cause).__name__}: {_one_line(cause, 200)}"
    try:
        with torch.no_grad():
            copy.deepcopy(model).eval()(*inputs)
    except Exception:
        return ModelError(f"{type(model).__name__} does not run on example_input of shape {shapes}: it fails{where} "
                          f"({why})")
    return ModelError(f"structured pruning cannot use the torch.fx trace of {type(model).__name__}: it computes "
                      f"something different from running forward, which runs on example_input of shape {shapes} "
                      f"while the trace fails{where} ({why}). fx fixes the outcome of Python checks on computed values "
                      "(isinstance, len, pack_padded_sequence's) when it traces, so its graph can take another path: "
                      "structured pruning needs a forward that takes the same path without them (e.g. "
                      "`out, (h, c) = self.rnn(x)` for an LSTM)")


def _shared_modules(gm):
    """{name: why} of the modules that slicing would change something else with: called more than once, holding a
    parameter another module also holds, or read directly by the graph. Each says which (a describe() reader asked
    'called more than once, shares a parameter, or has hooks?' of a layer that was one of them)."""
    calls = Counter(n.target for n in gm.graph.nodes if n.op == "call_module")
    mods = dict(gm.named_modules())  # a cell is called once a step: _analyze checks that its steps chain
    shared = {name: f"it is called {k} times" for name, k in calls.items()
              if k > 1 and type(mods.get(name)) not in CELL_GATES}
    # a layer called by the forward and also inside a module the trace keeps whole (a transformer layer's linear1)
    for name in calls:
        outer = next((outer for outer in calls if name.startswith(outer + ".")), None)
        if outer is not None:
            shared.setdefault(name, f"it is called by the forward and also inside `{outer}`")
    owners = {}
    for name, m in gm.named_modules(remove_duplicate=False):
        for p in m.parameters(recurse=False):
            owners.setdefault(id(p), set()).add(name)
    for names in owners.values():
        for name in sorted(names) if len(names) > 1 else ():
            shared.setdefault(name, f"it shares a parameter with `{min(names - {name})}`")
    # a parameter read directly by the graph (F.linear(x, self.fc.weight)) is shared with its module
    for n in gm.graph.nodes:
        if n.op == "get_attr":
            shared.setdefault(n.target.rpartition(".")[0], f"the forward reads `{n.target}` directly")
    return shared


def _untouchable(name, m, shared):
    """Why layer `name` (module `m`) must not be sliced, or None: what _shared_modules says of it, or a
    parametrization (torch.nn.utils.parametrize) or hooks (old-style weight_norm), which would see differently sized
    tensors after slicing, or recompute the weight from unsliced ones."""
    if name in shared:
        return shared[name]
    if parametrize.is_parametrized(m):
        return "it has a torch parametrization"
    if m._forward_pre_hooks or m._forward_hooks:
        return "it has forward hooks (as the old weight_norm adds)"
    return None


def _shape(node):
    meta = node.meta.get("tensor_meta") if isinstance(node, fx.Node) else None
    return tuple(meta.shape) if isinstance(meta, TensorMetadata) else None


def _arg(node, i, name, default=None):
    return node.args[i] if len(node.args) > i else node.kwargs.get(name, default)


def _op_name(node, mods):
    if node.op == "call_module":
        return f"`{node.target}` ({type(mods[node.target]).__name__})"
    if node.op == "call_method":
        return f"the tensor method .{node.target}()"
    module = (getattr(node.target, "__module__", None) or "builtins").replace("_operator", "operator")
    return f"{module}.{getattr(node.target, '__name__', node.target)}"


# -----------------------------------------------------------------------------
# following channels through the graph


def _analyze(gm, shared):
    """The prunable groups [(producers, norms, consumers, units, blocks)] and {layer: why it is kept whole}."""
    mods = dict(gm.named_modules())
    parent, why, members = {}, {}, {}  # union-find over producer nodes; reasons; what each group holds
    flows, sizes = {}, {}              # node -> Flow of its output; x.shape / x.size() node -> (Flow, ndim)
    cell_inputs = {}                   # cell -> what each of its steps read as input (a followed value or None)

    def find(g):
        while parent[g] != g:
            g = parent[g]
        return g

    def block(value, reason):
        for f in value:
            why.setdefault(find(f.group), reason)

    def unite(root, group):  # `group` loses the same units as `root` from now on (a reason to keep it whole too)
        root, other = find(root), find(group)
        if other != root:
            parent[other] = root
            if other in why:
                why.setdefault(root, why.pop(other))
        return root

    for node in gm.graph.nodes:
        for a in node.all_input_nodes:  # a shape read for anything but non-channel dims: x.shape[0], x.shape[2:]
            if a in sizes:
                v, nd = sizes[a]
                i = node.args[1] if node.target is operator.getitem else None
                dims = [i % nd] if isinstance(i, int) else range(nd)[i] if isinstance(i, slice) else None
                if dims is None or v[0].dim in dims:
                    block(v, f"{_op_name(node, mods)} uses its channel count")
        ins = [flows[a] for a in node.all_input_nodes if a in flows]
        m = mods.get(node.target) if node.op == "call_module" else None
        if type(m) in CELL_GATES:  # one step of a cell: one group for all its steps
            key, cell = f"cell:{node.target}", _RNNLayer(m, None)
            own = Flow(key, -1, 1, 1, cell.units, 0, cell.units)
            if key not in parent:
                parent[key] = key
                members[key] = ([node.target], [], [], cell.units, [1])
                if (untouchable := _untouchable(node.target, m, shared)):
                    why.setdefault(key, f"{untouchable}, which slicing would break")
            x, hx = _arg(node, 0, "input"), _arg(node, 1, "hx")
            steps = cell_inputs.setdefault(node.target, [])
            steps.append(flows.get(x) if isinstance(x, fx.Node) else None)
            followed = [v for v in steps if v is not None]
            if followed and len(followed) < len(steps):  # some steps read a pruned layer's channels, some not
                for v in followed:
                    block(v, f"`{node.target}` ({type(m).__name__}) reads them at some steps and other inputs at "
                             "others, through the same columns")
            elif steps[-1] is not None:  # weight_ih's columns lose the units every step's input loses
                v = steps[-1]
                if len(v) > 1 or v[0].dim != len(_shape(x)) - 1 or v[0][1:] != followed[0][0][1:]:
                    for w in followed:
                        block(w, f"its channels reach `{node.target}` ({type(m).__name__}) laid out differently "
                                 "at different steps, or not in its feature dim")
                else:  # every step's input loses the same columns: one group
                    root = unite(followed[0][0].group, v[0].group)
                    consumer = (node.target, v[0].outer, v[0].inner, v[0].offset, v[0].span)
                    if consumer not in members[root][2]:
                        members[root][2].append(consumer)
                        members[root][4].append(1)
            for state in hx if isinstance(hx, (tuple, list)) else () if hx is None else (hx,):
                v = flows.get(state) if isinstance(state, fx.Node) else None
                if v is None:
                    continue  # a state of its own making (zeros of its hidden_size, say)
                if isinstance(v, _RNNValue) and v.kind == "cell":  # an LSTMCell's (h, c) passed on whole
                    v = (v.layers[0]._replace(dim=own.dim),)
                elif not isinstance(v, _RNNValue):
                    v = tuple(f._replace(dim=f.dim - len(_shape(state))) for f in v)  # from the right, as own's
                if isinstance(v, _RNNValue) or len(v) > 1 or v[0][1:] != own[1:]:
                    block(v, f"its channels become the state of `{node.target}` ({type(m).__name__}) laid out "
                             "differently from its hidden units")
                    why.setdefault(find(key), "its state comes from channels laid out differently")
                    continue
                unite(key, v[0].group)  # a state made by another layer (an encoder's): its units are the cell's
            flows[node] = (_RNNValue("cell", (own,), 1, True) if isinstance(m, nn.LSTMCell)
                           else (own._replace(dim=len(_shape(node)) - 1),))
            continue
        if any(isinstance(v, (_RNNValue, _Pair)) for v in ins):  # a getitem takes a tensor out of a tuple
            try:
                if len(ins) > 1:
                    raise _Blocked(f"{_op_name(node, mods)} takes a tuple of results as a whole")
                flows[node] = _unpack(node, ins[0], mods)
            except _Blocked as e:
                for v in ins:
                    block(v, str(e))
            continue
        if type(m) in RNN_GATES:
            rnn = _RNNLayer(m, 0)
            keys = [f"{node.name}[{k}]" for k in range(m.num_layers)]
            names = [f"{node.target}[{k}]" for k in range(m.num_layers)]
            for k, key in enumerate(keys):
                parent[key] = key
                members[key] = ([names[k]], [], [(names[k + 1], 1, 1, 0, rnn.units)] if k + 1 < len(keys) else [],
                                rnn.units, [rnn.dirs])
            reason = None
            if m.proj_size:
                reason = "it is an LSTM with proj_size, whose projections structured pruning does not follow"
            elif (untouchable := _untouchable(node.target, m, shared)):
                reason = f"{untouchable}, which slicing would break"
            elif len(node.args) + len(node.kwargs) > 1:
                reason = "it is given an initial state, which would have to shrink with it"
            for key in keys:
                if reason:
                    why.setdefault(key, reason)
            if ins:  # its layer 0 reads the followed features through weight_ih_l0's columns
                f = ins[0][0]
                if reason or f.dim != len(_shape(node.args[0])) - 1:
                    block(ins[0], f"its channels go into `{node.target}` ({type(m).__name__}) "
                                  + (f"and {reason}" if reason else "not in its feature dim"))
                else:
                    for f in ins[0]:
                        members[find(f.group)][2].append((names[0], f.outer, f.inner, f.offset, f.span))
                        members[find(f.group)][4].append(1)
            flows[node] = _RNNValue("call", tuple(Flow(key, -1, 1, 1, rnn.units, 0, rnn.units) for key in keys),
                                    rnn.dirs, isinstance(m, nn.LSTM))
            continue
        if isinstance(m, PRODUCERS) and (getattr(m, "groups", 1) == 1 or _grouped(m)):
            if ins and isinstance(m, EMBEDDINGS):  # an embedding bag's per-sample weights
                block(ins[0], f"its channels go into `{node.target}` ({type(m).__name__}) as its weights per id")
            elif ins:  # this layer consumes the channels it reads
                try:
                    for f, consumer in _consume(m, ins[0], _shape(node.args[0]), node.target, shared):
                        members[find(f.group)][2].append(consumer)
                        members[find(f.group)][4].append(getattr(m, "groups", 1))
                except _Blocked as e:
                    block(ins[0], str(e))
            units, spatial = m.weight.shape[_axes(m)[0]], m.weight.dim() - 2
            flows[node] = (Flow(node.name, len(_shape(node)) - spatial - 1, 1, 1, units, 0, units),)
            parent[node.name] = node.name
            members[node.name] = ([node.target], [], [], units, [getattr(m, "groups", 1)])
            if (untouchable := _untouchable(node.target, m, shared)):
                block(flows[node], f"{untouchable}, which slicing would break")
            elif getattr(m, "max_norm", None) is not None:
                block(flows[node], "its max_norm rescales each looked-up row by the norm over all its dims")
            continue
        if not ins:
            continue
        try:
            out = _follow(node, ins, mods, shared, flows)
        except _Blocked as e:
            for f in ins:
                block(f, str(e))
            continue
        if out == "size":
            nd = len(_shape(node.args[0]))
            i = _arg(node, 1, "dim") if node.op == "call_method" else None
            if i is None:
                sizes[node] = (ins[0], nd)
            elif i % nd == ins[0][0].dim:
                block(ins[0], f"x.size({i}) reads its channel count")
        elif isinstance(out, list):  # residual add of one group's channels each: one group
            root = find(out[0][0].group)
            for (f,) in out[1:]:
                unite(root, f.group)
            flows[node] = (out[0][0]._replace(group=root),)
        elif out is not None:
            if _channelwise(m):
                for f in out:
                    members[find(f.group)][1].append((node.target, f.offset, f.span))
            flows[node] = out

    found, skipped = [], {}
    for g in parent:
        if find(g) != g:
            continue
        group = [members[h] for h in parent if find(h) == g]
        producers = tuple(name for mem in group for name in mem[0])
        blocks = sorted({b for mem in group for b in mem[4]})  # grouped convs among them and their readers
        if any(_rnn_of(mem[0][0]) and mem[4][0] != blocks[-1] for mem in group):  # an RNN layer's own D blocks
            why.setdefault(g, "grouped convs share its units, and each direction of the RNN must keep as many units "
                              "as every other layer of it")
        if any(b % a for a, b in zip(blocks, blocks[1:])):
            counts = " and ".join(str(b) for b in blocks if b > 1)
            why.setdefault(g, f"grouped convs of {counts} groups share its channels, and no equal count per group "
                              "suits them all")
        if g in why:
            skipped.update((name, why[g]) for name in producers)
            continue
        found.append((producers, tuple(n for mem in group for n in mem[1]),
                      tuple(dict.fromkeys(c for mem in group for c in mem[2])), group[0][3], blocks[-1]))
    return found, skipped


def _unpack(node, v, mods):
    """The value `node` takes out of a tuple of results `v`: a max / min's values (getitem 0, .values); from an
    RNN's, by getitem, the output sequence (its last layer's units in its last dim), the state pair or a state, or
    layer k's units from h_n[k] (one direction only), or, by h_n.squeeze(0), a one-layer RNN's."""
    what = _op_name(node, mods)
    if isinstance(v, _Pair):
        if node.target is operator.getitem and node.args[1] == 0 or node.target is getattr and node.args[1] == "values":
            return v.values
        raise _Blocked(f"{what} takes the indices of a max / min over other dims, not its values")
    if node.op == "call_method" and node.target == "squeeze" and v.kind == "state" and _shape(node) is not None \
            and len(v.layers) * v.dirs == 1 and _arg(node, 1, "dim") in (0, -len(_shape(node.args[0]))):
        return (v.layers[0]._replace(dim=len(_shape(node)) - 1),)
    if node.target is not operator.getitem:
        raise _Blocked(f"{what} reads an RNN's outputs or final state, which hold every layer's units (take the "
                       "output sequence, out[:, -1], or h_n[-1] instead)")
    i = node.args[1]
    if v.kind == "cell" and i in (0, 1, -1, -2) and _shape(node) is not None:  # an LSTMCell's (h, c)
        return (v.layers[0]._replace(dim=len(_shape(node)) - 1),)
    if v.kind == "call" and i in (0, 1, -1, -2):
        if i % 2 == 0:
            if _shape(node) is None:
                raise _Blocked("the RNN's output sequence is not a tensor (a PackedSequence?), which structured "
                               "pruning does not follow")
            return (v.layers[-1]._replace(dim=len(_shape(node)) - 1),)
        return _RNNValue("states" if v.lstm else "state", v.layers, v.dirs, v.lstm)
    if v.kind == "states" and i in (0, 1, -1, -2):
        return _RNNValue("state", v.layers, v.dirs, v.lstm)
    first = i[0] if isinstance(i, tuple) and all(j == slice(None) for j in i[1:]) else i
    if v.kind == "state" and isinstance(first, int) and _shape(node) is not None:  # h_n[k]: layer, direction
        k, d = divmod(first % (len(v.layers) * v.dirs), v.dirs)
        f = v.layers[k]
        return (f._replace(dim=len(_shape(node)) - 1, offset=-d * (f.units // v.dirs), span=f.units // v.dirs),)
    raise _Blocked(f"the tensor getitem {i!r} takes from an RNN's outputs or state is not one structured pruning "
                   "follows")


def _feed_forwards(gm, shared):
    """The feed-forward blocks of torch's transformer layers in `gm` ([(producers, norms, consumers, units, 1)],
    {layer: why it is kept whole}): linear1's output units, read by linear2's input columns and nothing else."""
    found, skipped = [], {}
    direct = {n.target for n in gm.graph.nodes if n.op in ("call_module", "get_attr")}
    for name, m in gm.named_modules():
        if type(m) not in TRANSFORMER_LAYERS:  # a subclass may change the forward (and fx traces into it)
            continue
        ff1, ff2 = f"{name}.linear1", f"{name}.linear2"
        if type(m.linear1) is not nn.Linear or type(m.linear2) is not nn.Linear:
            why = "its linear1 / linear2 are not plain nn.Linear layers"
        elif not _unitwise(m.activation):
            why = (f"its activation ({getattr(m.activation, '__name__', type(m.activation).__name__)}) is not one "
                   "structured pruning knows to act on each unit alone (ReLU, GELU, SiLU, tanh, ...)")
        elif any(t == f or t.startswith(f + ".") for t in direct for f in (ff1, ff2)):
            why = "the model's forward also uses its linear1 or linear2 directly"
        elif (untouchable := _untouchable(ff1, m.linear1, shared) or _untouchable(ff2, m.linear2, shared)):
            which = ff1 if _untouchable(ff1, m.linear1, shared) else ff2
            why = f"its {which.rpartition('.')[2]}: {untouchable}, which slicing would break"
        else:
            units = m.linear1.out_features
            found.append(((ff1,), (), ((ff2, 1, 1, 0, units),), units, 1))
            continue
        skipped[ff1] = why
    return found, skipped


def _whole_rnns(found, skipped):
    """An RNN's layers share one hidden size: if any of them is kept whole, all are, and so is every layer whose
    units are removed alike with theirs (a residual add). Returns (found, skipped) with those moved."""
    found = list(found)
    while True:
        whole = {_rnn_of(name): name for name in skipped if _rnn_of(name) is not None}
        drop = [g for g in found if any(_rnn_of(name) in whole for name in g[0])]
        if not drop:
            return found, skipped
        for g in drop:
            found.remove(g)
            rnn = next(_rnn_of(name) for name in g[0] if _rnn_of(name) in whole)
            for name in g[0]:
                skipped.setdefault(name, f"the layers of `{rnn}` share one hidden size, and {whole[rnn]} is kept "
                                         f"whole: {skipped[whole[rnn]]}")


def _unitwise(f):
    """Whether a transformer layer's activation acts on each feed-forward unit alone."""
    if isinstance(f, nn.Module):
        return isinstance(f, ELEMENTWISE_MODULES)
    return ((getattr(f, "__module__", None) or "").split(".")[0] == "torch"
            and getattr(f, "__name__", "").lstrip("_") in ELEMENTWISE)


def _consume(m, value, in_shape, name, shared):
    """[(flow, (name, outer, inner, offset, span))] for each group of `value` that layer `m` reads; _Blocked if m
    cannot lose those inputs."""
    if (untouchable := _untouchable(name, m, shared)):
        raise _Blocked(f"its channels go into `{name}`, which cannot lose them: {untouchable}")
    f = value[0]
    if isinstance(m, nn.Linear):
        if f.dim != len(in_shape) - 1:
            raise _Blocked(f"its channels reach `{name}` (Linear) in dim {f.dim}, not in its feature dim")
    elif f.dim != len(in_shape) - (m.weight.dim() - 2) - 1 or f.outer != 1 or f.inner != 1:
        raise _Blocked(f"its channels reach `{name}` ({type(m).__name__}) in a reshaped form")
    elif _grouped(m) and (len(value) > 1 or (f.offset, f.span) != (0, f.units)):
        raise _Blocked(f"its channels reach `{name}`, a grouped conv ({m.groups} groups), beside other channels "
                       "joined by torch.cat")
    return [(f, (name, f.outer, f.inner, f.offset, f.span)) for f in value]


def _follow(node, ins, mods, shared, flows):
    """The Flow of `node`'s output given its followed inputs `ins`: a Flow, a list of Flows to unite
    (residual add), "size" for x.shape / x.size(); raises _Blocked if the op is not channel-wise in the
    followed dims (a BatchNorm's Flow joins its group)."""
    what = _op_name(node, mods)
    if node.op == "output":
        raise _Blocked("its channels reach the model output")
    if node.op == "call_module":
        m = mods[node.target]
        if _channelwise(m):
            f, spatial = ins[0][0], len(_shape(node.args[0])) - 2
            if _untouchable(node.target, m, shared) or f.dim != 1 or (f.outer, f.inner) != (1, 1) \
                    or _features(m) != f.span or _depthwise(m) and m.weight.dim() - 2 != spatial:
                raise _Blocked(f"its channels reach {what} in a form it cannot be pruned with")
            return ins[0]
        if isinstance(m, ELEMENTWISE_MODULES):
            return _same_shape(node, ins[0], what)
        if isinstance(m, POOL_MODULES):
            return _pool(node, ins[0], int(type(m).__name__[-2]), what)
        if isinstance(m, RESIZE_MODULES):
            return _pool(node, ins[0], len(_shape(node.args[0])) - 2, what)
        if isinstance(m, nn.Flatten):
            return _flatten(ins[0], _shape(node.args[0]), m.start_dim, m.end_dim)
        if isinstance(m, PRODUCERS) and m.groups > 1:
            raise _Blocked(f"its channels go into {what}, a grouped conv ({m.groups} groups) whose groups it cannot "
                           "shrink alike (followed: plain and depthwise convs, and grouped ones that are not "
                           "transposed and have more than one input channel per group)")
        if any(isinstance(s, TRANSFORMER_LAYERS) for s in m.modules()):
            raise _Blocked(f"its channels go into {what}, whose attention and LayerNorms mix them (only the "
                           "feed-forward units inside it are pruned)")
        raise _Blocked(f"its channels go into {what}, whose inside structured pruning does not follow")
    if node.target in BINARY or node.op == "call_method" and node.target.rstrip("_") in BINARY_METHODS:
        return _binary(node, what, flows)
    if node.op == "call_method" and node.target == "size" or node.target is getattr and node.args[1] == "shape":
        return "size"
    if node.op == "call_method" and node.target == "dim" or node.target is getattr and node.args[1] in HARMLESS:
        return None
    name = node.target if node.op == "call_method" else getattr(node.target, "__name__", "").lstrip("_")
    name = name[:-1] if node.op == "call_method" and name.endswith("_") else name  # x.relu_(), x.mul_(2)
    module = getattr(node.target, "__module__", None) or ""
    known = node.op == "call_method" or module.split(".")[0] == "torch"  # torch, F, torch._C._nn
    tensors = [a for a in node.all_input_nodes if _shape(a) is not None]
    if node.target is operator.getitem and node.args[0] in flows and _shape(node) is not None:
        return _new_dims(node, flows[node.args[0]], what)
    if known and node.op == "call_function" and name in CATS:
        return _cat(node, flows, what)
    if known and node.args and node.args[0] in flows and tensors == [node.args[0]]:
        v = flows[node.args[0]]
        if name in ELEMENTWISE:
            return _same_shape(node, v, what)
        if name in POOLS and _shape(node) is not None:  # (max pooling with return_indices gives a tuple)
            return _pool(node, v, int(name[-2]), what)
        if name in RESIZE:
            return _pool(node, v, len(_shape(node.args[0])) - 2, what)
        if name == "flatten":
            return _flatten(v, _shape(node.args[0]), _arg(node, 1, "start_dim", 0), _arg(node, 2, "end_dim", -1))
        if name in ("view", "reshape"):
            return _reshape(node, v, what)
        if name in REDUCE:
            return _reduce(node, v, what)
        if name in PAIRS and isinstance(_arg(node, 1, "dim"), int):
            return _Pair(_reduce(node, v, what))
        if name == "squeeze":
            return _squeeze(node, v, what)
        if name == "unsqueeze":
            return _new_dims(node, v, what)
        if name in ("transpose", "swapaxes", "swapdims", "permute"):
            return _moved(node, v, name)
    raise _Blocked(f"its channels go into {what}, which is not channel-wise (structured pruning refuses "
                   "what it does not know)")


def _same_shape(node, v, what):
    if _shape(node) != _shape(node.args[0]):
        raise _Blocked(f"{what} changes the shape of its channels")
    return v


def _pool(node, v, k, what):
    """Pooling acts on the last k dims; the channels must lie before them and keep their size."""
    shape_in, shape_out = _shape(node.args[0]), _shape(node)
    if shape_out is None or v[0].dim >= len(shape_in) - k or len(shape_out) != len(shape_in):
        raise _Blocked(f"{what} pools over its channel dim")
    return v


def _flatten(v, shape, start, end):
    """Dims start..end become one: unit c of the channel dim spreads over a block of `inner` positions."""
    nd = len(shape)
    start, end = start % nd, end % nd
    f = v[0]
    if f.dim < start:
        return v
    if f.dim > end:
        return tuple(f._replace(dim=f.dim - (end - start)) for f in v)
    outer, inner = math.prod(shape[start:f.dim]), math.prod(shape[f.dim + 1:end + 1])
    return tuple(f._replace(dim=start, outer=f.outer * outer, inner=f.inner * inner) for f in v)


def _cat(node, flows, what):
    """torch.cat along the channel dim of feature maps (skip connections, as in a U-Net or DenseNet): each
    followed input's channels keep their group at their offset in the joined channels; other inputs only take
    up room. Joining along another dim, or after a flatten, is not followed."""
    tensors, dim = _arg(node, 0, "tensors"), _arg(node, 1, "dim", 0)
    out = _shape(node)
    if not isinstance(tensors, (list, tuple)) or not isinstance(dim, int) or out is None:
        raise _Blocked(f"its channels go into {what} in a form structured pruning does not follow")
    dim %= len(out)
    joined, offset = [], 0
    for t in tensors:
        if _shape(t) is None:
            raise _Blocked(f"its channels go into {what} beside something that is not a traced tensor")
        if t in flows:
            if any(f.dim != dim for f in flows[t]):
                raise _Blocked(f"{what} joins its channels along another dim")
            if any((f.outer, f.inner) != (1, 1) for f in flows[t]):
                raise _Blocked(f"{what} joins its channels after a flatten or reshape")
            joined += [f._replace(offset=offset + f.offset) for f in flows[t]]
        offset += _shape(t)[dim]
    return tuple(f._replace(span=offset) for f in joined)


def _reshape(node, v, what):
    """view / reshape that merges trailing dims, with -1 (not a fixed number) wherever the channel count
    would be: x.view(x.size(0), -1) or x.reshape(N, -1)."""
    shape_in, shape_out = _shape(node.args[0]), _shape(node)
    args = node.args[1:]
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = tuple(args[0])
    k = len(shape_out) - 1
    if shape_out[:k] != shape_in[:k] or len(args) != len(shape_out):
        raise _Blocked(f"{what} reshapes its channel dim (only x.view(x.size(0), -1) style flattening is followed)")
    fixed = isinstance(args[min(v[0].dim, k)], int) and args[min(v[0].dim, k)] != -1
    if fixed:
        raise _Blocked(f"{what} reshapes to a fixed size {shape_out} that the pruned model would not have; "
                       "write x.view(x.size(0), -1) or x.flatten(1)")
    return _flatten(v, shape_in, k, -1)


def _reduce(node, v, what):
    """mean / sum over dims other than the channel dim."""
    nd = len(_shape(node.args[0]))
    dims, f = _arg(node, 1, "dim"), v[0]
    if dims is None or (f.outer, f.inner) != (1, 1):
        raise _Blocked(f"{what} reduces over its channels")
    dims = {d % nd for d in ((dims,) if isinstance(dims, int) else dims)}
    if f.dim in dims:
        raise _Blocked(f"{what} reduces over its channels")
    keepdim = _arg(node, 2, "keepdim", False)
    return v if keepdim else tuple(f._replace(dim=f.dim - sum(d < f.dim for d in dims)) for f in v)


def _squeeze(node, v, what):
    """squeeze(d) / squeeze(): size-1 dims go; the channel dim must not be one of them."""
    shape = _shape(node.args[0])
    d = _arg(node, 1, "dim")
    dims = range(len(shape)) if d is None else [j % len(shape) for j in (d if isinstance(d, (tuple, list)) else (d,))]
    gone = {j for j in dims if shape[j] == 1}
    if v[0].dim in gone:
        raise _Blocked(f"{what} squeezes away its channel dim")
    return tuple(f._replace(dim=f.dim - sum(j < f.dim for j in gone)) for f in v)


def _new_dims(node, v, what):
    """x[:, :, None, None], x[..., None] and x.unsqueeze(d): new size-1 dims, every existing one kept whole (a
    per-channel gate or context vector about to be broadcast over a map); the channel dim moves to its new place."""
    f, nd = v[0], len(_shape(node.args[0]))
    if node.target is operator.getitem:
        idx = node.args[1] if isinstance(node.args[1], tuple) else (node.args[1],)
        constant = all(i is None or i is Ellipsis or isinstance(i, int) and not isinstance(i, bool)
                       or isinstance(i, slice) and not any(isinstance(j, fx.Node) for j in (i.start, i.stop, i.step))
                       for i in idx)
        if idx.count(Ellipsis) > 1 or not constant:
            raise _Blocked(f"{what} indexes its dims with tensors or in a way structured pruning does not follow")
        if Ellipsis in idx:
            at = idx.index(Ellipsis)
            idx = idx[:at] + (slice(None),) * (nd - sum(i is not None for i in idx) + 1) + idx[at + 1:]
        new, at = None, 0  # where the channel dim lands; the output dim the next index item makes
        for k, i in enumerate([i for i in idx if i is not None]):  # picks (x[:, -1]) and slices of other dims
            if k == f.dim:
                if i != slice(None):
                    raise _Blocked(f"{what} picks or slices along its channel dim")
                new = at + sum(j is None for j in idx[:_position(idx, k)])
            at += not isinstance(i, int)
        if new is None:  # the channel dim lies after every indexed one
            new = len(_shape(node)) - (nd - f.dim)
    else:
        d = _arg(node, 1, "dim") % (nd + 1)
        new = f.dim + (d <= f.dim)
    return tuple(g._replace(dim=new) for g in v)


def _moved(node, v, name):
    """transpose / permute: the channel dim moves to where the op puts it (x.transpose(1, 2) turns a sequence's
    (N, T, C) features into a Conv1d's (N, C, T) channels)."""
    nd = len(_shape(node.args[0]))
    if name == "permute":
        order = node.args[1:] if not isinstance(_arg(node, 1, "dims"), (tuple, list)) else _arg(node, 1, "dims")
        order = [d % nd for d in order]
        return tuple(f._replace(dim=order.index(f.dim)) for f in v)
    a, b = _arg(node, 1, "dim0") % nd, _arg(node, 2, "dim1") % nd
    return tuple(f._replace(dim={a: b, b: a}.get(f.dim, f.dim)) for f in v)


def _position(idx, k):
    """Where the k-th item that is not None stands in index tuple `idx`."""
    return [j for j, i in enumerate(idx) if i is not None][k]


def _binary(node, what, flows):
    """add / sub / mul / div: followed operands must lie alike (their groups unite: a list of values) and have the
    output's shape, or size 1 in every dim but the channels' (a per-channel gate, x * g[:, :, None, None]); other
    tensor operands must be size 1 along the channel dim (a per-sample factor, say). One followed operand gives
    its value back as it is."""
    out = _shape(node)
    vs = [flows[a] for a in node.all_input_nodes if a in flows]
    if out is None:
        raise _Blocked(f"{what} does not give a tensor")
    for a in node.all_input_nodes:
        s = _shape(a)
        if a in flows:
            f = flows[a][0]  # broadcast along other dims only: its channels stay where they are
            if s != out and (len(s) != len(out) or s[f.dim] != out[f.dim] or (f.outer, f.inner) != (1, 1)):
                raise _Blocked(f"{what} broadcasts its channels")
        elif s is not None:
            pos = vs[0][0].dim - (len(out) - len(s))  # the channel dim in this operand, aligned from the right
            if pos >= 0 and s[pos] != 1:
                raise _Blocked(f"{what} combines its channels with a tensor that does not come from a "
                               f"prunable layer (`{a.name}`)")
    if all(v == vs[0] for v in vs):  # one followed operand, or the same one twice (x * sigmoid(x))
        return vs[0]
    if any(len(v) > 1 for v in vs):
        raise _Blocked(f"{what} combines channels joined by torch.cat with others")
    if any(v[0][1:] != vs[0][0][1:] for v in vs):
        raise _Blocked(f"{what} combines channels that lie differently")
    return vs


# -----------------------------------------------------------------------------
# applying a plan


def _grouped_columns(m, keep):
    """(out, in / groups) bool: which of its weight's input columns each filter of grouped conv `m` keeps, given the
    kept input channels `keep` (input column j of group g's filters is input channel g * in / groups + j)."""
    return keep.reshape(m.groups, -1).repeat_interleave(m.weight.shape[0] // m.groups, 0)


def _inputs(m):
    """A Linear / conv layer's input features or channels (a grouped conv's weight holds in / groups of them)."""
    if isinstance(m, _RNNLayer):
        return m.inputs
    return m.in_features if isinstance(m, nn.Linear) else m.in_channels


def _unit_norms(m):
    """L2 norm of each output unit's weights of producer `m`: for a Linear or conv, the same numbers
    prune.structured_keep ranks."""
    if isinstance(m, _RNNLayer):
        return m.norms()
    w = m.weight.detach().movedim(_axes(m)[0], 0)
    return torch.norm(w, p=2, dim=list(range(1, w.dim())))


def _here(units, offset, span):
    """The units that lie in a value at `offset` among `span` channels (all of them, but for one direction of a
    bidirectional RNN's h_n[k], which holds the units offset + c in 0 .. span - 1 alone)."""
    return units[(offset + units >= 0) & (offset + units < span)]


def _columns(units, outer, inner, offset, span):
    """A consumer's input columns of the given units: o*span*inner + (offset + c)*inner + i, in order."""
    units = _here(units, offset, span)
    o = torch.arange(outer)[:, None, None] * (span * inner)
    c = (offset + units)[None, :, None] * inner
    return (o + c + torch.arange(inner)[None, None, :]).reshape(-1)


def _slice(m, attrs, dim, idx):
    for attr in attrs:
        t = getattr(m, attr, None)
        if t is None:
            continue
        new = t.detach().index_select(dim, idx).clone()
        setattr(m, attr, nn.Parameter(new, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else new)


def _check_fits(model, plan):
    """ModelError unless every layer the plan names is in `model` with the sizes the plan expects."""
    if not isinstance(plan, Plan):
        raise ModelError(f"expected a Plan from structured.plan(), got {type(plan).__name__}")
    mods = dict(model.named_modules())
    for g in plan.groups:
        checks = [(n, (*PRODUCERS, _RNNLayer), lambda m: m.units if isinstance(m, _RNNLayer)
                   else m.weight.shape[_axes(m)[0]], g.units) for n in g.producers]
        checks += [(n, (*NORMS, *PRODUCERS), lambda m: _features(m) if _channelwise(m) else None, span)
                   for n, _, span in g.norms]
        checks += [(n, (*PRODUCERS, _RNNLayer), lambda m, o=o, i=i: _inputs(m) / (o * i), span)
                   for n, o, i, _, span in g.consumers]
        for name, kinds, units, want in checks:
            m = _layer(mods, name)
            if not isinstance(m, kinds) or units(m) != want:
                raise ModelError(f"this plan does not fit the model: layer {name!r} is "
                                 f"{type(m).__name__ if m is not None else 'missing'}, not a layer of "
                                 f"{want} units; make the plan from this model")
