"""Training and evaluation: one loop for sample models, masked/clustered/QAT fine-tuning and distillation.

Constraints (masks, shared weights, fake quantization) live in torch parametrizations on the model,
so this loop needs no special cases: whatever it optimizes, the forward pass stays on the constraint.
"""

import copy
import math
import statistics
import threading
import weakref
import time
from contextlib import contextmanager

import torch
import torch.nn as nn
import torch.nn.functional as F

from .data import IDS_HINT, IGNORE, as_inputs
from .errors import DatasetError, ModelError
from .model import NORMS


def tiny_limit(dtype):
    """Below this magnitude a value of `dtype` is flushed to zero: sqrt(smallest normal), 2^-63 (1.1e-19) for
    float32 and bfloat16, so a kept weight times any activation or gradient of 2^-63 or more stays normal; for
    float16, whose range is too narrow for that, its own smallest normal."""
    tiny = torch.finfo(dtype).tiny
    return tiny if dtype == torch.float16 else tiny ** 0.5


@torch.no_grad()
def flush_tiny_(tensors):
    """Set every value of floating tensors with 0 < |x| < tiny_limit(dtype) to +0, in place: the subnormal
    ones and those whose products are.

    On x86 CPUs each arithmetic operation that takes or makes a subnormal float runs a slow microcode path.
    The shipped checkpoints once held 17k-185k subnormal weights and evaluated 6-12x slower for it; after
    those were flushed they still held 23k-432k weights between 2^-126 and 2^-63, whose products with
    ordinary activations and gradients are subnormal: for them the models evaluated 1.1-2.6x slower and
    took 1.1-1.6x longer an Adam step (bench/speed.py, section 8). Training makes both kinds (weight decay
    shrinks unused weights geometrically towards zero), and torch.set_flush_denormal only covers the
    calling thread, not torch's worker threads, so the values themselves are flushed: every FLUSH_EVERY
    optimizer steps and at the end of each epoch of fit(), and when weights are loaded.
    A float32 weight below 2^-63 changes no sum it is in unless every other term is as small.
    Returns how many values were flushed.
    """
    flushed = 0
    for t in tensors:
        if t.is_floating_point():
            small = (t != 0) & (t.abs() < tiny_limit(t.dtype))
            n = int(small.sum())
            if n:
                t.masked_fill_(small, 0.0)
                flushed += n
    return flushed


BATCH = 128  # fit()'s batch size by default (train_steps and compress()'s progress count its steps)
REPORT_SECONDS = 1.0  # fit() reports progress at least this often (besides every report_every steps and the first)
FLUSH_EVERY = 16  # fit()'s optimizer steps between two flush_tiny_ passes over the weights. After every step, the
# pass made a small MLP's epoch 1.4x longer (100-100 student, 1 thread: 1.16 vs 0.83 s, bench/speed.py section 9);
# a value that drifts below the limit meanwhile changes no sum for a few steps, and is gone before anything is
# evaluated.


class Stopped(Exception):
    """Raised when the progress callback (or a stop_when check) asks to stop; the caller keeps nothing of the run."""


_stop = threading.local()


@contextmanager
def _held(local, value):
    """local.value = value on this thread inside the block, what it was (or None) again after it: the hooks below
    nest, the innermost applying."""
    before = getattr(local, "value", None)
    local.value = value
    try:
        yield
    finally:
        local.value = before


def stop_when(check):
    """While inside, logits() on this thread calls check() before each batch and raises Stopped once it returns
    True, so a whole compress() can be abandoned within one batch (a run computed on speculation gives way to
    one somebody waits for). Other threads are unaffected; the checks nest (the inner one applies)."""
    return _held(_stop, check)


def stop_point():
    """Raise Stopped if this thread is inside stop_when and its check asks to stop (called before each batch)."""
    check = getattr(_stop, "value", None)
    if check is not None and check():
        raise Stopped("stopped: stop_when's check asked for it")


_pace = threading.local()


def paced(fn):
    """While inside, fit() on this thread calls fn("step") before each optimizer step, and logits() fn("batch") before
    each batch: the owner of the thread (the dashboard's training pool) sets its torch threads there, between two
    steps, to what the rest of the process leaves free at that moment. Other threads are unaffected; the innermost fn
    applies."""
    return _held(_pace, fn)


def pace_point(kind):
    """Call paced()'s fn with `kind` ("step": a training step's, "batch": an evaluation batch's), if this thread is
    inside paced."""
    fn = getattr(_pace, "value", None)
    if fn is not None:
        fn(kind)


def has_conv(model):
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


_nhwc = weakref.WeakKeyDictionary()  # model -> whether it runs channels-last (channels_last_ok's verdict)
_copies = weakref.WeakKeyDictionary()  # fast_eval_copy's copies not yet laid out -> (a weak reference to) the original


def fast_eval_copy(model):
    """A copy laid out for fast CPU inference, in eval mode: a conv net's copy holds its weights channels-last once
    channels_last_ok has found (on the first batch it is given, or before, for the model copied) that its forward
    takes that layout."""
    m = copy.deepcopy(model).eval()
    if has_conv(m):
        known = _nhwc.get(model)
        if known is None:
            _copies[m] = weakref.ref(model)
        else:
            _nhwc[m] = known
            if known:
                m.to(memory_format=torch.channels_last)
    return m


def channels_last_ok(model, x):
    """Whether the engine runs `model` on inputs like `x` channels-last (and, in fit() and in fast_eval_copy's
    copies, its weights too): for a conv net on 4-D inputs, if its forward, tried once on two of them, gives the
    same outputs (to float rounding) in that layout as in the default one. A forward written for the default layout,
    such as x.view(x.size(0), -1) after a convolution (the tutorial LeNet's flatten), fails or differs in
    channels-last: such a model runs in the default layout, slower but right. Decided once per model (its
    fast_eval_copy inherits the verdict), by a trial of the model's own forward on 2 of the inputs
    (_probe_channels_last); the model's weights are left in the layout they had (a copy of fast_eval_copy's that
    passes is laid out channels-last)."""
    if not (x.dim() == 4 and x.is_floating_point() and len(x) and has_conv(model)):
        return False
    known = _nhwc.get(model)
    if known is None:
        known = _probe_channels_last(model, x[:2])
        if known is None:  # the default layout fails too: the forward's own error is the caller's to report
            return False
        _nhwc[model] = known
        copied = model in _copies  # one of fast_eval_copy's, whether or not the model it copied is still alive (a
        original = _copies.pop(model, lambda: None)()  # temporary's copy was left in the default layout after a GC)
        if original is not None:
            _nhwc.setdefault(original, known)
        if known and copied:
            with torch.inference_mode(False):
                model.to(memory_format=torch.channels_last)
    return known


_HOOKS = ("_forward_pre_hooks", "_forward_hooks")  # the module dicts of forward hooks a trial leaves out


@contextmanager
def _no_forward_hooks(model):
    """Inside the block, the forward hooks of `model`'s modules are set aside (back after it): a trial forward pass
    of the engine's is not one of the model's, and hooks that record activations or count calls (a user's, a test's)
    see only the real ones."""
    kept = [(m, name, getattr(m, name)) for m in model.modules() for name in _HOOKS]
    for m, name, hooks in kept:
        setattr(m, name, type(hooks)())
    try:
        yield
    finally:
        for m, name, hooks in kept:
            setattr(m, name, hooks)


@contextmanager
def _layouts_kept(model):
    """Inside the block, module.to(memory_format=...) may lay out `model`'s weights as it likes: after it, every
    parameter holds its own tensor again and every buffer is its own again, in the layout the caller gave them (a
    model the user put channels-last stays so)."""
    kept = [(m, name, p, p.data) for m in model.modules() for name, p in m._parameters.items() if p is not None]
    bufs = [(m, name, b) for m in model.modules() for name, b in m._buffers.items() if b is not None]
    try:
        yield
    finally:
        for m, name, p, data in kept:
            p.data = data
            m._parameters[name] = p
        for m, name, b in bufs:
            m._buffers[name] = b


def _probe_channels_last(model, xb):
    """channels_last_ok's trial: model(xb) with weights and inputs in the default layout, then both channels-last,
    in eval mode without gradients (outside any inference mode, so the weights laid out stay ordinary tensors) nor
    forward hooks; whether the two agree, None if the first fails. It runs the model's own forward on these 2 inputs
    (a forward that counts its inputs, or an observer in it, sees them); the weights are left as they were, each in
    the layout it had, and the mode too."""
    was = model.training
    model.eval()
    try:
        with torch.inference_mode(False), torch.no_grad(), _no_forward_hooks(model), _layouts_kept(model):
            model.to(memory_format=torch.contiguous_format)
            try:
                plain = model(xb.contiguous())
            except Exception:  # noqa: BLE001 -- the caller's forward raises it again, with its own message
                return None
            try:
                with channels_last(model):
                    out = model(xb.contiguous(memory_format=torch.channels_last))
            except Exception:  # noqa: BLE001 -- e.g. view() of a channels-last activation: the default layout
                return False
            return (isinstance(out, torch.Tensor) and isinstance(plain, torch.Tensor) and out.shape == plain.shape
                    and bool(torch.allclose(out.float(), plain.float(), rtol=1e-3, atol=1e-4, equal_nan=True)))
    finally:
        model.train(was)


def _trains_channels_last(model, xb):
    """Whether `model`'s forward in train mode runs channels-last (weights and inputs) on `xb`: channels_last_ok
    tries eval mode, and a branch run only while training (an auxiliary head that flattens with view) can fail in
    that layout; fit() then trains in the default one. Tried without gradients nor forward hooks, with the random
    state forked and the buffers (BatchNorm statistics) given back their values, so that training is as without
    it; the weights keep their layout and the model its mode. It is one more call of the model's forward per fit()
    of a conv net (on 2 inputs): a forward that counts its own calls, or has other side effects outside buffers,
    sees it."""
    was = model.training
    saved = [(b, b.clone()) for b in model.buffers()]
    try:
        with torch.random.fork_rng(), torch.inference_mode(False), torch.no_grad(), _no_forward_hooks(model), \
                _layouts_kept(model), channels_last(model):
            model.train()
            model(xb.contiguous(memory_format=torch.channels_last))
        return True
    except Exception:  # noqa: BLE001 -- e.g. view() of a channels-last activation; a forward that fails in the
        return False   # default layout too raises again, with its own message, at fit()'s first step
    finally:
        model.train(was)
        with torch.inference_mode(False), torch.no_grad():
            for b, value in saved:
                b.copy_(value)


def logits(model, x, batch_size=None, progress=None):
    """Model outputs for all of `x`, in batches.

    Conv nets run in batches of 256, channels-last where channels_last_ok (measured on 2 cores: about 2x faster
    than the default layout in batches of 1,000, whose 460 MB of first-layer activations miss every cache).
    progress(done, total) after each batch, in inputs (a ResNet's answers on 60,000 images take a minute);
    returning False from it stops (raises Stopped). The batches, and so the numbers, are the same either way.
    """
    return _outputs(model, x, batch_size, None, progress, given=True)


def predictions(model, x, batch_size=None):
    """The class each output scores highest for all of `x` (argmax over dim 1: one per sample, or one per token or
    pixel), taken batch by batch, so the logits of the whole set are never held at once (with a class per pixel
    they are the largest tensor of a run). The same as logits(model, x).argmax(1)."""
    return _outputs(model, x, batch_size, lambda out: out.argmax(1), given=True)


def answer_of(data):
    """answer(outputs) -> what a model's outputs answer for `data`: the class each scores highest (argmax over dim
    1); for regression targets (data.regression), the outputs in the targets' shape (N, *data.label_shape); for
    multi-label tags (data.multilabel), which tags it finds (logit > 0), (N, C) booleans."""
    if getattr(data, "regression", False):
        return lambda out: out.reshape(len(out), *data.label_shape)
    if getattr(data, "multilabel", False):  # each tag present where its logit is positive (probability > 1/2)
        return lambda out: out > 0
    return lambda out: out.argmax(1)


def answers(model, x, data, batch_size=None, progress=None):
    """What `model` answers for inputs `x` of `data` (answer_of), batch by batch, as predictions() does;
    progress(done, total) after each batch, as for logits() (False: raise Stopped)."""
    return _outputs(model, x, batch_size, answer_of(data), progress)


def eval_batch_size(model, batch_size=None):
    """The inputs of each batch logits() and answers() feed `model`: `batch_size` if given, else 256 for a conv net,
    1,000 for any other model."""
    return batch_size or (256 if has_conv(model) else 1000)


def eval_steps(model, n, batch_size=None):
    """How many batches logits() and answers() run `model` on for `n` inputs: how many progress(done, total) reports
    they make (compress() counts each as a step of its progress)."""
    return len(range(0, n, eval_batch_size(model, batch_size)))


def batch_progress(report, steps):
    """A progress(done, n) for an evaluation's batches (logits(), answers()) that reports them as `steps` steps of a
    longer run: report(step, steps, None, None) after each batch (a batch a step, the last one at `steps`), and
    returns its answer, so a False from it stops the evaluation (Stopped). None without a `report`. compress(),
    distill() and fit_budget count their evaluations with it."""
    if report is None:
        return None
    batches = [0]

    def progress(done, n):
        batches[0] += 1
        return report(steps if done >= n else min(batches[0], steps), steps, None, None)
    return progress


def batches(model, x, batch_size=None):
    """The batches logits() feeds `model`: 256 images for a conv net, laid out channels-last if channels_last_ok,
    else 1,000 (or batch_size; eval_batch_size), each yielded after stop_when's check, which raises Stopped once it
    asks to stop. Inputs that are not 4-D (flat rows or token ids a forward reshapes for its convs) keep their
    layout."""
    batch_size = eval_batch_size(model, batch_size)
    nhwc = channels_last_ok(model, x)
    for i in range(0, len(x), batch_size):
        stop_point()
        pace_point("batch")
        xb = x[i:i + batch_size]
        yield xb.contiguous(memory_format=torch.channels_last) if nhwc else xb


@torch.inference_mode()
def _outputs(model, x, batch_size, keep, progress=None, given=False):
    """logits() and predictions(): keep(output) of each batch (the output itself if keep is None), concatenated;
    progress(done, total) after each batch (False: raise Stopped). No inputs give no rows of the output of one
    all-zero input, so its shape and dtype are the model's (a forward of zero rows fails in models that reshape by
    x.size(0), such as view(x.size(0), -1)).

    given=True for a caller's inputs (the public logits() and predictions()): they are converted as a Dataset keeps
    them (data.as_inputs: numpy arrays, float64, ...), and a model that fails on the first batch raises ModelError
    naming the inputs' shape."""
    if given:
        x = as_inputs(x)
    was_training = model.training
    model.eval()
    outs, done = [], 0
    try:
        if not len(x):  # the output's shape and dtype from one zero input (ids: 0, a valid one), none of its rows
            out = model(torch.zeros((1, *x.shape[1:]), dtype=x.dtype))
            return (out if keep is None else keep(out))[:0]
        for xb in batches(model, x, batch_size):
            out = _first_forward(model, xb) if given and not outs else model(xb)
            outs.append(out if keep is None else keep(out))
            done += len(xb)
            if progress is not None and progress(done, len(x)) is False:
                raise Stopped("computing the model's outputs stopped by the user")
    finally:
        model.train(was_training)
    return torch.cat(outs) if len(outs) > 1 else outs[0]


def _first_forward(model, x):
    """model(x) on the first batch of a caller's inputs; ModelError naming their shape (and the fix) if it fails."""
    try:
        return model(x)
    except Exception as e:  # any failure of the user's forward on the user's inputs
        ids = "" if x.is_floating_point() else f"; {IDS_HINT}"
        raise ModelError(f"{type(model).__name__} fails on inputs of shape {tuple(x.shape)} ({type(e).__name__}: "
                         f"{str(e)[:200]}): give a batch (N, *input_shape) as the model takes it (for one sample x, "
                         f"give x[None]){ids}") from None


def median_forward_ms(model, batch, repeats=20, warmup=3):
    """Median wall time (ms) of model(batch) in inference mode, after `warmup` warm-up calls."""
    with torch.inference_mode():
        for _ in range(warmup):  # allocations, packed-weight caches
            model(batch)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(batch)
            times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def forward_ms_in_turns(models, batch, repeats=20, seconds=None):
    """Wall times (ms) of each model(batch) in inference mode, timed in turns: a call of each model in order,
    `repeats` times, after one warm-up call of each (allocations, packed weights), which also sizes the turns: with
    `seconds`, models too slow for `repeats` turns in about that long get fewer, at least 3 (never more than
    `repeats`). A load that comes and goes on a shared machine then falls on every model alike; timing one model's
    calls, then the other's, put a passing load on one side only. -> one list of times per model, in order."""
    times = [[] for _ in models]
    with torch.inference_mode():
        t0 = time.perf_counter()
        for m in models:
            m(batch)
        if seconds is not None:
            repeats = min(repeats, max(3, int(seconds / max(time.perf_counter() - t0, 1e-9))))
        for _ in range(repeats):
            for m, kept in zip(models, times):
                t = time.perf_counter()
                m(batch)
                kept.append(1000 * (time.perf_counter() - t))
    return times


RECALIBRATION_INPUTS = 1024  # training inputs recalibrate_batchnorm averages over (8 batches of 128)


@torch.no_grad()
def recalibrate_batchnorm(model, x, inputs=RECALIBRATION_INPUTS, batch_size=128, seed=0):
    """Re-estimate the running mean and variance of every BatchNorm of `model` (in place) from `inputs` of `x`, drawn
    by `seed`: the plain average over those batches (momentum None). After structured pruning removed channels,
    what each BatchNorm sees has changed and its statistics from training no longer fit; recomputing them is the
    adaptive BatchNorm of EagleEye (Li et al., ECCV 2020); bench/structured.py measures what it restores before any
    fine-tuning. Nothing else changes (dropout stays off, no weight moves); a model without a BatchNorm that tracks
    statistics gets no forward pass. Returns how many BatchNorms were recalibrated."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    chunks = [c for c in torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:inputs]
              .split(batch_size) if len(c) > 1]  # a BatchNorm cannot take the statistics of one input
    if not norms or not chunks:
        return 0
    was, momenta = model.training, [m.momentum for m in norms]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    try:
        for c in chunks:
            model(x[c])
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was)
    flush_tiny_([t for m in norms for t in (m.running_mean, m.running_var)])
    return len(norms)


def match_rate(pred, other, y):
    """Share of the scored labels (those of `y` that are not IGNORE) at which `pred` equals `other`: the accuracy
    when `other` is `y`, the agreement with another model when it is that model's predictions. Labels are one per
    sample or one per position (token, pixel): every scored position counts once. The one definition of both."""
    same = pred == other
    scored = y != IGNORE
    if not bool(scored.all()):
        same = same[scored]
    return same.float().mean().item()


def mean_iou(pred, y):
    """Mean over classes of intersection / union of the predicted and the labelled positions, on the scored labels
    (segmentation's usual score, which the commonest class cannot dominate as it does accuracy). Classes that
    neither the labels nor the predictions hold are left out, as scikit-learn's jaccard_score(average="macro")
    does."""
    scored = y != IGNORE
    p, t = pred[scored].long(), y[scored].long()
    k = int(max(p.max(), t.max())) + 1
    confusion = torch.bincount(t * k + p, minlength=k * k).reshape(k, k).double()
    hits = confusion.diagonal()
    union = confusion.sum(0) + confusion.sum(1) - hits
    return float((hits[union > 0] / union[union > 0]).mean())


def r2_score(pred, y):
    """Coefficient of determination of regression predictions: 1 - (sum of squared errors) / (sum of squares about
    the mean), per target value (trailing dims), averaged over them; a target constant on the set scores 1 if
    predicted exactly, else 0. scikit-learn's r2_score (multioutput="uniform_average", force_finite=True)."""
    p, t = pred.reshape(len(pred), -1).double(), y.reshape(len(y), -1).double()
    sse = ((t - p) ** 2).sum(0)
    sst = ((t - t.mean(0)) ** 2).sum(0)
    r2 = torch.where(sst > 0, 1 - sse / sst.clamp_min(1e-300), (sse == 0).double())
    return float(r2.mean())


def exact_match(pred, y):
    """Share of samples whose every label is predicted right (scikit-learn's accuracy_score on multi-label
    indicator arrays, 'subset accuracy')."""
    return float((pred == y).reshape(len(y), -1).all(1).float().mean())


def rmse(pred, y):
    """Root mean squared error of regression predictions over every target value."""
    return float(((pred.double() - y.double()) ** 2).mean().sqrt())


def mse(out, y):
    """Regression training loss: mean squared error of the outputs, reshaped to the targets' shape, against them."""
    return F.mse_loss(out.reshape(y.shape), y)


def task_loss(data):
    """fit()'s default loss for `data`, loss(outputs, batch_indices, y): cross-entropy for class labels, mean
    squared error for regression targets, binary cross-entropy of each tag's logit for multi-label tags."""
    if getattr(data, "regression", False):
        return lambda out, idx, yb: mse(out, yb)
    if getattr(data, "multilabel", False):
        return lambda out, idx, yb: F.binary_cross_entropy_with_logits(out, yb.to(out.dtype))
    return lambda out, idx, yb: cross_entropy(out, yb)


def score(pred, y, data):
    """The one number a progress report gives after an epoch, for answers `pred` (answers()) to targets `y` of `data`:
    accuracy (for multi-label tags, over every tag of every sample), or R² for regression data."""
    return r2_score(pred, y) if getattr(data, "regression", False) else match_rate(pred, y, y)


def cross_entropy(out, y):
    """torch's cross-entropy, averaged over the scored labels; 0 (not NaN) for a batch whose labels are all
    IGNORE (padding only), so such a batch gives no gradient rather than NaN weights."""
    if not bool((y != IGNORE).any()):
        return out.sum() * 0.0
    return F.cross_entropy(out, y)


def accuracy(model, x, y, batch_size=None):
    return match_rate(predictions(model, x, batch_size), y, y)


def cosine_lr(step, total, base, warmup=100):
    """Linear warm-up then cosine decay to zero."""
    if step < warmup:
        return base * (step + 1) / warmup
    return 0.5 * base * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def crop_flip(pad=2, flip=True):
    """Augmentation for image batches (N, C, H, W): a random H x W crop of the zero-padded image (shifts of up
    to `pad` pixels) and (flip=True) a horizontal flip with probability 1/2, per image, drawn from fit()'s
    seeded generator."""
    def transform(x, gen):
        n, c, h, w = x.shape
        xp = F.pad(x, (pad, pad, pad, pad))
        dy, dx = (torch.randint(0, 2 * pad + 1, (n, 1), generator=gen) for _ in range(2))
        rows = (dy + torch.arange(h))[:, None, :, None]
        cols = (dx + torch.arange(w))[:, None, None, :]
        out = xp[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]
        if not flip:
            return out
        flipped = torch.rand(n, generator=gen) < 0.5
        return torch.where(flipped[:, None, None, None], out.flip(-1), out)
    return transform


@contextmanager
def flush_denormal():
    """Inside the block, this thread's CPU flushes subnormal results to zero and reads subnormal inputs as zero
    (torch.set_flush_denormal; off again after it, torch's default). flush_tiny_ keeps the weights clear of
    them, but late in training gradients get that small too: a confident prediction's gradient (~1e-30)
    times a small activation is subnormal. It covers the calling thread only, which is every thread of a
    1-thread run (the training queue's and the benches'); torch's worker threads keep the default."""
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


@contextmanager
def channels_last(model, on=True):
    """Hold `model` in channels-last layout inside the block (if on), the default layout again after it:
    convolutions train 1.7x faster so on CPU (LeNet-5: 14.6 vs 24.9 CPU s an epoch at 1 thread), and what
    encode() sees afterwards is unchanged."""
    if on:
        model.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        if on:
            model.to(memory_format=torch.contiguous_format)


def batch_bounds(n, batch_size):
    """(start, stop) of each of fit()'s batches over `n` training samples: `batch_size` at a time, except that a
    last batch of one sample joins the one before it (a BatchNorm cannot take the statistics of one input, and
    merging drops no sample). The one rule for how many steps an epoch takes: len(batch_bounds(n, batch_size))."""
    starts = list(range(0, n, batch_size)) + [n]
    if len(starts) > 2 and starts[-1] - starts[-2] == 1:
        del starts[-2]
    return list(zip(starts, starts[1:]))


def train_steps(data, epochs, batch_size=BATCH):
    """The optimizer steps of `epochs` of fit() over data's training split, `batch_size` at a time (batch_bounds):
    what its progress counts to."""
    return epochs * len(batch_bounds(len(data.y("train")), batch_size))


def check_trainable(model, data):
    """Refuse, before any step, to train a model with a BatchNorm on a training split of one sample: in training
    mode a BatchNorm takes each batch's statistics, which one input does not have."""
    n = len(data.y("train"))
    norm = next((name for name, m in model.named_modules() if isinstance(m, NORMS)), None)
    if n == 1 and norm is not None:
        raise DatasetError(f"{getattr(data, 'name', 'the data')}: the training split holds 1 sample, but the model's "
                           f"BatchNorm {norm!r} needs at least 2 inputs a batch to train: give at least 2 training "
                           f"samples, or a recipe without training epochs")


def frozen_norms(model):
    """The BatchNorm (and InstanceNorm with running statistics) layers of `model` whose parameters are all frozen
    (requires_grad=False, as in a pretrained backbone): fit() runs them in eval mode, so their running statistics stay
    as given, like their parameters. A norm layer without parameters (affine=False) is not frozen by this rule."""
    out = []
    for m in model.modules():
        own = list(m.parameters(recurse=False))
        if isinstance(m, nn.modules.batchnorm._NormBase) and own and not any(p.requires_grad for p in own):
            out.append(m)
    return out


def adam(params, **kw):
    """torch.optim.Adam, fused into one kernel a parameter where torch has that for these parameters (floating point,
    on the CPU here): the unfused one reads and writes each parameter's moments in five passes a step, which took a
    third of LeNet-300-100's fine-tuning epoch at one thread (bench/speed.py's epoch rows). The same update, rounded
    differently in the last bit."""
    try:
        return torch.optim.Adam(params, fused=True, **kw)
    except (RuntimeError, ValueError):  # a device or dtype torch has no fused Adam for
        return torch.optim.Adam(params, **kw)


PRECISIONS = ("float32", "bfloat16")  # Recipe.precision: fit()'s number format for matrix products and convolutions


def native_bfloat16():
    """Whether this CPU multiplies bfloat16 matrices in hardware (Intel AMX), where precision="bfloat16" trains
    faster: LeNet-5's fine-tuning epoch took 7.3 s instead of 12.9 at one thread here (bench/speed.py). Elsewhere
    it is emulated, and slower than float32."""
    try:
        return bool(torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):  # a torch without the check
        return False


def prepare_training():
    """Import what a process's first torch optimizer imports (torch._dynamo: 0.86 s here, once per process), so that
    the first fine-tune started later does not wait for it."""
    import torch._dynamo  # noqa: F401


def fit(model, data, epochs=1, lr=1e-3, batch_size=BATCH, weight_decay=0.0, seed=0,
        loss_fn=None, progress=None, on_step=None, report_every=50, warmup=100, momentum=None, transform=None,
        precision="float32", on_evaluated=None):
    """Train `model` on data's training split (Adam or SGD, warm-up + cosine schedule); returns the loss history.

    momentum=None trains with Adam; a number, with SGD and that Nesterov momentum (the usual recipe
    for BatchNorm CNNs). transform(x_batch, generator) -> x_batch augments each training batch
    (e.g. crop_flip()), drawing from the run's seeded generator.
    loss_fn(model_logits, batch_indices, y) -> loss (default task_loss(data): cross-entropy, mean squared error for
    regression targets, binary cross-entropy for multi-label tags; distillation passes its KD loss).
    progress(step, total, loss, accuracy) is called after the first step, every `report_every` steps, whenever
    REPORT_SECONDS have passed since the last call (accuracy None; a large model's 50 steps take a minute), and at
    the end of each epoch (accuracy on the test set, R² for regression); while that test-set evaluation runs (minutes
    for a big model), at its batches every REPORT_SECONDS from its start, as (step, total, None, None); if it
    returns False the run raises Stopped.
    on_step(step, total) runs before each optimizer step's forward pass (gradual pruning uses it).
    on_evaluated(answers) receives each epoch-end evaluation's answers on the test set (answers(); with progress only),
    so a caller can reuse the last one for weights that did not change after it (compress() does).
    precision="bfloat16" runs the forward pass under torch.autocast to bfloat16 (mixed precision: the matrix products
    and convolutions, and their gradients, in bfloat16; the weights, the loss and the optimizer's state in float32);
    evaluations stay float32.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}: one of {', '.join(PRECISIONS)}")
    mixed = precision == "bfloat16"
    x, y = data.x("train"), data.y("train")
    nhwc = channels_last_ok(model, x) and _trains_channels_last(model, x[:2])
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = (adam(params, lr=lr, weight_decay=weight_decay) if momentum is None else
           torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=True, weight_decay=weight_decay))
    check_trainable(model, data)
    bounds = batch_bounds(len(x), batch_size)
    steps_per_epoch = len(bounds)
    total = epochs * steps_per_epoch
    loss_fn = loss_fn or task_loss(data)
    history, step = [], 0
    reported = time.monotonic()
    frozen = frozen_norms(model)
    with channels_last(model, nhwc), flush_denormal():
        for epoch in range(epochs):
            model.train()
            for m in frozen:  # a frozen backbone's BatchNorm keeps its statistics as well as its parameters
                m.eval()
            order = torch.randperm(len(x), generator=gen)
            for start, stop in bounds:
                idx = order[start:stop]
                xb, yb = x[idx], y[idx]
                if transform:
                    xb = transform(xb, gen)
                if nhwc:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                if on_step:
                    on_step(step, total)
                pace_point("step")
                for g in opt.param_groups:
                    g["lr"] = cosine_lr(step, total, lr, min(warmup, total // 10))
                with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=mixed):
                    out = model(xb)
                loss = loss_fn(out.float() if mixed else out, idx, yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                if step % FLUSH_EVERY == 0:
                    flush_tiny_(params)
                history.append(loss.item())
                if progress and step < total and (step == 1 or step % report_every == 0
                                                  or time.monotonic() - reported >= REPORT_SECONDS):
                    reported = time.monotonic()
                    if progress(step, total, history[-1], None) is False:
                        raise Stopped("stopped by the user")
            flush_tiny_(params)  # every epoch ends clean: its evaluation, and the weights fit() returns
            if progress:
                def alive(_done, _total):  # the evaluation's batches: (step, total, None, None) every REPORT_SECONDS
                    nonlocal reported
                    if time.monotonic() - reported >= REPORT_SECONDS:
                        reported = time.monotonic()
                        return progress(step, total, None, None)
                reported = time.monotonic()  # counted from its start: a quick evaluation adds no report
                pred = answers(model, data.x("test"), data, progress=alive)
                if on_evaluated:
                    on_evaluated(pred)
                acc = score(pred, data.y("test"), data)
                if progress(step, total, history[-1], acc) is False:  # also after the last epoch: later
                    raise Stopped("stopped by the user")                # stages of a recipe must not start
    model.eval()
    return history
