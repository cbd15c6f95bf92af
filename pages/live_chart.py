"""Plotly charts that a slider press updates in place instead of drawing anew (live_chart.js says how).

A Pruning press cost the browser about 340 ms of its main thread with st.plotly_chart (each changed figure is a new
element, drawn from nothing) and about 245 ms with this component (Plotly.react on the chart already there); an app
that only redraws four such charts takes 0.26 s a press with the one and 0.16-0.18 s with the other
(bench/latency.py's floor rows, bench/results/latency_s57_think3.csv and latency_s57b_think3.csv).

Plotly.js is the copy the plotly package ships, served by this app: Streamlit's static serving (on in
.streamlit/config.toml) serves the folder static/ beside the app's main script (app.py), and the first chart of a
server's life copies the file there (gitignored). Where that cannot be (static serving off, as in `streamlit run`
from another folder without this checkout's settings, or a read-only checkout) a chart is st.plotly_chart as before,
and the server's log says why once.
"""

import logging
import os
import re
import shutil
import tempfile
from functools import cache
from pathlib import Path

import plotly
import plotly.io as pio
import streamlit as st
from streamlit.runtime import Runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

APP = Path(__file__).resolve().parent.parent / "app.py"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
SERVED = f"plotly-{plotly.__version__}.min.js"  # the version in the name: a browser never keeps an older copy
log = logging.getLogger(__name__)

_component = st.components.v2.component(
    "playground_live_chart", js=(Path(__file__).with_suffix(".js")).read_text(), isolate_styles=False)


def _served():
    """The URL path of Plotly.js on this server, or None (and why, in the log) if this server cannot serve it."""
    ctx = get_script_run_ctx()
    main = Path(ctx.main_script_path) if ctx and ctx.main_script_path else APP
    return _serve(main.parent / "static")  # what Streamlit serves at /app/static when enableStaticServing is on


@cache
def _serve(static):
    if not st.get_option("server.enableStaticServing"):
        log.warning("Charts are drawn anew on every change: server.enableStaticServing is off, so this server cannot "
                    "serve Plotly.js. Start the dashboard with `bash scripts/dev.sh app`, which reads "
                    ".streamlit/config.toml.")
        return None
    target = static / SERVED
    try:
        if not target.is_file() or target.stat().st_size != PLOTLY_JS.stat().st_size:
            static.mkdir(exist_ok=True)
            with PLOTLY_JS.open("rb") as js, \
                    tempfile.NamedTemporaryFile(dir=static, suffix=".tmp", delete=False) as tmp:
                shutil.copyfileobj(js, tmp)
            os.chmod(tmp.name, 0o644)
            Path(tmp.name).replace(target)  # whole or not at all: other sessions may be asking for it
    except OSError as e:
        log.warning("Charts are drawn anew on every change: could not put Plotly.js in %s (%s).", static, e)
        return None
    base = st.get_option("server.baseUrlPath").strip("/")
    return f"{'/' + base if base else ''}/app/static/{SERVED}"


def key_of(box, key=None):
    """The component's key for a chart drawn in `box`: "chart_" + key, or by default its place on the page, the same
    on every run that lays the page out alike. A key this run has drawn a chart under already (a slot redrawn as
    training goes) takes a number after it. The component's keys may not contain "__"."""
    key = "chart" + box._get_delta_path_str().replace(" ", "") if key is None else "chart_" + str(key)
    key = re.sub("_{2,}", "_", key)
    ctx = get_script_run_ctx()
    taken = ctx.shared.widget_user_keys_this_run if ctx else ()
    out, n = key, 2
    while out in taken:
        out, n = f"{key}_{n}", n + 1
    return out


def draw(box, fig, key=None):
    """Draw `fig` (a Plotly figure) in `box`, full width. key: the chart's name, the same from run to run (default:
    its place on the page); a chart whose key stays is updated in place."""
    src = _served()
    if src is None or not Runtime.exists():  # no runtime: two AppTests at once, the first to end took it away
        box.plotly_chart(fig, width="stretch", key=key)
        return
    with box:
        _component(data={"spec": pio.to_json(fig, validate=False), "src": src}, key=key_of(box, key), width="stretch",
                   height="content")
