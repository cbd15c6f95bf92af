"""Sweeps on Ray, as a reviewer found them (compress_engine/playground/sweeps.py): --threads more than a node's CPUs
hung for ever without a word; every failure to join a cluster said "start it with ray start --head", also when the
cluster wanted a token, and pasted Ray's advice naming a flag this command lacks; an address where another service
listens kept ray.init busy for many minutes; the install hint named a package that is not on PyPI; and a model's own
warning showed twice on Ray."""

import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from http.server import HTTPServer, SimpleHTTPRequestHandler
from pathlib import Path

import pytest
import torch
from torch import nn

import compress_engine as ce
from compress_engine.playground import sweeps
from compress_engine.playground.cli import main

try:
    import ray
except ImportError:
    ray = None
needs_ray = pytest.mark.skipif(ray is None, reason="ray is not installed: pip install -e '.[ray]'")

ROOT = Path(__file__).resolve().parents[1]
BASE = ce.Recipe(clusters=8)


class Warny(nn.Module):
    """A 64-10 linear model on 8x8 digits that warns at every forward pass, as a user's model might."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        warnings.warn("Warny: my model's own warning")
        return self.fc(x.flatten(1))


def double(x):
    return 2 * x


# --- the messages, from the exceptions the reviewer saw ------------------------------------------------------

def test_a_cluster_that_wants_a_token_says_so():
    """ray.init against a RAY_AUTH_MODE=token head, from a shell without it, raised ConnectionError("Failed to
    connect to Ray cluster at ...") from a RuntimeError holding the real reason; the sweep said "start it with
    `ray start --head`" of a cluster that was running."""
    cause = RuntimeError(
        "Failed to connect to GCS. Last connection error: Traceback (most recent call last):\n  File \"node.py\", "
        "line 996, in _init_gcs_client\nray.exceptions.AuthenticationError: RPC error: InvalidAuthToken: "
        "Authentication token is missing or incorrect. Note: RAY_AUTH_MODE is currently 'disabled' (not 'token').")
    try:
        raise ConnectionError("Failed to connect to Ray cluster at 192.0.2.2:6399") from cause
    except ConnectionError as e:
        msg = sweeps.connect_error("192.0.2.2:6399", e)
    assert msg.startswith("cannot reach the Ray cluster at '192.0.2.2:6399': it uses token authentication")
    assert "RAY_AUTH_MODE=token" in msg and "~/.ray/auth_token" in msg and "ray start --head" not in msg
    assert "RAY_AUTH_MODE=token" in (ROOT / "README.md").read_text()  # the set-up it points to


def test_rays_advice_is_not_pasted_naming_a_flag_this_command_lacks():
    e = ConnectionError("Could not find any running Ray instance. Please specify the one to connect to by setting "
                        "`--address` flag or `RAY_ADDRESS` environment variable.")
    msg = sweeps.connect_error("auto", e)
    assert "`--address`" not in msg and "RAY_ADDRESS" not in msg and ".;" not in msg
    assert "--ray-address" in msg and "ray start --head" in msg
    # any other failure: Ray's first line, then the advice, joined without ".;"
    msg = sweeps.connect_error("192.0.2.2:6399", ConnectionError("Failed to connect to Ray cluster at 192.0.2.2:6399."))
    assert msg == ("cannot reach the Ray cluster at '192.0.2.2:6399': Failed to connect to Ray cluster at "
                   "192.0.2.2:6399; start it with `ray start --head` and run the sweep on one of its machines "
                   "(--ray-address auto)")


def test_without_ray_the_hint_installs_from_the_checkout(monkeypatch, capsys):
    """`pip install 'compression-playground[ray]'` fails: the package is not on PyPI. The hint installs the extra
    from this checkout, or the Ray version requirements.txt pins."""
    pin = next(line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
               if line.startswith("ray=="))
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ce.CompressError) as info:
        sweeps.sweep(Warny(), BASE, "digits", "sparsity", [0.5], workers=2)
    assert "pip install -e '.[ray]'" in str(info.value) and f"pip install {pin}" in str(info.value)
    assert "compression-playground[ray]" not in str(info.value)


# --- an address where another service listens ------------------------------------------------------------------

@needs_ray
def test_an_address_where_another_service_listens_stops_at_the_deadline_and_ctrl_c_works(tmp_path):
    """ray.init on an HTTP server's port retried for many minutes. Joining has a deadline (CONNECT_DEADLINE, 4 s
    here) after which the sweep stops naming the address; Ctrl-C during the wait stops it at once."""
    server = HTTPServer(("127.0.0.1", 0), SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    address = f"127.0.0.1:{server.server_address[1]}"
    script = tmp_path / "run.py"
    (tmp_path / "mine.py").write_text("from torch import nn\ndef make():\n"
                                      "    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))\n")
    script.write_text(
        "import sys, warnings\n"
        f"sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from compress_engine.playground import sweeps\n"
        "from compress_engine.playground.cli import main\n"
        "sweeps.CONNECT_DEADLINE = float(sys.argv[2])\n"
        "_init = sweeps._init_within\n"
        "def _marked(*a):\n"
        "    print('JOINING', file=sys.stderr, flush=True)\n"
        "    return _init(*a)\n"
        "sweeps._init_within = _marked\n"
        f"sys.exit(main(['sweep', '--model', {str(tmp_path / 'mine.py') + ':make'!r}, '--data', 'digits', "
        "'--field', 'sparsity', '--values', '0.5', '--ray-address', sys.argv[1]]))\n")
    # PYTHONFAULTHANDLER: should the process abort at exit again (std::bad_alloc, status -6: 40d69b6), every thread's
    # Python stack is in its stderr, which the assertion shows
    env = dict(os.environ, OMP_NUM_THREADS="1", HOME=str(tmp_path), RAY_TMPDIR=str(tmp_path), PYTHONFAULTHANDLER="1")
    try:
        start = time.monotonic()
        # Ctrl-C while waiting for ray.init (a deadline of 10 minutes), started beside the run with a deadline
        p = subprocess.Popen([sys.executable, str(script), address, "600"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
        run = subprocess.run([sys.executable, str(script), address, "2"], capture_output=True, text=True, env=env,
                             timeout=300)
        took = time.monotonic() - start
        assert run.returncode == 2 and took < 60, (run.returncode, took, run.stderr[-2000:])
        [line] = [x for x in run.stderr.splitlines() if x.startswith("error: ")]  # (Ray's own log lines aside)
        assert line.startswith(f"error: cannot reach the Ray cluster at '{address}': no Ray cluster answered there "
                               "within 2 s"), line
        # the command stops, status 130
        joining = threading.Event()

        def watch():  # torch, the data, Ray imported: the wait for ray.init begins
            for said in p.stderr:
                if said.strip() == "JOINING":
                    return joining.set()
        threading.Thread(target=watch, daemon=True).start()
        if not joining.wait(120):
            os.killpg(p.pid, signal.SIGKILL)
            pytest.fail("the sweep never began joining the cluster")
        time.sleep(1)  # ray.init under way
        os.killpg(p.pid, signal.SIGINT)
        sent = time.monotonic()
        try:
            out, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
        assert p.returncode == 130 and time.monotonic() - sent < 30, (p.returncode, err[-8000:])
        assert "interrupted: 0 of 1 points finished" in err
    finally:
        server.shutdown()


# --- --threads that no node has CPUs for; a model's warning, once --------------------------------------------

def test_threads_more_than_this_machines_cores_are_refused_before_ray_starts(monkeypatch):
    """On a 2-core machine `--workers 1 --threads 3` started a 2-CPU runtime and asked 3 CPUs per point: it never
    finished and printed nothing. Refused at once, saying why and what to give."""
    pytest.importorskip("ray")
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    started = []
    monkeypatch.setattr(sweeps, "start_local", lambda *a: started.append(a))
    with pytest.raises(ce.CompressError, match=r"^--threads 3 needs 3 CPUs on one node \(a point runs on one node\); "
                                               r"this machine has 2: give --threads 2 or fewer$"):
        sweeps.sweep(Warny(), BASE, "digits", "sparsity", [0.5, 0.8], workers=1, threads=3)
    with pytest.raises(ce.CompressError, match=r"^--threads 3 needs 3 CPUs"):
        sweeps.map_jobs(double, [(1,), (2,)], workers=1, threads=3)
    assert started == []


@pytest.fixture(scope="module")
def local_ray():
    """One local runtime for the module: 2 CPUs, loopback, no dashboard."""
    if ray is None:
        pytest.skip("ray is not installed: pip install -e '.[ray]'")
    sweeps.start_local(2)
    yield ray
    ray.shutdown()


@needs_ray
def test_threads_more_than_any_nodes_cpus_are_refused_and_a_feasible_sweep_runs(local_ray, capsys, tiny_idx):
    """A runtime (or a cluster) whose largest node has 2 CPUs: --threads 3 is refused, naming both numbers; the
    runtime is left as it was (this process started it), and --threads 2 runs, with the in-process rows."""
    with pytest.raises(ce.CompressError, match=r"^--threads 3 needs 3 CPUs on one node \(a point runs on one node\); "
                                               r"the largest node of this Ray runtime has 2: give --threads 2"):
        sweeps.sweep(Warny(), BASE, "digits", "sparsity", [0.5], workers=1, threads=3)
    with pytest.raises(ce.CompressError, match=r"^--threads 3 needs 3 CPUs"):
        sweeps.map_jobs(double, [(1,)], workers=1, threads=3)
    assert ray.is_initialized()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = sweeps.sweep(Warny(), BASE, "digits", "sparsity", [0.5], workers=1, threads=2)
        assert rows == sweeps.sweep(Warny(), BASE, "digits", "sparsity", [0.5], threads=2)
    assert sweeps.map_jobs(double, [(1,), (2,)], workers=2, threads=1) == [2, 4]
    code = main(["sweep", "--data", tiny_idx, "--model", "lenet-300-100", "--field", "sparsity", "--values", "0.5",
                 "--workers", "1", "--threads", "3"])
    assert code == 2 and "--threads 3 needs 3 CPUs on one node" in capsys.readouterr().err


@needs_ray
def test_a_models_own_warning_shows_once_a_sweep_on_ray_too(local_ray):
    """The up-front check runs the model here (its warning shows), then each worker's came back again: twice,
    though the README says once a sweep each. Both go through the sweep's registry: once, as in-process."""
    def said(workers):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            sweeps.sweep(Warny(), BASE, "digits", "sparsity", [0.5, 0.8], workers=workers)
        return [str(w.message) for w in caught if "Warny" in str(w.message)]

    assert said(1) == ["Warny: my model's own warning"] == said(None)
