"""Sweeps on Ray, as a reviewer found them (compress_engine/playground/sweeps.py): --threads more than a node's CPUs
hung for ever without a word; every failure to join a cluster said "start it with ray start --head", also when the
cluster wanted a token, and pasted Ray's advice naming a flag this command lacks; an address where another service
listens kept ray.init busy for many minutes; the install hint named a package that is not on PyPI; and a model's own
warning showed twice on Ray."""

import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from http.server import HTTPServer, SimpleHTTPRequestHandler
from pathlib import Path

import pytest
import torch
from torch import nn

import compress_engine as ce
from compress_engine.playground import sweeps
from compress_engine.playground.cli import main

try:
    import ray
except ImportError:
    ray = None
needs_ray = pytest.mark.skipif(ray is None, reason="ray is not installed: pip install -e '.[ray]'")

ROOT = Path(__file__).resolve().parents[1]
BASE = ce.Recipe(clusters=8)


class Warny(nn.Module):
    """A 64-10 linear model on 8x8 digits that warns at every forward pass, as a user's model might."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        warnings.warn("Warny: my model's own warning")
        return self.fc(x.flatten(1))


def double(x):
    return 2 * x


# --- --threads that no node has CPUs for; a model's warning, once --------------------------------------------

def test_threads_more_than_this_machines_cores_are_refused_before_ray_starts(monkeypatch):
    """On a 2-core machine `--workers 1 --threads 3` started a 2-CPU runtime and asked 3 CPUs per point: it never
    finished and printed nothing. Refused at once, saying why and what to give."""
    pytest.importorskip("ray")
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    started = []
    monkeypatch.setattr(sweeps, "start_local", lambda *a: started.append(a))
    with pytest.raises(ce.CompressError, match=r"^--threads 3 needs 3 CPUs on one node \(a point runs on one node\); "
                                               r"this machine has 2: give --threads 2 or fewer$"):
        sweeps.sweep(Warny(), BASE, "digits", "sparsity", [0.5, 0.8], workers=1, threads=3)
    with pytest.raises(ce.CompressError, match=r"^--threads 3 needs 3 CPUs"):
        sweeps.map_jobs(double, [(1,), (2,)], workers=1, threads=3)
    assert started == []


@pytest.fixture(scope="module")
def local_ray():
    """One local runtime for the module: 2 CPUs, loopback, no dashboard."""
    if ray is None:
        pytest.skip("ray is not installed: pip install -e '.[ray]'")
    sweeps.start_local(2)
    yield ray
    ray.shutdown()


@needs_ray
def test_threads_more_than_any_nodes_cpus_are_refused_and_a_feasible_sweep_runs(local_ray, capsys, tiny_idx):
    """A runtime (or a cluster) whose largest node has 2 CPUs: --threads 3 is refused, naming both numbers; the
    runtime is left as it was (this process started it), and --threads 2 runs, with the in-process rows."""
    with pytest.raises(ce.CompressError, match=r"^--threads 3 needs 3 CPUs on one node \(a point runs on one node\); "
                                               r"the largest node of this Ray runtime has 2: give --threads 2"):
        sweeps.sweep(Warny(), BASE, "digits", "sparsity", [0.5], workers=1, threads=3)
    with pytest.raises(ce.CompressError, match=r"^--threads 3 needs 3 CPUs"):
        sweeps.map_jobs(double, [(1,)], workers=1, threads=3)
    assert ray.is_initialized()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = sweeps.sweep(Warny(), BASE, "digits", "sparsity", [0.5], workers=1, threads=2)
        assert rows == sweeps.sweep(Warny(), BASE, "digits", "sparsity", [0.5], threads=2)
    assert sweeps.map_jobs(double, [(1,), (2,)], workers=2, threads=1) == [2, 4]
    code = main(["sweep", "--data", tiny_idx, "--model", "lenet-300-100", "--field", "sparsity", "--values", "0.5",
                 "--workers", "1", "--threads", "3"])
    assert code == 2 and "--threads 3 needs 3 CPUs on one node" in capsys.readouterr().err
