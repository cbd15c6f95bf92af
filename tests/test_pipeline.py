"""compress(): the whole chain, on the real sample models and the real test set."""

import pytest
import torch

import compress_engine as ce
from compress_engine.core.prune import compressible


def weights(model):
    return {n: p.detach() for n, p in compressible(model).items()}


def assert_exact(artifact, model):
    decoded = ce.decode(artifact)
    state = model.state_dict()
    assert list(decoded) == list(state)
    for k in state:
        assert torch.equal(decoded[k].view(torch.int32), state[k].contiguous().view(torch.int32)), k


def test_dense_recipe_is_the_dense_model(lenet300, fmnist):
    res = ce.compress(lenet300, ce.Recipe(), fmnist)
    m = res.metrics
    # 40,993 weights of the checkpoint are exactly 0 (subnormal and tiny ones flushed when it was cleaned)
    assert m["params"] == 266_610
    assert m["nonzero_params"] == sum(int(p.count_nonzero()) for p in lenet300.parameters())
    assert m["accuracy"] == m["dense_accuracy"] and m["agreement"] == 1.0
    # raw float32 tensors; the exact zeros let the sparse layout win in some layers: under 4 B a parameter, but at
    # least 4 B a non-zero one
    assert m["artifact_bytes"] == len(res.artifact)
    assert 4 * m["nonzero_params"] < m["artifact_bytes"] < m["dense_bytes"] + 1024
    assert_exact(res.artifact, res.model)


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_prune_then_cluster_post_training(lenet300, fmnist, scope):
    res = ce.compress(lenet300, ce.Recipe(sparsity=0.9, prune_scope=scope, clusters=16), fmnist)
    m = res.metrics
    assert m["nonzero_params"] <= 26_620 + 410  # 10 % of 266,200 weights kept, plus the 410 biases
    if scope == "layer":
        for row in m["layers"]:
            if row["name"].endswith("weight"):
                assert row["nonzero"] == pytest.approx(0.1 * row["params"], abs=1)
    for w in weights(res.model).values():
        assert len(w[w != 0].unique()) <= 16
    assert m["artifact_bytes"] == len(res.artifact)
    assert m["ratio"] > 15  # 90 % pruned + 4-bit indices
    assert 0.1 < m["accuracy"] < m["dense_accuracy"]
    assert_exact(res.artifact, res.model)
    assert sum(m["bytes_breakdown"].values()) == len(res.artifact)


def test_input_model_is_not_changed(lenet300, fmnist):
    before = {k: v.clone() for k, v in lenet300.state_dict().items()}
    ce.compress(lenet300, ce.Recipe(sparsity=0.5, bits=4), fmnist)
    assert all(torch.equal(before[k], v) for k, v in lenet300.state_dict().items())


@pytest.mark.parametrize("bits,symmetric,per_channel", [(8, False, False), (4, True, True), (2, False, True), (16, True, False)])
def test_quantize_on_grid(lenet300, fmnist, bits, symmetric, per_channel):
    res = ce.compress(lenet300, ce.Recipe(sparsity=0.5, bits=bits, symmetric=symmetric, per_channel=per_channel), fmnist)
    for w in weights(res.model).values():
        rows = w if per_channel else w.flatten()[None]
        assert max(len(r.unique()) for r in rows) <= 2 ** bits
    assert_exact(res.artifact, res.model)
    if bits == 8:
        assert res.metrics["accuracy"] > res.metrics["dense_accuracy"] - 0.02


def test_finetune_keeps_constraints_and_recovers(lenet300, small):
    one_shot = ce.compress(lenet300, ce.Recipe(sparsity=0.95, clusters=8), small)
    tuned = ce.compress(lenet300, ce.Recipe(sparsity=0.95, clusters=8, finetune_epochs=2, lr=1e-3), small)
    assert tuned.metrics["accuracy"] > one_shot.metrics["accuracy"]
    ws, wt = weights(one_shot.model), weights(tuned.model)
    for n in ws:
        assert torch.equal(ws[n] == 0, wt[n] == 0), "pruned weights must stay pruned, kept ones kept"
        assert len(wt[n][wt[n] != 0].unique()) <= 8
    assert set(tuned.history) == {"prune", "cluster"}
    assert_exact(tuned.artifact, tuned.model)


def test_qat_stays_on_grid(lenet300, small):
    res = ce.compress(lenet300, ce.Recipe(sparsity=0.8, bits=3, finetune_epochs=1), small)
    for w in weights(res.model).values():
        assert len(w.unique()) <= 8
    assert res.metrics["sparsity"] >= 0.79
    assert_exact(res.artifact, res.model)


def test_gradual_schedule_reaches_target(lenet300, small):
    res = ce.compress(lenet300, ce.Recipe(sparsity=0.9, schedule="gradual", finetune_epochs=2), small)
    for row in res.metrics["layers"]:
        if row["name"].endswith("weight"):
            assert row["nonzero"] == pytest.approx(0.1 * row["params"], rel=0.02)
    assert res.metrics["accuracy"] > 0.7


def test_structured_really_shrinks(lenet5, fmnist):
    res = ce.compress(lenet5, ce.Recipe(sparsity=0.5, structured=True), fmnist)
    assert res.model.widths == [10, 25, 250]
    assert res.metrics["params"] == res.metrics["nonzero_params"] < 431_080 / 2
    model, meta = ce.decode_model(res.artifact)
    assert meta["spec"] == {"arch": "lenet5", "widths": [10, 25, 250]}
    assert ce.evaluate_artifact(res.artifact, fmnist)["accuracy"] == res.metrics["accuracy"]


def test_measure_latency_times_a_smaller_model_in_turns_with_its_dense_one(small, monkeypatch):
    """compress(measure_latency=True): a model that structured pruning made smaller is timed against the one it came
    from, through speedup() (in turns); a model of the same shape alone, through latency()."""
    from compress_engine.core import pipeline
    model = ce.load_model("lenet-300-100")
    paired = []
    real = pipeline.speedup
    monkeypatch.setattr(pipeline, "speedup", lambda *a, **k: paired.append((a, k)) or real(*a, **k))
    res = ce.compress(model, ce.Recipe(structured=True, sparsity=0.5), small, measure_latency=True, evaluate=False)
    t = res.timings
    assert t["latency_batch"] == 256 and t["speedup"] == t["dense_latency_ms"] / t["latency_ms"] > 0
    ((args, kw),) = paired
    assert args[0] is model and args[1] is res.model
    assert (kw["batch_size"], kw["seconds"], kw["repeats"]) == (256, None, 20)
    same = ce.compress(model, ce.Recipe(sparsity=0.5), small, measure_latency=True, evaluate=False).timings
    assert same["latency_ms"] > 0 and "speedup" not in same and len(paired) == 1


def test_speedup_times_both_models_as_deployed_in_turns_and_changes_neither(small):
    """ce.speedup: medians of forward passes of the dense and the pruned model, timed in turns. The timings themselves
    are the machine's (bench/speedup.py measures speed-ups); here what is timed, how often, and that nothing moves."""
    model = ce.load_model("resnet-8")  # BatchNorms: timed folded, as the pruned model (folded by compress) runs
    state = {k: v.clone() for k, v in model.state_dict().items()}
    smaller = ce.compress(model, ce.Recipe(structured=True, sparsity=0.5), small, evaluate=False).model
    small_state = {k: v.clone() for k, v in smaller.state_dict().items()}
    from compress_engine.core import fold
    calls = []  # which model each call reached, in order (the timed copies keep the hooks)
    hooks = [net.register_forward_pre_hook(lambda m, args, name=name: calls.append((name, len(args[0]))))
             for net, name in ((model, "dense"), (smaller, "pruned"))]
    t = ce.speedup(model, smaller, small, batch_size=16, seconds=None, repeats=4)
    for h in hooks:
        h.remove()
    assert set(t) == {"dense_ms", "ms", "speedup", "repeats", "batch"} and (t["repeats"], t["batch"]) == (4, 16)
    assert t["dense_ms"] > 0 and t["ms"] > 0 and t["speedup"] == t["dense_ms"] / t["ms"]
    assert calls == [("dense", 16), ("pruned", 16)] * 5  # a warm-up call of each, then 4 turns
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items()) and model.training is False
    assert all(torch.equal(v, small_state[k]) for k, v in smaller.state_dict().items())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # still the unfolded model
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fold.deployed(model).modules())
    assert ce.speedup(model, smaller, small, batch_size=16, seconds=1e-9)["repeats"] == 3  # too slow: 3 turns
    for bad in (0, -1.0, "1", float("nan"), True):
        with pytest.raises(ce.RecipeError, match="seconds"):
            ce.speedup(model, smaller, small, seconds=bad)
    with pytest.raises(ce.RecipeError, match="repeats"):
        ce.speedup(model, smaller, small, repeats=0)


def test_distillation_trains_a_student(small):
    teacher = ce.load_model("teacher-1200-1200")
    res = ce.compress(teacher, ce.Recipe(temperature=4.0, alpha=0.9, student_width=50, distill_epochs=5, bits=8), small)
    assert res.metrics["params"] == 784 * 50 + 50 + 50 * 50 + 50 + 50 * 10 + 10
    assert res.metrics["accuracy"] > 0.6
    assert "distill" in res.history


TRAINING_RECIPES = {  # every training stage compress() has, each small enough to run twice in seconds
    "fine-tune + centroid training": ce.Recipe(sparsity=0.9, prune_scope="global", clusters=16,
                                               cluster_init="kmeans++", finetune_epochs=1, huffman=True, seed=3),
    "QAT (fake-quant fine-tuning)": ce.Recipe(sparsity=0.8, bits=3, per_channel=True, finetune_epochs=1,
                                              huffman=True, seed=5),
    "distillation, then all of it": ce.Recipe(temperature=4.0, alpha=0.7, student_width=30, distill_epochs=1,
                                              sparsity=0.5, clusters=8, finetune_epochs=1, seed=2),
}


def bits(model):
    return {k: v.detach().contiguous().view(torch.int32) for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def mini(fmnist):
    """1,024 training and 500 test images: 8 optimizer steps per epoch, enough to tell runs apart."""
    return fmnist.subset(1024, 500, "fashion-mnist[mini]")


@pytest.mark.parametrize("name", list(TRAINING_RECIPES))
def test_same_recipe_and_seed_give_bit_identical_results(lenet300, mini, name):
    """Same recipe + seed => the same artifact bytes, metrics, losses and weights, bit for bit, whatever ran
    before (the global torch RNG is disturbed between the two runs)."""
    r = TRAINING_RECIPES[name]
    start = ce.load_model("teacher-1200-1200") if r.temperature is not None else lenet300
    a = ce.compress(start, r, mini)
    torch.manual_seed(12345)
    torch.rand(1000)
    b = ce.compress(start, r, mini)
    assert a.history and a.history == b.history
    assert a.artifact == b.artifact and a.metrics == b.metrics
    wa, wb = bits(a.model), bits(b.model)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    if r.temperature is not None:  # the seed really is what decides (checked once: another whole run)
        assert ce.compress(start, r.replace(seed=r.seed + 1), mini).history != a.history


def test_progress_and_stop(lenet300, small):
    seen = []
    ce.compress(lenet300, ce.Recipe(sparsity=0.5, finetune_epochs=1), small,
                progress=lambda *a: seen.append(a))
    assert seen[-1][0] == seen[-1][1] == 2 + 32 + 2  # 2,000 test images, a batch of 1,000, before and after 32 steps
    assert [a for a in seen if a[2] is not None][-1][3] is not None  # the epoch's end reports its test accuracy
    with pytest.raises(ce.Stopped):
        ce.compress(lenet300, ce.Recipe(sparsity=0.5, finetune_epochs=3), small, progress=lambda *a: False)


STOPPABLE = {  # stage -> a recipe whose first progress report comes from that stage (2 epochs: not the last)
    "prune fine-tuning": ce.Recipe(sparsity=0.5, finetune_epochs=2),
    "centroid training": ce.Recipe(clusters=8, finetune_epochs=2),
    "QAT": ce.Recipe(bits=4, finetune_epochs=2),
    "distillation": ce.Recipe(temperature=4.0, student_width=20, distill_epochs=2),
}


@pytest.mark.parametrize("stage", list(STOPPABLE))
def test_a_stopped_run_returns_nothing_and_saves_nothing(lenet300, mini, tmp_path, stage):
    """progress() -> False stops the run with train.Stopped: no Result, so the caller (a page, the CLI) has
    nothing to save; the input model is untouched and the next run is unaffected."""
    from compress_engine.playground.store import Store
    from compress_engine.core.train import Stopped
    recipe = STOPPABLE[stage]
    start = ce.load_model("teacher-1200-1200") if recipe.temperature is not None else lenet300
    before = {k: v.clone() for k, v in start.state_dict().items()}
    store, calls = Store(tmp_path / "runs.sqlite"), []

    def stop(*report):
        calls.append(report)
        return False
    with pytest.raises(Stopped):
        res = ce.compress(start, recipe, mini, progress=stop)
        store.save("lenet-300-100", recipe, res.metrics, res.artifact)
    assert len(calls) == 1 and store.count() == 0 and store.list() == []
    assert all(torch.equal(before[k], v) for k, v in start.state_dict().items())
    res = ce.compress(start, recipe.replace(finetune_epochs=0, distill_epochs=1), mini)
    assert store.save("lenet-300-100", res.recipe, res.metrics, res.artifact) and store.count() == 1


def test_stop_requested_at_the_end_of_a_stage_stops_the_recipe(lenet300, mini):
    with pytest.raises(ce.Stopped):
        ce.compress(lenet300, ce.Recipe(sparsity=0.5, clusters=8, finetune_epochs=1), mini,
                    progress=lambda *a: False)


def test_huffman_is_smaller(lenet300, fmnist):
    r = ce.Recipe(sparsity=0.9, clusters=16)
    plain, huff = ce.compress(lenet300, r, fmnist), ce.compress(lenet300, r.replace(huffman=True), fmnist)
    assert huff.metrics["artifact_bytes"] < plain.metrics["artifact_bytes"]
    assert huff.metrics["accuracy"] == plain.metrics["accuracy"]
    assert_exact(huff.artifact, huff.model)
    # plain_bytes: the Huffman run's own weights with fixed-width codes, exactly the other run's artifact
    assert huff.metrics["plain_bytes"] == len(plain.artifact) == plain.metrics["plain_bytes"]


def test_sweep(lenet300, fmnist):
    rows = ce.sweep(lenet300, ce.Recipe(clusters=16), fmnist, "sparsity", [0.0, 0.5, 0.9])
    assert [r["sparsity"] for r in rows] == [0.0, 0.5, 0.9]
    sizes = [r["artifact_bytes"] for r in rows]
    assert sizes == sorted(sizes, reverse=True)


def test_not_a_recipe(lenet300, fmnist):
    with pytest.raises(ce.CompressError, match="Recipe"):
        ce.compress(lenet300, {"sparsity": 0.5}, fmnist)


@pytest.mark.parametrize("recipe", [ce.Recipe(sparsity=0.8, prune_scope="global"),
                                    ce.Recipe(sparsity=0.5, clusters=16, huffman=True), ce.Recipe(bits=4)])
def test_compress_without_evaluation_is_the_same_run_less_its_accuracy(lenet300, small, recipe):
    full = ce.compress(lenet300, recipe, small)
    asked = []
    with ce.stop_when(lambda: asked.append(1)):  # counts the evaluation batches
        quick = ce.compress(lenet300, recipe, small, evaluate=False)
    assert asked == [] and "evaluate" not in quick.timings  # not one batch evaluated
    assert quick.artifact == full.artifact
    skipped = {"accuracy", "dense_accuracy", "agreement"}
    assert {k: v for k, v in quick.metrics.items() if k not in skipped} == {
        k: v for k, v in full.metrics.items() if k not in skipped}
    assert all(quick.metrics[k] is None for k in skipped) and full.metrics["accuracy"] > 0.5
    assert all(torch.equal(a, b) for a, b in zip(quick.model.state_dict().values(), full.model.state_dict().values()))


@pytest.fixture(scope="module")
def pruned_lenet300(lenet300, fmnist):
    """LeNet-300-100 pruned one-shot per layer: 50 % (it lost 0.2 points: few images change their answer) and 85 %
    (14 points: many do)."""
    return {s: ce.compress(lenet300, ce.Recipe(sparsity=s), fmnist) for s in (0.5, 0.85)}


def test_an_estimate_over_the_whole_test_set_is_the_evaluation(lenet300, fmnist, pruned_lenet300):
    res = pruned_lenet300[0.85]
    ref = ce.reference(lenet300, fmnist)[0]
    for kw in ({}, {"reference": ref}):
        est = ce.estimate(res.model, fmnist, inputs=10**6, **kw)
        assert est["inputs"] == est["of"] == len(fmnist.y("test"))
        assert est["accuracy"] == pytest.approx(res.metrics["accuracy"], abs=1e-7) and est["margin"] == 0
    # the reference itself: its accuracy exactly, and as margin the rule of three (no disagreement seen in 1,000 of
    # 10,000 cannot tell a rate below 3/1,000 from none), not a claim of 0
    same = ce.estimate(lenet300, fmnist, reference=ref)
    assert same["accuracy"] == pytest.approx(ce.reference(lenet300, fmnist)[1], abs=1e-7)
    assert same["margin"] == pytest.approx(3 / 1000 * (1 - 1000 / 10_000))


@pytest.mark.parametrize("sparsity, narrower", [(0.5, 2.0), (0.85, 1.0)])
def test_estimate_intervals_hold_the_whole_test_sets_accuracy_about_95_percent_of_the_time(lenet300, fmnist,
                                                                                            pruned_lenet300,
                                                                                            sparsity, narrower):
    """Over 100 seeded samples of 500 of the 10,000 test images, the 95 % interval holds the accuracy on all of them
    in about 95 of 100 (at least 88: a binomial 95 % has 1 % of falling below that); with the dense model's answers
    as the reference, as often, and narrower: much narrower for a model that mostly agrees with it, never wider for
    one that does not. Without a reference, the margin is the textbook one for a proportion sampled without
    replacement."""
    res, ref = pruned_lenet300[sparsity], ce.reference(lenet300, fmnist)[0]
    truth = res.metrics["accuracy"]
    plain, sharp = [], []
    for seed in range(100):
        p = ce.estimate(res.model, fmnist, inputs=500, seed=seed)
        n, big = p["inputs"], p["of"]
        a = p["accuracy"]
        assert p["margin"] == pytest.approx(1.96 * (a * (1 - a) / (n - 1) * (big - n) / big) ** 0.5, rel=1e-9)
        r = ce.estimate(res.model, fmnist, inputs=500, seed=seed, reference=ref)
        plain.append((abs(a - truth) <= p["margin"], p["margin"]))
        sharp.append((abs(r["accuracy"] - truth) <= r["margin"], r["margin"]))
    assert sum(c for c, _ in plain) >= 88 and sum(c for c, _ in sharp) >= 88, (plain, sharp)
    assert narrower * sum(m for _, m in sharp) <= sum(m for _, m in plain)


def test_estimate_refuses_bad_input_and_gives_regression_scores_without_a_margin():
    x, y = torch.randn(40, 3), torch.randn(40)
    ds = ce.Dataset.from_tensors(x[:30], y[:30], x[30:], y[30:], name="noise")
    model = torch.nn.Linear(3, 1)
    est = ce.estimate(model, ds, inputs=5)
    assert set(est) == {"r2", "rmse", "inputs", "of", "margin"} and est["margin"] is None and est["inputs"] == 5
    for bad in (0, True, 2.5, "10"):
        with pytest.raises(ValueError, match="inputs must be a whole number"):
            ce.estimate(model, ds, inputs=bad)
    with pytest.raises(ValueError, match="reference holds answers for 3 inputs; the test set has 10"):
        ce.estimate(model, ds, reference=torch.zeros(3, 1))


def test_dense_reference_follows_a_model_changed_in_place(small):
    """A library user trains, compresses, trains the same object more (or loads another checkpoint into it) and
    compresses again: the dense accuracy stayed the first weights' (cached per model object), and the unchanged
    model's agreement with its own 'dense' self read 0.88. The reference is recomputed when the weights change."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    first = ce.compress(model, ce.Recipe(), small).metrics
    assert first["agreement"] == 1.0
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x, y = small.x("train")[:1024].flatten(1), small.y("train")[:1024]
    for _ in range(5):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    trained = ce.compress(model, ce.Recipe(), small).metrics
    assert trained["dense_accuracy"] == trained["accuracy"] != first["dense_accuracy"]
    assert trained["agreement"] == 1.0
    other = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    model.load_state_dict(other.state_dict())  # another checkpoint into the same object
    loaded = ce.compress(model, ce.Recipe(), small).metrics
    assert loaded["dense_accuracy"] == loaded["accuracy"] and loaded["agreement"] == 1.0
    for change in (lambda: model[1].weight.data.mul_(0.5),  # writes that bump no version counter
                   lambda: model[1].weight.detach().numpy().__setitem__((0, slice(None)), 3.0),
                   lambda: torch.nn.utils.vector_to_parameters(
                       torch.randn(sum(p.numel() for p in model.parameters())), model.parameters())):
        change()
        after = ce.compress(model, ce.Recipe(), small).metrics
        assert after["dense_accuracy"] == after["accuracy"] and after["agreement"] == 1.0
