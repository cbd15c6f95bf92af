"""bench/latency.py times a slider press inside the page (every chart and the accuracy card checked at each
animation frame, from the key's own timestamp). Its poll from outside had read the accuracy card of the run before
the press: Streamlit marks a page's elements stale only once the new run has started, so a poll before that found
the old card, not stale, with a number (Quantization's "accuracy shown 0.10 s"). Here the press comes while the
page's run is still going (a second after its card and chart are drawn), so the new run starts late: neither its
card nor its chart can count before it started, and the card's value must be the new run's."""

import sys
import time
from pathlib import Path

import pytest

from conftest import app_tab

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

LATE = 3.0  # s each run of the app goes on after drawing its card and chart (Plotly's first draw takes ~1 s)

APP = f"""import time
import plotly.graph_objects as go
import streamlit as st

v = st.slider("value", 0, 99, 50)
st.metric("Test accuracy", f"{{v}}.00 %")
st.plotly_chart(go.Figure(go.Scatter(x=[0, 1], y=[0, v])))
time.sleep({LATE})  # the run goes on: a press now waits for its end before the next run starts
"""


@pytest.mark.browser
def test_a_press_counts_the_new_runs_card_and_chart_not_the_old_ones():
    import latency as L
    with app_tab(APP) as (tab, url):
        tab.page.goto(url)
        tab.wait(time.perf_counter(), lambda: tab.js(L.FIRST_CHART), "first chart", timeout=60, settle=False)
        tab.slider().focus()  # at once: the first run is still asleep
        t = time.perf_counter()
        chart, (shown, text), redrawn, ended, note = L.press(tab, "ArrowRight", accuracy=True)
        # the new run starts once the first one has ended
        started = next(at - t for at, kind, _ in tab.events if at >= t and kind == "finished")
        assert started > 0.2  # the press did come while the first run was going
        assert text == "51.00 %"
        # the first run's end is the websocket's, seen by this process after the page saw it: 0.08 s later in a full
        # suite's run on both cores (the old poll's card came 1.3-1.8 s before the end)
        slack = 0.3
        assert shown >= started - slack and chart >= started - slack, (started, shown, chart, note)
        assert redrawn >= max(chart, ended) and "1 chart changed" in note
