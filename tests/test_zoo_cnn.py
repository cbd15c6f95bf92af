"""The zoo's residual CNN (resnet-8), BatchNorm folding, augmentation, and every compression path on the CNN.

The architecture is tested at random init with randomised BatchNorm statistics (so folding has
something to fold) on a tiny slice of the real data: fast, and independent of the shipped checkpoint.
"""

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

import compress_engine as ce
from compress_engine.core.fold import fold_batchnorm, foldable_pairs
from compress_engine.core.train import crop_flip, fit
from compress_engine.playground import zoo

SPEC = zoo.SAMPLES["resnet-8"][0]


def randomised(model, seed=0):
    """BatchNorm statistics and affine parameters away from their init (1, 0), as after training."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(n, generator=g) * 2 + 0.2)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.2)
    return model.eval()


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    return randomised(zoo.build(SPEC))


@pytest.fixture(scope="module")
def tiny_data(fmnist):
    return fmnist.subset(256, 200, "fashion-mnist[tiny]")


def test_architecture(cnn):
    assert ce.param_count(cnn) <= 1_000_000
    assert cnn.spec() == SPEC
    assert sum(isinstance(m, nn.BatchNorm2d) for m in cnn.modules()) == 9  # stem, 2 per block, 2 shortcuts
    assert cnn(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    assert cnn(torch.rand(2, 1, 20, 20)).shape == (2, 10)  # global pooling: any image size


@pytest.mark.parametrize("bad", [
    {**SPEC, "widths": [32, 64]},               # inner has 3
    {**SPEC, "inner": [32, 0, 128]},
    {**SPEC, "batchnorm": "yes"},
    {**SPEC, "classes": None},
    {**SPEC, "widths": [32, 64, 10**9]},
])
def test_build_refuses_bad_spec(bad):
    with pytest.raises(ce.ModelError):
        zoo.build(bad)


def test_fold_batchnorm_same_outputs(cnn):
    x = torch.rand(16, 1, 28, 28)
    folded = fold_batchnorm(cnn)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in cnn.modules())  # the input is not changed
    with torch.no_grad():
        assert torch.allclose(folded(x), cnn(x), atol=1e-5, rtol=1e-4)
    # the folded model is a zoo architecture too: it rebuilds from its spec alone
    spec = folded.spec()
    assert spec == {**SPEC, "batchnorm": False}
    rebuilt = zoo.from_state_dict(spec, folded.state_dict())
    with torch.no_grad():
        assert torch.equal(rebuilt(x), folded(x))
    assert ce.param_count(folded) < ce.param_count(cnn)


def test_fold_any_model():
    """Conv->BN and Linear->BN1d pairs fold; a BN not fed by a layer, or fed by a layer whose output is
    also used elsewhere, stays."""
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn_in = nn.BatchNorm2d(1)
            self.conv = nn.Conv2d(1, 4, 3, bias=True)
            self.bn = nn.BatchNorm2d(4)
            self.conv2 = nn.Conv2d(4, 4, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(4)
            self.fc = nn.Linear(4, 6)
            self.bn3 = nn.BatchNorm1d(6)

        def forward(self, x):
            h = torch.relu(self.bn(self.conv(self.bn_in(x))))
            c = self.conv2(h)
            h = self.bn2(c) + c                     # conv2's output is used twice: not foldable
            return self.bn3(self.fc(h.mean((2, 3))))

    net = randomised(Net(), seed=3)
    assert foldable_pairs(net) == [("conv", "bn"), ("fc", "bn3")]
    folded = fold_batchnorm(net)
    assert isinstance(folded.bn, nn.Identity) and isinstance(folded.bn3, nn.Identity)
    assert isinstance(folded.bn_in, nn.BatchNorm2d) and isinstance(folded.bn2, nn.BatchNorm2d)
    x = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(folded(x), net(x), atol=1e-5)


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_transposed_convs_fold_as_torchs_own_fusion(dims):
    """A BatchNorm after a transposed conv (weight (in, out / groups, *k)) scales the conv's dim 1: the folded
    weights equal torch.nn.utils.fusion.fuse_conv_bn_eval(transpose=True), and a grouped one (which torch's
    fusion does not take) gives the same outputs as the unfolded model."""
    conv, norm = getattr(nn, f"ConvTranspose{dims}d"), getattr(nn, f"BatchNorm{dims}d")
    net = randomised(nn.Sequential(conv(4, 6, 3, stride=2), norm(6), nn.ReLU(),
                                   conv(6, 8, 2, groups=2, bias=False), norm(8)), seed=dims)
    assert foldable_pairs(net) == [("0", "1"), ("3", "4")]
    folded = fold_batchnorm(net)
    ref = fuse_conv_bn_eval(copy.deepcopy(net[0]), net[1], transpose=True)
    assert torch.allclose(folded[0].weight, ref.weight, rtol=1e-6, atol=1e-7)
    assert torch.allclose(folded[0].bias, ref.bias, rtol=1e-6, atol=1e-7)
    assert isinstance(folded[4], nn.Identity) and folded[3].bias is not None
    x = torch.rand(3, 4, *[5] * dims)
    with torch.no_grad():
        assert torch.allclose(folded(x), net(x), atol=1e-5, rtol=1e-4)


def test_crop_flip_moves_pixels_not_values():
    x = torch.rand(64, 1, 28, 28)
    a = crop_flip(2)(x, torch.Generator().manual_seed(0))
    b = crop_flip(2)(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b)  # seeded
    assert not torch.equal(a, x)
    # every output pixel is an input pixel of the same image or padding (0); the centre 24x24 never pads
    for i in range(8):
        vals = set(x[i].flatten().tolist()) | {0.0}
        assert set(a[i].flatten().tolist()) <= vals
        centre = set(a[i, 0, 2:-2, 2:-2].flatten().tolist())
        assert centre <= set(x[i].flatten().tolist())


def test_sgd_fit_trains_and_flushes(tiny_data):
    torch.manual_seed(0)
    model = zoo.build(SPEC)
    hist = fit(model, tiny_data, epochs=1, lr=0.05, batch_size=64, weight_decay=5e-4, momentum=0.9,
               transform=crop_flip(2), warmup=1)
    assert len(hist) == 4 and all(torch.isfinite(torch.tensor(hist)))
    tiny = torch.finfo(torch.float32).tiny
    assert not any(((p != 0) & (p.abs() < tiny)).any() for p in model.parameters())


def _check(result, data):
    """The artifact rebuilds the compressed, folded model on its own, with the same outputs."""
    model, meta = ce.decode_model(result.artifact)
    assert meta["spec"]["batchnorm"] is False
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    x = data.x("test")[:32]
    with torch.no_grad():
        assert torch.allclose(model(x), result.model(x), atol=1e-5)
    return result.metrics


def test_compress_folds_first(cnn, tiny_data):
    """The plain recipe: folded, same predictions as the BatchNorm model, dense size counted as deployed."""
    res = ce.compress(cnn, ce.Recipe(), tiny_data)
    m = _check(res, tiny_data)
    assert m["agreement"] == 1.0 and m["accuracy"] == m["dense_accuracy"]
    assert m["dense_params"] == ce.param_count(fold_batchnorm(cnn)) == m["params"]


@pytest.mark.parametrize("recipe", [
    ce.Recipe(sparsity=0.8),
    ce.Recipe(sparsity=0.9, prune_scope="global", clusters=16, huffman=True),
    ce.Recipe(clusters=8, conv_clusters=32, cluster_init="density"),
    ce.Recipe(bits=8, per_channel=True, symmetric=True),
    ce.Recipe(sparsity=0.5, bits=4, calibration="mse"),
], ids=["prune", "global+cluster+huffman", "cluster", "quantize8", "prune+quantize4"])
def test_compress_paths(cnn, tiny_data, recipe):
    m = _check(ce.compress(cnn, recipe, tiny_data), tiny_data)
    assert m["artifact_bytes"] < m["dense_bytes"]
    if recipe.sparsity:
        assert m["sparsity"] >= recipe.sparsity * 0.9


def test_structured_pruning_shrinks_the_cnn(cnn, tiny_data):
    res = ce.compress(cnn, ce.Recipe(sparsity=0.5, structured=True), tiny_data)
    m = _check(res, tiny_data)
    spec = res.model.spec()
    assert all(w < w0 for w, w0 in zip(spec["inner"], SPEC["inner"]))  # every block's inside shrank
    assert m["params"] < 0.6 * m["dense_params"]


def test_finetuning_the_folded_cnn(cnn, tiny_data):
    res = ce.compress(cnn, ce.Recipe(sparsity=0.7, clusters=16, finetune_epochs=1), tiny_data)
    m = _check(res, tiny_data)
    w = res.model.blocks[1].conv2.weight
    assert len(torch.unique(w[w != 0])) <= 16 and (w == 0).float().mean() >= 0.69


def test_shipped_resnet8_card_and_folded_checkpoint(fmnist):
    """The card says how it was trained (recipe, threads, CPU time); folded, the checkpoint gives the same answers."""
    card = ce.model_card("resnet-8")
    tr = card["training"]
    assert tr["augment"] == {"crop_pad": 2, "hflip": True} and tr["momentum"] == 0.9 and tr["threads"] == 1
    assert tr["cpu_seconds"] > 0 and card["test_accuracy"] >= 0.935 and card["spec"] == SPEC
    model = ce.load_model("resnet-8")
    x = fmnist.x("test")[:500]
    with torch.no_grad():
        assert torch.allclose(fold_batchnorm(model)(x), model(x), atol=1e-4, rtol=1e-4)
