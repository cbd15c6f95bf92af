"""Clustering a big layer held about 60 bytes a weight at once (a 16M-weight layer: 905 MB above its 61 MB): the
sorted values' float64 copy made twice, prefix sums copied on concatenation, x * x, the search's arrays still alive
while the labels were made, the labels copied by astype and, for an unpruned layer, made twice. Each is made once
now and dropped when done; the results are the same bit for bit (tests/test_cluster.py).

tracemalloc counts numpy's allocations exactly (not the process's memory, nor time), so these bounds are arithmetic:
the float64 arrays the search needs (x, S, Q: 8 bytes a value each) and a chunk's working copy, nothing more."""

import tracemalloc

import torch

from compress_engine.core import cluster

N = 4_000_000
SLACK = 1 << 20  # the centroids, boundaries and other arrays of k's size


def traced_peak(f, *args):
    tracemalloc.start()
    try:
        out = f(*args)
        return tracemalloc.get_traced_memory()[1], out
    finally:
        tracemalloc.stop()


def values():
    return torch.randn(N, generator=torch.Generator().manual_seed(0))


def test_kmeans_holds_its_three_float64_arrays_and_no_more():
    peak, (centroids, labels) = traced_peak(cluster.kmeans_1d, values(), 16)
    assert labels.dtype == torch.int64 and len(centroids) == 16
    assert peak <= 3 * 8 * N + 16 * cluster.CHUNK + SLACK  # x, S and Q; the labels come after they are gone


def test_nearest_makes_its_labels_and_a_chunk_besides():
    peak, labels = traced_peak(cluster.nearest, values(), torch.linspace(-2, 2, 16))
    assert labels.dtype == torch.int64 and labels.shape == (N,)
    assert peak <= 8 * N + 16 * cluster.CHUNK + SLACK  # the int64 labels; no second copy of them


def test_an_unpruned_layers_labels_are_made_once():
    w = values().reshape(2000, -1)
    seen = []
    real = torch.full
    torch_full = lambda *a, **k: seen.append(a[0]) or real(*a, **k)  # noqa: E731
    try:
        torch.full = torch_full
        centroids, labels = cluster.cluster_weight(w, 16)
    finally:
        torch.full = real
    assert labels.shape == w.shape and labels.dtype == torch.int64 and not seen
