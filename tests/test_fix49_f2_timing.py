"""A sweep point's time on Ray included loading the model and data for a worker's first point (8.7 s, then 0.3 s for
the same work): it is compress()'s time alone now (compress_engine/playground/sweeps.py _attempt)."""

import time

import torch
from torch import nn

import compress_engine as ce
from compress_engine.playground import sweeps


def test_a_points_seconds_leave_out_loading_the_model_and_data(monkeypatch):
    digits = ce.load_dataset("digits")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

    def slow_load(name):  # a worker loading the data by name before its first point
        time.sleep(2)
        return digits

    monkeypatch.setattr(sweeps, "load_dataset", slow_load)
    sweeps._CACHE.clear()
    try:
        out = sweeps._attempt(("value", model), ("data", "digits-slow"), ce.Recipe(sparsity=0.5).to_json(), 1)
    finally:
        sweeps._CACHE.clear()
    assert "metrics" in out and out["seconds"] < 2, out.get("seconds")
