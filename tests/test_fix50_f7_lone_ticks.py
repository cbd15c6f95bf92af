"""Compare with one run at 123.39 KB drew its axis from 82.3 to 185.1 KB with ticks only at "90" and "100", at the
far left (log_ticks gave 80 90 100, 80 outside the range; 1,229.6 got 800 900 1,000, all below the value): the
densest tick set that fitted had no 150. A lone value now gets at least one whole tick on each side of it, every
tick inside the range drawn."""

import math
import sys

import pytest

from test_app import ROOT

sys.path.insert(0, str(ROOT))


@pytest.mark.parametrize("value", [10.0, 11.208, 123.39, 1229.6, 28.123, 0.37, 5e6])
def test_a_lone_value_has_a_tick_on_each_side_inside_the_range(value):
    from pages import charts
    axis = charts.log_ticks([value])
    lo, hi = (10 ** x for x in axis["range"])
    ticks = axis["tickvals"]
    assert all(lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9) for t in ticks), (ticks, lo, hi)
    assert any(t < value for t in ticks) and any(t > value for t in ticks), ticks
    assert lo < value < hi and math.isclose(hi / value, value / lo)


def test_the_lone_ticks_are_round_numbers():
    from pages import charts
    assert charts.log_ticks([123.39])["ticktext"] == ["100", "150"]
    assert charts.log_ticks([1229.6])["ticktext"] == ["1,000", "1,500"]
