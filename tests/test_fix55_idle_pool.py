"""A page asks the training pool about its runs only while the pool holds a job. Pruning asked, on every slider press,
whether each of its 10 fine-tuned curve points was queued or running (a recipe, its JSON, the dataset's fingerprint
and a sha256 per point, twice): a fifth of the page's run in the server, beside the browser drawing the last one, with
nothing to find while nothing trains."""

import threading

import pytest
from test_app import page
from test_jobs import WAIT, until

from compress_engine.playground import jobs
from pages import common


@pytest.fixture(autouse=True)
def one_worker(monkeypatch):
    monkeypatch.setattr(jobs, "_pool", jobs.Pool(workers=1, threads=1))


def test_busy_while_a_job_is_queued_or_running():
    pool, gate = jobs.pool(), threading.Event()
    assert not pool.busy()
    first = pool.submit("a", lambda progress: gate.wait(WAIT))
    second = pool.submit("b", lambda progress: 2)
    until(lambda: pool.running() == 1)
    assert pool.busy() and pool.queued() == 1
    gate.set()
    assert first.result(WAIT) and second.result(WAIT) == 2
    until(lambda: not pool.busy())


def test_a_press_works_out_no_pool_keys_while_nothing_trains(fmnist, monkeypatch):
    at = page("pruning")
    keys = []
    real = common._pool_key
    monkeypatch.setattr(common, "_pool_key", lambda *a, **k: keys.append(a) or real(*a, **k))
    at.slider(key="prune_sparsity").set_value(81).run()
    assert not at.exception and keys == []
    gate = threading.Event()
    other = jobs.pool().submit("another page's run", lambda progress: gate.wait(WAIT))  # something trains
    try:
        at.slider(key="prune_sparsity").set_value(82).run()
        assert not at.exception and len(keys) >= 10  # each fine-tuned curve point is asked for again
    finally:
        gate.set()
        other.wait(WAIT)
