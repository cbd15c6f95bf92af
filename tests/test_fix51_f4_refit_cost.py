"""refit's cost grows as units x kept^3: REFIT_MAX_INPUTS alone let a 4000 x 4000 layer at sparsity 0.7 solve 4,000
systems of 1,200 (about 2.3e12 operations for one setting), and fit_budget's scan of a 2000 x 2000 layer ran minutes on
one setting. A layer whose solves would cost more than REFIT_MAX_FLOPS now keeps its magnitude-pruned weights; its
scans' key names the cap, and the sample models, well within it, refit as before (test_sensitivity finds their shipped scans)."""

import json

import pytest
import torch
from torch import nn

from compress_engine.core import sensitivity as S


def test_a_layer_over_the_cost_cap_is_not_solved(monkeypatch):
    torch.manual_seed(0)
    out, n = 600, S.REFIT_MAX_INPUTS  # every unit within REFIT_MAX_INPUTS, the layer's solves far over the cap
    w = torch.randn(out, n)
    mask = torch.rand(out, n) < 0.9  # about 600 solves of 1,080: 2/3 x 600 x 1080^3 = 5e11 operations
    monkeypatch.setattr(torch.linalg, "solve", lambda *a: pytest.fail("a layer over the cap was solved"))
    g = torch.eye(n, dtype=torch.float64)
    assert torch.equal(S.refit(w, mask, g), torch.where(mask, w, 0.0))


def test_a_layer_within_it_is_solved():
    torch.manual_seed(0)
    w, n = torch.randn(4, 30), 30
    x = torch.randn(100, n).double()
    mask = torch.rand(4, n) < 0.5
    got = S.refit(w, mask, x.T @ x)
    assert not torch.equal(got, torch.where(mask, w, 0.0)) and not got[~mask].any()


def test_a_scan_kept_from_before_the_cap_is_not_found_for_a_costly_model(fmnist, tmp_path):
    torch.manual_seed(0)
    wide = nn.Sequential(nn.Flatten(), nn.Linear(784, 1000), nn.ReLU(), nn.Linear(1000, 1000), nn.ReLU(),
                         nn.Linear(1000, 10))  # within REFIT_MAX_INPUTS, over REFIT_MAX_FLOPS
    idx = S.subset_index(len(fmnist.y("train")), S.SUBSET)
    grid = S._check_grid(S.SPARSITIES, S.CLUSTERS, "train", S.SUBSET)
    before = S.scan_key(wide, fmnist.x("train")[idx], fmnist.y("train")[idx], *grid, "train+refit")
    (tmp_path / f"{before}.json").write_text(json.dumps({"format": S.FORMAT, "key": before, "stale": True}))
    assert S.cached(wide, fmnist, split="train", refit=True, cache_dir=tmp_path) is None

