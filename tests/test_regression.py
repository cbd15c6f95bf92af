"""Regression targets: float labels are numbers to predict, trained on mean squared error and scored by R² and RMSE
(scikit-learn's r2_score and mean_squared_error are the references), on scikit-learn's bundled diabetes data (442
patients, 10 measurements, a disease-progression score a year later)."""

import json
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

import compress_engine as ce
from compress_engine.core.train import answers, fit, r2_score, rmse
from compress_engine.playground.cli import main

sk_metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn's metrics are the references")


@pytest.fixture(scope="module")
def diabetes():
    """The diabetes data, features standardised and the target scaled to unit variance, every fifth patient a test
    one; as a Dataset and as arrays."""
    from sklearn.datasets import load_diabetes
    d = load_diabetes()
    x = ((d.data - d.data.mean(0)) / d.data.std(0)).astype(np.float32)
    y = ((d.target - d.target.mean()) / d.target.std()).astype(np.float32)
    test = np.arange(len(y)) % 5 == 0
    return ce.Dataset.from_tensors(x[~test], y[~test], x[test], y[test], name="diabetes"), (x, y, test)


def mlp(outputs=1):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, outputs))


@pytest.fixture(scope="module")
def trained(diabetes):
    ds, _ = diabetes
    model = mlp()
    torch.set_num_threads(1)
    fit(model, ds, epochs=30, lr=3e-3, batch_size=32, weight_decay=1e-4)
    return model


def test_float_labels_are_regression_targets(diabetes):
    ds, (x, y, test) = diabetes
    assert ds.regression and ds.classes == () and ds.n_classes == 0 and ds.label_shape == ()
    assert torch.equal(ds.y("test"), torch.from_numpy(y[test]))
    assert "regression targets 1 per sample" in repr(ds)
    several = ce.Dataset.from_tensors(x, np.stack([y, -y], 1), x[:5], np.stack([y, -y], 1)[:5])
    assert several.regression and several.label_shape == (2,)
    assert not ce.Dataset.from_tensors(x, (y > 0).astype(np.int64), x, (y > 0).astype(np.int64)).regression


@pytest.mark.parametrize("bad, words", [
    (dict(classes=["low", "high"]), "classes were given but the labels are floats"),
    (dict(test_y=np.array([0.5, np.nan, 1.0], np.float32)), "test_y[1] holds NaN: regression targets must be finite"),
    (dict(test_y=np.array([0, 1, 1])), "train_y holds regression targets (floats) but test_y holds class indices"),
])
def test_bad_regression_data_is_refused_with_the_fix(bad, words):
    args = dict(train_x=np.zeros((4, 2), np.float32), train_y=np.array([0.1, 0.2, 0.3, 0.4], np.float32),
                test_x=np.zeros((3, 2), np.float32), test_y=np.array([0.5, 0.6, 0.7], np.float32))
    classes = bad.pop("classes", None)
    args.update(bad)
    with pytest.raises(ce.DatasetError) as e:
        ce.Dataset.from_tensors(**args, classes=classes)
    assert words in str(e.value)


def test_r2_and_rmse_are_scikit_learns():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(50, 3))
    y[:, 2] = 4.0  # a constant target: 1 when predicted exactly, 0 otherwise (force_finite)
    for pred in (y + rng.normal(scale=0.5, size=y.shape), y.copy(), rng.normal(size=y.shape)):
        p, t = torch.from_numpy(pred), torch.from_numpy(y)
        assert r2_score(p, t) == pytest.approx(sk_metrics.r2_score(y, pred), abs=1e-12)
        assert rmse(p, t) == pytest.approx(np.sqrt(sk_metrics.mean_squared_error(y, pred)), abs=1e-12)
    one = rng.normal(size=40)
    guess = one + rng.normal(scale=0.3, size=40)
    assert r2_score(torch.from_numpy(guess), torch.from_numpy(one)) == pytest.approx(sk_metrics.r2_score(one, guess))


def test_fit_trains_on_mean_squared_error(diabetes, trained):
    ds, _ = diabetes
    pred = answers(trained, ds.x("test"), ds)
    assert pred.shape == ds.y("test").shape  # (N, 1) outputs read as the (N,) targets
    # better than predicting the training mean (R² 0) by a clear margin: linear models reach about 0.5 on it
    assert r2_score(pred, ds.y("test")) > 0.3
    # the loss fit() reports is torch's mean squared error of a batch
    model, seen = mlp(), []
    fit(model, ds.subset(32, 8), epochs=1, batch_size=32, progress=lambda s, t, loss, acc: seen.append((loss, acc)),
        report_every=1)
    with torch.no_grad():
        after = nn.functional.mse_loss(model(ds.x("test")[:8]).squeeze(1), ds.y("test")[:8]).item()
    assert seen[-1][1] == pytest.approx(1 - after * 8 / float(((ds.y("test")[:8] - ds.y("test")[:8].mean()) ** 2)
                                                              .sum()), abs=1e-5)  # the epoch's score is R²


@pytest.mark.parametrize("recipe", [ce.Recipe(sparsity=0.8, clusters=16, huffman=True), ce.Recipe(bits=4),
                                    ce.Recipe(sparsity=0.5, structured=True),
                                    ce.Recipe(sparsity=0.7, finetune_epochs=2),
                                    ce.Recipe(bits=8, per_channel=True, bias_bits=8)],
                         ids=["prune+cluster+huffman", "4-bit", "structured", "prune+finetune", "8-bit+bias"])
def test_every_technique_compresses_a_regression_model_and_reports_what_the_artifact_scores(diabetes, trained,
                                                                                            recipe):
    ds, _ = diabetes
    res = ce.compress(trained, recipe, ds)
    m = res.metrics
    assert m["accuracy"] is None and m["agreement"] is None and m["dense_accuracy"] is None
    fresh = mlp()
    decoded, _ = ce.decode_model(res.artifact, module=fresh)
    out = decoded(ds.x("test")).detach().squeeze(1).double().numpy()
    y = ds.y("test").double().numpy()
    assert m["r2"] == pytest.approx(sk_metrics.r2_score(y, out), abs=1e-6)
    assert m["rmse"] == pytest.approx(np.sqrt(sk_metrics.mean_squared_error(y, out)), abs=1e-6)
    dense = trained(ds.x("test")).detach().squeeze(1).double().numpy()
    assert m["dense_r2"] == pytest.approx(sk_metrics.r2_score(y, dense), abs=1e-6)
    assert m["artifact_bytes"] < m["dense_bytes"]
    got = ce.evaluate_artifact(res.artifact, ds, module=mlp())
    assert got["r2"] == pytest.approx(m["r2"], abs=1e-9) and "accuracy" not in got


def test_given_outputs_are_the_dense_reference(diabetes, trained):
    ds, _ = diabetes
    outs = {s: trained(ds.x(s)).detach() for s in ("train", "test")}
    res = ce.compress(trained, ce.Recipe(sparsity=0.5), ds, model_logits=outs)
    assert res.metrics["dense_r2"] == pytest.approx(ce.compress(trained, ce.Recipe(sparsity=0.5), ds)
                                                    .metrics["dense_r2"], abs=1e-9)


def test_a_model_with_the_wrong_outputs_or_a_class_only_technique_is_refused(diabetes, trained):
    ds, _ = diabetes
    with pytest.raises(ce.ModelError, match=r"returns \(2, 3\) for 2 inputs; a regression model for 'diabetes' "
                                            r"must return \(N, 1\).*y\.long\(\)"):
        ce.compress(mlp(3), ce.Recipe(), ds)
    for recipe, field in ((ce.Recipe(temperature=4.0), "temperature"),
                          (ce.Recipe(sparsity=0.5, finetune_epochs=1, finetune_kd=4.0), "finetune_kd")):
        with pytest.raises(ce.RecipeError, match=f"recipe.{field} softens a teacher's class probabilities"):
            ce.compress(trained, recipe, ds)
    with pytest.raises(ce.RecipeError, match="kd fine-tunes on a teacher's softened class probabilities"):
        ce.fit_budget(trained, ds, 2_000, kd=4.0)


def test_a_sensitivity_scan_ranks_a_regression_models_layers_by_r2_and_output_change(diabetes, trained):
    ds, _ = diabetes
    res = ce.sensitivity.scan(trained, ds, sparsities=(0.0, 0.5, 0.9), clusters=(None, 4), use_cache=False)
    y = ds.y("test").double().numpy()
    dense = trained(ds.x("test")).detach().squeeze(1).double()
    assert res["score"] == "r2" and res["dense_accuracy"] == pytest.approx(sk_metrics.r2_score(y, dense), abs=1e-9)
    row = next(r for r in res["rows"] if r["layer"] == "2.weight" and r["sparsity"] == 0.9 and r["clusters"] is None)
    # the reference: torch's own magnitude pruning of that layer alone, scored by scikit-learn
    import copy
    from torch.nn.utils import prune
    ref = copy.deepcopy(trained)
    prune.l1_unstructured(ref[2], "weight", amount=0.9)
    out = ref(ds.x("test")).detach().squeeze(1).double()
    assert row["accuracy"] == pytest.approx(sk_metrics.r2_score(y, out), abs=1e-6)
    assert row["kl"] == pytest.approx(float(((out - dense) ** 2).mean() / np.var(y)), rel=1e-6)
    untouched = next(r for r in res["rows"] if r["sparsity"] == 0.0 and r["clusters"] is None)
    assert untouched["kl"] == 0 and untouched["accuracy"] == res["dense_accuracy"]


def test_a_regression_model_fits_a_size_budget(diabetes, trained):
    ds, _ = diabetes
    dense_bytes = ce.compress(trained, ce.Recipe(), ds).metrics["dense_bytes"]
    budget = dense_bytes // 12
    res, plan = ce.fit_budget(trained, ds, budget, finetune_epochs=2)
    assert plan["fits"] and len(res.artifact) <= budget and "pruned_r2" in plan
    out = ce.decode_model(res.artifact, module=mlp())[0](ds.x("test")).detach().squeeze(1).double().numpy()
    assert res.metrics["r2"] == pytest.approx(sk_metrics.r2_score(ds.y("test").double().numpy(), out), abs=1e-6)


def test_several_targets_per_sample(diabetes):
    ds, (x, y, test) = diabetes
    two = np.stack([y, y ** 2], 1)
    data = ce.Dataset.from_tensors(x[~test], two[~test], x[test], two[test], name="two")
    model = mlp(2)
    fit(model, data, epochs=5, lr=3e-3, batch_size=32)
    res = ce.compress(model, ce.Recipe(sparsity=0.5, clusters=8), data)
    out = ce.decode_model(res.artifact, module=mlp(2))[0](data.x("test")).detach().double().numpy()
    assert res.metrics["r2"] == pytest.approx(sk_metrics.r2_score(two[test], out), abs=1e-6)


# --- from a CSV file and the command line -------------------------------------------------------------------

def diabetes_csv(path, every=1):
    from sklearn.datasets import load_diabetes
    d = load_diabetes()
    lines = [",".join([*d.feature_names, "progression"])]
    lines += [",".join([*(repr(float(v)) for v in row), repr(float(t))]) for row, t in zip(d.data, d.target)][::every]
    path.write_text("\n".join(lines) + "\n")
    return d


def test_a_csv_with_a_continuous_label_column_is_regression_data(tmp_path):
    d = diabetes_csv(tmp_path / "diabetes.csv")  # its targets are whole numbers, 214 different ones from 25 to 346
    with pytest.raises(ce.DatasetError, match=r"holds 214 different whole numbers, 25 to 346: say what they are, "
                                              r"'\?task=regression'"):
        ce.load_dataset(f"csv:{tmp_path / 'diabetes.csv'}")
    ds = ce.load_dataset(f"csv:{tmp_path / 'diabetes.csv'}?task=regression")
    assert ds.regression and ds.input_shape == (10,) and len(ds.y("train")) + len(ds.y("test")) == 442
    got = sorted(torch.cat([ds.y("train"), ds.y("test")]).tolist())
    assert got == sorted(np.float32(d.target).tolist())  # every target once, as float32
    # numbers that are not whole are regression targets without being told
    (tmp_path / "price.csv").write_text("a,price\n" + "\n".join(f"{i},{i / 3:.3f}" for i in range(40)))
    assert ce.load_dataset(f"csv:{tmp_path / 'price.csv'}").regression
    # a few whole numbers are classes unless told otherwise
    (tmp_path / "counts.csv").write_text("a,count\n" + "\n".join(f"{i},{i % 4}" for i in range(40)))
    assert not ce.load_dataset(f"csv:{tmp_path / 'counts.csv'}").regression
    forced = ce.load_dataset(f"csv:{tmp_path / 'counts.csv'}?task=regression")
    assert forced.regression and forced.y("train").dtype == torch.float32


def test_the_command_line_compresses_evaluates_and_sweeps_a_regression_model(tmp_path, capsys, diabetes, trained):
    diabetes_csv(tmp_path / "diabetes.csv")
    (tmp_path / "nets.py").write_text(textwrap.dedent("""
        from torch import nn
        def make_model():
            return nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1))
    """))
    torch.save(trained.state_dict(), tmp_path / "w.pt")
    data = f"csv:{tmp_path / 'diabetes.csv'}?task=regression"
    model = ["--model", f"{tmp_path / 'nets.py'}:make_model", "--weights", str(tmp_path / "w.pt")]

    def cli(*argv):
        code = main(list(argv))
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, err = cli("run", *model, "--data", data, "--sparsity", "0.8", "--clusters", "8",
                         "--out", str(tmp_path / "r.cpg"))
    assert code == 0, err
    metrics = json.loads(out)["metrics"]
    assert metrics["accuracy"] is None and isinstance(metrics["r2"], float) and metrics["rmse"] > 0
    code, out, err = cli("eval", str(tmp_path / "r.cpg"), "--model", f"{tmp_path / 'nets.py'}:make_model",
                         "--data", data)
    assert code == 0, err
    assert json.loads(out)["r2"] == pytest.approx(metrics["r2"], abs=1e-9)
    code, out, err = cli("sweep", *model, "--data", data, "--field", "sparsity", "--values", "0.5,0.9")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["sparsity"] for r in rows] == [0.5, 0.9] and all("r2" in r and "rmse" in r for r in rows)
    code, out, err = cli("sweep", *model, "--data", data, "--field", "sparsity", "--values", "0.5",
                         "--store", str(tmp_path / "runs.sqlite"))
    assert code == 2 and "holds regression targets: drop --store" in err, err
    code, out, err = cli("run", *model, "--data", data, "--budget-kb", "4", "--finetune-epochs", "1")
    assert code == 0, err
    report = json.loads(out)
    assert report["budget"]["fits"] and report["metrics"]["artifact_bytes"] <= 4000 and "r2" in report["metrics"]
    assert "test R²" in err


def test_an_npz_of_float_targets_is_regression_data(tmp_path, diabetes):
    _, (x, y, test) = diabetes
    np.savez(tmp_path / "d.npz", train_x=x[~test], train_y=y[~test].astype(np.float64), test_x=x[test],
             test_y=y[test].astype(np.float64))
    ds = ce.load_dataset(f"npz:{tmp_path / 'd.npz'}")
    assert ds.regression and torch.equal(ds.y("test"), torch.from_numpy(y[test]))


def test_describe_says_what_the_labels_ask(diabetes, trained):
    assert ce.describe(trained, diabetes[0])["task"] == "regression: mean squared error, scored by R² and RMSE"
