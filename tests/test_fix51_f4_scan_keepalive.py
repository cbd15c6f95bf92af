"""fit_budget dropped its scan's reports inside a point (accuracy None), so on a big layer the CLI's 'sensitivity
scan: n/189 settings' went silent for minutes and a False returned to stop was only seen at the end of a point. The
reports pass through now, and a False returned to one stops the scan at once."""

import pytest

import compress_engine as ce
from compress_engine.core import train


def test_fit_budget_passes_the_scans_keepalives_on_and_stops_at_one(lenet300, small, tmp_path, monkeypatch):
    monkeypatch.setattr(train, "REPORT_SECONDS", 0.0)  # every Gram chunk and refit unit is "long" now
    seen = []

    def progress(*a):
        seen.append(a)
        return a[3] is not None  # False at the first report inside a point

    with pytest.raises(train.Stopped):
        ce.fit_budget(lenet300, small, 2000, cache_dir=tmp_path, scan_progress=progress)
    assert seen == [(0, seen[0][1], None, None)]  # the first layer's Gram matrix, before any point was done
