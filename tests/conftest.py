"""Shared fixtures: the real Fashion-MNIST (required in CI), a small slice of it for fast training
tests, and the shipped sample models."""

import os
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import compress_engine as ce
from compress_engine.core.encode import decode, encode, size_breakdown

# Plotly checks every property of every figure the pages draw in these tests (and in the servers they start);
# the dashboard itself skips that check for speed (pages/charts.py).
os.environ["PLAYGROUND_CHECK_CHARTS"] = "1"

# Ctrl-C reaches the tests that send it (to this process or to a command they start) even when the suite was started
# in the background of a script (`nohup ... &`), whose SIGINT is ignored and stays ignored in every process started
# from it: those tests then waited for a command that never stopped. A handler set here is reset to the default in
# the processes the tests start, as Python expects.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _trained_results_in_tmp(tmp_path_factory, monkeypatch):
    """Trained results (compress_engine.playground.trained) go to a fresh folder per test, never the user's:
    a test must not find another's fine-tune, nor leave its own behind. A test may point it elsewhere."""
    monkeypatch.setenv("COMPRESS_TRAINED", str(tmp_path_factory.mktemp("trained")))


@pytest.fixture(scope="session")
def fmnist():
    """Full Fashion-MNIST. CI installs it, so there a missing dataset is a failure, not a skip."""
    try:
        return ce.load_dataset("fashion-mnist")
    except ce.DatasetError as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Fashion-MNIST is not installed here ({e})")


@pytest.fixture(scope="session")
def small(fmnist):
    """4,096 training and 2,000 test images of the real data: enough to see fine-tuning work, fast."""
    return fmnist.subset(4096, 2000, "fashion-mnist[small]")


@pytest.fixture(scope="session")
def lenet300():
    return ce.load_model("lenet-300-100")


@pytest.fixture(scope="session")
def lenet5():
    return ce.load_model("lenet-5")


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(1234)


def write_idx(path, array):
    """Write a uint8 array as an (uncompressed) MNIST-format IDX file."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    path.write_bytes(header + array.tobytes())


def pixels(ds, split, n):
    """The first n images of an image dataset as uint8 N×H×W (exactly the IDX bytes it was read from)."""
    return (ds.x(split)[:n, 0] * 255).round().to(torch.uint8).numpy()


@pytest.fixture(scope="session")
def tiny_idx(fmnist, tmp_path_factory):
    """512 training and 500 test images of the real data as an MNIST-format folder: "idx:<folder>"."""
    folder = tmp_path_factory.mktemp("tiny-fmnist")
    write_idx(folder / "train-images-idx3-ubyte", pixels(fmnist, "train", 512))
    write_idx(folder / "train-labels-idx1-ubyte", fmnist.y("train")[:512].numpy())
    write_idx(folder / "t10k-images-idx3-ubyte", pixels(fmnist, "test", 500))
    write_idx(folder / "t10k-labels-idx1-ubyte", fmnist.y("test")[:500].numpy())
    return f"idx:{folder}"


def serve_data(dataset, monkeypatch):
    """Point the dashboard (pages.common.DATASET, as COMPRESS_DATASET does) at `dataset` for a test; returns it."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from pages import common
    monkeypatch.setattr(common, "DATASET", dataset)
    return dataset


@pytest.fixture
def tiny(tiny_idx, monkeypatch):
    """Point the dashboard at the tiny slice, so training buttons take seconds."""
    return serve_data(tiny_idx, monkeypatch)


# --- artifact checks shared by test_encode.py and test_properties.py ---

def same(a, b):
    """Bit-for-bit equality of two float32 tensors (so -0.0 and NaN payloads count)."""
    return a.shape == b.shape and a.dtype == b.dtype == torch.float32 and torch.equal(
        a.contiguous().view(torch.int32), b.contiguous().view(torch.int32))


def roundtrip(tensors, grids=None, huffman=False, meta=None):
    blob = encode(tensors, grids, meta=meta, huffman=huffman)
    out = decode(blob)
    assert list(out) == list(tensors)
    for k, t in tensors.items():
        assert same(out[k], t), k
    parts = size_breakdown(blob)
    assert sum(parts[p] for p in ("header", "index", "codes", "codebook", "raw")) == len(blob)
    assert sum(sum(v.values()) for v in parts["per_tensor"].values()) + parts["header"] == len(blob)
    return blob


class TinyConvNet(nn.Module):
    """conv -> ReLU -> fc1 -> ReLU -> fc2 on side x side inputs: the smallest net with both conv and
    linear weights, for the prune / cluster / quantize model-level tests."""

    def __init__(self, channels, kernel, side, hidden, classes):
        super().__init__()
        self.conv = nn.Conv2d(1, channels, kernel)
        self.fc1 = nn.Linear(channels * (side - kernel + 1) ** 2, hidden)
        self.fc2 = nn.Linear(hidden, classes)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(torch.relu(self.conv(x)).flatten(1))))


def plots(at):
    """The Plotly figures an AppTest run drew, in page order, each as the JSON the browser gets: the data of the
    charts that update in place (pages/live_chart), or st.plotly_chart's spec where a server cannot serve Plotly.js."""
    import json
    live = [json.loads(c.proto.json or c.proto.mixed.json)["spec"] for c in at.get("bidi_component")
            if c.proto.component_name == "playground_live_chart"]
    return live + [c.proto.spec for c in at.get("plotly_chart")]


@contextmanager
def app_tab(source):
    """`source` served as a throwaway app.py with this checkout's Streamlit settings (bench/chromium.app_server), and
    a bench/latency.Tab for it in headless Chromium, not yet on the page -> (tab, url). Skips without Chromium."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    import latency
    from chromium import app_server, have_chromium, launch, server_env
    from playwright.sync_api import sync_playwright

    if not have_chromium():
        pytest.skip("no Chromium at /usr/bin/chromium (apt-get install chromium)")
    settings = Path(__file__).resolve().parent.parent
    with app_server(source, env=server_env(), settings=settings) as (url, _proc), sync_playwright() as p:
        browser = launch(p)
        try:
            yield latency.Tab(browser, time.perf_counter() + 120), url
        finally:
            browser.close()
