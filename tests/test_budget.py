"""Size budgets: the knapsack is exact, the result fits, the recipe replays, the command line takes --budget-kb."""

import itertools
import json
import re

import pytest
import torch

import compress_engine as ce
from compress_engine.core import budget, pipeline
from compress_engine.core.sensitivity import scan
from compress_engine.playground import cli

GRID = dict(sparsities=(0.0, 0.8, 0.9, 0.95), clusters=(None, 16, 4), subset=500)


def fake_scan(layers):
    """A scan from {layer: [(bytes, kl), ...]} (all other fields made up)."""
    rows = [{"layer": name, "sparsity": i / 10, "clusters": None, "accuracy": 0.9 - kl, "kl": kl, "bytes": b}
            for name, opts in layers.items() for i, (b, kl) in enumerate(opts)]
    return {"dense_accuracy": 0.9, "key": "k", "rows": rows,
            "layers": [{"name": n, "params": 1, "shape": [1], "dense_bytes": max(b for b, _ in o)} for n, o in layers.items()]}


@pytest.mark.parametrize("budget_bytes", [60, 100, 151, 230, 400, 10_000])
def test_allocation_is_the_best_that_fits(budget_bytes):
    layers = {"a": [(200, 0.0), (90, 0.01), (40, 0.2), (10, 1.0)],
              "b": [(100, 0.0), (50, 0.05), (20, 0.06), (5, 0.5)],
              "c": [(30, 0.0), (12, 0.3), (3, 0.31)]}
    plan = budget.allocate(fake_scan(layers), budget_bytes)
    best = min((sum(kl for _, kl in pick), pick) for pick in itertools.product(*layers.values())
               if sum(b for b, _ in pick) <= budget_bytes)
    assert plan["damage"] == pytest.approx(best[0])
    assert plan["bytes"] <= budget_bytes and set(plan["layers"]) == set(layers)


def test_allocation_refuses_a_budget_nothing_fits():
    with pytest.raises(ce.RecipeError, match="too small"):
        budget.allocate(fake_scan({"a": [(200, 0.0), (10, 1.0)], "b": [(100, 0.0), (5, 0.5)]}), 14)
    for bad in (0, -5, "10", True):
        with pytest.raises(ce.RecipeError):
            budget.allocate(fake_scan({"a": [(1, 0.0)]}), bad)


def test_fit_budget_refuses_a_budget_the_dense_model_already_fits(lenet300, small, monkeypatch):
    """A budget of 1,066,440 bytes for LeNet-300-100's 1,066,440 float32 bytes (kilobytes typed as bytes, say)
    gave an artifact bigger than the dense model; it is refused before the minutes of scanning, naming the size."""
    monkeypatch.setattr(budget.sensitivity, "scan", lambda *a, **k: pytest.fail("it scanned"))
    dense = sum(t.numel() * 4 for t in lenet300.state_dict().values())
    with pytest.raises(ce.RecipeError, match=f"budget_bytes={dense:,} is no smaller than the dense model "
                                             f"\\({dense:,} bytes of float32\\): it fits as it is"):
        ce.fit_budget(lenet300, small, dense)


def test_fit_budget_refuses_a_budget_below_the_header_and_biases_before_scanning(lenet300, small, monkeypatch):
    """`--budget-kb 0.01` with a model of one's own scanned for 5 minutes, silent, then said the budget is smaller
    than the header and biases alone: that depends on the model and the recipe's form only, so it is refused before
    the scan, in KB as the budget is given."""
    monkeypatch.setattr(budget.sensitivity, "scan", lambda *a, **k: pytest.fail("it scanned"))
    with pytest.raises(ce.RecipeError, match=r"a budget of 0\.01 KB \(10 bytes\) is smaller than this model's "
                                             r"[0-9,]+ bytes of header and carried tensors \(the largest: "
                                             r"layers\.0\.bias, 300, [0-9,]+ bytes\) alone, before any weight"):
        ce.fit_budget(lenet300, small, 10)


class FreeWeight(torch.nn.Module):
    """A 32x64 weight matrix as a free nn.Parameter (F.linear): carried as float32, 8,192 bytes of the artifact."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.w1 = torch.nn.Parameter(torch.randn(32, 64) * 0.1)
        self.b1 = torch.nn.Parameter(torch.zeros(32))
        self.fc = torch.nn.Linear(32, 10)

    def forward(self, x):
        return self.fc(torch.relu(torch.nn.functional.linear(x.flatten(1), self.w1, self.b1)))


def test_a_budget_refused_before_the_scan_is_told_the_truth_and_a_budget_that_passes(monkeypatch):
    """A model carrying a free 32x64 weight: fit_budget at the 8,620 bytes its clusters=16 artifact takes was told the
    budget 'is smaller than this model's header and biases alone (8,453 bytes)' -- it is not smaller (the 2 % margin
    refused it), and those bytes are mostly a weight matrix, not biases -- and 'a scan of every layer, which follows,
    names how much', though nothing followed. Now the message says which rule refuses, names the largest carried
    tensor, and the budget it names passes the check (the scan starts), a byte less does not."""
    class Scanned(Exception):
        pass

    def scanned(*a, **k):
        raise Scanned
    monkeypatch.setattr(budget.sensitivity, "scan", scanned)
    digits, model = ce.load_dataset("digits"), FreeWeight()
    size = len(ce.compress(model, ce.Recipe(clusters=16, huffman=True), digits).artifact)
    with pytest.raises(ce.RecipeError) as e:
        ce.fit_budget(model, digits, size)
    said = str(e.value)
    carried = int(re.search(r"holds this model's ([0-9,]+) bytes of header and carried tensors \(the largest: w1, "
                            r"32×64, 8,[0-9]{3} bytes\), but not the room fit_budget keeps beside them \(8% for "
                            r"what training may add, 2% of the budget held back\)", said).group(1).replace(",", ""))
    assert carried <= size and "which follows" not in said and "biases" not in said
    need = int(re.search(r"only a budget of [0-9.]+ KB \(([0-9,]+) bytes\) or more passes", said).group(1)
               .replace(",", ""))
    with pytest.raises(ce.RecipeError, match=f"a budget of 5 KB \\(5,000 bytes\\) is smaller than this model's "
                                             f"{carried:,} bytes of header and carried tensors"):
        ce.fit_budget(model, digits, 5000)
    with pytest.raises(ce.RecipeError, match="passes this check"):
        ce.fit_budget(model, digits, need - 1)
    with pytest.raises(Scanned):
        ce.fit_budget(model, digits, need)


def test_fit_budget_carries_every_metric_a_compress_result_has_as_its_replay_computes_them(tmp_path):
    """fit_budget's metrics lacked dense_flops, flops and plain_bytes, which every compress() result carries; now they
    are there, equal to those of compress(model, result.recipe, data), which replays the fit byte for byte."""
    digits = ce.load_dataset("digits")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(8 * 8 * 8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    dense = sum(t.numel() * 4 for t in model.state_dict().values())
    result, plan = ce.fit_budget(model, digits, dense // 6, finetune_epochs=1, cache_dir=tmp_path)
    replay = ce.compress(model, result.recipe, digits)
    assert plan["fits"] and replay.artifact == result.artifact
    assert set(replay.metrics) <= set(result.metrics)
    for key in ("plain_bytes", "dense_flops", "flops"):
        assert result.metrics[key] == replay.metrics[key], key
    assert result.metrics["plain_bytes"] != len(result.artifact) and result.metrics["flops"] > 0


def test_fit_budget_refuses_an_unusable_model_in_words_first(small, monkeypatch):
    """The check before the scan copied and encoded the model before anything had checked it: a float64 model got
    'a Affine grid applies only to float32 tensors', a meta-device one a traceback."""
    monkeypatch.setattr(budget.sensitivity, "scan", lambda *a, **k: pytest.fail("it scanned"))
    net = lambda: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    for model, words in ((net().double(), r"call model\.float\(\) first"), (net().to("meta"), "on the meta device")):
        with pytest.raises(ce.ModelError, match=words):
            ce.fit_budget(model, small, 2000)


def test_fit_budget_reports_its_scans_progress(lenet300, small, tmp_path):
    """The scan before a fit takes minutes on a model of one's own; scan_progress follows it point by point (a point
    done has its accuracy), with keep-alives inside a point (accuracy None) at the count of points done."""
    seen = []
    with pytest.raises(ce.RecipeError, match="too small"):  # after the scan, before any training
        ce.fit_budget(lenet300, small, 2000, cache_dir=tmp_path, scan_progress=lambda *a: seen.append(a))
    points = [a[:2] for a in seen if a[3] is not None]
    assert points and points[-1][0] == points[-1][1] and [s for s, _ in points] == list(range(1, len(points) + 1))
    assert [a[0] for a in seen] == sorted(a[0] for a in seen)  # never backwards


def test_fit_budget_fits_replays_and_spends_bytes_where_they_are_cheap(lenet300, small, tmp_path):
    sc = scan(lenet300, small, split="train", cache_dir=tmp_path, **GRID)
    result, plan = ce.fit_budget(lenet300, small, 20_000, finetune_epochs=1, scan=sc)
    assert set(result.timings) >= {"prune", "cluster", "total"}
    assert len(result.artifact) <= 20_000 and plan["fits"] and plan["bytes"] == len(result.artifact)
    alloc = {a["layer"]: a for a in plan["allocation"]}
    # the big first layer is pruned hardest; the 1,000-weight output layer, which every class needs, least
    assert alloc["layers.0.weight"]["sparsity"] > alloc["layers.2.weight"]["sparsity"]
    assert result.metrics["accuracy"] > 0.8 and result.recipe.bias_bits == 8
    assert ce.Recipe.from_dict(plan["recipe"]) == result.recipe
    again = ce.compress(lenet300, result.recipe, small)  # the recipe alone replays the run, byte for byte
    assert again.artifact == result.artifact
    state, dense = ce.decode(result.artifact), lenet300.state_dict()
    for name, a in alloc.items():
        w = state[name]
        own = 1 - int(torch.count_nonzero(dense[name])) / w.numel()  # the checkpoint's own zeros (flushed tiny weights)
        # magnitude pruning takes the zeros first, so a layer ends with max(its sparsity, its own zeros) of them
        assert abs(1 - int(torch.count_nonzero(w)) / w.numel() - max(a["sparsity"], own)) < 0.02
        if a["clusters"]:
            assert len(torch.unique(w[w != 0])) <= a["clusters"]
    with pytest.raises(ce.RecipeError, match="header and carried tensors"):
        ce.fit_budget(lenet300, small, 300, finetune_epochs=0, scan=sc)
    with pytest.raises(ce.RecipeError, match="focus"):  # a scan priced for another pruning is refused
        ce.fit_budget(lenet300, small, 20_000, finetune_epochs=1, scan=sc, focus=1.0)


def test_fit_budget_refuses_before_training_a_budget_it_would_refuse_after(lenet300, small, tmp_path, monkeypatch):
    """Sensitivity page, 3.3 KB for LeNet-300-100: the check before training passed by a few bytes, a whole stage
    trained, and then the budget was refused in bytes 'for the weights'. A budget that only just holds the scan's
    smallest settings and the header is refused before any training now, in KB, naming a budget that passes."""
    sc = scan(lenet300, small, split="train", cache_dir=tmp_path, **GRID)
    names = [la["name"] for la in sc["layers"]]
    smallest = sum(min(r["bytes"] for r in budget.sensitivity.curve(sc, n)) for n in names)
    probe = budget.budget_recipe({"layers": {n: {"sparsity": 0.99, "clusters": 2} for n in names}}, 1)
    just = int((smallest + budget.overhead_bytes(lenet300, probe)) / (1 - budget.MARGIN)) + 20  # held it before

    class Trained(Exception):
        pass

    def train(*a, **k):
        raise Trained
    monkeypatch.setattr(pipeline, "compress", train)
    with pytest.raises(ce.RecipeError) as e:
        ce.fit_budget(lenet300, small, just, finetune_epochs=1, scan=sc)
    said = str(e.value)
    assert f"a budget of {just / 1000:,.4g} KB is too small" in said and "for the weights" not in said
    give = re.search(r"give ([0-9.]+) KB or more", said)
    assert give, said
    with pytest.raises(Trained):  # the budget it names passes the check: training starts
        ce.fit_budget(lenet300, small, round(float(give.group(1)) * 1000), finetune_epochs=1, scan=sc)


def test_fit_budget_with_focus_replays_and_fits(lenet300, small, tmp_path):
    """prune focus: the scan prices focused masks (its own cache key), the recipe carries the focus, and the
    run fits and replays byte for byte."""
    sc = scan(lenet300, small, split="train", cache_dir=tmp_path, focus=1.0, **GRID)
    assert sc["focus"] == 1.0 and sc["key"] != scan(lenet300, small, split="train", cache_dir=tmp_path, **GRID)["key"]
    result, plan = ce.fit_budget(lenet300, small, 20_000, finetune_epochs=1, scan=sc, focus=1.0)
    assert plan["fits"] and result.recipe.prune_focus == 1.0
    assert ce.compress(lenet300, result.recipe, small).artifact == result.artifact


def run_cli(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("argv,words", [
    (["--budget-kb", "0"], "above 0"),
    (["--budget-kb", "ten"], "above 0"),
    (["--budget-kb", "nan"], "above 0"),
    (["--budget-kb", "10", "--sparsity", "0.9"], "drop --sparsity"),
    (["--budget-kb", "10", "--clusters", "4", "--huffman", "true"], "drop --clusters, --huffman"),
])
def test_cli_budget_refusals(capsys, argv, words):
    code, out, err = run_cli(capsys, "run", "--model", "lenet-300-100", *argv)
    assert code == 2 and not out and words in err and err.count("\n") == 1


def test_cli_budget_below_the_header_is_refused_at_once_and_a_scan_shows_progress(capsys, tmp_path, monkeypatch):
    """--budget-kb 0.01 is refused in one line before any scan; a scan of the user's own model (minutes, silent
    before) prints its progress on stderr."""
    monkeypatch.setenv("COMPRESS_CACHE", str(tmp_path / "cache"))
    (tmp_path / "net.py").write_text("from torch import nn\n\ndef make():\n    return nn.Sequential(nn.Flatten(), "
                                     "nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))\n")
    model = f"{tmp_path / 'net.py'}:make"
    code, out, err = run_cli(capsys, "run", "--model", model, "--data", "digits", "--budget-kb", "0.01")
    assert code == 2 and not out and err.count("\n") == 1 and "header and carried tensors" in err, err
    assert "sensitivity scan: " not in err  # no scan's progress
    code, out, err = run_cli(capsys, "run", "--model", model, "--data", "digits", "--budget-kb", "0.9",
                             "--finetune-epochs", "0")
    lines = err.splitlines()
    assert any(re.fullmatch(r"sensitivity scan: (\d+)/\1 settings", ln) for ln in lines), err
    assert 2 <= sum(ln.startswith("sensitivity scan: ") for ln in lines) <= 11


def test_cli_budget_run(capsys, fmnist, tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESS_CACHE", str(tmp_path / "cache"))
    out_file = tmp_path / "small.cpg"
    code, out, err = run_cli(capsys, "run", "--model", "lenet-300-100", "--budget-kb", "25",
                             "--finetune-epochs", "0", "--out", str(out_file))
    assert code == 0, err
    # a step line at each tenth of the run, as the README says of `run` (it printed only epochs' ends)
    steps = [ln for ln in err.splitlines() if re.fullmatch(r"step [\d,]+/[\d,]+", ln)]
    assert 5 <= len(steps) <= 10 and steps[-1].split("/")[0] == "step " + steps[-1].split("/")[1], err
    res = json.loads(out)
    assert res["metrics"]["artifact_bytes"] == len(out_file.read_bytes()) <= 25_000
    assert res["budget"]["fits"] and {a["layer"] for a in res["budget"]["allocation"]} == {
        "layers.0.weight", "layers.1.weight", "layers.2.weight"}
    assert res["recipe"]["layers"]["layers.0.weight"]["sparsity"] >= 0.8
    assert not list((tmp_path / "cache").rglob("*.json"))  # the scan shipped beside the model: none computed


def test_finetune_kd_follows_the_dense_models_soft_targets(lenet300, small):
    """Recipe.finetune_kd: fine-tuning on the uncompressed model's soft targets (Hinton KD, weight alpha); the
    teacher's answers may come from the caller (model_logits), with the same result."""
    r = ce.Recipe(sparsity=0.9, finetune_epochs=1, finetune_kd=4.0, lr=1e-3)
    kd = ce.compress(lenet300, r, small)
    plain = ce.compress(lenet300, r.replace(finetune_kd=None), small)
    assert not torch.equal(kd.model.layers[0].weight, plain.model.layers[0].weight)
    assert kd.history["prune"][0] != plain.history["prune"][0]  # another loss
    given = ce.compress(lenet300, r, small, model_logits={"train": ce.logits(lenet300, small.x("train"))})
    assert given.artifact == kd.artifact
    assert json.loads(ce.Recipe.from_json(r.to_json()).to_json())["finetune_kd"] == 4.0


def test_fit_budget_follows_given_teacher_logits(lenet300, small, tmp_path):
    """teacher_logits replace the dense model's soft targets: its own logits give the same artifact as kd alone;
    another model's give another; without kd they are refused. Computing its own, it counts them
    (answers_progress), and a False from that stops the fit before any fine-tuning."""
    sc = scan(lenet300, small, split="train", cache_dir=tmp_path, **GRID)
    own = ce.logits(lenet300, small.x("train"))
    counted, tuned = [], []
    kd, _ = ce.fit_budget(lenet300, small, 20_000, finetune_epochs=1, scan=sc, kd=4.0,
                          answers_progress=lambda done, total: counted.append((done, total)))
    assert counted == [(1000, 4096), (2000, 4096), (3000, 4096), (4000, 4096), (4096, 4096)]  # batches of 1,000
    given, _ = ce.fit_budget(lenet300, small, 20_000, finetune_epochs=1, scan=sc, kd=4.0, teacher_logits=own,
                             answers_progress=lambda *_: counted.append("given"))  # nothing to compute or count
    other, _ = ce.fit_budget(lenet300, small, 20_000, finetune_epochs=1, scan=sc, kd=4.0, teacher_logits=own.flip(1))
    assert given.artifact == kd.artifact and other.artifact != kd.artifact and "given" not in counted
    with pytest.raises(ce.Stopped):
        ce.fit_budget(lenet300, small, 20_000, finetune_epochs=1, scan=sc, kd=4.0,
                      answers_progress=lambda d, t: d < 2000,
                      progress=lambda *a: tuned.append(a))
    assert tuned == []
    with pytest.raises(ce.RecipeError, match="give kd"):
        ce.fit_budget(lenet300, small, 20_000, finetune_epochs=1, scan=sc, teacher_logits=own)


def test_overhead_of_a_batchnorm_model_is_what_its_artifact_carries():
    """compress() folds BatchNorm before encoding, so a ResNet's overhead (header + biases) holds no BN tensors:
    an artifact with every weight nearly gone is only a little bigger than it."""
    model = ce.load_model("resnet-8")
    x = torch.rand(8, 1, 28, 28)
    tiny = ce.Dataset.from_tensors(x, torch.arange(8) % 10, x, torch.arange(8) % 10, classes=[str(i) for i in range(10)])
    r = ce.Recipe(sparsity=0.99, clusters=2, huffman=True, bias_bits=8)
    art = ce.compress(model, r, tiny).artifact
    over = budget.overhead_bytes(model, r)
    assert over < len(art) < over + 6_000  # 1 % of 308k weights at 1 bit + positions
