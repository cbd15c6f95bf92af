"""A sweep's ray_address when this process already has a Ray runtime (a notebook that called ray.init() earlier):
the sweep kept that runtime and ran every point on it, returning rows even for an address where nothing listens, so
a user who asked for the cluster at HOST:PORT was told nothing while the points ran on this machine. Now another
cluster's address is refused before any point runs, naming both; this runtime's own address (or "auto") runs."""

import os

import pytest

import compress_engine as ce
from compress_engine.playground import sweeps

from small_nets import RECIPE, Plain, data

try:
    import ray
except ImportError:
    ray = None
needs_ray = pytest.mark.skipif(ray is None, reason="ray is not installed: pip install -e '.[ray]'")


@pytest.fixture(scope="module")
def local_ray():
    """One local runtime for the module (as tests/test_sweeps.py's): 2 CPUs, loopback, no dashboard."""
    if ray is None:
        pytest.skip("ray is not installed: pip install -e '.[ray]'")
    mode = os.environ.get("RAY_AUTH_MODE")
    sweeps.start_local(2)
    yield ray
    ray.shutdown()
    if mode is None:  # ray.init set it to "token" for this process: later tests' subprocesses would inherit it
        os.environ.pop("RAY_AUTH_MODE", None)
    else:
        os.environ["RAY_AUTH_MODE"] = mode


@needs_ray
def test_another_clusters_address_is_refused_and_this_runtimes_own_runs(local_ray):
    ds, model = data(), Plain()
    seen = []
    with pytest.raises(ce.CompressError) as e:
        sweeps.sweep(model, RECIPE, ds, "sparsity", [0.5, 0.8], ray_address="127.0.0.1:1",
                     on_point=lambda *a: seen.append(a))
    msg = str(e.value)
    have = ray.get_runtime_context().gcs_address
    assert "'127.0.0.1:1'" in msg and have in msg and "ray.shutdown()" in msg and "leave ray_address out" in msg
    assert seen == [] and ray.is_initialized()  # no point ran, and the caller's runtime is left as it was
    # map_jobs (the benchmarks' searches) joins the same way
    with pytest.raises(ce.CompressError, match="not the Ray cluster this process is already connected to"):
        sweeps.map_jobs(max, [(1, 2)], ray_address="10.255.255.1:6379")
    # the runtime's own address, and "auto", run there: the rows are the in-process rows
    want = sweeps.sweep(model, RECIPE, ds, "sparsity", [0.5, 0.8])
    port = have.rpartition(":")[2]
    assert sweeps.sweep(model, RECIPE, ds, "sparsity", [0.5, 0.8], ray_address=f"127.0.0.1:{port}") == want
    assert sweeps.sweep(model, RECIPE, ds, "sparsity", [0.5, 0.8], ray_address="auto") == want
    assert ray.is_initialized()


def test_same_host_port_compares_ports_and_resolved_hosts():
    assert sweeps._same_host_port("192.0.2.2:6379", "192.0.2.2:6379")
    assert sweeps._same_host_port("192.0.2.2:6379", "localhost:6379")  # a head here, reached through loopback
    assert not sweeps._same_host_port("192.0.2.2:6379", "192.0.2.2:6380")
    assert not sweeps._same_host_port("192.0.2.2:6379", "192.0.2.3:6379")
