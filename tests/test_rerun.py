"""Re-evaluating only what depends on a changed parameter (rerun.Reruns), as the sensitivity scan does: the same
bits as the whole model's logits, and a refusal (None) wherever that cannot be guaranteed."""

import pytest
import torch
from torch import nn

import compress_engine as ce
from compress_engine.core import prune, rerun, sensitivity
from compress_engine.core.model import compressible
from compress_engine.core.train import fast_eval_copy, logits, stop_when


@pytest.fixture(scope="module")
def resnet8():
    return ce.load_model("resnet-8")


@pytest.fixture
def small_batches(monkeypatch):
    """Batches of 32 (a conv net's are 256): 80 images are three, the last part-full, as 300 were two."""
    from compress_engine.core import train
    real = train.batches
    monkeypatch.setattr(train, "batches", lambda model, x, batch_size=None: real(model, x, batch_size or 32))
    monkeypatch.setattr(rerun, "batches", train.batches)


def evaluated(model):
    return fast_eval_copy(sensitivity._deployed(model))


def test_every_layer_of_a_resnet_reruns_to_the_whole_models_bits(resnet8, fmnist, small_batches):
    work, x = evaluated(resnet8), fmnist.x("test")[:80]
    dense = logits(work, x)
    reruns = rerun.Reruns(work)
    assert reruns.traced
    params = compressible(work)
    for i, (name, p) in enumerate(params.items()):
        f = reruns.of(name, x, dense)
        if i == 0:  # the stem reads only the input: nothing upstream to keep, the whole model is as quick
            assert f is None
            continue
        assert f is not None, name
        saved = p.detach().clone()
        with torch.no_grad():
            p.copy_(saved * prune.magnitude_mask(saved, 0.9))
        try:
            whole = logits(work, x)
            assert torch.equal(f(), whole), name
            assert not torch.equal(whole, dense), name  # the change reached the outputs
        finally:
            with torch.no_grad():
                p.copy_(saved)
        assert torch.equal(f(), dense), name  # and back


def test_a_scan_with_reruns_has_the_numbers_of_whole_evaluations(resnet8, fmnist, monkeypatch, small_batches):
    grid = dict(sparsities=(0.0, 0.9), clusters=(None, 4), subset=80, use_cache=False)
    fast = sensitivity.scan(resnet8, fmnist, **grid)
    monkeypatch.setattr(rerun.Reruns, "of", lambda *a, **k: None)  # every setting evaluates the whole model
    assert sensitivity.scan(resnet8, fmnist, **grid)["rows"] == fast["rows"]


class Tied(nn.Module):
    """c shares a's weight (one Parameter, listed once by named_parameters, as a tied embedding is)."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)
        self.c.weight = self.a.weight

    def forward(self, x):
        return self.c(torch.relu(self.b(torch.relu(self.a(x)))))


class WritesIntoKept(nn.Module):
    """Adds b's output into a's in place: a's output is kept between reruns, so a second rerun would read it changed."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x):
        h = self.a(x)
        h.add_(self.b(h))
        return h


class Branchy(nn.Module):
    """A branch on the data: torch.fx cannot trace it."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x):
        h = self.a(x)
        return self.b(h) if h.sum() > 0 else h


def test_a_parameter_shared_by_two_layers_reruns_both():
    torch.manual_seed(0)
    m, x = Tied().eval(), torch.randn(50, 8)
    f = rerun.Reruns(m).of("b.weight", x, logits(m, x))
    assert f is not None
    g = rerun.Reruns(m).of("a.weight", x, logits(m, x))
    assert g is None  # a is the first layer: all of the model depends on it (through c too)
    with torch.no_grad():
        m.b.weight.mul_(0.5)
    assert torch.equal(f(), logits(m, x))
    shares = rerun.Reruns(m).shares(x[:1])
    assert shares["a.weight"] == 1.0 and shares["b.weight"] == pytest.approx(2 / 3)  # b and c of a, b, c


def test_reruns_refuse_what_they_cannot_do_exactly(fmnist):
    torch.manual_seed(0)
    x = torch.randn(50, 8)
    m = WritesIntoKept().eval()
    assert rerun.Reruns(m).of("b.weight", x, m(x)) is None  # the second of its two checks differs
    m = Branchy().eval()
    r = rerun.Reruns(m)
    assert not r.traced and r.of("b.weight", x, m(x)) is None
    assert r.shares(x[:1]) == {"a.weight": 1.0, "a.bias": 1.0, "b.weight": 1.0, "b.bias": 1.0}
    g = torch.Generator().manual_seed(1)
    xb = torch.randn(80, 8, generator=g)
    blobs = ce.Dataset.from_tensors(xb[:40], (xb[:40, 0] > 0).long(), xb[40:], (xb[40:, 0] > 0).long(), name="blobs")
    res = sensitivity.scan(m, blobs, sparsities=(0.0, 0.5), clusters=(None,), subset=40, use_cache=False)
    assert len(res["rows"]) == 2 * 2  # an untraceable model is still scanned, each setting whole
    lenet = ce.load_model("lenet-300-100")
    work, xs = evaluated(lenet), fmnist.x("test")[:100]
    kept_too_big = rerun.Reruns(work).of("layers.1.weight", xs, logits(work, xs), max_bytes=100 * 300 * 4 - 1)
    assert kept_too_big is None  # layer 0's 300 outputs of 100 images, one byte more than allowed


def test_a_rerun_stops_between_batches(resnet8, fmnist):
    work, x = evaluated(resnet8), fmnist.x("test")[:600]
    dense = logits(work, x)
    f = rerun.Reruns(work).of("fc.weight", x, dense)
    with stop_when(lambda: True), pytest.raises(ce.Stopped):
        f()
    with stop_when(lambda: True), pytest.raises(ce.Stopped):  # and while it keeps what it reads, not a refusal
        rerun.Reruns(work).of("fc.weight", x, dense)


def test_shares_of_an_mlp_are_the_multiply_adds_from_its_layer_on(fmnist):
    work = evaluated(ce.load_model("lenet-300-100"))
    shares = rerun.Reruns(work).shares(fmnist.x("test")[:1])
    macs = [784 * 300, 300 * 100, 100 * 10]
    assert shares["layers.0.weight"] == 1.0
    assert shares["layers.1.weight"] == pytest.approx(sum(macs[1:]) / sum(macs))
    assert shares["layers.2.weight"] == pytest.approx(macs[2] / sum(macs))
    n, seconds = sensitivity.expected(work, 1.0, 1, example=fmnist.x("test")[:1])
    grid = len(sensitivity.SPARSITIES) * len(sensitivity.CLUSTERS)
    assert n == 3 * grid
    assert seconds == pytest.approx(grid * sensitivity.SETTING_COST * sum(shares[k] for k in compressible(work)))


def test_the_pages_estimate_leaves_the_model_as_it_was(resnet8, fmnist):
    """expected() runs the model once for its shapes: on a copy, so a model in training mode (whose BatchNorms would
    update their running statistics) shared with other sessions is not changed."""
    import copy
    net = copy.deepcopy(resnet8).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    n, seconds = sensitivity.expected(net, 1.0, 10_000, example=fmnist.x("test")[:1])
    assert n == 630 and 0 < seconds < sensitivity.expected(net, 1.0, 10_000)[1]  # less than a whole model a setting
    assert net.training and all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


@pytest.mark.parametrize("name", ["sequential-mlp", "res-cnn-bn", "conv1d", "mobile", "resnext", "transformer",
                                  "attention-pool", "lstm", "bi-gru", "lstm-cell", "conv3d", "conv-transpose"])
def test_every_model_of_the_any_model_zoo_reruns_exactly(name):
    """Attention, recurrent, grouped, depthwise, 1-D / 3-D and transposed convolutions, BatchNorm folded: for each
    layer a rerun is either refused or, after the layer's weights change, the whole model's outputs bit for bit."""
    from test_any_model import ZOO
    make, shape, _ = ZOO[name]
    torch.manual_seed(0)
    work = evaluated(make().eval())
    x = torch.randn(300, *shape)
    reruns, used = rerun.Reruns(work), 0
    for pname, p in compressible(work).items():
        f = reruns.of(pname, x, logits(work, x))
        if f is None:
            continue
        used += 1
        saved = p.detach().clone()
        with torch.no_grad():
            p.mul_(0.3)
        try:
            assert torch.equal(f(), logits(work, x)), pname
        finally:
            with torch.no_grad():
                p.copy_(saved)
    assert used >= 1  # every one of these models has a layer whose upstream part is kept
