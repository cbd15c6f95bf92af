"""Re-evaluating a model after one of its parameters changed, recomputing only what depends on that parameter.

A sensitivity scan changes one layer at a time and evaluates the model at every setting of that layer (63 of
them). Everything computed before the layer, and every branch that does not pass through it (a residual block's
shortcut), is the same at every setting. `Reruns` traces the model once with torch.fx; `Reruns.of(name, x,
reference)` runs the part of the graph that does not depend on parameter `name` once per batch and keeps the
values the rest reads from it (the frontier); each call of the function it returns then recomputes only the nodes
downstream of the parameter. Over a ResNet's layers that is about half the work of evaluating the whole model.

The outputs are the same bits as logits(model, x): the same batches, and every node sees the same inputs. `of`
checks that, running the downstream part twice with the weights as they are (the second run would differ if the
first wrote into a kept value in place), and returns None when the outputs differ from `reference`, when torch.fx
cannot trace the model, or when the kept values would take more than `max_bytes`: the caller then evaluates the
whole model, as before.
"""

import math
from operator import attrgetter

import torch
import torch.fx as fx
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata

from . import tracing
from .train import Stopped, batches, stop_point

MAX_BYTES = 1 << 30  # the frontier of every batch, kept between calls (ResNet-8 on 2,000 images: at most 400 MB)


def _uses(gm, node, param):
    """Whether node reads `param` itself: a module call or attribute whose parameters include it (by identity, so a
    parameter shared by two modules counts for both)."""
    if node.op not in ("call_module", "get_attr"):
        return False
    try:
        target = gm.get_submodule(node.target) if node.op == "call_module" else attrgetter(node.target)(gm)
    except AttributeError:
        return True  # cannot tell: count it as reading the parameter (recomputed, never wrong)
    if isinstance(target, torch.nn.Module):
        return any(q is param for q in target.parameters())
    return target is param


class Reruns:
    """One torch.fx trace of `model` (in eval mode, its parameters shared with `model`, not copied), from which
    `of(name, x, reference)` builds the cheap re-evaluation for each parameter. `traced` is False when torch.fx
    cannot trace the model; `of` then always returns None."""

    def __init__(self, model):
        self.model = model
        try:
            self.gm = tracing.symbolic_trace(model)
        except Exception:  # noqa: BLE001 -- any model torch.fx cannot trace: the caller evaluates it whole
            self.gm = None
        self.traced = self.gm is not None

    def _dependents(self, name):
        """The graph's nodes that depend on parameter `name` (the set), or None if the shortcut does not apply: no
        trace, no such parameter in it, several inputs, or a parameter that does not reach the output."""
        param = dict(self.model.named_parameters()).get(name) if self.traced else None
        if param is None or not any(q is param for q in self.gm.parameters()):
            return None
        nodes, dep = list(self.gm.graph.nodes), set()
        for n in nodes:
            if _uses(self.gm, n, param) or any(a in dep for a in n.all_input_nodes):
                dep.add(n)
        if nodes[-1].op != "output" or nodes[-1] not in dep or sum(n.op == "placeholder" for n in nodes) != 1:
            return None
        return dep

    def shares(self, example):
        """{parameter name: the share of the model's multiply-adds on `example` that depend on it}, counting its
        convolutions' and linear layers' (weights x output positions); 1.0 for every parameter whose part cannot be
        told (no trace, nothing counted). What re-evaluating after changing that parameter costs, relative to
        evaluating the whole model."""
        names = [n for n, _ in self.model.named_parameters()]
        if not self.traced:
            return dict.fromkeys(names, 1.0)
        macs = {}
        try:
            with torch.inference_mode():
                ShapeProp(self.gm).propagate(example)
        except Exception:  # noqa: BLE001 -- cannot count: assume every change costs a whole evaluation
            return dict.fromkeys(names, 1.0)
        for n in self.gm.graph.nodes:
            meta = n.meta.get("tensor_meta")
            if n.op == "call_module" and isinstance(meta, TensorMetadata):
                m = self.gm.get_submodule(n.target)
                if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)):
                    spatial = meta.shape[2:] if not isinstance(m, nn.Linear) else meta.shape[1:-1]
                    macs[n] = m.weight.numel() * math.prod(spatial)
        total = sum(macs.values())
        out = {}
        for name in names:
            dep = self._dependents(name) if total else None
            out[name] = 1.0 if dep is None else sum(v for n, v in macs.items() if n in dep) / total
        return out

    def of(self, name, x, reference, max_bytes=MAX_BYTES):
        """A function f() -> the outputs of `model` on x (as logits(model, x)) for the current value of parameter
        `name`, recomputing only what depends on it; None if that is not possible exactly (see the module)."""
        dep = self._dependents(name)
        if dep is None:
            return None
        gm, nodes = self.gm, list(self.gm.graph.nodes)
        placeholders = [n for n in nodes if n.op == "placeholder"]
        output = nodes[-1]
        downstream = [n for n in nodes if n in dep]
        frontier = {a for n in downstream for a in n.all_input_nodes if a not in dep}
        if frontier <= set(placeholders):
            return None  # the parameter's part starts at the input: the whole model is as quick
        before = [n for n in nodes if n not in dep]
        last_use = {}  # node -> the last node before the parameter's part that reads it (to free it after)
        for n in before:
            for a in n.all_input_nodes:
                last_use[a] = n
        interp = fx.Interpreter(gm, garbage_collect_values=False)
        kept, size = [], 0
        try:
            with torch.inference_mode():
                for xb in batches(self.model, x):
                    interp.env = {placeholders[0]: xb}
                    for n in before:
                        if n.op != "placeholder":
                            interp.env[n] = interp.run_node(n)
                        for a in n.all_input_nodes:
                            if last_use.get(a) is n and a not in frontier:
                                del interp.env[a]
                    values = {n: interp.env[n] for n in frontier}
                    size += sum(v.numel() * v.element_size() for v in values.values() if isinstance(v, torch.Tensor))
                    if size > max_bytes:
                        return None
                    kept.append(values)
        except Stopped:
            raise
        except Exception:  # noqa: BLE001 -- a graph that runs differently from the module: evaluate it whole
            return None
        finally:
            interp.env = {}
        if not kept:
            return None  # no inputs: nothing to recompute (and no output to take a shape from)

        def outputs():
            outs = []
            try:
                with torch.inference_mode():
                    for values in kept:
                        stop_point()
                        interp.env = dict(values)
                        for n in downstream:
                            interp.env[n] = interp.run_node(n)
                        outs.append(interp.env[output])
            finally:
                interp.env = {}
            return torch.cat(outs)

        try:
            same = all(torch.equal(outputs(), reference) for _ in range(2))
        except Stopped:
            raise
        except Exception:  # noqa: BLE001 -- e.g. outputs that are not one tensor
            return None
        return outputs if same else None
