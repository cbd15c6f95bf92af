"""A refitted scan of a big layer went minutes without a progress call (fit_budget on a 9.9 M MLP: 430 s), and refit
solved a kept x kept system per unit whatever its size. Now scan reports inside a long setting (at least every
train.REPORT_SECONDS), fit_budget's cluster scan reports too, and refit leaves units keeping more than
sensitivity.REFIT_MAX_INPUTS inputs as magnitude pruning left them; every sample model's layers are refit as before."""

import pytest
import torch

import compress_engine as ce
from compress_engine.core import model as model_mod, prune, sensitivity, train


def old_refit(w, mask, g, damp=0.01):  # refit as it was before the limit, for every unit
    w2 = w.reshape(w.shape[0], -1).double()
    m2 = mask.reshape(mask.shape[0], -1)
    gw = w2 @ g
    out = torch.zeros_like(w2)
    eye_d = damp * float(g.diagonal().mean())
    for r in range(w2.shape[0]):
        keep = m2[r].nonzero().squeeze(1)
        if keep.numel():
            a = g[keep][:, keep] + eye_d * torch.eye(keep.numel(), dtype=torch.float64)
            out[r, keep] = torch.linalg.solve(a, gw[r, keep])
    out = out.float().reshape(w.shape)
    return torch.where(mask & (out != 0), out, 0.0)


def test_a_long_setting_reports_and_can_be_stopped(small, lenet300, monkeypatch):
    monkeypatch.setattr(train, "REPORT_SECONDS", 0.0)  # every refit unit is "long" now
    calls = []
    kw = dict(sparsities=(0.5,), clusters=(None,), split="train", subset=300, use_cache=False, refit=True)
    sensitivity.scan(lenet300, small, progress=lambda *a: calls.append(a), **kw)
    points = [c for c in calls if c[3] is not None]
    beats = [c for c in calls if c[3] is None]
    assert len(points) == 3 and [c[0] for c in points] == [1, 2, 3]
    assert len(beats) >= 200  # about one per unit refit (fc1: 300 units; those keeping no input are skipped)
    assert all(c[2] is None and c[1] == 3 for c in beats) and beats[0][0] == 0
    with pytest.raises(train.Stopped):
        sensitivity.scan(lenet300, small, progress=lambda *a: a[3] is not None, **kw)


def test_fit_budgets_cluster_scan_reports(small, lenet300, monkeypatch):
    seen, real = [], sensitivity.scan

    def spy(*a, **kw):
        seen.append(kw.get("progress"))
        return real(*a, **kw)

    monkeypatch.setattr(sensitivity, "scan", spy)
    calls = []
    ce.fit_budget(lenet300, small, 60_000, finetune_epochs=1, progress=lambda *a: calls.append(a), retries=0)
    assert seen[-1] is not None  # the scan between the two steps
    beats = [c for c in calls if c[2] is None and c[3] is None]
    assert beats  # the cluster scan's points, at the count fine-tuning reached


def test_sample_layers_refit_as_before(fmnist):
    for name in ["lenet-300-100", "lenet-5", "resnet-8", "teacher-1200-1200"]:
        m = ce.load_model(name)
        for layer, p in model_mod.compressible(m).items():
            assert p.reshape(p.shape[0], -1).shape[1] <= sensitivity.REFIT_MAX_INPUTS, (name, layer)
    m = ce.load_model("lenet-300-100")
    x = fmnist.x("train")[:500]
    for layer in ["layers.0.weight", "layers.1.weight"]:
        if layer not in model_mod.compressible(m):
            pytest.skip("lenet-300-100's layer names changed")
        w = model_mod.compressible(m)[layer].detach()[:40]  # each unit solves alone: 40 of fc1's 300 (16 s) will do
        g = sensitivity.gram(m, model_mod.owner(m, layer)[0], x)
        mask = prune.magnitude_mask(w, 0.5)
        assert torch.equal(sensitivity.refit(w, mask, g), old_refit(w, mask, g))


def test_a_unit_over_the_limit_keeps_its_magnitude_weights(monkeypatch):
    torch.manual_seed(0)
    n = sensitivity.REFIT_MAX_INPUTS + 50
    w = torch.randn(3, n)
    x = torch.randn(2 * n, n).double()
    g = x.T @ x
    mask = torch.ones(3, n, dtype=torch.bool)
    mask[1, 10:] = False  # unit 1 keeps 10 inputs: refit; units 0 and 2 keep all n: over the limit
    solved = []
    real = torch.linalg.solve
    monkeypatch.setattr(torch.linalg, "solve", lambda a, b: solved.append(a.shape[0]) or real(a, b))
    out = sensitivity.refit(w, mask, g)
    assert solved == [10]
    assert torch.equal(out[[0, 2]], w[[0, 2]])
    assert not torch.equal(out[1, :10], w[1, :10]) and not out[1, 10:].any()
