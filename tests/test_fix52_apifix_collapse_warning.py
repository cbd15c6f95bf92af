"""The Python API never said when a result had collapsed to chance level; the command line and every page did
(explain.collapsed). compress() and fit_budget() now warn a notebook user with a CollapseWarning, by the one criterion
(core/chance.py, which the CLI and pages now read) and in the CLI's words; fit_budget warns once, of its result
against the dense model, not of its inner steps; the CLI still says it once per result."""

import warnings
from collections import Counter

import pytest

import compress_engine as ce
from compress_engine.core import chance
from compress_engine.playground import explain
from small_nets import gaussian_mlp as trained


@pytest.fixture(scope="module")
def setup():
    return trained(3.0)


def collapse_warnings(caught):
    return [w for w in caught if issubclass(w.category, ce.CollapseWarning)]


def test_a_result_at_chance_level_warns_in_the_clis_words(setup):
    model, ds = setup
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = ce.compress(model, ce.Recipe(sparsity=0.999), ds)
    (w,) = collapse_warnings(caught)
    m = r.metrics
    counts = Counter(ds.y("test").tolist())  # chance level, independently: the most frequent class's share
    level = max(counts.values()) / sum(counts.values())
    assert m["dense_accuracy"] > 0.9 and abs(m["accuracy"] - level) <= chance.CHANCE_MARGIN
    assert str(w.message) == chance.message(m["accuracy"], m["dense_accuracy"], level, 10)
    assert f"scores {100 * level:.2f} %" in str(w.message) and w.filename == __file__  # the caller's line


def test_a_result_that_still_classifies_does_not_warn(setup):
    model, ds = setup
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = ce.compress(model, ce.Recipe(sparsity=0.3), ds)
    assert r.metrics["accuracy"] > 0.5 and collapse_warnings(caught) == []


def test_fit_budget_warns_once_of_its_result_against_the_dense_model(tmp_path):
    model, ds = trained(0.2)  # 21 % dense: 400 bytes bring it to 8 %, under chance (10 %)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r, plan = ce.fit_budget(model, ds, 400, finetune_epochs=0, cache_dir=tmp_path)
    m = r.metrics
    assert plan["fits"] and m["accuracy"] <= 0.1 + chance.CHANCE_MARGIN < m["dense_accuracy"]
    (w,) = collapse_warnings(caught)  # once, not from its inner compress() runs too
    assert w.filename == __file__
    assert str(w.message) == chance.message(m["accuracy"], m["dense_accuracy"], 0.1, 10)


def test_fit_budget_that_still_classifies_does_not_warn(setup, tmp_path):
    model, ds = setup
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r, _ = ce.fit_budget(model, ds, 600, finetune_epochs=0, cache_dir=tmp_path)
    assert r.metrics["accuracy"] > 0.5 and collapse_warnings(caught) == []


def test_one_criterion_for_the_engine_the_cli_and_the_pages():
    assert explain.collapsed is chance.collapsed and explain.chance_level is chance.chance_level
    assert explain.CHANCE_MARGIN == chance.CHANCE_MARGIN
