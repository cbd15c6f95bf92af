"""Compare mixed runs of different data: the same recipe saved on a Fashion-MNIST server and on one of the user's own
data showed two rows "lenet-300-100" with no word of which data, one drawn as beaten by a run on other data, and
Fashion-MNIST's benchmark points beside runs on other data. Runs are now grouped by model and data: a Data column
and hover when the store holds more than one dataset, a frontier each, and benchmark points only beside runs on the
benchmarks' data."""

import json

import pytest
from test_app import app
from test_app_compare_export import store  # noqa: F401,F811 - the run store fixture, a file per test

import compress_engine as ce
from conftest import plots

OWN = "idx:/somewhere/fm5"
FM = "fashion-mnist"  # what the benchmarks measured on


@pytest.fixture(scope="module")
def results(fmnist, lenet300):
    return [None, ce.compress(lenet300, ce.Recipe(sparsity=0.9), fmnist.subset(256, 500, "few"))]


def compare():
    return app().run().switch_page("pages/compare.py").run()


def chart(at):
    """The chart's traces, as a browser gets them."""
    return json.loads(plots(at)[0])["data"]


def save(store, res, data, accuracy):
    return store.save("lenet-300-100", res.recipe, dict(res.metrics, accuracy=accuracy), res.artifact, data=data)


def test_runs_of_two_datasets_are_told_apart_and_each_has_its_frontier(store, results):
    res = results[1]
    fm = save(store, res, FM, 0.88)
    own = save(store, res, OWN, 0.80)  # same size, less accurate: on other data, not beaten
    at = compare()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table.sort_values("id")["data"]) == [FM, OWN]
    assert table.set_index("id")["pareto"].to_dict() == {fm: True, own: True}
    traces = chart(at)
    assert {"Pareto frontier: lenet-300-100 on " + OWN, "Pareto frontier: lenet-300-100 on " + FM} \
        <= {t.get("name") for t in traces}
    runs = [t for t in traces if "customdata" in t and not t["name"].startswith("bench: ")]
    assert runs and all("<br>on %{customdata[5]}" in t["hovertemplate"] for t in runs)
    assert {c[5] for t in runs for c in t["customdata"]} == {OWN, FM}
    # the benchmark line beside them names its data too (it was "bench: lenet-300-100" among runs of two data)
    bench = [t for t in traces if str(t.get("name", "")).startswith("bench: ")]
    assert bench and all(t["name"].endswith(f" on {FM}") and f" on {FM}: " in t["hovertemplate"] for t in bench)


def test_benchmark_points_only_beside_runs_on_their_data(store, results):
    save(store, results[1], OWN, 0.80)
    at = compare()
    assert not at.exception
    assert at.radio(key="compare_refs").options == ["none"]
    assert not any(str(t.get("name", "")).startswith("bench: ") for t in chart(at))


def test_one_dataset_keeps_its_plain_table(store, results):
    save(store, results[1], None, 0.88)
    at = compare()
    assert not at.exception and "Deep Compression stages" in at.radio(key="compare_refs").options
