"""Run store: every saved compression run in one SQLite file, safe for many writers at once.

    from compress_engine.playground.store import Store
    store = Store()                                  # $COMPRESS_STORE or ~/.local/share/compression-playground/runs.sqlite
    run_id = store.save("lenet-300-100", recipe, result.metrics, result.artifact)
    store.list()                                     # one dict per run, newest first, without the artifact
    store.get(run_id)["artifact"]                    # the .cpg bytes back
    store.delete([run_id])
    sweep = store.sweep_group(key, "lenet-300-100", "fashion-mnist", "sparsity", recipe)   # sweeps.py's points:
    store.save(..., sweep=sweep, data="fashion-mnist", point_key=key)   # saved once per key; a rerun finds them
    store.stored_points([key], sweep=sweep), store.save_failure(sweep, key, recipe, "ValueError: ...")
    store.rename(run_id, "Deep Compression demo")   # the name the Compare page shows ("" removes it)

Why it is built this way:
- WAL mode lets readers (the Compare page) work while a writer saves; every connection waits for a
  lock (busy_timeout) and a locked write is retried, so concurrent browser sessions lose no run.
- A connection per call: Streamlit runs each session on its own thread, and sqlite3 connections
  must not cross threads. Opening one costs well under a millisecond.
- Each save is one `BEGIN IMMEDIATE ... COMMIT` transaction (the run row and its artifact row), so
  a save that fails or is killed half-way leaves nothing behind.
- A sweep's points (compress_engine.playground.sweeps) carry a point key (model fingerprint + recipe
  JSON + data name and fingerprint) under a UNIQUE index: a point is stored at most once, however often it is run or
  retried, and a rerun asks which keys are already there. Their sweep is a row of `sweeps` (the Compare
  page draws it as one group); points that failed are kept with their error in `sweep_failures`.
- Schema version 2 added those, version 3 a run's name; an older file is upgraded in place when it is opened.
- A store this process may not write (a read-only file or folder: a shared demo, a mounted copy) is still read: its
  runs list and open, read through a read-only connection (SQLite's immutable mode when its folder cannot hold the
  WAL's index file); saving into it raises a StoreError naming what is not writable and the fix.

Also here, because they shape stored runs into what the Compare page draws (pure, no I/O on runs):
`pareto_front` (the size-vs-accuracy frontier), `recipe_summary`, `reference_points`.
"""

import csv
import json
import math
import numbers
import os
import random
import re
import sqlite3
import threading
import time
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

import torch

from ..core.data import Dataset
from ..core.errors import CompressError, StoreError
from ..core.recipe import Recipe
from . import units
from .viz import BEYOND

SCHEMA_VERSION = 3
APP_ID = 0x43504753  # "CPGS": marks the file as a Compression Playground run store (PRAGMA application_id)
BUSY_TIMEOUT_S = 30.0  # how long one statement waits for another writer's lock
RETRIES = 8            # extra attempts (with jittered back-off) when SQLite still says "locked"/"busy"

# metrics field -> must it be present?  (all are plain numbers; compress() gives them all)
NUMERIC = {"params": True, "nonzero_params": True, "artifact_bytes": True, "ratio": True, "accuracy": True,
           "dense_params": False, "dense_bytes": False, "sparsity": False, "dense_accuracy": False,
           "agreement": False}
COUNTS = {"params", "nonzero_params", "artifact_bytes", "dense_params", "dense_bytes"}
FRACTIONS = {"accuracy", "dense_accuracy", "agreement", "sparsity"}
MAX_NAME = 200                 # characters in a model name or technique label
MAX_RECIPE_KB = 64             # a recipe is a few hundred bytes of JSON; Export takes uploads up to this too
MAX_RECIPE_JSON = MAX_RECIPE_KB * units.KB  # characters (units: 1 KB = 1,000 bytes)
MAX_METRICS_JSON = 4 << 20     # real metrics are a few KB (one row per layer)
MAX_ARTIFACT = 256 << 20       # the largest real artifact (a dense 2000-wide student) is ~22 MB
MAX_COUNT = 2**53              # counts above this are not exact as floats, let alone real
MAX_ID = 2**63 - 1             # SQLite's INTEGER PRIMARY KEY
DELETE_CHUNK = 500             # ids per DELETE statement (SQLite limits bound parameters)

_SCHEMA = f"""
CREATE TABLE runs (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    created        TEXT    NOT NULL,   -- ISO 8601, UTC, seconds
    model          TEXT    NOT NULL,
    technique      TEXT    NOT NULL,
    recipe         TEXT    NOT NULL,   -- Recipe.to_json()
    params         INTEGER NOT NULL,
    nonzero_params INTEGER NOT NULL,
    dense_params   INTEGER,
    artifact_bytes INTEGER NOT NULL,
    dense_bytes    INTEGER,
    ratio          REAL    NOT NULL,
    sparsity       REAL,
    accuracy       REAL    NOT NULL,
    dense_accuracy REAL,
    agreement      REAL,
    metrics        TEXT    NOT NULL    -- the whole metrics dict as JSON (layers, bytes breakdown)
);
CREATE TABLE artifacts (
    run_id   INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    artifact BLOB NOT NULL
);
PRAGMA user_version = 1;
PRAGMA application_id = {APP_ID};
"""
# version 1 -> 2: sweeps (run in the same transaction as _SCHEMA for a new file, alone to upgrade an old one)
_SWEEPS = """
CREATE TABLE sweeps (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    key     TEXT    NOT NULL UNIQUE,   -- model fingerprint + data + field + base recipe: a rerun finds its sweep
    created TEXT    NOT NULL,
    model   TEXT    NOT NULL,
    data    TEXT    NOT NULL,
    field   TEXT    NOT NULL,          -- the recipe field the sweep varies
    recipe  TEXT    NOT NULL,          -- the base recipe's JSON
    label   TEXT    NOT NULL           -- what the Compare page calls the group
);
CREATE TABLE sweep_failures (
    point_key TEXT    PRIMARY KEY,     -- the point's latest error, removed when the point is stored
    sweep_id  INTEGER NOT NULL,
    created   TEXT    NOT NULL,
    recipe    TEXT    NOT NULL,
    error     TEXT    NOT NULL
);
ALTER TABLE runs ADD COLUMN sweep_id INTEGER;   -- the sweep that made this run (NULL: saved from a page)
ALTER TABLE runs ADD COLUMN data TEXT;          -- the dataset's name (sweep points)
ALTER TABLE runs ADD COLUMN point_key TEXT;     -- a sweep point's key (NULL for other runs)
CREATE UNIQUE INDEX runs_point_key ON runs(point_key);
CREATE INDEX runs_sweep ON runs(sweep_id);
PRAGMA user_version = 2;
"""
# version 2 -> 3: a name the user gives a run (NULL: none given)
_NAMES = """
ALTER TABLE runs ADD COLUMN name TEXT;
PRAGMA user_version = 3;
"""
_UPGRADES = {0: _SCHEMA + _SWEEPS + _NAMES, 1: _SWEEPS + _NAMES, 2: _NAMES}  # from user_version, in one transaction
COLUMNS = ("id", "created", "model", "technique", "recipe", "params", "nonzero_params", "dense_params",
           "artifact_bytes", "dense_bytes", "ratio", "sparsity", "accuracy", "dense_accuracy", "agreement",
           "sweep_id", "data", "name")
# list()/get(): the runs columns plus the sweep's label ("sweep", None for a run saved from a page) and the recipe field
# it varies ("sweep_field"), and the forward FLOPs of one input and the dense model's ("flops", "dense_flops"), read
# out of the metrics JSON, so no column is added: None for a run stored before compress() counted them, or whose
# metrics another program damaged
METRIC_COLUMNS = ("flops", "dense_flops")
_SELECT = (", ".join(f"runs.{c}" for c in COLUMNS) + ", sweeps.label AS sweep, sweeps.field AS sweep_field, "
           + ", ".join(f"CASE WHEN json_valid(runs.metrics) THEN json_extract(runs.metrics, '$.{k}') END AS {k}"
                       for k in METRIC_COLUMNS))
_FROM = "runs LEFT JOIN sweeps ON sweeps.id = runs.sweep_id"
MAX_ERROR = 2000               # characters of a failed point's error message


def default_path():
    """$COMPRESS_STORE, else ($XDG_DATA_HOME or ~/.local/share)/compression-playground/runs.sqlite."""
    env = os.environ.get("COMPRESS_STORE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base).expanduser() / "compression-playground" / "runs.sqlite"


def _locked(e):
    msg = str(e).lower()
    return isinstance(e, sqlite3.OperationalError) and ("locked" in msg or "busy" in msg)


def _read_only(e):
    """Did SQLite refuse to write (a read-only file or folder), rather than find the file damaged?"""
    return isinstance(e, sqlite3.OperationalError) and (
        (getattr(e, "sqlite_errorname", "") or "").startswith("SQLITE_READONLY") or "readonly" in str(e).lower())


def _rollback(conn):
    """Undo the open transaction; if the connection itself is broken, SQLite drops the transaction anyway."""
    try:
        conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass


class Store:
    """A SQLite file of saved runs. Cheap to create: make one wherever you need it, on any thread."""

    def __init__(self, path=None, *, source=None):
        """`path`: the SQLite file (default: default_path()). `source`: where that path came from, named in errors
        ("--store" on the command line); an error names COMPRESS_STORE only when the path is its or the default."""
        if path is not None and not isinstance(path, (str, os.PathLike)):
            raise StoreError(f"run store path must be a file path (str or Path), got {type(path).__name__}")
        self.path = Path(path).expanduser() if path is not None else default_path()
        self.busy_retries = 0  # how often a locked/busy database made a call wait and try again
        self._uri = None  # a read-only connection's URI, once the file or its folder turned out not writable
        self._fix = ("set COMPRESS_STORE to" if path is None else f"give {source}" if source else
                     "give the run store")  # + " another file path": the setting that chose this path
        if "\0" in str(self.path):
            raise StoreError(f"run store path {str(self.path)!r:.300} contains a NUL byte; {self._fix} a "
                             "file path such as ~/runs.sqlite")
        if self.path.is_dir():
            raise StoreError(f"run store path {self.path} is a folder, not a file: {self._fix} a file "
                             "path such as ~/runs.sqlite")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create the run store's folder {self.path.parent}: {e.strerror or e}; "
                             f"{self._fix} a writable file path") from None
        self._retry(self._init_schema)
        self.read_only = self._uri is not None or not self._writable()  # list/get work, save & co raise StoreError

    # --- plumbing ----------------------------------------------------------------------------

    def _connect(self):
        try:
            conn = sqlite3.connect(self._uri or self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                   uri=self._uri is not None)
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        except sqlite3.DatabaseError as e:
            raise self._unusable(e) from None
        return conn

    def _writable(self):
        """Can this process write the file (or, while there is none, make it) and its folder (the WAL's files)?"""
        return os.access(self.path.parent, os.W_OK) and (not self.path.exists() or os.access(self.path, os.W_OK))

    def _not_writable(self, e):
        folder = not os.access(self.path.parent, os.W_OK)  # SQLite writes its WAL files beside the store
        what, fix = (f"its folder {self.path.parent}", "that folder") if folder else ("the file", "it")
        return StoreError(f"run store {self.path} cannot be written: {what} is not writable by this program ({e}). "
                          f"Runs saved there can still be read; to save, make {fix} writable or {self._fix} "
                          "another file path.")

    def _unusable(self, e):
        if _locked(e):
            return StoreError(f"run store {self.path} stayed locked by another writer for too long ({e}); try again")
        if _read_only(e) or (isinstance(e, sqlite3.OperationalError) and not self._writable()
                             and not self.path.exists()):
            return self._not_writable(e)
        if self._uri is not None:  # read without locks (immutable): another program may be writing it
            return StoreError(f"run store {self.path} could not be read ({e}); it is read-only here, and another "
                              f"program may be writing it: try again, or {self._fix} another file path.")
        return StoreError(f"{self.path} is not a usable run store ({e}). Move that file away (the dashboard makes "
                          f"a new store there) or {self._fix} another file path.")

    def _retry(self, fn, *args):
        """Run fn(*args); on 'database is locked/busy' wait a little (jittered, growing) and try again."""
        for attempt in range(RETRIES + 1):
            try:
                return fn(*args)
            except sqlite3.DatabaseError as e:
                if not _locked(e) or attempt == RETRIES:
                    raise self._unusable(e) from None
            self.busy_retries += 1
            time.sleep(min(2.0, 0.01 * 2 ** attempt) * (0.5 + random.random()))

    def _transaction(self, conn):
        conn.execute("BEGIN IMMEDIATE")  # take the write lock now: no deadlocking lock upgrade later

    def _init_schema(self):
        try:
            self._setup_schema()
        except sqlite3.OperationalError as e:
            if self._uri is not None or not self.path.exists() or self._writable() or _locked(e):
                raise
            self._open_read_only(e)

    def _open_read_only(self, e):
        """Read a store this process cannot write: a read-only connection, or an immutable one (no locks, no WAL
        index) when its folder cannot hold the WAL's index file. Its schema must be current (no upgrade)."""
        for mode in ("mode=ro", "immutable=1"):
            self._uri = f"{self.path.absolute().as_uri()}?{mode}"
            try:
                with closing(self._connect()) as conn:
                    version, app_id = (conn.execute("PRAGMA user_version").fetchone()[0],
                                       conn.execute("PRAGMA application_id").fetchone()[0])
                break
            except (sqlite3.OperationalError, StoreError):
                if mode == "immutable=1":
                    self._uri = None
                    raise e from None
        if app_id == APP_ID and version in _UPGRADES:
            raise self._not_writable(f"it is a run store of schema version {version}, which must be upgraded to "
                                     f"{SCHEMA_VERSION} before it is read")
        self._check_version(app_id, version)

    def _check_version(self, app_id, version):
        if app_id != APP_ID or version != SCHEMA_VERSION:
            raise StoreError(f"{self.path} is not a run store of this version (application_id={app_id:#x}, "
                             f"user_version={version}). Move it away or {self._fix} another file path.")

    def _setup_schema(self):
        with closing(self._connect()) as conn:
            version, app_id = (conn.execute("PRAGMA user_version").fetchone()[0],
                               conn.execute("PRAGMA application_id").fetchone()[0])
            if version == 0 or (version in _UPGRADES and app_id == APP_ID):
                if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    conn.execute("PRAGMA journal_mode = WAL")  # persistent: set once per file
                self._transaction(conn)
                try:
                    version = conn.execute("PRAGMA user_version").fetchone()[0]  # another process may have won
                    tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
                    if version == 0 and tables:
                        raise StoreError(f"{self.path} is an SQLite database but not a run store (it has other "
                                         f"tables). Move it away or {self._fix} another file path.")
                    steps = _UPGRADES.get(version, "")  # a new file, or an older one upgraded in place
                    for stmt in steps.split(";"):
                        if stmt.strip():
                            conn.execute(stmt)
                    conn.execute("COMMIT")
                except BaseException:
                    _rollback(conn)
                    raise
                app_id = conn.execute("PRAGMA application_id").fetchone()[0]
                version = conn.execute("PRAGMA user_version").fetchone()[0]
            self._check_version(app_id, version)

    # --- API ---------------------------------------------------------------------------------

    def save(self, model, recipe, metrics, artifact=None, technique=None, *, sweep=None, data=None, point_key=None,
             name=None):
        """Store one run in one transaction; returns its id. Raises StoreError/RecipeError on bad input.

        `model` is the run's model name ("lenet-300-100"), or the nn.Module itself, stored under its class name
        (model_name(), as a sweep of it is); `data` a dataset name or the compress_engine.Dataset (its .name).

        A sweep point also gives its sweep id (sweep_group()), its data name and its point key: a key that is
        already stored is not written again (the id of the stored run is returned; a run saved from a page, in no
        sweep, joins this one), and its failure is cleared.
        The dashboard's Save buttons give a point key too (sweeps.point_key of model, recipe and data), so the
        same run saved twice is one run. `name`: what the user calls the run (see rename()).
        """
        row = _validate(model_name(model), recipe, metrics, artifact, technique)
        row["name"] = _name(name)
        if point_key is not None or sweep is not None or data is not None:
            row.update(sweep_id=None if sweep is None else _as_id(sweep),
                       data=None if data is None else _label("data", data_name(data), "fashion-mnist"),
                       point_key=None if point_key is None else _key(point_key))
        return self._retry(self._save, row, None if artifact is None else bytes(artifact))

    def _save(self, row, artifact):
        with closing(self._connect()) as conn:
            self._transaction(conn)
            try:
                key = row.get("point_key")
                have = key and conn.execute("SELECT id FROM runs WHERE point_key = ?", (key,)).fetchone()
                if have:  # stored already (a rerun, a retried point, another sweep or a page's Save run got there first)
                    if row.get("sweep_id") is not None:
                        # a run saved from a page joins the sweep that reaches it: the sweep said "4 points stored"
                        # and drew 3 when one was Pipeline's saved default. A run already in another sweep stays
                        # there (a run is in one sweep)
                        conn.execute("UPDATE runs SET sweep_id = ?, data = coalesce(data, ?) WHERE id = ? AND "
                                     "sweep_id IS NULL", (row["sweep_id"], row.get("data"), have[0]))
                    conn.execute("COMMIT")
                    return have[0]
                cur = conn.execute(f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                                   tuple(row.values()))
                run_id = cur.lastrowid
                if artifact is not None:
                    self._insert_artifact(conn, run_id, artifact)
                if key:
                    conn.execute("DELETE FROM sweep_failures WHERE point_key = ?", (key,))
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
        return run_id

    @staticmethod
    def _insert_artifact(conn, run_id, artifact):
        conn.execute("INSERT INTO artifacts (run_id, artifact) VALUES (?, ?)", (run_id, artifact))

    def list(self):
        """Every run, newest first, as dicts (the COLUMNS and METRIC_COLUMNS above, without the rest of the metrics
        JSON or artifact bytes)."""
        def read():
            with closing(self._connect()) as conn:
                conn.row_factory = sqlite3.Row
                return [dict(r) for r in conn.execute(f"SELECT {_SELECT} FROM {_FROM} ORDER BY runs.id DESC")]
        return self._retry(read)

    def get(self, run_id):
        """One run with its full `metrics` dict and `artifact` bytes (None if saved without); None if no such id."""
        run_id = _as_id(run_id)

        def read():
            with closing(self._connect()) as conn:
                conn.row_factory = sqlite3.Row
                row = conn.execute(f"SELECT {_SELECT}, runs.metrics, artifact FROM {_FROM} LEFT JOIN artifacts "
                                   "ON artifacts.run_id = runs.id WHERE runs.id = ?", (run_id,)).fetchone()
                return None if row is None else dict(row)
        out = self._retry(read)
        if out is not None:
            try:
                out["metrics"] = json.loads(out["metrics"])
            except (TypeError, ValueError, RecursionError) as e:
                raise StoreError(f"run #{run_id} in {self.path} has unreadable metrics ({e}); delete that run "
                                 "on the Compare page") from None
            if not isinstance(out["metrics"], dict):
                raise StoreError(f"run #{run_id} in {self.path} has unreadable metrics (JSON "
                                 f"{type(out['metrics']).__name__}, not an object); delete that run on the "
                                 "Compare page")
        return out

    def delete(self, ids):
        """Delete runs by id (one id or an iterable of ids) in one transaction; returns how many were deleted."""
        if isinstance(ids, numbers.Integral):
            ids = [ids]
        elif isinstance(ids, (str, bytes, bytearray, dict)) or not hasattr(ids, "__iter__"):
            raise StoreError(f"run ids must be one run id or a list of them, got {type(ids).__name__} {ids!r:.80}")
        ids = sorted({_as_id(i) for i in ids})

        def remove():
            with closing(self._connect()) as conn:
                self._transaction(conn)
                try:
                    n = 0
                    for i in range(0, len(ids), DELETE_CHUNK):
                        chunk = ids[i:i + DELETE_CHUNK]
                        marks = ", ".join("?" * len(chunk))
                        conn.execute(f"DELETE FROM artifacts WHERE run_id IN ({marks})", chunk)
                        n += conn.execute(f"DELETE FROM runs WHERE id IN ({marks})", chunk).rowcount
                    conn.execute("COMMIT")
                except BaseException:
                    _rollback(conn)
                    raise
                return n
        return self._retry(remove) if ids else 0

    def rename(self, run_id, name):
        """Give a run a name ('' or None removes it); returns False if there is no such run."""
        run_id, name = _as_id(run_id), _name(name)

        def write():
            with closing(self._connect()) as conn:
                return conn.execute("UPDATE runs SET name = ? WHERE id = ?", (name, run_id)).rowcount == 1
        return self._retry(write)

    def count(self):
        def read():
            with closing(self._connect()) as conn:
                return conn.execute("SELECT count(*) FROM runs").fetchone()[0]
        return self._retry(read)

    # --- sweeps (written by compress_engine.playground.sweeps, one point at a time) -------------------

    def sweep_group(self, key, model, data, field, recipe, setting=None):
        """The id of the sweep with this key, made if new (a rerun of the same sweep gets the same group). `setting`: a
        grid's setting of its other fields ({'bits': 4}), named in a new sweep's label (the Compare page's legend):
        'sweep #2: sparsity at bits=4 (clusters=16)', the fields all its points share in brackets."""
        key, model, data = _key(key), _label("model", model, "lenet-300-100"), _label("data", data, "fashion-mnist")
        field = _label("field", field, "sparsity")
        recipe = Recipe.from_json(recipe) if isinstance(recipe, str) else recipe
        if not isinstance(recipe, Recipe):
            raise StoreError(f"recipe must be a compress_engine.Recipe or its JSON text, got {type(recipe).__name__}")

        def get_or_make():
            with closing(self._connect()) as conn:
                self._transaction(conn)
                try:
                    have = conn.execute("SELECT id FROM sweeps WHERE key = ?", (key,)).fetchone()
                    if have is None:
                        cur = conn.execute("INSERT INTO sweeps (key, created, model, data, field, recipe, label) "
                                           "VALUES (?, ?, ?, ?, ?, ?, '')", (key, _now(), model, data, field, recipe.to_json()))
                        shown = {field, *(setting or ())}  # said before the brackets
                        try:  # the other fields: what every point of the sweep shares
                            base = recipe_summary(recipe.replace(**{f: getattr(Recipe(), f) for f in shown}))
                        except CompressError:
                            base = recipe_summary(recipe)
                        # a grid's series: its setting, a default one too ('bits=none')
                        at = f" at {', '.join(field_text(f, v) for f, v in setting.items())}" if setting else ""
                        label = f"sweep #{cur.lastrowid}: {field}{at}" + ("" if base == "dense" else f" ({base})")
                        conn.execute("UPDATE sweeps SET label = ? WHERE id = ?", (label[:MAX_NAME], cur.lastrowid))
                        have = (cur.lastrowid,)
                    conn.execute("COMMIT")
                except BaseException:
                    _rollback(conn)
                    raise
                return have[0]
        return self._retry(get_or_make)

    def stored_points(self, keys, sweep=None):
        """{point key: runs row (the COLUMNS above)} for those of `keys` that are stored. With `sweep` (a
        sweep_group() id), those of them in no sweep (saved from a page's Save run) join it, as save() does: a sweep
        that finds a point already stored still draws it."""
        keys = [_key(k) for k in keys]
        sweep = None if sweep is None else _as_id(sweep)

        def read():
            with closing(self._connect()) as conn:
                conn.row_factory = sqlite3.Row
                out = {}
                for i in range(0, len(keys), DELETE_CHUNK):
                    chunk = keys[i:i + DELETE_CHUNK]
                    if sweep is not None:
                        conn.execute(f"UPDATE runs SET sweep_id = ? WHERE sweep_id IS NULL AND point_key IN "
                                     f"({', '.join('?' * len(chunk))})", (sweep, *chunk))
                    for r in conn.execute(f"SELECT {_SELECT}, runs.point_key FROM {_FROM} WHERE runs.point_key IN "
                                          f"({', '.join('?' * len(chunk))})", chunk):
                        out[r["point_key"]] = {k: r[k] for k in r.keys() if k != "point_key"}
                return out
        return self._retry(read) if keys else {}

    def save_failure(self, sweep, point_key, recipe, error):
        """Record (or replace) a sweep point's error; a point stored since is not marked failed."""
        row = (_key(point_key), _as_id(sweep), _now(), _validate_recipe(recipe).to_json(), str(error)[:MAX_ERROR])

        def write():
            with closing(self._connect()) as conn:
                self._transaction(conn)
                try:
                    if not conn.execute("SELECT 1 FROM runs WHERE point_key = ?", (row[0],)).fetchone():
                        conn.execute("INSERT OR REPLACE INTO sweep_failures (point_key, sweep_id, created, recipe, "
                                     "error) VALUES (?, ?, ?, ?, ?)", row)
                    conn.execute("COMMIT")
                except BaseException:
                    _rollback(conn)
                    raise
        self._retry(write)

    def sweeps(self):
        """Every sweep, newest first: id, created, model, data, field, recipe, label, runs (stored points), failed."""
        def read():
            with closing(self._connect()) as conn:
                conn.row_factory = sqlite3.Row
                return [dict(r) for r in conn.execute(
                    "SELECT id, created, model, data, field, recipe, label, "
                    "(SELECT count(*) FROM runs WHERE runs.sweep_id = sweeps.id) AS runs, "
                    "(SELECT count(*) FROM sweep_failures f WHERE f.sweep_id = sweeps.id) AS failed "
                    "FROM sweeps ORDER BY id DESC")]
        return self._retry(read)

    def sweep_failures(self, sweep=None):
        """Failed points (point_key, sweep_id, created, recipe, error), of one sweep or all, oldest first."""
        where, args = ("WHERE sweep_id = ?", (_as_id(sweep),)) if sweep is not None else ("", ())

        def read():
            with closing(self._connect()) as conn:
                conn.row_factory = sqlite3.Row
                return [dict(r) for r in conn.execute(
                    f"SELECT point_key, sweep_id, created, recipe, error FROM sweep_failures {where} "
                    "ORDER BY created, rowid", args)]
        return self._retry(read)


# --- validation -------------------------------------------------------------------------------

def _as_id(x):
    if isinstance(x, bool) or not isinstance(x, numbers.Integral) or not 1 <= x <= MAX_ID:
        raise StoreError(f"run id {x!r:.80}: must be a whole number from 1 to {MAX_ID}")
    return int(x)


def _now():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _name(name):
    """A run's name: None or up to MAX_NAME printable characters ('' and blanks mean no name)."""
    if name is None or (isinstance(name, str) and not name.strip()):
        return None
    return _label("name", name, "Deep Compression demo")


def _key(key):
    """A sweep or point key: short printable text (sweeps.py makes them as hex digests)."""
    if not isinstance(key, str) or not key or len(key) > MAX_NAME or any(ord(c) < 33 or ord(c) == 127 for c in key):
        raise StoreError(f"key={key!r:.80}: must be 1 to {MAX_NAME} printable characters without spaces")
    return key


def _validate_recipe(recipe):
    if isinstance(recipe, str):
        if len(recipe) > MAX_RECIPE_JSON:
            raise StoreError(f"recipe JSON is {len(recipe):,} characters; a recipe is under {MAX_RECIPE_JSON:,}")
        recipe = Recipe.from_json(recipe)  # RecipeError names the bad field
    if not isinstance(recipe, Recipe):
        raise StoreError(f"recipe must be a compress_engine.Recipe or its JSON text, got {type(recipe).__name__}")
    return recipe


BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")  # reorder the text around them


def _label(what, value, example):
    """A model name / technique label: short, non-empty, printable text, without the controls that make text show
    in another order than it is (with U+202E before it, "evil" shows as "live")."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME \
            or any(ord(c) < 32 or ord(c) == 127 or c in BIDI for c in value):
        raise StoreError(f"{what}={value!r:.80}: must be non-empty text of up to {MAX_NAME} printable "
                         f"characters (no text-direction controls), such as {example!r}")
    return value.strip()


def model_name(model):
    """The name a run of `model` is stored under: a name as given, an nn.Module's class name (ResCNN); anything else
    is refused, saying what to pass (a module's repr, cut short, was shown as the refused value)."""
    if isinstance(model, str):
        return model
    if isinstance(model, torch.nn.Module):
        return type(model).__name__
    raise StoreError(f"model={_shown(model)}: must be the run's model name (text, e.g. 'lenet-300-100') or the "
                     f"nn.Module (stored under its class name)")


def data_name(data):
    """A dataset's name as a run stores it: a name as given, a compress_engine.Dataset's .name; else StoreError."""
    if isinstance(data, str):
        return data
    if isinstance(data, Dataset):
        return data.name
    raise StoreError(f"data={_shown(data)}: must be the dataset's name (text, e.g. 'fashion-mnist') or a "
                     f"compress_engine.Dataset (its .name is stored)")


def _shown(value):
    """A value refused where a name belongs: its repr if short (3, None, b'lenet'), else its type (a module's or a
    Result's repr, cut short, said nothing)."""
    text = repr(value)
    return text if len(text) <= 40 and "\n" not in text else f"a {type(value).__name__}"


def _json_default(o):
    if hasattr(o, "item"):  # numpy / torch scalars
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def _validate(model, recipe, metrics, artifact, technique):
    """Check a run before it is written; returns the runs-table row (column -> value)."""
    model = _label("model", model, "lenet-300-100")
    recipe = _validate_recipe(recipe)
    technique = _label("technique", technique_label(recipe) if technique is None else technique,
                       "prune+cluster")
    if not isinstance(metrics, dict):
        raise StoreError(f"metrics must be a dict (compress(...).metrics), got {type(metrics).__name__}")
    row = {"created": _now(), "model": model,
           "technique": technique, "recipe": recipe.to_json()}
    for key, required in NUMERIC.items():
        value = metrics.get(key)
        if value is None:
            if required:
                raise StoreError(f"metrics is missing {key!r} (a run needs {', '.join(k for k, r in NUMERIC.items() if r)})")
            row[key] = None
            continue
        if hasattr(value, "item") and not isinstance(value, numbers.Number):
            value = value.item()  # 0-d numpy / torch value
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise StoreError(f"metrics[{key!r}]={value!r}: must be a finite number")
        if key in COUNTS:
            if value != int(value) or not 0 <= value <= MAX_COUNT:
                raise StoreError(f"metrics[{key!r}]={value!r:.80}: must be a whole number from 0 to {MAX_COUNT:,}")
            value = int(value)
        else:
            value = float(value)
            if key in FRACTIONS and not 0.0 <= value <= 1.0:
                raise StoreError(f"metrics[{key!r}]={value!r}: must be a fraction between 0 and 1")
            if key == "ratio" and value <= 0:
                raise StoreError(f"metrics['ratio']={value!r}: must be > 0")
        row[key] = value
    if row["nonzero_params"] > row["params"]:
        raise StoreError(f"metrics: nonzero_params={row['nonzero_params']} exceeds params={row['params']}")
    if artifact is not None:
        if not isinstance(artifact, (bytes, bytearray, memoryview)):
            raise StoreError(f"artifact must be bytes (compress(...).artifact) or None, got {type(artifact).__name__}")
        if len(artifact) > MAX_ARTIFACT:
            raise StoreError(f"artifact is {len(artifact):,} bytes; the run store keeps artifacts up to "
                             f"{MAX_ARTIFACT:,} bytes")
        if len(artifact) != row["artifact_bytes"]:
            raise StoreError(f"metrics['artifact_bytes']={row['artifact_bytes']} but the artifact is "
                             f"{len(artifact)} bytes: they must come from the same run")
    try:
        row["metrics"] = json.dumps(metrics, default=_json_default, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise StoreError(f"metrics cannot be stored as JSON: {e}") from None
    except RecursionError:
        raise StoreError("metrics are nested too deeply to store as JSON") from None
    if len(row["metrics"]) > MAX_METRICS_JSON:
        raise StoreError(f"metrics are {len(row['metrics']):,} characters as JSON; the run store keeps up to "
                         f"{MAX_METRICS_JSON:,} (real metrics are a few KB)")
    return row


# --- shaping runs for the Compare page (pure) -------------------------------------------------

def pareto_front(points):
    """Indices of the non-dominated (size, accuracy) points — smaller size and higher accuracy are better —
    ordered by size. A point is dominated if another is no larger and no less accurate, and better in one.
    Of exact duplicates only the first is kept. Points with a missing/NaN coordinate are ignored.
    """
    ok = [(float(s), float(a), i) for i, (s, a) in enumerate(points)
          if s is not None and a is not None and math.isfinite(s) and math.isfinite(a)]
    ok.sort(key=lambda p: (p[0], -p[1], p[2]))
    front, best = [], -math.inf
    for size, acc, i in ok:
        if acc > best:
            front.append(i)
            best = acc
    return front


def pareto_fronts(points, groups):
    """pareto_front of each group's points apart: {group: indices into `points`}, groups sorted, each front ordered
    by size. Runs of models of different dense accuracy are compared each with its own model's (Compare's frontier
    per model)."""
    members = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    points = list(points)
    return {g: [idx[j] for j in pareto_front([points[i] for i in idx])] for g, idx in sorted(members.items())}


FIT = "fit to a size budget"  # the technique Compare groups every Fit under, whatever its budget
_FIT = re.compile(r"fit \d[\d.e+]* KB")  # what technique_label(budget_kb=...) gives: "fit 14 KB", "fit 2.5e+03 KB"


def technique_label(recipe, budget_kb=None):
    """The technique a run is saved under (the run store's technique column), the same whichever page saves it: a
    size-budget Fit's "fit 14 KB" (budget_kb: the budget it was fitted to, in KB of 1,000 bytes), else the recipe's
    techniques joined by "+" ("prune+cluster+huffman"), with "+finetune3" when it fine-tunes 3 epochs (its own
    finetune_epochs). Removing whole units is "structured prune" (README's technique of its own, with other costs:
    fewer FLOPs, no zeros), not "prune" as single weights are. `recipe`: a Recipe or its JSON."""
    if budget_kb is not None:
        return f"fit {budget_kb:g} KB"
    recipe = _validate_recipe(recipe)
    names = ["structured prune" if t == "prune" and recipe.structured else t for t in recipe.techniques()]
    return "+".join(names) + (f"+finetune{recipe.finetune_epochs}" if recipe.finetune_epochs else "")


def file_stem(model, recipe):
    """A downloaded artifact's file name without its extension: the model and technique_label's words joined by "-"
    ("resnet-8-structured-prune", "lenet-5-prune-cluster-huffman-finetune3"), so exports of structured and
    single-weight pruning, or with and without fine-tuning, do not overwrite each other in a downloads folder."""
    return f"{model}-" + "-".join(technique_label(recipe).replace("+", " ").split())


def technique_group(technique):
    """A saved run's technique as Compare's legend groups it: every Fit's (technique_label with a budget) is FIT
    (each budget was a technique and a colour of its own, so the legend grew with every Fit saved); any other stays
    as it is. Labels saved before technique_label had these same forms."""
    return FIT if _FIT.fullmatch(technique or "") else technique


def field_text(name, value):
    """One recipe field as recipe_summary writes it: 'sparsity=90 %' (a percentage, units.pct's way), 'clusters=16';
    a field left off (a grid's bits=None: float32 weights) as 'bits=none', the word the command line's --values takes.
    The training precision reads 'trained in bfloat16': 'precision=bfloat16' was read as the stored weights' format
    (a walkthrough), which is float32 unless bits or clusters say otherwise."""
    if value is None:
        return f"{name}=none"
    if name == "precision":
        return f"trained in {value}"
    if name == "sparsity":
        return f"{name}={100 * value:.4g} %"
    return f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}"


def recipe_summary(recipe_json):
    """The recipe's non-default fields, e.g. 'sparsity=90 %, clusters=16, huffman=True' ('dense' if none); per-layer
    settings last, one group a layer: 'fc1.weight (sparsity=95 %, clusters=8)'.
    Sparsity reads as a percentage, as everywhere on the dashboard (units.pct); the recipe keeps the fraction.

    A recipe that is not one (a row damaged by another program) raises RecipeError/StoreError."""
    if isinstance(recipe_json, str):
        r = Recipe.from_json(recipe_json)
    elif isinstance(recipe_json, Recipe):
        r = recipe_json
    else:
        raise StoreError(f"a recipe is a Recipe or its JSON text, got {type(recipe_json).__name__}")
    changes = r.changes()
    layers = changes.pop("layers", None) or {}  # per-layer settings (a size budget's fit): one group per layer
    parts = [field_text(k, v) for k, v in changes.items()]
    parts += [f"{name} ({', '.join(field_text(k, v) for k, v in fields.items() if v is not None) or 'dense'})"
              for name, fields in layers.items()]
    return ", ".join(parts) or "dense"


def sweep_summary(recipe_json, sweep, field):
    """A sweep point's recipe, the value it was swept to first: 'sparsity=90 % · sweep #3 · clusters=16, huffman=True'
    (the sweep's points differ there; Compare's table cuts the rest at 1,280 px). `sweep`: the sweep's label, of which
    the part before a ":" is shown. A recipe that is not one reads "unreadable recipe: ..."."""
    label = str(sweep).split(":")[0]
    try:
        recipe = Recipe.from_json(recipe_json)
        rest = recipe_summary(recipe.replace(**{field: getattr(Recipe(), field)}))
        return f"{field_text(field, getattr(recipe, field))} · {label} · {rest}"
    except CompressError as e:  # a damaged row
        return f"{label} · unreadable recipe: {str(e)[:120]}"
    except (AttributeError, TypeError):  # a field this engine no longer has
        try:
            return f"{label} · {recipe_summary(recipe_json)}"
        except CompressError as e:
            return f"{label} · unreadable recipe: {str(e)[:120]}"


DENSE = "dense float32"  # the recipe column bench/ writes for a model's unchanged weights


def reference_points(folder):
    """Rows of every CSV in `folder` that has numeric artifact_bytes and accuracy columns (e.g. bench/results), and
    those of bench/beyond.py's table of each model (beyond_<model>.csv: bytes, accuracy_% and method columns), as
    source BEYOND.

    Returns dicts: source (file name, or BEYOND), model, label (its recipe or method column), artifact_bytes,
    accuracy (a fraction), ratio.
    A DENSE row (the model's unchanged weights) is put at the dense float32 bytes every card, caption and ratio
    measures against (README, "One dense size"): its artifact_bytes are the unchanged weights' artifact, header
    included (LeNet-5: 1,724.701 KB where the cards say 1,724.3 KB); its ratio is dense float32 bytes over those,
    so the float32 bytes are artifact_bytes x ratio.
    Missing folder, unreadable files and other CSVs are skipped silently: these points are optional context.
    Read once per state of the folder: while no CSV in it is added, removed or changed (name, size, mtime), the rows
    read before are given again (as new dicts) without reading its files (bench/results: 232 of them, 7 ms on every
    Pipeline slider press, a quarter of its page run).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    paths = sorted(folder.glob("*.csv"))
    state = []
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            continue
        state.append((path.name, st.st_size, st.st_mtime_ns))
    key = str(folder.resolve())
    with _REFERENCES_LOCK:
        known = _REFERENCES.get(key)
    if known is None or known[0] != state:
        known = (state, _read_reference_points(paths))
        with _REFERENCES_LOCK:
            _REFERENCES[key] = known
    return [dict(row) for row in known[1]]


_REFERENCES = {}  # folder -> (its CSVs' names, sizes and mtimes, the rows read from them): reference_points
_REFERENCES_LOCK = threading.Lock()


def _read_reference_points(paths):
    """reference_points' rows of the CSV files `paths`."""
    rows = []
    for path in paths:
        try:
            with open(path, newline="", encoding="utf-8") as f:
                for rec in csv.DictReader(f):
                    source, label = path.name, rec.get("recipe") or ""
                    try:
                        if "artifact_bytes" in rec:
                            size, acc = float(rec["artifact_bytes"]), float(rec["accuracy"])
                        elif path.name == f"beyond_{rec.get('model')}.csv":
                            size, acc = float(rec["bytes"]), float(rec["accuracy_%"]) / 100
                            source, label = BEYOND, rec.get("method") or ""
                        else:
                            continue
                    except (KeyError, TypeError, ValueError):  # a paper's row (a ratio, no bytes), a broken one
                        continue
                    if not (math.isfinite(size) and math.isfinite(acc)) or size <= 0:
                        continue
                    ratio = rec.get("ratio")
                    try:
                        ratio = float(ratio) if ratio not in (None, "") else None
                    except ValueError:
                        ratio = None
                    if label == DENSE and ratio:
                        size = round(size * ratio)
                    rows.append({"source": source, "model": rec.get("model") or "", "label": label,
                                 "artifact_bytes": size, "accuracy": acc, "ratio": ratio})
        except (OSError, UnicodeDecodeError, csv.Error):
            continue
    return rows
