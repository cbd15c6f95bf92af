"""Progress that missed work: distill() computed its teacher's answers on the whole training set before training with
no progress call (a big teacher: many seconds of a bar standing still, and a False from the callback could not stop
it), compress() with a temperature did the same inside its distillation stage, and fit_budget's last test-set
evaluation of its result was neither counted nor reported. Each is now counted in the total, reported a batch a
step, and stoppable."""

import math
import warnings

import pytest
import torch
from torch import nn

import compress_engine as ce
from compress_engine.core import budget, pipeline
from compress_engine.core.distill import distill


def _conv():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4))


def _mlp():
    torch.manual_seed(1)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 4))


N_TRAIN, N_TEST = 600, 600
TEACHER_BATCHES = math.ceil(N_TRAIN / 256)   # a conv net answers 256 inputs a batch
TRAIN_STEPS = math.ceil(N_TRAIN / 128)       # one epoch of fit() at its batch of 128 (600 = 4 x 128 + 88)


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    n = N_TRAIN + N_TEST
    x, y = torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 4, (n,), generator=g)
    return ce.Dataset.from_tensors(x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:], name="fix52-random")


def _well_formed(seen):
    """Steps never go back, one total throughout, and the last report is at that total."""
    steps, totals = [s for s, t, *_ in seen], {t for _, t, *_ in seen}
    assert steps == sorted(steps), steps
    assert len(totals) == 1, totals
    assert seen[-1][0] == seen[-1][1], seen[-1]
    return totals.pop()


def test_distill_counts_and_reports_its_teachers_answers(data):
    seen = []
    distill(_conv(), _mlp(), data, 4.0, 0.7, 1, progress=lambda *a: seen.append(a))
    total = _well_formed(seen)
    assert total == TEACHER_BATCHES + TRAIN_STEPS == 8
    # the teacher's batches first, one step each, with no loss yet; then training
    assert [(s, loss) for s, _, loss, _ in seen[:TEACHER_BATCHES]] == [(1, None), (2, None), (3, None)]
    assert seen[TEACHER_BATCHES][2] is not None


def test_distill_without_teacher_work_counts_training_alone(data):
    for kw in ({"alpha": 0.0}, {"alpha": 0.7, "teacher_logits": torch.zeros(N_TRAIN, 4)}):
        seen = []
        alpha = kw.pop("alpha")
        distill(_conv(), _mlp(), data, 4.0, alpha, 1, progress=lambda *a: seen.append(a), **kw)
        assert _well_formed(seen) == TRAIN_STEPS


def test_a_false_stops_distill_while_the_teacher_answers(data):
    student, calls = _mlp(), []
    before = {k: v.clone() for k, v in student.state_dict().items()}

    def progress(step, total, loss, acc):
        calls.append(step)
        return step < 2
    with pytest.raises(ce.Stopped):
        distill(_conv(), student, data, 4.0, 0.7, 1, progress=progress)
    assert calls == [1, 2]  # stopped at the batch it answered False to, before any training step
    assert all(torch.equal(before[k], v) for k, v in student.state_dict().items())


def test_compress_counts_distillations_teacher_answers(data):
    recipe = ce.Recipe(temperature=4.0, alpha=0.7, distill_epochs=1, student_width=10)
    seen = []
    ce.compress(_conv(), recipe, data, progress=lambda *a: seen.append(a))
    total = _well_formed(seen)
    # the dense conv net's test set (3 batches), its answers on the training set (3), training (5), and the MLP
    # student's test set (1 batch of up to 1,000)
    assert total == 3 + TEACHER_BATCHES + TRAIN_STEPS + 1 == pipeline.progress_steps(_conv(), recipe, data)
    assert [s for s, _, loss, _ in seen if loss is None][:6] == [1, 2, 3, 4, 5, 6]
    # given the teacher's logits, or at alpha=0, nothing of the teacher is computed or counted
    assert pipeline.progress_steps(_conv(), recipe.replace(alpha=0.0), data) == total - TEACHER_BATCHES
    assert pipeline.progress_steps(_conv(), recipe, data,
                                   model_logits={"train": torch.zeros(N_TRAIN, 4)}) == total - TEACHER_BATCHES


def test_a_false_stops_compress_while_the_teacher_answers(data):
    calls = []

    def progress(step, total, loss, acc):
        calls.append((step, loss))
        return step < 4  # the dense model's 3 test batches, then the teacher's first training batch
    with pytest.raises(ce.Stopped):
        ce.compress(_conv(), ce.Recipe(temperature=4.0, distill_epochs=1, student_width=10), data, progress=progress)
    assert calls == [(1, None), (2, None), (3, None), (4, None)]  # no training step: stopped in the teacher's answers


def _fit(model, digits, scan, progress):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", budget.OverBudget)
        return ce.fit_budget(model, digits, 2400, finetune_epochs=1, retries=0, scan=scan, progress=progress)


@pytest.fixture(scope="module")
def fitted():
    """A fit_budget run on a small MLP and its progress reports, with the total its parts add up to: its two
    compress() runs (step 1 prunes to the plan's sparsities) and its own evaluation of the result, a batch a step."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    digits = ce.load_dataset("digits")
    scan = ce.sensitivity.scan(model, digits, split="train", sparsities=(0.0, 0.5), clusters=(None, 4, 2),
                               subset=300, use_cache=False)
    seen = []
    _, plan = _fit(model, digits, scan, lambda *a: seen.append(a))
    assert len(plan["attempts"]) == 1
    sparsities = {a["layer"]: {"sparsity": a["sparsity"]} for a in plan["allocation"]}
    pruning = pipeline.progress_steps(model, ce.Recipe(layers=sparsities, finetune_epochs=1), digits)
    sharing = pipeline.progress_steps(model, ce.Recipe(clusters=2, finetune_epochs=1), digits)
    final = math.ceil(len(digits.y("test")) / 1000)  # an MLP answers 1,000 inputs a batch
    return {"model": model, "digits": digits, "scan": scan, "seen": seen, "final": final,
            "total": pruning + sharing + final}


def test_fit_budget_counts_and_reports_its_last_evaluation(fitted):
    seen, final = fitted["seen"], fitted["final"]
    total = _well_formed(seen)
    assert total == fitted["total"]
    # after the last training report: step 2's evaluation of its result, then fit_budget's own of the result
    last_loss = max(i for i, (_, _, loss, _) in enumerate(seen) if loss is not None)
    tail = [s for s, _, loss, _ in seen[last_loss + 1:] if loss is None]
    assert tail[-final:] == list(range(total - final + 1, total + 1))


def test_a_false_stops_fit_budgets_last_evaluation(fitted):
    final, calls = fitted["final"], []

    def progress(step, total, loss, acc):
        calls.append((step, total))
        return step <= total - final  # False at fit_budget's own evaluation only
    with pytest.raises(ce.Stopped):
        _fit(fitted["model"], fitted["digits"], fitted["scan"], progress)
    assert calls[-1] == (fitted["total"] - final + 1, fitted["total"])
