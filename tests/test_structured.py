"""compress_engine.core.structured: channel dependencies traced with torch.fx, pruned models that compute
exactly what the masked dense model computes, and clear refusals for what it cannot follow."""

import copy

import pytest
import torch
import torch.nn.functional as F
import torch.nn.utils.prune as torch_prune
from torch import nn

from compress_engine.core import prune, structured
from compress_engine.core.errors import ModelError, RecipeError
from compress_engine.playground import zoo


# -----------------------------------------------------------------------------
# a small zoo of shapes (random weights)


class ResCNN(nn.Module):
    """Conv-BN-ReLU stem, a residual block x + BN(conv(ReLU(BN(conv(x))))), a strided conv, global
    average pooling, view(N, -1), Linear."""

    def __init__(self):
        super().__init__()
        self.stem, self.bn0 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv1, self.bn1 = nn.Conv2d(8, 12, 3, padding=1), nn.BatchNorm2d(12)
        self.conv2, self.bn2 = nn.Conv2d(12, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv3, self.bn3 = nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = F.relu(self.bn0(self.stem(x)))
        x = F.relu(x + self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        x = F.relu(self.bn3(self.conv3(x)))
        return self.fc(self.pool(x).view(x.size(0), -1))


class Conv1dNet(nn.Module):
    """Conv1d-BN1d-ReLU-maxpool, Conv1d-tanh scaled by 0.5, flatten into an MLP head (GELU)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn = nn.Conv1d(4, 8, 3, padding=1), nn.BatchNorm1d(8)
        self.conv2 = nn.Conv1d(8, 6, 3)
        self.fc1, self.fc2 = nn.Linear(6 * 6, 12), nn.Linear(12, 3)

    def forward(self, x):
        h = F.max_pool1d(F.relu(self.bn(self.conv1(x))), 2)
        h = torch.tanh(self.conv2(h)) * 0.5
        return self.fc2(F.gelu(self.fc1(torch.flatten(h, 1))))


class TransformerClassifier(nn.Module):
    """Tokens -> Linear -> nn.TransformerEncoder -> mean over tokens -> Linear-ReLU-Linear head."""

    def __init__(self, d=16):
        super().__init__()
        self.embed = nn.Linear(8, d)
        layer = nn.TransformerEncoderLayer(d, nhead=2, dim_feedforward=32, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)
        self.hidden, self.out = nn.Linear(d, 12), nn.Linear(12, 3)

    def forward(self, x):
        return self.out(F.relu(self.hidden(self.encoder(self.embed(x)).mean(1))))


class Seq2Seq(nn.Module):
    """torch's whole nn.Transformer (pre-norm, GELU, two layers each side): the source tokens are also the
    decoder's input, mean-pooled to a Linear head."""

    def __init__(self, d=16):
        super().__init__()
        self.embed = nn.Linear(8, d)
        self.t = nn.Transformer(d, nhead=2, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=24,
                                dropout=0.0, activation="gelu", batch_first=True, norm_first=True)
        self.out = nn.Linear(d, 3)

    def forward(self, x):
        h = self.embed(x)
        return self.out(self.t(h, h).mean(1))


class ResNeXtBlock(nn.Module):
    """ResNeXt's bottleneck (1x1, 3x3 grouped conv of 4 groups, 1x1, each with BatchNorm, added back), then a
    grouped 1x1 conv (2 groups) whose own filters are pruned, pooling and a head."""

    def __init__(self, cin=3, classes=3, width=16, inner=24):
        super().__init__()
        self.stem, self.bn0 = nn.Conv2d(cin, width, 3, padding=1), nn.BatchNorm2d(width)
        self.reduce, self.bn1 = nn.Conv2d(width, inner, 1, bias=False), nn.BatchNorm2d(inner)
        self.grouped, self.bn2 = nn.Conv2d(inner, inner, 3, padding=1, groups=4, bias=False), nn.BatchNorm2d(inner)
        self.expand, self.bn3 = nn.Conv2d(inner, width, 1, bias=False), nn.BatchNorm2d(width)
        self.mix = nn.Conv2d(width, 12, 1, groups=2)
        self.head = nn.Linear(12, classes)

    def forward(self, x):
        x = F.relu(self.bn0(self.stem(x)))
        h = F.relu(self.bn2(self.grouped(F.relu(self.bn1(self.reduce(x))))))
        x = F.relu(x + self.bn3(self.expand(h)))
        return self.head(F.relu(self.mix(x)).mean((2, 3)))


class TokenMLP(nn.Module):
    """A per-token MLP on (N, T, F), mean over tokens, a Linear head: channels in the last dim, then dim 1."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.head = nn.Linear(8, 16), nn.Linear(16, 8), nn.Linear(8, 3)

    def forward(self, x):
        h = self.fc2(F.gelu(self.fc1(x)))
        return self.head(torch.relu(h).mean(dim=1))


class UpNet(nn.Module):
    """A strided conv down, a transposed conv (weight (in, out, k, k)) with BatchNorm back up, a 1x1 head per
    pixel: the transposed conv reads the conv's channels and makes its own."""

    def __init__(self):
        super().__init__()
        self.down = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.up, self.bn = nn.ConvTranspose2d(8, 12, 2, stride=2), nn.BatchNorm2d(12)
        self.head = nn.Conv2d(12, 5, 1)

    def forward(self, x):
        return self.head(F.relu(self.bn(self.up(F.relu(self.down(x))))))


class Up1d(nn.Module):
    """Conv1d, a 1-D transposed conv (stride 2, output_padding 1) without bias, mean over time, a Linear head."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 8, 3)
        self.up = nn.ConvTranspose1d(8, 6, 3, stride=2, output_padding=1, bias=False)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        return self.head(torch.tanh(self.up(F.relu(self.conv(x)))).mean(2))


class TinyUNet(nn.Module):
    """A U-Net of two levels: the encoder's map (with BatchNorm) skips over a down / transposed-up pair and is
    joined to the upsampled map by torch.cat; a conv with BatchNorm reads both; a 1x1 head per pixel."""

    def __init__(self):
        super().__init__()
        self.enc, self.bn_enc = nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6)
        self.down = nn.Conv2d(6, 8, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(8, 5, 2, stride=2)
        self.dec, self.bn_dec = nn.Conv2d(11, 7, 3, padding=1), nn.BatchNorm2d(7)
        self.head = nn.Conv2d(7, 4, 1)

    def forward(self, x):
        e = F.relu(self.bn_enc(self.enc(x)))
        u = F.relu(self.up(F.relu(self.down(e))))
        return self.head(F.relu(self.bn_dec(self.dec(torch.cat([e, u], 1)))))


class DenseBlock(nn.Module):
    """DenseNet-style: each conv reads the input and every map before it, joined by torch.cat (so the input's
    channels, which no layer makes, sit among them); one BatchNorm over all 11 joined channels; global average
    pooling; a Linear head."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(7, 4, 3, padding=1)
        self.bn, self.head = nn.BatchNorm2d(11), nn.Linear(11, 3)

    def forward(self, x):
        h = torch.cat([x, F.relu(self.c1(x))], 1)
        h = torch.concat((h, F.relu(self.c2(h))), dim=1)
        return self.head(F.relu(self.bn(h)).mean((2, 3)))


class Pyramid(nn.Module):
    """An FPN-style decoder: a strided conv, upsampled back by F.interpolate to the size of the first map
    (size=x.shape[2:]) and added to it (one group), then nn.Upsample (bilinear) and a 1x1 head."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(6, 6, 3, stride=2, padding=1)
        self.up, self.head = nn.Upsample(scale_factor=2, mode="bilinear"), nn.Conv2d(6, 2, 1)

    def forward(self, x):
        a = F.relu(self.c1(x))
        b = F.interpolate(F.relu(self.c2(a)), size=a.shape[2:], mode="nearest")
        return self.head(self.up(a + b))


class SqueezeExcite(nn.Module):
    """A conv gated by squeeze-and-excitation (global pool, Linear down, Linear up, sigmoid; h * g[:, :, None, None]),
    a second conv with a global-context vector added back over its map (c[..., None].unsqueeze(3)), pooling, a
    head."""

    def __init__(self):
        super().__init__()
        self.conv, self.conv2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 6, 3, padding=1)
        self.down, self.up = nn.Linear(8, 4), nn.Linear(4, 8)
        self.context, self.head = nn.Linear(6, 6), nn.Linear(6, 3)

    def forward(self, x):
        h = F.relu(self.conv(x))
        h = h * torch.sigmoid(self.up(F.relu(self.down(h.mean((2, 3))))))[:, :, None, None]
        h = F.relu(self.conv2(h))
        h = h + self.context(h.mean((2, 3)))[..., None].unsqueeze(3)
        return self.head(h.mean((2, 3)))


class Volume(nn.Module):
    """3-D: a conv with BatchNorm, max-pooled, a 3-D transposed conv back up, mean over the volume, a head."""

    def __init__(self):
        super().__init__()
        self.c1, self.bn = nn.Conv3d(2, 6, 3, padding=1), nn.BatchNorm3d(6)
        self.up, self.head = nn.ConvTranspose3d(6, 4, 2, stride=2), nn.Linear(4, 3)

    def forward(self, x):
        h = F.max_pool3d(F.relu(self.bn(self.c1(x))), 2)
        return self.head(F.relu(self.up(h)).mean((2, 3, 4)))


class InvertedResidual(nn.Module):
    """MobileNetV2's block after a stem: 1x1 expand + BN + ReLU6, 3x3 depthwise (groups = 12) + BN + ReLU6, 1x1
    project + BN added to the block's input; a strided depthwise conv, pooling and a head."""

    def __init__(self):
        super().__init__()
        self.stem, self.bn0 = nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6)
        self.expand, self.bn1 = nn.Conv2d(6, 12, 1, bias=False), nn.BatchNorm2d(12)
        self.dw, self.bn2 = nn.Conv2d(12, 12, 3, padding=1, groups=12, bias=False), nn.BatchNorm2d(12)
        self.project, self.bn3 = nn.Conv2d(12, 6, 1, bias=False), nn.BatchNorm2d(6)
        self.down, self.head = nn.Conv2d(6, 6, 3, stride=2, padding=1, groups=6), nn.Linear(6, 3)

    def forward(self, x):
        x = F.relu6(self.bn0(self.stem(x)))
        h = F.relu6(self.bn2(self.dw(F.relu6(self.bn1(self.expand(x))))))
        x = x + self.bn3(self.project(h))
        return self.head(F.relu(self.down(x)).mean((2, 3)))


class TokenConv(nn.Module):
    """Token features embedded by a Linear, turned to a Conv1d's channels with transpose(1, 2), then permuted back
    for a Linear over each position, pooled."""

    def __init__(self):
        super().__init__()
        self.embed, self.conv, self.mix, self.head = nn.Linear(8, 12), nn.Conv1d(12, 10, 3, padding=1), \
            nn.Linear(10, 6), nn.Linear(6, 3)

    def forward(self, x):  # (N, T, 8)
        h = F.relu(self.conv(F.relu(self.embed(x)).transpose(1, 2)))  # (N, 10, T)
        return self.head(F.relu(self.mix(h.permute(0, 2, 1))).mean(1))


def sequential_mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16), nn.GELU(),
                         nn.Dropout(0.1), nn.Linear(16, 10))


# name -> (factory, example input shape, the layers whose units it removes)
ZOO = {
    "sequential-mlp": (sequential_mlp, (4, 1, 8, 8), {"1", "3"}),
    "lenet5": (zoo.LeNet5, (4, 1, 28, 28), {"conv1", "conv2", "fc1"}),
    "res-cnn": (ResCNN, (4, 3, 8, 8), {"stem", "conv1", "conv2", "conv3"}),
    "conv1d": (Conv1dNet, (4, 4, 16), {"conv1", "conv2", "fc1"}),
    "transformer": (TransformerClassifier, (4, 5, 8), {"hidden", "encoder.layers.0.linear1"}),
    "seq2seq": (Seq2Seq, (4, 5, 8), {f"t.{s}.layers.{i}.linear1" for s in ("encoder", "decoder") for i in (0, 1)}),
    "token-mlp": (TokenMLP, (4, 5, 8), {"fc1", "fc2"}),
    "token-conv": (TokenConv, (4, 5, 8), {"embed", "conv", "mix"}),
    "resnext": (ResNeXtBlock, (4, 3, 8, 8), {"stem", "expand", "reduce", "grouped", "mix"}),
    "conv-transpose": (UpNet, (4, 3, 8, 8), {"down", "up"}),
    "conv-transpose-1d": (Up1d, (4, 4, 16), {"conv", "up"}),
    "unet": (TinyUNet, (4, 3, 8, 8), {"enc", "down", "up", "dec"}),
    "dense-block": (DenseBlock, (4, 3, 6, 6), {"c1", "c2"}),
    "pyramid": (Pyramid, (4, 3, 8, 8), {"c1", "c2"}),
    "squeeze-excite": (SqueezeExcite, (4, 3, 8, 8), {"conv", "down", "up", "conv2", "context"}),
    "volume": (Volume, (4, 2, 4, 4, 4), {"c1", "up"}),
    "inverted-residual": (InvertedResidual, (4, 3, 8, 8), {"stem", "expand", "project"}),
}


def make(name):
    """A zoo model in eval mode with random weights and random BatchNorm statistics (seeded)."""
    factory, shape, _ = ZOO[name]
    torch.manual_seed(0)
    model = factory()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval(), torch.randn(shape)


def params(model):
    return sum(p.numel() for p in model.parameters())


def zero_at_producers(model, plan):
    """The reference: the removed units' outputs forced to zero where they are made (a forward hook on each
    producer and on the BatchNorm after it, blind to how the layer lays out its weight), so their activations
    are exactly 0 after the group's last op, as long as each op on the way maps 0 to 0 (ReLU, GELU, tanh,
    pooling, x * 0.5, sums)."""
    ref = copy.deepcopy(model)

    def zero(name, keep, trailing=None):
        ref.get_submodule(name).register_forward_hook(lambda _m, _in, out: out * keep.reshape(
            -1, *[1] * (out.dim() - 2 if trailing is None else trailing)))

    for g in plan.groups:
        drop = torch.ones(g.units, dtype=torch.bool)
        drop[g.keep] = False
        for name in g.producers:
            m = ref.get_submodule(name)
            zero(name, (~drop).float(), 0 if isinstance(m, nn.Linear) else m.weight.dim() - 2)
        for name, offset, span in g.norms:  # its features offset .. offset + units - 1 are the group's
            keep = torch.ones(span)
            keep[offset:offset + g.units][drop] = 0
            zero(name, keep)
    return ref


def apply_masks(model, masks):
    ref = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if name in masks:
                p.mul_(masks[name])
    return ref


# -----------------------------------------------------------------------------
# the zoo: exact, smaller, still runs, input untouched


@pytest.mark.parametrize("amount", [0.5, 0.8])
@pytest.mark.parametrize("name", ZOO)
def test_pruned_model_equals_zeroed_units(name, amount):
    model, x = make(name)
    before = copy.deepcopy(model.state_dict())
    plan = structured.plan(model, amount, x)
    assert set(plan.keep()) == ZOO[name][2]
    small = structured.apply(model, plan)
    assert type(small) is type(model) and params(small) < params(model)
    with torch.enable_grad():  # not torch's fast path for a transformer layer, which calls no linear1 module
        want = zero_at_producers(model, plan)(x).detach()
    with torch.no_grad():
        got = small(x)
        assert torch.allclose(got, want, atol=1e-5)
        assert torch.allclose(got, apply_masks(model, structured.masks(model, plan))(x), atol=1e-5)
        assert got.shape == model(x).shape
    # the input model is untouched
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert params(model) == sum(v.numel() for k, v in before.items() if "running" not in k and "num_batches" not in k)
    # the pruned layers say their new sizes, so the user's class still makes sense of them
    for g in plan.groups:
        for layer in g.producers:
            m = small.get_submodule(layer)
            assert (m.out_features if isinstance(m, nn.Linear) else m.out_channels) == len(g.keep)
        for layer, offset, span in g.norms:  # BatchNorms, and depthwise convs (one filter per channel)
            m = small.get_submodule(layer)
            n = m.num_features if isinstance(m, nn.modules.batchnorm._BatchNorm) else m.groups
            assert n == len(m.weight) <= span
            assert isinstance(m, nn.modules.batchnorm._BatchNorm) or m.in_channels == m.out_channels == n
            assert (offset, span) != (0, g.units) or n == len(g.keep)


def test_one_call_equals_plan_then_apply():
    model, x = make("res-cnn")
    a = structured.prune_structured(model, 0.5, x).state_dict()
    b = structured.apply(model, structured.plan(model, 0.5, x)).state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("spec", [zoo.SAMPLES["lenet-300-100"][0], zoo.SAMPLES["lenet-5"][0]])
@pytest.mark.parametrize("amount", [0.25, 0.5, 0.9, 1.0])
def test_sample_models_keep_what_structured_keep_keeps(spec, amount):
    """On the sample MLP and LeNet-5, the graph gives the same units as prune.structured_keep per layer
    (what the fixed layer chain it replaced kept), and the rebuilt zoo spec fits the smaller weights."""
    torch.manual_seed(0)
    model = zoo.build(spec).eval()
    plan = structured.plan(model, amount, torch.randn(2, 1, 28, 28))
    hidden = [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))][:-1]
    assert [g.producers for g in plan.groups] == [(n,) for n in hidden]
    for layer, keep in plan.keep().items():
        assert torch.equal(keep, prune.structured_keep(model.get_submodule(layer).weight, amount))
    small = structured.apply(model, plan)
    mine = small.state_dict()
    rebuilt = zoo.from_state_dict(small.spec(), mine).state_dict()
    assert list(mine) == list(rebuilt) and all(torch.equal(mine[k], rebuilt[k]) for k in mine)


@pytest.mark.parametrize("amount", [0.25, 0.5, 0.75])
def test_a_transposed_conv_drops_the_output_channels_torchs_ln_structured_drops(amount):
    """A transposed conv's output channels are its weight's dim 1: the plan keeps exactly the channels that torch's
    prune.ln_structured(n=2, dim=1) leaves unmasked, and the smaller layer holds those slices of the weight."""
    model, x = make("conv-transpose")
    ref = copy.deepcopy(model.up)
    torch_prune.ln_structured(ref, "weight", amount=amount, n=2, dim=1)
    kept = ref.weight_mask.flatten(2).any(2).any(0).nonzero().squeeze(1)
    plan = structured.plan(model, amount, x)
    assert torch.equal(plan.keep()["up"], kept)
    small = structured.apply(model, plan).up
    assert small.out_channels == len(kept) and small.in_channels == len(plan.keep()["down"])
    assert torch.equal(small.weight, model.up.weight[plan.keep()["down"]][:, kept])


def test_ties_are_broken_like_structured_keep():
    layer = nn.Linear(3, 6)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, -1], [0.6, 0.8, 0], [2, 0, 0], [0, 0, 1]]))
    model = nn.Sequential(layer, nn.ReLU(), nn.Linear(6, 2))
    for amount in (0.2, 0.5, 0.7):
        assert torch.equal(structured.plan(model, amount, torch.randn(1, 3)).keep()["0"],
                           prune.structured_keep(layer.weight, amount))


# -----------------------------------------------------------------------------
# groups: residual additions and BatchNorm


def test_residual_layers_are_one_group_chosen_by_summed_norms():
    model, x = make("res-cnn")
    plan = structured.plan(model, 0.5, x)
    groups = {g.producers: g for g in plan.groups}
    res = groups[("stem", "conv2")]
    assert res.norms == (("bn0", 0, 8), ("bn2", 0, 8))
    assert {c[0] for c in res.consumers} == {"conv1", "conv3"}
    assert groups[("conv1",)].norms == (("bn1", 0, 12),) and groups[("conv3",)].consumers == (("fc", 1, 1, 0, 16),)
    assert plan.skipped == {"fc": "its channels reach the model output"}
    # by hand: unit norms of stem 3,2.5,0,0 and of conv2 0,0,2,5; summed 3,2.5,2,5: keep units 0 and 3
    # (each layer on its own would keep {0, 1} and {2, 3})
    with torch.no_grad():
        model.stem.weight.zero_()
        model.conv2.weight.zero_()
        model.stem.weight[:4, 0, 0, 0] = torch.tensor([3.0, 2.5, 0.0, 0.0])
        model.conv2.weight[:4, 0, 0, 0] = torch.tensor([0.0, 0.0, 2.0, 5.0])
        model.stem.weight[4:, 0, 0, 0] = model.conv2.weight[4:, 0, 0, 0] = 0.1
    keep = structured.plan(model, 0.75, x).keep()
    assert keep["stem"].tolist() == keep["conv2"].tolist() == [0, 3]


def test_flatten_maps_each_channel_to_its_block_of_columns():
    model, x = make("conv1d")
    plan = structured.plan(model, 0.5, x)
    g = next(g for g in plan.groups if g.producers == ("conv2",))
    assert g.consumers == (("fc1", 1, 6, 0, 6),)  # 6 channels of length 6: channel c is columns 6c .. 6c+5
    small = structured.apply(model, plan)
    cols = torch.cat([torch.arange(6 * c, 6 * c + 6) for c in g.keep.tolist()])
    rows = plan.keep()["fc1"]  # fc1 loses units of its own too
    assert torch.equal(small.fc1.weight, model.fc1.weight[rows][:, cols]) and small.fc1.in_features == 18


def test_sigmoid_gate_is_pruned_like_its_masked_inputs():
    """sigmoid(0) = 0.5: zeroing a unit where it is made is not removing it. The pruned model is the one
    whose consumer never sees the unit (the masks zero its input columns too), which is what removing means."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Sigmoid(), nn.Linear(8, 2)).eval()
    x = torch.randn(3, 5)
    plan = structured.plan(model, 0.5, x)
    small = structured.apply(model, plan)
    with torch.no_grad():
        assert torch.allclose(small(x), apply_masks(model, structured.masks(model, plan))(x), atol=1e-6)
        assert not torch.allclose(small(x), zero_at_producers(model, plan)(x), atol=1e-3)


def test_plan_leaves_the_model_and_its_batchnorm_statistics_alone():
    model, x = make("res-cnn")
    model.train()
    before = copy.deepcopy(model.state_dict())
    plan = structured.plan(model, 0.5, x)
    assert model.training and model.bn1.training
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    small = structured.apply(model, plan)
    assert small.training and small(x).shape == (4, 10)


# -----------------------------------------------------------------------------
# what it refuses


def test_transformer_prunes_its_feed_forward_units_and_the_head():
    """Attention and LayerNorm mix channels across heads and tokens: the encoder is opaque to the trace, so the layer
    that feeds it is kept whole; the hidden units of its feed-forward block, which only its linear2 reads, are
    pruned, and so is the MLP head behind it."""
    model, x = make("transformer")
    plan = structured.plan(model, 0.5, x)
    assert list(plan.keep()) == ["hidden", "encoder.layers.0.linear1"]
    assert ("`encoder` (TransformerEncoder), whose attention and LayerNorms mix them (only the feed-forward units "
            "inside it are pruned)") in plan.skipped["embed"]
    assert "model output" in plan.skipped["out"]
    ff = [g for g in plan.groups if g.producers == ("encoder.layers.0.linear1",)][0]
    assert ff.norms == () and ff.consumers == (("encoder.layers.0.linear2", 1, 1, 0, 32),)


@pytest.mark.parametrize("amount", [0.25, 0.5, 0.75])
def test_a_feed_forward_block_keeps_the_units_torchs_ln_structured_keeps(amount):
    """Each transformer layer's linear1 keeps the rows torch's prune.ln_structured(n=2, dim=0) leaves unmasked; the
    smaller layer holds those rows (and bias entries) and linear2 those columns; every other tensor of the layer is
    untouched; the pruned model runs torch's fast path and its slow one alike."""
    model, x = make("seq2seq")
    plan = structured.plan(model, amount, x)
    small = structured.apply(model, plan)
    for i in range(2):
        for side in ("encoder", "decoder"):
            name = f"t.{side}.layers.{i}"
            dense, pruned = model.get_submodule(name), small.get_submodule(name)
            ref = copy.deepcopy(dense.linear1)
            torch_prune.ln_structured(ref, "weight", amount=amount, n=2, dim=0)
            kept = ref.weight_mask.any(1).nonzero().squeeze(1)
            assert torch.equal(plan.keep()[f"{name}.linear1"], kept)
            assert torch.equal(pruned.linear1.weight, dense.linear1.weight[kept])
            assert torch.equal(pruned.linear1.bias, dense.linear1.bias[kept])
            assert torch.equal(pruned.linear2.weight, dense.linear2.weight[:, kept])
            assert (pruned.linear1.out_features, pruned.linear2.in_features) == (len(kept), len(kept))
            rest = {k: v for k, v in dense.state_dict().items() if "linear" not in k}
            assert all(torch.equal(v, pruned.state_dict()[k]) for k, v in rest.items())
    layer = nn.TransformerEncoderLayer(16, 2, 24, dropout=0.0, batch_first=True).eval()
    wrapped = nn.Sequential(layer)
    small = structured.apply(wrapped, structured.plan(wrapped, amount, torch.randn(2, 5, 16)))
    tokens = torch.randn(3, 5, 16)
    with torch.no_grad():
        fast = small(tokens)
    assert torch.allclose(fast, small(tokens).detach(), atol=1e-5)  # with gradients: the slow path


class FeedForwardUse(nn.Module):
    """One encoder layer, used by the model's forward in a way that must keep its feed-forward block whole."""

    def __init__(self, how):
        super().__init__()
        self.how = how
        act = (lambda h: torch.softmax(h, -1)) if how == "softmax" else nn.Sigmoid() if how == "sigmoid" else "relu"
        self.layer = nn.TransformerEncoderLayer(8, 2, 12, dropout=0.0, activation=act, batch_first=True)
        self.other = nn.TransformerEncoderLayer(8, 2, 12, dropout=0.0, batch_first=True)
        if how == "tied":
            self.other.linear1.weight = self.layer.linear1.weight
        if how == "hooked":
            self.layer.linear2.register_forward_hook(lambda m, i, o: o)

    def forward(self, x):
        h = self.other(self.layer(x))
        return h + self.layer.linear2(self.layer.linear1(h)) if self.how == "direct" else h


@pytest.mark.parametrize("how, why", [
    ("softmax", "its activation (<lambda>) is not one structured pruning knows to act on each unit alone"),
    ("direct", "the model's forward also uses its linear1 or linear2 directly"),
    ("tied", "shares a parameter with `"),
    ("hooked", "its linear2: it has forward hooks (as the old weight_norm adds), which slicing would break"),
])
def test_a_feed_forward_block_that_is_not_unit_by_unit_is_kept_whole(how, why):
    model, x = FeedForwardUse(how).eval(), torch.randn(2, 5, 8)
    if how == "tied":  # both layers hold the tied weight: nothing is left to prune
        with pytest.raises(ModelError, match=f"nothing.*layer.linear1: .*{why}.*other.linear1: .*{why}"):
            structured.plan(model, 0.5, x)
        return
    plan = structured.plan(model, 0.5, x)
    assert why in plan.skipped["layer.linear1"]
    assert "layer.linear1" not in plan.keep() and "other.linear1" in plan.keep()
    small = structured.apply(model, plan)
    with torch.no_grad():
        assert torch.allclose(small(x), apply_masks(model, structured.masks(model, plan))(x), atol=1e-5)
    plan = structured.plan(FeedForwardUse("sigmoid").eval(), 0.5, x)  # an nn.Module that acts on each unit alone
    assert {"layer.linear1", "other.linear1"} <= set(plan.keep())


def test_a_layer_called_directly_and_inside_a_module_the_trace_keeps_whole_is_kept_whole():
    """The forward calls a transformer layer's linear2 itself: removing its output units would break the layer,
    which also adds linear2's output to its input."""
    class Borrow(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.TransformerEncoderLayer(8, 2, 12, dropout=0.0, batch_first=True)
            self.proj, self.head = nn.Linear(8, 12), nn.Linear(8, 3)

        def forward(self, x):
            return self.head(F.relu(self.layer.linear2(self.proj(self.layer(x))))).mean(1)

    with pytest.raises(ModelError, match=r"nothing.*proj: its channels go into `layer.linear2`, which cannot lose "
                                         r"them: it is called by the forward and also inside `layer`.*layer.linear2: "
                                         r"it is called by the forward and also inside `layer`.*layer.linear1: the "
                                         r"model's forward also uses its linear1 or linear2 directly"):
        structured.plan(Borrow().eval(), 0.5, torch.randn(2, 5, 8))


def test_nothing_prunable_is_refused_naming_the_layers():
    class Positional(nn.Module):  # a learned position table added to the embedding, then attention
        def __init__(self):
            super().__init__()
            self.embed, self.pos = nn.Linear(8, 16), nn.Parameter(torch.zeros(1, 5, 16))
            self.attention = nn.MultiheadAttention(16, 2, batch_first=True)
            self.head = nn.Linear(16, 3)

        def forward(self, x):
            h = self.embed(x) + self.pos
            return self.head(self.attention(h, h, h)[0].mean(1))

    with pytest.raises(ModelError, match=r"nothing.*Positional.*embed: .*tensor that does not come from a prunable"
                                         r".*head: its channels reach the model output"):
        structured.plan(Positional(), 0.5, torch.randn(2, 5, 8))
    with pytest.raises(ModelError, match="nothing"):
        structured.plan(nn.Linear(4, 2), 0.5, torch.randn(1, 4))
    with pytest.raises(ModelError, match="no Linear/Conv layer"):
        structured.plan(nn.ReLU(), 0.5, torch.randn(1, 4))


def test_data_dependent_control_flow_is_refused():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(4, 8), nn.Linear(8, 2)

        def forward(self, x):
            h = self.fc1(x)
            if h.sum() > 0:
                h = F.relu(h)
            return self.fc2(h)

    with pytest.raises(ModelError, match=r"cannot trace Branchy with torch\.fx.*control flow"):
        structured.plan(Branchy(), 0.5, torch.randn(2, 4))


def test_a_submodule_named_by_a_python_keyword_is_named_as_the_cause():
    """torch.fx writes `self.blocks.in(x)` for nn.ModuleDict key 'in', which does not compile: the refusal quotes that
    line and says to rename the submodule, not to remove control flow the forward does not have."""
    class Keyed(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleDict({"in": nn.Linear(4, 8), "head": nn.Linear(8, 2)})

        def forward(self, x):
            return self.blocks["head"](F.relu(self.blocks["in"](x)))

    with pytest.raises(ModelError, match=r"cannot trace Keyed with torch\.fx: the code fx wrote for its graph does "
                                         r"not compile \('blocks_in = self\.blocks\.in\(x\).*rename that submodule"):
        structured.plan(Keyed(), 0.5, torch.randn(2, 4))


class Two(nn.Module):
    """conv a and conv b, joined by `how`, then a Linear-ReLU-Linear head that is always prunable."""

    def __init__(self, how):
        super().__init__()
        self.how = how
        self.a, self.b = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.fc1, self.fc2 = nn.Linear(8 * 16, 6), nn.Linear(6, 2)

    def forward(self, x):
        a = F.relu(self.a(x))
        if self.how == "cat-rows":
            h = torch.cat([a, self.b(a)], 2)
        elif self.how == "cat-flat":
            h = torch.cat([a.flatten(1), self.b(a).flatten(1)], 1)
        elif self.how == "cat-add":
            b = self.b(a)
            h = torch.cat([a, b], 1) + torch.cat([b, a], 1)
        elif self.how == "transpose":
            h = torch.cat([a.transpose(1, 2), x.transpose(1, 2)], 1)  # a's channels now lie in dim 2
        elif self.how == "matmul":
            h = torch.cat([a @ self.b(a), x], 1)
        elif self.how == "fixed-view":
            h = torch.cat([self.b(a).view(-1, 64), x.view(-1, 64)], 1)
        elif self.how == "twice":
            h = torch.cat([self.b(self.b(a)), x], 1)
        elif self.how == "shape-slice":  # b.shape[1:3] holds b's channel count (4, as its height)
            b = self.b(a)
            h = torch.cat([F.interpolate(b, size=b.shape[1:3]), x], 1)
        elif self.how == "pick":  # two of b's channels, picked by index
            h = torch.cat([self.b(a)[:, :2], x, x[:, :2]], 1)
        else:
            h = torch.cat([F.softmax(self.b(a), 1), x], 1)
        return self.fc2(F.relu(self.fc1(h.flatten(1))))


@pytest.mark.parametrize("how, layer, why", [
    ("cat-rows", "a", "torch.cat joins its channels along another dim"),
    ("cat-flat", "b", "torch.cat joins its channels after a flatten"),
    ("cat-add", "a", "combines channels joined by torch.cat with others"),
    ("transpose", "a", "torch.cat joins its channels along another dim"),
    ("matmul", "a", "operator.matmul"),
    ("fixed-view", "b", "fixed size"),
    ("twice", "a", "its channels go into `b`, which cannot lose them: it is called 2 times"),
    ("softmax", "b", "softmax"),
    ("pick", "b", "operator.getitem picks or slices along its channel dim"),
    ("shape-slice", "b", "uses its channel count"),
])
def test_channel_mixing_ops_keep_their_layers_whole(how, layer, why):
    model = Two(how).eval()
    x = torch.randn(2, 4, 4, 4)
    plan = structured.plan(model, 0.5, x)
    assert why in plan.skipped[layer]
    assert "fc1" in plan.keep() and layer not in plan.keep()
    small = structured.apply(model, plan)
    with torch.no_grad():
        assert torch.allclose(small(x), apply_masks(model, structured.masks(model, plan))(x), atol=1e-5)


@pytest.mark.parametrize("amount", [0.25, 0.5, 0.75])
def test_grouped_convs_keep_as_many_channels_in_every_group_the_ones_torch_ranks_first(amount):
    """A grouped conv's filters and input channels are pruned group by group: each group keeps the same count, the
    filters torch's prune.ln_structured(n=2, dim=0) keeps among that group's alone, and its filters keep the kept
    inputs of their own group, in order."""
    model, x = make("resnext")
    plan = structured.plan(model, amount, x)
    by = {g.producers: g for g in plan.groups}
    for producer, groups in (("reduce", 4), ("grouped", 4), ("mix", 2)):
        g = by[(producer,)]
        assert g.blocks == groups and g.units % groups == 0
        per = g.units // groups
        for b in range(groups):  # torch's reference on this group's filters alone
            rows = model.get_submodule(producer).weight[b * per:(b + 1) * per]
            ref = nn.Conv2d(rows.shape[1], per, rows.shape[2:])
            with torch.no_grad():
                ref.weight.copy_(rows)
            torch_prune.ln_structured(ref, "weight", amount=amount, n=2, dim=0)
            kept = ref.weight_mask.flatten(1).any(1).nonzero().squeeze(1) + b * per
            assert torch.equal(g.keep[(g.keep >= b * per) & (g.keep < (b + 1) * per)], kept)
    small = structured.apply(model, plan)
    inputs, filters = plan.keep()["reduce"], plan.keep()["grouped"]
    dense, pruned = model.grouped.weight, small.grouped.weight
    assert pruned.shape == (len(filters), len(inputs) // 4, 3, 3) and small.grouped.groups == 4
    assert (small.grouped.in_channels, small.grouped.out_channels) == (len(inputs), len(filters))
    for o, f in enumerate(filters.tolist()):  # filter f of group b reads its group's kept inputs
        b = f // 6
        mine = inputs[(inputs >= 6 * b) & (inputs < 6 * (b + 1))] - 6 * b
        assert torch.equal(pruned[o], dense[f, mine])
    mix = plan.keep()["stem"]  # mix (2 groups of 8 inputs) reads the residual channels: 2 x as many kept
    assert by[("stem", "expand")].blocks == 2 and (mix < 8).sum() == (mix >= 8).sum()


@pytest.mark.parametrize("how, why", [
    ("nest", None),
    ("clash", "grouped convs of 2 and 3 groups share its channels, and no equal count per group suits them all"),
    ("cat", "a grouped conv (2 groups), beside other channels joined by torch.cat"),
    ("transposed", "a grouped conv (2 groups) whose groups it cannot shrink alike"),
])
def test_channels_grouped_convs_cannot_share_alike_are_kept_whole(how, why):
    class Readers(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 12, 1)
            second = {"nest": 4, "clash": 3}.get(how, 2)
            self.g1 = nn.Conv2d(24 if how == "cat" else 12, 6, 1, groups=2)
            self.g2 = (nn.ConvTranspose2d(12, 6, 2, stride=2, groups=2) if how == "transposed"
                       else nn.Conv2d(12, 12, 1, groups=second))
            self.head = nn.Linear(6 + (6 if how == "transposed" else 12), 2)

        def forward(self, x):
            h = F.relu(self.a(x))
            one = self.g1(torch.cat([h, h.neg()], 1) if how == "cat" else h).mean((2, 3))
            return self.head(torch.cat([one, self.g2(h).mean((2, 3))], 1))

    model, x = Readers().eval(), torch.randn(2, 3, 4, 4)
    plan = structured.plan(model, 0.5, x)
    if why is None:  # groups of 2 and 4 nest: 4 equal runs of 3 channels suit both
        g = [g for g in plan.groups if g.producers == ("a",)][0]
        assert g.blocks == 4  # each drops round(0.5 * 3) = 2 of its 3
        assert [int(((g.keep >= 3 * b) & (g.keep < 3 * b + 3)).sum()) for b in range(4)] == [1] * 4
    else:
        assert why in plan.skipped["a"] and "a" not in plan.keep()
    small = structured.apply(model, plan)
    with torch.no_grad():
        assert torch.allclose(small(x), apply_masks(model, structured.masks(model, plan))(x), atol=1e-5)


def test_parametrized_and_hooked_layers_are_kept_whole():
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 2))
    torch.nn.utils.parametrize.register_parametrization(model[2], "weight", prune.Masked(torch.ones(6, 6, dtype=bool)))
    with pytest.raises(ModelError, match=r"0: its channels go into `2`, .* parametrization.*2: it .* parametrization"):
        structured.plan(model, 0.5, torch.randn(1, 4))  # fine-tuning masks on layer 2: remove them first
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 2))
    model[4].register_forward_pre_hook(lambda m, args: None)
    plan = structured.plan(model, 0.5, torch.randn(1, 4))
    assert list(plan.keep()) == ["0"] and "hooks" in plan.skipped["2"]


def test_shared_weights_and_direct_parameter_reads_are_kept_whole():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.fc3 = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 2)
            self.fc2.weight = self.fc1.weight

        def forward(self, x):
            h = F.relu(self.fc2(F.relu(self.fc1(x))))
            return self.fc3(h) + F.linear(h, self.fc3.weight).sum()

    with pytest.raises(ModelError, match=r"fc1: it shares a parameter with `fc2`, which slicing would break.*"
                                         r"fc2: it shares a parameter with `fc1`.*fc3: the forward reads `fc3.weight` "
                                         r"directly"):
        structured.plan(Tied(), 0.5, torch.randn(2, 4))


def test_bad_arguments():
    model, x = make("lenet5")
    with pytest.raises(RecipeError, match="amount"):
        structured.plan(model, 1.5, x)
    with pytest.raises(ModelError, match="example_input must be a tensor"):
        structured.plan(model, 0.5, [[1.0]])
    with pytest.raises(ModelError, match=r"does not run on example_input of shape \(1, 3\)"):
        structured.plan(model, 0.5, torch.randn(1, 3))
    with pytest.raises(ModelError, match="plan does not fit"):
        structured.apply(zoo.LeNet5((10, 50, 500)), structured.plan(model, 0.5, x))


# -----------------------------------------------------------------------------
# recurrent layers: hidden units of nn.RNN / LSTM / GRU


class Recurrent(nn.Module):
    """A Linear embedding, then an RNN of `kind` read as `how`, then a head."""

    def __init__(self, kind=nn.LSTM, layers=2, bidirectional=False, batch_first=True, how="last", hidden=10):
        super().__init__()
        self.how, self.batch_first, self.lstm = how, batch_first, kind is nn.LSTM
        self.embed = nn.Linear(6, 12)
        self.rnn = kind(12, hidden, num_layers=layers, batch_first=batch_first, bidirectional=bidirectional)
        d = 2 if bidirectional else 1
        self.head = nn.Linear({"states": 2 * hidden, "final-both": 2 * hidden, "h_n": hidden, "h_n-all": hidden}
                              .get(how, d * hidden), 3)

    def forward(self, x):  # x: (N, T, 6)
        h = torch.tanh(self.embed(x))
        if not self.batch_first:
            h = h.transpose(0, 1)
        if self.how == "initial-state":
            out, _ = self.rnn(h, self.state)
            return self.head(out[:, -1])
        out, state = self.rnn(h)
        if self.how in ("states", "h_n", "h_n-all", "final-both"):
            s = state[0] if self.lstm else state
            if self.how == "h_n-all":
                return self.head(s.mean(0))
            if self.how == "final-both":  # a bidirectional classifier's usual head: both directions' last states
                return self.head(torch.cat([s[-2], s[-1]], 1))
            return self.head(torch.cat([s[-1], s[0]], 1) if self.how == "states" else s[-1])
        if self.how == "output":
            return out
        if self.how == "mean":
            return self.head(out.mean(1 if self.batch_first else 0))
        return self.head(out[:, -1] if self.batch_first else out[-1])


RECURRENT = {
    "lstm": dict(),
    "gru-3-layers": dict(kind=nn.GRU, layers=3),
    "rnn": dict(kind=nn.RNN, layers=1),
    "bi-lstm": dict(bidirectional=True, how="mean"),
    "bi-gru-time-first": dict(kind=nn.GRU, bidirectional=True, batch_first=False),
    "lstm-h_n": dict(how="h_n"),
    "gru-every-layers-state": dict(kind=nn.GRU, how="states"),
    "bi-lstm-final-states": dict(bidirectional=True, how="final-both"),
    "bi-gru-two-layers-states": dict(kind=nn.GRU, bidirectional=True, how="states"),  # layer 1 back, layer 0 forth
    "bi-lstm-backward-state": dict(bidirectional=True, how="h_n"),
}


def recurrent(name, **change):
    torch.manual_seed(0)
    return Recurrent(**{**RECURRENT[name], **change}).eval(), torch.randn(5, 7, 6)


def gate_norms(rnn, k, suffix):
    """The reference ranking: unit j's L2 norm over its rows of every gate in weight_ih and weight_hh, summed
    gate by gate in a loop."""
    w_ih, w_hh = getattr(rnn, f"weight_ih_l{k}{suffix}"), getattr(rnn, f"weight_hh_l{k}{suffix}")
    h, gates = rnn.hidden_size, w_hh.shape[0] // rnn.hidden_size
    return torch.stack([sum(w_ih[g * h + j].pow(2).sum() + w_hh[g * h + j].pow(2).sum() for g in range(gates))
                        for j in range(h)]).sqrt()


@pytest.mark.parametrize("amount", [0.3, 0.5, 0.8])
@pytest.mark.parametrize("name", RECURRENT)
def test_recurrent_layers_lose_hidden_units_exactly(name, amount):
    """Every layer and direction keeps as many units as the others (one hidden size), the ones with the largest
    gate norms; the pruned model computes exactly what the dense one does with the removed units' rows, biases
    and columns zeroed, and the embedding before it loses the inputs of layer 0."""
    model, x = recurrent(name)
    plan = structured.plan(model, amount, x)
    rnn, dirs = model.rnn, 2 if model.rnn.bidirectional else 1
    kept = round((1 - amount) * rnn.hidden_size)
    for k in range(rnn.num_layers):
        keep = plan.keep()[f"rnn[{k}]"]
        assert len(keep) == dirs * kept
        for d, suffix in enumerate(("", "_reverse")[:dirs]):
            want = torch.topk(gate_norms(rnn, k, suffix), kept).indices.sort().values + d * rnn.hidden_size
            assert torch.equal(keep[d * kept:(d + 1) * kept], want)
    assert "embed" in plan.keep() and "head" in plan.skipped
    small = structured.apply(model, plan)
    assert small.rnn.hidden_size == kept and small.rnn.input_size == len(plan.keep()["embed"])
    assert params(small) < params(model)
    with torch.no_grad():
        assert torch.allclose(small(x), apply_masks(model, structured.masks(model, plan))(x), atol=1e-6)
    fresh = Recurrent(**RECURRENT[name])  # decodes into a fresh instance, resized
    structured.resize_to(fresh, small.state_dict())
    fresh.load_state_dict(small.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(fresh.eval()(x), small(x))


@pytest.mark.parametrize("kind", [nn.LSTM, nn.GRU, nn.RNN])
def test_a_pruned_rnn_is_torchs_rnn_of_the_kept_units(kind):
    """The reference slicing: torch's own RNN of the smaller hidden size, its every gate's rows copied by hand from
    the dense one's kept units, computes what the pruned RNN computes."""
    model, x = recurrent("lstm", kind=kind, layers=1)
    small = structured.prune_structured(model, 0.5, x)
    keep = structured.plan(model, 0.5, x).keep()["rnn[0]"]
    inputs = structured.plan(model, 0.5, x).keep()["embed"]
    ref = kind(len(inputs), len(keep), batch_first=True)
    gates, h = model.rnn.weight_hh_l0.shape[0] // model.rnn.hidden_size, model.rnn.hidden_size
    rows = torch.cat([g * h + keep for g in range(gates)])
    with torch.no_grad():
        ref.weight_ih_l0.copy_(model.rnn.weight_ih_l0[rows][:, inputs])
        ref.weight_hh_l0.copy_(model.rnn.weight_hh_l0[rows][:, keep])
        ref.bias_ih_l0.copy_(model.rnn.bias_ih_l0[rows])
        ref.bias_hh_l0.copy_(model.rnn.bias_hh_l0[rows])
        seq = torch.randn(4, 7, len(inputs))
        assert torch.allclose(small.rnn(seq)[0], ref(seq)[0], atol=1e-6)


@pytest.mark.parametrize("change, why", [
    (dict(how="output"), "its channels reach the model output"),
    (dict(how="initial-state"), "it is given an initial state"),
    (dict(how="h_n-all"), "reads an RNN's outputs or final state, which hold every layer's units"),
    (dict(proj_size=4), "proj_size"),
])
def test_an_rnn_it_cannot_follow_is_kept_whole_with_every_layer(change, why):
    """One hidden size for all layers: the reason one layer is kept whole keeps them all whole."""
    torch.manual_seed(0)
    proj = change.pop("proj_size", 0)
    model = Recurrent(**change).eval()
    if proj:
        model.rnn = nn.LSTM(12, 10, num_layers=2, batch_first=True, proj_size=proj)
        model.head = nn.Linear(proj, 3)
    if change.get("how") == "initial-state":
        model.state = (torch.zeros(2, 5, 10), torch.zeros(2, 5, 10))
    x = torch.randn(5, 7, 6)
    if change.get("how") == "initial-state" or proj:  # the embedding feeds it too: nothing is left to prune
        with pytest.raises(ModelError, match=f"nothing it can remove in Recurrent: embed: its channels go into `rnn` "
                                             f"\\(LSTM\\) and .*{why}.*rnn\\[0\\]: .*{why}"):
            structured.plan(model, 0.5, x)
        return
    plan = structured.plan(model, 0.5, x)
    assert why in plan.skipped["rnn[0]"] + plan.skipped["rnn[1]"], plan.skipped
    assert not any(name.startswith("rnn") for name in plan.keep())
    small = structured.apply(model, plan)
    with torch.no_grad():
        assert torch.allclose(small(x), apply_masks(model, structured.masks(model, plan))(x), atol=1e-6)


def test_picks_and_slices_along_other_dims_are_followed():
    """x[:, -1] and x[:, 2:] (time steps of a sequence) keep the channel dim whole; picking channels does not."""
    class Seq(nn.Module):
        def __init__(self, pick):
            super().__init__()
            self.pick, self.conv, self.head = pick, nn.Conv1d(4, 8, 3, padding=1), nn.Linear(8, 2)

        def forward(self, x):
            h = F.relu(self.conv(x))  # (N, 8, T)
            if self.pick == "last":
                return self.head(h[:, :, -1])
            if self.pick == "tail":
                return self.head(h[..., 2:].mean(2))
            return self.head(h[:, 0, None, :].mean(2).expand(-1, 8))

    x = torch.randn(3, 4, 6)
    for pick in ("last", "tail"):
        model = Seq(pick).eval()
        plan = structured.plan(model, 0.5, x)
        assert "conv" in plan.keep()
        with torch.no_grad():
            want = apply_masks(model, structured.masks(model, plan))(x)
            assert torch.allclose(structured.apply(model, plan)(x), want, atol=1e-6)
    with pytest.raises(ModelError, match="picks or slices along its channel dim"):
        structured.plan(Seq("channel").eval(), 0.5, x)


class TextLSTM(nn.Module):
    """A text classifier: token ids embedded (0 pads), an LSTM, its last step to a head."""

    def __init__(self, vocab=30, dims=12, hidden=10, max_norm=None):
        super().__init__()
        self.embed = nn.Embedding(vocab, dims, padding_idx=0, max_norm=max_norm)
        self.rnn, self.head = nn.LSTM(dims, hidden, batch_first=True), nn.Linear(hidden, 3)

    def forward(self, ids):
        out, _ = self.rnn(self.embed(ids))
        return self.head(out[:, -1])


class Bag(nn.Module):
    """Bags of 9 ids averaged by an nn.EmbeddingBag (or summed, weighted by a Linear's output), then a head."""

    def __init__(self, weighted=False):
        super().__init__()
        self.weighted = weighted
        self.bag = nn.EmbeddingBag(40, 16, mode="sum" if weighted else "mean")
        self.score, self.head = nn.Linear(9, 9), nn.Linear(16, 4)

    def forward(self, ids):
        w = self.score(ids.float()) if self.weighted else None  # a weight for each of the 9 ids
        return self.head(torch.relu(self.bag(ids, per_sample_weights=w)))


@pytest.mark.parametrize("amount", [0.25, 0.5, 0.75])
def test_an_embedding_loses_the_dims_torchs_ln_structured_drops_along_them(amount):
    """An embedding's units are its dims (weight columns), ranked by their L2 norm over the whole table:
    torch's ln_structured(n=2, dim=1) keeps the same ones."""
    torch.manual_seed(0)
    model, ids = Bag().eval(), torch.randint(0, 40, (6, 9))
    plan = structured.plan(model, amount, ids)
    ref = copy.deepcopy(model.bag)
    torch_prune.ln_structured(ref, "weight", amount=amount, n=2, dim=1)
    assert torch.equal(plan.keep()["bag"], ref.weight_mask.any(0).nonzero().squeeze(1))
    small = structured.apply(model, plan)
    assert small.bag.embedding_dim == small.bag.weight.shape[1] == small.head.in_features == len(plan.keep()["bag"])
    with torch.no_grad():
        assert torch.allclose(small(ids), apply_masks(model, structured.masks(model, plan))(ids), atol=1e-6)


def test_a_text_classifier_shrinks_from_its_embedding_to_its_head():
    """Embedding dims go with the LSTM's input columns, hidden units with the head's: the pruned classifier equals
    the masked one (the padding row stays zero) and decodes into a fresh TextLSTM."""
    torch.manual_seed(0)
    model, ids = TextLSTM().eval(), torch.randint(0, 30, (5, 8))
    plan = structured.plan(model, 0.5, ids)
    assert set(plan.keep()) == {"embed", "rnn[0]"} and "head" in plan.skipped
    small = structured.apply(model, plan)
    assert small.embed.weight.shape == (30, 6) and small.rnn.input_size == 6 and small.rnn.hidden_size == 5
    assert not small.embed.weight[0].any()
    with torch.no_grad():
        assert torch.allclose(small(ids), apply_masks(model, structured.masks(model, plan))(ids), atol=1e-6)
    fresh = TextLSTM()
    structured.resize_to(fresh, small.state_dict())
    fresh.load_state_dict(small.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(fresh.eval()(ids), small(ids))
    other = TextLSTM(vocab=40)  # a table of another vocabulary is no pruning's: it is left for load_state_dict
    structured.resize_to(other, small.state_dict())
    assert other.embed.weight.shape == (40, 12)
    with pytest.raises(RuntimeError, match="size mismatch for embed.weight"):
        other.load_state_dict(small.state_dict(), strict=True)


def test_embeddings_it_cannot_slice_are_kept_whole():
    torch.manual_seed(0)
    ids = torch.randint(1, 30, (5, 8))
    plan = structured.plan(TextLSTM(max_norm=1.0).eval(), 0.5, ids)
    assert "max_norm rescales each looked-up row" in plan.skipped["embed"] and "rnn[0]" in plan.keep()
    plan = structured.plan(Bag(weighted=True).eval(), 0.5, torch.randint(0, 40, (6, 9)))
    assert "its channels go into `bag` (EmbeddingBag) as its weights per id" in plan.skipped["score"]
    assert "bag" in plan.keep()


class Pooled(nn.Module):
    """Embedded ids through a GRU, read as `how`: pooled over time, its final state squeezed, into a Conv1d."""

    def __init__(self, how):
        super().__init__()
        self.how = how
        self.embed, self.gru = nn.Embedding(50, 16), nn.GRU(16, 12, batch_first=True)
        self.conv, self.head = nn.Conv1d(12, 8, 3, padding=1), nn.Linear(12 if how != "conv-max" else 8, 4)

    def forward(self, ids):
        out, h = self.gru(self.embed(ids))  # (N, T, 12), (1, N, 12)
        if self.how == "max-over-time":
            return self.head(torch.max(out, 1)[0])
        if self.how == "max-values":
            return self.head(out.max(dim=1, keepdim=True).values[:, 0])
        if self.how == "amax":
            return self.head(out.amax(1))
        if self.how == "state-squeezed":
            return self.head(h.squeeze(0))
        if self.how == "conv-max":  # a 1-D CNN over the GRU's outputs, max over time
            return self.head(F.relu(self.conv(out.permute(0, 2, 1))).max(dim=2)[0])
        if self.how == "indices":
            return self.head(out.max(1)[1].float())
        return self.head(out.mean(1, keepdim=True).squeeze(1))


@pytest.mark.parametrize("how, pruned, why", [
    ("max-over-time", {"embed", "gru[0]"}, None),
    ("max-values", {"embed", "gru[0]"}, None),
    ("amax", {"embed", "gru[0]"}, None),
    ("state-squeezed", {"embed", "gru[0]"}, None),
    ("conv-max", {"embed", "gru[0]", "conv"}, None),
    ("mean-squeezed", {"embed", "gru[0]"}, None),
    ("indices", {"embed"}, "takes the indices of a max / min over other dims"),
])
def test_max_over_time_and_squeezes_are_followed(how, pruned, why):
    """Max (and min) over other dims keep the channels apart, as mean does; squeeze of other size-1 dims too. The
    pruned model equals the masked one."""
    torch.manual_seed(0)
    model, ids = Pooled(how).eval(), torch.randint(0, 50, (4, 9))
    plan = structured.plan(model, 0.5, ids)
    assert set(plan.keep()) == pruned, plan.skipped
    if why:
        assert why in plan.skipped["gru[0]"]
    with torch.no_grad():
        want = apply_masks(model, structured.masks(model, plan))(ids)
        assert torch.allclose(structured.apply(model, plan)(ids), want, atol=1e-6)


# -----------------------------------------------------------------------------
# a fraction per group


def test_a_group_given_its_own_fraction_drops_that_many_and_the_rest_the_default():
    """amounts={producer: fraction}: that group drops round(fraction * units) (the units structured_keep's ranking
    puts first kept), every other group the default; still exact against the masked model."""
    model, x = make("res-cnn")
    plan = structured.plan(model, 0.5, x, amounts={"conv3": 0.75, "stem": 0.0})
    keep = plan.keep()
    assert len(keep["stem"]) == len(keep["conv2"]) == 8 and len(keep["conv1"]) == 6 and len(keep["conv3"]) == 4
    assert torch.equal(keep["conv3"], prune.structured_keep(model.conv3.weight.detach(), 0.75))
    small = structured.apply(model, plan)
    with torch.no_grad():
        assert torch.allclose(small(x), apply_masks(model, structured.masks(model, plan))(x), atol=1e-5)


def test_a_recipes_per_layer_sparsities_become_the_groups_fractions():
    """Recipe.layers speaks of weights: fc1.weight for fc1, an RNN's weight_ih_lk / weight_hh_lk for its layer k."""
    assert structured.weight_amounts({"conv1.weight": 0.2, "rnn.weight_ih_l1": 0.3, "rnn.weight_hh_l1_reverse": 0.3,
                                      "weight": 0.1}) == {"conv1": 0.2, "rnn[1]": 0.3, "": 0.1}
    with pytest.raises(ModelError, match=r"weights of rnn\[0\] different fractions \(0.2 and 0.4\)"):
        structured.weight_amounts({"rnn.weight_ih_l0": 0.2, "rnn.weight_hh_l0": 0.4})


@pytest.mark.parametrize("amounts, why", [
    ({"fc": 0.2}, r"given to 'fc', but structured pruning removes no units there \(fc is kept whole: its channels "
                  r"reach the model output\); it removes units of conv1, conv2, conv3, stem"),
    ({"stem": 0.2, "conv2": 0.5}, r"stem \+ conv2 are given different fractions, but they lose the same units"),
    ({"conv1": 1.5}, r"amounts\['conv1'\]"),
])
def test_fractions_it_cannot_honour_are_refused(amounts, why):
    model, x = make("res-cnn")
    with pytest.raises((ModelError, RecipeError), match=why):
        structured.plan(model, 0.5, x, amounts=amounts)


def test_an_rnns_layers_take_one_fraction():
    model, x = recurrent("lstm")
    assert len(structured.plan(model, 0.5, x, amounts={"rnn[0]": 0.25, "rnn[1]": 0.25}).keep()["rnn[1]"]) == 8
    with pytest.raises(ModelError, match="the layers of `rnn` are given different fractions"):
        structured.plan(model, 0.5, x, amounts={"rnn[0]": 0.25})


# -----------------------------------------------------------------------------
# cells stepped in a loop of one's own


class Decoder(nn.Module):
    """An encoder Linear makes a cell's first state; the cell then steps over 5 inputs (the whole (h, c) of an
    LSTMCell passed on as it is); its last state to a head. `mixed`: the first step reads the encoder's output as
    input, the others the data."""

    def __init__(self, kind=nn.GRUCell, mixed=False):
        super().__init__()
        self.kind, self.mixed = kind, mixed
        self.enc, self.head = nn.Linear(8, 6 if mixed else 16), nn.Linear(16, 3)
        self.cell = kind(6, 16)

    def forward(self, x):  # (N, 8, 8)
        e = torch.tanh(self.enc(x[:, 0]))
        if self.mixed:
            state = self.cell(e)
            for t in range(2, 6):
                state = self.cell(x[:, t, :6], state)
            return self.head(state)
        state = (e, torch.zeros_like(e)) if self.kind is nn.LSTMCell else e
        for t in range(1, 6):
            state = self.cell(x[:, t, :6], state)
        return self.head(state[0] if self.kind is nn.LSTMCell else state)


@pytest.mark.parametrize("kind", [nn.GRUCell, nn.LSTMCell, nn.RNNCell])
def test_a_cell_stepped_in_a_loop_loses_units_with_what_makes_its_state(kind):
    """The cell is one producer over all its steps; the encoder that makes its first state loses the same units.
    The pruned decoder equals the masked one and decodes into a fresh, resized instance."""
    torch.manual_seed(0)
    model, x = Decoder(kind).eval(), torch.randn(4, 8, 8)
    plan = structured.plan(model, 0.5, x)
    (group,) = plan.groups
    assert set(group.producers) == {"enc", "cell"} and len(group.keep) == 8
    small = structured.apply(model, plan)
    assert small.cell.hidden_size == 8 and small.enc.out_features == 8
    with torch.no_grad():
        assert torch.allclose(small(x), apply_masks(model, structured.masks(model, plan))(x), atol=1e-6)
    fresh = Decoder(kind)
    structured.resize_to(fresh, small.state_dict())
    fresh.load_state_dict(small.state_dict(), strict=True)


def test_a_cell_reading_a_layer_at_some_steps_only_keeps_that_layer_whole():
    torch.manual_seed(0)
    plan = structured.plan(Decoder(mixed=True).eval(), 0.5, torch.randn(4, 8, 8))
    assert "reads them at some steps and other inputs at others" in plan.skipped["enc"]
    assert "cell" in plan.keep()


def test_a_smaller_model_that_no_longer_runs_is_refused_with_the_fix():
    """A learned initial state keeps the cell's old size, which the trace cannot see: the pruned model is run once,
    and its failure is a ModelError that says what to do."""
    class LearnedStart(nn.Module):
        def __init__(self):
            super().__init__()
            self.cell, self.h0, self.head = nn.GRUCell(8, 16), nn.Parameter(torch.zeros(16)), nn.Linear(16, 3)

        def forward(self, x):
            h = self.h0.expand(x.size(0), -1)
            for t in range(4):
                h = self.cell(x[:, t], h)
            return self.head(h)

    with pytest.raises(ModelError, match=r"removed units of cell, but the smaller LearnedStart no longer runs "
                                         r"\(RuntimeError: .*\): its forward makes a tensor of a layer's old size"):
        structured.prune_structured(LearnedStart(), 0.5, torch.randn(4, 8, 8))
