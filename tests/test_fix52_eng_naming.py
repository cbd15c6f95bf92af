"""One name for one setting: fit_budget(epochs=) and fit_flops(epochs=) were the fine-tuning epochs a Recipe calls
finetune_epochs (the command line's --finetune-epochs, the Recipe the result carries), so a user moving between them
guessed wrong. The public API takes finetune_epochs now; epochs= still works, with a DeprecationWarning naming the
new keyword, so code written against the old name does not break. The CLI, README, docs and bench use the new name."""

import dataclasses
import inspect
import re
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import compress_engine as ce
from compress_engine.core import budget
from compress_engine.playground import cli

ROOT = Path(__file__).resolve().parent.parent


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


@pytest.fixture(scope="module")
def digits():
    return ce.load_dataset("digits")


@pytest.fixture(scope="module")
def scan(digits):
    return ce.sensitivity.scan(_mlp(), digits, split="train", sparsities=(0.0, 0.5), clusters=(None, 4, 2),
                               subset=300, use_cache=False)


def test_the_public_functions_name_it_as_the_recipe_does():
    for fn in (ce.fit_budget, ce.fit_flops, ce.budget.probe_overhead, ce.budget.budget_recipe):
        params = inspect.signature(fn).parameters
        assert "finetune_epochs" in params and "epochs" not in params, fn.__name__
    assert "finetune_epochs" in {f.name for f in dataclasses.fields(ce.Recipe)}


def test_fit_budget_old_keyword_still_works_with_a_warning_naming_the_new_one(digits, scan):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", budget.OverBudget)
        with pytest.warns(DeprecationWarning, match=r"fit_budget\(finetune_epochs=") as caught:
            old, old_plan = ce.fit_budget(_mlp(), digits, 1900, epochs=1, retries=0, scan=scan)
        new, new_plan = ce.fit_budget(_mlp(), digits, 1900, finetune_epochs=1, retries=0, scan=scan)
    assert caught[0].filename == __file__  # said at the caller's line
    assert old.recipe.finetune_epochs == new.recipe.finetune_epochs == 1 != budget.EPOCHS  # the value reached it
    assert old.artifact == new.artifact and old_plan["recipe"] == new_plan["recipe"]


def test_fit_flops_old_keyword_still_works_with_a_warning(digits):
    with pytest.warns(DeprecationWarning, match=r"fit_flops\(finetune_epochs="):
        old, _ = ce.fit_flops(_mlp(), digits, 0.5, epochs=0)
    assert old.recipe.finetune_epochs == 0 != inspect.signature(ce.fit_flops).parameters["finetune_epochs"].default


def test_both_names_at_once_are_refused(digits):
    with pytest.raises(TypeError, match="finetune_epochs= alone"):
        ce.fit_budget(_mlp(), digits, 1900, epochs=1, finetune_epochs=2)
    with pytest.raises(TypeError, match="finetune_epochs= alone"):
        ce.budget.probe_overhead(_mlp(), ["1.weight"], epochs=1, finetune_epochs=2)


def test_the_engine_warns_of_nothing_when_given_the_new_name():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        r = ce.budget.budget_recipe({"layers": {"1.weight": {"sparsity": 0.5, "clusters": 4}}}, finetune_epochs=3)
        ce.budget.probe_overhead(_mlp(), ["1.weight", "3.weight"], finetune_epochs=3)
    assert r.finetune_epochs == 3


def test_the_command_line_passes_the_new_name(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESS_CACHE", str(tmp_path / "cache"))
    (tmp_path / "net.py").write_text("from torch import nn\n\ndef make():\n    return nn.Sequential(nn.Flatten(), "
                                     "nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))\n")
    model = f"{tmp_path / 'net.py'}:make"
    for how, fn in ((["--budget-kb", "1.9"], "fit_budget"), (["--flops", "0.5"], "fit_flops")):
        real, given = getattr(ce, fn), []

        def spy(*args, **kwargs):
            given.append(set(kwargs))
            return real(*args, **kwargs)
        monkeypatch.setattr(ce, fn, spy)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            code = cli.main(["run", "--model", model, "--data", "digits", *how, "--finetune-epochs", "0"])
        err = capsys.readouterr().err
        assert code == 0, err
        assert "finetune_epochs" in given[0] and "epochs" not in given[0], given
        assert not [w for w in seen if issubclass(w.category, DeprecationWarning) and "epochs" in str(w.message)]


def test_docs_examples_and_scripts_use_the_new_name():
    old = re.compile(r"\b(fit_budget|fit_flops|probe_overhead)\((?:[^()]|\([^()]*\))*?(?<![\w.])epochs=", re.S)
    files = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "pages").glob("*.py")),
             *sorted((ROOT / "bench").glob("*.py")), *sorted((ROOT / "compress_engine").rglob("*.py"))]
    found = [f"{f.relative_to(ROOT)}: {m.group(0)[:60]!r}" for f in files for m in old.finditer(f.read_text())]
    assert not found, found
