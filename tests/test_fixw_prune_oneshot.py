"""Pruning with "Fine-tune 1 epoch" on: a slider move shows the one-shot result at the new sparsity while its fine-tune
is queued or running, labelled so, and the fine-tuned one when it is done.

In a teacher's class demo (ResNet-8) nudging the slider from 40 % to 50 % queued a fine-tune of minutes, and meanwhile
the metric cards were gone and every chart stayed greyed out at 40 %."""

import json
import threading
import time

import pytest
from test_jobs import WAIT, until
from test_app import page

import compress_engine as ce
from compress_engine.playground import jobs
from conftest import plots



@pytest.fixture(autouse=True)
def one_worker(monkeypatch):
    monkeypatch.setattr(jobs, "_pool", jobs.Pool(workers=1, threads=1))


def current_marker(at):
    specs = [json.loads(c) for c in plots(at)]
    curve = next(s for s in specs if s["layout"].get("title", {}).get("text", "").startswith("Accuracy vs sparsity"))
    return next(t["name"] for t in curve["data"] if t.get("name", "").startswith("current"))


def test_a_slider_move_shows_the_one_shot_result_while_its_fine_tune_runs(tiny, monkeypatch):
    oneshot = page("pruning")
    oneshot.slider(key="prune_sparsity").set_value(50).run()
    expected = {m.label: m.value for m in oneshot.metric}

    at = page("pruning")
    at.slider(key="prune_sparsity").set_value(40).run()
    at.toggle(key="prune_finetune").set_value(True).run()   # 40 %, fine-tuned (seconds on the tiny data)
    assert not at.exception and not at.error and current_marker(at) == "current (fine-tuned)"

    gate, real = threading.Event(), ce.compress

    def gated(*a, **kw):  # 50 %'s fine-tune is still running while the page draws
        if kw.get("progress") is not None:
            gate.wait(WAIT * 2)
        return real(*a, **kw)
    monkeypatch.setattr(ce, "compress", gated)
    at.slider(key="prune_sparsity").set_value(50)
    run = threading.Thread(target=at.run, daemon=True)
    run.start()
    try:
        until(lambda: jobs.pool().running() == 1)
        (job,) = jobs.pool()._running
        time.sleep(1.0)     # the page draws on meanwhile (with the fix; without it, it waits in train_run)
        job.cancel(everyone=True)  # stop it here so the page run ends and its elements can be read
    finally:
        gate.set()
    run.join(WAIT * 4)
    assert not at.exception
    # the cards and charts are the one-shot run's at 50 %, said so
    assert {m.label: m.value for m in at.metric if m.label in expected} == expected
    assert any("one-shot" in i.value and "50 %" in i.value for i in at.info)
    assert current_marker(at) == "current (one-shot, fine-tuning…)"
