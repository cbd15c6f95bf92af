"""The dashboard's latency goals, measured in real Chromium: first paint, each page's first chart, slider -> redraw.

    python bench/latency.py                  # 3 fresh servers, both sample models, every page (about 10 min)
    python bench/latency.py --quick          # 1 server, Pruning and Pipeline only, fewer presses (about 2 min)
    python bench/latency.py --threads 1      # torch threads of the server (default: this machine's cores)
    python bench/latency.py --app-dir /tmp/old-checkout   # measure another checkout (before / after a change)
    STREAMLIT_RUNNER_FAST_RERUNS=false python bench/latency.py   # STREAMLIT_* settings reach the server (and the title)

Each repetition starts a fresh server with the playground's own command (`python -m compress_engine app`, as
`compression-playground app` does), with OMP_NUM_THREADS set to --threads, an empty run store, an empty
trained-results folder and an empty sensitivity cache (so no page opens on a result computed earlier; what ships
with the sample models, as their scans, is used), and drives Debian's headless Chromium
(Playwright) through it as a user would:

- cold: from starting the command until Home's first chart is drawn (the browser is already open), for the
  `app` command, for scripts/serve.py (what `bash scripts/dev.sh app` runs) and for `streamlit run app.py`
  itself, each on a fresh server of its own; and, as the floor under the goal,
  `streamlit run` of an app that draws one small Plotly chart and nothing else;
- for each model: switching to it in the sidebar (on Home, until Home's chart is drawn for it), then each page
  opened from the sidebar, warm (each click once the browser is idle, i.e. the page before has drawn, as when a
  person clicks, and --think seconds more, a person reading it first): until its first chart is drawn (a page
  that has none, e.g. Compare with no saved runs, counts until its run has finished);
- on Pruning, Clustering, Quantization and Pipeline: the first slider moved one step with the arrow key,
  --presses times, each to a value not seen before (each --think seconds after the page has settled, the chart
  read first): until the first chart shows the new data and the page's
  run has finished, and until the accuracy card shows a number for the new setting (an estimate on a sample of
  the test set, which a model slow to evaluate shows first, counts: it is what a visitor reads; "showed" in the
  note; a card the same as before, never seen stale in a frame, counts at the run's end), and until the run's
  end reached the browser (the server's part of the redraw); with --double S, each
  measured press comes S seconds after another press, whose run is still going;
  and, as the floor under that goal, the same press on an app of one slider and 1 or 4
  Plotly charts of the sizes of Pruning's, which computes nothing;
- a held arrow key on Pruning (LeNet-300-100): --held presses at 30 per second (a keyboard's auto-repeat),
  until the last run has finished;
- on Pruning, for each model: structured mode switched on, then its FLOPs budget's Fit pressed (25 % of the
  FLOPs; --flops-fit 0 skips it): until the first chart shows the fitted sparsity and the run has finished.
  Structured mode is switched off again after.

"Drawn" and "finished" are read, not waited for with sleeps: the browser's websocket carries Streamlit's
messages (ForwardMsg protobufs), so the benchmark sees each script run start and finish; a chart counts once a
Plotly figure that is not stale (Streamlit marks elements of an older run data-stale) has drawn its SVG. A slider
press is timed inside the page: a script checks every chart's data and the accuracy card at each animation frame
and stamps each change with the frame that painted it, counted from the key's own timestamp, so a redraw counts
when the last chart that changed shows its new data (and the run has finished), not when a poll from outside gets
its turn (those polls wait behind the page's next long task, and had read the old run's accuracy card before the
rerun began). Times are medians over the repetitions (and presses).

Prints one Markdown table (what | measured (s) | goal (s) | met) and the load average, and writes
bench/results/latency.csv (--name). Bounded: every wait has a timeout and the whole run stops after --timeout
seconds, printing what it measured so far.
"""

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from report import ROOT, table  # also puts this checkout on sys.path

from chromium import FLOOR_APP, app_server, have_chromium, launch, server_env, streamlit_server, wait_healthy

from playwright.sync_api import sync_playwright
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

MODELS = ("lenet-300-100", "lenet-5")
LABELS = {"lenet-300-100": "LeNet-300-100", "lenet-5": "LeNet-5", "resnet-8": "ResNet-8"}
PAGES = ("Pruning", "Clustering", "Quantization", "Distillation", "Sensitivity", "Pipeline", "Compare", "Export")
QUICK_PAGES = ("Pruning", "Pipeline")
TITLES = {"Home": "Compression Playground", "Pruning": "Pruning", "Clustering": "Weight clustering",
          "Quantization": "Quantization", "Distillation": "Distillation", "Sensitivity": "Sensitivity",
          "Pipeline": "Pipeline", "Compare": "Compare runs", "Export": "Export and check artifacts"}  # st.title
SLIDER_PAGES = ("Pruning", "Clustering", "Quantization", "Pipeline")
GOALS = {"cold": 5.0, "first": 1.0, "switch": 1.0, "slider": {"lenet-300-100": 0.3, "lenet-5": 0.6},
         "finetune": {"lenet-300-100": 3.0, "lenet-5": 10.0}}
KEY_RATE = 30.0  # presses per second of a held key (a keyboard's auto-repeat)
VIEWPORT = {"width": 1400, "height": 1000}
FINISHED = {ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_WITH_COMPILE_ERROR,
            ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY}

# JS run in the page: the first Plotly chart of the current run (not stale) that has drawn, and its data
CHARTS = ("[...document.querySelectorAll('.js-plotly-plot')]"
          ".filter(el => el.querySelector('.main-svg') && !el.closest('[data-stale=\"true\"]'))")
FIRST_CHART = f"() => {CHARTS}.length > 0"
SIGNATURE = (f"() => {{ const c = {CHARTS}; return c.length ? JSON.stringify((c[0].data || [])"
             ".map(t => [t.x, t.y, t.z, t.text])) : null; }")
TITLE = ("[...document.querySelectorAll('[data-testid=\"stMain\"] h1')]"
         ".filter(el => !el.closest('[data-stale=\"true\"]')).map(el => el.innerText.trim())")
PROGRESS = "() => !!document.querySelector('[data-testid=\"stProgress\"]')"
# the accuracy card of the current run (not stale), once it shows a number: estimated ("≈ 93.4 %") or evaluated
ACCURACY = ("() => { const m = [...document.querySelectorAll('[data-testid=\"stMetric\"]')].find(el => "
            "el.innerText.startsWith('Test accuracy') && !el.closest('[data-stale=\"true\"]')); const v = m && "
            "m.querySelector('[data-testid=\"stMetricValue\"]'); return v && /[0-9]/.test(v.innerText) ? "
            "v.innerText : null; }")
FRAME = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
# A press timed inside the page: RECORD (run just before the key) keeps the page's charts' data and the accuracy card
# as they are, then checks them at every animation frame and logs each change, stamped with the next frame's start
# (the frame holding the change has been made by then); the key's own timeStamp is the zero. The charts are read as
# a whole, the data of every Plotly chart that is not stale (Streamlit keeps an old run's element in place, marked
# stale, until the new run's replaces it, so a chart's place among them moves during a run), each change logged
# with how many of them hold data the page did not show before the key. RECORDED resolves with the log once nothing
# has changed for QUIET_MS (at most 10 s) and stops the loop. A poll from outside, as this bench used before,
# waits behind whatever long task the page runs next (often drawing another element), so it saw a chart up to
# 0.15 s after it was painted; and a card looked up before the new run began was the old run's (Streamlit marks
# elements stale only once the new run has started).
QUIET_MS = 300
RECORD = ("() => { const plots = () => " + CHARTS + "; "
          "const sig = el => JSON.stringify((el.data || []).map(t => [t.x, t.y, t.z, t.text, t.source])); "
          "const acc = " + ACCURACY + "; "
          "if (window.__press) window.__press.on = false; const c0 = plots().map(sig), before = new Set(c0); "
          "const r = window.__press = {log: [], charts: c0.join('\\n'), acc: acc(), key: null, "
          "quiet: performance.now(), on: true}; let seen = []; "
          "document.addEventListener('keydown', e => { if (r.key === null) r.key = e.timeStamp; }, "
          "{capture: true, once: true}); "
          "const step = () => { if (!r.on) return; const now = performance.now(); "
          "seen.forEach(e => r.log.push([...e, now])); seen = []; "
          "const c = plots().map(sig), all = c.join('\\n'); if (all !== r.charts) { "
          "seen.push(['charts', c.filter(x => !before.has(x)).length, c.length]); r.charts = all; r.quiet = now; } "
          "const a = acc(); if (a !== r.acc) { seen.push(['accuracy', a]); r.acc = a; r.quiet = now; } "
          "requestAnimationFrame(step); }; requestAnimationFrame(step); }")
RECORDED = ("() => new Promise(done => { const r = window.__press, t0 = performance.now(); const check = () => { "
            "const now = performance.now(); if (now - r.quiet > " + str(QUIET_MS) + " || now - t0 > 10000) { "
            "r.on = false; done({key: r.key, log: r.log}); } else setTimeout(check, 50); }; check(); })")
# resolves once the page's main thread has been idle for three idle periods in a row (at most ~10 s)
IDLE = ("() => new Promise(done => { let quiet = 0, left = 50; const step = d => {"
        " quiet = d.timeRemaining() > 30 ? quiet + 1 : 0; left -= 1;"
        " if (quiet >= 3 || left <= 0) done(); else requestIdleCallback(step, {timeout: 200}); };"
        " requestIdleCallback(step, {timeout: 200}); })")


class Timeout(Exception):
    pass


class Tab:
    """One browser tab on the dashboard. Streamlit's messages on its websocket are decoded as they arrive and
    kept with their arrival time: reruns the tab asked for, runs started and finished."""

    def __init__(self, browser, deadline):
        self.page = browser.new_page(viewport=VIEWPORT)
        self.page.set_default_timeout(60_000)
        self.deadline = deadline
        self.events = []  # (perf_counter, kind, value): "rerun" (sent), "running" (True/False), "finished" (status)
        self.page.on("websocket", self._socket)

    def _socket(self, ws):
        ws.on("framereceived", self._received)
        ws.on("framesent", self._sent)

    def _received(self, payload):
        if isinstance(payload, str):
            return
        msg = ForwardMsg()
        msg.ParseFromString(payload)
        kind = msg.WhichOneof("type")
        if kind == "script_finished":
            self.events.append((time.perf_counter(), "finished", msg.script_finished))
        elif kind == "session_status_changed":
            self.events.append((time.perf_counter(), "running", msg.session_status_changed.script_is_running))

    def _sent(self, payload):
        if isinstance(payload, str):
            return
        msg = BackMsg()
        msg.ParseFromString(payload)
        if msg.WhichOneof("type") == "rerun_script":
            self.events.append((time.perf_counter(), "rerun", None))

    def idle_since(self, since):
        """Arrival time of the finish that ended the last run the tab asked for after `since`, or None while a
        run it asked for is still going (or has not started)."""
        events = [e for e in self.events if e[0] >= since]
        reruns = [t for t, kind, _ in events if kind == "rerun"]
        finishes = [t for t, kind, v in events if kind == "finished" and v in FINISHED]
        if not finishes or (reruns and finishes[-1] < reruns[-1]):
            return None
        running = [(t, v) for t, kind, v in events if kind == "running"]
        if running and running[-1][1] and running[-1][0] > finishes[-1]:
            return None
        return finishes[-1]

    def wait(self, since, ready=None, what="", timeout=120.0, settle=True):
        """Poll until ready() (if given) and, with settle, until the runs asked for since `since` have finished.
        Returns (seconds until ready() first held, seconds until settled); each counted from `since`."""
        end = min(time.perf_counter() + timeout, self.deadline)
        t_ready = None if ready else since
        while True:
            now = time.perf_counter()
            if t_ready is None:
                try:
                    if ready():
                        self.page.evaluate(FRAME)  # painted, not just in the DOM
                        t_ready = time.perf_counter()
                except Exception:  # the page is being replaced: not ready yet
                    pass
            t_idle = self.idle_since(since) if settle else since
            if t_ready is not None and t_idle is not None:
                return t_ready - since, max(t_idle, t_ready) - since
            if now > end:
                raise Timeout(f"{what}: nothing after {now - since:.0f} s" if now < self.deadline
                              else f"{what}: the benchmark's --timeout ran out")
            self.page.wait_for_timeout(15)

    def js(self, expr):
        return self.page.evaluate(expr)

    def nav(self, name):
        self.page.locator('[data-testid="stSidebarNav"] a', has_text=name).first.click()

    def model(self):
        """The model chosen in the sidebar."""
        return self.page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"] input').first.input_value()

    def slider(self):
        return self.page.locator('[data-testid="stMain"] [data-testid="stSlider"] input[type="range"]').first


def chart_or_settled(tab, name):
    """A page's first chart; for a page that draws none first (Compare without runs, a scan with a progress
    bar), its first feedback: the progress bar, or the finished run. Always below the page's own title (not
    the previous page's, still on screen while the new one starts)."""
    title = TITLES.get(name)
    return lambda: ((title is None or tab.js(f"() => {TITLE}.includes({title!r})"))
                    and (tab.js(FIRST_CHART) or tab.js(PROGRESS) or tab.idle_since(tab.opened) is not None))


def click_page(tab, name, think=0.0, timeout=180):
    """Click `name` in the sidebar once the browser is idle and `think` seconds more (not counted) -> seconds from
    the click to the page's first chart (or first feedback: chart_or_settled); tab.opened is the click."""
    tab.js(IDLE)
    if think:
        tab.page.wait_for_timeout(1000 * think)
    tab.opened = time.perf_counter()
    tab.nav(name)
    return tab.wait(tab.opened, chart_or_settled(tab, name), f"open {name}", timeout=timeout, settle=False)[0]


def open_page(tab, name, think=0.0, scans=0.0):
    """Open a page from the sidebar -> (seconds to its first chart, seconds until its run finished, note). The
    click comes once the browser is idle (the page before has drawn, as when a person clicks) and `think` seconds
    more (a person reading the page before), not counted. A page that first shows a progress bar (a sensitivity
    scan) is left there, unless `scans` > 0: then it is waited for up to that many seconds, and the note gives the
    seconds to its first real chart."""
    first = click_page(tab, name, think)
    note = "chart" if tab.js(FIRST_CHART) else "progress bar" if tab.js(PROGRESS) else "no chart"
    if note == "progress bar" and scans:
        chart, _ = tab.wait(tab.opened, lambda: tab.js(FIRST_CHART), f"scan {name}", timeout=scans, settle=False)
        note = f"progress bar; first chart after the scan {chart:.2f} s"
    if note.startswith("progress bar"):  # a long scan: leave it (navigating away stops it)
        return first, None, note
    return first, tab.wait(tab.opened, None, f"finish {name}", timeout=180)[1], note


def press(tab, key, accuracy=False):
    """One key press on the focused slider, timed inside the page (RECORD): -> (seconds until the first chart shows
    new data, until redrawn: the charts are as the page leaves them and the run has finished); with
    accuracy=True, (first chart, (seconds until the accuracy card shows a number for the new run, that number),
    redrawn, seconds until the run's end reached the browser, the note). An estimate on a sample counts, as a
    visitor reads it. Each time is the first frame painted with the change, from the key's own timestamp in the
    page; the run's end is the websocket's, from just before the key (a few ms earlier: it never flatters)."""
    before = tab.js(SIGNATURE)
    tab.js(RECORD)
    t = time.perf_counter()
    tab.page.keyboard.press(key)
    # poll only to know when to stop (the times come from the page's frames): the first chart changed, the run
    # finished, and with accuracy a new card seen or the run over
    polled = tab.wait(t, lambda: tab.js(SIGNATURE) not in (before, None), f"slider {key}", timeout=120)[0]
    r = tab.js(RECORDED)  # once nothing has changed for QUIET_MS
    settled = tab.idle_since(t) - t
    if r["key"] is None:
        raise Timeout(f"slider {key}: the page saw no keydown (the slider lost focus?)")
    at = lambda entry: (entry[-1] - r["key"]) / 1000  # noqa: E731 - seconds from the key (each entry's last item)
    charts = [e for e in r["log"] if e[0] == "charts"]
    cards = [e for e in r["log"] if e[0] == "accuracy"]
    # a press while an earlier run is still going (--double): that run's charts and card can land after the key too;
    # this press's run shows its own after the last frame in which the page had no fresh chart (or no fresh card)
    fresh = [e for e in since_last(charts, lambda e: e[2] == 0) if e[1] > 0]
    chart0 = at(fresh[0]) if fresh else polled  # the first frame with new data in a chart (never seen: the poll's)
    last = at(charts[-1]) if charts else polled  # the charts as the page leaves them: a chart drawn twice counts twice
    redrawn = max(settled, last, chart0)
    if not accuracy:
        return chart0, redrawn
    card = next((e for e in since_last(cards, lambda e: not e[1]) if e[1]), None)
    shown, text = (at(card), card[1]) if card else (None, None)
    if shown is None:  # never painted stale-then-new (too fast to see, or the same text): the run's end, not before
        shown, text = settled, tab.js(ACCURACY)
    n = charts[-1][1] if charts else 0
    note = (f"first chart {chart0:.2f} s, {n} chart{'s' * (n != 1)} changed; "
            f"a poll from outside saw the first at {polled:.2f} s")
    return chart0, (shown, text), redrawn, settled, note


def since_last(entries, empty):
    """The entries after the last one for which empty(entry) holds (all of them if none does)."""
    cut = max((i + 1 for i, e in enumerate(entries) if empty(e)), default=0)
    return entries[cut:]


def hold(tab, key, n):
    """n presses of `key` at KEY_RATE per second -> seconds from the first press until the last run finished.

    A press returns once the browser has taken the key, so a browser busy drawing holds the typing up: the note
    gives how long the presses really took, beside the reruns asked and finished (a held key has two modes here:
    reruns asked every ~40 ms and one run finished, or a run that finished early, drawn while the keys queue)."""
    t0 = time.perf_counter()
    late = 0.0
    for i in range(n):
        lag = t0 + i / KEY_RATE - time.perf_counter()
        if lag > 0:
            tab.page.wait_for_timeout(1000 * lag)
        late = max(late, -lag)
        tab.page.keyboard.press(key)
    typed = time.perf_counter() - t0
    tab.page.wait_for_timeout(500)  # the slider's last value reaches the server (the widget debounces)
    settled = tab.wait(t0, None, f"held {key}", timeout=300)[1]
    ev = [(k, v) for t, k, v in tab.events if t >= t0]
    tab.held_note = (f"typed in {typed:.2f} s (a key held up {late:.2f} s at most); "
                     f"{sum(k == 'rerun' for k, _ in ev)} reruns asked, "
                     f"{sum(k == 'finished' and v in FINISHED for k, v in ev)} finished")
    return settled


def flops_fit(tab, budget):
    """On Pruning: structured mode on (settled, not timed), the FLOPs budget set to `budget` % and Fit clicked ->
    (seconds until the first chart shows the fitted sparsity, until settled, the fit's caption); then structured
    mode off again (settled)."""
    switch = tab.page.get_by_text("Structured: remove whole neurons / filters", exact=True)
    tab.js(IDLE)
    switch.click()  # its label: Streamlit's toggle draws over its input
    tab.wait(time.perf_counter(), None, "structured on", timeout=120)
    box = tab.page.get_by_label("FLOPs budget: % of the dense model's FLOPs per image", exact=True)
    if float(box.input_value()) != budget:  # an unchanged value starts no run to wait for
        box.fill(f"{budget:g}")
        box.press("Enter")
        tab.wait(time.perf_counter(), None, "budget set", timeout=120)
    before = tab.js(SIGNATURE)
    tab.js(IDLE)
    t = time.perf_counter()
    tab.page.get_by_role("button", name="Fit", exact=True).click()
    drawn, settled = tab.wait(t, lambda: tab.js(SIGNATURE) not in (before, None), "FLOPs fit", timeout=120)
    said = tab.page.get_by_text("is the smallest sparsity that fits").first.inner_text()
    tab.js(IDLE)
    switch.click()
    tab.wait(time.perf_counter(), None, "structured off", timeout=120)
    return drawn, settled, said


# the page shows a fine-tuned run: the accuracy curve's current point (in the chart's text) is labelled so
TUNED = ("() => [...document.querySelectorAll('.chart-text')].some(el => !el.closest('[data-stale=\"true\"]') && "
         "el.textContent.includes('current (fine-tuned'))")


def finetune_switch(tab):
    """On Pruning: the "Fine-tune 1 epoch" switch turned on at the page's sparsity, which nothing has trained before
    (the bench's server starts with no trained results) -> (seconds until the training's progress shows, until the
    page shows the fine-tuned run); then the switch off again (settled)."""
    switch = tab.page.get_by_text("Fine-tune 1 epoch (pruned weights stay zero)", exact=True)
    tab.js(IDLE)
    t = time.perf_counter()
    switch.click()  # its label: Streamlit's toggle draws over its input
    shown = tab.wait(t, lambda: tab.js(PROGRESS) or tab.js(TUNED), "fine-tune's progress", timeout=120,
                     settle=False)[0]
    tuned = tab.wait(t, lambda: tab.js(TUNED), "fine-tuned run", timeout=600)[0]
    tab.js(IDLE)
    switch.click()
    tab.wait(time.perf_counter(), None, "fine-tune switched off", timeout=120)
    return shown, tuned


def select_model(tab, model):
    """Choose `model` in the sidebar (on Home) -> seconds until Home's chart is drawn for it."""
    box = tab.page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first
    params = tab.page.locator('[data-testid="stMetric"]', has_text="Parameters").first
    before = params.inner_text()
    tab.js(IDLE)
    box.click()
    t = time.perf_counter()
    tab.page.get_by_role("option", name=model, exact=True).click()
    return tab.wait(t, lambda: params.inner_text() != before and tab.js(FIRST_CHART), f"select {model}")[0]


def cold_start(tab, url, proc, t0, deadline, ready=None):
    """From the server command started at t0 until Home's first chart (or `ready()`) -> (seconds, note)."""
    wait_healthy(url, proc, timeout=min(120.0, deadline - t0))
    up = time.perf_counter() - t0
    tab.page.goto(url)
    tab.opened = t0
    first, settled = tab.wait(t0, ready or chart_or_settled(tab, "Home"), "cold start", timeout=180)
    return first, f"server up {up:.1f} s, " + ("its run" if ready else "Home") + f" finished {settled:.1f} s"


def floor(browser, env, rec, deadline):
    """The floor under the cold-start goal on this machine: `streamlit run` of a one-chart app (no torch, no data)
    until its chart is drawn, timed as the dashboard's cold start is."""
    t0 = time.perf_counter()
    with app_server(FLOOR_APP, env=env, wait=False) as (url, proc):
        tab = Tab(browser, deadline)
        first, note = cold_start(tab, url, proc, t0, deadline, ready=lambda: tab.js(FIRST_CHART))
        rec.add("floor: `streamlit run` of a one-chart app -> its chart (cold)", first, GOALS["cold"],
                f"{note}; what the browser and Streamlit take here before any app code")
        tab.page.close()


SLIDER_FLOOR_APP = """import numpy as np
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

st.set_page_config(layout="wide")
st.title("Charts without computation")
v = st.slider("value", 0, 99, 50)
rng = np.random.default_rng(v)
edges = np.linspace(-0.3, 0.3, 121)
hist = go.Figure([go.Bar(x=(edges[1:] + edges[:-1]) / 2, y=rng.integers(1, 5000, 120), width=0.005, opacity=o,
                         name=f"series {i}") for i, o in enumerate((0.45, 0.75))], layout=dict(barmode="overlay"))
bars = go.Figure(go.Bar(x=["fc1", "fc2", "fc3"], y=rng.random(3), text=["a", "b", "c"]))
curve = go.Figure([go.Scatter(x=list(range(12)), y=rng.random(12), mode="lines+markers", name=f"curve {i}")
                   for i in range(2)])
curve.add_hline(y=0.5)
# the mask as Pruning draws it: one greyscale PNG in an image trace (a heatmap of its cells until this round)
mask = px.imshow(255 * (rng.random((300, 262)) < 0.2).astype(np.uint8), binary_string=True, zmin=0, zmax=255)
figures = [hist, bars, curve, mask][:CHARTS]
for i in range(0, len(figures), 2):
    for col, fig in zip(st.columns(2), figures[i:i + 2]):
        DRAW
"""
DRAWS = {  # how the floor app draws a chart: as st.plotly_chart does, or as the dashboard does (updated in place)
    "plotly_chart": 'col.plotly_chart(fig.update_layout(height=360), width="stretch")',
    "live_chart": "from pages import live_chart; live_chart.draw(col.container(), fig.update_layout(height=360))"}
# (the server's PYTHONPATH starts with --app-dir: `pages` is the measured checkout's)


def slider_floor(browser, args, env, rec, deadline):
    """The floor under the slider goals on this machine: `streamlit run` of an app (the dashboard's Streamlit
    settings) that draws one slider and 1 or 4 Plotly charts of the sizes of Pruning's (a 2 x 120-bar histogram, a
    bar chart, a line chart, a 300 x 262 greyscale PNG) from the slider's value, without computing anything; each
    press timed as the dashboard's are. The 4 charts twice: drawn by st.plotly_chart (each changed figure drawn
    anew) and as the dashboard draws them (pages/live_chart: updated in place)."""
    live = (Path(args.app_dir) / "pages" / "live_chart.py").is_file()  # not in a checkout before 6 December
    for charts, how in ((1, "plotly_chart"), (4, "plotly_chart")) + (((4, "live_chart"),) if live else ()):
        source = SLIDER_FLOOR_APP.replace("CHARTS", str(charts)).replace("DRAW", DRAWS[how])
        with app_server(source, env=env, settings=args.app_dir) as (url, _):
            tab = Tab(browser, deadline)
            tab.page.goto(url)
            tab.wait(time.perf_counter(), lambda: tab.js(FIRST_CHART), "floor app", timeout=120)
            tab.slider().focus()
            for _ in range(max(args.presses, 3)):
                tab.js(IDLE)
                drawn, redrawn = press(tab, "ArrowRight")
                rec.add(f"floor: slider -> redrawn, an app of {charts} chart{'s' * (charts > 1)}"
                        + (" updated in place (pages/live_chart)" if how == "live_chart" else "")
                        + " and no computation",
                        redrawn, GOALS["slider"]["lenet-300-100"], f"first chart {drawn:.2f} s")
            tab.page.close()


def repetition(browser, args, env, rec, deadline):
    """One fresh server: cold start, then every page and slider for each model. Appends seconds to rec[row].
    First two cold starts on servers of their own: `streamlit run app.py` itself and
    scripts/serve.py (`bash scripts/dev.sh app`), if the checkout has it; then the `app` command's server
    is measured cold and kept for the rest. Before them, the floor: a one-chart app's cold start."""
    floor(browser, env, rec, deadline)
    if args.presses:
        slider_floor(browser, args, env, rec, deadline)
    for how, what in (("streamlit", "`streamlit run app.py`"), ("serve", "`bash scripts/dev.sh app` (scripts/serve.py)")):
        if how == "serve" and not (Path(args.app_dir) / "scripts" / "serve.py").is_file():
            continue  # an older checkout (--app-dir) without the launcher
        t0 = time.perf_counter()
        with streamlit_server(args.app_dir, env=env, how=how, wait=False) as (url, proc):
            tab = Tab(browser, deadline)
            first, note = cold_start(tab, url, proc, t0, deadline)
            rec.add(f"{what} -> Home's first chart (cold)", first, GOALS["cold"], note)
            tab.page.close()
    t0 = time.perf_counter()
    with streamlit_server(args.app_dir, env=env, how="cli", wait=False) as (url, proc):
        tab = Tab(browser, deadline)
        first, note = cold_start(tab, url, proc, t0, deadline)
        rec.add("`app` command -> Home's first chart (cold)", first, GOALS["cold"], note)
        for model in args.models:
            label = LABELS.get(model, model)
            if tab.model() != model:
                rec.add(f"switch model -> Home's chart, {label}", select_model(tab, model), GOALS["switch"])
            for name in args.pages:
                first, settled, note = open_page(tab, name, args.think, args.scans)
                rec.add(f"first chart: {name}, {label}", first, GOALS["first"],
                        note if settled is None else f"{note}; page finished {settled:.2f} s")
                if name in SLIDER_PAGES and args.presses:
                    slider = tab.slider()
                    slider.focus()
                    for _ in range(args.presses):
                        if args.think:
                            tab.page.wait_for_timeout(1000 * args.think)  # the chart read before the next press
                        if args.double:  # a press before: its run is still going when the measured one comes
                            tab.page.keyboard.press("ArrowRight")
                            tab.page.wait_for_timeout(1000 * args.double)
                        drawn, (shown, text), redrawn, ended, note = press(tab, "ArrowRight", accuracy=True)
                        goal = GOALS["slider"].get(model, 0.6)
                        rec.add(f"slider -> redrawn: {name}, {label}", redrawn, goal, note)
                        rec.add(f"slider -> accuracy shown: {name}, {label}", shown, goal, f"showed {text}")
                        rec.add(f"slider -> its run ended (the server's part): {name}, {label}", ended, goal,
                                "the rest of the redraw is the browser drawing")
                if name == "Pruning" and model == args.models[0] and args.held:
                    slider = tab.slider()
                    slider.focus()
                    press(tab, "End")
                    goal = round(args.held / KEY_RATE + GOALS["slider"].get(model, 0.6), 2)
                    rec.add(f"held arrow key: {args.held} presses -> settled, Pruning, {label}",
                            hold(tab, "ArrowLeft", args.held), goal,
                            f"typing {args.held / KEY_RATE:.1f} s (goal: that + one redraw); {tab.held_note}")
                if name == "Pruning" and args.finetune:
                    shown, tuned = finetune_switch(tab)
                    rec.add(f"'Fine-tune 1 epoch' switch -> fine-tuned run shown: Pruning, {label}", tuned,
                            GOALS["finetune"].get(model, 10.0), f"its progress shown {shown:.2f} s")
                if name == "Pruning" and args.flops_fit:
                    drawn, settled, said = flops_fit(tab, args.flops_fit)
                    rec.add(f"structured, FLOPs budget {args.flops_fit:g} % -> Fit -> settled: Pruning, {label}",
                            settled, GOALS["first"], f"chart changed {drawn:.2f} s; {said}")
            open_page(tab, "Home")
        tab.page.close()


class Record:
    """Seconds per row, in the order rows were first measured."""

    def __init__(self):
        self.rows = {}

    def add(self, what, seconds, goal, note=""):
        row = self.rows.setdefault(what, {"times": [], "goal": goal, "notes": []})
        row["times"].append(seconds)
        row["notes"].append(note)
        print(f"  {what}: {seconds:.3f} s" + (f" ({note})" if note else ""), flush=True)

    def table_rows(self):
        out = []
        for what, r in self.rows.items():
            med = statistics.median(r["times"])
            mid = min(range(len(r["times"])), key=lambda i: abs(r["times"][i] - med))  # the note of the median run
            out.append({"what": what, "measured (s)": round(med, 3), "goal (s)": r["goal"],
                        "met": "yes" if med <= r["goal"] else "no", "n": len(r["times"]), "note": r["notes"][mid]})
        return out


def load():
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 server, Pruning and Pipeline, 2 presses, 30 held")
    ap.add_argument("--repeats", type=int, help="fresh servers, each measured through (default 3; quick 1)")
    ap.add_argument("--presses", type=int, help="slider presses measured per page and model (default 3; quick 2)")
    ap.add_argument("--held", type=int, help="presses of the held arrow key (default 90; quick 30; 0: skip)")
    ap.add_argument("--finetune", type=int, default=1, choices=(0, 1),
                    help="Pruning's 'Fine-tune 1 epoch' switch turned on and timed (default 1; 0: skip)")
    ap.add_argument("--flops-fit", type=float, default=25.0, metavar="PCT",
                    help="Pruning's structured FLOPs budget pressed with Fit, in %% of the FLOPs (default 25; 0: skip)")
    ap.add_argument("--models", nargs="+", default=list(MODELS), metavar="MODEL")
    ap.add_argument("--pages", nargs="+", choices=PAGES, metavar="PAGE", help=f"default: {', '.join(PAGES)}")
    ap.add_argument("--think", type=float, default=0.0,
                    help="seconds a visitor reads each page (and Home after a model switch) before clicking the next, "
                         "and each chart before the next slider press (default 0: at once, once the browser is idle)")
    ap.add_argument("--double", type=float, default=0.0, metavar="S",
                    help="each measured slider press comes S seconds after an unmeasured one, whose run is then "
                         "still going (a visitor pressing again before the page has settled; default 0: no)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="torch threads of the server (OMP_NUM_THREADS; default: the machine's cores)")
    ap.add_argument("--app-dir", type=Path, default=ROOT, help="the checkout to serve (default: this one)")
    ap.add_argument("--scans", type=float, default=0.0, metavar="S", help="wait up to S seconds for a page's "
                    "sensitivity scan to draw its first chart (default 0: leave the page at its progress bar)")
    ap.add_argument("--timeout", type=float, help="stop after this many seconds (default 1200; quick 400)")
    ap.add_argument("--name", default="latency", help="bench/results/<name>.csv")
    args = ap.parse_args(argv)
    q = args.quick
    args.repeats = args.repeats or (1 if q else 3)
    args.presses = (2 if q else 3) if args.presses is None else args.presses
    args.held = (30 if q else 90) if args.held is None else args.held
    args.pages = args.pages or list(QUICK_PAGES if q else PAGES)
    args.timeout = args.timeout or (400.0 if q else 1200.0)
    args.app_dir = args.app_dir.resolve()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # killed: still stop the server and the browser
    if not have_chromium():
        sys.exit("no Chromium at /usr/bin/chromium: `apt-get install chromium` (Playwright cannot download one here)")

    tmp = tempfile.TemporaryDirectory(prefix="latency-")
    env = server_env(OMP_NUM_THREADS=args.threads, COMPRESS_STORE=Path(tmp.name) / "runs.sqlite",
                     COMPRESS_CACHE=Path(tmp.name) / "cache",
                     PYTHONPATH=os.pathsep.join([str(args.app_dir), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    options = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("STREAMLIT_"))
    print(f"serving {args.app_dir} with OMP_NUM_THREADS={args.threads}{' ' + options if options else ''}; "
          f"{args.repeats} fresh server(s); models {', '.join(args.models)}; pages {', '.join(args.pages)}; {load()}",
          flush=True)
    rec = Record()
    t_start = time.perf_counter()
    deadline = t_start + args.timeout
    stopped = None
    with sync_playwright() as p:
        browser = launch(p)
        try:
            for i in range(args.repeats):
                print(f"repetition {i + 1} of {args.repeats}", flush=True)
                # trained results of its own: the fine-tune switch trains in every repetition, not only the first
                repetition(browser, args, {**env, "COMPRESS_TRAINED": str(Path(tmp.name) / f"trained-{i}")}, rec,
                           deadline)
        except Timeout as e:
            stopped = str(e)
        finally:
            browser.close()
            tmp.cleanup()
    if not rec.rows:
        sys.exit(f"nothing measured: {stopped}")
    rows = rec.table_rows()
    table(f"Dashboard latency in headless Chromium (OMP_NUM_THREADS={args.threads}{', ' + options if options else ''}, "
          f"{os.cpu_count()} cores, "
          f"median of {args.repeats} server(s){f'; {args.think:g} s read before each click' if args.think else ''}; "
          f"{load()})", rows, args.name)
    print(f"\n{time.perf_counter() - t_start:.0f} s in all; {load()}")
    if stopped:
        print(f"stopped early: {stopped}")
        sys.exit(1)


if __name__ == "__main__":
    main()
