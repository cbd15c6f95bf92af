"""Integer inputs and embedding tables: a token classifier is compressed like any other model.

Real data: scikit-learn's 8x8 digits read as 64 tokens each (the pixel intensity 0-16 is the token id, kept as
integers). Two user models take them: one with nn.Embedding tables (a token table and a position table) and one
with an nn.EmbeddingBag. Their tables are pruned, clustered and quantized like Linear weights, checked against
torch's own pruning and fake-quantize, and the artifact decodes exactly into a fresh instance of the class."""

import numpy as np
import pytest
import torch
import torch.nn.utils.prune as tprune
from torch import nn

import compress_engine as ce
from compress_engine.core import quantize
from compress_engine.core.model import compressible
from compress_engine.core.train import fit

sklearn_datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn supplies the 8x8 digits")
VOCAB, LENGTH = 17, 64


class TokenNet(nn.Module):
    """Token and position embeddings, a per-token Linear + ReLU, then a Linear head over all 64 positions."""

    def __init__(self, d=16, hidden=32):
        super().__init__()
        self.tokens, self.positions = nn.Embedding(VOCAB, d), nn.Embedding(LENGTH, d)
        self.mix, self.head = nn.Linear(d, hidden), nn.Linear(LENGTH * hidden, 10)

    def forward(self, x):
        h = self.tokens(x) + self.positions.weight
        return self.head(torch.relu(self.mix(h)).flatten(1))


class BagNet(nn.Module):
    """One bag of (position, token) ids per image, averaged by an nn.EmbeddingBag, then a Linear head."""

    def __init__(self, d=32):
        super().__init__()
        self.bag, self.head = nn.EmbeddingBag(VOCAB * LENGTH, d, mode="mean"), nn.Linear(d, 10)

    def forward(self, x):
        return self.head(torch.relu(self.bag(x + VOCAB * torch.arange(LENGTH))))


@pytest.fixture(scope="module")
def tokens():
    d = sklearn_datasets.load_digits()
    x = torch.tensor(d.images.reshape(-1, LENGTH)).to(torch.int64)
    y = torch.tensor(d.target, dtype=torch.int64)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    return ce.Dataset.from_tensors(x[:1400], y[:1400], x[1400:], y[1400:], name="digit-tokens")


@pytest.fixture(scope="module")
def trained(tokens):
    out = {}
    for make, lr in ((TokenNet, 3e-3), (BagNet, 3e-2)):  # the bag's 1,088 rows each see few samples: a higher lr
        torch.manual_seed(0)
        model = make()
        fit(model, tokens, epochs=10, lr=lr, batch_size=64)
        out[make] = model.eval()
    return out


def same_state(a, b):
    return list(a) == list(b) and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.int64, torch.uint8, torch.int32, torch.int64],
                         ids=str)
def test_integer_inputs_are_kept_as_int64(tokens, dtype):
    x, y = tokens.x("train")[:40], tokens.y("train")[:40]
    raw = x.numpy().astype(dtype) if isinstance(dtype, type) else x.to(dtype)
    ds = ce.Dataset.from_tensors(raw, y, raw[:10], y[:10])
    assert ds.integer_inputs and ds.input_shape == (LENGTH,)
    assert ds.x("train").dtype == torch.int64 and torch.equal(ds.x("train"), x)
    assert not ce.Dataset.from_tensors(x.float(), y, x[:10].float(), y[:10]).integer_inputs


def test_the_token_models_learn_the_digits(tokens, trained):
    for model in trained.values():
        assert (model(tokens.x("test")).argmax(1) == tokens.y("test")).float().mean() > 0.6
    assert set(compressible(trained[TokenNet])) == {"tokens.weight", "positions.weight", "mix.weight", "head.weight"}
    assert set(compressible(trained[BagNet])) == {"bag.weight", "head.weight"}


@pytest.mark.parametrize("make", [TokenNet, BagNet], ids=lambda m: m.__name__)
def test_embedding_tables_are_pruned_as_torch_prunes_them(tokens, trained, make):
    model = trained[make]
    res = ce.compress(model, ce.Recipe(sparsity=0.7), tokens)
    got = compressible(res.model)
    for name, w in compressible(model).items():
        ref = nn.Module()
        ref.weight = nn.Parameter(w.detach().clone())
        tprune.l1_unstructured(ref, "weight", amount=0.7)
        assert torch.equal(got[name] != 0, ref.weight_mask.bool()), name
    fresh = make()
    fresh.load_state_dict(ce.decode(res.artifact))
    assert same_state(fresh.state_dict(), res.model.state_dict())
    assert res.metrics["artifact_bytes"] == len(res.artifact) < res.metrics["dense_bytes"] / 2


def test_embedding_tables_are_quantized_per_row_as_torch_fake_quantizes(tokens, trained):
    model = trained[TokenNet]
    res = ce.compress(model, ce.Recipe(bits=4, per_channel=True), tokens)
    for name in ("tokens.weight", "positions.weight"):
        w = compressible(model)[name].detach()
        scale, zp, qmin, qmax = quantize.qparams(w, 4, per_channel=True)
        ref = torch.fake_quantize_per_channel_affine(w, scale.reshape(-1), zp.reshape(-1).to(torch.int32), 0,
                                                     qmin, qmax)
        assert torch.equal(compressible(res.model)[name], ref), name
    fresh = TokenNet()
    fresh.load_state_dict(ce.decode(res.artifact))
    assert torch.equal(fresh(tokens.x("test")), res.model(tokens.x("test")))


@pytest.mark.parametrize("make", [TokenNet, BagNet], ids=lambda m: m.__name__)
def test_clustered_and_fine_tuned_tables_decode_exactly(tokens, trained, make):
    model = trained[make]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = ce.compress(model, ce.Recipe(sparsity=0.5, clusters=8, finetune_epochs=2, huffman=True), tokens)
    assert same_state(model.state_dict(), before)  # the caller's model is untouched
    for name, w in compressible(res.model).items():
        assert len(torch.unique(w[w != 0])) <= 8, name
    fresh = make()
    fresh.load_state_dict(ce.decode(res.artifact))
    assert same_state(fresh.state_dict(), res.model.state_dict())
    assert res.metrics["accuracy"] > 0.5
    assert ce.evaluate_artifact(res.artifact, tokens, module=make())["accuracy"] == res.metrics["accuracy"]


def test_distilling_a_token_model_needs_a_student_that_takes_tokens(tokens, trained):
    teacher = trained[TokenNet]
    with pytest.raises(ce.CompressError, match="integer inputs .*pass student= a module that takes them"):
        ce.compress(teacher, ce.Recipe(temperature=2.0), tokens)
    res = ce.compress(teacher, ce.Recipe(temperature=2.0, distill_epochs=5), tokens, student=TokenNet(d=4, hidden=8))
    fresh = TokenNet(d=4, hidden=8)
    fresh.load_state_dict(ce.decode(res.artifact))
    assert same_state(fresh.state_dict(), res.model.state_dict()) and res.metrics["accuracy"] > 0.3


def test_a_float_model_on_integer_inputs_is_told_to_scale_them(tokens):
    images = nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(144, 10))
    with pytest.raises(ce.ModelError, match=r"inputs are integers \(int64, ids 0 to 16\).*x.float\(\) / 255"):
        ce.compress(images, ce.Recipe(sparsity=0.5), tokens)


class Masked(nn.Module):
    """Two inputs, as text models take them: token ids and an attention mask (1 = a real token, 0 = padding);
    the real tokens' embeddings (padding zeroed) to a head over all positions."""

    def __init__(self, d=8):
        super().__init__()
        self.tokens, self.positions = nn.Embedding(VOCAB, d), nn.Embedding(LENGTH, d)
        self.head = nn.Linear(LENGTH * d, 10)

    def forward(self, ids, mask):
        h = torch.relu(self.tokens(ids) + self.positions.weight) * mask.unsqueeze(-1)
        return self.head(h.flatten(1))


class Stacked(nn.Module):
    """The wrapper the refusal asks for: ids and mask stacked into one input, split again for the model."""

    def __init__(self):
        super().__init__()
        self.model = Masked()

    def forward(self, x):
        return self.model(x[:, 0], x[:, 1])


def test_a_model_with_two_inputs_is_told_to_stack_them_and_then_compresses(tokens):
    """The digits as ids cut to 40-64 tokens and padded (the mask says where): a forward(ids, mask) is refused
    with the fix, and the stacked wrapper it names trains, compresses, and decodes exactly; the padding's ids do
    not change its answers."""
    g = torch.Generator().manual_seed(0)

    def stacked(split):
        ids = tokens.x(split)
        mask = (torch.arange(LENGTH) < torch.randint(40, LENGTH + 1, (len(ids), 1), generator=g)).to(torch.int64)
        return torch.stack([ids * mask, mask], 1)

    data = ce.Dataset.from_tensors(stacked("train"), tokens.y("train"), stacked("test"), tokens.y("test"))
    with pytest.raises(ce.ModelError, match=r"forward takes 2 inputs \(ids, mask\).*torch.stack\(\[ids, mask\], 1\)"):
        ce.compress(Masked(), ce.Recipe(sparsity=0.5), data)
    torch.manual_seed(0)
    model = Stacked()
    fit(model, data, epochs=10, lr=3e-3, batch_size=64)
    res = ce.compress(model.eval(), ce.Recipe(sparsity=0.5, clusters=8, finetune_epochs=1), data)
    fresh, _ = ce.decode_model(res.artifact, module=Stacked())
    x = data.x("test")
    noisy = x.clone()
    noisy[:, 0] = torch.where(x[:, 1] == 1, x[:, 0], torch.randint(0, VOCAB, x[:, 0].shape, generator=g))
    with torch.no_grad():
        assert torch.equal(fresh(x), res.model(x)) and torch.allclose(fresh(noisy), fresh(x), atol=1e-6)
    assert res.metrics["accuracy"] > 0.7 and res.metrics["artifact_bytes"] < res.metrics["dense_bytes"] / 4


@pytest.mark.parametrize("bad_id", [VOCAB, -1])
def test_an_id_beyond_the_table_is_refused_before_any_work(tokens, bad_id):
    """One sample deep in the training split holds an id the table does not have: refused up front (the check runs
    the samples with each split's smallest and largest id), not by an IndexError minutes into training."""
    x = tokens.x("train").clone()
    x[777, 5] = bad_id
    data = ce.Dataset.from_tensors(x, tokens.y("train"), tokens.x("test"), tokens.y("test"))
    lo, hi = min(bad_id, 0), max(bad_id, VOCAB - 1)
    with pytest.raises(ce.ModelError, match=rf"TokenNet\) fails .*index out of range.*ids {lo} to {hi}"):
        ce.compress(TokenNet(), ce.Recipe(sparsity=0.5, finetune_epochs=1), data)


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.tokens, self.out = nn.Embedding(VOCAB, 8), nn.Linear(8, VOCAB)
        self.out.weight = self.tokens.weight  # a language model's tied input and output tables

    def forward(self, x):
        return self.out(self.tokens(x).mean(1))[:, :10]


@pytest.mark.parametrize("make, words", [
    (lambda: nn.Sequential(nn.Embedding(VOCAB, 4, sparse=True), nn.Flatten(), nn.Linear(256, 10)),
     "embedding '0' has sparse=True"),
    (lambda: nn.Sequential(nn.Embedding(VOCAB, 4, max_norm=1.0), nn.Flatten(), nn.Linear(256, 10)),
     "embedding '0' has max_norm=1.0, which rewrites its rows in place"),
    (Tied, r"the weight of layer 'tokens' is shared \(tokens.weight, out.weight\)"),
], ids=["sparse", "max_norm", "tied"])
def test_embeddings_the_engine_cannot_keep_are_refused(tokens, make, words):
    with pytest.raises(ce.ModelError, match=words):
        ce.compress(make(), ce.Recipe(sparsity=0.5), tokens)


def test_int8_runtime_keeps_embeddings_float(tokens, trained):
    res = ce.int8_latency(trained[TokenNet], tokens.x("test")[:64], repeats=2)
    assert res["int8_layers"] == ["mix", "head"] and res["fp32_layers"] == ["tokens", "positions"]


def test_structured_pruning_keeps_the_tables_whole_and_decodes_into_the_users_class(tokens, trained):
    """The embedding dims reach positions' add and so stay whole; `mix` loses half its units (and `head` the
    matching columns). The artifact decodes into a fresh TokenNet() built at the original sizes."""
    model = trained[TokenNet]
    res = ce.compress(model, ce.Recipe(sparsity=0.5, structured=True, finetune_epochs=1), tokens)
    assert res.model.mix.weight.shape == (16, 16) and res.model.head.weight.shape == (10, LENGTH * 16)
    assert res.model.tokens.weight.shape == (VOCAB, 16)
    rebuilt, meta = ce.decode_model(res.artifact, module=TokenNet())
    assert (rebuilt.mix.out_features, rebuilt.head.in_features) == (16, LENGTH * 16)
    assert same_state(rebuilt.state_dict(), res.model.state_dict())
    assert torch.equal(rebuilt(tokens.x("test")), res.model.eval()(tokens.x("test")))


def test_structured_pruning_narrows_an_embedding_bag_and_decodes(tokens, trained):
    """BagNet's 32 embedding dims feed its head alone: half of them go (the table's columns, the head's inputs),
    after fine-tuning the artifact decodes into a fresh BagNet() resized to them."""
    model = trained[BagNet]
    res = ce.compress(model, ce.Recipe(sparsity=0.5, structured=True, finetune_epochs=1), tokens)
    assert res.model.bag.weight.shape == (VOCAB * LENGTH, 16) and res.model.head.in_features == 16
    rebuilt, _ = ce.decode_model(res.artifact, module=BagNet())
    assert rebuilt.bag.embedding_dim == 16 and same_state(rebuilt.state_dict(), res.model.state_dict())
    assert torch.equal(rebuilt(tokens.x("test")), res.model.eval()(tokens.x("test")))
    assert res.metrics["accuracy"] > 0.5


def test_latency_is_timed_on_the_datas_own_inputs(tokens, trained):
    """Token ids, not random floats (an embedding cannot look those up); the 397 test inputs repeat to fill 512."""
    res = ce.compress(trained[TokenNet], ce.Recipe(), tokens, measure_latency=True)
    assert res.timings["latency_ms"] > 0 and res.timings["latency_batch"] == 256
    assert ce.core.pipeline.latency(res.model, tokens, batch_size=512, repeats=2)["latency_batch"] == 512
