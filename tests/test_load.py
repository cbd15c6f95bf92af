"""Five concurrent sessions on one server (bench/load.py's driver, short), as browser pages and as Streamlit protocol
clients: every session gets its redraws and nothing errs. One of them starts a fine-tune on Pipeline (through the
training pool) while the others move sliders on Pruning, Clustering and Quantization. And the training pool as a
user sees it: a second fine-tune shows its place in the queue and its Cancel takes it out.

No timing is asserted: bench/load.py reports latencies (and N = 1 / 5 / 10 / 30); a test only checks that
every press was answered, by a redraw, without an error.
"""

import asyncio
import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import load  # noqa: E402
from chromium import CHROMIUM, FLAGS, have_chromium, server_env, streamlit_server  # noqa: E402

SESSIONS = 5


@pytest.fixture(scope="module")
def chromium():
    if not have_chromium():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: `bash scripts/dev.sh test` installs Debian's chromium")
        pytest.skip(f"no Chromium at {CHROMIUM} (install it with `apt-get install chromium`)")


def check_five_sessions(row, sessions, finetunes=1):
    """Every session answered by redraws, no error, and the fine-tune session's run (if any) finished."""
    problems = {s.index: s.notes for s in sessions if s.notes}
    assert row["errors"] == 0, problems
    assert all(len(s.latencies) >= 2 for s in sessions), {s.index: len(s.latencies) for s in sessions}
    tuned = [s for s in sessions if s.finetunes]
    assert len(tuned) == finetunes and all(s.finetune_s is not None for s in tuned)


def test_five_protocol_sessions_all_get_their_redraws_without_errors(fmnist):
    """The same sessions as Streamlit protocol clients (bench/protocol.py: the server's websocket, no browser)."""
    threads = ["--threads", os.environ["OMP_NUM_THREADS"]] if os.environ.get("OMP_NUM_THREADS") else []
    args = load.parse_args(["--clients", "protocol", "--seconds", "6", "--think", "0.5", "2", "--timeout", "120",
                            "--ramp", "1", "--min-presses", "2", *threads])
    row, sessions = load.measure(SESSIONS, args)
    print(f"\nload, {SESSIONS} protocol sessions: {row}")
    assert row["clients"] == "protocol" and all(isinstance(s, load.ProtocolSession) for s in sessions)
    check_five_sessions(row, sessions)


@pytest.mark.browser
def test_five_sessions_all_get_their_redraws_without_errors(chromium, fmnist):
    """Five Chromium tabs sliding at once. Sliders only: a fine-tune among five sessions is the protocol test's
    (above), and one pressed, followed and cancelled in Chromium the queue test's (below); here it cost 20-30 s."""
    args = load.parse_args(["--seconds", "6", "--ramp", "1", "--think", "0.5", "2", "--timeout", "120",
                            "--min-presses", "2", "--no-finetune"])
    row, sessions = load.measure(SESSIONS, args)
    print(f"\nload, {SESSIONS} sessions: {row}")
    check_five_sessions(row, sessions, finetunes=0)


@pytest.mark.browser
def test_a_second_fine_tune_shows_its_queue_place_and_cancels(chromium, fmnist):
    """Two sessions on Pipeline, one training worker: the second run waits behind the first, says so, and its
    Cancel takes it out of the line while the first goes on training (its step moves on); the first's own Cancel
    then ends it. (The first runs 5 epochs only so that the second surely queues behind it: waiting them out took
    100 s of the suite, and a fine-tune finishing under load is the five-session tests' check.)"""
    args = load.parse_args(["--timeout", "120"])

    from playwright.async_api import async_playwright

    async def drive(url):
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            try:
                await load.warm_up(browser, url, args)
                first, second = (load.Session(i, browser, url, args) for i in (4, 9))
                for s in (first, second):
                    await s.start()
                await first.start_finetune(1, n_epochs=5)  # long enough for the second to queue behind it
                await first.page.get_by_text("Fine-tuning: step").first.wait_for(timeout=120_000)  # it runs
                t2 = await second.start_finetune(2)
                await second.follow_finetune(t2, cancel_if_queued=True)
                step = first.page.get_by_text("Fine-tuning: step").first
                before = await step.inner_text()
                for _ in range(1200):  # up to 120 s for the first run's next progress report
                    now = await step.inner_text()
                    if now != before:
                        break
                    await asyncio.sleep(0.1)
                first.went_on = (before, now)
                await first.cancel_finetune()
                return first, second
            finally:
                await browser.close()

    with tempfile.TemporaryDirectory() as tmp:
        env = server_env(COMPRESS_TRAIN_WORKERS=1, COMPRESS_STORE=f"{tmp}/runs.sqlite", COMPRESS_TRAINED=f"{tmp}/trained")
        with streamlit_server(env=env, timeout=120) as (url, _):
            first, second = asyncio.run(drive(url))
    assert second.saw_queue and second.cancelled and second.finetune_s is None
    before, after = first.went_on
    assert after != before, f"the first run stopped at {before!r} when the second cancelled"
    assert first.cancelled and not first.saw_queue
    assert first.errors == second.errors == 0, first.notes + second.notes
