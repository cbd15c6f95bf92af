"""ce.sweep's inputs as a user comparing techniques gave them: a grid's fields (("sparsity", "bits")) failed with
TypeError "unhashable type: 'list'" / "keywords must be strings", saying nothing of what a sweep takes or how to
sweep a grid; and a list of 20,000 values was taken without a word (12 s of checks, then hours of points), where
the command line refuses more than 100. Now both are refused at once with a RecipeError saying what to do."""

import itertools

import pytest

import compress_engine as ce
from compress_engine.playground import sweeps

from small_nets import Plain, data


@pytest.mark.parametrize("fields", [("sparsity", "bits"), ["sparsity", "clusters"], {"sparsity": [0.5]}])
def test_several_fields_are_refused_with_the_way_to_sweep_a_grid(fields):
    with pytest.raises(ce.RecipeError) as e:
        ce.sweep(Plain(), ce.Recipe(), data(), fields, [(0.5, 4)])
    msg = str(e.value)
    assert msg.startswith("field_name is the name of one recipe field, e.g. 'sparsity'; got ")
    assert repr(fields)[:20] in msg and "recipe.replace(" in msg and "one sweep per setting of the others" in msg


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
