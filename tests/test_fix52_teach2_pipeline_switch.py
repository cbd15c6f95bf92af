"""Pipeline: switching the sidebar's model during a fine-tune said nothing, and the run went on training for nobody
(holding the training worker, on 2 cores the only one). As on Pruning (common.let_go), the run is now withdrawn as
Cancel withdraws it (it stops unless another tab or student waits for it) and a note says what became of it."""

import re
import threading

import pytest
from test_fix51_f3_prune_curve import run_until, training
from test_jobs import WAIT

import compress_engine as ce
from compress_engine.playground import jobs
from test_app import page


@pytest.fixture(autouse=True)
def one_worker(monkeypatch):
    monkeypatch.setattr(jobs, "_pool", jobs.Pool(workers=1, threads=1))


def said(at):
    return [re.sub(r"\\(.)", r"\1", i.value) for i in at.info if "You switched the model" in i.value]


def blocked(monkeypatch, release):
    real = ce.compress

    def compress(*a, **kw):
        if kw.get("progress") is not None:  # the fine-tune: still running when the model switches
            release.wait(30)
        return real(*a, **kw)
    monkeypatch.setattr(ce, "compress", compress)


def fine_tuning(monkeypatch, release):
    """Pipeline on LeNet-300-100, its preset's fine-tune pressed and training (held until `release`): (page, job)."""
    blocked(monkeypatch, release)
    at = page("pipeline", "lenet-300-100")
    at.button(key="pipe_preset").click().run()
    at.button(key="pipe_train").click()
    run_until(at, training)
    (job,) = jobs.pool()._running
    return at, job


def test_switching_the_model_mid_fine_tune_stops_it_and_says_so(tiny, monkeypatch):
    release = threading.Event()
    try:
        at, job = fine_tuning(monkeypatch, release)
        at.session_state["model"] = "lenet-5"
        at.run()
        assert not at.exception and not at.error
        (text,) = said(at)
        assert text == ("You switched the model to lenet-5. The fine-tune of lenet-300-100, which was training, "
                        "stopped: nothing of it is kept."), text
        release.set()
        assert job.wait(WAIT) and job.state == jobs.CANCELLED  # nobody else asked for it: it stopped
        at.run()
        assert not said(at)  # said once
    finally:
        release.set()


def test_a_run_another_student_waits_for_goes_on_for_them(tiny, monkeypatch):
    release = threading.Event()
    try:
        at, job = fine_tuning(monkeypatch, release)
        job._subs.append(("another student", None))  # the same run asked for by another tab, still there
        at.session_state["model"] = "lenet-5"
        at.run()
        (text,) = said(at)
        assert "goes on for 1 other tab or student that asked for it, and is kept when it finishes." in text, text
        assert job.state == jobs.RUNNING and [w for w, _ in job._subs] == ["another student"]
    finally:
        release.set()
    assert job.wait(WAIT) and job.state == jobs.DONE
