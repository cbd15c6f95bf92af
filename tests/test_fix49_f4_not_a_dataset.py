"""describe, estimate (and every function that takes data) refuse data that is not a Dataset with the DatasetError
compress gives, not a raw AttributeError; estimate refuses reference()'s whole (answers, accuracy) pair, naming
reference(...)[0]."""

import pytest
import torch
from torch import nn

import compress_engine as ce


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    ds = ce.load_dataset("digits")
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval(), ds


def test_functions_that_take_data_refuse_a_tuple_or_a_recipe_as_compress_does(setup):
    m, ds = setup
    pair = (ds.x("test"), ds.y("test"))
    with pytest.raises(ce.DatasetError) as want:
        ce.compress(m, ce.Recipe(), pair)
    calls = [lambda: ce.describe(m, pair), lambda: ce.describe(m, ce.Recipe()), lambda: ce.estimate(m, pair),
             lambda: ce.reference(m, pair), lambda: ce.sensitivity.scan(m, pair, use_cache=False),
             lambda: ce.fit_budget(m, pair, 1000)]
    for call in calls:
        with pytest.raises(ce.DatasetError, match="data must be a compress_engine.Dataset"):
            call()
    with pytest.raises(ce.DatasetError) as got:
        ce.describe(m, pair)
    assert str(got.value) == str(want.value)


def test_estimate_names_reference_index_0_for_the_whole_pair(setup):
    m, ds = setup
    with pytest.raises(ce.CompressError, match=r"pass ce.reference\(model, data\)\[0\]"):
        ce.estimate(m, ds, reference=ce.reference(m, ds))
    assert ce.estimate(m, ds, reference=ce.reference(m, ds)[0])["inputs"] > 0
