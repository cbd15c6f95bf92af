"""The training pool (compress_engine.playground.jobs): order, bound, dedupe, cancel, errors, torch threads."""

import threading
import time

import pytest
import torch

import compress_engine as ce
from compress_engine.playground import jobs

WAIT = 30  # seconds any test waits for a job at most (they take milliseconds)


def blocker(started=None):
    """A job fn that runs until its release event is set (and reports progress while it waits)."""
    release = threading.Event()

    def fn(progress):
        if started is not None:
            started.set()
        step = 0
        while not release.wait(0.005):
            step += 1
            if progress(step, 1000, 1.0 / step, None) is False:
                raise ce.Stopped()
        return "released"
    return fn, release


def busy(key="first"):
    """A one-worker pool whose worker is held by a blocker job: (pool, that running job, its release event)."""
    pool = jobs.Pool(workers=1, threads=1)
    started = threading.Event()
    fn, release = blocker(started)
    job = pool.submit(key, fn)
    assert started.wait(WAIT)
    return pool, job, release


def until(cond, timeout=WAIT):
    t = time.monotonic()
    while not cond():
        assert time.monotonic() - t < timeout, "condition not met in time"
        time.sleep(0.002)


def test_first_come_first_served_with_positions():
    pool, first, release = busy()
    order = []
    rest = [pool.submit(k, lambda p, k=k: order.append(k) or k) for k in "abc"]
    assert first.position() == 0 and first.state == jobs.RUNNING
    assert [j.position() for j in rest] == [1, 2, 3]
    assert [j.ahead() for j in rest] == [1, 2, 3]  # the running job counts as ahead of you
    release.set()
    assert [j.result(WAIT) for j in rest] == ["a", "b", "c"]
    assert order == ["a", "b", "c"]
    assert first.result(WAIT) == "released" and first.position() is None


def test_never_more_jobs_at_once_than_workers():
    pool = jobs.Pool(workers=2, threads=1)
    now = peak = 0
    lock = threading.Lock()

    def fn(progress):
        nonlocal now, peak
        with lock:
            now += 1
            peak = max(peak, now)
        time.sleep(0.03)
        with lock:
            now -= 1
        return True

    js = [pool.submit(i, fn) for i in range(8)]
    assert all(j.result(WAIT) for j in js)
    assert peak == 2 and pool.running() == 0 and pool.queued() == 0


def test_same_key_joins_the_queued_or_running_job():
    pool, running, release = busy("model+recipe")
    calls = []
    assert pool.submit("model+recipe", lambda p: calls.append("again")) is running  # joins the running one
    queued = pool.submit("other", lambda p: calls.append("other") or "other")
    assert pool.submit("other", lambda p: calls.append("twice")) is queued         # joins the queued one
    assert pool.get("other") is queued and pool.queued() == 1
    release.set()
    assert running.result(WAIT) == "released" and queued.result(WAIT) == "other"
    assert calls == ["other"]
    # once finished, the same key is a new job (its result is the caller's to keep, e.g. on disk)
    again = pool.submit("model+recipe", lambda p: "new")
    assert again is not running and again.result(WAIT) == "new"


def test_cancel_a_running_job_stops_it_through_the_progress_callback():
    pool, job, _ = busy("long")  # never released: only cancel ends it
    until(lambda: job.progress is not None)
    job.cancel()
    assert job.wait(WAIT) and job.state == jobs.CANCELLED and job.error is None
    with pytest.raises(jobs.Cancelled):
        job.result(0)
    assert pool.get("long") is None
    assert pool.submit("next", lambda p: 42).result(WAIT) == 42  # the worker goes on


def test_cancel_a_queued_job_removes_it_from_the_line():
    pool, first, release = busy()
    ran = []
    a = pool.submit("a", lambda p: ran.append("a"))
    b = pool.submit("b", lambda p: ran.append("b"))
    assert a.cancel() == jobs.CANCELLED
    assert a.done and a.position() is None and b.position() == 1 and pool.queued() == 1
    release.set()
    b.wait(WAIT)
    assert ran == ["b"] and first.state == jobs.DONE


def test_cancel_withdraws_one_submitter_the_job_stops_when_none_is_left():
    pool = jobs.Pool(workers=1, threads=1)
    started = threading.Event()
    fn, release = blocker(started)
    job = pool.submit("shared", fn)
    assert pool.submit("shared", fn) is job  # a second session joins
    started.wait(WAIT)
    job.cancel()                             # the first one leaves: the other still wants it
    time.sleep(0.05)
    assert job.state == jobs.RUNNING
    job.cancel()
    assert job.wait(WAIT) and job.state == jobs.CANCELLED
    # and a queued job cancelled by everyone at once
    fn2, release2 = blocker()
    busy = pool.submit("busy", fn2)
    q = pool.submit("q", lambda p: 1)
    pool.submit("q", lambda p: 1)
    assert q.cancel(everyone=True) == jobs.CANCELLED
    release2.set()
    assert busy.result(WAIT) == "released"


class Tab:
    """A fake submitter's alive(): a browser tab that is open until closed."""

    def __init__(self):
        self.open = True

    def __call__(self):
        return self.open


def test_a_queued_job_whose_submitters_are_all_gone_is_skipped():
    """A tab closed while its run waits in line: the worker does not start it, and goes on with the next job."""
    pool, first, release = busy()
    ran, tab = [], Tab()
    orphan = pool.submit("orphan", lambda p: ran.append("orphan"), who="closed", alive=tab)
    nxt = pool.submit("next", lambda p: ran.append("next") or "next", who="open", alive=Tab())
    tab.open = False
    release.set()
    assert nxt.result(WAIT) == "next" and ran == ["next"]
    assert orphan.state == jobs.CANCELLED and pool.get("orphan") is None


def test_a_queued_job_whose_submitters_are_all_gone_does_not_count_as_ahead():
    """A closed tab's run waiting in line counted in every later session's "N ahead of you" until a worker reached
    it: it now leaves the line as soon as anyone asks their place."""
    pool, first, release = busy()
    tab = Tab()
    orphan = pool.submit("orphan", lambda p: "orphan", who="closed", alive=tab)
    mine = pool.submit("mine", lambda p: "mine", who="open", alive=Tab())
    assert (mine.position(), mine.ahead()) == (2, 2)  # the running job and the closed tab's, still open
    tab.open = False
    assert (mine.position(), mine.ahead()) == (1, 1) and orphan.state == jobs.CANCELLED
    release.set()
    assert mine.result(WAIT) == "mine"


def test_a_running_job_whose_only_submitter_is_gone_stops(monkeypatch):
    """A closed tab's run held the worker (the only one on 2 cores) and could never be stopped: it now stops at its
    next progress report once its submitter is gone, and the next job runs."""
    monkeypatch.setattr(jobs, "ALIVE_EVERY", 0.01)
    pool = jobs.Pool(workers=1, threads=1)
    started, tab = threading.Event(), Tab()
    fn, _ = blocker(started)  # never released
    job = pool.submit("long", fn, who="tab", alive=tab)
    assert started.wait(WAIT)
    time.sleep(0.05)
    assert job.state == jobs.RUNNING
    tab.open = False
    assert job.wait(WAIT) and job.state == jobs.CANCELLED and pool.get("long") is None
    assert pool.submit("next", lambda p: 42).result(WAIT) == 42


def shared_run(monkeypatch, *whos):
    """A pool running one job that each of `whos` asked for from a Tab of its own -> (job, release, {who: Tab})."""
    monkeypatch.setattr(jobs, "ALIVE_EVERY", 0.01)
    pool = jobs.Pool(workers=1, threads=1)
    started, tabs = threading.Event(), {who: Tab() for who in whos}
    fn, release = blocker(started)
    asked = [pool.submit("shared", fn, who=who, alive=tab) for who, tab in tabs.items()]
    assert all(job is asked[0] for job in asked) and started.wait(WAIT)
    return asked[0], release, tabs


def test_a_running_job_goes_on_while_one_submitter_is_alive(monkeypatch):
    job, release, tabs = shared_run(monkeypatch, "closed", "still")
    tabs["closed"].open = False
    until(lambda: job.submitters == 1)  # the closed tab was dropped at a progress report...
    time.sleep(0.05)
    assert job.state == jobs.RUNNING    # ...and the open one keeps the run going
    release.set()
    assert job.result(WAIT) == "released"


def test_cancel_withdraws_the_callers_own_submission(monkeypatch):
    """Session b pressing Cancel withdraws b's submission, not a's: with a's tab then closed, the run stops (had a's
    been withdrawn, b's open tab would keep it going)."""
    job, release, tabs = shared_run(monkeypatch, "a", "b")
    assert job.cancel(who="c") == jobs.RUNNING and job.submitters == 2  # c never asked for it: nothing withdrawn
    assert job.cancel(who="b") == jobs.RUNNING and job.submitters == 1
    assert job.others(who="b") == 1 and job.others(who="a") == 0
    tabs["a"].open = False
    assert job.wait(WAIT) and job.state == jobs.CANCELLED
    release.set()


def test_other_sessions_count_only_live_ones_once_each():
    """"(also for N other sessions)": a closed tab is not another session waiting, and one session's two submissions
    are one session."""
    pool, first, release = busy()
    gone = Tab()
    job = pool.submit("q", lambda p: 1, who="me", alive=Tab())
    pool.submit("q", lambda p: 1, who="other", alive=Tab())
    pool.submit("q", lambda p: 1, who="other", alive=Tab())
    pool.submit("q", lambda p: 1, who="closed", alive=gone)
    assert job.others(who="me") == 2   # "other", and the tab not yet known closed
    gone.open = False
    assert job.others(who="me") == 1 and job.others(who="other") == 1  # "other"; "me"
    release.set()
    assert job.result(WAIT) == 1 and job.others(who="me") == 0


def test_a_session_counts_as_gone_only_after_the_grace_period(monkeypatch):
    """pages.common's alive(): a disconnected session (a closed tab) is gone after SESSION_GRACE s, not at once (a
    network blip or a reconnect must not stop its run), and it counts again once it reconnects. No real server
    (AppTest's stand-in runtime): always alive."""
    from streamlit.runtime import Runtime

    from pages import common

    class Sessions:
        active = {"s"}

        def is_active_session(self, session_id):
            return session_id in self.active

    server = object.__new__(Runtime)
    server._session_mgr = Sessions()
    monkeypatch.setattr(Runtime, "_instance", server)
    monkeypatch.setattr(common, "SESSION_GRACE", 0.3)
    assert common._session_alive("s")
    Sessions.active = set()                       # the tab closed
    assert common._session_alive("s")             # within the grace period: still waiting
    time.sleep(0.35)
    assert not common._session_alive("s")         # gone
    Sessions.active = {"s"}                       # it reconnected
    assert common._session_alive("s")
    Sessions.active = set()
    assert common._session_alive("s")             # a new grace period
    monkeypatch.setattr(Runtime, "_instance", None)
    assert common._session_alive("nobody")        # no server: alive


def test_a_failing_job_reports_its_error_and_others_run_on():
    pool = jobs.Pool(workers=1, threads=1)
    def boom(progress):
        raise ValueError("bad weights")
    bad = pool.submit("bad", boom)
    good = pool.submit("good", lambda p: "fine")
    assert good.result(WAIT) == "fine"
    assert bad.state == jobs.FAILED and isinstance(bad.error, ValueError)
    with pytest.raises(ValueError, match="bad weights"):
        bad.result(0)


def test_progress_and_losses_are_recorded():
    pool = jobs.Pool(workers=1, threads=1)

    def fn(progress):
        for step in range(1, 6):
            assert progress(step, 5, 1.0 / step, 0.5 if step == 5 else None) is True
        return "ok"
    job = pool.submit("p", fn)
    assert job.result(WAIT) == "ok"
    assert job.progress[:5] == (5, 5, 0.2, 0.5, None) and job.progress.began <= time.monotonic()
    assert [s for s, _ in job.losses] == [1, 2, 3, 4, 5]


def test_a_job_of_several_parts_names_each_and_times_it_from_its_own_start():
    """A page shows "scanning ..., setting 3 of 9 (about 1 min left)", then "fine-tuning, step 1 of 5": each part's
    pace (Progress.began) counts from that part's first report, not from the job's."""
    pool = jobs.Pool(workers=1, threads=1)
    seen = []

    def fn(progress):
        for step in (1, 2):
            progress(step, 2, phase="setting")
            seen.append(job.progress)
        time.sleep(0.05)
        progress(1, 5, 0.3, phase="step")
        seen.append(job.progress)
        return "ok"
    job = pool.submit("parts", fn)
    assert job.result(WAIT) == "ok"
    assert [(p.phase, p.step, p.total) for p in seen] == [("setting", 1, 2), ("setting", 2, 2), ("step", 1, 5)]
    assert seen[0].began == seen[1].began and seen[2].began >= seen[1].began + 0.05
    assert [p.first for p in seen] == [1, 1, 1]  # the step each part first reported: its pace counts after it


def test_a_job_runs_on_its_torch_threads_and_leaves_other_threads_theirs():
    default = []
    t = threading.Thread(target=lambda: default.append(torch.get_num_threads()))
    t.start(); t.join()
    pool = jobs.Pool(workers=1, threads=1)
    seen = {}

    def fn(progress):
        seen["job"] = torch.get_num_threads()
        torch.ones(256, 256) @ torch.ones(256, 256)  # a parallel op keeps its count
        seen["job after op"] = torch.get_num_threads()
        other = threading.Thread(target=lambda: seen.setdefault("page run", torch.get_num_threads()))
        other.start(); other.join()  # e.g. a Streamlit rerun starting while the job trains
        return True

    job = pool.submit("threads", fn)
    assert job.result(WAIT)
    assert job.threads == 1 and seen["job"] == 1 and seen["job after op"] == 1
    assert seen["page run"] == default[0]


def test_a_job_may_ask_for_its_own_thread_count_and_the_next_gets_the_pools_again():
    """A scan a page used to run at the page's threads asks for them (process_threads()); the pool's next job is back
    on the pool's count, and other threads keep the process default."""
    pool = jobs.Pool(workers=1, threads=1)
    default = jobs.process_threads()
    seen = []

    def fn(progress):
        seen.append(torch.get_num_threads())
        return True
    assert pool.submit("mine", fn, threads=3).result(WAIT) and pool.submit("pool's", fn).result(WAIT)
    assert seen == [3, 1] and jobs.process_threads() == default


def test_a_part_of_a_job_runs_on_its_own_threads_then_the_job_is_back_on_its(monkeypatch):
    """jobs.on_threads: a fit's scan at the page's count inside a job that trains at the pool's; the count new threads
    start with is untouched throughout, and an error in the part still puts the job's count back."""
    pool = jobs.Pool(workers=1, threads=1)
    default = jobs.process_threads()
    seen = []

    def fn(progress):
        seen.append(torch.get_num_threads())
        with jobs.on_threads(3) as got:
            torch.ones(256, 256) @ torch.ones(256, 256)
            seen.extend([got, torch.get_num_threads(), jobs.process_threads()])
        seen.append(torch.get_num_threads())
        try:
            with jobs.on_threads(2):
                raise ValueError("the scan failed")
        except ValueError:
            seen.append(torch.get_num_threads())
        return True
    assert pool.submit("parts", fn).result(WAIT)
    assert seen == [1, 3, 3, default, 1, 1] and jobs.process_threads() == default


@pytest.fixture
def pages_on_two_threads():
    """The process default (what page runs compute on) at 2 threads for the test, then back to what it was."""
    before = jobs.process_threads()
    setter = threading.Thread(target=torch.set_num_threads, args=(2,))
    setter.start(); setter.join()
    yield
    setter = threading.Thread(target=torch.set_num_threads, args=(before,))
    setter.start(); setter.join()


def test_a_job_takes_the_page_runs_threads_between_steps_while_no_page_run_computes(monkeypatch, pages_on_two_threads):
    """jobs.spare: before each step (train.pace_point) a job runs on the page runs' 2 threads while spare() is True
    and on its own 1 while it is False; a part inside on_threads keeps its count, and the process default is left
    alone throughout."""
    from compress_engine.core import train
    free = [True]
    monkeypatch.setattr(jobs, "spare", lambda: free[0])
    pool = jobs.Pool(workers=1, threads=1)
    seen, defaults = [], []

    def fn(progress):
        seen.append(torch.get_num_threads())  # before any step: the job's own
        for state in (True, True, False, True):
            free[0] = state
            train.pace_point("step")
            seen.append(torch.get_num_threads())
            defaults.append(jobs.process_threads())
        with jobs.on_threads(1):
            train.pace_point("step")
            seen.append(torch.get_num_threads())
        return True
    assert pool.submit("paced", fn).result(WAIT)
    assert seen == [1, 2, 2, 1, 2, 1] and set(defaults) == {2}


def test_a_job_keeps_its_threads_when_it_asked_for_them_or_nothing_says_the_cores_are_free(monkeypatch,
                                                                                          pages_on_two_threads):
    from compress_engine.core import train
    pool = jobs.Pool(workers=1, threads=1)
    seen = []

    def fn(progress):
        train.pace_point("step")
        seen.append(torch.get_num_threads())
        return True
    monkeypatch.setattr(jobs, "spare", lambda: True)
    assert pool.submit("its own", fn, threads=1).result(WAIT)
    monkeypatch.setattr(jobs, "spare", None)  # a script's pool: nobody says
    assert pool.submit("nobody says", fn).result(WAIT)
    assert seen == [1, 1]


@pytest.mark.parametrize("slower", [1, 2])
def test_while_the_cores_are_free_a_job_keeps_the_thread_count_its_steps_were_faster_on(monkeypatch,
                                                                                       pages_on_two_threads, slower):
    """Each count is timed over TRIAL_STEPS steps (the page runs' 2 first, then the job's 1), then the faster one is
    kept: a step here sleeps 6 ms on `slower` threads and 1 ms on the other (two threads are slower for a small MLP,
    faster for a CNN)."""
    from compress_engine.core import train
    monkeypatch.setattr(jobs, "spare", lambda: True)
    pool = jobs.Pool(workers=1, threads=1)
    seen = []

    def fn(progress):
        for _ in range(3 * jobs.TRIAL_STEPS + 10):
            train.pace_point("step")
            seen.append(torch.get_num_threads())
            time.sleep(0.006 if seen[-1] == slower else 0.001)
        return True
    assert pool.submit("timed", fn).result(WAIT)
    n = jobs.TRIAL_STEPS
    assert seen[:n] == [2] * n and seen[n:2 * n] == [1] * n
    assert set(seen[2 * n:]) == {3 - slower}


def test_default_size_half_the_cores(monkeypatch):
    monkeypatch.delenv("COMPRESS_TRAIN_WORKERS", raising=False)
    monkeypatch.delenv("COMPRESS_TRAIN_THREADS", raising=False)
    assert jobs.default_workers(2) == 1 and jobs.default_threads(1, 2) == 1
    assert jobs.default_workers(1) == 1 and jobs.default_threads(1, 1) == 1
    assert jobs.default_workers(16) == 8 and jobs.default_threads(8, 16) == 1
    monkeypatch.setenv("COMPRESS_TRAIN_WORKERS", "3")
    monkeypatch.setenv("COMPRESS_TRAIN_THREADS", "2")
    assert jobs.Pool().workers == 3 and jobs.Pool().threads == 2
    monkeypatch.setattr(jobs, "_pool", None)  # the process-wide pool: made once, on first use
    assert jobs.pool() is jobs.pool() and jobs.pool().workers == 3


def test_cancel_stops_a_real_fine_tune(lenet300, small):
    """The engine's own loop: a cancelled job raises ce.Stopped inside compress() and nothing is returned."""
    pool = jobs.Pool(workers=1, threads=1)
    recipe = ce.Recipe(sparsity=0.5, finetune_epochs=3)
    job = pool.submit("real", lambda progress: ce.compress(lenet300, recipe, small, progress=progress))
    until(lambda: job.progress is not None)
    job.cancel()
    assert job.wait(WAIT) and job.state == jobs.CANCELLED
    assert job.progress.step < job.progress.total


# --- pages.common.train_run: the dashboard's side of the pool (AppTest sessions on the tiny data) ---------

def _train_page():
    import streamlit as st

    import compress_engine as ce
    from pages import common
    out = common.train_run(ce.Recipe(sparsity=0.5, finetune_epochs=1), label="Fine-tuning")
    st.metric("trained accuracy", "none" if out is None else f"{out['metrics']['accuracy']:.6f}")


def _cancel_page():
    import streamlit as st

    from pages import common
    st.toggle("Fine-tune 1 epoch", key="finetune")
    st.button("Cancel", key="cancel", on_click=common._cancel_training, args=(("k",), "finetune"))


def test_cancel_withdraws_the_job_and_turns_off_the_switch_that_asked_for_it():
    """A page whose toggle asked for the training (Pruning's "Fine-tune 1 epoch") passes it as cancel_resets: Cancel
    then stops the job, turns the toggle off and says so in a toast, and the page draws as without it, where it used
    to show only "Stopped" until a control was moved (and moving one trained again)."""
    from streamlit.testing.v1 import AppTest

    from pages import common
    at = AppTest.from_function(_cancel_page, default_timeout=60)
    at.run().toggle(key="finetune").set_value(True).run()
    started = threading.Event()
    fn, release = blocker(started)
    job = jobs.pool().submit(("cancel_resets", time.monotonic()), fn)
    started.wait(WAIT)
    at.session_state["train_jobs"] = {("k",): job}
    at.button(key="cancel").click().run()
    assert not at.exception and at.toggle(key="finetune").value is False
    assert [t.value for t in at.toast] == [common.STOPPED]
    assert job.wait(WAIT) and job.state == jobs.CANCELLED  # its only session withdrew: it stopped
    assert ("k",) not in at.session_state["train_jobs"]
    release.set()


def test_cancel_of_a_run_another_session_waits_for_says_it_goes_on():
    """Two tabs fine-tuning the same run: Cancel in one said "nothing of the interrupted run was kept", while the run
    went on for the other tab and was kept. It now says the run goes on for the other session and is kept."""
    from streamlit.testing.v1 import AppTest

    from pages import common
    at = AppTest.from_function(_cancel_page, default_timeout=60)
    at.run().toggle(key="finetune").set_value(True).run()
    started = threading.Event()
    fn, release = blocker(started)
    key = ("shared", time.monotonic())
    job = jobs.pool().submit(key, fn)
    assert jobs.pool().submit(key, fn) is job  # the other tab joined it
    started.wait(WAIT)
    at.session_state["train_jobs"] = {("k",): job}
    at.button(key="cancel").click().run()
    assert not at.exception and at.toggle(key="finetune").value is False
    assert [t.value for t in at.toast] == [common.stopped_text(1)]
    assert "the run goes on for 1 other tab or student" in at.toast[0].value
    release.set()
    assert job.wait(WAIT) and job.state == jobs.DONE  # the other tab's run finished
    # Cancel pressed as a run finishes: nobody is waiting for it any more, and it is kept (it said "goes on for 1
    # other session": a finished job keeps its count of sessions)
    done = jobs.pool().submit(("finished", time.monotonic()), lambda job: 1)
    assert done.wait(WAIT) and done.state == jobs.DONE
    at.toggle(key="finetune").set_value(True).run()
    at.session_state["train_jobs"] = {("k",): done}
    at.button(key="cancel").click().run()
    assert [t.value for t in at.toast] == [common.stopped_text(0, finished=True)]
    assert "had finished" in at.toast[0].value


def test_cancel_does_not_count_a_closed_tab_as_another_session_waiting(monkeypatch):
    """The closed tab that had asked for the same run was "1 other session" for Cancel, which then said the run goes on
    for it, and it did, for nobody. Cancel now says it stopped, and the run stops."""
    from streamlit.testing.v1 import AppTest

    from pages import common
    monkeypatch.setattr(jobs, "ALIVE_EVERY", 0.01)
    at = AppTest.from_function(_cancel_page, default_timeout=60)
    at.run().toggle(key="finetune").set_value(True).run()
    started, closed = threading.Event(), Tab()
    fn, release = blocker(started)
    key = ("orphaned", time.monotonic())
    job = jobs.pool().submit(key, fn)                                    # this session's
    assert jobs.pool().submit(key, fn, who="closed tab", alive=closed) is job
    started.wait(WAIT)
    closed.open = False
    at.session_state["train_jobs"] = {("k",): job}
    at.button(key="cancel").click().run()
    assert not at.exception and [t.value for t in at.toast] == [common.STOPPED]
    assert job.wait(WAIT) and job.state == jobs.CANCELLED
    release.set()


def _session():
    from streamlit.testing.v1 import AppTest
    return AppTest.from_function(_train_page, default_timeout=120)


def _in_thread(at):
    t = threading.Thread(target=at.run, daemon=True)
    t.start()
    return t


def _queued_job():
    """The one job waiting in the process-wide pool (behind the test's blocker)."""
    pool = jobs.pool()
    until(lambda: pool.queued() == 1)
    return pool._queue[0]


@pytest.fixture(autouse=True)
def one_worker(monkeypatch):
    """A fresh process-wide pool of one worker for each test (as on a 2-core server)."""
    monkeypatch.setattr(jobs, "_pool", jobs.Pool(workers=1, threads=1))


@pytest.fixture
def busy_pool():
    """The process-wide pool kept busy by a blocker until the test releases it (and always at the end)."""
    started = threading.Event()
    fn, release = blocker(started)
    job = jobs.pool().submit(("blocker", time.monotonic()), fn)
    started.wait(WAIT)
    yield release
    release.set()
    job.wait(WAIT)


@pytest.fixture
def compress_calls(monkeypatch):
    calls, real = [], ce.compress

    def counting(*a, **kw):
        calls.append(a[1])
        return real(*a, **kw)
    monkeypatch.setattr(ce, "compress", counting)
    return calls


def trained_accuracy(at):
    return next(m.value for m in at.metric if m.label == "trained accuracy")


def test_two_sessions_asking_for_one_fine_tune_share_one_job(tiny, busy_pool, compress_calls):
    a, b = _session(), _session()
    ta = _in_thread(a)
    job = _queued_job()
    assert job.ahead() == 1 and job.submitters == 1          # session a waits behind the blocker
    tb = _in_thread(b)
    until(lambda: job.submitters == 2)                        # session b joined it: no second job
    assert jobs.pool().queued() == 1
    busy_pool.set()
    ta.join(WAIT * 4)
    tb.join(WAIT * 4)
    assert not a.exception and not b.exception
    assert len(compress_calls) == 1
    assert trained_accuracy(a) == trained_accuracy(b) != "none"
    assert not a.session_state["train_jobs"] and len(a.session_state["trained"]) == 1
    c = _session().run()                                      # the next session: from disk, no training
    assert trained_accuracy(c) == trained_accuracy(a) and len(compress_calls) == 1


def test_a_rerun_follows_the_sessions_running_job_instead_of_starting_another(tiny, compress_calls):
    """A page rerun (any widget) interrupts the page, not the job: the next run finds it in the session."""
    at = _session()
    recipe = ce.Recipe(sparsity=0.5, finetune_epochs=1)
    from pages import common
    packed = {"metrics": {"accuracy": 0.123456}}
    job = jobs.pool().submit(("rerun", time.monotonic()), lambda progress: packed)
    at.session_state["train_jobs"] = {(common.model_name(), recipe.to_json()): job}
    at.run()
    assert not at.exception and trained_accuracy(at) == "0.123456"
    assert not compress_calls and not at.session_state["train_jobs"]


def test_a_queued_fine_tune_cancelled_keeps_nothing(tiny, busy_pool, compress_calls):
    at = _session()
    t = _in_thread(at)
    job = _queued_job()
    job.cancel()  # what the session's Cancel button does (its on_click)
    t.join(WAIT * 4)
    assert not at.exception and trained_accuracy(at) == "none"
    assert any(i.value.startswith("Stopped: nothing") for i in at.info)
    assert not at.session_state["trained"] and not at.session_state["train_jobs"] and not compress_calls


def test_following_a_job_draws_its_queue_place_progress_and_loss_without_error(tiny, busy_pool):
    """The page's loop over a queued, then running job with a loss history (the drawing is cleared at the end)."""
    at = _session()
    recipe = ce.Recipe(sparsity=0.5, finetune_epochs=1)
    from pages import common

    def fn(progress):
        for step in range(1, 40):
            progress(step, 40, 2.0 / step, 0.8 if step % 10 == 0 else None)
            time.sleep(0.02)
        return {"metrics": {"accuracy": 0.5}}
    job = jobs.pool().submit(("drawn", time.monotonic()), fn)
    at.session_state["train_jobs"] = {(common.model_name(), recipe.to_json()): job}
    threading.Timer(0.5, busy_pool.set).start()  # queued for half a second, then it runs
    at.run()
    assert not at.exception and trained_accuracy(at) == "0.500000" and len(job.losses) == 39


def test_a_running_jobs_line_names_its_part_and_the_time_that_part_has_left():
    from pages.common import progress_text
    scan = jobs.Progress(3, 9, None, None, "scanning each layer, setting", began=100.0, first=1)
    assert progress_text("Fit in 20 KB", scan, now=130.0) == \
        "Fit in 20 KB: scanning each layer, setting 3 of 9 (about 2 min left)"  # 15 s a setting since the 1st: 90 s
    # the part's first report alone gives no pace (its time since the part began is not in `began`)
    assert progress_text("Fit in 20 KB", scan._replace(step=1), now=100.0) == \
        "Fit in 20 KB: scanning each layer, setting 1 of 9"
    tune = jobs.Progress(300, 900, 0.4123, 0.871, "fine-tuning, step", began=130.0, first=0)
    assert progress_text("Fit in 20 KB", tune, now=190.0) == \
        "Fit in 20 KB: fine-tuning, step 300 of 900, loss 0.412, test accuracy 87.1 % (about 2 min left)"
    assert progress_text("Fine-tuning", jobs.Progress(0, 10, None, None), now=5.0) == "Fine-tuning: step 0 of 10"
    answers = jobs.Progress(0, 0, None, None, "the dense model's answers", began=190.0)  # a part with no steps
    assert progress_text("Fit in 20 KB", answers, now=200.0) == "Fit in 20 KB: the dense model's answers…"


def test_training_says_which_run_this_session_waits_for(tiny):
    """common.training(recipe): the session's unfinished job, so a page can keep following it after a rerun."""
    def page():
        import streamlit as st

        import compress_engine as ce
        from pages import common
        job = common.training(ce.Recipe(sparsity=0.5, finetune_epochs=1))
        st.metric("pending", "none" if job is None else job.state)

    from pages import common
    recipe = ce.Recipe(sparsity=0.5, finetune_epochs=1)
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_function(page, default_timeout=60)
    started = threading.Event()
    fn, release = blocker(started)
    job = jobs.pool().submit(("pending", time.monotonic()), fn)
    at.session_state["train_jobs"] = {(common.model_name(), recipe.to_json()): job}
    started.wait(WAIT)
    assert next(m.value for m in at.run().metric if m.label == "pending") == jobs.RUNNING
    release.set()
    job.wait(WAIT)
    assert next(m.value for m in at.run().metric if m.label == "pending") == "none"
