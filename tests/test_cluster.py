"""k-means in 1-D against scikit-learn, clustered weights, and the centroid-gradient rule."""

import functools
import math

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits
from torch import nn
from torch.nn.utils import parametrize

from compress_engine.core import cluster, prune
from compress_engine.core.errors import RecipeError
from conftest import TinyConvNet

INITS = ["linear", "density", "kmeans++"]
KS = [2, 4, 16, 64, 256]
N = {2: 20_000, 4: 20_000, 16: 20_000, 64: 10_000, 256: 4_000}  # sklearn's time grows with n*k


@functools.lru_cache(maxsize=None)
def data(dist, n):
    rng = np.random.default_rng(1234)
    sample = {"normal": rng.normal, "laplace": rng.laplace}[dist]
    return torch.from_numpy((0.05 * sample(size=n)).astype(np.float32))  # weight-like scale


@functools.lru_cache(maxsize=None)
def sklearn_inertia(dist, k):
    v = data(dist, N[k]).numpy().reshape(-1, 1)
    with threadpool_limits(1):  # 2 cores shared with other tests: avoid OpenMP oversubscription
        return KMeans(n_clusters=k, n_init=10, random_state=0).fit(v).inertia_


def assert_nearest(values, centroids, labels):
    d = (values.double()[:, None] - centroids.double()[None, :]).abs()
    assert torch.equal(d.gather(1, labels[:, None])[:, 0], d.min(dim=1).values)


@pytest.mark.parametrize("dist", ["normal", "laplace"])
@pytest.mark.parametrize("k", KS)
def test_inertia_matches_or_beats_sklearn(dist, k):
    values, ref = data(dist, N[k]), sklearn_inertia(dist, k)
    ratios = {}
    for init in INITS:
        c, labels = cluster.kmeans_1d(values, k, init=init)
        assert c.dtype == torch.float32 and c.shape == (k,) and torch.all(c[1:] > c[:-1])
        assert labels.dtype == torch.int64 and labels.shape == values.shape
        assert_nearest(values, c, labels)
        assert torch.bincount(labels, minlength=k).min() > 0  # no empty cluster
        ratios[init] = cluster.inertia(values, c, labels) / ref
    assert max(ratios.values()) <= 1.01, ratios
    assert min(ratios.values()) <= 1 + 1e-6, ratios


def test_centroids_are_cluster_means_and_inertia_is_float64_sse():
    values = data("laplace", 20_000)
    c, labels = cluster.kmeans_1d(values, 16, "density")
    means = torch.zeros(16, dtype=torch.float64).index_add_(0, labels, values.double())
    means /= torch.bincount(labels, minlength=16)
    assert torch.allclose(c.double(), means, rtol=1e-6, atol=1e-9)
    expected = ((values.double() - c.double()[labels]) ** 2).sum().item()
    assert cluster.inertia(values, c, labels) == pytest.approx(expected, rel=1e-12)


def test_refine_never_hurts_and_plain_lloyd_is_a_fixed_point():
    values = data("normal", 20_000)
    for init in INITS:
        c0, l0 = cluster.kmeans_1d(values, 64, init, refine=False)
        c1, l1 = cluster.kmeans_1d(values, 64, init)
        assert_nearest(values, c0, l0)
        assert cluster.inertia(values, c1, l1) <= cluster.inertia(values, c0, l0)


@pytest.mark.parametrize("init", INITS)
def test_deterministic(init):
    values = data("laplace", 20_000)
    a = cluster.kmeans_1d(values, 32, init, seed=7)
    b = cluster.kmeans_1d(values.clone(), 32, init, seed=7)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_few_distinct_values_give_fewer_centroids():
    distinct = torch.tensor([-1.0, 0.25, 0.5, 2.0])
    values = distinct[torch.randint(0, 4, (1000,), generator=torch.Generator().manual_seed(0))]
    for k in (4, 16):
        for init in INITS:
            c, labels = cluster.kmeans_1d(values, k, init)
            assert torch.equal(c, distinct)
            assert torch.equal(c[labels], values)
    c, labels = cluster.kmeans_1d(values, 3, "linear")  # 4 distinct values into 3 clusters
    assert c.shape == (3,) and torch.all(c[1:] > c[:-1])
    assert_nearest(values, c, labels)
    c, labels = cluster.kmeans_1d(torch.full((10,), 0.3), 8)
    assert c.tolist() == [pytest.approx(0.3)] and labels.tolist() == [0] * 10


def test_duplicates_and_outliers_leave_no_empty_cluster():
    rng = np.random.default_rng(3)
    v = np.concatenate([np.repeat([0.1, -0.1], 4000), rng.normal(0, 0.01, 300), [5.0, -7.0]])
    values = torch.from_numpy(v.astype(np.float32))
    for init in INITS:
        c, labels = cluster.kmeans_1d(values, 16, init)
        assert c.shape == (16,) and torch.all(c[1:] > c[:-1])
        assert torch.bincount(labels, minlength=16).min() > 0
        assert_nearest(values, c, labels)


@pytest.mark.parametrize("bad", [1, 257, 0, -3, math.nan, 4.0, "x", None, True])
def test_bad_k(bad):
    with pytest.raises(RecipeError, match=r"k .*\[2, 256\]") as err:
        cluster.kmeans_1d(torch.randn(100), bad)
    assert repr(bad) in str(err.value)
    with pytest.raises(RecipeError):
        cluster.cluster_weight(torch.randn(10, 10), bad)


@pytest.mark.parametrize("bad", ["random", "Linear", "", None, 3])
def test_bad_init(bad):
    with pytest.raises(RecipeError, match="init"):
        cluster.kmeans_1d(torch.randn(100), 8, init=bad)


def test_bad_values():
    for bad in [torch.randn(3, 3), torch.tensor([]), torch.tensor([1.0, math.nan]), torch.arange(5)]:
        with pytest.raises(RecipeError, match="values"):
            cluster.kmeans_1d(bad, 4)


def test_cluster_weight_keeps_pruned_entries_out():
    torch.manual_seed(0)
    w = torch.randn(64, 100)
    mask = prune.magnitude_mask(w, 0.7)
    w_pruned = w * mask
    for m in (None, mask):  # mask None: zeros are the pruned ones
        c, labels = cluster.cluster_weight(w_pruned, 8, "linear", mask=m)
        assert labels.shape == w.shape and labels.dtype == torch.int64
        assert torch.equal(labels == -1, ~mask)
        rebuilt = cluster.shared_weight(c, labels)
        assert torch.all(rebuilt[~mask] == 0)
        assert torch.equal(rebuilt[mask], c[labels[mask]])
        assert rebuilt[mask].unique().numel() == 8
        expected_c, _ = cluster.kmeans_1d(w[mask], 8, "linear")
        assert torch.equal(c, expected_c)  # only the kept values were clustered
    # an explicit mask wins over the values: a kept exact zero is clustered, a masked value is not
    m2 = mask.clone()
    m2[0, 0] = False
    _, labels = cluster.cluster_weight(w, 4, mask=m2)
    assert torch.equal(labels == -1, ~m2)
    c, labels = cluster.cluster_weight(torch.zeros(3, 3), 4)
    assert c.numel() == 0 and torch.all(labels == -1)
    with pytest.raises(RecipeError, match="mask shape"):
        cluster.cluster_weight(w, 4, mask=mask[:10])


def test_shared_sums_gradients_per_cluster():
    torch.manual_seed(1)
    layer = nn.Linear(30, 10)
    mask = prune.magnitude_mask(layer.weight, 0.5)
    centroids, labels = cluster.cluster_weight(layer.weight * mask, 6, "density", mask=mask)
    x, y = torch.randn(16, 30), torch.randint(0, 10, (16,))

    # the weight gradient by hand, on the plain shared weight
    w = cluster.shared_weight(centroids, labels).requires_grad_()
    nn.functional.cross_entropy(nn.functional.linear(x, w, layer.bias), y).backward()
    keep = labels >= 0
    expected = torch.zeros(len(centroids)).scatter_add_(0, labels[keep], w.grad[keep])
    assert torch.allclose(expected, torch.bincount(labels[keep], weights=w.grad[keep]).float(), atol=1e-7)

    parametrize.register_parametrization(layer, "weight", cluster.Shared(centroids, labels))
    shared = layer.parametrizations.weight[0]
    assert torch.equal(layer.weight, w.detach())
    nn.functional.cross_entropy(layer(x), y).backward()
    assert torch.allclose(shared.centroids.grad, expected, rtol=1e-5, atol=1e-7)
    assert layer.parametrizations.weight.original.grad is None  # the stored original is unused

    # one SGD step: the weight still has 6 shared values, pruned entries still exactly 0
    opt = torch.optim.SGD([p for n, p in layer.named_parameters() if not n.endswith("original")], lr=0.5)
    opt.step()
    assert torch.allclose(shared.centroids.detach(), centroids - 0.5 * expected)
    assert torch.all(layer.weight[~keep] == 0)
    assert layer.weight[keep].unique().numel() == 6


def Net():  # noqa: N802 (reads like the class it builds)
    return TinyConvNet(6, 5, 8, 120, 10)


def test_cluster_model_in_place():
    torch.manual_seed(2)
    model = Net()
    bias = model.fc1.bias.detach().clone()
    masks = prune.model_masks(model, 0.6, scope="global")
    prune.apply_masks(model, masks)
    out = cluster.cluster_model(model, 16, "kmeans++", masks=masks, seed=3)
    params = prune.compressible(model)
    assert list(out) == list(params) == ["conv.weight", "fc1.weight", "fc2.weight"]
    for name, (c, labels) in out.items():
        w = params[name].detach()
        assert torch.equal(w, cluster.shared_weight(c, labels))
        assert torch.equal(w != 0, masks[name])
        assert w[masks[name]].unique().numel() <= 16
    assert torch.equal(model.fc1.bias, bias)  # biases are never clustered
    # without masks the zeros are taken as pruned: clustering again changes nothing
    again = cluster.cluster_model(model, 16, "kmeans++", seed=3)
    for name, (c, labels) in again.items():
        assert torch.equal(labels == -1, ~masks[name])
        assert torch.equal(params[name].detach(), cluster.shared_weight(*out[name]))


def test_conv_layers_get_their_own_cluster_count(lenet5, small):
    """Deep Compression's split: a big codebook for conv layers, a small one for fully connected ones."""
    import compress_engine as ce
    res = ce.compress(lenet5, ce.Recipe(sparsity=0.5, clusters=4, conv_clusters=64), small)
    levels = {row["name"]: row["levels"] for row in res.metrics["layers"] if row["levels"]}
    weights = {n: p.detach() for n, p in res.model.state_dict().items() if n in levels}
    for name, w in weights.items():
        k = 64 if w.dim() == 4 else 4
        assert levels[name] == k
        assert w[w != 0].unique().numel() <= k
    assert {w.dim() for w in weights.values()} == {2, 4}
    decoded = ce.decode(res.artifact)
    assert all(torch.equal(decoded[n], w) for n, w in weights.items())


def test_staged_recipe_equals_one_recipe(lenet300, small):
    """bench/deep_compression.py runs Deep Compression stage by stage (prune, then share, then Huffman,
    each from the previous stage's model) so it can report every stage without training twice. That is
    only honest if the stages give exactly what the single recipe gives."""
    import compress_engine as ce
    full = ce.Recipe(sparsity=0.9, prune_scope="global", finetune_epochs=1, clusters=8, huffman=True)
    one = ce.compress(lenet300, full, small)
    pruned = ce.compress(lenet300, full.replace(clusters=None, huffman=False), small)
    sharing = ce.Recipe(clusters=8, finetune_epochs=1, lr=full.lr)
    shared = ce.compress(pruned.model, sharing, small)
    coded = ce.compress(shared.model, sharing.replace(finetune_epochs=0, huffman=True), small)
    for name, w in one.model.state_dict().items():
        assert torch.equal(w, coded.model.state_dict()[name]), name
    assert coded.metrics["accuracy"] == one.metrics["accuracy"]
    # same streams byte for byte; only the header differs, by the recipe text it records
    parts = lambda res: {k: v for k, v in res.metrics["bytes_breakdown"].items() if k != "header"}
    assert parts(coded) == parts(one)
    # the header is zlib-compressed JSON of the fields each recipe changes: the whole recipe's five
    # (sparsity, scope, epochs, clusters, Huffman) against the last stage's two; nothing else differs
    head = lambda res: res.metrics["bytes_breakdown"]["header"]
    assert coded.metrics["artifact_bytes"] - one.metrics["artifact_bytes"] == head(coded) - head(one)
    assert 0 < head(one) - head(coded) <= 48


def test_layer_pruned_to_nothing_still_clusters_and_encodes(small):
    """Found by tests/test_properties.py: at sparsity 0.999 a small layer keeps no weight, has no
    centroids, and encode refused its empty codebook. Its zeros need none."""
    import compress_engine as ce
    from compress_engine.core.model import MLP
    model = MLP([784, 24, 12, 10])
    res = ce.compress(model, ce.Recipe(sparsity=0.999, clusters=2), small)
    assert res.model.layers[1].weight.count_nonzero() == 0
    decoded = ce.decode(res.artifact)
    assert all(torch.equal(decoded[n], w) for n, w in res.model.state_dict().items())
    assert res.metrics["artifact_bytes"] == len(res.artifact)
