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
