"""ce.sweep's inputs as a user comparing techniques gave them: a grid's fields (("sparsity", "bits")) failed with
TypeError "unhashable type: 'list'" / "keywords must be strings", saying nothing of what a sweep takes or how to
sweep a grid (now a dict of fields and their values; a tuple or list of names says so); and a list of 20,000 values was taken without a word (12 s of checks, then hours of points), where
the command line refuses more than 100. Now both are refused at once with a RecipeError saying what to do."""

import itertools

import pytest

import compress_engine as ce
from compress_engine.playground import sweeps

from small_nets import Plain, data


@pytest.mark.parametrize("fields", [("sparsity", "bits"), ["sparsity", "clusters"]])
def test_several_fields_not_given_as_a_grid_are_refused_with_how_to_give_one(fields):
    """(A dict of fields and their values is a grid now: tests/test_fix53_grid_sweep.py.)"""
    with pytest.raises(ce.RecipeError) as e:
        ce.sweep(Plain(), ce.Recipe(), data(), fields, [(0.5, 4)])
    msg = str(e.value)
    assert msg.startswith("field_name is the name of one recipe field, e.g. 'sparsity' (its values then in `values`), "
                          "or for a grid a dict of fields and their values")
    assert repr(fields)[:20] in msg and "{'sparsity': [0.5, 0.9], 'bits': [4, 8]}" in msg


def test_more_values_than_a_sweep_runs_are_refused_before_any_work():
    ran = []
    values = itertools.cycle([0.5, 0.8])  # endless: listing it whole never ended
    with pytest.raises(ce.RecipeError) as e:
        ce.sweep(Plain(), ce.Recipe(clusters=8), data(), "sparsity", itertools.islice(values, sweeps.MAX_POINTS + 1),
                 progress=lambda *a: ran.append(a))
    assert f"more than {sweeps.MAX_POINTS:,} values" in str(e.value) and "split it into several sweeps" in str(e.value)
    assert ran == []  # refused before any point ran
    # as many as it runs are taken (stopped after the first point)
    rows = ce.sweep(Plain(), ce.Recipe(clusters=8), data(), "sparsity", [0.5] * sweeps.MAX_POINTS,
                    progress=lambda *a: False)
    assert len(rows) == sweeps.MAX_POINTS and rows[0]["sparsity"] == 0.5  # one value given 10,000 times runs once
