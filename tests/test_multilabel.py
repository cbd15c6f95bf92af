"""Multi-label tags: boolean labels (N, C), each tag present or not in each sample, trained on binary
cross-entropy and scored over every tag (scikit-learn's hamming_loss and accuracy_score on indicator arrays are
the references), on scikit-learn's bundled 8×8 digits tagged by four properties of the digit."""

import copy

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

import compress_engine as ce
from compress_engine.core.distill import kd_loss
from compress_engine.core.train import answers, fit, task_loss

sk_metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn's metrics are the references")
TAGS = ("even", "five or more", "prime", "has a loop")


def tags_of(digits):
    d = np.asarray(digits)
    return np.stack([d % 2 == 0, d >= 5, np.isin(d, (2, 3, 5, 7)), np.isin(d, (0, 6, 8, 9))], 1)


@pytest.fixture(scope="module")
def digit_tags():
    from sklearn.datasets import load_digits
    d = load_digits()
    x = (d.images / 16).astype(np.float32).reshape(-1, 64)
    test = np.arange(len(x)) % 5 == 0
    y = tags_of(d.target)
    return ce.Dataset.from_tensors(x[~test], y[~test], x[test], y[test], classes=TAGS, name="digit tags")


def mlp(inputs=64, tags=4):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(inputs, 64), nn.ReLU(), nn.Linear(64, tags))


@pytest.fixture(scope="module")
def trained(digit_tags):
    model = mlp()
    torch.set_num_threads(1)
    fit(model, digit_tags, epochs=20, lr=3e-3, batch_size=32)
    return model


def test_boolean_labels_are_multi_label_tags(digit_tags):
    ds = digit_tags
    assert ds.multilabel and not ds.regression and ds.classes == TAGS and ds.n_classes == 4
    assert ds.y("test").dtype == torch.bool and ds.label_shape == (4,)
    assert "4 multi-label tags" in repr(ds)
    numbered = ce.Dataset.from_tensors(np.zeros((3, 2), np.float32), np.eye(3, dtype=bool),
                                       np.zeros((1, 2), np.float32), np.eye(3, dtype=bool)[:1])
    assert numbered.classes == ("0", "1", "2")


@pytest.mark.parametrize("bad, words", [
    (dict(train_y=np.ones(4, bool), test_y=np.ones(3, bool)), "multi-label tags must be (N, C)"),
    (dict(classes=["a", "b", "c"]), "classes names 3 tags but the labels have 2 columns"),
    (dict(test_y=np.array([[0, 1], [1, 1], [0, 0]])),
     "train_y holds multi-label tags (booleans) but test_y holds class indices"),
])
def test_bad_multi_label_data_is_refused_with_the_fix(bad, words):
    args = dict(train_x=np.zeros((4, 2), np.float32), train_y=np.ones((4, 2), bool),
                test_x=np.zeros((3, 2), np.float32), test_y=np.ones((3, 2), bool))
    classes = bad.pop("classes", None)
    args.update(bad)
    with pytest.raises(ce.DatasetError) as e:
        ce.Dataset.from_tensors(**args, classes=classes)
    assert words in str(e.value)


def test_training_loss_is_binary_cross_entropy_of_each_tag(digit_tags):
    out = torch.randn(6, 4, dtype=torch.float64)
    y = digit_tags.y("train")[:6]
    p = 1 / (1 + np.exp(-out.numpy()))
    t = y.numpy().astype(float)
    by_hand = -np.mean(t * np.log(p) + (1 - t) * np.log(1 - p))
    assert float(task_loss(digit_tags)(out, None, y)) == pytest.approx(by_hand, rel=1e-9)


def test_kd_loss_softens_each_tag_alone():
    s, t = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    y = torch.rand(5, 3) > 0.5
    T, alpha = 3.0, 0.7
    ps, pt = 1 / (1 + np.exp(-s.numpy() / T)), 1 / (1 + np.exp(-t.numpy() / T))
    kl = pt * np.log(pt / ps) + (1 - pt) * np.log((1 - pt) / (1 - ps))
    q, yy = 1 / (1 + np.exp(-s.numpy())), y.numpy().astype(float)
    bce = -np.mean(yy * np.log(q) + (1 - yy) * np.log(1 - q))
    assert float(kd_loss(s, t, y, T, alpha)) == pytest.approx(alpha * T * T * kl.mean() + (1 - alpha) * bce, rel=1e-9)


@pytest.mark.parametrize("recipe", [ce.Recipe(sparsity=0.8, clusters=8, huffman=True, finetune_epochs=1),
                                    ce.Recipe(bits=4, per_channel=True), ce.Recipe(sparsity=0.5, structured=True),
                                    ce.Recipe(sparsity=0.7, finetune_epochs=1, finetune_kd=4.0)],
                         ids=["prune+cluster+huffman", "4-bit", "structured", "prune+kd-finetune"])
def test_every_technique_compresses_a_multi_label_model_and_reports_what_the_artifact_scores(digit_tags, trained,
                                                                                             recipe):
    ds = digit_tags
    res = ce.compress(trained, recipe, ds)
    decoded, _ = ce.decode_model(res.artifact, module=mlp())
    found = (decoded(ds.x("test")) > 0).numpy()
    dense = (trained(ds.x("test")) > 0).numpy()
    y = ds.y("test").numpy()
    m = res.metrics
    assert m["accuracy"] == pytest.approx(1 - sk_metrics.hamming_loss(y, found), abs=1e-6)
    assert m["exact_match"] == pytest.approx(sk_metrics.accuracy_score(y, found), abs=1e-6)  # subset accuracy
    assert m["dense_accuracy"] == pytest.approx(1 - sk_metrics.hamming_loss(y, dense), abs=1e-6)
    assert m["dense_exact_match"] == pytest.approx(sk_metrics.accuracy_score(y, dense), abs=1e-6)
    assert m["agreement"] == pytest.approx(float((found == dense).mean()), abs=1e-6)
    assert "mean_iou" not in m
    got = ce.evaluate_artifact(res.artifact, ds, module=mlp())
    assert got["accuracy"] == m["accuracy"] and got["exact_match"] == m["exact_match"]


def test_distillation_into_the_default_student_and_the_wrong_outputs_refused(digit_tags, trained):
    res = ce.compress(trained, ce.Recipe(temperature=2.0, student_width=32, distill_epochs=5), digit_tags)
    assert res.model(digit_tags.x("test")[:3]).shape == (3, 4)  # an MLP with a logit per tag
    assert res.metrics["accuracy"] > 0.6
    with pytest.raises(ce.ModelError, match=r"returns \(2, 10\) for 2 inputs; a multi-label model for 'digit tags' "
                                            r"must return \(N, 4\), a logit per tag"):
        ce.compress(mlp(tags=10), ce.Recipe(), digit_tags)


def test_a_sensitivity_scan_ranks_a_multi_label_models_layers(digit_tags, trained):
    ds = digit_tags
    res = ce.sensitivity.scan(trained, ds, sparsities=(0.0, 0.9), clusters=(None,), use_cache=False)
    row = next(r for r in res["rows"] if r["layer"] == "2.weight" and r["sparsity"] == 0.9)
    ref = copy.deepcopy(trained)
    prune.l1_unstructured(ref[2], "weight", amount=0.9)
    out, dense = ref(ds.x("test")).detach().double().numpy(), trained(ds.x("test")).detach().double().numpy()
    assert row["accuracy"] == pytest.approx(1 - sk_metrics.hamming_loss(ds.y("test").numpy(), out > 0), abs=1e-6)
    p, q = 1 / (1 + np.exp(-dense)), 1 / (1 + np.exp(-out))
    kl = (p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))).sum(1).mean()
    assert row["kl"] == pytest.approx(kl, rel=1e-6)


def test_a_multi_label_model_fits_a_size_budget(digit_tags, trained):
    ds = digit_tags
    budget = ce.compress(trained, ce.Recipe(), ds).metrics["dense_bytes"] // 10
    res, plan = ce.fit_budget(trained, ds, budget, finetune_epochs=2, kd=4.0)
    assert plan["fits"] and len(res.artifact) <= budget
    found = (ce.decode_model(res.artifact, module=mlp())[0](ds.x("test")) > 0).numpy()
    assert res.metrics["accuracy"] == pytest.approx(1 - sk_metrics.hamming_loss(ds.y("test").numpy(), found), abs=1e-6)


def test_answers_are_the_tags_whose_logit_is_positive(digit_tags, trained):
    got = answers(trained, digit_tags.x("test"), digit_tags)
    assert got.dtype == torch.bool and torch.equal(got, trained(digit_tags.x("test")) > 0)


def test_describe_says_what_the_labels_ask(digit_tags, trained):
    assert ce.describe(trained, digit_tags)["task"].startswith("multi-label tags (4): binary cross-entropy")
