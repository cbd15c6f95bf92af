"""A reload during a training picks the running job back up.

In a teacher's class demo a Distillation run (step 450 of 2,345) vanished from the page on F5: a reload is a new
Streamlit session, the page showed "Train" again with no sign of the run, and SESSION_GRACE s later the run, its only
waiter gone, stopped. A page that renders a recipe whose run is queued or running in the pool now joins it
(jobs.Pool.join, through common.training): it follows it, keeps it running and can cancel it; nothing new starts."""

import threading

import pytest
from streamlit.testing.v1 import AppTest
from test_jobs import WAIT, until
from test_app import page

import compress_engine as ce
from compress_engine.playground import jobs



class Tab:
    """A submitter's alive(): a browser tab, open until closed."""

    def __init__(self):
        self.open = True

    def __call__(self):
        return self.open


def blocker():
    release = threading.Event()

    def fn(progress):
        step = 0
        while not release.wait(0.005):
            step += 1
            if progress(step, 1000, 1.0, None) is False:
                raise ce.Stopped()
        return "released"
    return fn, release


@pytest.fixture(autouse=True)
def one_worker(monkeypatch):
    monkeypatch.setattr(jobs, "_pool", jobs.Pool(workers=1, threads=1))
    monkeypatch.setattr(jobs, "ALIVE_EVERY", 0.01)


def test_join_follows_a_running_job_and_never_starts_one():
    pool = jobs.Pool(workers=1, threads=1)
    assert pool.join("nothing", who="new tab") is None and pool.get("nothing") is None  # nothing started
    assert pool.queued() == pool.running() == 0
    fn, release = blocker()
    old, new = Tab(), Tab()
    job = pool.submit("run", fn, who="old tab", alive=old)
    gone = lambda who, alive: who != "old tab"  # noqa: E731 - its tab reloaded: within its grace, but not there
    assert pool.join("run", who="new tab", alive=new) is None  # the old tab is there: its run is its own
    assert pool.join("run", who="new tab", alive=new, present=gone) is job
    assert pool.join("run", who="new tab", alive=new) is job and job.submitters == 2  # one session counts once
    assert job.others(who="new tab") == 1
    old.open = False                      # the reloaded tab's old session is gone
    until(lambda: job.submitters == 1)
    assert job.state in (jobs.QUEUED, jobs.RUNNING)  # the new session keeps it going
    release.set()
    assert job.result(WAIT) == "released"
    assert pool.join("run", who="new tab") is None   # finished: nothing to join


def test_the_new_session_can_cancel_the_job_it_joined():
    pool = jobs.Pool(workers=1, threads=1)
    fn, release = blocker()
    old = Tab()  # the reloaded tab's old session: still waiting (its grace), but no tab is connected to it
    job = pool.submit("run", fn, who="old tab", alive=old)
    assert pool.join("run", who="new tab", present=lambda who, alive: who != "old tab") is job
    old.open = False  # its grace over
    assert job.cancel(who="new tab") in (jobs.QUEUED, jobs.RUNNING, jobs.CANCELLED)
    assert job.wait(WAIT) and job.state == jobs.CANCELLED
    release.set()


def test_a_reloaded_pipeline_page_follows_the_fine_tune_its_old_session_started(tiny, monkeypatch):
    """Session "old tab" presses Fine-tune; its tab reloads (the old session goes); the new session opening the
    Pipeline on the same recipe follows that run to its result without pressing anything, and one run trains."""
    from pages import common
    gate, trainings, real = threading.Event(), [], ce.compress

    def gated(*a, **kw):  # a training waits for the gate: it is still running when the new session opens
        if kw.get("progress") is not None:
            trainings.append(a[1])
            gate.wait(WAIT * 2)
        return real(*a, **kw)
    monkeypatch.setattr(ce, "compress", gated)
    tab, who = Tab(), {"now": "old tab"}
    monkeypatch.setattr(jobs, "whoami", lambda: (who["now"], tab) if who["now"] else common._whoami())

    old = page("pipeline", "lenet-300-100")
    old.button(key="pipe_preset").click().run()
    old.button(key="pipe_train").click()
    threading.Thread(target=old.run, daemon=True).start()
    until(lambda: jobs.pool().running() == 1)
    (job,) = jobs.pool()._running
    who["now"] = None        # from here on, sessions are the AppTest's own
    tab.open = False         # the old tab reloaded: its session is gone

    joined = []

    def open_gate_once_joined():
        try:
            until(lambda: any(w == "test session id" for w, _ in job._subs), timeout=WAIT)
            joined.append(True)
        finally:
            gate.set()
    threading.Thread(target=open_gate_once_joined, daemon=True).start()
    try:
        new = page("pipeline", "lenet-300-100")
        new.button(key="pipe_preset").click().run()   # the same recipe: nothing pressed to train it
    finally:
        gate.set()
    assert not new.exception and not new.error
    assert joined, "the new session did not join the running job"
    assert job.state == jobs.DONE and len(trainings) == 1      # it ran on for the new session; nothing else trained
    assert any("Fine-tuned" in c.value for c in new.caption)   # the fine-tuned result, shown without a press
    assert "pipe_train" not in [b.key for b in new.button]    # its button gone with the run done


def test_another_users_run_is_not_joined():
    """A second student opening the same preset was enrolled in the first one's run: the first one's Cancel no longer
    freed the worker ('the run goes on for 1 other session'), and the second was held under a progress bar it never
    asked for. A run is joined only when nobody who asked for it is there."""
    pool = jobs.Pool(workers=1, threads=1)
    fn, release = blocker()
    job = pool.submit("run", fn, who="student A", alive=Tab())
    assert pool.join("run", who="student B", present=lambda who, alive: True) is None
    assert job.submitters == 1 and job.cancel(who="student A") in (jobs.QUEUED, jobs.RUNNING, jobs.CANCELLED)
    assert job.wait(WAIT) and job.state == jobs.CANCELLED
    release.set()


def _cancel_then_rerun():
    import streamlit as st

    import compress_engine as ce
    from pages import common
    name, recipe = "lenet-300-100", ce.Recipe(sparsity=0.5, finetune_epochs=1)
    joined = common.training(recipe, start_from=name)   # the reloaded tab's page: it follows the old tab's run
    common._cancel_training((name, recipe.to_json()))   # its Cancel
    again = common.training(recipe, start_from=name)    # the rerun the Cancel click causes
    st.write(f"joined {joined is not None}, again {again is not None}")


def test_a_cancelled_run_is_not_joined_again_on_the_next_rerun(fmnist, monkeypatch):
    """After a reload, the new session's Cancel withdrew it, and the rerun the click caused joined the run again
    through training(): with the old tab's grace still running, the run then went on for nobody."""
    from pages import common
    fn, release = blocker()
    old = Tab()
    key = common._pool_key("lenet-300-100", ce.Recipe(sparsity=0.5, finetune_epochs=1).to_json())
    job = jobs.pool().submit(key, fn, who="old tab", alive=old)
    monkeypatch.setattr(common, "_session_present", lambda who, alive: who != "old tab")  # reloaded, in its grace
    try:
        at = AppTest.from_function(_cancel_then_rerun, default_timeout=60).run()
        assert not at.exception, [e.value for e in at.exception]
        assert [m.value for m in at.markdown] == ["joined True, again False"]
        assert [w for w, _ in job._subs] == ["old tab"]
        old.open = False  # its grace over: nobody wants the run, it stops
        assert job.wait(WAIT) and job.state == jobs.CANCELLED
    finally:
        release.set()
