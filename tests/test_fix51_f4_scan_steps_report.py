"""scan's docstring promised progress at least every train.REPORT_SECONDS, but only a refit's Gram matrix and solves
reported inside a point: without refit a big layer went a whole point without a call (5-8 CPU s on a 16M-weight
layer), and the dense bytes of every layer, before the first point, longer. scan now reports between a point's steps
and between the layers' dense bytes too, and says that a single step still goes that long without one."""

import pytest

from compress_engine.core import sensitivity, train

KW = dict(sparsities=(0.0, 0.5), clusters=(None, 16), split="train", subset=300, use_cache=False)


def test_a_scan_without_refit_reports_inside_its_points(small, lenet300, monkeypatch):
    monkeypatch.setattr(train, "REPORT_SECONDS", 0.0)  # every step is "long" now
    calls = []
    sensitivity.scan(lenet300, small, progress=lambda *a: calls.append(a), **KW)
    points = [c[0] for c in calls if c[3] is not None]
    beats = [c[0] for c in calls if c[3] is None]
    assert points == list(range(1, 13))
    assert beats[:4] == [0, 0, 0, 0]  # the three layers' dense bytes, then the first point's steps
    assert all(beats.count(step) >= 3 for step in range(12))  # before every point: its clustering and evaluation


def test_a_scan_without_refit_stops_inside_a_point(small, lenet300, monkeypatch):
    monkeypatch.setattr(train, "REPORT_SECONDS", 0.0)
    calls = []
    with pytest.raises(train.Stopped):
        sensitivity.scan(lenet300, small, progress=lambda *a: calls.append(a) or a[3] is not None, **KW)
    assert calls == [(0, 12, None, None)]
