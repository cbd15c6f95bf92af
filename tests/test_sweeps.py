"""Sweeps (compress_engine/playground/sweeps.py): the same rows, bit for bit, in-process and on a local Ray
runtime (2 CPUs); points stream into the run store and a rerun skips them; a failed point is recorded and
the sweep goes on; a worker killed mid-point is retried once and nothing is written twice.

Small real data: scikit-learn's 8x8 digits (load_dataset("digits")) and a 64-32-10 MLP trained on it for a
few seconds; the sample LeNet-300-100 by name on a 512/500-image slice of Fashion-MNIST through the CLI.
The Ray tests share one runtime (about 10 s to start) and are skipped, with the reason, without ray.
"""

import json
import os
import sqlite3
import sys
import warnings

import pytest
import torch
from torch import nn

import compress_engine as ce
from compress_engine.core.pipeline import sweep as core_sweep
from compress_engine.core.train import fit
from compress_engine.playground import store as S, sweeps
from compress_engine.playground.cli import main
from compress_engine.playground.store import Store
from conftest import plots

try:
    import ray
except ImportError:
    ray = None
needs_ray = pytest.mark.skipif(ray is None, reason="ray is not installed: pip install 'compression-playground[ray]'")

BASE = ce.Recipe(clusters=8)
VALUES = [0.0, 0.5, 0.8, 0.9]


class Net(nn.Module):
    """64-32-10 MLP on flattened 8x8 digits."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(64, 32), nn.Linear(32, 10)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


class Fragile(Net):
    """Refuses to run once fc1 is more than 85 % zeros: a point-specific failure inside compress()."""

    def forward(self, x):
        if (self.fc1.weight == 0).float().mean() > 0.85:
            raise ValueError("fc1 is too sparse for me")
        return super().forward(x)


class Chatty(Net):
    """Warns once it is more than 85 % zeros (each forward pass, as a user's model might)."""

    def forward(self, x):
        if (self.fc1.weight == 0).float().mean() > 0.85:
            warnings.warn("Chatty: fc1 is mostly zeros", RuntimeWarning)
        return super().forward(x)


class Killer(Net):
    """Kills the process running it on its first forward pass outside the test process (a Ray worker),
    once per `marker` file (O_EXCL: one death across all workers); `always` kills on every attempt."""

    def __init__(self, marker, always=False):
        super().__init__()
        self.marker, self.always, self.home = str(marker), always, os.getpid()

    def forward(self, x):
        if os.getpid() != self.home:
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                os._exit(1)
            except FileExistsError:
                if self.always:
                    os._exit(1)
        return super().forward(x)


@pytest.fixture(scope="module")
def digits():
    return ce.load_dataset("digits")


@pytest.fixture(scope="module")
def net(digits):
    torch.manual_seed(0)
    model = Net()
    fit(model, digits, epochs=8, lr=3e-3, seed=0)
    return model.eval()


def like(cls, net, *args):
    m = cls(*args)
    m.load_state_dict(net.state_dict())
    return m.eval()


def core_rows(model, data, values=VALUES, field="sparsity", base=BASE):
    """The core's in-process loop (compress_engine.core.pipeline.sweep) on 1 torch thread: the reference rows."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return core_sweep(model, base, data, field, values)
    finally:
        torch.set_num_threads(before)


def same(a, b):
    """Rows equal bit for bit: same keys, ints equal, floats with the same bits (json keeps every bit)."""
    return json.dumps(a) == json.dumps(b)


# --- in-process ------------------------------------------------------------------------------------

def test_in_process_rows_are_the_core_sweeps(net, digits):
    want = core_rows(net, digits)
    assert same(sweeps.sweep(net, BASE, "digits", "sparsity", VALUES), want)
    assert same(sweeps.sweep(net, BASE, digits, "sparsity", VALUES), want)  # a Dataset instead of its name
    assert want[0]["accuracy"] > 0.85 and want[-1]["nonzero_params"] < want[0]["nonzero_params"]


def test_points_stream_into_the_store_and_a_rerun_skips_them(net, digits, tmp_path, monkeypatch):
    store = Store(tmp_path / "runs.sqlite")
    calls = []
    real = sweeps.run_point
    monkeypatch.setattr(sweeps, "run_point", lambda *a: calls.append(a[2]) or real(*a))
    # stopped after 2 points: those 2 are stored, the rest are not
    seen = []
    part = sweeps.sweep(net, BASE, "digits", "sparsity", VALUES, store=store,
                        progress=lambda done, total, _, acc: seen.append((done, total)) or done < 2)
    assert seen == [(1, 4), (2, 4)] and len(part) == 2 and store.count() == 2
    # the rerun runs only the other 2 (and a value given twice once); rows are the in-process rows
    calls.clear()
    rows = sweeps.sweep(net, BASE, "digits", "sparsity", VALUES + [0.9], store=store)
    assert [r.sparsity for r in calls] == [0.8, 0.9]
    assert same(rows, core_rows(net, digits, VALUES + [0.9])) and store.count() == 4
    calls.clear()
    assert same(sweeps.sweep(net, BASE, "digits", "sparsity", VALUES, store=store), rows[:4]) and calls == []
    # one group in the store; each run knows its sweep, data and full metrics
    [group] = store.sweeps()
    assert group["runs"] == 4 and group["failed"] == 0 and group["label"] == "sweep #1: sparsity (clusters=8)"
    runs = store.list()
    assert {r["sweep"] for r in runs} == {group["label"]} and {r["data"] for r in runs} == {"digits"}
    assert {r["model"] for r in runs} == {"Net"} and store.get(runs[0]["id"])["artifact"]
    # another base recipe, model or data is another sweep (and another set of points)
    sweeps.sweep(net, BASE.replace(clusters=4), "digits", "sparsity", [0.5], store=store)
    assert len(store.sweeps()) == 2 and store.count() == 5


def test_a_data_file_that_changed_under_its_name_is_run_again(net, digits, tmp_path):
    """Points were keyed by the data's name: after 'npz:dig.npz' was rewritten (labels permuted), a rerun with the
    store served the old file's accuracies. The key now holds the data's fingerprint too; the store still names
    the data by its name."""
    import numpy as np
    path, store = tmp_path / "dig.npz", Store(tmp_path / "runs.sqlite")
    name = f"npz:{path}"

    def write(y_test):
        np.savez(path, train_x=digits.x("train").numpy(), train_y=digits.y("train").numpy(),
                 test_x=digits.x("test").numpy(), test_y=y_test)
        ce.load_dataset.cache_clear()  # a new process would read the file again

    write(digits.y("test").numpy())
    first = sweeps.sweep(net, BASE, name, "sparsity", [0.5], store=store)
    write(np.roll(digits.y("test").numpy(), 1))
    fresh = sweeps.sweep(net, BASE, name, "sparsity", [0.5])
    assert fresh[0]["accuracy"] < first[0]["accuracy"] - 0.3
    assert same(sweeps.sweep(net, BASE, name, "sparsity", [0.5], store=store), fresh)
    assert store.count() == 2 and {r["data"] for r in store.list()} == {name}
    ce.load_dataset.cache_clear()

def test_a_failed_point_is_recorded_and_the_sweep_goes_on(net, digits, tmp_path):
    store = Store(tmp_path / "runs.sqlite")
    rows = sweeps.sweep(like(Fragile, net), BASE, "digits", "sparsity", [0.5, 0.9, 0.8], store=store)
    assert [r.get("error") for r in rows] == [None, "ValueError: fc1 is too sparse for me", None]
    assert rows[1] == {"sparsity": 0.9, "error": "ValueError: fc1 is too sparse for me"}
    assert store.count() == 2
    [fail] = store.sweep_failures()
    assert fail["error"] == rows[1]["error"] and ce.Recipe.from_json(fail["recipe"]).sparsity == 0.9
    assert store.sweeps()[0]["failed"] == 1


def test_bad_input_stops_before_any_point(net, digits, tmp_path):
    with pytest.raises(ce.RecipeError, match="sparsity"):
        sweeps.sweep(net, BASE, "digits", "sparsity", [0.5, 2.0])
    with pytest.raises(ce.ModelError):  # a model for other data (10 inputs, the digits have 64)
        sweeps.sweep(nn.Sequential(nn.Flatten(), nn.Linear(10, 10)), BASE, "digits", "sparsity", [0.5])
    with pytest.raises(ce.CompressError, match="threads"):
        sweeps.sweep(net, BASE, "digits", "sparsity", [0.5], threads=0)


def test_what_compress_would_refuse_at_one_point_stops_the_sweep_before_any(net, digits, tmp_path, monkeypatch):
    """A `layers` value naming no layer of the model was every point's error (run refuses it up front), and a store
    with regression targets ran the first point, then raised StoreError (no accuracy to store) and left an empty
    sweep in the store. Both are refused before any point runs, naming the value or the fix."""
    monkeypatch.setattr(sweeps, "run_point", lambda *a: pytest.fail("a point ran"))
    store = Store(tmp_path / "runs.sqlite")
    layers = [{"fc1.weight": {"sparsity": 0.5}}, {"fc9.weight": {"sparsity": 0.5}}]
    with pytest.raises(ce.RecipeError, match=r"^layers=\{'fc9.weight'.*: layers names 'fc9.weight', not a "
                                             r"compressible weight of the model; its layers are: fc1.weight"):
        sweeps.sweep(net, BASE, digits, "layers", layers, store=store)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 8, generator=g)
    targets = ce.Dataset.from_tensors(x[:200], x[:200].sum(1), x[200:], x[200:].sum(1), name="sums")
    model = nn.Sequential(nn.Linear(8, 1), nn.Flatten(0))
    with pytest.raises(ce.DatasetError, match="'sums' holds regression targets: leave store out"):
        sweeps.sweep(model, ce.Recipe(), targets, "sparsity", [0.2, 0.5], store=store)
    with pytest.raises(ce.RecipeError, match="^temperature=2.0: recipe.temperature softens"):
        sweeps.sweep(model, ce.Recipe(), targets, "temperature", [2.0])
    assert store.sweeps() == [] and store.count() == 0

def test_values_must_be_a_list_and_the_store_is_ce_store(net, digits):
    """ce.sweep(..., "sparsity", "0.5") swept '0', '.', '5' ("sparsity='0': must be a number") and 0.5 raised a raw
    TypeError; both say values is a list. The README's store=Store() is ce.Store."""
    for values in ("0.5", 0.5, b"0.5"):
        with pytest.raises(ce.RecipeError, match=r"^values is a list of sparsity values, e.g. \[0.5, 0.8, 0.9\]"):
            ce.sweep(net, BASE, digits, "sparsity", values)
    assert ce.Store is Store and "Store" in dir(ce)

def test_without_ray_workers_says_how_to_install(monkeypatch, capsys, net):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ce.CompressError, match=r"pip install -e '\.\[ray\]'"):
        sweeps.sweep(net, BASE, "digits", "sparsity", [0.5], workers=2)
    code = main(["sweep", "--data", "digits", "--field", "sparsity", "--values", "0.5", "--workers", "2"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--workers runs the sweep on Ray" in err
    assert "pip install -e '.[ray]'" in err


def test_a_ray_address_nothing_answers_at_is_refused_at_once(net):
    """ray.init retries an address with no server for ever: --ray-address 127.0.0.1:1 hung a sweep past ten
    minutes. A HOST:PORT that refuses or does not answer within 5 s is refused, naming it."""
    pytest.importorskip("ray", reason="Ray is an optional extra (pip install 'compression-playground[ray]')")
    import socket
    with socket.socket() as s:  # a port nothing listens on: bound, then closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ce.CompressError, match=f"cannot reach the Ray cluster at '127.0.0.1:{port}': nothing answers"):
        sweeps.sweep(net, BASE, "digits", "sparsity", [0.5], ray_address=f"127.0.0.1:{port}")


def test_only_the_users_own_code_travels_to_ray_workers_by_value(monkeypatch, tmp_path):
    """With torch outside the interpreter's own folders (PYTHONPATH, Debian's python3-torch, pip --user), torch.nn's
    modules were sent by value: the workers built their own nn.Linear, and every point failed with "has no nn.Linear
    ... layer". Only the user's file travels by value; torch, found in a site-packages on the path, does not."""
    import importlib.util
    import site
    import sysconfig
    elsewhere = str(tmp_path / "interpreter")  # the interpreter's folders hold no torch
    monkeypatch.setattr(sysconfig, "get_paths", lambda: dict.fromkeys(("stdlib", "platstdlib", "purelib", "platlib"),
                                                                       elsewhere))
    monkeypatch.setattr(site, "getsitepackages", lambda: [elsewhere])
    (tmp_path / "mynet.py").write_text("from torch import nn\n"
                                       "class Mine(nn.Module):\n"
                                       "    def __init__(self):\n"
                                       "        super().__init__()\n"
                                       "        self.fc, self.bn = nn.Linear(4, 4), nn.BatchNorm1d(4)\n")
    spec = importlib.util.spec_from_file_location("mynet", tmp_path / "mynet.py")
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "mynet", mod)
    spec.loader.exec_module(mod)
    sent = []

    class FakeRay:
        class cloudpickle:
            register_pickle_by_value = staticmethod(lambda m: sent.append(m.__name__))

    sweeps._user_code_by_value(FakeRay, mod.Mine())
    assert sent == ["mynet"]


def test_the_users_helper_modules_travel_to_ray_workers_by_value_too(monkeypatch, tmp_path):
    """A model whose file does `from helpers import act` failed every point on Ray with "No module named 'helpers'":
    only the files of the model's classes travelled. The user's modules those need go too: the loaded ones in the
    folder tree of the model's file, and those its globals name wherever they are; nothing else, and not torch."""
    import importlib
    proj, lib, other = tmp_path / "proj", tmp_path / "lib", tmp_path / "other"
    for folder in (proj / "sub", lib, other):
        folder.mkdir(parents=True)
    (proj / "helpers.py").write_text("import torch\nfrom sub.deep import twice\n"
                                     "def act(x):\n    return twice(torch.relu(x))\n")
    (proj / "sub" / "deep.py").write_text("def twice(x):\n    return 2 * x\n")
    (lib / "farutil.py").write_text("def ident(x):\n    return x\n")
    (other / "unrelated.py").write_text("X = 1\n")
    (proj / "netfile.py").write_text("from torch import nn\nfrom helpers import act\nfrom farutil import ident\n"
                                     "class Net(nn.Module):\n"
                                     "    def __init__(self):\n"
                                     "        super().__init__()\n"
                                     "        self.fc = nn.Linear(4, 4)\n"
                                     "    def forward(self, x):\n"
                                     "        return ident(act(self.fc(x)))\n")
    for folder in (proj, lib, other):
        monkeypatch.syspath_prepend(str(folder))
    for name in ("netfile", "helpers", "sub", "sub.deep", "farutil", "unrelated"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    importlib.import_module("unrelated")  # loaded, but no part of the model's code
    net = importlib.import_module("netfile").Net()
    try:
        sent = []

        class FakeRay:
            class cloudpickle:
                register_pickle_by_value = staticmethod(lambda m: sent.append(m.__name__))

        sweeps._user_code_by_value(FakeRay, net)
        assert sorted(sent) == ["farutil", "helpers", "netfile", "sub.deep"]  # "sub": a namespace package, no file
    finally:
        for name in ("netfile", "helpers", "sub", "sub.deep", "farutil", "unrelated"):
            sys.modules.pop(name, None)

def test_a_version_1_store_is_upgraded_in_place(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:  # a store as schema version 1 made it, with one run
        conn.executescript(S._SCHEMA)
        conn.execute("INSERT INTO runs (created, model, technique, recipe, params, nonzero_params, artifact_bytes, "
                     "ratio, accuracy, metrics) VALUES ('2026-01-01T00:00:00+00:00', 'm', 'prune', ?, 10, 5, 100, "
                     "4.0, 0.5, '{}')", (ce.Recipe(sparsity=0.5).to_json(),))
    store = Store(path)
    [run] = store.list()
    assert run["model"] == "m" and run["sweep"] is None and run["sweep_id"] is None
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == S.SCHEMA_VERSION == 3
    Store(path)  # opening it again changes nothing


# --- on Ray -----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def local_ray():
    """One local runtime for the module: 2 CPUs, loopback, no dashboard. ray.init sets RAY_AUTH_MODE=token in
    os.environ: put back as it was after, or a later test's subprocess inherits it (with no token) and fails."""
    mode = os.environ.get("RAY_AUTH_MODE")
    sweeps.start_local(2)
    try:
        yield ray
    finally:
        ray.shutdown()
        if mode is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = mode


@needs_ray
def test_ray_rows_are_the_in_process_rows_bit_for_bit(local_ray, net, digits, tmp_path):
    want = core_rows(net, digits)
    # the model travels by value (its class is this test file's), the data by name, then as an object
    assert same(sweeps.sweep(net, BASE, "digits", "sparsity", VALUES, workers=2), want)
    sub = digits.subset(600, 200, "digits[:600]")
    assert same(sweeps.sweep(net, BASE, sub, "sparsity", VALUES[:2], workers=2), core_rows(net, sub, VALUES[:2]))
    # another field, failures included: the same rows and the same recorded errors as in-process
    store = Store(tmp_path / "runs.sqlite")
    fragile = like(Fragile, net)
    rows = sweeps.sweep(fragile, BASE, "digits", "sparsity", [0.9, 0.5], workers=2, store=store)
    assert same(rows, sweeps.sweep(fragile, BASE, "digits", "sparsity", [0.9, 0.5]))
    assert rows[0]["error"] == "ValueError: fc1 is too sparse for me" and store.count() == 1
    assert len(store.sweep_failures()) == 1


@needs_ray
def test_a_points_warnings_reach_the_caller_from_ray_workers_too(local_ray, net, digits):
    """A point's warnings (the engine's, or the model's own) showed in-process and never on Ray, whose workers'
    output is not sent back. A worker's come back as raised there, after the point is kept: the caller's filters
    decide, by module too ("default": once a sweep; "always": once a point; "ignore" for the model's module)."""
    chatty = like(Chatty, net)

    def said(workers, *how, **where):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.filterwarnings(*how, **where)
            sweeps.sweep(chatty, BASE, digits, "sparsity", [0.5, 0.9, 0.95], workers=workers)
        return [str(w.message) for w in caught if "Chatty" in str(w.message)]

    assert said(2, "always") == ["Chatty: fc1 is mostly zeros"] * 2  # one per point that warned
    assert said(2, "default") == ["Chatty: fc1 is mostly zeros"] == said(None, "default")  # as in this process
    assert said(2, "ignore", module="test_sweeps") == [] == said(None, "ignore", module="test_sweeps")


@needs_ray
def test_cli_workers_print_the_same_rows(local_ray, capsys, tiny_idx, tmp_path):
    """The sample model and the data travel by name: each worker loads them itself."""
    argv = ["sweep", "--model", "lenet-300-100", "--data", tiny_idx, "--field", "sparsity", "--values",
            "0.5,0.8,0.9", "--clusters", "16"]
    assert main(argv) == 0
    alone = capsys.readouterr().out
    assert main(argv + ["--workers", "2", "--store", str(tmp_path / "runs.sqlite")]) == 0
    out, err = capsys.readouterr()
    assert out == alone and len(json.loads(out)) == 3
    assert "3 point(s)" in err and "Ray" not in out
    assert Store(tmp_path / "runs.sqlite").count() == 3


@needs_ray
def test_a_killed_worker_is_retried_once_and_nothing_is_written_twice(local_ray, net, digits, tmp_path):
    store = Store(tmp_path / "runs.sqlite")
    marker = tmp_path / "killed"
    killer = like(Killer, net, marker)
    rows = sweeps.sweep(killer, BASE, "digits", "sparsity", VALUES, workers=2, store=store)
    assert marker.exists()  # one worker process died mid-point...
    assert same(rows, core_rows(killer, digits))  # ...its point ran again, with the same result (in this
    # process Killer never kills; its rows differ from Net's only in the artifact, which names the class)
    assert store.count() == len(VALUES) and store.sweep_failures() == []
    assert len({r["recipe"] for r in store.list()}) == len(VALUES)
    # a point whose worker dies on every attempt is recorded as failed after the retry; the others finish
    always = tmp_path / "always"
    seen = {}
    rows = sweeps.sweep(like(Killer, net, always, True), BASE, "digits", "sparsity", [0.7, 0.5], workers=1,
                        store=store,  # (0.5 is stored already: the same weights and class make the same key)
                        on_point=lambda done, total, row, seconds: seen.setdefault(row["sparsity"], seconds))
    assert rows[0]["sparsity"] == 0.7 and rows[0]["error"].startswith("WorkerCrashedError after 2 tries")
    assert seen[0.5] is None and seen[0.7] > 0  # the point that ran and died is not "stored" (seconds None)
    assert same(rows[1], core_rows(killer, digits)[1])
    assert store.count() == len(VALUES) and [f["error"] for f in store.sweep_failures()] == [rows[0]["error"]]


# --- the Compare page ---------------------------------------------------------------------------------------

def test_compare_page_shows_a_sweep_as_one_group(net, digits, tmp_path, monkeypatch, fmnist):
    from test_app import app, plotly_values
    monkeypatch.setenv("COMPRESS_STORE", str(tmp_path / "runs.sqlite"))
    store = Store()
    sweeps.sweep(net, BASE, "digits", "sparsity", [0.5, 0.9, 0.8], store=store, model_name="lenet-300-100")
    res = ce.compress(net, ce.Recipe(bits=4), digits)
    store.save("lenet-300-100", res.recipe, res.metrics, res.artifact)  # a run saved from a page
    at = app().run().switch_page("pages/compare.py").run()
    assert not at.exception and not at.error
    label = store.sweeps()[0]["label"]
    spec = json.loads(plots(at)[0])
    [line] = [t for t in spec["data"] if t.get("name") == label]  # one trace joins the sweep's points, by size
    x = plotly_values(line["x"])
    assert line["mode"] == "lines" and len(x) == 3 and x == sorted(x)
    summaries = list(at.dataframe[0].value["summary"])
    assert sum(" · sweep #1 · " in s for s in summaries) == 3 and len(summaries) == 4
