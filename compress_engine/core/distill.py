"""Knowledge distillation (Hinton, Vinyals & Dean 2015).

The student learns from the teacher's softened outputs: at temperature T the teacher's softmax
spreads probability over the classes it finds similar ("dark knowledge"). The T² factor keeps the
soft-target gradients the same size as the hard-target ones when T changes.
"""

import copy

import torch
import torch.nn.functional as F

from .data import IGNORE
from .errors import ModelError
from .model import buffers_kept, student_mlp
from .recipe import check
from .train import batch_progress, eval_steps, fit, logits, train_steps

NAME = "distill"


def soft_targets(teacher_logits, temperature):
    """softmax(logits / T): the teacher's class probabilities at temperature T."""
    return F.softmax(teacher_logits / check("temperature", temperature), dim=-1)


def kd_loss(student_logits, teacher_logits, target, temperature, alpha):
    """alpha·T²·KL(softmax(t/T) ‖ softmax(s/T)) + (1 − alpha)·CE(s, y), averaged over the batch.

    Logits are (N, C) with labels (N,), or (N, C, *positions) with labels (N, *positions) (a class per token
    or pixel): then every position is a sample of its own, and those labelled IGNORE are left out of both terms.
    With multi-label tags (boolean labels (N, C)), each tag is a two-way softmax of its own: the soft term is the
    mean over tags of KL(Bernoulli(sigmoid(t/T)) ‖ Bernoulli(sigmoid(s/T))), the hard one binary cross-entropy.
    At alpha=0 the soft term has no weight and is not computed: the teacher's logits may then be None, or of another
    width than the student's (a student of the data's classes, a teacher of more).
    """
    T = check("temperature", temperature)
    alpha = check("alpha", alpha)
    if alpha == 0:
        teacher_logits = None
    if target.dtype == torch.bool:  # multi-label tags: each tag's yes/no softened alike (BCE against sigmoid(t/T))
        hard = F.binary_cross_entropy_with_logits(student_logits, target.to(student_logits.dtype))
        if teacher_logits is None:
            return hard
        soft = F.binary_cross_entropy_with_logits(student_logits / T, torch.sigmoid(teacher_logits / T))
        soft = soft - F.binary_cross_entropy_with_logits(teacher_logits / T, torch.sigmoid(teacher_logits / T))
        return alpha * T * T * soft + (1 - alpha) * hard
    if student_logits.dim() > 2:  # positions become rows: (N, C, *S) -> (N·S, C), labels (N·S,)
        c = student_logits.shape[1]
        student_logits = student_logits.movedim(1, -1).reshape(-1, c)
        if teacher_logits is not None:
            teacher_logits = teacher_logits.movedim(1, -1).reshape(-1, teacher_logits.shape[1])
        target = target.reshape(-1)
    scored = target != IGNORE
    if not bool(scored.all()):
        if not bool(scored.any()):  # a batch of padding only: nothing to learn from (not NaN)
            return student_logits.sum() * 0.0
        student_logits, target = student_logits[scored], target[scored]
        teacher_logits = None if teacher_logits is None else teacher_logits[scored]
    hard = F.cross_entropy(student_logits, target)
    if teacher_logits is None:  # alpha=0: labels only
        return hard
    log_p_s = F.log_softmax(student_logits / T, dim=-1)
    log_p_t = F.log_softmax(teacher_logits / T, dim=-1)
    soft = F.kl_div(log_p_s, log_p_t, log_target=True, reduction="batchmean")
    return alpha * T * T * soft + (1 - alpha) * hard


def teacher_steps(teacher, data, alpha, teacher_logits=None):
    """How many progress steps distill() spends on the teacher's answers before training: a batch of the training
    set a step (train.eval_steps), none when its logits are given or at alpha=0 (they are then not computed)."""
    if teacher_logits is not None or check("alpha", alpha) == 0:
        return 0
    return eval_steps(teacher, len(data.y("train")))


def distill(teacher, student, data, temperature, alpha, epochs, lr=1e-3, seed=0, progress=None,
            teacher_logits=None, precision="float32", on_evaluated=None):
    """Train `student` on data's training split against `teacher` with kd_loss; returns the loss history.

    alpha=0 trains the same student on the labels alone: the baseline KD is compared against.
    The teacher's logits for the whole training set are computed once, batch by batch in inference
    mode (not at every step of every epoch), unless `teacher_logits` (N, classes, *positions) are given: a cache.
    progress(step, total, loss, accuracy) counts both as one run: a step a batch of the teacher's answers (loss and
    accuracy None; a big teacher takes many seconds on them), then fit()'s training steps; False from it stops
    either (train.Stopped). precision and on_evaluated: fit()'s (the teacher's answers are float32).
    """
    answering = teacher_steps(teacher, data, alpha, teacher_logits)
    total = answering + train_steps(data, epochs)
    if answering:
        teacher_logits = logits(teacher, data.x("train"),
                                progress=batch_progress(_counted(progress, 0, total), answering))
    return fit(student, data, epochs=epochs, lr=lr, seed=seed, progress=_counted(progress, answering, total),
               precision=precision, on_evaluated=on_evaluated,
               loss_fn=lambda out, idx, y: kd_loss(out, None if teacher_logits is None else teacher_logits[idx], y,
                                                   temperature, alpha))


def _counted(progress, offset, total):
    """progress(step, total, loss, accuracy) for a part of distill() starting `offset` steps into its `total`."""
    if progress is None:
        return None
    return lambda step, _total, loss, acc: progress(offset + step, total, loss, acc)


# --- the pipeline stage ------------------------------------------------------------------------

def active(recipe):
    return recipe.temperature is not None


def epochs(recipe):
    return recipe.distill_epochs


def teacher_classes(teacher, ctx):
    """How many classes `teacher` scores, which the default student is given as outputs (output_classes)."""
    return output_classes(teacher, ctx.data, ctx.model_logits.get("train"), ctx.example)


def output_classes(teacher, data, given=None, example=None):
    """How many classes `teacher` scores: the width of its logits (`given`, the caller's, else its answer to
    `example`, by default data's first two test inputs), which may be more than the data hold (a 10-class model on
    data labelled 0-4); for regression targets and multi-label tags, data.n_classes (the outputs must be as many as
    the targets)."""
    if getattr(data, "regression", False) or getattr(data, "multilabel", False):
        return data.n_classes
    if given is None:
        with buffers_kept(teacher):  # only a look at its width: a caller's model (compress()'s checks) stays as it was
            given = logits(teacher, data.x("test")[:2] if example is None else example)
    return int(given.shape[1])


def check_widths(teacher, student, data, alpha):
    """ModelError, before any work, when kd_loss would compare a teacher's and a student's logits of different widths
    (a 12-logit teacher on 10-class data and a 10-output student, or the reverse): its soft term matches their
    softened class probabilities class by class, so with alpha > 0 both must score as many classes. At alpha=0 the
    teacher is not consulted (kd_loss: labels only) and any student of at least data's classes goes."""
    if check("alpha", alpha) == 0 or getattr(data, "regression", False) or getattr(data, "multilabel", False):
        return  # (multi-label: check_model already holds both to (N, tags))
    t, s = output_classes(teacher, data), output_classes(student, data)
    if t != s:
        raise ModelError(f"the teacher scores {t} classes (logits of width {t}) and the student {s}: distillation "
                         f"compares their softened class probabilities class by class (kd_loss), so they must be as "
                         f"wide: give the student {t} outputs, or set alpha=0 to train it on the labels alone "
                         f"(the teacher is then not consulted)")


def apply(teacher, recipe, ctx):
    """Distil `teacher` into ctx.student (a copy of the caller's module) or, without one, a fresh
    MLP of recipe.student_width for the data's input shape and the teacher's classes; returns the trained student."""
    r = recipe
    outputs = None if ctx.student is not None else teacher_classes(teacher, ctx)  # before the seed: no draw between
    torch.manual_seed(r.seed)
    student = copy.deepcopy(ctx.student) if ctx.student is not None else student_mlp(r.student_width, ctx.data,
                                                                                     outputs=outputs)
    given = ctx.model_logits.get("train")
    steps = teacher_steps(teacher, ctx.data, r.alpha, given) + ctx.steps(r.distill_epochs)  # as compress() counts
    with ctx.scoring(student) as on_evaluated:
        ctx.history[NAME] = distill(teacher, student, ctx.data, r.temperature, r.alpha, r.distill_epochs, seed=r.seed,
                                    progress=ctx.tracker.stage(steps), teacher_logits=given, precision=r.precision,
                                    on_evaluated=on_evaluated)
    return student.eval()
