"""A grid sweep (sparsity x bits, ...) as one call: ce.sweep(model, recipe, data, {"sparsity": [...], "bits": [...]}).
A grid was refused ("a sweep varies one field ... run one sweep per setting of the others"), and the loop it pointed
to ran each setting as its own sweep: on a Ray cluster each kept only its own few points running. Now every point of
the grid is one pool of jobs (one _on_ray call), each row carries every grid field's value and is, bit for bit, the
row of that point's single-field sweep (in-process and on Ray); MAX_POINTS applies to the product, refused at once
naming the sizes; the store gets one sweep a setting of the other fields (the Compare page draws each as a series
whose legend names the setting), and a rerun, or a grid after the loop's sweeps, reuses the finished points."""

import itertools
import json

import pytest

import compress_engine as ce
from compress_engine.playground import sweeps
from compress_engine.playground.store import Store

import test_sweeps
from small_nets import Plain, data
from conftest import plots

local_ray, needs_ray = test_sweeps.local_ray, test_sweeps.needs_ray  # its Ray fixture (a runtime for this module)

GRID = {"sparsity": [0.5, 0.9], "bits": [None, 4]}
BASE = ce.Recipe(huffman=True)


@pytest.fixture(scope="module")
def ds():
    return data()


def same(a, b):
    return json.dumps(a) == json.dumps(b)


def by_loop(model, ds, grid=GRID, base=BASE, **kw):
    """The reference: one single-field sweep a setting of the other fields (README's old loop), each row then given
    the other fields' values, in itertools.product's order."""
    first, *others = grid
    rows = {}
    for setting in itertools.product(*(grid[f] for f in others)):
        other = dict(zip(others, setting))
        for r in sweeps.sweep(model, base.replace(**other), ds, first, grid[first], **kw):
            rows[(r[first], *setting)] = {first: r[first], **other, **{k: v for k, v in r.items() if k != first}}
    return [rows[p] for p in itertools.product(*grid.values())]


def test_grid_rows_are_each_points_single_field_sweep_bit_for_bit(ds):
    rows = ce.sweep(Plain(), BASE, ds, GRID)
    assert [(r["sparsity"], r["bits"]) for r in rows] == [(0.5, None), (0.5, 4), (0.9, None), (0.9, 4)]
    assert same(rows, by_loop(Plain(), ds))
    assert rows[0]["artifact_bytes"] != rows[1]["artifact_bytes"]  # the bits took effect
    # one field as a dict: the single-field sweep's rows
    assert same(ce.sweep(Plain(), BASE, ds, {"sparsity": [0.5, 0.9]}), ce.sweep(Plain(), BASE, ds, "sparsity",
                                                                                 [0.5, 0.9]))


def test_the_points_limit_is_the_grids_product_refused_at_once(ds, monkeypatch):
    monkeypatch.setattr(sweeps, "run_point", lambda *a: pytest.fail("a point ran"))
    big = {"sparsity": [0.5] * 101, "seed": list(range(100)), "bits": [4, 8]}  # 20,200 points
    with pytest.raises(ce.RecipeError) as e:
        ce.sweep(Plain(), BASE, ds, big)
    assert str(e.value).startswith(f"the grid has 101 sparsity x 100 seed x 2 bits values = 20,200 points; a sweep "
                                   f"runs at most {sweeps.MAX_POINTS:,}")
    endless = {"sparsity": itertools.cycle([0.5]), "bits": [4, 8]}  # a field's values never end
    with pytest.raises(ce.RecipeError, match=r"more than 10,000 sparsity x 2 bits values = more than 20,002"):
        ce.sweep(Plain(), BASE, ds, endless)


def test_a_bad_grid_names_what_is_wrong(ds, monkeypatch):
    monkeypatch.setattr(sweeps, "run_point", lambda *a: pytest.fail("a point ran"))
    cases = [
        (({"sparsity": [0.5], "bits": "4"},), "values of bits is a list of bits values"),
        (({"sparsity": [0.5], "bits": []},), "values of bits is empty"),
        (({"sparsity": [0.5], "nope": [1]},), "unknown recipe field(s) 'nope'"),
        (({"sparsity": [0.5], "bits": [4, 99]},), "bits=99"),
        (({"bits": [4], "clusters": [16]},), "clusters=16 and bits=4: choose"),  # a combination the recipe refuses
        (({"sparsity": [0.5]}, [0.9]), "a grid's values are its dict's (sparsity): leave out values"),
        (({},), "the grid is empty"),
        ((("sparsity", "bits"), [(0.5, 4)]), "got tuple ('sparsity', 'bits')"),
    ]
    for args, said in cases:
        with pytest.raises(ce.RecipeError) as e:
            ce.sweep(Plain(), BASE, ds, *args)
        assert said in str(e.value), (args, str(e.value))


def test_one_store_sweep_a_setting_and_a_rerun_reuses_the_points(ds, tmp_path, monkeypatch):
    store = Store(tmp_path / "runs.sqlite")
    # the loop's sweep of one setting first: the grid reuses its points and its group
    sweeps.sweep(Plain(), BASE.replace(bits=4), ds, "sparsity", [0.5, 0.9], store=store, model_name="m")
    ran, real = [], sweeps.run_point
    monkeypatch.setattr(sweeps, "run_point", lambda *a: ran.append(a[2]) or real(*a))
    rows = ce.sweep(Plain(), BASE, ds, GRID, store=store, model_name="m")
    assert sorted(r.bits is None for r in ran) == [True, True]  # only bits=None's points ran
    assert same(rows, by_loop(Plain(), ds))
    groups = sorted(store.sweeps(), key=lambda s: s["id"])
    assert [(g["field"], g["runs"]) for g in groups] == [("sparsity", 2), ("sparsity", 2)]
    assert groups[1]["label"] == "sweep #2: sparsity at bits=none (huffman=True)"  # its legend names the setting
    assert store.count() == 4
    ran.clear()
    assert same(ce.sweep(Plain(), BASE, ds, GRID, store=store, model_name="m"), rows) and ran == []  # all stored
    assert len(store.sweeps()) == 2 and store.count() == 4


def test_compare_page_draws_a_grid_as_one_series_a_setting(ds, tmp_path, monkeypatch, fmnist):
    from pages import common
    from test_app import app, plotly_values
    monkeypatch.setenv("COMPRESS_STORE", str(tmp_path / "runs.sqlite"))
    charts, real_chart = [], common.chart
    monkeypatch.setattr(common, "chart", lambda fig, *a, **kw: (charts.append(fig), real_chart(fig, *a, **kw))[1])
    store = Store()
    ce.sweep(Plain(), BASE, ds, {"sparsity": [0.5, 0.8, 0.9], "bits": [None, 4]}, store=store,
             model_name="lenet-300-100")
    at = app().run().switch_page("pages/compare.py").run()
    assert not at.exception and not at.error
    [saved] = [f for f in charts if any(t.name and t.name.startswith("sweep #") for t in f.data)]
    lines = {t.name: t for t in saved.data if t.name and t.name.startswith("sweep #")}
    assert sorted(lines) == ["sweep #1: sparsity at bits=none (huffman=True)",
                             "sweep #2: sparsity at bits=4 (huffman=True)"]
    for t in lines.values():  # each setting's three points joined in size order
        x = list(t.x)
        assert t.mode == "lines" and len(x) == 3 and x == sorted(x)
    spec = json.loads(plots(at)[0])  # what the browser gets: the same two series
    assert sorted(t["name"] for t in spec["data"] if t.get("name", "").startswith("sweep #")) == sorted(lines)
    assert all(len(plotly_values(t["x"])) == 3 for t in spec["data"] if t.get("name", "").startswith("sweep #"))


@needs_ray
def test_on_ray_a_grid_is_one_pool_with_the_same_rows(local_ray, ds, monkeypatch):
    pools, real = [], sweeps._on_ray
    monkeypatch.setattr(sweeps, "_on_ray", lambda ray, todo, *a: (pools.append(list(todo)), real(ray, todo, *a))[1])
    rows = ce.sweep(Plain(), BASE, ds, GRID, workers=2)
    assert pools == [[0, 1, 2, 3]]  # every point of the grid in one pool
    assert same(rows, by_loop(Plain(), ds))  # the in-process single-field sweeps' rows, bit for bit


def test_a_grid_stopped_or_interrupted_keeps_its_finished_points_and_a_rerun_runs_the_rest(ds, tmp_path, monkeypatch):
    store = Store(tmp_path / "runs.sqlite")
    seen = []
    rows = ce.sweep(Plain(), BASE, ds, GRID, store=store, progress=lambda done, total, *a: seen.append(total) or done < 2)
    assert seen == [4, 4] and [(r["sparsity"], r["bits"]) for r in rows] == [(0.5, None), (0.5, 4)]
    ran, real = [], sweeps.run_point

    def third_is_ctrl_c(*a):
        ran.append(a[2])
        if len(ran) == 2:
            raise KeyboardInterrupt
        return real(*a)
    monkeypatch.setattr(sweeps, "run_point", third_is_ctrl_c)
    with pytest.raises(sweeps.Interrupted) as e:
        ce.sweep(Plain(), BASE, ds, GRID, store=store)
    assert e.value.total == 4 and [(r["sparsity"], r["bits"]) for r in e.value.rows] == [(0.5, None), (0.5, 4),
                                                                                          (0.9, None)]
    monkeypatch.setattr(sweeps, "run_point", lambda *a: ran.append(a[2]) or real(*a))
    ran.clear()
    rows = ce.sweep(Plain(), BASE, ds, GRID, store=store)
    assert [(r.sparsity, r.bits) for r in ran] == [(0.9, 4)] and store.count() == 4  # the one point not finished
    assert same(rows, by_loop(Plain(), ds))
