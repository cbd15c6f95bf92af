import warnings

import pytest
import torch

from compress_engine import RecipeError
from compress_engine.core.distill import kd_loss, soft_targets


def reference_kd(s, t, y, T, alpha):
    """Hinton et al. 2015, written out in float64 without torch's loss functions."""
    s, t = s.double(), t.double()
    p_t = torch.exp(t / T) / torch.exp(t / T).sum(1, keepdim=True)
    log_p_s = s / T - torch.logsumexp(s / T, 1, keepdim=True)
    kl = (p_t * (torch.log(p_t) - log_p_s)).sum(1).mean()
    ce = -(s - torch.logsumexp(s, 1, keepdim=True)).gather(1, y[:, None]).mean()
    return alpha * T * T * kl + (1 - alpha) * ce


@pytest.mark.parametrize("T", [1.0, 2.0, 4.0, 8.0, 20.0])
@pytest.mark.parametrize("alpha", [0.0, 0.5, 0.9, 1.0])
def test_kd_loss_matches_formula(T, alpha, rng):
    s = torch.randn(64, 10, generator=rng) * 3
    t = torch.randn(64, 10, generator=rng) * 5
    y = torch.randint(0, 10, (64,), generator=rng)
    got = kd_loss(s, t, y, T, alpha)
    assert got.item() == pytest.approx(reference_kd(s, t, y, T, alpha).item(), rel=1e-5, abs=1e-6)


def test_soft_gradient_is_T_times_q_minus_p(rng):
    """With alpha=1, dL/ds = T (softmax(s/T) - softmax(t/T)) / batch: the T² keeps gradients comparable."""
    T = 4.0
    s = torch.randn(8, 10, generator=rng, requires_grad=True)
    t = torch.randn(8, 10, generator=rng)
    kd_loss(s, t, torch.zeros(8, dtype=torch.long), T, 1.0).backward()
    expected = T * (torch.softmax(s.detach() / T, 1) - torch.softmax(t / T, 1)) / 8
    assert torch.allclose(s.grad, expected, atol=1e-6)


def test_same_logits_zero_soft_loss(rng):
    t = torch.randn(16, 10, generator=rng)
    assert kd_loss(t, t, torch.zeros(16, dtype=torch.long), 3.0, 1.0).abs().item() < 1e-6


def test_soft_targets_flatten_with_temperature(rng):
    t = torch.randn(1, 10, generator=rng) * 5
    assert soft_targets(t, 20).max() < soft_targets(t, 1).max()
    assert torch.allclose(soft_targets(t, 3).sum(), torch.tensor(1.0))


@pytest.mark.parametrize("T,alpha", [(0.5, 0.5), (float("nan"), 0.5), (4.0, 1.5), (4.0, -0.1)])
def test_bad_arguments(T, alpha):
    z = torch.zeros(2, 10)
    with pytest.raises(RecipeError):
        kd_loss(z, z, torch.zeros(2, dtype=torch.long), T, alpha)


# --- the teacher's answers, computed once: zoo.cached_logits and compress(model_logits=...) -------------

import compress_engine as ce  # noqa: E402
from compress_engine.playground import zoo  # noqa: E402


def test_cached_logits_written_once_and_keyed(small, tmp_path, monkeypatch):
    out = zoo.cached_logits("lenet-300-100", small, cache_dir=tmp_path)
    assert out["train"].shape == (4096, 10) and out["test"].shape == (2000, 10)
    assert torch.equal(out["test"], ce.logits(ce.load_model("lenet-300-100"), small.x("test")))
    assert len(list(tmp_path.glob("lenet-300-100.*.logits.safetensors"))) == 1

    monkeypatch.setattr(zoo, "logits", lambda *a, **k: pytest.fail("recomputed a cached answer"))
    again = zoo.cached_logits("lenet-300-100", small, cache_dir=tmp_path)
    assert all(torch.equal(again[k], out[k]) for k in out)
    monkeypatch.undo()
    other = small.subset(4096, 1000, "fashion-mnist[other]")  # other data: not the cached answers
    assert zoo.cached_logits("lenet-300-100", other, cache_dir=tmp_path, compute=False) is None  # nor computed
    assert len(list(tmp_path.glob("lenet-300-100.*.logits.safetensors"))) == 1
    assert zoo.cached_logits("lenet-300-100", other, cache_dir=tmp_path)["test"].shape == (1000, 10)
    assert len(list(tmp_path.glob("lenet-300-100.*.logits.safetensors"))) == 2


def test_all_logits_report_progress_per_batch_and_stop(small):
    model, seen = ce.load_model("lenet-5"), []
    out = zoo.all_logits(model, small, progress=lambda done, total: seen.append((done, total)))
    for split in ("train", "test"):  # the same logits as one pass over each set
        assert torch.equal(out[split], ce.logits(model, small.x(split)))
    # after each batch of 256 (a conv net's), over both sets, up to every image
    train = [256 * i for i in range(1, 17)]  # 4,096 training images: 16 batches
    test = [4096 + 256 * i for i in range(1, 8)] + [6096]  # then 2,000 test images: 7 batches and the rest
    assert seen == [(done, 6096) for done in train + test]
    seen.clear()  # a progress callback returning False stops it (a Cancel in the training pool)
    with pytest.raises(ce.Stopped):
        zoo.all_logits(model, small, progress=lambda done, total: seen.append(done) or done < 1000)
    assert seen == [256, 512, 768, 1024]


def test_compress_with_given_logits_is_the_same_run(small):
    """Passing the teacher's own logits changes nothing but the time: same student, same metrics."""
    teacher = ce.load_model("lenet-300-100")
    given = {k: ce.logits(teacher, small.x(k)) for k in ("train", "test")}
    r = ce.Recipe(temperature=4.0, alpha=0.9, student_width=30, distill_epochs=1)
    a = ce.compress(teacher, r, small)
    b = ce.compress(teacher, r, small, model_logits=given)
    assert a.artifact == b.artifact
    assert {k: v for k, v in a.metrics.items()} == b.metrics


@pytest.mark.parametrize("bad", [{"val": torch.zeros(4096, 10)}, {"train": torch.zeros(10, 10)},
                                 {"test": torch.zeros(2000, 10, dtype=torch.long)}, [torch.zeros(2000, 10)]])
def test_compress_refuses_bad_logits(small, lenet300, bad):
    with pytest.raises(ce.CompressError, match="model_logits"):
        ce.compress(lenet300, ce.Recipe(temperature=2.0), small, model_logits=bad)


def test_a_student_no_smaller_than_its_teacher_is_warned_of(small):
    """Distilling a 25,450-parameter model into the default 800-800 MLP (1.3 M) makes it 50x bigger: the engine says
    so, naming both counts; a smaller student is not warned of."""
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    with pytest.warns(UserWarning, match=r"the default student, an MLP of recipe.student_width=800, has 1,276,810 "
                                         r"parameters, no fewer than the teacher's 25,450"):
        ce.compress(teacher, ce.Recipe(temperature=2.0, distill_epochs=1), small)
    with pytest.warns(UserWarning, match=r"the student given has 31,810 parameters"):
        ce.compress(teacher, ce.Recipe(temperature=2.0, distill_epochs=1), small, student=torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(784, 40), torch.nn.ReLU(), torch.nn.Linear(40, 10)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ce.compress(teacher, ce.Recipe(temperature=2.0, distill_epochs=1, student_width=10), small)
