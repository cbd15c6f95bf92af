"""Compare with a single saved run drew a log x axis with one tick, "28.123" (viz.log_ticks' tick on the one
value), unlike every other axis's whole-number ticks. One value now gets whole ticks around it, in range."""

import math
import sys

from test_app import ROOT

sys.path.insert(0, str(ROOT))


def test_a_log_axis_over_one_value_has_whole_ticks_around_it():
    from pages import charts
    axis = charts.log_ticks([28.123, 28.123])
    assert len(axis["tickvals"]) >= 2 and "28.123" not in axis["ticktext"]
    assert all("." not in t for t in axis["ticktext"])  # read like the others: "20", "30"
    lo, hi = axis["range"]
    assert lo < math.log10(28.123) < hi and sum(lo <= math.log10(v) <= hi for v in axis["tickvals"]) >= 2
    assert "range" not in charts.log_ticks([20.4, 26.1, 80])  # several values: as before
