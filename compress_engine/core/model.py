"""What the engine needs to know about any nn.Module: which weights it compresses, whether it can
handle the model at all, and how constraints ride on it during fine-tuning.

- Compressible: the `.weight` of every nn.Linear, nn.Conv1d/2d/3d, nn.ConvTranspose1d/2d/3d, nn.Embedding and
  nn.EmbeddingBag,
  the input projections of every nn.MultiheadAttention (`in_proj_weight`, or `q_/k_/v_proj_weight` when keys
  and values have their own sizes) and the weight matrices of every nn.RNN, nn.LSTM and nn.GRU (and of their
  cells, nn.RNNCell, nn.LSTMCell, nn.GRUCell, for a loop of one's own). So a
  transformer block is compressed whole (attention in-projections, out-projection, feed-forward); an embedding
  table is pruned, clustered and quantized like a Linear layer, one row per token; a recurrent layer, one row
  per gate unit. Everything else in the state dict (biases, BatchNorm and LayerNorm parameters and statistics,
  free parameters, buffers) is carried through exactly.
- `check_model` refuses, before any work and naming the layer, what the engine cannot handle.
- `constrained` registers torch parametrizations (masks, shared centroids, fake quantization) for
  fine-tuning and bakes them into plain weights on exit.
- `MLP` is the one architecture the engine builds itself: the distillation student of a given width.
"""

import copy
import inspect
import keyword
import math
import sys
from contextlib import contextmanager

import torch
import torch.nn.functional as F
import torch.nn.utils.parametrize as P
import torch.nn.utils.prune as prune
from torch import nn

from .data import labels_hint
from .encode import DTYPE_NAMES, DTYPES
from .errors import ModelError


COMPILED = "_orig_mod"  # the attribute torch.compile's wrapper (OptimizedModule) keeps the module it compiles in


def plain_module(model):
    """The module torch.compile wrapped (model._orig_mod), else `model`: the engine compresses that one, so tensor
    names, model_class, tracing and fine-tuning speed are the plain class's (through the wrapper, names carry an
    '_orig_mod.' prefix, fx cannot trace it and every fine-tuning step recompiles)."""
    # not imported, nothing was compiled; still being imported by another thread (a server's page runs), its class is
    # not defined yet, and reading it raised "partially initialized module" in the middle of a page run
    compiled = getattr(sys.modules.get("torch._dynamo.eval_frame"), "OptimizedModule", None)
    while compiled is not None and isinstance(model, compiled):
        model = getattr(model, COMPILED)
    return model


def _rnn_weights(rnn):
    """weight_ih_l0, weight_hh_l0 (and weight_hr_l0 with proj_size), ... with _reverse for a bidirectional RNN."""
    kinds = ("ih", "hh", "hr") if rnn.proj_size > 0 else ("ih", "hh")
    return tuple(f"weight_{kind}_l{layer}{suffix}" for layer in range(rnn.num_layers)
                 for suffix in ("", "_reverse")[:1 + rnn.bidirectional] for kind in kinds)


# layer kind -> the weights of it that the engine compresses (subclasses included; a None attribute is skipped):
# a tuple of names, or a function of the layer that gives them
TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, *TRANSPOSED)
# a transposed conv's weight is (in, out / groups, *kernel): its dim 0, along which "per channel" grids and weight
# rows go as for every other layer here, is its input channels
WEIGHTS = {nn.Linear: ("weight",), **dict.fromkeys(CONVS, ("weight",)),
           nn.Embedding: ("weight",), nn.EmbeddingBag: ("weight",),
           nn.MultiheadAttention: ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight"),
           nn.RNNBase: _rnn_weights,  # nn.RNN, nn.LSTM, nn.GRU
           nn.RNNCellBase: ("weight_ih", "weight_hh")}  # nn.RNNCell, nn.LSTMCell, nn.GRUCell (a loop of your own)
COMPRESSIBLE = tuple(WEIGHTS)
# WEIGHTS' layer kinds in words, for messages
KINDS = ("nn.Linear, nn.Conv1d/2d/3d, nn.ConvTranspose1d/2d/3d, nn.Embedding(Bag), nn.MultiheadAttention, nn.RNN, "
         "nn.LSTM, nn.GRU or their cells")
# batch norms: what fold.py folds into the layer before them and structured.py prunes with its producer's units
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
# torch's transformer layers (alone, or inside nn.TransformerEncoder / Decoder / nn.Transformer): see quantize.py
# and structured.py for what each does with them
TRANSFORMER_LAYERS = (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)


def weight_names(module):
    """The names of the weights of `module` (itself, not its children) that the engine compresses."""
    names = next((names for kind, names in WEIGHTS.items() if isinstance(module, kind)), ())
    return names(module) if callable(names) else names


def compressible(model):
    """Every weight Parameter the engine compresses in `model` (WEIGHTS), keyed by its state-dict name
    ("fc1.weight", "encoder.layers.0.self_attn.in_proj_weight").

    If a weight is parametrized (e.g. with prune.Masked during fine-tuning), the Parameter returned
    is the stored original (`module.parametrizations.weight.original`), still under the plain
    "<module>.weight" name, so masks and cluster labels keep the same keys through fine-tuning.
    """
    out = {}
    for mod_name, module in model.named_modules():
        for attr in weight_names(module):
            p = (getattr(module.parametrizations, attr).original if P.is_parametrized(module, attr)
                 else getattr(module, attr, None))
            if p is not None:
                out[f"{mod_name}.{attr}" if mod_name else attr] = p
    return out


def param_count(model):
    return sum(p.numel() for p in model.parameters())


def state_bytes(model):
    """Bytes of the model's whole state dict as stored densely (float32 weights: 4 bytes each)."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def arch_spec(model):
    """The JSON-able architecture a model describes itself with (`model.spec()`), else None.

    Sample-zoo models have one, so their artifacts rebuild without user code; for any other model
    the caller supplies the module to decode into.
    """
    spec = getattr(model, "spec", None)
    return spec() if callable(spec) else None


def artifact_meta(model, recipe):
    """The JSON an artifact's header carries about the model and how it was made: its arch_spec, its class name
    and the recipe's changed fields (Recipe.changes(); Recipe.from_dict gives the recipe back)."""
    return {"spec": arch_spec(model), "model_class": type(model).__qualname__, "recipe": recipe.changes()}


def refuse_nonfinite(t, where):
    """ModelError naming `where` if tensor `t` holds a NaN or an infinity (no result computed from it would mean
    anything). A sparse or otherwise non-strided tensor is not checked (torch.isfinite does not take one)."""
    if t.layout != torch.strided:
        return
    bad = ~torch.isfinite(t.detach())
    if bad.any():
        n_nan = int(t.detach().isnan().sum())
        n_inf = int(bad.sum()) - n_nan
        which = " and ".join(f"{n:,} {kind}" for n, kind in ((n_nan, "NaN"), (n_inf, "infinite")) if n)
        raise ModelError(f"{where} holds {which} value{'s' if n_nan + n_inf > 1 else ''} among its {t.numel():,}: "
                         "the model diverged or was loaded wrongly; load weights that are all finite (e.g. an "
                         "earlier checkpoint, or retrain with a lower learning rate)")


def check_device(model, what="model"):
    """Every parameter and buffer of `model` on the CPU, where the engine works: a meta tensor has no values, a GPU
    one is not where the data are. ModelError names the first that is not, and the fix."""
    for kind, tensors in (("parameter", model.named_parameters()), ("buffer", model.named_buffers())):
        for name, t in tensors:
            if t.device.type != "cpu":
                raise ModelError(f"{what}: {kind} {name!r} is on the {t.device.type} device; the engine compresses on "
                                 "the CPU: " + ("load real values into it first (a meta-device model has none), e.g. "
                                               "model.to_empty(device='cpu') then load_state_dict"
                                               if t.device.type == "meta" else "call model.cpu() first"))


# what to do with an attribute the engine cannot copy (here) or Ray cannot pickle (playground.sweeps)
REMOVE_ATTRIBUTE = "remove it from the model (keep it outside the model, e.g. as a module-level object forward uses)"


def what_fails(model, attempt):
    """None if attempt(model) (copying it, pickling it) raises nothing, else (the exception, what to blame in a
    message: "its attribute 'fc1.lock' (a _thread.lock)", found by failing_attribute, or "it")."""
    def fails(obj):
        try:
            attempt(obj)
        except Exception as e:  # what copying or pickling an object raises is any exception its __reduce_ex__ raises
            return e
        return None

    error = fails(model)
    if error is None:
        return None
    culprit = failing_attribute(model, fails)
    return error, f"its attribute {culprit[0]!r:.200} (a {culprit[1]:.100})" if culprit else "it"


def failing_attribute(model, fails):
    """(name, type) of the first attribute of `model` or of one of its modules ('fc1.lock', '_thread.lock') for
    which fails(value) is not None (its parameters and buffers one by one, its submodules on their own), else None."""
    for prefix, module in model.named_modules():
        for key, value in vars(module).items():
            if key == "_modules":  # the submodules: walked on their own
                continue
            parts = value.items() if key in ("_parameters", "_buffers") else [(key, value)]
            for name, obj in parts:
                if fails(obj) is not None:
                    cls = type(obj)
                    kind = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
                    return f"{prefix}.{name}" if prefix else name, kind
    return None


def check_copyable(model, what="model"):
    """Refuse a model copy.deepcopy cannot copy (an attribute holding a threading.Lock, an open file, ...): the engine
    copies every model it works on (to evaluate, fold, prune or fine-tune it), which raised torch's or pickle's
    traceback deep inside a run. Only the module tree is copied here: every parameter and buffer is given to deepcopy
    as already copied (itself), as is any other tensor attribute (the weight torch's prune computes, say), so the
    check costs no tensor memory."""
    for kind, named in (("parameter", model.named_parameters()), ("buffer", model.named_buffers())):
        for name, t in named:
            if t.layout == torch.strided:  # deepcopy copies those
                continue
            try:
                copy.deepcopy(t)
            except Exception as e:  # a sparse CSR tensor: 'Cannot access storage of SparseCsrTensorImpl'
                raise ModelError(f"{what}: {kind} {name!r} is {t.layout}, which torch cannot copy ({type(e).__name__}: "
                                 f"{str(e)[:100]}), and the engine copies every model it works on: store it as "
                                 "t.to_dense(), or as t.to_sparse() (sparse COO, which copies) if it stays out of the "
                                 "state dict (register_buffer(name, t, persistent=False))") from None
    tensors = {id(t): t for module in model.modules() for t in vars(module).values() if isinstance(t, torch.Tensor)}
    tensors.update((id(t), t) for t in (*model.parameters(), *model.buffers()))
    failed = what_fails(model, lambda obj: copy.deepcopy(obj, dict(tensors)))
    if failed is None:
        return
    error, part = failed
    why = (str(error).strip().splitlines() or [""])[0][:200]
    raise ModelError(f"{what} cannot be copied, which the engine does with every model it works on: {part} cannot be "
                     f"copied by copy.deepcopy ({type(error).__name__}: {why}): {REMOVE_ATTRIBUTE}")


def check_storable(model, what="model"):
    """Every tensor of `model`'s state dict (what compress() encodes: parameters and persistent buffers) of a dtype
    and layout the artifact stores (encode.DTYPES, strided); else ModelError naming the first, before any work (the
    encoder would refuse it only at the end, after pruning and fine-tuning)."""
    params = {name for name, _ in model.named_parameters(remove_duplicate=False)}
    for name, t in model.state_dict(keep_vars=True).items():
        if not isinstance(t, torch.Tensor) or (t.dtype in DTYPE_NAMES and t.layout == torch.strided):
            continue
        kind = "parameter" if name in params else "buffer"
        how = ("torch.view_as_real(t) for a complex one" if t.is_complex()
               else "t.to_dense()" if t.layout != torch.strided
               else "t.dequantize()" if t.is_quantized else "e.g. t.float()")
        layout = "" if t.layout == torch.strided else f" ({t.layout})"
        raise ModelError(f"{what}: {kind} {name!r} is {t.dtype}{layout}, which the artifact cannot store (it stores "
                         f"dense tensors of {', '.join(DTYPES)}): keep it out of the state dict if the model can "
                         f"rebuild it (register_buffer(name, t, persistent=False)), or store it as one of those ({how}) "
                         f"and convert it back in forward")


def check_model(model, data=None, what="model", stored=True):
    """Refuse, before any work, a model the engine cannot compress; ModelError names the layer and the fix.
    stored=False for a model whose state no artifact holds (a teacher: check_storable is skipped).

    With `data`, one forward pass on two test inputs must give (2, C, *data.label_shape) logits with C >= data.n_classes
    (fits_logits: a model may score more classes than the data holds).
    """
    if not isinstance(model, nn.Module):
        raise ModelError(f"{what} must be a torch.nn.Module, got {type(model).__name__}")
    check_device(model, what)
    if stored:  # before check_copyable: the weight prune computes is no graph leaf, which deepcopy refuses
        _refuse_pruned(model, what)
    check_copyable(model, what)
    owners = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        if isinstance(p, nn.parameter.UninitializedParameter):
            raise ModelError(f"{what}: parameter {name!r} is not initialised (a lazy module): run one forward "
                             "pass on a batch of your data before compressing")
        if p.dtype != torch.float32:
            # Module.float() leaves a complex tensor complex: its float32 pair of (real, imaginary) parts instead
            fix = (f"store it as its float32 (real, imaginary) pairs, {_spelled(model, name)} = "
                   f"nn.Parameter(torch.view_as_real({_spelled(model, name)}.detach())), and use "
                   f"torch.view_as_complex on it in forward" if p.is_complex() else "call model.float() first")
            raise ModelError(f"{what}: parameter {name!r} is {p.dtype}; the engine compresses float32 models: {fix}")
        refuse_nonfinite(p, f"{what}: parameter {name!r}")
        owners.setdefault(id(p), []).append(name)
    for name, b in model.named_buffers():
        if b.is_floating_point():
            refuse_nonfinite(b, f"{what}: buffer {name!r}")
    if stored:
        check_storable(model, what)
    for mod_name, module in model.named_modules():
        if P.is_parametrized(module):
            raise ModelError(f"{what}: layer {mod_name or '(root)'!r} already carries a torch parametrization; "
                             "remove it (torch.nn.utils.parametrize.remove_parametrizations) before compressing")
        if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
            if module.sparse:
                raise ModelError(f"{what}: embedding {mod_name!r} has sparse=True; the engine fine-tunes with dense "
                                 "gradients: build it with sparse=False (the weights are the same)")
            if module.max_norm is not None:
                raise ModelError(f"{what}: embedding {mod_name!r} has max_norm={module.max_norm}, which rewrites "
                                 "its rows in place at every forward pass, so the compressed weights would not "
                                 "stay as stored: build it with max_norm=None (renormalise in forward instead)")
        # a teacher (stored=False) is only run: a weight computed by a hook, or shared, is fine in it
        for attr in weight_names(module) if stored else ():
            if attr not in module._parameters and isinstance(getattr(module, attr, None), torch.Tensor):
                # (torch.nn.utils.prune's hook is refused before, by _refuse_pruned)
                others = ", ".join(n for n, _ in module.named_parameters(recurse=False))
                raise ModelError(f"{what}: the {attr} of layer {mod_name or '(root)'!r} is not a parameter but is "
                                 f"computed from others ({others}) by a forward hook, as torch.nn.utils.weight_norm "
                                 "and spectral_norm do: remove it first (torch.nn.utils.remove_weight_norm or "
                                 "remove_spectral_norm; the layer then holds the same weight as one parameter)")
            shared = owners.get(id(getattr(module, attr, None)), [])
            if len(shared) > 1:
                which = "the weight" if attr == "weight" else attr
                untie = "; ".join(f"{_spelled(model, n)} = nn.Parameter({_spelled(model, shared[0])}"
                                  ".detach().clone())" for n in shared[1:])
                raise ModelError(f"{what}: {which} of layer {mod_name!r} is shared ({', '.join(shared)}); tied "
                                 "weights cannot be pruned or clustered one layer at a time: untie them first, "
                                 f"e.g. {untie} (each is then compressed and stored on its own)")
    if not compressible(model):
        raise ModelError(f"{what} ({type(model).__name__}) has no {KINDS} layer: "
                         "there is nothing for the engine to compress")
    if data is not None:
        x = data.x("test")[:2]
        ids = ""
        if not x.is_floating_point():  # ids: also the samples holding the smallest and largest id of each split
            rows, lows, highs = [x], [], []
            for split in ("train", "test"):
                t = data.x(split)
                flat = t.reshape(len(t), -1)
                lo, hi = flat.min(1).values, flat.max(1).values
                rows.append(t[torch.stack([lo.argmin(), hi.argmax()])])
                lows.append(int(lo.min()))
                highs.append(int(hi.max()))
            x = torch.cat(rows)
            top, low = max(highs), min(lows)
        was_training = model.training
        seen = {}  # embedding name -> (smallest, largest) id it got in the forward below: which one the ids overflow
        hooks = [m.register_forward_pre_hook(_ids_seen(seen, name)) for name, m in model.named_modules()
                 if isinstance(m, (nn.Embedding, nn.EmbeddingBag))] if not x.is_floating_point() else []
        try:
            with torch.inference_mode(), buffers_kept(model):
                out = model.eval()(x)
        except Exception as e:  # any failure of the user's forward: say which input it got
            if not x.is_floating_point():
                ids = _ids_hint(model, e, seen, low, top, getattr(data, "inputs_fix", None))
            raise ModelError(f"{what} ({type(model).__name__}) fails on the data's inputs of shape "
                             f"{tuple(x.shape)} ({type(e).__name__}: {str(e)[:200]}); it must map "
                             f"(N, {', '.join(map(str, data.input_shape))}) inputs to {logits_shape(data)} logits"
                             f"{_inputs_hint(model)}{ids}") from None
        finally:
            for hook in hooks:
                hook.remove()
            model.train(was_training)
        # at least one logit per class (a 10-output model may score a folder whose labels reach only 0-2)
        n = len(x)
        if not fits_logits(out, n, data):
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            if getattr(data, "multilabel", False):
                raise ModelError(f"{what} ({type(model).__name__}) returns {got} for {n} inputs; a multi-label model "
                                 f"for {data.name!r} must return {logits_shape(data)}, a logit per tag (positive "
                                 f"where the tag is present)")
            if getattr(data, "regression", False):
                raise ModelError(f"{what} ({type(model).__name__}) returns {got} for {n} inputs; a regression model "
                                 f"for {data.name!r} must return {logits_shape(data)}, one output per target value "
                                 f"(if the labels are class indices, give them as integers: y.long())")
            raise ModelError(f"{what} ({type(model).__name__}) returns {got} for {n} inputs; a classifier for "
                             f"{data.name!r} must return {logits_shape(data)} logits (at least {data.n_classes} "
                             f"class scores on dim 1; more are fine){_output_hint(out, data)}")
    return model


def _ids_seen(seen, name):
    """A forward pre-hook for embedding `name` keeping the smallest and largest id it is given in seen[name]."""
    def hook(module, args):
        ids = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if ids is not None and not ids.is_floating_point() and ids.numel():
            lo, hi = int(ids.min()), int(ids.max())
            old = seen.get(name, (lo, hi))
            seen[name] = (min(lo, old[0]), max(hi, old[1]))
    return hook


def _ids_hint(model, e, seen, low, top, fix=None):
    """check_model's words on integer inputs for a forward that failed with `e`, the embeddings having got the ids
    `seen` ({name: (smallest, largest)}): the embeddings whose rows the ids overflow, if that is what failed (an
    IndexError, or EmbeddingBag's 'not in the valid range'), negative ids, or, when no embedding got any id, that only a
    model starting with one takes integers (and how to make them floats: `fix`, the data's inputs_fix, what to change
    where they came from; else before Dataset.from_tensors). '' when an embedding got them and the failure is another
    one."""
    held = f"; the data holds ids {low:,} to {top:,}"
    if not seen:
        return (f"; the data's inputs are integers (int64, ids {low:,} to {top:,}), which only a model that starts "
                "with an nn.Embedding takes (one of n rows takes ids 0 to n-1): if they are images or features, "
                f"{fix or 'make them floats before Dataset.from_tensors, e.g. x.float() / 255'}")
    if not (isinstance(e, IndexError) or "valid range" in str(e)):
        return ""
    rows = {name: m.num_embeddings for name, m in model.named_modules() if name in seen}
    negative = [name for name, (lo, _) in seen.items() if lo < 0]
    if negative:
        return (f"{held}: negative ids cannot index an embedding ({', '.join(map(repr, negative))} got "
                f"{min(seen[n][0] for n in negative):,}), whose rows take ids 0 to n-1: give padding or unknown "
                "tokens an id of their own, a row of the embedding (e.g. 0, with padding_idx=0)")
    over = [(name, rows[name], hi) for name, (_, hi) in seen.items() if hi >= rows[name]]
    return held + "".join(f": embedding {name!r} has {n:,} rows (ids 0 to {n - 1:,}) but gets ids up to {hi:,}: build "
                          f"it with num_embeddings >= {hi + 1:,} (the largest id + 1)" for name, n, hi in over)


def _spelled(model, name, root="model"):
    """A parameter's or module's name in `model` as Python that reaches it from `root`: 'layers.0.weight' ->
    'model.layers[0].weight' (nn.Sequential, nn.ModuleList, nn.ParameterList: by position), 'd.my-a' ->
    "model.d['my-a']" (nn.ModuleDict, nn.ParameterDict: by their string keys), 'fc-in.weight' in an
    nn.Sequential made from an OrderedDict -> 'model[0].weight'; a name that is no Python identifier elsewhere ->
    "getattr(model, 'fc-in')". '' -> 'model'."""
    text, here = root, model
    for part in name.split(".") if name else ():
        children = {**here._modules, **here._parameters, **here._buffers} if isinstance(here, nn.Module) else {}
        if isinstance(here, (nn.ModuleDict, nn.ParameterDict)):
            text += f"[{part!r}]"
        elif isinstance(here, (nn.Sequential, nn.ModuleList, nn.ParameterList)) and part in (
                keys := here._parameters if isinstance(here, nn.ParameterList) else here._modules):
            text += f"[{list(keys).index(part)}]"
        elif part.isidentifier() and not keyword.iskeyword(part):
            text += f".{part}"
        else:
            text = f"getattr({text}, {part!r})"
        here = children.get(part)
    return text


def _pruned(model):
    """[(module name, tensor name)] of every tensor of `model` that torch.nn.utils.prune computes (its forward pre-hook
    from <name>_orig and <name>_mask), in module order."""
    return [(mod_name, hook._tensor_name) for mod_name, module in model.named_modules()
            for hook in module._forward_pre_hooks.values() if isinstance(hook, prune.BasePruningMethod)]


def _refuse_pruned(model, what):
    """Refuse a model any of whose tensors (a weight, a bias, any other) torch.nn.utils.prune computes: its state dict
    holds <name>_orig and <name>_mask instead of <name>, so its artifact would not load into a fresh instance of the
    class. The message gives one prune.remove statement per tensor, all of them at once."""
    hooked = _pruned(model)
    if not hooked:
        return
    names = [f"{mod_name}.{attr}" if mod_name else attr for mod_name, attr in hooked]
    fix = "; ".join(f"torch.nn.utils.prune.remove({_spelled(model, mod_name)}, {attr!r})" for mod_name, attr in hooked)
    one = len(hooked) == 1
    raise ModelError(f"{what}: {'tensor' if one else 'tensors'} {', '.join(map(repr, names))} "
                     f"{'is not a parameter but is' if one else 'are not parameters but are'} computed by "
                     f"torch.nn.utils.prune's forward pre-hook, so the state dict would hold "
                     f"{', '.join(f'{n}_orig and {n}_mask' for n in names)} instead: make "
                     f"{'it a plain parameter' if one else 'them plain parameters'} first with {fix} "
                     f"({'it keeps' if one else 'each keeps'} the zeros pruning gave it)")


@contextmanager
def buffers_kept(model):
    """`model`'s buffers after the block as they were before it: a forward that only checks the caller's model must not
    change it (a FakeQuantize observer of a model prepared for quantization-aware training updates its scale and
    min/max at every forward, in eval mode too, and may resize them)."""
    # not a sparse one (torch.equal does not take it; a forward that rewrites one in place is not known)
    saved = {name: b.detach().clone() for name, b in model.named_buffers() if b.layout == torch.strided}
    try:
        yield
    finally:
        with torch.no_grad():
            for name, b in list(model.named_buffers()):
                old = saved.get(name)
                if old is None or (b.shape == old.shape and torch.equal(b, old)):
                    continue
                if b.shape == old.shape:
                    b.copy_(old)
                else:
                    owner, _, attr = name.rpartition(".")
                    setattr(model.get_submodule(owner) if owner else model, attr, old)


def _inputs_hint(model):
    """A forward that needs several inputs (token ids and an attention mask, say), for check_model's message."""
    try:
        params = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        return ""
    needed = [p.name for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(needed) < 2:
        return ""
    names = ", ".join(needed)
    return (f"; its forward takes {len(needed)} inputs ({names}) and the engine gives it one tensor: stack them "
            f"into one (e.g. torch.stack([{names}], 1) as the Dataset's inputs) and compress a wrapper module whose "
            f"forward(x) calls the model on x[:, 0], x[:, 1], ...")


def _output_hint(out, data):
    """What to do about outputs that are not the logits `data` needs, for check_model's message ('' if nothing)."""
    per_position = getattr(data, "label_shape", ())
    tensor = isinstance(out, torch.Tensor)
    if per_position and tensor and out.dim() == 2:
        return (f": the data has a label per position ({tuple(per_position)} per sample); "
                f"{labels_hint((len(out), *per_position))}")
    if per_position:
        return ", class scores on dim 1 as torch's cross_entropy takes them (a model that puts them last returns " \
               "out.movedim(-1, 1))"
    if tensor and out.dim() > 2:
        return "; for a class per token or pixel, give labels of shape (N, *positions)"
    if isinstance(out, (tuple, list, dict)) or hasattr(out, "logits"):
        pick = ("['logits']" if isinstance(out, dict) and "logits" in out
                else ".logits" if hasattr(out, "logits") else "[0]")
        return (f"; it returns more than the logits: wrap it in a module whose forward returns them alone, "
                f"e.g. model(x){pick}")
    return ""


def logits_shape(data):
    """The logits a model must return for `data`, as text: '(N, 10)', or '(N, 10, 28, 28)' for per-pixel labels;
    for regression targets, '(N, 1)' or '(N, *target_shape)'."""
    labels = tuple(getattr(data, "label_shape", ()))
    if getattr(data, "regression", False):
        return "(N, " + ", ".join(map(str, labels or (1,))) + ")"
    if getattr(data, "multilabel", False):
        return f"(N, {data.n_classes})"
    return "(N, " + ", ".join(map(str, (data.n_classes, *labels))) + ")"


def fits_logits(out, n, data):
    """True if `out` can be `n` samples' logits for `data`: (n, >= n_classes, *label_shape), float (a model may
    have more outputs than the data has classes, e.g. a 10-class model scoring a folder labelled 0-2). For
    regression targets: n samples of as many floats as each sample's targets, in any shape ((N,) or (N, 1) for one
    target each; outputs(out, data) reshapes them to the targets'). For multi-label tags: (n, C), a logit per tag."""
    labels = tuple(getattr(data, "label_shape", ()))
    if not (isinstance(out, torch.Tensor) and out.is_floating_point() and out.dim() >= 1 and out.shape[0] == n):
        return False
    if getattr(data, "regression", False):
        return out[0].numel() == math.prod(labels)
    if getattr(data, "multilabel", False):  # a logit per tag
        return tuple(out.shape) == (n, data.n_classes)
    return out.dim() == 2 + len(labels) and out.shape[1] >= data.n_classes and tuple(out.shape[2:]) == labels


def owner(model, name):
    """(module, attribute) of a parameter name such as 'layers.0.weight'."""
    path, _, attr = name.rpartition(".")
    return model.get_submodule(path), attr


@contextmanager
def constrained(model, parametrizations, freeze_original=False):
    """Register {param name: parametrization} on `model`; on exit bake them into plain weights.

    A weight its owner froze (requires_grad False) stays frozen: its stored original and the
    parametrization's own parameters (clustering's centroids) get no gradient, so no fine-tuning moves
    it. On exit every weight gets back the requires_grad it came in with.

    Each module's parameters keep their order (removing a parametrization re-adds the weight last),
    so the state dict, and the artifact made from it, list tensors as the model defines them."""
    orders, trainable = {}, {}
    for name in parametrizations:
        module, attr = owner(model, name)
        orders.setdefault(id(module), (module, list(module._parameters)))
        trainable[name] = getattr(module, attr).requires_grad
    for name, par in parametrizations.items():
        module, attr = owner(model, name)
        P.register_parametrization(module, attr, par)
        if freeze_original or not trainable[name]:
            getattr(module.parametrizations, attr).original.requires_grad_(False)
        if not trainable[name]:
            par.requires_grad_(False)
    try:
        yield model
    finally:
        for name in parametrizations:
            module, attr = owner(model, name)
            P.remove_parametrizations(module, attr, leave_parametrized=True)
            getattr(module, attr).requires_grad_(trainable[name])
        for module, order in orders.values():
            module._parameters = {k: module._parameters[k] for k in order if k in module._parameters}


class MLP(nn.Module):
    """Fully connected ReLU net: sizes = [inputs, h1, ..., classes]; inputs of any shape are flattened."""

    def __init__(self, sizes, dropout=0.0):
        super().__init__()
        self.dropout = dropout
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))

    @property
    def sizes(self):
        """[inputs, h1, ..., classes], read from the layers (so it follows structured pruning)."""
        return [self.layers[0].in_features] + [layer.out_features for layer in self.layers]

    def spec(self):
        return {"arch": "mlp", "sizes": self.sizes}

    def forward(self, x):
        x = x.flatten(1)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.dropout(F.relu(x), self.dropout, self.training)
        return x


def student_mlp(width, data, depth=2, outputs=None):
    """A distillation student for `data`: [inputs] + [width] * depth + [outputs] (Hinton's is 800-800). `outputs`:
    its teacher's count of classes (default data.n_classes), which may be more than the data hold (fits_logits: a
    10-class teacher on data labelled 0-4): the student scores as many, so its logits match the teacher's in KD."""
    inputs = 1
    for d in data.input_shape:
        inputs *= d
    return MLP([inputs] + [int(width)] * depth + [data.n_classes if outputs is None else int(outputs)])
