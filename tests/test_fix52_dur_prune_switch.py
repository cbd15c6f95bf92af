"""Pruning: the sidebar's model switched while the fine-tuned curve trained (its button pressed, a point training) left
that point training for nobody, unsaid, holding the training worker (on 2 cores the only one), and the curve of the
model switched away from went on again, unasked, on the way back. The point in flight is now withdrawn as Cancel and the
slider's supersede withdraw a run (common._withdraw: it stops unless another session waits for it, then goes on for
them and is kept), the rest of the curve is not trained, and the page says so where the curve was."""

import re
import threading

import pytest
from test_fix51_f3_prune_curve import run_until, training, watch
from test_jobs import WAIT

from compress_engine.playground import jobs
from test_app import page


@pytest.fixture(autouse=True)
def one_worker(monkeypatch):
    monkeypatch.setattr(jobs, "_pool", jobs.Pool(workers=1, threads=1))


def switch(at, model):
    """The sidebar's model switched (its widget key is "model")."""
    at.session_state["model"] = model
    return at.run()


def said(at):
    return [re.sub(r"\\(.)", r"\1", i.value) for i in at.info if "fine-tuned curve of" in i.value]


def test_switching_the_model_mid_curve_withdraws_the_point_and_says_so(tiny, monkeypatch):
    release = threading.Event()
    _, trained = watch(monkeypatch, block=(30, release))
    try:
        at = page("pruning")
        at.button(key="prune_ft_curve").click()
        # its fine-tune begun, not only the job marked running: the worker may not have reached compress() yet
        run_until(at, lambda: training() and trained)
        (job,) = jobs.pool()._running  # the curve's first point, training
        assert [p for p, _ in trained] == [30]
        switch(at, "lenet-5")
        assert not at.exception and not at.error
        (text,) = said(at)
        assert text == ("You switched the model to lenet-5, so the fine-tuned curve of lenet-300-100 stopped. Its "
                        "point at 30 %, which was training, stopped: nothing of it is kept. The points finished "
                        "before are kept; the rest are not trained. Switch the model back to lenet-300-100 and press "
                        "**Compute the fine-tuned curve** to compute them.")
        release.set()
        assert job.wait(WAIT) and job.state == jobs.CANCELLED  # nobody else asked for it: it stopped
        switch(at, "lenet-300-100")  # back: nothing trains until asked
        assert not at.exception and not at.error and not said(at)
        assert "prune_ft_curve" in [b.key for b in at.button] and [p for p, _ in trained] == [30]
        assert jobs.pool().running() == jobs.pool().queued() == 0
    finally:
        release.set()


def test_a_point_another_session_waits_for_goes_on_for_it(tiny, monkeypatch):
    release = threading.Event()
    watch(monkeypatch, block=(30, release))
    try:
        at = page("pruning")
        at.button(key="prune_ft_curve").click()
        run_until(at, training)
        (job,) = jobs.pool()._running
        job._subs.append(("another student", None))  # the same point asked for by another session, still there
        switch(at, "lenet-5")
        (text,) = said(at)
        assert ("Its point at 30 % goes on for 1 other tab or student that asked for it, and is kept when it finishes."
                in text), text
        assert job.state == jobs.RUNNING and [w for w, _ in job._subs] == ["another student"]
    finally:
        release.set()
    assert job.wait(WAIT) and job.state == jobs.DONE


def test_switching_the_model_mid_fine_tune_withdraws_it_and_says_so(tiny, monkeypatch):
    """The same for the fine-tune switch's run: the switch is off again for the new model, and its run of the old one
    trained on for nobody, unsaid (switching back does not show it either: the switch is off there too)."""
    release = threading.Event()
    try:
        at = page("pruning")
        pct = at.slider(key="prune_sparsity").value
        _, trained = watch(monkeypatch, block=(pct, release))
        at.toggle(key="prune_finetune").set_value(True)
        run_until(at, lambda: training() and trained)  # its fine-tune begun (as above)
        (job,) = jobs.pool()._running
        switch(at, "lenet-5")
        assert not at.exception and not at.error
        texts = [re.sub(r"\\(.)", r"\1", i.value) for i in at.info if "You switched the model" in i.value]
        assert texts == [f"You switched the model to lenet-5. The fine-tune of lenet-300-100 at {pct} %, which was "
                         "training, stopped: nothing of it is kept."], texts
        release.set()
        assert job.wait(WAIT) and job.state == jobs.CANCELLED
        assert [p for p, _ in trained] == [pct]
    finally:
        release.set()
