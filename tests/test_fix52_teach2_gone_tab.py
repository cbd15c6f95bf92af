"""After a reload, the teacher's own old tab counted as "another session" for SESSION_GRACE s: the progress said
"(also for 1 other session)" and Cancel said "the run goes on for 1 other session" and did not stop it. Streamlit's
runtime keeps a reloaded or closed tab's session as it keeps a network blip's (both disconnected, stored for a
reconnect), so it stays alive for its grace, but a submitter with no tab connected (jobs.present) is not counted as
waiting: others() leaves it out and a Cancel withdraws it too. "session" meant nothing to a class: the texts say
"tab or student"."""

import threading

import pytest
from test_jobs import WAIT

import compress_engine as ce
from compress_engine.playground import jobs


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


@pytest.fixture
def old_tab_gone(monkeypatch):
    """The old tab reloaded: its session is within its grace (alive) but no tab is connected to it."""
    monkeypatch.setattr(jobs, "present", lambda who, alive: who != "old tab", raising=False)


def test_a_reloaded_tabs_old_session_is_not_someone_waiting(old_tab_gone):
    pool = jobs.Pool(workers=1, threads=1)
    fn, release = blocker()
    try:
        job = pool.submit("run", fn, who="old tab", alive=lambda: True)  # alive: within its grace
        assert pool.join("run", who="new tab", present=lambda who, alive: who != "old tab") is job
        assert job.others(who="new tab") == 0  # "(also for 1 other session)" no more
        job.cancel(who="new tab")
        assert job.wait(WAIT) and job.state == jobs.CANCELLED  # Cancel stops it: nobody else is waiting
    finally:
        release.set()


def test_a_connected_other_tab_still_counts_and_keeps_the_run(old_tab_gone):
    pool = jobs.Pool(workers=1, threads=1)
    fn, release = blocker()
    try:
        job = pool.submit("run", fn, who="student", alive=lambda: True)
        pool.submit("run", fn, who="teacher", alive=lambda: True)
        assert job.others(who="teacher") == 1
        assert job.cancel(who="teacher") in (jobs.QUEUED, jobs.RUNNING)  # goes on for the student
        assert not job.wait(0.05)
    finally:
        release.set()
    assert job.result(WAIT) == "released"


def test_the_texts_name_tabs_or_students_not_sessions():
    from pages import common
    one, two = common.stopped_text(1), common.stopped_text(2)
    assert "1 other tab or student" in one and "2 other tabs or students" in two
    assert "session" not in one + two


def test_the_curve_note_says_switch_back_not_go_back(fmnist):
    """Pruning's note after a model switch said "Go back and press the button", which invites the browser's Back
    (it leaves the page's settings behind). curve_stopped is run alone, from the page's source."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_string(
        "import ast, pathlib\n"
        "import streamlit as st\n"
        "import compress_engine as ce\n"
        "from pages import common\n"
        "st.session_state['model'] = 'lenet-5'\n"
        "tree = ast.parse(pathlib.Path('pages/pruning.py').read_text())\n"
        "fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == 'curve_stopped')\n"
        "ns = {'common': common, 'ce': ce}\n"
        "exec(compile(ast.Module([fn], []), 'pruning', 'exec'), ns)\n"
        "st.write(ns['curve_stopped'](('lenet-300-100', ''), None))\n", default_timeout=60).run()
    assert not at.exception, at.exception
    (text,) = [m.value.replace("\\", "") for m in at.markdown]
    assert "Go back" not in text and "Switch the model back to lenet-300-100 and press" in text
