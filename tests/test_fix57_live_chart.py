"""Charts that a rerun updates in place (pages/live_chart): st.plotly_chart's element id hashes the figure, so each
changed figure was a new element, drawn by Plotly from nothing; the component keeps its key from run to run and
the browser redraws it with Plotly.react. Plotly.js is served by the app itself (static serving), so the page
makes no outside request."""

import json
import sys
import time
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio
import pytest
from streamlit import config
from streamlit.testing.v1 import AppTest

from conftest import app_tab, plots

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

SCRIPT = f"""import sys
sys.path.insert(0, {str(ROOT)!r})
import plotly.graph_objects as go
import streamlit as st
from pages import live_chart

v = st.slider("value", 0, 99, 50)
live_chart.draw(st.container(), go.Figure(go.Scatter(x=[0, 1], y=[0, v])))
slot = st.empty()
for i in range(3):  # one slot drawn three times in a run, as the training-loss chart is while training goes
    live_chart.draw(slot.container(), go.Figure(go.Bar(y=[i])))
"""


def ids(at):
    return [c.proto.id for c in at.get("bidi_component")]


def test_the_component_carries_the_figure_plotly_chart_would_and_a_served_plotly_js(tmp_path):
    app = tmp_path / "app.py"
    app.write_text(SCRIPT)
    at = AppTest.from_file(str(app), default_timeout=60).run()
    assert not at.exception, at.exception
    data = [json.loads(c.proto.json) for c in at.get("bidi_component")]
    assert data[0]["spec"] == pio.to_json(go.Figure(go.Scatter(x=[0, 1], y=[0, 50])), validate=False)
    import plotly
    from pages import live_chart
    assert {d["src"] for d in data} == {f"/app/static/plotly-{plotly.__version__}.min.js"}
    served = tmp_path / "static" / f"plotly-{plotly.__version__}.min.js"  # what static serving serves at that path
    assert served.read_bytes() == live_chart.PLOTLY_JS.read_bytes()
    assert [json.loads(s)["data"][0]["y"] for s in plots(at)] == [[0, 50], [2]]  # the slot shows its last; no
    # duplicate key


def test_a_slider_press_keeps_each_chart_s_element(tmp_path):
    """The property the browser's in-place update rests on: the same element id before and after a press that
    changes the figure (st.plotly_chart's changes)."""
    app = tmp_path / "app.py"
    app.write_text(SCRIPT)
    at = AppTest.from_file(str(app), default_timeout=60).run()
    before, spec = ids(at), plots(at)[0]
    at.slider[0].set_value(60).run()
    assert not at.exception and ids(at) == before and plots(at)[0] != spec
    assert len(set(before)) == len(before) == 2


def test_a_page_s_charts_keep_their_elements_across_a_press(fmnist):
    at = AppTest.from_file(str(ROOT / "pages" / "pruning.py"), default_timeout=300).run()
    assert not at.exception, at.exception
    before, specs = ids(at), plots(at)
    at.slider(key="prune_sparsity").set_value(50.0).run()
    assert not at.exception, at.exception
    assert ids(at) == before and len(before) >= 4
    assert sum(a != b for a, b in zip(specs, plots(at))) >= 3  # the histogram, the per-layer bars, the mask, ...


def test_without_static_serving_a_chart_is_st_plotly_chart(tmp_path, caplog):
    """`streamlit run` without this checkout's settings cannot serve Plotly.js: the charts are drawn as before, and
    the log says why and how to start the dashboard."""
    from pages import live_chart
    app = tmp_path / "app.py"
    app.write_text(SCRIPT)
    config.set_option("server.enableStaticServing", False)
    live_chart._serve.cache_clear()
    try:
        at = AppTest.from_file(str(app), default_timeout=60).run()
    finally:
        config.set_option("server.enableStaticServing", True)
        live_chart._serve.cache_clear()
    assert not at.exception and not at.get("bidi_component") and len(at.get("plotly_chart")) == 2
    assert "enableStaticServing is off" in caplog.text and "scripts/dev.sh app" in caplog.text


@pytest.mark.browser
def test_in_chromium_a_press_updates_the_same_chart_and_nothing_leaves_the_server():
    import latency as L
    with app_tab(SCRIPT) as (tab, url):
        hosts = []
        tab.page.on("request", lambda r: hosts.append(r.url.split("/")[2]))
        tab.page.goto(url)
        tab.wait(time.perf_counter(), lambda: tab.js(L.FIRST_CHART), "first chart", timeout=60)
        first = "document.querySelector('.js-plotly-plot')"
        assert tab.js(f"() => {{ {first}.marked = true; return {first}.data[0].y; }}") == [0, 50]
        tab.slider().focus()
        tab.page.keyboard.press("ArrowRight")
        tab.wait(time.perf_counter(), lambda: tab.js(f"() => {first}.data[0].y[1] === 51"), "redrawn", timeout=30)
        assert tab.js(f"() => {first}.marked === true")  # the same chart, updated: not a new one
        assert tab.js("() => document.querySelectorAll('.js-plotly-plot').length") == 2
        assert set(hosts) == {url.split("/")[2]}, set(hosts)
        tab.page.locator(".js-plotly-plot").first.hover()
        buttons = tab.js("() => [...document.querySelector('.js-plotly-plot').querySelectorAll('.modebar-btn')]"
                         ".map(b => b.getAttribute('data-title'))")
        assert "Full screen" in buttons and "Zoom" in buttons, buttons  # as st.plotly_chart's toolbar had
        assert not [b for b in buttons if "Share" in b or "Lasso" in b], buttons  # nothing sent to Plotly Cloud
        tab.page.locator(".js-plotly-plot").first.locator('[data-title="Full screen"]').click()
        tab.page.wait_for_function("() => document.fullscreenElement && document.fullscreenElement.querySelector("
                                   "'.main-svg').getBoundingClientRect().height === window.innerHeight",
                                   timeout=10_000)


def test_a_given_key_never_holds_the_components_delimiter():
    """Streamlit's component ids may not contain "__" (its front end throws): any run of underscores becomes one."""
    from pages import live_chart
    assert live_chart.key_of(None, "prune___mask__x") == "chart_prune_mask_x"
