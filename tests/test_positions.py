"""A label per position: segmentation (a class per pixel) and tagging (a class per token) are compressed like
classifiers.

Real data: scikit-learn's 8x8 digits. Segmentation: each pixel is labelled background (intensity <= 2), or its
digit (1 + class, intensity > 8); the edge pixels in between are IGNORE (-100, torch's cross_entropy
ignore_index), as void borders are in segmentation sets. Tagging: the same images as 64 tokens, cut to
lengths 40-64 and padded with a pad token whose label is IGNORE. The models return (N, C, *positions) logits.
Everything is checked against independent references: accuracy and agreement recomputed in numpy from a fresh
decoded module, the KD loss from Hinton's formula written out per position in float64, torch's cross_entropy."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import compress_engine as ce
from compress_engine.core import sensitivity
from compress_engine.core.distill import kd_loss
from compress_engine.core.train import cross_entropy, fit, logits, mean_iou

sklearn_datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn supplies the 8x8 digits")
jaccard_score = pytest.importorskip("sklearn.metrics", reason="scikit-learn gives the reference IoU").jaccard_score
IGNORE, CLASSES, PAD, LENGTH = -100, 11, 17, 64


class SegNet(nn.Module):
    """Two 3x3 convs, a global-context Linear added back to every pixel (which digit is it?), a 1x1 head."""

    def __init__(self, width=32):
        super().__init__()
        self.a, self.b = nn.Conv2d(1, width, 3, padding=1), nn.Conv2d(width, width, 3, padding=1)
        self.context, self.head = nn.Linear(width, width), nn.Conv2d(width, CLASSES, 1)

    def forward(self, x):
        h = torch.relu(self.b(torch.relu(self.a(x))))
        return self.head(torch.relu(h + self.context(h.mean((2, 3)))[:, :, None, None]))


class Tagger(nn.Module):
    """Token embeddings, a bidirectional GRU, a Linear per token; class scores moved to dim 1."""

    def __init__(self, d=16, hidden=32):
        super().__init__()
        self.tokens = nn.Embedding(PAD + 1, d)
        self.gru = nn.GRU(d, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, CLASSES)

    def forward(self, x):
        return self.head(self.gru(self.tokens(x))[0]).movedim(-1, 1)


def _digits():
    d = sklearn_datasets.load_digits()
    order = torch.randperm(len(d.target), generator=torch.Generator().manual_seed(0))
    return torch.tensor(d.images)[order], torch.tensor(d.target, dtype=torch.int64)[order]


def _pixel_labels(img, digit):
    y = torch.where(img > 8, digit[:, None, None] + 1, torch.zeros((), dtype=torch.int64))
    y[(img > 2) & (img <= 8)] = IGNORE
    return y


@pytest.fixture(scope="module")
def seg():
    img, digit = _digits()
    x, y = (img / 16).float()[:, None], _pixel_labels(img, digit)
    return ce.Dataset.from_tensors(x[:1400], y[:1400], x[1400:], y[1400:], name="digit-pixels")


@pytest.fixture(scope="module")
def tags():
    img, digit = _digits()
    ids = img.reshape(-1, LENGTH).to(torch.int64)
    y = _pixel_labels(img, digit).reshape(-1, LENGTH)
    length = torch.randint(40, LENGTH + 1, (len(ids),), generator=torch.Generator().manual_seed(1))
    pad = torch.arange(LENGTH)[None] >= length[:, None]
    ids, y = ids.masked_fill(pad, PAD), y.masked_fill(pad, IGNORE)
    return ce.Dataset.from_tensors(ids[:1400], y[:1400], ids[1400:], y[1400:], name="digit-tags")


def _train(make, data, epochs, lr):
    torch.manual_seed(0)
    model = make()
    fit(model, data, epochs=epochs, lr=lr)
    return model.eval()


@pytest.fixture(scope="module")
def segnet(seg):
    return _train(SegNet, seg, 15, 3e-3)


@pytest.fixture(scope="module")
def tagger(tags):
    return _train(Tagger, tags, 15, 1e-2)


def _classifier():
    """A one-label-per-sample model and data, for what per-position labels add to the metrics."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), ce.load_dataset("digits").subset(200, 100)


def _scored_mean(a, b, y):
    a, b, y = (np.asarray(t) for t in (a, b, y))
    keep = y != IGNORE
    return (a[keep] == b[keep]).mean()


def _predict(model, x):
    with torch.no_grad():
        return model.eval()(x).argmax(1).numpy()


def test_the_ignored_label_is_torchs_own():
    assert ce.IGNORE == IGNORE == nn.CrossEntropyLoss().ignore_index


def test_labels_per_position_are_kept_with_their_shape(seg, tags):
    assert seg.label_shape == (8, 8) and tags.label_shape == (LENGTH,) and seg.n_classes == CLASSES
    assert seg.y("train").shape == (1400, 8, 8) and seg.y("train").dtype == torch.int64
    assert "labels 8×8 per sample" in repr(seg) and "labels" not in repr(ce.load_dataset("digits"))
    assert (tags.y("test") == IGNORE).any() and (tags.x("test") == PAD).any()


def test_training_learns_every_position_beyond_the_majority_class(seg, segnet, tags, tagger):
    """Real learning on both tasks: each beats always answering its commonest class (on the scored labels)."""
    for data, model in ((seg, segnet), (tags, tagger)):
        y = data.y("test").numpy()
        majority = np.bincount(y[y != IGNORE]).max() / (y != IGNORE).sum()
        acc = _scored_mean(_predict(model, data.x("test")), y, y)
        assert acc > majority + 0.05, (data.name, acc, majority)


@pytest.mark.parametrize("which", ["seg", "tags"])
def test_metrics_count_every_scored_position_and_decode_exactly(which, seg, segnet, tags, tagger):
    """Accuracy, dense accuracy and agreement equal numpy's over the scored positions, computed from a fresh
    instance the artifact decodes into; counting the ignored positions too would give other numbers."""
    data, model, make = (seg, segnet, SegNet) if which == "seg" else (tags, tagger, Tagger)
    recipe = ce.Recipe(sparsity=0.8, clusters=8, huffman=True, finetune_epochs=1, lr=1e-3)
    result = ce.compress(model, recipe, data)
    fresh = make()
    fresh.load_state_dict(ce.decode(result.artifact))
    x, y = data.x("test"), data.y("test")
    pred, dense_pred = _predict(fresh, x), _predict(model, x)
    m = result.metrics
    assert m["accuracy"] == pytest.approx(_scored_mean(pred, y, y), abs=1e-7)
    assert m["dense_accuracy"] == pytest.approx(_scored_mean(dense_pred, y, y), abs=1e-7)
    assert m["agreement"] == pytest.approx(_scored_mean(pred, dense_pred, y), abs=1e-7)
    assert m["accuracy"] != pytest.approx((pred == y.numpy()).mean(), abs=1e-4)  # the mask matters here
    keep = y.numpy() != IGNORE
    for key, p in (("mean_iou", pred), ("dense_mean_iou", dense_pred)):
        assert m[key] == pytest.approx(jaccard_score(y.numpy()[keep], p[keep], average="macro"), abs=1e-12)
    flat, digits = _classifier()
    assert "mean_iou" not in ce.compress(flat, ce.Recipe(sparsity=0.5), digits).metrics
    assert m["artifact_bytes"] == len(result.artifact) and m["ratio"] > 4
    for name, t in result.model.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], t), name


def test_predictions_are_the_logits_argmax_taken_batch_by_batch(seg, segnet, tags, tagger):
    for data, model in ((seg, segnet), (tags, tagger)):
        x = data.x("test")[:50]
        whole = logits(model, x).argmax(1)
        for batch in (7, 50, 1000):
            assert torch.equal(ce.predictions(model, x, batch), whole)
        assert whole.shape == (50, *data.label_shape)


def test_mean_iou_is_scikit_learns_macro_jaccard_over_the_scored_positions():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 4, (30, 5, 5), generator=g)
    pred = torch.randint(0, 6, (30, 5, 5), generator=g)  # classes 4 and 5: predicted, never labelled
    y[:, 0] = IGNORE
    keep = (y != IGNORE).numpy()
    want = jaccard_score(y.numpy()[keep], pred.numpy()[keep], average="macro")
    assert mean_iou(pred, y) == pytest.approx(want, abs=1e-12)
    assert mean_iou(y, y) == 1.0


def test_kd_loss_per_position_is_hintons_formula_over_the_scored_positions():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(6, 5, 3, 4, generator=g), torch.randn(6, 5, 3, 4, generator=g)
    y = torch.randint(0, 5, (6, 3, 4), generator=g)
    y[0] = IGNORE
    y[3, 1] = IGNORE
    T, alpha = 3.0, 0.7
    sd, td = s.double().numpy(), t.double().numpy()
    soft, hard, n = 0.0, 0.0, 0
    for i, r, c in zip(*np.nonzero(y.numpy() != IGNORE)):
        zs, zt = sd[i, :, r, c] / T, td[i, :, r, c] / T
        log_ps, log_pt = zs - np.log(np.exp(zs).sum()), zt - np.log(np.exp(zt).sum())
        soft += (np.exp(log_pt) * (log_pt - log_ps)).sum()
        z = sd[i, :, r, c]
        hard += np.log(np.exp(z).sum()) - z[y[i, r, c]]
        n += 1
    want = alpha * T * T * soft / n + (1 - alpha) * hard / n
    assert kd_loss(s, t, y, T, alpha).item() == pytest.approx(want, rel=1e-5)
    # and (N, C) logits are unchanged: the same as before, one row per sample
    s2, t2, y2 = s[:, :, 0, 0], t[:, :, 0, 0], torch.randint(0, 5, (6,), generator=g)
    old = (alpha * T * T * F.kl_div(F.log_softmax(s2 / T, -1), F.log_softmax(t2 / T, -1), log_target=True,
                                     reduction="batchmean") + (1 - alpha) * F.cross_entropy(s2, y2))
    assert torch.equal(kd_loss(s2, t2, y2, T, alpha), old)


def test_a_batch_of_padding_only_gives_no_gradient_not_nan():
    out = torch.randn(4, 5, 7, requires_grad=True)
    y = torch.full((4, 7), IGNORE)
    for loss in (cross_entropy(out, y), kd_loss(out, out.detach() + 1, y, 2.0, 0.5)):
        loss.backward()
        assert loss.item() == 0 and torch.equal(out.grad, torch.zeros_like(out))
        out.grad = None
    assert cross_entropy(out, torch.zeros(4, 7, dtype=torch.int64)).item() == pytest.approx(
        F.cross_entropy(out, torch.zeros(4, 7, dtype=torch.int64)).item())


def test_distillation_into_a_small_segmentation_student(seg, segnet):
    """The teacher's (N, C, 8, 8) answers teach a 4x narrower student; given as model_logits they give the same
    student, bit for bit, as computed in the run."""
    recipe = ce.Recipe(temperature=2.0, alpha=0.5, distill_epochs=3, bits=8)
    runs = []
    for given in (None, {"train": logits(segnet, seg.x("train")), "test": logits(segnet, seg.x("test"))}):
        torch.manual_seed(0)
        runs.append(ce.compress(segnet, recipe, seg, student=SegNet(width=8), model_logits=given))
    a, b = runs
    assert a.artifact == b.artifact and a.metrics["accuracy"] == b.metrics["accuracy"]
    fresh = SegNet(width=8)
    fresh.load_state_dict(ce.decode(a.artifact))
    y = seg.y("test")
    assert a.metrics["accuracy"] == pytest.approx(_scored_mean(_predict(fresh, seg.x("test")), y, y), abs=1e-7)
    assert a.metrics["params"] < ce.core.model.param_count(segnet) / 8


def test_sensitivity_scan_and_size_budget_on_per_pixel_labels(seg, segnet, tmp_path):
    result = sensitivity.scan(segnet, seg, sparsities=(0.0, 0.9), clusters=(None, 4), cache_dir=tmp_path)
    y = seg.y("test")
    assert result["dense_accuracy"] == pytest.approx(_scored_mean(_predict(segnet, seg.x("test")), y, y), abs=1e-7)
    untouched = [r for r in result["rows"] if r["sparsity"] == 0.0 and r["clusters"] is None]
    assert untouched and all(r["kl"] == pytest.approx(0, abs=1e-9) for r in untouched)
    assert all(r["kl"] >= 0 for r in result["rows"]) and max(r["kl"] for r in result["rows"]) > 0.01
    budget = 12_000
    res, plan = ce.fit_budget(segnet, seg, budget, finetune_epochs=1, cache_dir=tmp_path)
    assert len(res.artifact) <= budget
    fresh = SegNet()
    fresh.load_state_dict(ce.decode(res.artifact))
    assert res.metrics["accuracy"] == pytest.approx(_scored_mean(_predict(fresh, seg.x("test")), y, y), abs=1e-7)


def test_what_does_not_fit_per_position_labels_is_refused_with_the_fix(seg, segnet, tags):
    def refused(call, *words):
        with pytest.raises(ce.CompressError) as e:
            call()
        assert all(w in str(e.value) for w in words), str(e.value)

    refused(lambda: ce.compress(segnet, ce.Recipe(temperature=2.0), seg),
            "the default student is an MLP that gives one prediction per sample", "(N, 11, 8, 8) logits")
    flat = nn.Sequential(nn.Flatten(), nn.Linear(64, CLASSES))
    refused(lambda: ce.compress(flat, ce.Recipe(sparsity=0.5), seg), "returns (2, 11) for 2 inputs",
            "must return (N, 11, 8, 8) logits", "if those are one-hot labels, give Dataset.from_tensors y.argmax(1)")

    class Last(nn.Module):  # class scores last, as many models put them
        def __init__(self):
            super().__init__()
            self.t = Tagger()

        def forward(self, x):
            return self.t(x).movedim(1, -1)
    refused(lambda: ce.compress(Last(), ce.Recipe(sparsity=0.5), tags), "returns (6, 64, 11)", "out.movedim(-1, 1)")
    bad = {"test": torch.zeros(len(seg.y("test")), CLASSES)}
    refused(lambda: ce.compress(segnet, ce.Recipe(sparsity=0.5), seg, model_logits=bad),
            f"shape ({len(seg.y('test'))}, 11, 8, 8)")
    digits = ce.load_dataset("digits")
    refused(lambda: ce.compress(SegNet(), ce.Recipe(sparsity=0.5), digits.subset(100, 50)),
            "for a class per token or pixel, give labels of shape (N, *positions)")


def test_an_npz_of_per_pixel_labels_runs_and_evals_through_the_cli(seg, segnet, tmp_path, capsys):
    from safetensors.torch import save_file

    from compress_engine.playground.cli import main
    np.savez(tmp_path / "pixels.npz", train_x=seg.x("train").numpy(), train_y=seg.y("train").numpy(),
             test_x=seg.x("test").numpy(), test_y=seg.y("test").numpy())
    (tmp_path / "nets.py").write_text("from test_positions import SegNet\n")
    save_file(segnet.state_dict(), tmp_path / "seg.safetensors")
    model, data = f"{tmp_path}/nets.py:SegNet", f"npz:{tmp_path / 'pixels.npz'}"
    assert main(["run", "--model", model, "--weights", str(tmp_path / "seg.safetensors"), "--data", data,
                 "--sparsity", "0.7", "--bits", "4", "--out", str(tmp_path / "seg.cpg")]) == 0
    ran = json.loads(capsys.readouterr().out)["metrics"]
    assert main(["eval", str(tmp_path / "seg.cpg"), "--model", model, "--data", data]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["accuracy"] == ran["accuracy"] and evaluated["artifact_bytes"] == ran["artifact_bytes"]
    assert evaluated["mean_iou"] == ran["mean_iou"] and 0 < ran["mean_iou"] <= 1 and 0 < ran["dense_mean_iou"] <= 1
    y = seg.y("test")
    assert ran["dense_accuracy"] == pytest.approx(_scored_mean(_predict(segnet, seg.x("test")), y, y), abs=1e-7)
