"""BatchNorm folding: merge each BatchNorm into the convolution (plain or transposed) or Linear that feeds it, as
deployment does.

In eval mode a BatchNorm is a fixed per-channel affine map, y = gamma * (x - mean) / sqrt(var + eps) + beta,
so after a layer computing x = W * input + b it folds into that layer:

    W' = W * s (per output channel),   b' = (b - mean) * s + beta,   with s = gamma / sqrt(var + eps).

The folded model computes the same function (up to float rounding) with fewer tensors and no
BatchNorm pass; compression then prunes, clusters and quantizes the weights that a deployed model
really multiplies with (quantizing W before folding would be undone by the per-channel scale s).
torch.ao's fuse_modules and TFLite/TensorRT converters do the same.

    folded = fold_batchnorm(model)   # a deep copy; each folded BatchNorm becomes nn.Identity

Pairs are found on a torch.fx trace: a BatchNorm folds into the layer whose output it reads if that
output goes nowhere else and neither module is called twice. Any other BatchNorm is left in place.
"""

import copy

import torch
import torch.fx as fx
from torch import nn

from . import tracing
from .errors import ModelError
from .model import CONVS, NORMS, TRANSPOSED
from .train import flush_tiny_

LAYERS = (*CONVS, nn.Linear)


def _out_channels(layer):
    """Output channels of a conv / Linear: weight dim 0, or, transposed (in, out / groups, *k), dim 1 x groups."""
    w = layer.weight
    return w.shape[1] * layer.groups if isinstance(layer, TRANSPOSED) else w.shape[0]


def _scaled(layer, scale):
    """layer.weight with output channel c multiplied by scale[c] (grouped transposed convs included)."""
    w = layer.weight
    if not isinstance(layer, TRANSPOSED):
        return w * scale.reshape(-1, *[1] * (w.dim() - 1))
    g = layer.groups  # weight (in, out / g, *k): output channel j of group i is weight[i * in / g:(i + 1) * in / g, j]
    grouped = w.reshape(g, w.shape[0] // g, *w.shape[1:])
    return (grouped * scale.reshape(g, 1, -1, *[1] * (w.dim() - 2))).reshape(w.shape)


def foldable_pairs(model):
    """[(layer name, batchnorm name)] of the BatchNorms `fold_batchnorm` would fold, in graph order."""
    try:
        graph = tracing.trace(model)
    except Exception as e:  # data-dependent control flow, unsupported ops, ...
        # torch's words cut short, but not the advice tracing adds to a loop over a tensor's size (it is short)
        text = " ".join(str(e).split())
        raise ModelError(f"cannot fold BatchNorm in {type(model).__name__}: torch.fx cannot trace it "
                         f"({type(e).__name__}: {text if tracing.NOT_AN_INT in text else text[:160]})") from None
    modules = dict(model.named_modules())
    calls = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    pairs = []
    for node in graph.nodes:
        norm = modules.get(node.target) if node.op == "call_module" else None
        if not isinstance(norm, NORMS) or not norm.track_running_stats or norm.running_var is None:
            continue
        src = node.args[0] if node.args else None
        layer = modules.get(src.target) if isinstance(src, fx.Node) and src.op == "call_module" else None
        if (isinstance(layer, LAYERS) and len(src.users) == 1 and len(node.args) == 1
                and calls[src.target] == 1 and calls[node.target] == 1
                and _out_channels(layer) == norm.num_features):
            pairs.append((src.target, node.target))
    return pairs


@torch.no_grad()
def fold_batchnorm(model):
    """A deep copy of `model` in eval mode with every BatchNorm that directly follows a conv / Linear folded
    into it (weights rescaled per output channel, a bias added if the layer had none) and replaced by
    nn.Identity. Outputs match the original's eval-mode outputs up to float rounding (allclose)."""
    folded = copy.deepcopy(model).eval()
    for layer_name, norm_name in foldable_pairs(folded):
        layer, norm = folded.get_submodule(layer_name), folded.get_submodule(norm_name)
        scale = (norm.weight if norm.affine else torch.ones_like(norm.running_var)) / torch.sqrt(norm.running_var + norm.eps)
        shift = norm.bias if norm.affine else torch.zeros_like(norm.running_mean)
        bias = layer.bias if layer.bias is not None else torch.zeros_like(norm.running_mean)
        layer.weight.copy_(_scaled(layer, scale))  # rescale each output channel
        new_bias = (bias - norm.running_mean) * scale + shift
        if layer.bias is None:
            # it stands in for the norm's shift: trainable as that was (as the layer's weight, without one)
            layer.bias = nn.Parameter(new_bias.to(layer.weight.dtype),
                                      requires_grad=(norm.bias if norm.affine else layer.weight).requires_grad)
        else:
            layer.bias.copy_(new_bias)
        parent, _, attr = norm_name.rpartition(".")
        setattr(folded.get_submodule(parent) if parent else folded, attr, nn.Identity())
        flush_tiny_((layer.weight, layer.bias))  # a tiny weight times a small scale can land below normal
    return folded


def deployed(model):
    """`model` as deployment runs it: a model that declares `fold_batchnorm = True` (the zoo's ResNet) gets
    its BatchNorms folded into its convs (fold_batchnorm, same outputs), so compression acts on the
    weights a deployed model multiplies with; any other model is returned as it is."""
    return fold_batchnorm(model) if getattr(model, "fold_batchnorm", False) is True else model
