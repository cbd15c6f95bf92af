"""compress() on models and data the engine has never seen: a Sequential MLP, a CNN with BatchNorm and a
residual block, a Conv1d net, a MobileNetV2 block (depthwise conv), a tiny transformer-encoder classifier, a cross-attention pooling net, a 2-layer
LSTM, a bidirectional GRU, an LSTMCell and a GRUCell in a loop of its own, a 3-D CNN and an encoder-decoder with
transposed convs, each on scikit-learn's bundled 8x8 digits (real data) in the input
shape it takes. Every technique runs on each; the artifact decodes exactly into a fresh instance of the user's own class
(strict), and its length is the size."""


import copy

import pytest
import torch
import torch.nn.functional as F
import torch.nn.utils.prune as tprune
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import compress_engine as ce
from compress_engine.core import structured
from compress_engine.core.fold import fold_batchnorm
from compress_engine.core.model import compressible
from compress_engine.core.train import fit, recalibrate_batchnorm
from test_structured import ResNeXtBlock

sklearn_datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn supplies the 8x8 digits")


@pytest.fixture(scope="module")
def digits():
    """1,797 real 8x8 digit images in [0, 1]: 1,400 to train, 397 to test (fixed split)."""
    d = sklearn_datasets.load_digits()
    x = torch.tensor(d.images, dtype=torch.float32) / 16.0
    y = torch.tensor(d.target, dtype=torch.int64)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    return x[:1400], y[:1400], x[1400:], y[1400:]


def shaped(digits, shape, name):
    """The digits as a Dataset whose samples have `shape` (64 values each)."""
    tx, ty, vx, vy = digits
    return ce.Dataset.from_tensors(tx.reshape(len(tx), *shape), ty, vx.reshape(len(vx), *shape), vy, name=name)


class ResCNN(nn.Module):
    """conv-BN-ReLU, a residual block (h + BN(conv(h))), average pooling to 2x2, linear head."""

    def __init__(self, width=16):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width)
        self.head = nn.Linear(width * 4, 10)

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = F.relu(h + self.bn2(self.conv2(h)))
        return self.head(F.adaptive_avg_pool2d(h, 2).flatten(1))


class Conv1dNet(nn.Module):
    """The 8 rows of a digit as 8 channels of a length-8 signal."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(8, 16, 3, padding=1)
        self.conv2 = nn.Conv1d(16, 16, 3, padding=1)
        self.fc = nn.Linear(16 * 4, 10)

    def forward(self, x):
        h = F.relu(self.conv1(x))
        h = F.max_pool1d(F.relu(self.conv2(h)), 2)
        return self.fc(h.flatten(1))


class TinyTransformer(nn.Module):
    """The 8 rows of a digit as 8 tokens: linear embedding + learned positions, one encoder layer, mean pool."""

    def __init__(self, d=16):
        super().__init__()
        self.embed = nn.Linear(8, d)
        self.pos = nn.Parameter(torch.zeros(1, 8, d))
        layer = nn.TransformerEncoderLayer(d, nhead=2, dim_feedforward=32, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)
        self.head = nn.Linear(d, 10)

    def forward(self, x):
        return self.head(self.encoder(self.embed(x) + self.pos).mean(1))


class AttentionPool(nn.Module):
    """The 8 rows of a digit as 8 tokens of 8 values, pooled by a learned query in cross-attention whose keys and
    values keep their own size (kdim = vdim = 8, so q_proj_weight, k_proj_weight and v_proj_weight), then a head."""

    def __init__(self, d=16):
        super().__init__()
        self.query = nn.Parameter(torch.randn(1, 1, d) * 0.1)
        self.attend = nn.MultiheadAttention(d, num_heads=2, kdim=8, vdim=8, batch_first=True)
        self.head = nn.Linear(d, 10)

    def forward(self, x):
        pooled, _ = self.attend(self.query.expand(x.shape[0], -1, -1), x, x, need_weights=False)
        return self.head(pooled[:, 0])


class RowLSTM(nn.Module):
    """The 8 rows of a digit read top to bottom by a 2-layer LSTM; its last hidden state to a head."""

    def __init__(self, hidden=24):
        super().__init__()
        self.lstm = nn.LSTM(8, hidden, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden, 10)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


class ColumnGRU(nn.Module):
    """The 8 columns of a digit read both ways by a bidirectional GRU, mean-pooled to a head."""

    def __init__(self, hidden=16):
        super().__init__()
        self.gru = nn.GRU(8, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, 10)

    def forward(self, x):
        out, _ = self.gru(x.transpose(1, 2))
        return self.head(out.mean(1))


class CellLoop(nn.Module):
    """The 8 rows of a digit fed one by one to an nn.LSTMCell in a loop of its own (as a decoder steps), then a
    GRUCell over the LSTM's states in reverse; the last state to a head."""

    def __init__(self, hidden=24):
        super().__init__()
        self.cell, self.back = nn.LSTMCell(8, hidden), nn.GRUCell(hidden, hidden)
        self.head = nn.Linear(hidden, 10)

    def forward(self, x):
        h = c = x.new_zeros(x.size(0), self.cell.hidden_size)
        states = []
        for t in range(8):
            h, c = self.cell(x[:, t], (h, c))
            states.append(h)
        g = torch.zeros_like(h)
        for s in reversed(states):
            g = self.back(s, g)
        return self.head(g)


class MobileBlock(nn.Module):
    """A MobileNetV2 inverted residual on the digit: stem, 1x1 expand, 3x3 depthwise (groups = channels), 1x1
    project added back, each with BatchNorm; pooling to 2x2; a head."""

    def __init__(self, width=8, hidden=24):
        super().__init__()
        self.stem, self.bn0 = nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width)
        self.expand, self.bn1 = nn.Conv2d(width, hidden, 1, bias=False), nn.BatchNorm2d(hidden)
        self.dw, self.bn2 = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False), nn.BatchNorm2d(hidden)
        self.project, self.bn3 = nn.Conv2d(hidden, width, 1, bias=False), nn.BatchNorm2d(width)
        self.head = nn.Linear(width * 4, 10)

    def forward(self, x):
        x = F.relu6(self.bn0(self.stem(x)))
        h = F.relu6(self.bn2(self.dw(F.relu6(self.bn1(self.expand(x))))))
        return self.head(F.adaptive_avg_pool2d(x + self.bn3(self.project(h)), 2).flatten(1))


def resnext():
    """test_structured's ResNeXt block (a grouped 3x3 conv, then a grouped 1x1 one) on the digit."""
    return ResNeXtBlock(cin=1, classes=10)


class VolumeNet(nn.Module):
    """A digit's 64 values as a 4x4x4 volume: two 3-D convolutions (the second with BatchNorm), then a head."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv3d(1, 8, 3, padding=1)
        self.conv2, self.bn = nn.Conv3d(8, 8, 3, padding=1), nn.BatchNorm3d(8)
        self.head = nn.Linear(8 * 8, 10)

    def forward(self, x):
        h = F.relu(self.bn(self.conv2(F.relu(self.conv1(x)))))
        return self.head(F.max_pool3d(h, 2).flatten(1))


class UpsampleNet(nn.Module):
    """An encoder-decoder: a strided conv halves the 8x8 digit, a transposed conv (with BatchNorm) brings it back
    to 8x8 (a segmentation decoder's upsampling), joined by torch.cat to a full-size conv's map (a U-Net's skip
    connection) and merged by a 1x1 conv; a grouped 1-D transposed conv over its rows, then a head."""

    def __init__(self):
        super().__init__()
        self.down, self.skip = nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.Conv2d(1, 4, 3, padding=1)
        self.up, self.bn = nn.ConvTranspose2d(8, 8, 2, stride=2), nn.BatchNorm2d(8)
        self.merge = nn.Conv2d(12, 8, 1)
        self.rows = nn.ConvTranspose1d(8 * 8, 16, 3, groups=2)
        self.head = nn.Linear(16 * 10, 10)

    def forward(self, x):
        h = torch.cat([F.relu(self.bn(self.up(F.relu(self.down(x))))), F.relu(self.skip(x))], 1)
        return self.head(F.relu(self.rows(F.relu(self.merge(h)).flatten(1, 2))).flatten(1))


def sequential_mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 10))


# name -> (factory, sample shape, can structured pruning trace it)
ZOO = {
    "sequential-mlp": (sequential_mlp, (64,), True),
    "res-cnn-bn": (ResCNN, (1, 8, 8), True),
    "conv1d": (Conv1dNet, (8, 8), True),
    "mobile": (MobileBlock, (1, 8, 8), True),
    "resnext": (resnext, (1, 8, 8), True),
    "transformer": (TinyTransformer, (8, 8), True),
    "attention-pool": (AttentionPool, (8, 8), False),
    "lstm": (RowLSTM, (8, 8), True),
    "bi-gru": (ColumnGRU, (8, 8), True),
    "lstm-cell": (CellLoop, (8, 8), True),
    "conv3d": (VolumeNet, (1, 4, 4, 4), True),
    "conv-transpose": (UpsampleNet, (1, 8, 8), True),
}
RECIPES = {
    "prune": ce.Recipe(sparsity=0.5, finetune_epochs=1),
    "prune-global-gradual": ce.Recipe(sparsity=0.6, prune_scope="global", schedule="gradual", finetune_epochs=1),
    "structured": ce.Recipe(sparsity=0.5, structured=True, finetune_epochs=5, lr=2e-3),
    "cluster": ce.Recipe(sparsity=0.5, clusters=8, finetune_epochs=1, huffman=True),
    "quantize": ce.Recipe(bits=4, per_channel=True, finetune_epochs=1),
    "distill": ce.Recipe(temperature=2.0, alpha=0.5, distill_epochs=20, student_width=32),
}


@pytest.fixture(scope="module")
def trained(digits):
    """Each zoo model briefly trained on its view of the digits (seeded), with its dataset."""
    out = {}
    for name, (make, shape, _) in ZOO.items():
        torch.manual_seed(0)
        model = make()
        data = shaped(digits, shape, name)
        fit(model, data, epochs=10, lr=3e-3, batch_size=64)
        out[name] = (model.eval(), data)
    return out


def same_state(a, b):
    return list(a) == list(b) and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("technique", RECIPES)
@pytest.mark.parametrize("name", ZOO)
def test_every_technique_on_every_model_decodes_exactly(trained, name, technique):
    model, data = trained[name]
    recipe = RECIPES[technique]
    if technique == "structured" and not ZOO[name][2]:
        with pytest.raises(ce.ModelError, match=f"structured pruning found nothing it can remove in {type(model).__name__}"):
            ce.compress(model, recipe, data)
        return
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = ce.compress(model, recipe, data)
    assert same_state(model.state_dict(), before)  # the caller's model is never changed
    assert res.metrics["artifact_bytes"] == len(res.artifact)
    state = ce.decode(res.artifact)
    if technique == "distill":  # the default student: an MLP for the data's input size and classes
        assert res.model.spec() == {"arch": "mlp", "sizes": [64, 32, 32, 10]}
        fresh = type(res.model)(res.model.sizes)
    elif technique == "structured":  # smaller layers: decode_model resizes a fresh instance of the user's class
        fresh, _ = ce.decode_model(res.artifact, module=ZOO[name][0]())
        for t in fresh.state_dict().values():
            t.zero_()
    else:
        fresh = ZOO[name][0]()
    fresh.load_state_dict(state, strict=True)
    assert same_state(fresh.state_dict(), res.model.state_dict())
    x = data.x("test")
    with torch.no_grad():
        assert torch.equal(fresh.eval()(x), res.model.eval()(x))
    assert res.metrics["accuracy"] > 0.2, "a compressed digits classifier should still beat chance (0.1)"

    weights = compressible(res.model)
    if technique == "structured":
        assert res.metrics["params"] < sum(p.numel() for p in model.parameters())
    if technique.startswith("prune"):
        kept = sum(int((w != 0).sum()) for w in weights.values()) / sum(w.numel() for w in weights.values())
        assert kept == pytest.approx(1 - recipe.sparsity, abs=0.02)
    if technique == "cluster":
        assert all(len(torch.unique(w[w != 0])) <= 8 for w in weights.values())
    if technique == "quantize":
        for w in weights.values():
            assert all(len(torch.unique(row)) <= 16 for row in w.detach().flatten(1))


def test_everything_but_the_compressed_weights_is_carried_exactly(trained):
    """Biases, BatchNorm statistics (num_batches_tracked stays int64), attention in-projections and
    free parameters come back bit for bit when no fine-tuning touches them."""
    for name, (model, data) in trained.items():
        res = ce.compress(model, ce.Recipe(clusters=16), data)
        state, dense = ce.decode(res.artifact), model.state_dict()
        carried = [k for k in dense if k not in compressible(model)]
        assert carried, name
        for k in carried:
            assert state[k].dtype == dense[k].dtype and torch.equal(state[k], dense[k]), (name, k)
    tracked = ce.decode(ce.compress(trained["res-cnn-bn"][0], ce.Recipe(sparsity=0.5), trained["res-cnn-bn"][1]).artifact)
    assert tracked["bn1.num_batches_tracked"].dtype == torch.int64


def test_distillation_into_a_student_module_of_your_own(trained, digits):
    teacher, data = trained["conv1d"]
    torch.manual_seed(1)
    student = nn.Sequential(nn.Flatten(), nn.Linear(64, 24), nn.ReLU(), nn.Linear(24, 10))
    data = shaped(digits, (8, 8), "digits-rows")  # the student flattens whatever shape the teacher takes
    untouched = {k: v.clone() for k, v in student.state_dict().items()}
    res = ce.compress(teacher, ce.Recipe(temperature=2.0, alpha=0.5, distill_epochs=20, sparsity=0.5), data,
                      student=student)
    assert same_state(student.state_dict(), untouched)  # trained as a copy
    fresh = nn.Sequential(nn.Flatten(), nn.Linear(64, 24), nn.ReLU(), nn.Linear(24, 10))
    fresh.load_state_dict(ce.decode(res.artifact))
    assert res.metrics["params"] == sum(p.numel() for p in fresh.parameters())
    assert res.metrics["accuracy"] > 0.5


PROJECTIONS = {"transformer": ["encoder.layers.0.self_attn.in_proj_weight"],
               "attention-pool": ["attend.q_proj_weight", "attend.k_proj_weight", "attend.v_proj_weight"],
               "lstm": ["lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.weight_ih_l1", "lstm.weight_hh_l1"],
               "bi-gru": ["gru.weight_ih_l0", "gru.weight_hh_l0", "gru.weight_ih_l0_reverse", "gru.weight_hh_l0_reverse"],
               "conv-transpose": ["up.weight", "rows.weight"],
               "lstm-cell": ["cell.weight_ih", "cell.weight_hh", "back.weight_ih", "back.weight_hh"]}


@pytest.mark.parametrize("name", PROJECTIONS)
def test_attention_recurrent_and_transposed_weights_are_compressed_as_torch_would(trained, name):
    """The in-projections of nn.MultiheadAttention (packed, or q/k/v apart), the matrices of an LSTM / GRU and the
    weights of transposed convs are pruned like torch's l1_unstructured and quantized per slice of dim 0 (a
    transposed conv's input channels) like torch.fake_quantize_per_channel_affine(axis=0)."""
    model, data = trained[name]
    assert set(PROJECTIONS[name]) <= set(compressible(model))
    pruned = compressible(ce.compress(model, ce.Recipe(sparsity=0.6), data).model)
    quantized = compressible(ce.compress(model, ce.Recipe(bits=3, per_channel=True), data).model)
    for key in PROJECTIONS[name]:
        w = compressible(model)[key].detach()
        ref = nn.Module()
        ref.weight = nn.Parameter(w.clone())
        tprune.l1_unstructured(ref, "weight", amount=0.6)
        assert torch.equal(pruned[key] != 0, ref.weight_mask.bool()), key
        scale, zp, qmin, qmax = ce.core.quantize.qparams(w, 3, per_channel=True)
        fq = torch.fake_quantize_per_channel_affine(w, scale.reshape(-1), zp.reshape(-1).to(torch.int32), 0, qmin, qmax)
        assert torch.equal(quantized[key], fq), key


def test_a_recurrent_layer_runs_on_its_parametrized_weights(trained):
    """Fine-tuning rides on parametrizations: an LSTM must read its weights through them at every forward (it
    keeps a cached list of its weights), or masks and shared centroids would not be what it trains."""
    from compress_engine.core.model import constrained
    from compress_engine.core.prune import Masked
    model, data = trained["lstm"]
    x = data.x("test")[:32]
    mask = torch.rand(model.lstm.weight_hh_l1.shape, generator=torch.Generator().manual_seed(0)) < 0.5
    zeroed = copy.deepcopy(model)
    with torch.no_grad():
        zeroed.lstm.weight_hh_l1.mul_(mask)
    work = copy.deepcopy(model)
    with torch.no_grad(), constrained(work, {"lstm.weight_hh_l1": Masked(mask)}):
        assert torch.equal(work(x), zeroed(x)) and not torch.equal(work(x), model(x))


def test_a_user_model_needs_its_module_to_be_rebuilt(trained):
    model, data = trained["conv1d"]
    art = ce.compress(model, ce.Recipe(sparsity=0.5), data).artifact
    with pytest.raises(ce.ModelError, match="Conv1dNet.*pass a fresh instance"):
        ce.decode_model(art)
    rebuilt, meta = ce.decode_model(art, module=Conv1dNet())
    assert meta["model_class"] == "Conv1dNet"
    assert ce.evaluate_artifact(art, data, module=Conv1dNet())["accuracy"] > 0.3
    with pytest.raises(ce.ModelError, match="do not fit the given ResCNN"):
        ce.decode_model(art, module=ResCNN())


class FoldedResCNN(ResCNN):
    fold_batchnorm = True  # compress() folds its BatchNorms into the convs first, as deployment does


@pytest.mark.parametrize("recipe", [ce.Recipe(clusters=8), ce.Recipe(sparsity=0.5, structured=True)])
def test_a_class_that_asks_for_folding_decodes_into_a_fresh_instance(trained, recipe):
    """A user class with fold_batchnorm = True is compressed folded (no BatchNorm in the artifact); decode_model
    folds the fresh instance alike, so it loads strictly and computes what compress() returned."""
    model, data = trained["res-cnn-bn"]
    mine = FoldedResCNN()
    mine.load_state_dict(model.state_dict())
    res = ce.compress(mine.eval(), recipe, data)
    assert not any(k.startswith("bn") for k in ce.decode(res.artifact))
    fresh = FoldedResCNN()
    rebuilt, _ = ce.decode_model(res.artifact, module=fresh)
    assert isinstance(fresh.bn1, nn.BatchNorm2d)  # the caller's instance is left as it was; a folded copy is returned
    x = data.x("test")
    with torch.no_grad():
        assert torch.equal(rebuilt(x), res.model.eval()(x))
    assert ce.evaluate_artifact(res.artifact, data, module=FoldedResCNN())["accuracy"] == res.metrics["accuracy"]


def test_a_folded_artifact_decodes_into_the_users_class_that_does_not_ask_for_folding(trained):
    """The dashboard folds an uploaded ResNet's BatchNorms (it runs as the zoo's class). The user's own class, which
    does not declare fold_batchnorm, then failed to load the artifact with "missing bn1.weight, ...", and
    decode_model told them to pass a fresh instance of their class, which they had. It is folded alike now."""
    model, data = trained["res-cnn-bn"]
    mine = FoldedResCNN()
    mine.load_state_dict(model.state_dict())
    res = ce.compress(mine.eval(), ce.Recipe(sparsity=0.5, clusters=8), data)
    rebuilt, _ = ce.decode_model(res.artifact, module=ResCNN())  # their class: BatchNorms, no fold_batchnorm
    x = data.x("test")
    with torch.no_grad():
        assert torch.equal(rebuilt(x), res.model.eval()(x))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in rebuilt.modules())
    kept = ce.compress(model, ce.Recipe(clusters=8), data).artifact  # kept its BatchNorms: not folded away
    named = r"do not fit the given Conv1dNet module \(2 missing \(fc\.weight, fc\.bias\); 12 unexpected"
    with pytest.raises(ce.ModelError, match=named):
        ce.decode_model(kept, module=Conv1dNet())  # the tensors named, not torch's first line
    with pytest.raises(ce.ModelError, match="not the class ResCNN itself"):
        ce.decode_model(kept, module=ResCNN)


def test_structured_pruning_removes_what_the_folded_model_ranks_and_fine_tunes_through_batchnorm(trained):
    """For a class that folds its BatchNorms, structured pruning ranks units by the folded weights (one-shot, it
    removes the units the folded model's own ranking removes), recalibrates the BatchNorms' statistics on training
    inputs, fine-tunes with the BatchNorms still there and folds after: the same as doing those steps by hand."""
    model, data = trained["res-cnn-bn"]
    mine = FoldedResCNN()
    mine.load_state_dict(model.state_dict())
    mine.eval()
    example = data.x("test")[:2]
    one_shot = ce.compress(mine, ce.Recipe(sparsity=0.5, structured=True), data)
    small = structured.prune_structured(mine, 0.5, example, rank_by=fold_batchnorm(mine))
    assert recalibrate_batchnorm(small, data.x("train"), seed=0) == 2
    by_hand = fold_batchnorm(small)
    assert one_shot.model.state_dict().keys() == by_hand.state_dict().keys()
    assert all(torch.equal(a, by_hand.state_dict()[k]) for k, a in one_shot.model.state_dict().items())
    ranked = structured.plan(mine, 0.5, example, rank_by=fold_batchnorm(mine)).keep()
    folded = structured.plan(fold_batchnorm(mine), 0.5, example).keep()  # the folded model's own ranking
    assert ranked.keys() == folded.keys() and all(torch.equal(ranked[k], folded[k]) for k in ranked)
    recipe = ce.Recipe(sparsity=0.5, structured=True, finetune_epochs=1, lr=1e-3, seed=3)
    tuned = ce.compress(mine, recipe, data)
    small = structured.prune_structured(mine, 0.5, example, rank_by=fold_batchnorm(mine))
    assert isinstance(small.bn1, nn.BatchNorm2d)  # fine-tuned through its BatchNorms
    recalibrate_batchnorm(small, data.x("train"), seed=3)
    fit(small, data, 1, lr=1e-3, batch_size=128, seed=3)
    expected = fold_batchnorm(small).state_dict()
    assert tuned.model.state_dict().keys() == expected.keys()
    assert all(torch.equal(a, expected[k]) for k, a in tuned.model.state_dict().items())
    assert not any(k.startswith("bn") for k in ce.decode(tuned.artifact))


class FreeParameter(nn.Module):
    """A learned position map added to the input (a free nn.Parameter) and an nn.Bilinear: weights the engine has
    no rule for, carried as float32."""

    def __init__(self):
        super().__init__()
        self.pos = nn.Parameter(torch.zeros(1, 8, 8))
        self.fc, self.pair, self.head = nn.Linear(64, 16), nn.Bilinear(16, 16, 8), nn.Linear(8, 10)

    def forward(self, x):
        h = torch.relu(self.fc((x + self.pos).flatten(1)))
        return self.head(torch.relu(self.pair(h, h)))


def test_describe_says_what_compress_would_compress_carry_fold_and_prune(trained, digits):
    """ce.describe, before any work: the compressed weights and their share (counted here from the parameters),
    the weights it would carry as float32, the BatchNorms it would fold, what structured pruning would keep (as
    structured.plan says) and the int8 layers; a model that does not fit the data is refused as compress refuses."""
    data = shaped(digits, (8, 8), "digits-rows")
    free = ce.describe(FreeParameter(), data)
    assert set(free["compressed"]) == {"fc.weight", "head.weight"}
    assert free["carried_weights"] == {"pos": [1, 8, 8], "pair.weight": [8, 16, 16]}
    assert free["compressed_share"] == (64 * 16 + 8 * 10) / sum(p.numel() for p in FreeParameter().parameters())
    assert "fc: its channels go into `pair` (Bilinear)" in free["structured"]["refused"]
    model, data = trained["res-cnn-bn"]
    mine = FoldedResCNN()
    mine.load_state_dict(model.state_dict())
    folded = ce.describe(mine, data)
    assert folded["folded"] == {"bn1": "conv1", "bn2": "conv2"} and folded["int8_layers"] == ["head"]
    plan = structured.plan(fold_batchnorm(mine), 0.5, data.x("test")[:2])
    assert folded["structured"]["prunable"] == {n: f"{len(g.keep)} of {g.units}" for g in plan.groups
                                                for n in g.producers}
    # FLOPs of one input, dense and after that pruning, as torch's counter counts them on the models themselves
    counts = []
    for net in (fold_batchnorm(mine), structured.apply(fold_batchnorm(mine), plan)):
        with FlopCounterMode(display=False) as counter:
            net.eval()(data.x("test")[:1])
        counts.append(counter.get_total_flops())
    assert [folded["flops"], folded["structured"]["flops"]] == counts and counts[1] < counts[0]
    with pytest.raises(ce.ModelError, match="fails on the data's inputs"):
        ce.describe(ResCNN(), shaped(digits, (64,), "digits-flat"))
    assert ce.describe(FreeParameter())["structured"] == "give data to trace the model"


def test_a_structured_artifact_resizes_only_what_structured_pruning_shrinks(trained):
    """decode_model resizes a fresh instance to a structured-pruned artifact's layers; a module of another class,
    or one built smaller than the artifact, still gets the clear refusal."""
    model, data = trained["res-cnn-bn"]
    art = ce.compress(model, ce.Recipe(sparsity=0.5, structured=True), data).artifact
    rebuilt, _ = ce.decode_model(art, module=ResCNN())
    assert rebuilt.conv1.out_channels == rebuilt.bn1.num_features == rebuilt.conv2.in_channels == 8
    assert ce.evaluate_artifact(art, data, module=ResCNN())["params"] < sum(p.numel() for p in model.parameters())
    with pytest.raises(ce.ModelError, match="do not fit the given Conv1dNet"):
        ce.decode_model(art, module=Conv1dNet())
    with pytest.raises(ce.ModelError, match="do not fit the given ResCNN"):
        ce.decode_model(art, module=ResCNN(width=4))  # smaller than the artifact: never grown


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(64, 64)
        self.b = nn.Linear(64, 64)
        self.b.weight = self.a.weight
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        return self.head(self.b(self.a(x)))


class WithAux(nn.Module):
    """Returns (logits, features), as many models do (auxiliary heads, embeddings for retrieval)."""

    def __init__(self, as_dict=False):
        super().__init__()
        self.body, self.head, self.as_dict = nn.Linear(64, 32), nn.Linear(32, 10), as_dict

    def forward(self, x):
        h = self.body(x)
        return {"logits": self.head(h), "features": h} if self.as_dict else (self.head(h), h)


def poisoned(tensor_name, value, model=None):
    """A Linear-ReLU-Linear model (or `model`) with one value of parameter or buffer `tensor_name` set to `value`."""
    model = model or nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    with torch.no_grad():
        model.state_dict()[tensor_name].view(-1)[3] = value
    return model


def MetaBuffer():
    """A BatchNorm whose statistics were left on the meta device: torch's 'Tensor.item() cannot be called on meta
    tensors' from deep inside, before check_model looked at buffers."""
    model = nn.Sequential(nn.Linear(64, 10), nn.BatchNorm1d(10))
    model[1].running_mean = torch.empty(10, device="meta")
    return model


@pytest.mark.parametrize("make, message", [
    (Tied, r"weight of layer 'a' is shared \(a.weight, b.weight\)"),
    (lambda: poisoned("0.weight", float("nan")), r"parameter '0.weight' holds 1 NaN value among its 2,048"),
    (lambda: poisoned("2.bias", float("-inf")), r"parameter '2.bias' holds 1 infinite value among its 10"),
    (lambda: poisoned("1.running_var", float("inf"), nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32),
                                                                   nn.Linear(32, 10))),
     r"buffer '1.running_var' holds 1 infinite value"),
    (lambda: nn.Sequential(nn.utils.weight_norm(nn.Linear(64, 10))),
     r"weight of layer '0' is not a parameter but is computed from others \(bias, weight_g, weight_v\).*"
     r"remove_weight_norm"),
    (lambda: nn.Sequential(nn.utils.spectral_norm(nn.Linear(64, 10))),
     r"weight of layer '0' is not a parameter .*\(bias, weight_orig\).*remove_spectral_norm"),
    (WithAux, r"returns tuple .* it returns more than the logits: wrap it .* e.g. model\(x\)\[0\]"),
    (lambda: WithAux(as_dict=True), r"returns dict .* e.g. model\(x\)\['logits'\]"),
    (lambda: nn.Sequential(nn.LazyLinear(10)), r"'0.weight' is not initialised"),
    (lambda: nn.Sequential(nn.Linear(64, 10)).double(), r"'0.weight' is torch.float64.*model.float\(\)"),
    (lambda: nn.Sequential(nn.Linear(64, 10)).to("meta"), r"'0.weight' is on the meta device.*load real values"),
    (lambda: MetaBuffer(), r"buffer '1.running_mean' is on the meta device.*load real values"),
    (lambda: nn.Sequential(nn.Linear(64, 7)), r"returns \(2, 7\).*\(N, 10\) logits"),
    (lambda: nn.Sequential(nn.Linear(32, 10)), r"fails on the data's inputs of shape \(2, 64\)"),
    (lambda: nn.Sequential(nn.Flatten(), nn.ReLU()), r"has no nn.Linear, nn.Conv1d/2d/3d, nn.ConvTranspose1d/2d/3d, nn.Embedding\(Bag\), nn.MultiheadAttention, nn.RNN, nn.LSTM, nn.GRU or their cells layer"),
    (lambda: "not a model", r"must be a torch.nn.Module, got str"),
])
@pytest.mark.filterwarnings("ignore:`torch.nn.utils.weight_norm` is deprecated:FutureWarning")
def test_what_the_engine_cannot_handle_is_refused_before_any_work(digits, make, message, monkeypatch):
    data = shaped(digits, (64,), "digits-flat")
    monkeypatch.setattr("compress_engine.core.pipeline.reference",
                        lambda *a: pytest.fail("work started before the model was checked"))
    with pytest.raises(ce.ModelError, match=message):
        ce.compress(make(), ce.Recipe(sparsity=0.5), data)


class FlatConv(nn.Module):
    """A conv net fed flat rows (CSV or npz data), or token ids through an embedding: its forward makes the 4-D
    tensor the conv takes, so the engine's batches must keep the inputs' own layout."""

    def __init__(self, tokens=False):
        super().__init__()
        self.embed = nn.Embedding(17, 8) if tokens else None
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4 * 64, 10)

    def forward(self, x):
        x = self.embed(x) if self.embed is not None else x.view(-1, 1, 8, 8)
        return self.head(torch.relu(self.conv(x.reshape(-1, 1, 8, 8))).flatten(1))


@pytest.mark.parametrize("tokens", [False, True], ids=["flat-rows", "token-ids"])
def test_a_conv_net_on_inputs_that_are_not_images_runs(digits, tokens):
    flat = shaped(digits, (64,), "digits-flat")
    data = (ce.Dataset.from_tensors((flat.x("train")[:, :8] * 16).long(), flat.y("train"),
                                    (flat.x("test")[:, :8] * 16).long(), flat.y("test")) if tokens else flat)
    torch.manual_seed(0)
    model = FlatConv(tokens)
    expected = model(data.x("test")).argmax(1)
    assert torch.equal(ce.predictions(model, data.x("test")), expected)
    result = ce.compress(model, ce.Recipe(sparsity=0.5, finetune_epochs=1), data)
    fresh = FlatConv(tokens)
    fresh.load_state_dict(ce.decode(result.artifact))
    assert torch.equal(ce.predictions(fresh, data.x("test")), fresh(data.x("test")).argmax(1))
    assert result.metrics["accuracy"] == (ce.predictions(fresh, data.x("test")) == data.y("test")).float().mean().item()


def test_int8_runtime_runs_recurrent_layers_in_int8(trained):
    """torch's dynamic quantization has int8 LSTM and GRU kernels (and cells): the int8 latency runs them and the
    heads in int8, and leaves nothing compressible in float32."""
    for name, layers in (("lstm", ["lstm", "head"]), ("bi-gru", ["gru", "head"]), ("lstm-cell", ["cell", "back", "head"])):
        model, data = trained[name]
        res = ce.int8_latency(model, data.x("test")[:64], repeats=2)
        assert res["int8_layers"] == layers and res["fp32_layers"] == [], name


def test_int8_runtime_leaves_torchs_transformer_layers_float(trained):
    """An int8 Linear's weight is a method, and torch's transformer layer reads linear1/2.weight as tensors to pick
    its eval-mode fast path: their feed-forward stays float32 (out_proj, an nn.Linear subclass, stays too), the
    head runs in int8."""
    model, data = trained["transformer"]
    res = ce.int8_latency(model, data.x("test")[:64], repeats=2)
    assert res["int8_layers"] == ["embed", "head"]
    assert res["fp32_layers"] == ["encoder.layers.0.self_attn", "encoder.layers.0.self_attn.out_proj",
                                  "encoder.layers.0.linear1", "encoder.layers.0.linear2"]


class ReadsItsWeight(nn.Module):
    """A forward that reads a Linear's weight itself, as tied or custom layers do: torch's int8 Linear cannot."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return F.linear(x.flatten(1), self.fc.weight, self.fc.bias)


def test_int8_runtime_refuses_clearly_what_torchs_int8_layers_cannot_run(digits):
    x = shaped(digits, (64,), "digits-flat").x("test")[:8]
    with pytest.raises(ce.ModelError, match=r"int8 dynamic quantization of fc cannot run ReadsItsWeight"):
        ce.int8_latency(ReadsItsWeight(), x, repeats=1)


def test_structured_pruning_takes_a_fraction_per_layer_from_the_recipe(trained):
    """Recipe.layers with structured=True: conv1 drops a quarter of its filters, conv2 the recipe's half; the
    artifact decodes into a fresh Conv1dNet. Naming a layer whose units it cannot remove stops before any work."""
    model, data = trained["conv1d"]
    recipe = ce.Recipe(sparsity=0.5, structured=True, layers={"conv1.weight": {"sparsity": 0.25}})
    res = ce.compress(model, recipe, data)
    assert (res.model.conv1.out_channels, res.model.conv2.out_channels) == (12, 8)
    fresh, _ = ce.decode_model(res.artifact, module=Conv1dNet())
    assert same_state(fresh.state_dict(), res.model.state_dict())
    with pytest.raises(ce.ModelError, match="given to 'fc', but structured pruning removes no units there"):
        ce.compress(model, ce.Recipe(sparsity=0.5, structured=True, layers={"fc.weight": {"sparsity": 0.2}}), data,
                    progress=lambda *a: pytest.fail("work started"))


class QATNet(nn.Module):
    """conv+bn+relu prepared for quantization-aware training with torch.ao: its FakeQuantize observers resize their
    per-channel scale and zero point as they load a state dict."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.relu = nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()
        self.fc = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(self.relu(self.bn(self.conv(x))).flatten(1))


def qat_net():
    import torch.ao.quantization as tq
    torch.manual_seed(0)
    m = tq.fuse_modules_qat(QATNet().train(), [["conv", "bn", "relu"]])
    m.qconfig = tq.get_default_qat_qconfig("fbgemm")
    return tq.prepare_qat(m)


def test_an_artifact_decodes_into_whatever_torchs_strict_load_takes(digits):
    """decode_model refused a QAT model's artifact ('conv.weight_fake_quant.scale is [8], expected [1]') that torch's
    own load_state_dict(strict=True) takes: a fresh observer's scale is resized as it loads. The reference is that
    load: the decoded module computes what torch's loaded one does."""
    data = shaped(digits, (1, 8, 8), "digits")
    model = qat_net()
    model(data.x("train")[:64])  # a calibration pass, as QAT training makes: the per-channel scales get 8 values
    res = ce.compress(model, ce.Recipe(clusters=4), data)
    fresh, _ = ce.decode_model(res.artifact, module=qat_net())
    by_torch = qat_net()
    by_torch.load_state_dict(ce.decode(res.artifact), strict=True)
    x = data.x("test")
    assert torch.equal(ce.logits(fresh, x), ce.logits(by_torch.eval(), x))
    with pytest.raises(ce.ModelError, match=r"1 of the wrong shape \(fc\.weight is \[10, 512\], expected \[10, 64\]\)"):
        wrong = QATNet()
        wrong.fc = nn.Linear(64, 10)
        ce.decode_model(ce.compress(QATNet(), ce.Recipe(clusters=4), data).artifact, module=wrong)


def test_describe_and_compress_leave_the_callers_model_as_it_was(digits):
    """compress works on a copy, but its check of the caller's model ran a forward on the model itself: a QAT model's
    FakeQuantize observers (which update in eval mode too) came back with other scales and min/max."""
    data = shaped(digits, (1, 8, 8), "digits")
    model = qat_net()
    model(data.x("train")[:64])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ce.describe(model, data)
    ce.compress(model, ce.Recipe(clusters=4), data)
    after = model.state_dict()
    assert list(after) == list(before) and all(torch.equal(after[k], v) for k, v in before.items())
    assert model.training  # and in the mode it was given in
