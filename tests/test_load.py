"""Five concurrent browser sessions on one server (bench/load.py's driver, short): every session gets its redraws
and nothing errs. One of them starts a fine-tune on Pipeline (through the training pool) while the others move
sliders on Pruning, Clustering and Quantization.

No timing is asserted: bench/load.py reports latencies (and N = 1 / 5 / 10 / 30); a test only checks that
every press was answered, by a redraw, without an error.
"""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import load  # noqa: E402
from chromium import CHROMIUM, have_chromium  # noqa: E402

pytestmark = pytest.mark.browser

SESSIONS = 5


@pytest.fixture(scope="module")
def chromium():
    if not have_chromium():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: `bash scripts/dev.sh test` installs Debian's chromium")
        pytest.skip(f"no Chromium at {CHROMIUM} (install it with `apt-get install chromium`)")


def test_five_sessions_all_get_their_redraws_without_errors(chromium, fmnist):
    args = load.parse_args(["--seconds", "20", "--think", "0.5", "2", "--timeout", "120"])
    row, sessions = load.measure(SESSIONS, args)
    print(f"\nload, {SESSIONS} sessions: {row}")
    problems = {s.index: s.notes for s in sessions if s.notes}
    assert row["errors"] == 0, problems
    assert all(len(s.latencies) >= 2 for s in sessions), {s.index: len(s.latencies) for s in sessions}
    tuned = [s for s in sessions if s.finetunes]
    assert len(tuned) == 1 and all(s.finetune_s is not None for s in tuned)
