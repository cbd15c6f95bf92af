"""compress(): the one chain every page, script and benchmark runs, on any nn.Module and any classification data.

    [distil teacher -> student] -> prune -> [fine-tune] -> cluster | quantize -> [fine-tune] -> encode -> metrics

Each technique is one module (distill, prune, cluster, quantize) that owns its stage: `active(recipe)`,
`epochs(recipe)` and `apply(model, recipe, ctx)`. compress() runs the active ones in order. Each
fine-tuning stage keeps the constraints of the stages before it (torch parametrizations): pruned
weights stay zero, clustered weights stay on their (trained) centroids, quantized weights stay on
their grid. The artifact holds the model's complete state dict; its length is the size, and decoding
it gives the exact final tensors.
"""

import contextlib
import copy
import hashlib
import math
import statistics
import time
import weakref
from dataclasses import dataclass, field

import torch

from . import chance, cluster, distill, flops, prune, quantize, structured
from . import encode as artifact_format
from .encode import Affine, Codebook, breakdown_and_codings, encode
from .data import IGNORE, check_dataset
from .errors import CompressError, ModelError, RecipeError, warn
from .fold import deployed, foldable_pairs
from .model import (artifact_meta, check_model, compressible, constrained, fits_logits, logits_shape, param_count,
                    plain_module, state_bytes, student_mlp)
from .recipe import Recipe
from .train import (BATCH, answer_of, answers, batch_progress, channels_last_ok, eval_steps, exact_match,
                    fast_eval_copy, fit, forward_ms_in_turns, logits, match_rate, mean_iou, median_forward_ms, r2_score,
                    Stopped, rmse, train_steps)

STAGES = (distill, prune, cluster, quantize)
def progress_steps(model, recipe, data, student=None, model_logits=None, evaluate=True):
    """What compress(model, recipe, data, student, model_logits=model_logits, evaluate=evaluate)'s progress counts to
    (its `total`): the batches of its evaluations (train.eval_steps) and the optimizer steps of its training
    (train_steps), in the order they run (_step_counts). A caller that reports several compress() runs as one count
    (fit_budget, fit_flops) adds these up."""
    return sum(_step_counts(plain_module(model), recipe, data, plain_module(student), model_logits or {}, evaluate))


def _step_counts(model, r, data, student, given, evaluate):
    """compress()'s progress steps, part by part, in order: (the dense model's test-set evaluation, none with
    model_logits["test"]; the dense model's training-set outputs for finetune_kd, none with model_logits["train"];
    the training stages' steps, summed, with the batches of distillation's teacher answers on the training set; the
    compressed model's test-set evaluation). An evaluation counts a step a
    batch of the model that runs it: the input model, or after distillation the student. A dense reference already
    computed (reference()'s cache) is counted all the same: the count then jumps over it."""
    n_test, n_train = len(data.y("test")), len(data.y("train"))
    dense = eval_steps(model, n_test) if evaluate and "test" not in given else 0
    teacher = (eval_steps(model, n_train)
               if r.finetune_kd is not None and r.finetune_epochs and "train" not in given else 0)
    # distillation's teacher answers every training input first (none with model_logits["train"], none at alpha=0)
    training = sum(train_steps(data, s.epochs(r)) for s in STAGES if s.active(r)) + (
        distill.teacher_steps(model, data, r.alpha, given.get("train")) if distill.active(r) else 0)
    # the compressed model: the input model's layers (pruned, shared), or a student's; the default student is an MLP,
    # batched as a model without convolutions (an empty one stands for it)
    final = model if r.temperature is None else student if student is not None else torch.nn.Sequential()
    return dense, teacher, training, eval_steps(final, n_test) if evaluate else 0


@dataclass
class Result:
    model: torch.nn.Module      # the compressed model (weights exactly as decoded from `artifact`)
    metrics: dict               # deterministic numbers: parameters, bytes, ratio, accuracy, per layer
    artifact: bytes             # encode()d state dict + architecture + recipe; len(artifact) is the size
    recipe: Recipe
    history: dict = field(default_factory=dict)   # stage -> list of training losses
    timings: dict = field(default_factory=dict)   # wall-clock seconds per stage (not deterministic)
    grids: dict = field(default_factory=dict)     # tensor name -> encode.Codebook / Affine the artifact used

    def __repr__(self):
        """One short line (the dataclass's repr printed every metric, 8,000-14,000 characters for a 5k-parameter
        model): the score against the dense model's, the bytes and ratio, the recipe's non-default fields.
        Result(accuracy 0.8912 (dense 0.8974), 21,470 bytes (dense 1,066,800: 49.7x), Recipe(sparsity=0.9))"""
        m = self.metrics
        name = "accuracy" if m.get("accuracy") is not None or "r2" not in m else "r2"
        dense = m.get(f"dense_{name}")
        score = (f"{name} not evaluated" if m.get(name) is None else
                 f"{name} {m[name]:.4f}" + ("" if dense is None else f" (dense {dense:.4f})"))
        changes = self.recipe.changes()
        if changes.get("layers"):  # per-layer settings (fit_budget's name every layer): how many, not each
            changes["layers"] = f"<{len(changes['layers'])} layers>"
        fields_ = ", ".join(f"{k}={v}" if k == "layers" else f"{k}={v!r}" for k, v in changes.items())
        ratio = f"{m['ratio']:,.1f}x" if m["ratio"] >= 1 else f"{m['ratio']:.2f}x"
        size = f"{m['artifact_bytes']:,} bytes (dense {m['dense_bytes']:,}: {ratio})"
        return f"Result({score}, {size}, Recipe({fields_}))"


# --- dense reference, computed once per (model, dataset) ----------------------------------------

_reference = weakref.WeakKeyDictionary()


def reference(model, data, progress=None):
    """Predictions and accuracy of the uncompressed `model` on the test set (cached per model object and state); for
    regression data, its outputs (answers()) and None.

    compress() never changes its input, but its caller may: train the same object more, or load_state_dict another
    checkpoint into it. The cache was then stale, and the dense accuracy and agreement were the old weights'; each
    hit is checked against weights_state(model), a digest of its weights, so a model changed in place is evaluated
    again. progress(done, total) after each batch of an evaluation (as logits(); none for a cached one); False stops it
    (train.Stopped), and nothing is cached.
    """
    check_dataset(data)
    state = weights_state(model)
    hit = _reference.get(model)
    if hit is None or hit[0] is not data or hit[3] != state:
        pred = answers(fast_eval_copy(model), data.x("test"), data, progress=progress)
        hit = (data, pred, None if data.regression else match_rate(pred, data.y("test"), data.y("test")), state)
        _reference[model] = hit
    return hit[1], hit[2]


def weights_state(model):
    """A digest of `model`'s state dict: its names, dtypes, shapes and bytes. Identity and torch's version counter
    would miss writes through .data, NumPy views and torch.nn.utils.vector_to_parameters, so the bytes are read:
    a few ms for the sample models, against the tens of ms or more of the evaluation it saves."""
    h = hashlib.blake2b(digest_size=16)
    for k, t in model.state_dict().items():
        t = t.detach()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy().data if t.numel() else b"")
    return h.digest()


def dense_reference(model, data, model_logits=None, progress=None):
    """reference(model, data, progress), or the same read off model_logits["test"] (the model's own test-set outputs,
    e.g. the zoo's kept_test_logits) without running the model: (answers, accuracy)."""
    if model_logits and "test" in model_logits:
        pred = answer_of(data)(model_logits["test"])
        return pred, None if data.regression else match_rate(pred, data.y("test"), data.y("test"))
    return reference(model, data, progress)


# --- what the stages share ----------------------------------------------------------------------

class _Progress:
    """Turns each stage's (step, total), and each evaluation's batches, into one count over the whole run for the
    caller."""

    def __init__(self, callback, total):
        self.callback, self.total, self.done = callback, total, 0

    def stage(self, steps):
        if self.callback is None:
            return None
        offset = self.done
        self.done += steps

        def report(step, _total, loss, acc):
            return self.callback(offset + step, self.total, loss, acc)
        return report

    def evaluation(self, steps):
        """A progress(done, total) for an evaluation's batches (logits(), answers()) counted as the next `steps` of
        the run: the caller hears (step, total, None, None) after each batch, the last one at the evaluation's last
        step; False from it stops the evaluation (train.Stopped). None without a callback."""
        return batch_progress(self.stage(steps), steps)


@dataclass
class Context:
    """What one compress() run's stages share: the data, the progress count, and what earlier stages
    leave for later ones (pruning masks; the codebooks or grids the encoder needs)."""
    recipe: Recipe
    data: object
    tracker: _Progress
    example: torch.Tensor                 # a few test inputs (structured pruning traces shapes with them)
    student: torch.nn.Module | None = None
    model_logits: dict = field(default_factory=dict)  # the input model's outputs per split, if the caller has them
    masks: dict | None = None
    grids: dict = field(default_factory=dict)
    history: dict = field(default_factory=dict)
    teacher_logits: torch.Tensor | None = None  # the uncompressed model on the training inputs (finetune_kd)
    scored: tuple | None = None  # the last training's last test-set answers, and a copy of the weights they are of

    @contextlib.contextmanager
    def scoring(self, model):
        """Around a training run of `model` (a fine-tuning, distillation): yields an on_evaluated for fit(); on exit,
        keeps the last answers it got with a copy of `model`'s weights as they are then (answers_of)."""
        self.scored, last = None, {}
        yield lambda pred: last.update(pred=pred)
        if last:
            self.scored = (last["pred"], {k: v.detach().clone() for k, v in model.state_dict().items()})

    def answers_of(self, model):
        """The last training's answers on the test set if `model` holds exactly the weights that training ended with
        (the same names, shapes and values), else None: compress() then need not evaluate it again. Any change
        after it (clustering, quantization, a fold that changes the weights, biases on a grid) makes it evaluate."""
        if self.scored is None:
            return None
        pred, kept = self.scored
        state = model.state_dict()
        same = state.keys() == kept.keys() and all(torch.equal(state[k].detach(), v) for k, v in kept.items())
        return pred if same else None

    def steps(self, epochs):
        return train_steps(self.data, epochs)

    def finetune(self, model, parametrizations, stage, on_step=None, freeze_original=False):
        """recipe.finetune_epochs of training with the given constraints held (nothing if 0 epochs)."""
        r = self.recipe
        if not r.finetune_epochs:
            return
        progress = self.tracker.stage(self.steps(r.finetune_epochs))
        t = self.teacher_logits
        loss_fn = None if t is None else (lambda out, idx, y: distill.kd_loss(out, t[idx], y, r.finetune_kd, r.alpha))
        # scoring's copy is taken once the parametrizations are baked in: the weights the last evaluation ran
        with self.scoring(model) as on_evaluated, constrained(model, parametrizations, freeze_original):
            self.history[stage] = fit(model, self.data, r.finetune_epochs, lr=r.lr, batch_size=BATCH, seed=r.seed,
                                      progress=progress, on_step=on_step, loss_fn=loss_fn, precision=r.precision,
                                      on_evaluated=on_evaluated)


# --- the chain --------------------------------------------------------------------------------

def _check_inputs(model, recipe, data, student):
    """Everything compress() cannot handle is refused here, before any work (check_recipe(), the one check), and a
    student no smaller than its teacher is warned of."""
    check_recipe(model, recipe, data, student)
    if recipe.temperature is not None:
        warn_if_not_smaller(model, student, recipe, data)
    return recipe


def check_targets(recipe, data):
    """A temperature or finetune_kd on regression targets, which have no class probabilities, is refused."""
    distilling = recipe.temperature is not None
    if getattr(data, "regression", False) and (distilling or recipe.finetune_kd is not None):
        which = "temperature" if distilling else "finetune_kd"
        raise RecipeError(f"recipe.{which} softens a teacher's class probabilities, but {data.name!r} holds "
                          f"regression targets, which have none: leave {which} unset (fine-tuning then follows the "
                          f"targets)")


def check_recipe(model, recipe, data, student=None):
    """Refuse, before any work, what compress(model, recipe, data, student) would refuse, with what to do instead;
    None when it would start. The very checks compress() runs first (no evaluation, no training, so it is quick):
    the recipe and data types, the recipe against the targets (check_targets), the model (and a student) against
    the data (check_model: one forward pass on two test inputs), a student it can distil into, per-layer settings
    that name the compressed model's layers, and with recipe.structured the structured pruning itself (the model
    is traced and a pruned copy must still run). Raises the error compress() would: ModelError, DatasetError,
    RecipeError (all CompressError)."""
    model, student = plain_module(model), plain_module(student)
    if not isinstance(recipe, Recipe):
        raise CompressError(f"recipe must be a compress_engine.Recipe, got {type(recipe).__name__}")
    check_dataset(data)
    distilling = recipe.temperature is not None
    check_targets(recipe, data)
    check_model(model, data, "teacher model" if distilling else "model", stored=not distilling)
    if distilling and student is None and not data.x("test").is_floating_point():
        raise CompressError(f"the default student is an MLP of recipe.student_width over float inputs, but "
                            f"{data.name!r} has integer inputs ({data.x('test').dtype}, e.g. token ids): pass "
                            f"student= a module that takes them (one that starts with an nn.Embedding)")
    per_position = getattr(data, "label_shape", ()) and not getattr(data, "multilabel", False)
    if distilling and student is None and per_position:
        raise CompressError(f"the default student is an MLP that gives one prediction per sample, but {data.name!r} "
                            f"has a label per position (labels {tuple(data.label_shape)} per sample): pass student= "
                            f"a module that returns {logits_shape(data)} logits")
    if student is not None:
        if not distilling:
            raise CompressError("a student module was given but recipe.temperature is None: set a temperature "
                                "to distil the model into the student, or leave student=None")
        check_model(student, data, "student")
        distill.check_widths(model, student, data, recipe.alpha)  # kd_loss matches their logits class by class
    learner = student if distilling else model  # None: the default student, made trainable
    if ((distilling or recipe.finetune_epochs) and learner is not None
            and not any(p.requires_grad for p in learner.parameters())):
        which, what = ("student", "distillation") if distilling else ("model", f"finetune_epochs={recipe.finetune_epochs}")
        raise RecipeError(f"every parameter of the {which} is frozen (requires_grad=False), so {what} has nothing to "
                          f"train: unfreeze the layers that should learn (requires_grad_(True))"
                          + ("" if distilling else ", or set finetune_epochs=0"))
    if recipe.layers:  # per-layer overrides must name the compressed model's layers
        target = student if distilling and student is not None else model
        known = compressible(target) if not distilling or student is not None else None
        unknown = [n for n, _, _ in recipe.layers if known is not None and n not in known]
        if unknown:
            raise RecipeError(f"layers names {', '.join(map(repr, unknown[:3]))}, not a compressible weight of the "
                              f"model; its layers are: {', '.join(list(known)[:12])}")
    pruned = None
    if recipe.structured and recipe.prunes() and (student is not None or not distilling):  # traceable? layers known?
        pruned = structured.prune_structured(student if distilling else model, recipe.sparsity, data.x("test")[:2],
                                             amounts=structured.weight_amounts(recipe.layer_sparsities()))  # runs?
    check_artifact_limit(recipe, data, student if distilling else model, pruned, teacher=model)


def default_student(recipe, data, teacher):
    """The MLP student compress() builds without a student module (distill.apply's), on the meta device: counted
    without allocating its weights, with the teacher's classes as its outputs."""
    outputs = distill.output_classes(teacher, data)
    with torch.device("meta"):
        return student_mlp(recipe.student_width, data, outputs=outputs)


def check_artifact_limit(recipe, data, target, pruned=None, teacher=None):
    """Refuse, before any work, a model whose state the artifact format cannot hold (encode.fits_limits: at most
    encode.MAX_ELEMENTS numbers in all), which encode() would refuse only after pruning and fine-tuning. `target` is
    the model compress() compresses (the student when distilling; None: the default student), `pruned` its
    structured-pruned copy when the recipe prunes units: the artifact holds that smaller model, so a recipe whose
    structured pruning brings the model under the cap goes through. A default student that structured pruning
    shrinks after distillation is not checked here (encode() still refuses it). `teacher`: the model distilled from
    (the default student scores its classes)."""
    if target is None:
        if recipe.structured and recipe.prunes():
            return
        target = default_student(recipe, data, teacher)
    module = target if pruned is None else pruned
    if artifact_format.fits_limits(t.shape for t in module.state_dict().values()):
        return
    module = deployed(module)  # BatchNorms folded, as compress() encodes the model: fewer tensors
    shapes = {k: tuple(t.shape) for k, t in module.state_dict().items()}
    if artifact_format.fits_limits(shapes.values()):
        return
    cap, ndim = artifact_format.MAX_ELEMENTS, artifact_format.MAX_NDIM
    deep = [k for k, shape in shapes.items() if len(shape) > ndim]
    if deep:
        raise ModelError(f"tensor {deep[0]!r} has {len(shapes[deep[0]])} dimensions; the artifact format holds at most "
                         f"{ndim} per tensor (encode.MAX_NDIM), so compress() could not write it: reshape it to "
                         "fewer dimensions")
    n = sum(math.prod(shape) for shape in shapes.values())
    which = "the student" if recipe.temperature is not None else "the model"
    if pruned is not None:
        raise RecipeError(f"structured pruning at sparsity={recipe.sparsity} leaves {which} {n:,} numbers (parameters "
                          f"and buffers), more than {cap:,}, the artifact format's cap on the numbers an artifact "
                          f"holds (encode.MAX_ELEMENTS), so compress() could not write it: remove more units (a "
                          f"higher sparsity; a layer the recipe keeps whole with layers= counts in full)")
    raise ModelError(f"{which} holds {n:,} numbers (parameters and buffers), more than {cap:,}, the artifact format's "
                     f"cap on the numbers an artifact holds (encode.MAX_ELEMENTS), so compress() would fail at its "
                     f"last step, after pruning and fine-tuning: unstructured pruning, clustering and quantization "
                     f"keep every tensor's shape, so they cannot bring it under; structured pruning "
                     f"(Recipe(structured=True, sparsity=...)) removes whole units and can, or distil it into a "
                     f"smaller student (a temperature, with student= or student_width)")


def warn_if_not_smaller(teacher, student, recipe, data):
    """A UserWarning when the student has no fewer parameters than its teacher, which distillation then does not
    shrink (the default 800-800 MLP student is 1.3 M parameters on 28x28 images, more than many a model given)."""
    which = "the student given"
    if student is None:
        which = f"the default student, an MLP of recipe.student_width={recipe.student_width},"
        student = default_student(recipe, data, teacher)
    # both as deployed (BatchNorms folded), as metrics["params"] and ["dense_params"] count them
    n_student, n_teacher = param_count(deployed(student)), param_count(deployed(teacher))
    if n_student >= n_teacher:
        warn(f"{which} has {n_student:,} parameters, no fewer than the teacher's {n_teacher:,}: distilling into it "
             "makes the model bigger; give a smaller student (student=, or student_width; --student-width on the "
             "command line)", UserWarning)


def _check_logits(model_logits, data):
    """model_logits: None or {"train"/"test": float tensor (len(split), >= n_classes, *label_shape)}; returns a dict."""
    if model_logits is None:
        return {}
    if not isinstance(model_logits, dict) or not set(model_logits) <= {"train", "test"}:
        raise CompressError("model_logits must be a dict with keys 'train' and/or 'test' (the model's logits on "
                            f"those splits), got {type(model_logits).__name__} {list(model_logits)[:4] if isinstance(model_logits, dict) else ''}")
    for split, t in model_logits.items():
        n = len(data.y(split))
        if not fits_logits(t, n, data):
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise CompressError(f"model_logits[{split!r}] must be a float tensor of shape "
                                f"{logits_shape(data).replace('N', str(n), 1)}: the model's logits on every {split} "
                                f"input of {data.name!r}; got {got}")
    return dict(model_logits)


def compress(model, recipe, data, student=None, progress=None, measure_latency=False, model_logits=None,
             evaluate=True, warn_collapse=True):
    """Apply `recipe` to (a copy of) `model`, evaluate on data's full test set, encode; return a Result.

    `model` is any torch.nn.Module mapping data's inputs to (N, classes) logits, or (N, classes, *positions) for
    labels per token or pixel (then accuracy and agreement count every scored position); its compressible weights
    (model.WEIGHTS: Linear, Conv1d/2d/3d, ConvTranspose1d/2d/3d, embedding, attention-projection and recurrent
    weights) are compressed and everything else is carried exactly. With a temperature set, `model` is the teacher and `student` (any
    module; default an MLP of recipe.student_width) is distilled from it first. progress(step, total, loss,
    accuracy) reports the whole run as one count: the dense model's test-set evaluation, every training stage, then
    the compressed model's evaluation (each evaluation a step a batch of inputs, with loss and accuracy None;
    progress_steps() gives the total up front; when the last training epoch's evaluation already scored exactly the
    weights the result holds, its answers are the result's and that last evaluation's steps come at once); return
    False from it to stop, in training or evaluation (raises train.Stopped, nothing is returned). Same recipe + seed
    => same numbers. Anything the engine cannot handle is
    refused (ModelError, DatasetError, RecipeError) before any work. Result.metrics["flops"] and ["dense_flops"] are the
    compressed and the dense model's forward FLOPs of one input (flops.count; None if it cannot count them).
    Result.metrics["plain_bytes"] is the artifact's
    length with fixed-width codes instead of entropy coding (the same weights): with recipe.huffman each tensor's codes
    take the smaller of the two codings, but the header records the recipe, so where entropy coding saves nothing
    the artifact can be a few bytes larger than plain_bytes. The README lists every metric.
    model_logits ({"train": (N, C), "test": (M, C)}, either optional; e.g. the zoo's cached_logits) are
    `model`'s own outputs on those splits: compress() then does not run a big model over them again
    (the test split gives the dense reference, the training split the teacher's answers for distillation,
    and for fine-tuning with recipe.finetune_kd: then it follows those soft targets, not the labels alone).
    evaluate=False skips the test-set evaluations (the model's and the result's): metrics["accuracy"],
    ["dense_accuracy"] and ["agreement"] are then None; the model, the artifact and every other metric are the same
    (a page draws the weights and sizes first, and the accuracy when it comes).
    measure_latency=True adds Result.timings["latency_ms"] (latency()); when structured pruning or distillation made
    a smaller model, it is timed in turns with `model` and ["dense_latency_ms"] and ["speedup"] come too
    (latency_against()). A torch.compile'd `model` (or student) is compressed as the module it wraps (plain_module()):
    its names (recipe.layers names its layers as they are) and class are the artifact's.
    A result at chance level where the dense model was not (chance.collapsed: the criterion the command line and the
    pages use) warns chance.CollapseWarning; warn_collapse=False leaves that to the caller (fit_budget's own steps).
    """
    model, student = plain_module(model), plain_module(student)
    r = _check_inputs(model, recipe, data, student)
    given = _check_logits(model_logits, data)
    timings = {}
    t_start = time.perf_counter()
    counts = _step_counts(model, r, data, student, given, evaluate)
    tracker = _Progress(progress, sum(counts))
    ref_pred, ref_acc = (dense_reference(model, data, given, tracker.evaluation(counts[0])) if evaluate else
                         (None, None))
    work = copy.deepcopy(model).to(memory_format=torch.contiguous_format).eval()
    folded = deployed(work)
    dense_params, dense_bytes = param_count(folded), state_bytes(folded)  # the dense model as deployed (BN folded)
    # BatchNorms are folded into their convs before compression, as deployment runs the model, except through
    # structured pruning: it removes a BatchNorm's channels with its conv's (ranked by the folded weights, so one-shot
    # it removes the same units) and fine-tunes through them, which keeps more accuracy (bench/any_model.py's
    # U-Net: README); folding after it is exact. A distilled student is folded after distillation.
    fold_after = prune if r.structured and r.prunes() else distill
    if fold_after is distill:
        work = folded
    stages = [s for s in STAGES if s.active(r)]
    ctx = Context(r, data, tracker, data.x("test")[:2], student, given)
    if r.finetune_kd is not None and r.finetune_epochs:  # the uncompressed model's soft targets, once
        ctx.teacher_logits = given["train"] if "train" in given else logits(
            fast_eval_copy(work), data.x("train"), progress=tracker.evaluation(counts[1]))

    t = time.perf_counter()
    for stage in stages:
        work = stage.apply(work, r, ctx)
        if stage is fold_after:
            work = deployed(work)
        timings[stage.NAME] = time.perf_counter() - t
        t = time.perf_counter()

    work.eval()
    if r.bias_bits is not None:  # biases on a low-bit grid, after all training (they are a few hundred numbers)
        ctx.grids.update(quantize.quantize_biases(work, r.bias_bits))
    state = {k: v.detach().contiguous() for k, v in work.state_dict().items()}
    if r.huffman:  # and the length of the same weights with fixed-width codes: what compress(recipe.replace(
        # huffman=False)) writes, byte for byte (measured in the same pass, not written)
        artifact, plain = encode(state, ctx.grids, artifact_meta(work, r), huffman=True,
                                 plain_meta=artifact_meta(work, r.replace(huffman=False)))
    else:
        artifact = encode(state, ctx.grids, artifact_meta(work, r), huffman=False)
        plain = len(artifact)
    timings["encode"] = time.perf_counter() - t
    t = time.perf_counter()

    pred = None
    if evaluate:
        final = tracker.evaluation(counts[3])
        pred = ctx.answers_of(work)  # the weights the last fine-tuning epoch ended with, already evaluated by it
        if pred is None:
            pred = answers(fast_eval_copy(work), data.x("test"), data, progress=final)
        elif final is not None and final(1, 1) is False:  # the evaluation's steps, counted at once
            raise Stopped("stopped by the user")
        timings["evaluate"] = time.perf_counter() - t
    metrics = measure(work, ctx.grids, artifact, dense_params, dense_bytes, pred, data.y("test"), ref_pred, ref_acc)
    metrics["plain_bytes"] = plain
    # forward FLOPs of one input, the dense model's as deployed and the compressed model's: only structured pruning and
    # distillation change its shapes (zeros and shared values are still multiplied), so only they are counted again
    metrics["dense_flops"] = flops.count_or_none(folded, ctx.example)
    reshaped = r.structured and r.prunes() or r.temperature is not None
    metrics["flops"] = flops.count_or_none(work, ctx.example) if reshaped else metrics["dense_flops"]
    if measure_latency:  # a model that got smaller is timed in turns with the one it came from
        timings.update(latency_against(model, work, data) if reshaped else latency(work, data))
    timings["total"] = time.perf_counter() - t_start
    if warn_collapse:
        chance.warn_if_collapsed(metrics, data)
    return Result(work, metrics, artifact, r, ctx.history, timings, ctx.grids)


def scores(pred, y, accuracy=True):
    """The test-set scores of answers `pred` (answers(); None: not evaluated, every score None) to labels `y`:
    accuracy (if asked for), plus mean_iou for a class per position or exact_match for multi-label tags; for
    regression targets, r2 and rmse instead. The one rule compress()'s metrics and evaluate_artifact() share."""
    def of(score):
        return None if pred is None else score(pred, y)
    if y.is_floating_point():
        return {"r2": of(r2_score), "rmse": of(rmse)}
    out = {"accuracy": of(lambda p, t: match_rate(p, t, t))} if accuracy else {}
    if y.dtype == torch.bool:  # multi-label: accuracy is over every tag; exact match, over whole samples
        out["exact_match"] = of(exact_match)
    elif y.dim() > 1:  # a label per token or pixel: segmentation's mean IoU too
        out["mean_iou"] = of(mean_iou)
    return out


ESTIMATE_INPUTS = 1000  # test inputs estimate() scores by default: ResNet-8's 1,000 take ~0.6 s of its 5-7 s on 2 cores


def estimate(model, data, inputs=ESTIMATE_INPUTS, seed=0, reference=None):
    """`model`'s test-set scores estimated from a seeded random sample of `inputs` test inputs, in that share of a
    full evaluation's time (what a page shows while the full evaluation runs).

    Returns scores() of the sample (accuracy, and mean_iou / exact_match, or r2 and rmse for regression targets) plus
    "inputs" (the sample's size), "of" (the test set's) and "margin": the half-width of a 95 % interval for the
    accuracy on the whole test set (None for regression targets or a sample under 3; 0 when the sample is the whole
    test set). `reference`, the uncompressed model's answers on the whole test set (dense_reference()[0]),
    sharpens the accuracy: where the two models agree, the sample's luck is the reference's too, and
    the reference's accuracy on everything is known, so the estimate is corrected by how far the sample put the
    reference off (the regression estimator; ResNet-8 pruned 30 % per layer: +-0.59 points instead of +-1.39, and
    never wider than without). seed fixes the sample, the same for every model of a dataset."""
    check_dataset(data)
    x, y = data.x("test"), data.y("test")
    total = len(y)
    if isinstance(inputs, bool) or not isinstance(inputs, int) or inputs < 1:
        raise ValueError(f"inputs must be a whole number of at least 1, got {inputs!r}")
    if isinstance(reference, (tuple, list)):  # reference()'s whole (answers, accuracy) pair
        raise CompressError(f"reference must be the dense model's answers, a tensor: got a {type(reference).__name__}"
                            f" (ce.reference(model, data) returns (answers, accuracy)): pass ce.reference(model, "
                            f"data)[0]")
    if reference is not None and len(reference) != total:
        raise ValueError(f"reference holds answers for {len(reference)} inputs; the test set has {total}")
    n = min(inputs, total)
    idx = torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:n].sort().values
    pred, ys = answers(fast_eval_copy(model), x[idx], data), y[idx]
    out = {**scores(pred, ys), "inputs": n, "of": total, "margin": None}
    if ys.is_floating_point():
        return out
    hits, counts = _hits(pred, ys)
    ref = None if reference is None else (_hits(reference[idx], ys)[0], match_rate(reference, y, y))
    out["accuracy"], out["margin"] = _regression_estimate(hits, counts, total, ref)
    return out


def _hits(pred, y):
    """Per input: how many of its scored labels `pred` gets right, and how many it has (float64; one label: 0/1, 1)."""
    scored = y != IGNORE
    n = len(y)
    return ((pred == y) & scored).reshape(n, -1).sum(1).double(), scored.reshape(n, -1).sum(1).double()


def _regression_estimate(hits, counts, total, ref=None, z=1.96):
    """estimate()'s accuracy and 95 % half-width from a random sample of len(hits) of `total` inputs: the ratio
    R = sum(hits) / sum(counts); with ref = (the reference's hits on the sample, its accuracy on all `total`), the
    regression estimator R + b (R_ref,all - R_ref,sample), b fitted on the sample's ratio residuals
    u = h - R k, v = h_ref - R_ref k (Cochran, Sampling Techniques, 6.9 and 7.1):
    Var ~ (1 - n/N) / (n kbar^2) * sum (u - b v)^2 / (n - 1 - [ref]). One label per input, no reference: the
    textbook z sqrt(p (1 - p) / (n - 1) * (N - n) / N), up to the n / (n - 1). At least 3/n (1 - n/N): a sample
    whose answers all agree with the reference's (or are all right) would otherwise claim a margin of 0."""
    n = len(hits)
    r = (hits.sum() / counts.sum()).item() if counts.sum() > 0 else float("nan")
    dof = n - 1 - (ref is not None)
    if dof < 1 or counts.sum() == 0:
        return r, None
    u = hits - r * counts
    if ref is not None:
        ref_hits, ref_all = ref
        r_ref = (ref_hits.sum() / counts.sum()).item()
        v = ref_hits - r_ref * counts
        b = (u * v).sum() / (v * v).sum() if (v * v).sum() > 0 else torch.zeros((), dtype=torch.float64)
        r, u = r + b.item() * (ref_all - r_ref), u - b * v
    var = (1 - n / total) * (u * u).sum().item() / dof / (n * counts.mean().item() ** 2)
    # never narrower than the rule of three: a sample that saw no disagreement (or no error) cannot tell a rate
    # below 3/n from zero at 95 % (times the finite-population correction, 0 for the whole test set)
    return r, max(z * math.sqrt(max(var, 0.0)), 3 / n * (1 - n / total))


def measure(model, grids, artifact, dense_params, dense_bytes, pred, y, ref_pred, ref_acc):
    """Deterministic metrics of a compressed model: counts, real bytes, ratio, accuracy, agreement; for labels per
    position also mean_iou and dense_mean_iou. For regression targets (float `y`) accuracy, dense_accuracy and
    agreement are None, and r2, dense_r2, rmse and dense_rmse score the result and the dense model instead. For
    multi-label tags (boolean `y`) accuracy and agreement are over every tag of every sample, and exact_match and
    dense_exact_match are the shares of samples with every tag right."""
    layers = []
    parts, codings = breakdown_and_codings(artifact)
    for name, p in model.state_dict().items():  # every tensor the artifact holds, buffers included
        g = grids.get(name)
        levels = (len(g.values) if isinstance(g, Codebook) else
                  g.qmax - g.qmin + 1 if isinstance(g, Affine) else None)
        layers.append({"name": name, "shape": list(p.shape), "params": p.numel(),
                       "nonzero": int(torch.count_nonzero(p)), "levels": levels,
                       "bytes": sum(parts["per_tensor"].get(name, {}).values()), "coding": codings.get(name)})
    params = param_count(model)
    nonzero = sum(int(torch.count_nonzero(p)) for p in model.parameters())
    regression = y.is_floating_point()
    extra = scores(pred, y)
    acc = extra.pop("accuracy", None)
    extra.update((f"dense_{k}", v) for k, v in scores(ref_pred, y, accuracy=False).items())  # (ref_acc: cached)
    return {
        "params": params, "nonzero_params": nonzero, "dense_params": dense_params,
        "sparsity": 1 - nonzero / dense_params,
        "dense_bytes": dense_bytes, "artifact_bytes": len(artifact),
        "ratio": dense_bytes / len(artifact),
        "accuracy": acc, "dense_accuracy": ref_acc,
        "agreement": None if pred is None or regression else match_rate(pred, ref_pred, y),
        "bytes_breakdown": {k: v for k, v in parts.items() if k != "per_tensor"},
        "layers": layers,
        **extra,
    }


def latency(model, data, batch_size=256, repeats=20):
    """Median CPU wall time of one forward pass over a batch of the data's test inputs (milliseconds); fewer
    test inputs than batch_size are repeated to fill it."""
    m = fast_eval_copy(model)
    return {"latency_ms": median_forward_ms(m, _latency_batch([m], data, batch_size), repeats),
            "latency_batch": batch_size}


def latency_against(model, smaller, data, batch_size=256, repeats=20):
    """latency() of `smaller` (a structurally pruned model, a distilled student), timed in turns with `model`, the
    one it came from (speedup()): {"latency_ms", "latency_batch", "dense_latency_ms", "speedup"}."""
    t = speedup(model, smaller, data, batch_size=batch_size, seconds=None, repeats=repeats)
    return {"latency_ms": t["ms"], "latency_batch": batch_size, "dense_latency_ms": t["dense_ms"],
            "speedup": t["speedup"]}


def _latency_batch(models, data, batch_size):
    """batch_size of the data's test inputs (repeated if there are fewer), channels-last if every one of `models`
    (fast_eval_copy's copies, timed on it) runs so (channels_last_ok)."""
    test = data.x("test")
    x = test[torch.arange(batch_size) % len(test)]
    nhwc = [channels_last_ok(m, x) for m in models]  # each decided, so each copy is laid out as it runs
    return x.contiguous(memory_format=torch.channels_last) if all(nhwc) else x


def speedup(model, smaller, data, batch_size=256, seconds=1.0, repeats=20):
    """How much faster `smaller` (say compress()'s structurally pruned model) runs than `model` on this CPU: the
    median wall time of one forward pass over batch_size of the data's test inputs for each, both as deployed
    (deployed(): BatchNorms folded where the model declares it, as compress() does; convs channels-last), timed in
    turns (a call of one, then of the other, `repeats` times), so a load that comes and goes on a shared machine
    falls on both alike. Models too slow for `repeats` turns in about
    `seconds` get fewer, at least 3 (seconds=None: always `repeats`). Neither model is changed.
    -> {"dense_ms", "ms", "speedup" (dense_ms / ms), "repeats", "batch"}."""
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise RecipeError(f"repeats must be an integer >= 1, got {repeats!r}")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0):
        raise RecipeError(f"seconds must be a number > 0 (or None), got {seconds!r}")
    pair = [fast_eval_copy(deployed(m)) for m in (model, smaller)]
    times = forward_ms_in_turns(pair, _latency_batch(pair, data, batch_size), repeats, seconds)
    dense_ms, ms = (statistics.median(t) for t in times)
    repeats = len(times[0])
    return {"dense_ms": dense_ms, "ms": ms, "speedup": dense_ms / ms, "repeats": repeats, "batch": batch_size}


SWEEP_ROW = ("params", "nonzero_params", "artifact_bytes", "ratio", "accuracy", "agreement")  # a sweep's columns,
SWEEP_SCORES = ("r2", "rmse")  # and, for regression targets (whose accuracy and agreement are None), these


def sweep_row(field_name, value, metrics):
    """One sweep point's row: the value, then SWEEP_ROW (and any SWEEP_SCORES) of its metrics."""
    return {field_name: value, **{k: metrics[k] for k in SWEEP_ROW + SWEEP_SCORES if k in metrics}}


def sweep(model, recipe, data, field_name, values, progress=None):
    """compress() at each value of one recipe field; returns one metrics dict per value (plus the value)."""
    rows = []
    for i, v in enumerate(values):
        res = compress(model, recipe.replace(**{field_name: v}), data)
        rows.append(sweep_row(field_name, v, res.metrics))
        if progress and progress(i + 1, len(values), None, res.metrics["accuracy"]) is False:
            break
    return rows


def task(data):
    """What `data`'s labels ask of a model, in words: 'classes' (one per sample), 'a class per position',
    'regression' or 'multi-label tags', with what is trained and scored."""
    if data.regression:
        return "regression: mean squared error, scored by R² and RMSE"
    if data.multilabel:
        return f"multi-label tags ({data.n_classes}): binary cross-entropy, scored per tag and by exact match"
    if data.label_shape:
        return f"a class per position ({data.n_classes} classes): cross-entropy, scored by accuracy and mean IoU"
    return f"classes ({data.n_classes}): cross-entropy, scored by accuracy"


def describe(model, data=None, structured_at=0.5):
    """What compress() would do with `model`, without doing it: a JSON-able dict. The same refusals as compress()
    come first (check_model, on `data` when given).

    - "params", "nonzero_params" and "dense_bytes": the model as deployed (deployed()), as compress() counts the
      dense model: its parameters, those not zero (training can leave weights at exactly 0), its float32 bytes
      (every compression ratio's base);
    - "compressed": {tensor: shape} of the weights the engine prunes, clusters and quantizes (model.WEIGHTS), and
      their share of the parameters; "carried_weights": {tensor: shape} of parameters of two or more dims it
      carries exactly as float32 (a free nn.Parameter, a layer kind it does not know), "carried_params" all those
      carried (biases, norms included);
    - "folded": {BatchNorm: layer} when the class declares fold_batchnorm = True (deployed());
    - "flops": with `data`, the forward FLOPs of one input (flops.count; None if it cannot count them);
    - "structured": with `data`, what structured pruning at `structured_at` would keep ({layer: "kept of units"}),
      the FLOPs the smaller model would need, which layers it keeps whole and why, or why it cannot trace the model;
    - "int8_layers": the layers int8_latency runs in int8;
    - "task": with `data`, what its labels ask of the model (task()).

    A torch.compile'd model is described as the module it wraps (plain_module()), as compress() compresses it.
    """
    model = plain_module(model)
    if data is not None:
        check_dataset(data)
    check_model(model, data)
    work = deployed(model)
    weights = compressible(work)
    total = param_count(work)
    carried = {name: p for name, p in work.named_parameters() if name not in weights}
    out = {"model_class": type(model).__qualname__, "params": total, "dense_bytes": state_bytes(work),
           "nonzero_params": sum(int(torch.count_nonzero(p)) for p in work.parameters()),
           "compressed": {name: list(p.shape) for name, p in weights.items()},
           "compressed_share": sum(p.numel() for p in weights.values()) / total,
           "carried_params": sum(p.numel() for p in carried.values()),
           "carried_weights": {name: list(p.shape) for name, p in carried.items() if p.dim() >= 2},
           "folded": {} if work is model else {norm: layer for layer, norm in foldable_pairs(model)},
           "int8_layers": list(quantize.int8_plan(work))}
    if data is None:
        out["structured"] = "give data to trace the model"
        return out
    out["task"] = task(data)
    example = data.x("test")[:2]
    out["flops"] = flops.count_or_none(work, example)
    try:
        plan = structured.plan(work, structured_at, example)
        out["structured"] = {"sparsity": structured_at,
                             "prunable": {name: f"{len(g.keep)} of {g.units}" for g in plan.groups
                                          for name in g.producers},
                             "kept_whole": dict(plan.skipped),
                             "flops": flops.Costs(work, example).of_plan(plan)}
    except CompressError as e:
        out["structured"] = {"sparsity": structured_at, "refused": str(e)}
    return out
