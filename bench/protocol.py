"""The dashboard without a browser: one Streamlit session spoken to in Streamlit's own protocol, over its websocket.

bench/load.py's protocol sessions (--clients protocol) are made of this. A Client is what one browser tab is to the
server: it connects to the server's /_stcore/stream websocket as Streamlit 1.67's front end does (subprotocols
"streamlit" and an XSRF placeholder; the server selects the first), asks for script runs with rerun_script BackMsgs
and reads the ForwardMsgs back. Like the front end it keeps, between runs:

- every widget's value: from the element's default (or the value the script set, `set_value`) when the widget first
  appears, then only changed by the client; each rerun sends them all (the WidgetStates of st.slider,
  st.select_slider, st.checkbox / st.toggle, st.radio and st.selectbox, in the fields the front end and
  streamlit.testing's AppTest use; other kinds are left out, and the server keeps their last values); a button press
  is a one-off trigger_value;
- the page: the first visit names it by URL path (page_name), later runs send the page_script_hash the server
  announced (new_session / navigation); a page change keeps only the main script's (app.py's sidebar) widgets;
- the big messages it was sent (metadata.cacheable), so the server may answer with a ref_hash, as it does a browser.

Each run is a Run: new_session (metadata.run.script_run_id) opens it, its deltas follow, script_finished closes it.
The first new_session after a rerun_script is the run that BackMsg started (nothing else starts runs here: no
fragment timers or auto-reruns are followed). A Run collects what load.py checks: element kinds (metric,
bidi_component, plotly_chart, progress, ...), text, buttons by label, the main area's sliders, and problems (an
exception element, an st.error, page_not_found, a script that failed to compile).

Not done here: rendering (no DOM, no Plotly, no layout), loading the front end's HTML, JavaScript and fonts, host
config and health requests, heartbeats, uploads, custom components. Loopback servers only; every wait has a timeout.
"""

import asyncio
import time
from collections import Counter
from urllib.parse import urlsplit

from streamlit.proto.Alert_pb2 import Alert
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ClientState_pb2 import ClientState
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.Slider_pb2 import Slider
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.asyncio.client import connect

STREAM = "/_stcore/stream"
SUBPROTOCOLS = ["streamlit", "PLACEHOLDER_AUTH_TOKEN"]  # the front end's: [selected, XSRF token(, session to resume)]
LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAIN = 0  # delta_path[0]: the main area (1 is the sidebar)
STATEFUL = ("slider", "checkbox", "radio", "selectbox")  # widgets whose values a rerun sends (widget_state)
DONE = (ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY)


def widget_state(kind, proto):
    """The WidgetState a fresh front end holds for a widget element: the value the script set, else its default;
    None for kinds this client does not keep (the server then keeps their last values)."""
    ws = WidgetState(id=proto.id)
    if kind == "slider" and proto.type == Slider.SELECT_SLIDER:  # formatted options, as the front end sends
        if proto.set_value and proto.raw_value:
            ws.string_array_value.data[:] = list(proto.raw_value)
        else:
            ws.string_array_value.data[:] = [proto.options[int(i)] for i in (proto.value if proto.set_value
                                                                              else proto.default)]
    elif kind == "slider":
        ws.double_array_value.data[:] = list(proto.value if proto.set_value else proto.default)
    elif kind == "checkbox":  # st.checkbox and st.toggle
        ws.bool_value = proto.value if proto.set_value else proto.default
    elif kind in ("radio", "selectbox"):
        if proto.set_value and proto.raw_value:
            ws.string_value = proto.raw_value
        elif proto.HasField("default") and proto.options:
            ws.string_value = proto.options[proto.default]
        else:
            return None
    else:
        return None
    return ws


def slider_position(proto, state):
    """(position, lowest, highest) of a single-valued slider: its value, or a select slider's option index."""
    if proto.type == Slider.SELECT_SLIDER:
        return list(proto.options).index(state.string_array_value.data[0]), 0, len(proto.options) - 1
    return state.double_array_value.data[0], proto.min, proto.max


def slider_moved(proto, state, direction):
    """The WidgetState after one arrow-key step (direction +1 or -1), clamped at the slider's ends."""
    position, lo, hi = slider_position(proto, state)
    ws = WidgetState(id=proto.id)
    if proto.type == Slider.SELECT_SLIDER:
        ws.string_array_value.data[:] = [proto.options[min(hi, max(lo, position + direction))]]
    else:
        ws.double_array_value.data[:] = [min(hi, max(lo, position + direction * (proto.step or 1)))]
    return ws


class Run:
    """One script run as the client received it."""

    def __init__(self, run_id, page_hash, t):
        self.id, self.page_hash, self.started = run_id, page_hash, t
        self.finished = self.status = None  # perf_counter of its script_finished, and its status
        self.kinds = Counter()  # element kinds it sent (new_element deltas)
        self.texts = []  # markdown bodies (st.markdown, st.caption, ...) and progress-bar texts
        self.buttons = {}  # label -> widget id
        self.sliders = {}  # widget id -> delta_path, main area only
        self.metrics = []  # metric values, in the order sent
        self.widget_ids = set()
        self.problems = []

    @property
    def done(self):
        return self.finished is not None

    @property
    def redrew(self):
        """Whether it sent a chart (pages/live_chart's component, or st.plotly_chart) or a metric: something a slider
        move redraws."""
        return bool(self.kinds["bidi_component"] or self.kinds["plotly_chart"] or self.kinds["metric"])

    def first_slider(self):
        """The id of the main area's first slider (document order: the smallest delta path), or None."""
        return min(self.sliders, key=self.sliders.get, default=None)

    def shows(self, text):
        return any(text in t for t in self.texts)


class Client:
    """One Streamlit session on the server at `url` (http://127.0.0.1:PORT), spoken to over its websocket."""

    def __init__(self, url):
        parts = urlsplit(url)
        if parts.hostname not in LOOPBACK:
            raise ValueError(f"{url}: loopback servers only")
        self.url, self.ws_url = url.rstrip("/"), f"ws://{parts.netloc}{STREAM}"
        self.ws = self._pump_task = None
        self.runs = []  # in the order their new_session messages came
        self.widgets = {}  # id -> (kind, element proto, active_script_hash) of the widgets on the page
        self.states = {}  # id -> WidgetState: this client's value of each widget
        self.pages = {}  # url path ("pruning") -> page_script_hash, from the navigation message
        self.page_hash = self.main_hash = ""
        self.cache, self.max_age, self.run_count = {}, 2, 0  # the front end's message cache: hash -> [bytes, run]
        self.closed = None  # why the websocket closed, if it did
        self.stray = []  # problems outside any run
        self._closing = False
        self._news = asyncio.Event()

    # --- the connection -------------------------------------------------------------------------------------
    async def connect(self, timeout):
        self.ws = await asyncio.wait_for(
            connect(self.ws_url, subprotocols=SUBPROTOCOLS, proxy=None, max_size=None, ping_interval=None,
                    open_timeout=timeout, close_timeout=5), timeout)
        self._pump_task = asyncio.ensure_future(self._pump())

    async def close(self):
        self._closing = True
        if self.ws is not None:
            try:
                await asyncio.wait_for(self.ws.close(), 10)
            except Exception:  # noqa: BLE001 - closing a dead connection
                pass
        if self._pump_task is not None:
            self._pump_task.cancel()
            await asyncio.gather(self._pump_task, return_exceptions=True)

    async def _pump(self):
        try:
            async for frame in self.ws:
                self._receive(frame, time.perf_counter())
                self._news.set()
        except Exception as e:  # noqa: BLE001 - any end of the connection is reported through `closed`
            self.closed = f"{type(e).__name__}: {e}"
        finally:
            if not self._closing:
                self.closed = self.closed or f"the server closed the websocket ({self.ws.close_code})"
            self._news.set()

    async def until(self, predicate, timeout, what):
        """Wait until predicate() holds, as messages arrive; TimeoutError after `timeout` s, ConnectionError if
        the websocket closes first."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not predicate():
            if self.closed:
                raise ConnectionError(self.closed)
            left = end - loop.time()
            if left <= 0:
                raise TimeoutError(f"no {what} within {timeout:g} s")
            self._news.clear()
            try:
                await asyncio.wait_for(self._news.wait(), left)
            except TimeoutError:
                pass

    # --- requests ----------------------------------------------------------------------------------------------
    async def rerun(self, changes=(), triggers=(), page=None, first_visit=False):
        """Send one rerun_script -> (index in self.runs of the run it starts, perf_counter when sent).

        changes: WidgetStates the user just set (kept); triggers: ids of pressed buttons (sent once); page: a url
        path, visited by name on a first visit (first_visit=True), else changed to by its page_script_hash."""
        for ws in changes:
            self.states[ws.id] = ws
        cs = ClientState(query_string="")
        if first_visit:
            cs.page_name = page or ""  # "" is the default page; the server resolves the name (url_pathname)
        elif page is not None:
            if page not in self.pages:
                raise KeyError(f"no page {page!r} in the navigation ({', '.join(self.pages)})")
            cs.page_script_hash = self.pages[page]
            # a page change keeps the main script's widgets (the sidebar), as the front end's onPageChange does
            keep = {i for i, (_, _, script) in self.widgets.items() if script == self.main_hash}
            self.states = {i: s for i, s in self.states.items() if i in keep}
        else:
            cs.page_script_hash = self.page_hash
        cs.widget_states.widgets.extend(self.states.values())
        cs.widget_states.widgets.extend(WidgetState(id=i, trigger_value=True) for i in triggers)
        cs.cached_message_hashes.extend(self.cache)
        path = page if page is not None else next((p for p, h in self.pages.items() if h == self.page_hash), "")
        info = cs.context_info
        info.timezone, info.timezone_offset, info.locale = "UTC", 0, "en-US"
        info.url, info.is_embedded, info.color_scheme = f"{self.url}/{path}", False, "light"
        msg = BackMsg()
        msg.rerun_script.CopyFrom(cs)
        if self.closed:
            raise ConnectionError(self.closed)
        mark, t = len(self.runs), time.perf_counter()
        await self.ws.send(msg.SerializeToString())
        return mark, t

    async def finished(self, mark, timeout):
        """The run a rerun() started (its index `mark`), once its script_finished has come; a run that finished early
        for a rerun is followed by the next one, until one that finished."""
        end = time.perf_counter() + timeout
        while True:
            await self.until(lambda: len(self.runs) > mark and self.runs[mark].done, end - time.perf_counter(),
                             "finished run")
            if self.runs[mark].status != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                return self.runs[mark]
            # stopped early for a rerun: the next run is the one that draws. A run the page itself started
            # (st.rerun: a slow model's early draw, a finished training) can open just after a request was sent,
            # and the request then stops it at once, empty: at N = 30 that run was taken for the press's own
            # and its missing Fine-tune button counted as an error (load_protocol_s52_*.csv)
            mark += 1

    async def visit(self, page, timeout):
        """Connect and run `page` (a url path; "" the default page) as a browser's first load does -> its Run."""
        await self.connect(timeout)
        mark, _ = await self.rerun(page=page, first_visit=True)
        return await self.finished(mark, timeout)

    # --- what the page shows --------------------------------------------------------------------------------
    def latest(self):
        """The latest run that finished (what the page shows now)."""
        return next((r for r in reversed(self.runs) if r.done), None)

    def slider_position(self, wid):
        return slider_position(self.widgets[wid][1], self.states[wid])

    def slider_moved(self, wid, direction):
        return slider_moved(self.widgets[wid][1], self.states[wid], direction)

    def slider_labelled(self, prefix):
        """The id of the slider whose label starts with `prefix`, or None."""
        return next((i for i, (kind, p, _) in self.widgets.items() if kind == "slider" and p.label.startswith(prefix)),
                    None)

    # --- incoming messages ------------------------------------------------------------------------------------
    def _run(self, run_id=None):
        if run_id:
            for run in reversed(self.runs):
                if run.id == run_id:
                    return run
        return self.runs[-1] if self.runs else None

    def _problem(self, text, run=None):
        run = run or self._run()
        (run.problems if run else self.stray).append(text)

    def _receive(self, frame, t):
        msg = ForwardMsg.FromString(frame)
        kind = msg.WhichOneof("type")
        if kind == "ref_hash":  # a message this client keeps: the server sent only its hash
            cached = self.cache.get(msg.ref_hash)
            if cached is None:
                self._problem(f"cached message missing ({msg.ref_hash})")
                return
            cached[1] = self.run_count
            metadata = msg.metadata
            msg = ForwardMsg.FromString(cached[0])
            msg.metadata.CopyFrom(metadata)
            kind = msg.WhichOneof("type")
        elif msg.metadata.cacheable and msg.hash and msg.hash not in self.cache:
            self.cache[msg.hash] = [frame, self.run_count]

        if kind == "new_session":
            ns = msg.new_session
            self.main_hash, self.page_hash = ns.main_script_hash, ns.page_script_hash
            self.max_age = ns.config.max_cached_message_age or self.max_age
            self.runs.append(Run(msg.metadata.run.script_run_id, ns.page_script_hash, t))
        elif kind == "navigation":
            self.pages = {p.url_pathname: p.page_script_hash for p in msg.navigation.app_pages}
            self.page_hash = msg.navigation.page_script_hash
            if self.runs:
                self.runs[-1].page_hash = self.page_hash
        elif kind == "page_not_found":
            self._problem(f"page not found: {msg.page_not_found.page_name!r}")
        elif kind == "session_event" and msg.session_event.HasField("script_compilation_exception"):
            e = msg.session_event.script_compilation_exception
            self._problem(f"script failed to compile: {e.type}: {e.message[:300]}")
        elif kind == "delta":
            self._delta(msg)
        elif kind == "script_finished":
            self._finished(msg, t)

    def _delta(self, msg):
        run = self._run()
        if run is None or msg.delta.WhichOneof("type") != "new_element":
            return
        element = msg.delta.new_element
        kind = element.WhichOneof("type")
        run.kinds[kind] += 1
        path = tuple(msg.metadata.delta_path)
        if kind == "exception":
            e = element.exception
            run.problems.append(f"exception: {e.type}: {e.message[:300]}")
        elif kind == "alert" and element.alert.format == Alert.ERROR:
            run.problems.append(f"st.error: {element.alert.body[:300]}")
        elif kind == "markdown":
            run.texts.append(element.markdown.body)
        elif kind == "progress":
            run.texts.append(element.progress.text)
        elif kind == "metric":
            run.metrics.append(element.metric.body)
        elif kind == "button":
            run.buttons[element.button.label] = element.button.id
        if kind not in STATEFUL:
            return
        proto = getattr(element, kind)
        run.widget_ids.add(proto.id)
        self.widgets[proto.id] = (kind, proto, msg.metadata.active_script_hash)
        if proto.id not in self.states or proto.set_value:  # new to the page, or set by the script
            state = widget_state(kind, proto)
            if state is not None:
                self.states[proto.id] = state
        if kind == "slider" and path and path[0] == MAIN and len(proto.default) == 1:
            run.sliders[proto.id] = path

    def _finished(self, msg, t):
        run = self._run(msg.metadata.run.script_run_id if msg.metadata.HasField("run") else None)
        if run is None:
            self.stray.append("script_finished before any run started")
            return
        run.finished, run.status = t, msg.script_finished
        if msg.script_finished == ForwardMsg.FINISHED_WITH_COMPILE_ERROR:
            run.problems.append("the script finished with a compile error")
        if msg.script_finished in DONE:  # the front end's cache ages its messages by finished runs
            self.run_count += 1
            self.cache = {h: c for h, c in self.cache.items() if self.run_count - c[1] <= self.max_age}
        if msg.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY:  # widgets a whole run did not draw are gone
            self.widgets = {i: w for i, w in self.widgets.items() if i in run.widget_ids}
            self.states = {i: s for i, s in self.states.items() if i in run.widget_ids}
