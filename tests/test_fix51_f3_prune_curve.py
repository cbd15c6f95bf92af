"""Pruning's "Compute the fine-tuned curve" button trained every point inside the page run (common.run), beside the
training pool every other training of the dashboard queues in: with two students fine-tuning, a third's curve trained
alongside them on the 2 cores, with no place in line and no Cancel, and moving any control stopped it. Each point now
goes through the pool as the fine-tune switch's run does (its place in line, progress, Cancel), one at a time, the
finished ones kept; a rerun (another control moved) goes on with the curve."""

import threading

from streamlit.testing.v1 import local_script_runner
from test_jobs import until

import compress_engine as ce
from compress_engine.playground import jobs
from test_app import page
from test_app_techniques import finetuned_points

GRID = (0, 30, 50, 70, 80, 85, 90, 93, 95, 97, 99)  # pages/pruning.py's curve
POINTS = len(GRID) - 1


def watch(monkeypatch, fail=(), block=None):
    """Record the pool's submissions and every fine-tune compress() (its sparsity %, its thread); a fine-tune at a
    sparsity in `fail` (a set, read at each call) raises, at `block` (sparsity, threading.Event) it waits for the
    event."""
    submitted, trained = [], []
    submit = jobs.Pool.submit
    monkeypatch.setattr(jobs.Pool, "submit", lambda self, key, fn, **kw: submitted.append(key) or
                        submit(self, key, fn, **kw))
    real = ce.compress

    def compress(model, recipe, *a, **kw):
        if recipe.finetune_epochs:
            p = round(100 * recipe.sparsity)
            trained.append((p, threading.current_thread().name))
            if p in fail:
                raise RuntimeError("out of memory")
            if block and p == block[0]:
                block[1].wait(30)
        return real(model, recipe, *a, **kw)
    monkeypatch.setattr(ce, "compress", compress)
    return submitted, trained


def run_until(at, cond, limit=60):
    """at.run(), stopped (as a rerun stops it: the page's runs in the pool go on) as soon as cond() holds, instead of
    waiting out a timeout while the page follows a training."""
    def finished_or(runner, timeout):
        until(lambda: runner.script_stopped() or cond(), timeout=limit)
        if not runner.script_stopped():
            runner.request_stop()
            runner.join()
    real = local_script_runner.require_widgets_deltas
    local_script_runner.require_widgets_deltas = finished_or
    try:
        return at.run()
    finally:
        local_script_runner.require_widgets_deltas = real


def training():
    """Whether the pool runs a job now (the curve's point the test blocks)."""
    return jobs.pool().running() == 1


def test_each_point_of_the_curve_trains_in_the_pool(tiny, monkeypatch):
    from pages import common
    at = page("pruning")
    submitted, trained = watch(monkeypatch)
    real, asked = common.train_run, []
    monkeypatch.setattr(common, "train_run", lambda *a, **kw: asked.append(kw) or real(*a, **kw))
    at.button(key="prune_ft_curve").click().run()
    assert not at.exception and not at.error
    assert finetuned_points(at) == set(GRID)
    assert [p for p, _ in trained] == list(GRID[1:])  # one at a time, in order, each once
    assert all(thread.startswith("train-worker") for _, thread in trained), trained  # none in the page run
    assert len(submitted) == len(set(submitted)) == POINTS
    assert [kw["label"] for kw in asked] == [f"Fine-tuning at {p} % sparsity (curve point {i} of {POINTS})"
                                             for i, p in enumerate(GRID[1:], 1)]
    assert all(kw["cancel_resets"] for kw in asked)  # Cancel stops the curve: the button comes back
    assert "prune_ft_curve" not in [b.key for b in at.button]
    again = page("pruning")  # a reload, another student: the curve is kept
    assert finetuned_points(again) == set(GRID) and "prune_ft_curve" not in [b.key for b in again.button]


def test_a_point_that_fails_keeps_the_points_before_it(tiny, monkeypatch):
    at = page("pruning")
    fail = {70}
    _, trained = watch(monkeypatch, fail=fail)
    at.button(key="prune_ft_curve").click().run()
    assert not at.exception
    (error,) = at.error
    assert error.value.startswith(f"Fine-tuning at 70 % sparsity (curve point 3 of {POINTS}) failed (RuntimeError: "
                                  "out of memory)")
    assert any("finished before it are kept" in c.value for c in at.caption)
    assert at.button(key="prune_ft_curve").label == f"Compute the fine-tuned curve ({POINTS - 2} × 1 epoch)"
    at.slider(key="prune_sparsity").set_value(60).run()  # nothing more trains until asked
    assert finetuned_points(at) == {0, 30, 50} and [p for p, _ in trained] == [30, 50, 70]
    fail.clear()
    at.button(key="prune_ft_curve").click().run()  # the rest, not the kept ones
    assert not at.exception and not at.error and finetuned_points(at) == set(GRID)
    assert [p for p, _ in trained] == [30, 50, 70, *GRID[3:]]


def test_a_rerun_goes_on_with_the_curve(tiny, monkeypatch):
    """The page run following a point stops (here: once the 50 % point trains, as another control's rerun stops
    it); the next run follows the same job in the pool, then trains the rest."""
    at = page("pruning")
    release = threading.Event()
    submitted, trained = watch(monkeypatch, block=(50, release))
    try:
        at.button(key="prune_ft_curve").click()
        run_until(at, lambda: trained and trained[-1][0] == 50)  # stopped as another control's rerun stops it
    finally:
        release.set()
    at.slider(key="prune_sparsity").set_value(60).run()
    assert not at.exception and not at.error
    assert finetuned_points(at) == set(GRID)
    assert [p for p, _ in trained] == list(GRID[1:]) and len(submitted) == len(set(submitted)) == POINTS
