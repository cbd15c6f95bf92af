"""Sweeps: compress() at every value of one recipe field, in this process or on Ray, saved as points finish.

    from compress_engine.playground.sweeps import sweep
    rows = sweep("lenet-300-100", ce.Recipe(clusters=16), "fashion-mnist", "sparsity", [0.5, 0.8, 0.9])
    rows = sweep(..., workers=2)            # a local Ray runtime: pip install -e '.[ray]' (install_hint())
    rows = sweep(..., ray_address="auto")   # on the Ray cluster this machine is part of (`ray start ...`)
    rows = sweep(..., store=ce.Store())     # each point saved as it finishes; a rerun skips the stored points
    rows = sweep("lenet-300-100", ce.Recipe(), "fashion-mnist", {"sparsity": [0.5, 0.9], "bits": [4, 8]})  # a grid

`model` is a sample model's name or any nn.Module; `data` a name load_dataset() takes or a Dataset. The rows
come back in the order of `values` and are compress_engine.sweep()'s: the value, params, nonzero_params,
artifact_bytes, ratio, accuracy, agreement (and r2, rmse for regression targets). A point that failed is
{field: value, "error": "Type: message"}. A grid (a dict of fields and their values) is one pool of points, every
combination of the values (itertools.product, the last field varying fastest); its rows carry each field's value.

Why it is built this way:
- The same rows, bit for bit, from every backend. A point is one compress() (seeded by its recipe) on a
  fixed number of torch threads, `threads` (default 1), in this process and in every Ray worker alike, since
  float sums may change with the thread count. The thread count says how a point is computed, not what it is:
  it is not part of a point's key, so a rerun with other `threads` takes the points stored before. Speed comes
  from running points side by side; Ray gives each point `threads` CPUs, so the points running on a
  machine never ask for more threads than it has cores.
- Workers get the model and data the cheap way: by name (loaded once per worker process) when they have
  one, else put once into Ray's object store (a user's own module class travels by value) and fetched once
  per worker process.
- Only this process writes the run store, one point as it arrives, under a key of model fingerprint +
  recipe JSON + data name and fingerprint (its class names and tensors, so a data file that changed under the
  same name is new data) that the store keeps unique: a point retried or run again is never written twice,
  and a rerun skips the keys already stored.
- Failures: an exception inside compress() is the point's error (recorded, not retried: a seeded point
  fails the same way again). A worker process that dies, or a node that is lost, makes Ray run the point
  again (max_retries=1); a second loss is recorded as the point's error. The sweep goes on either way.
"""

import builtins
import contextlib
import hashlib
import itertools
import json
import logging
import math
import os
import re
import signal
import site
import socket
import sys
import sysconfig
import threading
import time
import types
import warnings
from collections import OrderedDict
from pathlib import Path

import torch

from ..core.data import Dataset, feed_digest
from ..core.errors import CompressError, DatasetError, ModelError, RecipeError
from ..core.model import REMOVE_ATTRIBUTE, check_model, plain_module, what_fails
from ..core.pipeline import SWEEP_ROW, check_recipe, check_targets, compress, sweep_row
from ..core.recipe import Recipe
from .sources import load_dataset
from .store import Store, model_name
from .zoo import SAMPLES, load_model

MAX_RETRIES = 1        # Ray re-runs a point whose worker died or whose node was lost this many times
MAX_ERROR = 500        # characters of an error kept in a row
MAX_POINTS = 10_000    # values of one sweep: each is a compress() run (the command line's --values takes 100)
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder that holds compress_engine/
GRID_HINT = ("field_name is the name of one recipe field, e.g. 'sparsity' (its values then in `values`), or for a "
             "grid a dict of fields and their values, e.g. sweep(model, recipe, data, {{'sparsity': [0.5, 0.9], "
             "'bits': [4, 8]}}); got {got}")
CONNECT_DEADLINE = 60  # s: the longest joining a cluster at --ray-address may take before the sweep stops (ray.init
#                        retried a port where another service listens, an HTTP server say, for many minutes)


def install_hint():
    """How to install Ray here: the package is not on PyPI, so from the checkout (`pip install -e '.[ray]'`), or the
    exact Ray that requirements.txt pins (CI's); outside a checkout, pip install ray."""
    req = Path(_PACKAGE_ROOT, "requirements.txt")
    pins = [line.split("#")[0].strip() for line in req.read_text().splitlines()] if req.is_file() else []
    pin = next((p for p in pins if p.startswith("ray==")), None)
    if pin is None:
        return "pip install ray"
    return f"pip install -e '.[ray]' in {_PACKAGE_ROOT} (or pip install {pin})"


# --- Ray, only when asked for ----------------------------------------------------------------------

def need_ray(what="workers"):
    """The ray module, or a CompressError saying how to install it (`what` names the option that asked)."""
    try:
        import ray
    except ImportError:
        raise CompressError(f"{what} runs the sweep on Ray, which is not installed in this environment: "
                            f"{install_hint()}") from None
    return ray


def start_local(cpus, ray=None):
    """Start a local Ray runtime of `cpus` CPUs on loopback, without the dashboard. Workers find this
    checkout's compress_engine even when it is not pip-installed. Returns the ray module."""
    ray = ray or need_ray()
    path = os.pathsep.join(p for p in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if p)
    log = logging.getLogger(_AUTH_LOGGER)
    log.addFilter(_quiet_auth_on)
    try:
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False, configure_logging=False,
                 runtime_env={"env_vars": {"PYTHONPATH": path}})  # "local": a new runtime, never one found on disk
    finally:
        log.removeFilter(_quiet_auth_on)
    return ray


_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"


def _quiet_auth_on(record):
    """Drop Ray's notice that the local runtime it starts uses token authentication ("... Set RAY_AUTH_MODE=disabled
    to opt out"): said at every --workers run, it invited users to turn the runtime's security off. Auth stays on,
    and Ray's warning that a runtime runs without it still shows."""
    return not record.getMessage().startswith("Token authentication is enabled for this Ray cluster")


def _connect(ray, workers, address, threads):
    """Use the runtime this process already has, else join `address` (within CONNECT_DEADLINE s), else start a local
    one; an `address` other than that runtime's is refused. Refuses `threads` no node has CPUs for (a point's task
    would wait for ever). Returns True if this call started or joined it (so the sweep disconnects at the end)."""
    owned = False
    if ray.is_initialized():
        if address is not None:  # ray.init is not called again: the points would run where this process already is
            _check_same_cluster(ray, address)
    else:
        if address is not None:
            check_address(address)
            try:
                _reachable(address)
                _init_within(ray, address, CONNECT_DEADLINE)
            except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as e:
                # RayError: AuthenticationError, RAY_AUTH_MODE=token with no token here, was a traceback
                raise CompressError(connect_error(address, e)) from None
        else:
            cores = check_local_threads(threads)  # refused before the runtime starts
            try:
                with _interrupt_after():
                    start_local(min((workers or 1) * threads, cores), ray)  # never more threads than cores
            except BaseException:  # Ctrl-C (after ray.init), or ray.init failing: leave no runtime behind
                ray.shutdown()
                raise
        owned = True
    try:
        largest = int(max((n.get("Resources", {}).get("CPU", 0) for n in ray.nodes() if n.get("Alive")), default=0))
        if threads > largest:
            where = "this Ray runtime" if address is None else f"the Ray cluster at {address!r:.200}"
            raise CompressError(too_few_cpus(threads, largest, f"the largest node of {where}"))
    except BaseException:
        if owned:
            ray.shutdown()
        raise
    return owned


def _check_same_cluster(ray, address):
    """Refuse `address` when this process is already connected (an earlier ray.init()) to another Ray cluster: the
    sweep kept that runtime and ran every point there, on this machine, while the caller had asked for the cluster at
    `address` (even an address where nothing listens gave rows). "auto" and ray:// (Ray Client) addresses are left
    as they were: no HOST:PORT of this runtime to compare them with."""
    host, sep, port = address.rpartition(":")
    if address == "auto" or address.startswith("ray://") or not sep or not port.isdigit():
        return
    try:
        have = ray.get_runtime_context().gcs_address
    except Exception:  # not public in every Ray: nothing to compare with
        return
    if not isinstance(have, str) or _same_host_port(have, address):
        return
    raise CompressError(f"ray_address={address!r:.200} is not the Ray cluster this process is already connected to "
                        f"({have}, by an earlier ray.init()), and the sweep runs where the process is: call "
                        f"ray.shutdown() first to run it at {address:.200}, or leave ray_address out to run it on the "
                        "runtime this process has")


def _same_host_port(a, b):
    """Whether HOST:PORT `a` and `b` name one server: the same port, and hosts that resolve to the same address (or
    one of them is this machine's loopback, as a head started here is reached by 127.0.0.1 or its own IP)."""
    (ha, _, pa), (hb, _, pb) = a.rpartition(":"), b.rpartition(":")
    if pa != pb:
        return False

    def ip(host):
        try:
            return socket.gethostbyname(host.strip("[]"))
        except OSError:
            return host
    ia, ib = ip(ha), ip(hb)
    return ia == ib or ia.startswith("127.") or ib.startswith("127.")


@contextlib.contextmanager
def _interrupt_after():
    """Hold back a first Ctrl-C until the block ends, then raise it (KeyboardInterrupt): ray.init interrupted halfway
    left its dashboard and runtime-env agents running for ever (orphans: the node it was starting was not yet Ray's to
    shut down). A second Ctrl-C interrupts at once. Only in the main thread, with Python's own Ctrl-C handler."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    pressed = []

    def hold(signum, frame):
        pressed.append(signum)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C: at once

    signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if pressed:
        raise KeyboardInterrupt


def check_local_threads(threads):
    """This machine's core count, or the refusal of `threads` (--threads) more than it has: a local Ray runtime gives
    each point `threads` CPUs of this machine. Known before anything is loaded, so the command line checks it first."""
    cores = os.cpu_count() or 1
    if threads > cores:
        raise CompressError(too_few_cpus(threads, cores, "this machine"))
    return cores


def too_few_cpus(threads, cpus, where):
    """The refusal of --threads more than one node's CPUs: Ray gives each point `threads` CPUs of one node, and waits
    for ever for a node that has them."""
    fix = f"give --threads {cpus} or fewer" if cpus >= 1 else "add a node with CPUs (ray start --num-cpus)"
    return f"--threads {threads} needs {threads} CPUs on one node (a point runs on one node); {where} has {cpus}: {fix}"


_GIVEN_UP = []  # of each ray.init thread _init_within gave up on (the deadline, or Ctrl-C), the Event set as it ends


def join_given_up():
    """Whether a ray.init this process gave up on is still trying in its thread. Python's exit then tears the
    interpreter down under Ray's C++ (std::bad_alloc, status -6, about 1 run in 8 under load): the command line
    leaves at once instead (cli.leave_past_ray_join). A thread's own end, not is_alive(), which is False too for a
    thread whose start a Ctrl-C interrupted, before it runs."""
    return any(not ended.is_set() for ended in _GIVEN_UP)


def _init_within(ray, address, deadline):
    """ray.init(address) that gives up after `deadline` s. It runs in a helper thread (ray.init cannot be stopped from
    outside), so Ctrl-C still stops the wait; a call given up on may go on trying in that thread until Ray's own
    retries end, but the sweep does not wait for it, and if it joins after all it leaves at once (ray.shutdown):
    a later sweep of this process must not find a runtime nobody owns."""
    out, lock, gave_up, ended = [], threading.Lock(), [], threading.Event()

    def quiet(record):  # Ray's notice that a thread other than the main one has no SIGTERM handler to set
        return "SIGTERM handler" not in record.getMessage()

    def join():
        log, auth = logging.getLogger("ray._private.worker"), logging.getLogger(_AUTH_LOGGER)
        log.addFilter(quiet)
        auth.addFilter(_quiet_auth_on)  # "auto" finding this machine's token says it too, as a local runtime does
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
            result = None
        except BaseException as e:  # handed to the caller's thread
            result = e
        finally:
            log.removeFilter(quiet)
            auth.removeFilter(_quiet_auth_on)
        with lock:
            late = bool(gave_up)
            out.append(result)
        try:
            if late and result is None:
                ray.shutdown()
        finally:
            ended.set()

    thread = threading.Thread(target=join, name="ray.init", daemon=True)
    try:
        thread.start()  # (a Ctrl-C can come while start() waits for the thread to run: it runs all the same)
        thread.join(deadline)  # a timed join: Ctrl-C interrupts it
    finally:
        with lock:
            if not out:  # given up (the deadline, or Ctrl-C): a join that comes later leaves at once
                gave_up.append(True)
                _GIVEN_UP.append(ended)
    if gave_up:
        raise ConnectionError(f"no Ray cluster answered there within {deadline:g} s (another service may be "
                              "listening on that port)")
    if out[0] is not None:
        raise out[0]


# Ray's words for a cluster that wants a token this process lacks (not "token" alone: a JSON parser's "unexpected
# token" is no authentication problem)
_AUTH_SIGNS = ("Unauthenticated", "InvalidAuthToken", "AuthenticationError", "auth_token", "authentication token")


def connect_error(address, e):
    """What to tell a user whose --ray-address could not be joined: ray.init's error (`e`, with the errors it was
    raised from, where Ray puts the real reason) and what to do. A cluster that wants a token says so; Ray's own
    advice names its flags, not this command's."""
    chain, seen = [], set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        chain.append(str(e))
        e = e.__cause__ or e.__context__
    text = " ".join(chain)
    where = f"cannot reach the Ray cluster at {address!r:.200}"
    if any(sign.lower() in text.lower() for sign in _AUTH_SIGNS):
        token = Path.home() / ".ray" / "auth_token"  # where `ray start` and ray.init keep it
        if os.environ.get("RAY_AUTH_MODE", "").lower() != "token" and token.is_file():
            # Ray sends the token it has to an address given explicitly only in token mode ("auto" turns that on
            # itself): telling the user to copy a token this machine has sent them the wrong way
            return (f"{where}: it uses token authentication, and Ray sends this machine's token ({token}) to an "
                    "address given explicitly only when RAY_AUTH_MODE=token is set: set it (export "
                    "RAY_AUTH_MODE=token) and run the sweep again; if that token is not the head's, copy the head's "
                    "~/.ray/auth_token over it (--ray-address auto, on a machine of the cluster, needs neither)")
        return (f"{where}: it uses token authentication, and this process has no valid token: copy the head's "
                "~/.ray/auth_token to the same path here (or set RAY_AUTH_TOKEN) and set RAY_AUTH_MODE=token "
                "before the sweep, as `ray start` on the cluster's machines had it")
    first = _first_line(chain[0]) if chain else ""
    # Ray's advice ("... by setting `--address` flag or `RAY_ADDRESS` environment variable") names its own flag
    sentences = [x for x in re.split(r"(?<=\.)\s+", first) if "--address" not in x and "RAY_ADDRESS" not in x]
    reason = " ".join(sentences).rstrip(" .;:")
    if "Could not find any running Ray instance" in first:
        return (f"{where}: no Ray instance runs on this machine (--ray-address auto joins one started here): start "
                "one with `ray start --head`, or give its head's HOST:PORT with --ray-address")
    return (f"{where}: {reason}; start it with `ray start --head` and run the sweep on one of its machines "
            "(--ray-address auto)")


def check_address(address):
    """Refuse an address with a scheme Ray cannot join (http://HOST:8265, the dashboard's, which Ray Jobs take): it was
    read as a host "http", and the sweep said "nothing answers at http://HOST:8265 ... (Name or service not known)"."""
    if not isinstance(address, str):
        raise CompressError(f"ray_address must be text such as 'auto' or 'HOST:6379', got {type(address).__name__}")
    scheme, sep, _ = address.partition("://")
    if sep and scheme.lower() != "ray":
        where = " (the dashboard's, which `ray job submit` takes)" if scheme.lower() in ("http", "https") else ""
        raise CompressError(f"--ray-address {address!r:.200} is not an address a sweep can join{where}: give the "
                            "head's HOST:PORT (the port `ray start --head` printed, 6379 by default), 'auto' on a "
                            "machine of the cluster, or ray://HOST:10001 for Ray Client")


def _reachable(address, timeout=5.0):
    """Refuse a HOST:PORT (or ray://HOST:PORT) no server answers within `timeout` s: ray.init retries such an
    address for ever (a typo'd port hung a sweep for ten minutes). "auto" and other forms are left to Ray."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise ConnectionError(f"nothing answers at {host}:{port} within {timeout:g} s ({e.strerror or e})") from None


_TASK = None


def _task(ray):
    global _TASK
    if _TASK is None:
        _TASK = ray.remote(_attempt)
    return _TASK


# --- one point: the same function in this process and in a Ray worker -------------------------------

def run_point(model, data, recipe, threads=1):
    """compress(model, recipe, data) on `threads` torch threads; returns (metrics, artifact)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        res = compress(model, recipe, data)
    finally:
        torch.set_num_threads(before)
    return res.metrics, res.artifact


_CACHE = OrderedDict()  # in a worker process: models and datasets it was given, so each is loaded once


def _resolve(src):
    """('value', obj) -> obj; ('model'|'data', name) -> loaded by name; ('ref', [ObjectRef]) -> ray.get."""
    kind, what = src
    if kind == "value":
        return what
    key = (kind, what[0].hex() if kind == "ref" else what)
    if key not in _CACHE:
        if kind == "model":
            _CACHE[key] = load_model(what)
        elif kind == "data":
            _CACHE[key] = load_dataset(what)
        else:
            import ray
            _CACHE[key] = ray.get(what[0])
        while len(_CACHE) > 4:
            _CACHE.popitem(last=False)
    _CACHE.move_to_end(key)
    return _CACHE[key]


def _attempt(model_src, data_src, recipe_json, threads, record=False):
    """One point: {"metrics", "artifact"}, or {"error"} if compress() (or loading) raised, with the "seconds" it took
    (compress() alone: not loading the model and data, which a worker does before its first point only).
    Never raises (but on KeyboardInterrupt). record=True (a Ray worker, whose own warnings reach no one): also the
    point's "warnings", one of each, for the sweep to warn again (_warn_again); in this process they show as they
    come, under the caller's filters."""
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) if record else contextlib.nullcontext() as caught:
        if record:
            warnings.simplefilter("always")
        try:
            model, data = _resolve(model_src), _resolve(data_src)
            start = time.perf_counter()  # a worker's first point loaded them: its time is the point's alone
            metrics, artifact = run_point(model, data, Recipe.from_json(recipe_json), threads)
            out = {"metrics": metrics, "artifact": artifact}
        except Exception as e:
            out = {"error": f"{type(e).__name__}: {_first_line(e)}"}
    out["seconds"] = time.perf_counter() - start
    if record:
        out["warnings"] = _recorded(caught)
    return out


def _recorded(caught):
    """Warnings caught (catch_warnings(record=True)) as _warn_again takes them: one of each (category, message, where),
    since a model's forward may warn at every batch."""
    modules = {getattr(m, "__file__", None): name for name, m in list(sys.modules.items())}
    said = {}
    for w in caught:
        module = modules.get(w.filename) or Path(w.filename).stem  # a file sent by value is no module there
        said.setdefault((w.category.__name__, str(w.message), w.filename, w.lineno, module))
    return list(said)


def _warn_again(said, registry):
    """The warnings a Ray worker recorded for a point (_attempt), warned here as raised there: the same message, line
    and module (so the caller's filters apply, and "default" shows each once a sweep: `registry`); a builtin
    category as itself, any other as UserWarning (its class may exist only on the worker)."""
    for category, message, filename, lineno, module in said or ():
        kind = getattr(builtins, category, None)
        kind = kind if isinstance(kind, type) and issubclass(kind, Warning) else UserWarning
        warnings.warn_explicit(message, kind, filename, lineno, module=module, registry=registry)


class Interrupted(KeyboardInterrupt):
    """A sweep stopped by Ctrl-C (KeyboardInterrupt): `rows` are the points finished, in the order of the values
    (stored ones too), of `total`."""

    def __init__(self, rows, total):
        super().__init__(f"interrupted: {len(rows)} of {total} points finished")
        self.rows, self.total = rows, total


def _first_line(e):
    return " ".join((str(e).strip().splitlines() or [""])[0].split())[:MAX_ERROR]


# --- what a point is: keys and fingerprints ---------------------------------------------------------

def model_fingerprint(model):
    """sha256 of a module's class name and state dict (names, dtypes, shapes, bytes): same weights, same id."""
    h = hashlib.sha256(type(model).__qualname__.encode())
    for name, t in model.state_dict().items():
        h.update(name.encode())
        feed_digest(h, t)
    return h.hexdigest()[:16]


def data_fingerprint(data):
    """Dataset.fingerprint(): name, class names and every tensor (computed once per Dataset)."""
    return data.fingerprint()


def model_id(name, fingerprint, student_key=None):
    """A point's model id: the model's `name` and its weights' model_fingerprint(), then a distilled student's key
    (its module's fingerprint, or what names it) after a "+". A sweep's points and the dashboard's Save both key
    with it, so the same run from either is stored once."""
    return f"{name}#{fingerprint}" + ("" if student_key is None else f"+{student_key}")


def data_id(name, data):
    """A sweep point's data id: `name` (the source name, or the Dataset's) and the content's fingerprint. A name
    alone served a file's old results after the file changed ('npz:/data.npz' rewritten, a relative path run
    from another folder, another COMPRESS_DATA_DIR)."""
    return f"{name}#{data_fingerprint(data)}"


def point_key(model_id, recipe, data_id):
    """The run store's key of one point: model id (model_id()) + recipe JSON + data id (the data's name and
    fingerprint, data_id(), for a sweep's points and the dashboard's Save alike)."""
    return hashlib.sha256(json.dumps([model_id, recipe.to_json(), data_id]).encode()).hexdigest()


def _count(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4096:
        raise CompressError(f"{name}={value!r:.50}: must be a whole number from 1 to 4096")
    return value


def _compact(data):
    """A Dataset whose tensors own just their elements (a subset's views would pickle the whole storage)."""
    def own(t):
        return t.clone() if t.untyped_storage().nbytes() > t.numel() * t.element_size() else t
    return Dataset(data.name, data.classes, data.source, {s: own(data.x(s)) for s in ("train", "test")},
                   {s: own(data.y(s)) for s in ("train", "test")}, data.inputs_fix)


def _installed_roots():
    """The folders installed packages are imported from: the interpreter's own, and any site- or dist-packages on
    the path (torch reached through PYTHONPATH or a .pth file, Debian's python3-torch, `pip install --user`)."""
    roots = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots |= {*getattr(site, "getsitepackages", list)(), site.getusersitepackages()}
    roots |= {p for p in sys.path if Path(p).name in ("site-packages", "dist-packages")}
    return roots


def _user_code_by_value(ray, model):
    """The user's own code (not importable on the workers) travels by value with the module: the files of the model's
    classes, and the user's modules those need, which a worker could not import either (a forward calling a helper
    function of a sibling file failed every point with "No module named 'helpers'"): every loaded module in the folder
    of one of those files or below it, and every module their globals name (`from helpers import act`), over and
    over. Installed packages do not travel: a worker given its own copy of torch.nn's classes saw no nn.Linear in
    the model. Returns the names registered."""
    roots = [Path(r).resolve() for r in _installed_roots()]
    paths = {}  # module name -> its file if it is the user's own code, else None

    def own(name, mod):
        if name not in paths:
            file = getattr(mod, "__file__", None)
            path = Path(file).resolve() if isinstance(file, str) and name != "__main__" else None
            if name.split(".")[0] == "compress_engine" or (path and any(path.is_relative_to(r) for r in roots)):
                path = None
            paths[name] = path
        return paths[name]

    seeds = {type(m).__module__ for m in model.modules()}
    main = sys.modules.get("__main__") if "__main__" in seeds else None  # cloudpickle sends __main__'s by value
    folders = {Path(main.__file__).resolve().parent} if isinstance(getattr(main, "__file__", None), str) else set()
    named = set(seeds) | (_names_in(main) if main is not None else set())
    sent = []
    while True:
        new = [(n, m) for n, m in list(sys.modules.items()) if n not in sent and m is not None and own(n, m)
               and (n in named or any(own(n, m).is_relative_to(f) for f in folders))]
        if not new:
            return sent
        for name, mod in new:
            ray.cloudpickle.register_pickle_by_value(mod)
            sent.append(name)
            folders.add(own(name, mod).parent)
            named |= _names_in(mod)


def _names_in(mod):
    """The modules a module's globals come from: imported modules, and the modules of its functions and classes
    (not its __loader__ and other dunders, which are Python's machinery)."""
    out = set()
    for k, v in list(vars(mod).items()):
        if k.startswith("__"):
            continue
        try:
            name = v.__name__ if isinstance(v, types.ModuleType) else getattr(v, "__module__", None)
        except Exception:  # an object whose attributes run code (a lazy proxy): not a module's
            continue
        if isinstance(name, str):
            out.add(name)
    return out


# --- the sweep ------------------------------------------------------------------------------------------

def sweep(model, recipe, data, field_name, values=None, *, workers=None, ray_address=None, threads=1, store=None,
          model_name=None, progress=None, on_point=None, on_metrics=None):
    """compress() at each value of recipe field `field_name`; one row per value, in the order of `values`.

    A grid: `field_name` a dict of fields and their values, {"sparsity": [0.5, 0.9], "bits": [4, 8]}, and no
    `values`: compress() at every combination (itertools.product, in the dict's order, the last field varying
    fastest), all of them one pool of points (on Ray, as many running at once as for one field). Each row carries
    every field's value; a point's row is the one a sweep of that point alone gives. At most MAX_POINTS points in
    all. In the store, one sweep a setting of the other fields, the first field its x (the Compare page draws each
    as its own series).

    workers=N runs N points at a time on a local Ray runtime (started here with min(N * threads, cores)
    CPUs, or the one this process already has); ray_address ("auto", "HOST:6379") runs them on an existing
    Ray cluster (workers then caps how many run at once; default: as many as the cluster's CPUs allow).
    threads: torch threads of each point, in every backend (see the module docstring). store: a Store (or
    its path) that gets each point as it finishes; points already in it are not run again. model_name: the
    model's name in the store (default: the sample's name or the module's class). progress(done, total,
    None, accuracy): return False to stop (finished points are kept; unfinished ones are left out of the
    rows). on_point(done, total, row, seconds): each row as it is known (seconds None for a point found in the
    store), in this process. on_metrics(value, metrics): compress()'s whole metrics of each point run (not of one found
    in the store: its row is all there is), after its on_point; a grid's `value` is the point's {field: value}.
    Ctrl-C raises Interrupted, a KeyboardInterrupt holding the rows finished so far.
    Bad input (a value, more than MAX_POINTS of them, a field_name that is not one field's name, ray missing, a model
    that does not take the data or, on Ray, cannot be pickled, a recipe value compress() refuses for this model and
    data before it runs, such as `layers` naming no layer of the model, a store for regression targets) raises
    CompressError before any point runs (before Ray starts, and before the store is written): check_recipe(),
    compress()'s own up-front check, on every point (structured pruning of a graph torch.fx cannot trace, or of a
    layer it cannot shrink, included). What compress() finds only while it works (training that fails, say) is that
    point's error.
    """
    fields, points, recipes = plan(recipe, field_name, values)
    grid = isinstance(field_name, dict)
    field_name = fields[0]  # the x of the store's sweeps
    total = len(points)
    pts = [dict(zip(fields, p)) for p in points]  # each point's {field: value}
    names = [", ".join(f"{f}={v!r:.100}" for f, v in pt.items()) for pt in pts]
    rows = [None] * total  # the points finished (stored ones too), whenever Ctrl-C comes
    try:  # Ctrl-C from here on (loading the data or Ray, the checks, the points) keeps the finished points
        threads = _count("threads", threads)
        if workers is not None:
            workers = _count("workers", workers)
        on_ray = workers is not None or ray_address is not None
        if ray_address is not None:
            check_address(ray_address)
        ray = need_ray("--ray-address" if workers is None else "--workers") if on_ray else None

        model_obj, model_id, model_name = _the_model(model, model_name)
        data_obj, data_key, data_name = _the_data(data)
        said = {}  # the warnings registry of this sweep's points on Ray (_warn_again)
        if on_ray:  # the check's warnings (it runs the model) share that registry: a model's own shows once a sweep,
            with warnings.catch_warnings(record=True) as caught:  # not here and again from a worker
                warnings.simplefilter("always")
                _refuse_before_any_point(model_obj, data_obj, names, recipes, store)
            _warn_again(_recorded(caught), said)
            if not isinstance(model, str):  # the user's module goes to the workers pickled: refused here if it can't
                _sendable(ray, model_obj)
        else:
            _refuse_before_any_point(model_obj, data_obj, names, recipes, store)
        keys = [point_key(model_id, r, data_key) for r in recipes]
        if store is not None and not isinstance(store, Store):
            store = Store(store)
        series = [p[1:] for p in points]  # a point's setting of the other fields: its sweep in the store
        members = {}  # setting -> its points' indexes
        for i, s in enumerate(series):
            members.setdefault(s, []).append(i)
        groups = {}  # setting -> the sweep's id in the store, made when it gets its first point: a sweep stopped
        #              before any point finished left an empty group on the Compare page

        def the_group(i):
            s = series[i]
            if s not in groups:
                others = dict(zip(fields[1:], s))
                try:
                    base = _base(recipe.replace(**others), field_name)
                except RecipeError:  # the setting alone does not go with the recipe: its first point's, the x reset
                    base = _base(recipes[members[s][0]], field_name)
                setting = others if grid else None
                groups[s] = store.sweep_group(point_key(model_id, base, data_key) + ":" + field_name, model_name,
                                              data_name, field_name, base, setting=setting)
            return groups[s]

        stored = store.stored_points(keys) if store is not None else {}
        for s, each in members.items():  # points stored before (a rerun, a page's Save) join their group
            if any(keys[j] in stored for j in each):
                stored.update(store.stored_points([keys[j] for j in each], sweep=the_group(each[0])))
        first = {}  # key -> first index with it (a value given twice runs once)
        for i, key in enumerate(keys):
            if key in stored:
                rows[i] = {**pts[i], **{k: stored[key][k] for k in SWEEP_ROW}}
            else:
                first.setdefault(key, i)
        done = [0]  # points finished so far (a list: finish() counts on)
        for row in rows:
            if row is not None:
                done[0] += 1
                if on_point is not None:
                    on_point(done[0], total, row, None)

        def finish(i, out):
            """Record point i's outcome (row, store) and report progress; False means stop."""
            if "error" in out:
                row = {**pts[i], "error": out["error"]}
                if store is not None:
                    store.save_failure(the_group(i), keys[i], recipes[i], out["error"])
            else:
                m = out["metrics"]
                row = {**pts[i], **sweep_row(field_name, points[i][0], m)}
                if store is not None:
                    store.save(model_name, recipes[i], m, out["artifact"], sweep=the_group(i), data=data_name,
                               point_key=keys[i])
            for j, key in enumerate(keys):
                if key == keys[i]:
                    rows[j] = dict(row, **pts[j])
                    done[0] += 1
                    if on_point is not None:
                        on_point(done[0], total, rows[j], out.get("seconds"))
            if on_metrics is not None and "error" not in out:
                on_metrics(pts[i] if grid else points[i][0], out["metrics"])
            _warn_again(out.get("warnings"), said)  # after the point is kept: an "error" filter stops only the rest
            if progress is not None:
                return progress(done[0], total, None, row.get("accuracy"))

        todo = sorted(first.values())
        if on_ray and todo:
            _on_ray(ray, todo, recipes, model, model_obj, data, data_obj, finish, workers, ray_address, threads)
        else:
            for i in todo:
                out = _attempt(("value", model_obj), ("value", data_obj), recipes[i].to_json(), threads)
                if finish(i, out) is False:
                    break
        return [r for r in rows if r is not None]
    except KeyboardInterrupt:  # Ctrl-C: the finished points are not lost with the rest
        raise Interrupted([r for r in rows if r is not None], total) from None


def plan(recipe, field_name, values=None):
    """A sweep's points, checked before any work: (fields, points, recipes), `points` tuples of the fields' values
    (every combination for a grid, a dict of fields and their values), `recipes` each point's recipe. RecipeError
    names what is wrong: a field that is not one, values that are not a list, an empty one, a value or a combination
    the recipe refuses, more than MAX_POINTS points (for a grid, its sizes)."""
    if not isinstance(recipe, Recipe):
        raise RecipeError(f"recipe must be a compress_engine.Recipe, got {type(recipe).__name__}")
    if isinstance(field_name, dict):
        if values is not None:
            raise RecipeError(f"a grid's values are its dict's ({', '.join(map(str, field_name))[:100]}): leave out "
                              f"values (got {type(values).__name__} {values!r:.50})")
        if not field_name:
            raise RecipeError("the grid is empty: give its fields and their values, e.g. {'sparsity': [0.5, 0.9], "
                              "'bits': [4, 8]}")
        grid = field_name
    elif isinstance(field_name, str):
        if values is None:
            raise RecipeError(f"values is a list of {field_name!s:.50} values, e.g. [0.5, 0.8, 0.9]; got none")
        grid = {field_name: values}
    else:  # a grid's fields ("sparsity", "bits") failed with "unhashable type: 'list'"
        raise RecipeError(GRID_HINT.format(got=f"{type(field_name).__name__} {field_name!r:.80}"))
    lists = {}
    for name, vals in grid.items():
        if not isinstance(name, str):
            raise RecipeError(GRID_HINT.format(got=f"a dict with the key {name!r:.80}"))
        of = "" if len(grid) == 1 else f" of {name!s:.50}"  # a grid's: which field's values
        if isinstance(vals, (str, bytes)) or not hasattr(vals, "__iter__"):  # '0.5' went by character: '0', '.'
            raise RecipeError(f"values{of} is a list of {name!s:.50} values, e.g. [0.5, 0.8, 0.9]; got "
                              f"{type(vals).__name__} {vals!r:.50} (one value: [{vals!r:.50}])")
        vals = list(itertools.islice(vals, MAX_POINTS + 1))  # a generator of millions is not listed whole
        if not vals:
            raise RecipeError(f"values{of} is empty: give the values of the field to sweep, e.g. [0.5, 0.8, 0.9]")
        lists[name] = vals
    sizes = [len(v) for v in lists.values()]
    if len(lists) == 1 and sizes[0] > MAX_POINTS:  # 20,000 values were taken: 12 s of checks, then hours
        raise RecipeError(f"values has more than {MAX_POINTS:,} values; a sweep runs at most {MAX_POINTS:,} points "
                          "(each one compress() run): split it into several sweeps (with the same store, each "
                          "keeps its finished points and a rerun skips them)")
    if math.prod(sizes) > MAX_POINTS:
        raise RecipeError(grid_too_big({n: len(v) for n, v in lists.items()}))
    fields = tuple(lists)
    points = list(itertools.product(*lists.values()))
    recipes = [recipe.replace(**dict(zip(fields, p))) for p in points]  # RecipeError names the field and value
    return fields, points, recipes


def grid_too_big(sizes):
    """The refusal of a grid of more than MAX_POINTS points; `sizes` {field: number of values}."""
    each = " x ".join(f"{n:,} {f}" if n <= MAX_POINTS else f"more than {MAX_POINTS:,} {f}" for f, n in sizes.items())
    return (f"the grid has {each} values = {'more than ' if max(sizes.values()) > MAX_POINTS else ''}"
            f"{math.prod(sizes.values()):,} points; a sweep runs at most {MAX_POINTS:,} (each one "
            "compress() run): give fewer values, or split it into several sweeps by the values of one field (with the "
            "same store, each keeps its finished points and a rerun skips them)")


def _refuse_before_any_point(model, data, names, recipes, store):
    """What would fail every point, or one point, is refused here, before any work: a model that does not take the
    data, a recipe compress() would refuse with this model and data (check_recipe: a `layers` value naming no layer
    of it, a structured plan it cannot make, were each point's error), and a store for regression targets (their
    rows have no accuracy to store: the first point ran, then StoreError, leaving an empty sweep in the store)."""
    if store is not None and getattr(data, "regression", False):
        raise DatasetError(f"store= keeps runs for the Compare page, which charts accuracy, but {data.name!r:.200} "
                           "holds regression targets: leave store out (the rows, with R² and RMSE, are returned)")
    points = {}  # recipe JSON -> (point's name, recipe): a value given twice is checked once
    for name, r in zip(names, recipes):
        points.setdefault(r.to_json(), (name, r))

    def each(check, *args):
        for name, r in points.values():
            try:
                check(*args, r, data)
            except CompressError as e:  # which point: "layers=[...]: layers names 'fc1.weight', not ..."
                raise type(e)(f"{name}: {e}") from None
    each(check_targets)
    check_model(plain_module(model), data)
    each(check_recipe, plain_module(model))


class _Discard:
    """A file that forgets what is written to it: pickling only to see that it can be done."""

    def write(self, data):
        return len(data)


def _sendable(ray, model):
    """Refuse, before Ray starts, a model that cannot travel to Ray's workers: pickled as ray.put pickles it (Ray's
    cloudpickle, the user's own code by value, so a lambda attribute goes), an attribute such as a threading.Lock or
    an open file failed ray.put with Ray's traceback once the runtime had started. ModelError names the attribute."""
    _user_code_by_value(ray, model)
    failed = what_fails(model, lambda obj: ray.cloudpickle.dump(obj, _Discard(), protocol=5))
    if failed is None:
        return
    error, part = failed
    why = f"{type(error).__name__}: {_first_line(error)}"
    # not "run without --workers": the engine copies the model there too, which fails the same way (check_model)
    raise ModelError(f"the model cannot be sent to Ray's workers: {part} cannot be pickled ({why}): {REMOVE_ATTRIBUTE}")


def _the_model(model, name):
    """(module, id for keys, name for the store) of a sample name or a module."""
    if isinstance(model, str):
        if model not in SAMPLES:
            raise ModelError(f"unknown sample model {model!r:.100}; choose one of {', '.join(SAMPLES)}, or pass "
                             "an nn.Module")
        module, name = load_model(model), name or model
    elif isinstance(model, torch.nn.Module):
        module, name = model, name or model_name(model)  # its class name, as Store.save names a module's run
    else:
        raise ModelError(f"model must be a sample model's name or a torch.nn.Module, got {type(model).__name__}")
    return module, model_id(name, model_fingerprint(module)), name


def _base(recipe, field_name):
    """The recipe every point shares: the swept field at its default (the sweep's identity in the store)."""
    try:
        return recipe.replace(**{field_name: getattr(Recipe(), field_name)})
    except RecipeError:  # the default does not go with the other fields: keep the recipe as given
        return recipe


def _the_data(data):
    """(Dataset, id for keys, name for the store) of a source name (loaded here too, to check it before any work)
    or a Dataset. Both are keyed by content too (data_id); the store names a source by its name."""
    if isinstance(data, str):
        ds = load_dataset(data)
        return ds, data_id(data, ds), data
    if isinstance(data, Dataset):
        key = data_id(data.name, data)
        return data, key, key
    raise DatasetError(f"data must be a name load_dataset() takes (e.g. 'fashion-mnist') or a Dataset, got "
                       f"{type(data).__name__}")


def _on_ray(ray, todo, recipes, model, model_obj, data, data_obj, finish, workers, address, threads):
    """Run the points `todo` on Ray, at most `workers` at once; finish() each as it arrives."""
    owned = _connect(ray, workers, address, threads)
    pending = {}
    try:
        if isinstance(model, str):
            model_src = ("model", model)
        else:
            _user_code_by_value(ray, model_obj)
            model_src = ("ref", [ray.put(model_obj)])
        data_src = ("data", data) if isinstance(data, str) else ("ref", [ray.put(_compact(data_obj))])
        task = _task(ray).options(num_cpus=threads, max_retries=MAX_RETRIES, retry_exceptions=False)
        window = workers or len(todo)
        queue = iter(todo)
        began = {}  # point -> when it was handed to Ray

        def top_up():
            while len(pending) < window:
                i = next(queue, None)
                if i is None:
                    return
                pending[task.remote(model_src, data_src, recipes[i].to_json(), threads, True)] = i
                began[i] = time.perf_counter()

        top_up()
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(ref)
            try:
                out = ray.get(ref)
            except ray.exceptions.RayError as e:  # the worker died (or its node was lost) on every try
                out = {"error": f"{type(e).__name__} after {1 + MAX_RETRIES} tries: {_logs_at(ray, _first_line(e))}",
                       "seconds": time.perf_counter() - began[i]}  # it ran (a point without seconds was stored)
            top_up()  # the next point runs while this one is written to the store
            if finish(i, out) is False:
                break
    finally:
        for ref in pending:  # stopped, interrupted or failed: leave no point running
            ray.cancel(ref)
        if owned:
            ray.shutdown()


def _logs_at(ray, text):
    """Ray's error `text` with the folder of the worker logs it points to ("Check python-core-worker-*.log files", no
    folder) put in: this session's log folder, on the node that ran the point. As it was if it names no such files or
    Ray does not say where its logs are."""
    files = re.search(r"\S+-\*\.log files", text)
    if files is None:
        return text
    try:
        folder = ray._private.worker._global_node.get_logs_dir_path()  # not public API: absent, no folder
    except Exception:
        return text
    if not isinstance(folder, str):
        return text
    return f"{text[:files.end()]} in {folder} on the node that ran the point{text[files.end():]}"


# --- any list of independent jobs (the benchmarks' searches) ----------------------------------------------

def map_jobs(fn, jobs, *, workers=None, ray_address=None, threads=1, on_result=None):
    """[fn(*job) for job in jobs], in this process or as Ray tasks (at most `workers` at once, each on `threads`
    torch threads and CPUs; a dead worker is retried once). on_result(i, value) is called as each finishes;
    the list comes back in the order of `jobs`. fn must be a module-level function (or one of a script)."""
    jobs = list(jobs)
    out = [None] * len(jobs)
    if workers is None and ray_address is None:
        for i, job in enumerate(jobs):
            before = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                out[i] = fn(*job)
            finally:
                torch.set_num_threads(before)
            if on_result:
                on_result(i, out[i])
        return out
    ray = need_ray("--ray-address" if workers is None else "--workers")
    owned = _connect(ray, workers, ray_address, threads)
    pending, queue, window = {}, iter(enumerate(jobs)), workers or len(jobs)
    try:
        task = ray.remote(_job).options(num_cpus=threads, max_retries=MAX_RETRIES, retry_exceptions=False)
        while True:
            while len(pending) < window:
                nxt = next(queue, None)
                if nxt is None:
                    break
                pending[task.remote(fn, nxt[1], threads)] = nxt[0]
            if not pending:
                return out
            [ref], _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(ref)
            out[i] = ray.get(ref)
            if on_result:
                on_result(i, out[i])
    finally:
        for ref in pending:
            ray.cancel(ref)
        if owned:
            ray.shutdown()


def _job(fn, args, threads):
    torch.set_num_threads(threads)
    return fn(*args)
