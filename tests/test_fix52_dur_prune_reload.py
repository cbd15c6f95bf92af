"""Pruning after a browser reload in the middle of a fine-tuned curve point or of the fine-tune switch's run: a reload
is a new session, which lost the curve's button press and the switch, so the page showed the button (the switch off)
and nothing of the run still training in the pool for the tab before the reload, whose result would be kept. Pruning
never asked the pool for it (common.training joins such a run; Distillation, Pipeline and Export call it, Pruning did
not). It now joins it (common.rejoined) and shows it as the tab before the reload did: its place in line or progress,
and Cancel; the switch is on again; the curve's point is kept, and the rest of the curve waits for the button (whether
it was asked for went with the old session: the point may be a fine-tune switch's)."""

import threading

import pytest
from test_fix51_f3_prune_curve import run_until, training, watch
from test_jobs import WAIT

from compress_engine.playground import jobs
from test_app import page


class Tab:
    """A submitter's alive(): a browser tab's session, counting as waiting until its grace is over."""

    def __init__(self):
        self.open = True

    def __call__(self):
        return self.open


@pytest.fixture(autouse=True)
def one_worker(monkeypatch):
    monkeypatch.setattr(jobs, "_pool", jobs.Pool(workers=1, threads=1))


@pytest.fixture
def reload(monkeypatch):
    """-> (tab, reloaded()): pages run as session "old tab" until reloaded() makes the AppTest's own sessions the
    ones after a reload (the old tab, in its grace, still counts as waiting, but is not there: common._session_present)."""
    from pages import common
    tab, who = Tab(), {"now": "old tab"}
    monkeypatch.setattr(jobs, "whoami", lambda: (who["now"], tab) if who["now"] else common._whoami())
    monkeypatch.setattr(common, "_session_present", lambda w, alive: w != "old tab" and (alive is None or alive()))

    def reloaded():
        who["now"] = None
    return tab, reloaded


def followed(job):
    """Whether a session follows `job` on its page (its progress bar drawn: the follow loop asked its place twice)."""
    looked, ahead = [], job.ahead
    job.ahead = lambda: looked.append(1) or ahead()
    return lambda: len(looked) >= 2


def bars(at):
    return [e.proto.text for e in at.main if type(e).__name__ == "Progress"]


def buttons(at):
    return [b.key or "" for b in at.button]


def test_a_reload_mid_curve_shows_the_point_training(tiny, monkeypatch, reload):
    tab, reloaded = reload
    release = threading.Event()
    _, trained = watch(monkeypatch, block=(30, release))
    try:
        old = page("pruning")
        old.button(key="prune_ft_curve").click()
        run_until(old, training)  # the tab before the reload follows the curve's first point
        (job,) = jobs.pool()._running
        reloaded()
        new = run_until(page_run("pruning"), followed(job))
        assert not new.exception and not new.error
        assert "prune_ft_curve" not in buttons(new), buttons(new)  # not the button alone:
        assert any(k.startswith("train_cancel:") for k in buttons(new))  # the run's Cancel,
        (bar,) = bars(new)  # and its progress
        assert bar.startswith("Fine-tuning at 30 % sparsity (a curve point already training: the rest of the curve "
                              "waits for the button): "), bar
        tab.open = False  # the old tab's grace is over: the new session keeps the point going (it drops at a report)
        release.set()
        assert job.wait(WAIT) and job.state == jobs.DONE
        new.run()  # the point is kept; the rest of the curve waits for the button (the old tab's request went with it)
        assert not new.exception and not new.error and not bars(new)
        assert [p for p, _ in trained] == [30]
        assert new.button(key="prune_ft_curve").label == "Compute the fine-tuned curve (9 × 1 epoch)"
    finally:
        release.set()


def page_run(name):
    """A new session opening pages/<name>.py (not run yet: the caller runs it)."""
    from test_app import app
    at = app()
    at.switch_page(f"pages/{name}.py")
    return at


def test_a_reload_mid_fine_tune_shows_it_with_the_switch_on(tiny, monkeypatch, reload):
    tab, reloaded = reload
    release = threading.Event()
    old = page("pruning")
    pct = old.slider(key="prune_sparsity").value  # where a new session opens too
    _, trained = watch(monkeypatch, block=(pct, release))
    try:
        old.toggle(key="prune_finetune").set_value(True)
        run_until(old, training)
        (job,) = jobs.pool()._running
        reloaded()
        new = run_until(page_run("pruning"), followed(job))
        assert not new.exception and not new.error
        assert new.toggle(key="prune_finetune").value is True
        assert any(k.startswith("train_cancel:") for k in buttons(new))
        (bar,) = bars(new)
        assert bar.startswith("Fine-tuning 1 epoch: "), bar
        tab.open = False
        release.set()
        assert job.wait(WAIT) and job.state == jobs.DONE
        new.run()
        assert not new.exception and not new.error and [p for p, _ in trained] == [pct]  # trained once
        assert new.toggle(key="prune_finetune").value is True and not bars(new)  # the fine-tuned result, shown
    finally:
        release.set()
