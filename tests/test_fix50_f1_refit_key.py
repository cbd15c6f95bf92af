"""A re-fitted scan of a model with a unit of more than REFIT_MAX_INPUTS inputs scans to other numbers since refit
stopped solving such units, so a scan of it kept on disk from before must not be found: its key names the cap. Every
other scan's key is as it was, so the sample models' shipped scans are still found (a FORMAT bump would have made
every one of them be scanned again)."""

import json

import torch
from torch import nn

from compress_engine.core import sensitivity as S
from compress_engine.playground import zoo


def test_a_scan_kept_from_before_the_cap_is_not_found_for_a_capped_model(fmnist, tmp_path):
    torch.manual_seed(0)
    wide = nn.Sequential(nn.Flatten(), nn.Linear(784, S.REFIT_MAX_INPUTS + 100), nn.ReLU(),
                         nn.Linear(S.REFIT_MAX_INPUTS + 100, 10))
    idx = S.subset_index(len(fmnist.y("train")), S.SUBSET)
    grid = S._check_grid(S.SPARSITIES, S.CLUSTERS, "train", S.SUBSET)
    before = S.scan_key(wide, fmnist.x("train")[idx], fmnist.y("train")[idx], *grid, "train+refit")
    (tmp_path / f"{before}.json").write_text(json.dumps({"format": S.FORMAT, "key": before, "stale": True}))
    assert S.cached(wide, fmnist, split="train", refit=True, cache_dir=tmp_path) is None


def test_the_sample_models_shipped_scans_are_still_found(fmnist, lenet300, tmp_path):
    got = S.cached(lenet300, fmnist, split="train", refit=True, cache_dir=tmp_path,
                   shipped=[zoo.scan_dir("lenet-300-100")])
    assert got is not None and got["format"] == S.FORMAT
