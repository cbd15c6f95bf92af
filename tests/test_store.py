"""Run store: round trip, concurrent writers (threads and processes) lose nothing, a failed save
leaves no row, bad input and bad files give clear errors; plus the pure helpers (Pareto frontier...)."""

import hashlib
import itertools
import json
import multiprocessing as mp
import os
import random
import signal
import sqlite3
import threading
import time
from contextlib import closing

import numpy as np
import pytest
import torch

import compress_engine as ce
from compress_engine.playground import store as S, viz
from compress_engine.playground.store import Store, StoreError


def metrics(i=0, size=1000, acc=0.8):
    return {"params": 100, "nonzero_params": 50 + i % 50, "dense_params": 100, "sparsity": 0.5,
            "dense_bytes": 400, "artifact_bytes": size, "ratio": 400 / size, "accuracy": acc,
            "dense_accuracy": 0.9, "agreement": 0.85, "bytes_breakdown": {"header": 10, "raw": size - 10},
            "layers": [{"name": "fc.weight", "shape": [10, 10], "params": 100, "nonzero": 50 + i % 50,
                        "levels": None, "bytes": size - 10}]}


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "runs.sqlite")


# --- round trip ---------------------------------------------------------------------------------

def test_round_trip(store):
    art = bytes(range(256)) * 4
    recipe = ce.Recipe(sparsity=0.5, clusters=8, huffman=True)
    run_id = store.save("lenet-300-100", recipe, metrics(size=len(art)), art)
    [row] = store.list()
    assert row["id"] == run_id and row["model"] == "lenet-300-100"
    assert row["technique"] == "prune+cluster+huffman"
    assert ce.Recipe.from_json(row["recipe"]) == recipe
    assert row["artifact_bytes"] == 1024 and row["accuracy"] == 0.8 and row["agreement"] == 0.85
    assert "artifact" not in row and "metrics" not in row
    got = store.get(run_id)
    assert got["artifact"] == art and got["metrics"] == metrics(size=len(art))
    assert got["created"].endswith("+00:00")
    assert store.get(run_id + 1) is None


def test_round_trip_real_run(store, small, lenet300):
    recipe = ce.Recipe(sparsity=0.8, bits=4)
    res = ce.compress(lenet300, recipe, small)
    run_id = store.save("lenet-300-100", recipe.to_json(), res.metrics, res.artifact, technique="Quantization")
    got = store.get(run_id)
    assert got["technique"] == "Quantization" and got["metrics"] == json.loads(json.dumps(res.metrics))
    back = ce.evaluate_artifact(got["artifact"], small)
    assert back["accuracy"] == pytest.approx(res.metrics["accuracy"])


def test_list_is_newest_first_and_saved_without_artifact(store):
    ids = [store.save("m", ce.Recipe(), metrics(i)) for i in range(3)]
    assert [r["id"] for r in store.list()] == ids[::-1]
    assert store.get(ids[0])["artifact"] is None and store.count() == 3


def test_delete(store):
    ids = [store.save("m", ce.Recipe(sparsity=0.1 * i), metrics(i)) for i in range(4)]
    assert store.delete([ids[0], ids[2]]) == 2
    assert sorted(r["id"] for r in store.list()) == [ids[1], ids[3]]
    assert store.delete(ids[1]) == 1 and store.delete([ids[1]]) == 0 and store.delete([]) == 0
    assert [r["id"] for r in store.list()] == [ids[3]]
    assert store.get(ids[0]) is None
    with pytest.raises(StoreError, match="run id"):
        store.delete(["1; DROP TABLE runs"])


def test_path_from_env_and_default(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESS_STORE", str(tmp_path / "a" / "b" / "env.sqlite"))
    assert Store().path == tmp_path / "a" / "b" / "env.sqlite" and Store().path.exists()
    monkeypatch.delenv("COMPRESS_STORE")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert S.default_path() == tmp_path / "xdg" / "compression-playground" / "runs.sqlite"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert S.default_path() == tmp_path / "home" / ".local" / "share" / "compression-playground" / "runs.sqlite"


def test_wal_mode(store):
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# --- validation ---------------------------------------------------------------------------------

def deep(n):
    d = {}
    for _ in range(n):
        d = {"x": d}
    return d


BAD_SAVES = {  # what is wrong -> (the change to a good save, words the StoreError/RecipeError must contain)
    "model empty": (dict(model=""), "model"),
    "model blank": (dict(model="   "), "model"),
    "model int": (dict(model=3), "model=3"),
    "model bytes": (dict(model=b"lenet"), "model=b'lenet'"),
    "model None": (dict(model=None), "model=None"),
    "model 10k chars": (dict(model="m" * 10_000), "up to 200"),
    "model with NUL": (dict(model="lenet\0-5"), "printable"),
    "model with newline": (dict(model="lenet\nDROP TABLE runs"), "printable"),
    "recipe dict": (dict(recipe={"sparsity": 0.5}), "Recipe or its JSON"),
    "recipe None": (dict(recipe=None), "Recipe or its JSON"),
    "recipe out of range": (dict(recipe='{"sparsity": 2}'), "sparsity=2"),
    "recipe NaN": (dict(recipe='{"sparsity": NaN}'), "sparsity=nan: must be a finite number"),
    "recipe 1e308": (dict(recipe='{"lr": 1e308}'), "lr=1e+308: must be between"),
    "recipe unknown field": (dict(recipe='{"pruning": 0.5}'), "unknown recipe field"),
    "recipe wrong type": (dict(recipe='{"huffman": "yes"}'), "huffman='yes': must be true or false"),
    "recipe not JSON": (dict(recipe="not json"), "not valid JSON"),
    "recipe JSON list": (dict(recipe="[1, 2]"), "JSON object"),
    "recipe nested 100k deep": (dict(recipe="[" * 50_000 + "]" * 50_000), "recipe JSON"),
    "recipe 1 MB": (dict(recipe='{"seed": 1' + " " * (1 << 20) + "}"), "characters; a recipe is under"),
    "metrics list": (dict(metrics=[1, 2]), "metrics must be a dict"),
    "metrics None": (dict(metrics=None), "metrics must be a dict"),
    "metrics missing field": (dict(metrics={"params": 1}), "missing 'nonzero_params'"),
    "accuracy text": (dict(metrics={**metrics(), "accuracy": "0.9"}), "accuracy"),
    "accuracy NaN": (dict(metrics={**metrics(), "accuracy": float("nan")}), "accuracy']=nan: must be a finite"),
    "accuracy inf": (dict(metrics={**metrics(), "accuracy": float("inf")}), "finite"),
    "accuracy numpy NaN": (dict(metrics={**metrics(), "accuracy": np.float64("nan")}), "finite"),
    "accuracy 0-d tensor NaN": (dict(metrics={**metrics(), "accuracy": torch.tensor(float("nan"))}), "finite"),
    "accuracy 1.5": (dict(metrics={**metrics(), "accuracy": 1.5}), "between 0 and 1"),
    "accuracy -0.1": (dict(metrics={**metrics(), "accuracy": -0.1}), "between 0 and 1"),
    "accuracy None": (dict(metrics={**metrics(), "accuracy": None}), "missing 'accuracy'"),
    "ratio -inf": (dict(metrics={**metrics(), "ratio": float("-inf")}), "ratio']=-inf: must be a finite"),
    "ratio 0": (dict(metrics={**metrics(), "ratio": 0.0}), "must be > 0"),
    "params 10.5": (dict(metrics={**metrics(), "params": 10.5}), "whole number"),
    "params True": (dict(metrics={**metrics(), "params": True}), "finite number"),
    "params -1": (dict(metrics={**metrics(), "params": -1}), "from 0 to"),
    "params 10^30": (dict(metrics={**metrics(), "params": 10**30}), "from 0 to 9,007,199,254,740,992"),
    "params 1e300": (dict(metrics={**metrics(), "params": 1e300}), "from 0 to"),
    "params list": (dict(metrics={**metrics(), "params": [100]}), "finite number"),
    "nonzero > params": (dict(metrics={**metrics(), "nonzero_params": 101}), "exceeds"),
    "sparsity NaN (optional)": (dict(metrics={**metrics(), "sparsity": float("nan")}), "sparsity']=nan"),
    "object in metrics": (dict(metrics={**metrics(), "layers": object()}), "JSON"),
    "NaN nested in layers": (dict(metrics={**metrics(), "layers": [{"bytes": float("nan")}]}), "JSON"),
    "set in metrics": (dict(metrics={**metrics(), "tags": {1, 2}}), "JSON"),
    "metrics nested 100k deep": (dict(metrics={**metrics(), "x": deep(100_000)}), "nested too deeply"),
    "metrics 8 MB": (dict(metrics={**metrics(), "note": "x" * (8 << 20)}), "characters as JSON"),
    "artifact text": (dict(artifact="abc"), "artifact must be bytes"),
    "artifact list": (dict(artifact=[1, 2, 3]), "artifact must be bytes"),
    "artifact size mismatch": (dict(artifact=b"12345"), "artifact_bytes"),
    "technique empty": (dict(technique=""), "technique"),
    "technique 201 chars": (dict(technique="t" * 201), "up to 200"),
    "technique with NUL": (dict(technique="prune\0"), "printable"),
    "technique int": (dict(technique=7), "technique=7"),
}


@pytest.mark.parametrize("change, match", list(BAD_SAVES.values()), ids=list(BAD_SAVES))
def test_bad_input_is_refused_with_a_clear_message(store, change, match):
    args = dict(model="m", recipe=ce.Recipe(), metrics=metrics(), artifact=None, technique=None) | change
    with pytest.raises(ce.CompressError) as e:
        store.save(**args)
    assert match in str(e.value) and len(str(e.value)) < 600, str(e.value)
    assert store.count() == 0


def test_oversized_artifact_is_refused(store, monkeypatch):
    monkeypatch.setattr(S, "MAX_ARTIFACT", 1000)
    with pytest.raises(StoreError, match="1,001 bytes; the run store keeps artifacts up to 1,000"):
        store.save("m", ce.Recipe(), metrics(size=1001), b"x" * 1001)
    assert store.count() == 0


BAD_IDS = {"zero": 0, "negative": -1, "2^63": 2**63, "10^30": 10**30, "float": 1.5, "float 1.0": 1.0,
           "NaN": float("nan"), "text": "1", "SQL": "1; DROP TABLE runs", "bool": True, "None": None,
           "bytes": b"1", "list": [1]}


@pytest.mark.parametrize("bad", list(BAD_IDS.values()), ids=list(BAD_IDS))
def test_bad_ids_are_refused_for_get_and_delete(store, bad):
    run_id = store.save("m", ce.Recipe(), metrics())
    with pytest.raises(StoreError, match="run id"):
        store.get(bad)
    with pytest.raises(StoreError, match="run id"):
        store.delete([run_id, bad])
    if not isinstance(bad, (list, str, bytes)) and bad is not None:
        with pytest.raises(StoreError, match="run id"):
            store.delete(bad)
    assert store.count() == 1  # a bad id in a list deletes nothing, not even the good ones


@pytest.mark.parametrize("bad", [None, "12", b"12", {1: 1}, 3.0, object()], ids=lambda v: type(v).__name__)
def test_delete_wants_an_id_or_a_list_of_ids(store, bad):
    with pytest.raises(StoreError, match="run id"):
        store.delete(bad)


def test_delete_many_ids_at_once(store):
    ids = [store.save("m", ce.Recipe(), metrics(i)) for i in range(3)]
    assert store.delete(range(1, 100_001)) == 3  # more ids than SQLite binds in one statement
    assert store.count() == 0 and store.delete(ids) == 0


def test_list_reads_each_runs_flops_out_of_its_metrics(store, small, lenet300):
    """The Compare page charts runs against FLOPs: list() gives compress()'s counts, and None where there are none
    (a run saved before they were counted) or where another program damaged the metrics, without failing."""
    res = ce.compress(lenet300, ce.Recipe(structured=True, sparsity=0.5), small)
    counted = store.save("lenet-300-100", res.recipe, res.metrics)
    old = store.save("lenet-300-100", ce.Recipe(), metrics())
    damaged = store.save("lenet-300-100", ce.Recipe(sparsity=0.5), metrics())
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE runs SET metrics = '{not json' WHERE id = ?", (damaged,))
    rows = {r["id"]: r for r in store.list()}
    assert (rows[counted]["flops"], rows[counted]["dense_flops"]) == (res.metrics["flops"], res.metrics["dense_flops"])
    assert 0 < rows[counted]["flops"] < rows[counted]["dense_flops"]
    assert rows[old]["flops"] is rows[old]["dense_flops"] is rows[damaged]["flops"] is None
    assert store.get(counted)["flops"] == res.metrics["flops"]


def test_rows_damaged_by_another_program_give_a_clear_error(store):
    run_id = store.save("m", ce.Recipe(), metrics())
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE runs SET metrics = '{not json' WHERE id = ?", (run_id,))
    with pytest.raises(StoreError, match=f"run #{run_id} .* unreadable metrics"):
        store.get(run_id)
    assert store.delete(run_id) == 1


@pytest.mark.parametrize("path", [3, b"/tmp/x.sqlite", ["runs.sqlite"], "/tmp/a\0b.sqlite"], ids=repr)
def test_bad_store_paths(path):
    with pytest.raises(StoreError, match="path"):
        Store(path)


# --- atomicity ----------------------------------------------------------------------------------

def test_failed_save_writes_no_row(store, monkeypatch):
    def boom(conn, run_id, artifact):
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 1  # the run row is in, uncommitted
        raise RuntimeError("disk full (simulated)")
    monkeypatch.setattr(Store, "_insert_artifact", staticmethod(boom))
    with pytest.raises(RuntimeError, match="simulated"):
        store.save("m", ce.Recipe(), metrics(size=3), b"abc")
    monkeypatch.undo()
    assert store.count() == 0 and store.list() == []
    assert store.save("m", ce.Recipe(), metrics(size=3), b"abc") >= 1 and store.count() == 1  # store still fine


def _ctx():
    """A clean single-threaded parent to fork from, with torch and this module (pytest...) loaded once:
    a new writer process then starts in milliseconds, not the second or two of imports."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["compress_engine.playground.store", __name__])
    return ctx


def _ack(log, run_id, art):
    """Acknowledge one saved run: one line, one write() (a kill cannot leave half an acknowledgement)."""
    os.write(log, f"{run_id} {hashlib.sha256(art).hexdigest()}\n".encode())


def _steady_writer(path, writer, stop, log_path):
    """Save runs (a few ms apart, like busy browser sessions) until `stop` is set; acknowledge each one."""
    s, log, i = Store(path), os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND), 0
    while not stop.is_set():
        art = os.urandom(100 + i % 400)
        _ack(log, s.save(f"writer-{writer}", ce.Recipe(sparsity=0.01 * (i % 90)), metrics(i, size=len(art)), art), art)
        i += 1
        time.sleep(0.002 * (i % 5))


def _victim(path, log_path, in_transaction):
    """Save runs until killed. With `in_transaction` set, the first save stops between its run row and its
    artifact row (inside BEGIN IMMEDIATE ... COMMIT, holding the write lock) and says so."""
    if in_transaction is not None:
        def hang(conn, run_id, artifact):
            in_transaction.set()
            time.sleep(60)
        Store._insert_artifact = staticmethod(hang)
    s, log, i = Store(path), os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND), 0
    while True:
        art = os.urandom(300 + i % 100)
        _ack(log, s.save("victim", ce.Recipe(), metrics(i, size=len(art)), art), art)
        i += 1


def _acks(log_path):
    if not log_path.exists():
        return {}
    return {int(a): h for a, h in (line.split() for line in log_path.read_text().splitlines(keepends=True)
                                   if line.endswith("\n"))}


def test_killed_writers_lose_no_acknowledged_run_and_leave_no_partial_row(tmp_path):
    """7 writers keep saving while an 8th is SIGKILLed again and again, half of the times while it holds the
    write lock inside a save's transaction (run row written, artifact row not yet). Afterwards the
    file passes SQLite's integrity check, every acknowledged run is there with its exact artifact, and no
    run lacks its artifact (no half-written row)."""
    path, kills = str(tmp_path / "runs.sqlite"), 4
    Store(path)
    ctx, rng = _ctx(), random.Random(0)
    stop = ctx.Event()
    logs = [tmp_path / f"writer-{w}.log" for w in range(7)]
    writers = [ctx.Process(target=_steady_writer, args=(path, w, stop, logs[w])) for w in range(7)]
    for p in writers:
        p.start()
    victim_logs, mid_transaction = [], 0
    for k in range(kills):
        log = tmp_path / f"victim-{k}.log"
        victim_logs.append(log)
        hold = ctx.Event() if k % 2 == 0 else None
        v = ctx.Process(target=_victim, args=(path, str(log), hold))
        v.start()
        if hold is not None:
            assert hold.wait(30), "the victim never reached the middle of its transaction"
            mid_transaction += 1
        else:  # let it save a run or two, then kill it wherever it is (often inside a save too)
            deadline = time.monotonic() + 30
            while not _acks(log) and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.02))
        os.kill(v.pid, signal.SIGKILL)
        v.join(10)
        assert v.exitcode == -signal.SIGKILL
    stop.set()
    for p in writers:
        p.join(60)
        assert p.exitcode == 0
    assert mid_transaction == kills // 2

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = dict(conn.execute("SELECT runs.id, artifact FROM runs LEFT JOIN artifacts ON run_id = runs.id"))
    assert all(art is not None for art in rows.values()), "a run row without its artifact: a half-written save"
    acked = {}
    for log in logs + victim_logs:
        acked.update(_acks(log))
    assert sum(len(_acks(log)) for log in logs) > 7  # the writers really wrote while the victims died
    lost = [i for i in acked if i not in rows]
    corrupt = [i for i, h in acked.items() if i in rows and hashlib.sha256(rows[i]).hexdigest() != h]
    assert not lost and not corrupt
    assert Store(path).save("after", ce.Recipe(), metrics(size=3), b"abc") > max(rows)  # still writable


# --- concurrency --------------------------------------------------------------------------------

def _write_runs(path, writer, n, barrier):
    barrier.wait()
    s = Store(path)
    ids = []
    for i in range(n):
        art = os.urandom(64 + i)
        ids.append(s.save(f"model-{writer}", ce.Recipe(sparsity=round(0.01 * i, 2)), metrics(i, size=len(art)), art))
    return ids


@pytest.mark.parametrize("writers", [2, 8])
def test_concurrent_threads_lose_nothing(tmp_path, writers):
    path, n = tmp_path / "runs.sqlite", 25
    barrier = threading.Barrier(writers)
    results, errors = {}, []

    def work(w):
        try:
            results[w] = _write_runs(path, w, n, barrier)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
    threads = [threading.Thread(target=work, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    ids = list(itertools.chain(*results.values()))
    rows = Store(path).list()
    assert len(rows) == writers * n == len(set(ids)) == len({r["id"] for r in rows})
    assert sorted(ids) == sorted(r["id"] for r in rows)


def _process_writer(path, writer, n, barrier, queue):
    queue.put(_write_runs(path, writer, n, barrier))


@pytest.mark.parametrize("writers", [2, 8])
def test_concurrent_processes_lose_nothing(tmp_path, writers):
    path, n = str(tmp_path / "runs.sqlite"), 25
    ctx = _ctx()
    barrier, queue = ctx.Barrier(writers), ctx.Queue()
    procs = [ctx.Process(target=_process_writer, args=(path, w, n, barrier, queue)) for w in range(writers)]
    for p in procs:
        p.start()
    ids = list(itertools.chain(*(queue.get(timeout=120) for _ in procs)))
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    rows = Store(path).list()
    assert len(rows) == writers * n == len(set(ids))
    assert sorted(ids) == sorted(r["id"] for r in rows)
    assert {r["model"] for r in rows} == {f"model-{w}" for w in range(writers)}


def test_save_waits_out_a_held_lock(store, monkeypatch):
    monkeypatch.setattr(S, "BUSY_TIMEOUT_S", 0.05)  # so the retry loop (not only busy_timeout) is exercised
    holder = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    threading.Timer(0.3, lambda: holder.execute("COMMIT")).start()
    t = time.perf_counter()
    store.save("m", ce.Recipe(), metrics())
    assert time.perf_counter() - t >= 0.25 and store.count() == 1
    holder.close()


def test_lock_held_too_long_is_a_clear_error(store, monkeypatch):
    monkeypatch.setattr(S, "BUSY_TIMEOUT_S", 0.02)
    monkeypatch.setattr(S, "RETRIES", 1)
    holder = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreError, match="locked"):
            store.save("m", ce.Recipe(), metrics())
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.count() == 0


# --- bad files ----------------------------------------------------------------------------------

def test_corrupt_file_names_path_and_fix(tmp_path):
    bad = tmp_path / "runs.sqlite"
    bad.write_bytes(b"this is not a database, just some text " * 100)
    with pytest.raises(StoreError) as e:
        Store(bad)
    msg = str(e.value)
    assert str(bad) in msg and "Move that file away" in msg and "give the run store another file path" in msg


def test_a_store_error_names_the_setting_that_chose_the_path(tmp_path, monkeypatch, capsys):
    """Every store error said "set COMPRESS_STORE to another file path", also for a path given with --store or
    Store(path). It names the setting that chose the path."""
    from compress_engine.playground.cli import main
    folder = tmp_path / "a-folder"
    folder.mkdir()
    with pytest.raises(StoreError, match="is a folder, not a file: give the run store a file path"):
        Store(folder)
    monkeypatch.setenv("COMPRESS_STORE", str(folder))
    with pytest.raises(StoreError, match="is a folder, not a file: set COMPRESS_STORE to a file path"):
        Store()
    base = ["sweep", "--data", "digits", "--field", "sparsity", "--values", "0.5"]
    assert main(base + ["--store", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "give --store a file path" in err and "COMPRESS_STORE" not in err
    assert main(base + ["--store"]) == 2
    assert "set COMPRESS_STORE to a file path" in capsys.readouterr().err


def test_damaged_store_after_creation(tmp_path):
    path = tmp_path / "runs.sqlite"
    Store(path).save("m", ce.Recipe(), metrics())
    path.write_bytes(os.urandom(8192))
    for f in tmp_path.glob("runs.sqlite-*"):
        f.unlink()
    with pytest.raises(StoreError, match="give the run store another file path"):
        Store(path)


def test_other_sqlite_database_is_refused(tmp_path):
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(StoreError, match="not a run store"):
        Store(path)


def test_folder_path_is_refused(tmp_path):
    with pytest.raises(StoreError, match="is a folder"):
        Store(tmp_path)


def test_empty_file_becomes_a_store(tmp_path):
    path = tmp_path / "empty.sqlite"
    path.touch()
    assert Store(path).count() == 0


# --- pure helpers -------------------------------------------------------------------------------

def brute_front(points):
    keep = []
    for i, (s, a) in enumerate(points):
        dominated = any((s2 <= s and a2 >= a and (s2 < s or a2 > a)) or ((s2, a2) == (s, a) and j < i)
                        for j, (s2, a2) in enumerate(points) if j != i)
        if not dominated:
            keep.append(i)
    return sorted(keep, key=lambda i: points[i][0])


def test_pareto_front_examples():
    pts = [(100, 0.9), (50, 0.85), (200, 0.95), (60, 0.80), (100, 0.9), (300, 0.94), (10, 0.1)]
    assert S.pareto_front(pts) == [6, 1, 0, 2]
    assert S.pareto_front([]) == []
    assert S.pareto_front([(5, float("nan")), (None, 0.3), (7, 0.5)]) == [2]


def test_pareto_front_matches_brute_force():
    rng = random.Random(0)
    for _ in range(200):
        pts = [(rng.choice(range(1, 12)), rng.choice([0.1, 0.3, 0.5, 0.7, 0.9])) for _ in range(rng.randint(1, 15))]
        assert S.pareto_front(pts) == brute_front(pts), pts


def test_recipe_summary_and_layer_sparsity():
    assert S.recipe_summary(ce.Recipe().to_json()) == "dense"
    assert S.recipe_summary(ce.Recipe(sparsity=0.9, clusters=16, huffman=True).to_json()) == \
        "sparsity=90 %, clusters=16, huffman=True"
    # the training precision is not the stored weights' (a walkthrough read "precision=bfloat16" so)
    assert S.recipe_summary(ce.Recipe(sparsity=0.5, finetune_epochs=1, precision="bfloat16")) == \
        "sparsity=50 %, finetune_epochs=1, trained in bfloat16"
    fit = ce.Recipe(layers={"a.weight": {"sparsity": 0.95, "clusters": 8}, "b.weight": {"sparsity": 0.0, "clusters": 64}},
                    huffman=True, bias_bits=8)
    assert S.recipe_summary(fit) == ("huffman=True, bias_bits=8, a.weight (sparsity=95 %, clusters=8), "
                                     "b.weight (sparsity=0 %, clusters=64)")
    m = {"layers": [{"name": "a.weight", "shape": [4, 5], "params": 20, "nonzero": 5},
                    {"name": "a.bias", "shape": [4], "params": 4, "nonzero": 4}]}
    assert {r["name"]: r["sparsity"] for r in viz.layer_sparsity(m)} == {"a.weight": 0.75}


def test_reference_points(tmp_path):
    assert S.reference_points(tmp_path / "missing") == []
    (tmp_path / "sizes.csv").write_text("model,recipe,artifact_bytes,ratio,accuracy\n"
                                        "lenet-300-100,prune 90%,127481,8.36,0.4357\n"
                                        "lenet-300-100,broken,n/a,1,0.5\n")
    (tmp_path / "speed.csv").write_text("model,recipe,median_s\nlenet-5,x,0.9\n")
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00garbage")
    assert S.reference_points(tmp_path) == [{"source": "sizes.csv", "model": "lenet-300-100", "label": "prune 90%",
                                             "artifact_bytes": 127481.0, "accuracy": 0.4357, "ratio": 8.36}]


# --- names, and one run per model + recipe + data (issue 12: the Compare page's walkthrough) ------

def test_runs_can_be_named_and_renamed(tmp_path):
    store = Store(tmp_path / "runs.sqlite")
    a = store.save("m", ce.Recipe(), metrics(), name="  baseline  ")
    b = store.save("m", ce.Recipe(sparsity=0.5), metrics())
    names = {r["id"]: r["name"] for r in store.list()}
    assert names == {a: "baseline", b: None}
    assert store.rename(b, "half pruned") and store.get(b)["name"] == "half pruned"
    assert store.rename(a, "") and store.get(a)["name"] is None  # a blank name removes it
    assert not store.rename(b + 100, "nobody")
    with pytest.raises(StoreError, match="name="):
        store.rename(b, "x" * 201)
    with pytest.raises(StoreError, match="name="):
        store.save("m", ce.Recipe(), metrics(), name="line\nbreak")
    with pytest.raises(StoreError, match="no text-direction controls"):  # "\u202eevil\u202c" would show as "live"
        store.rename(b, "a \u202eevil\u202c end")
    assert store.rename(b, "名前 ümlaut 👨\u200d👩\u200d👧 **not bold**")  # joiners of emoji are text, not controls


def test_the_same_model_recipe_and_data_saved_twice_is_one_run(tmp_path):
    store = Store(tmp_path / "runs.sqlite")
    first = store.save("m", ce.Recipe(sparsity=0.5), metrics(), data="fashion-mnist", point_key="k1")
    assert store.save("m", ce.Recipe(sparsity=0.5), metrics(1), data="fashion-mnist", point_key="k1") == first
    assert store.count() == 1
    assert store.save("m", ce.Recipe(sparsity=0.5), metrics(), data="fashion-mnist", point_key="k2") != first


def test_a_version_2_store_gets_names_in_place(tmp_path):
    path = tmp_path / "v2.sqlite"
    with closing(sqlite3.connect(path)) as conn:  # a store as schema version 2 made it, with one run
        conn.executescript(S._SCHEMA + S._SWEEPS)
        conn.execute("INSERT INTO runs (created, model, technique, recipe, params, nonzero_params, artifact_bytes, "
                     "ratio, accuracy, metrics) VALUES ('2026-01-01T00:00:00+00:00', 'm', 'prune', ?, 10, 5, 100, "
                     "4.0, 0.5, '{}')", (ce.Recipe(sparsity=0.5).to_json(),))
        conn.commit()
    store = Store(path)
    [run] = store.list()
    assert run["model"] == "m" and run["name"] is None
    assert store.rename(run["id"], "old run") and store.list()[0]["name"] == "old run"
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == S.SCHEMA_VERSION == 3
