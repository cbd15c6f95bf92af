"""Thirty sessions on one server: N concurrent sessions move sliders and start short fine-tunes.

    python bench/load.py                          # N = 1, 5, 10, 30 browser pages; 60 s of sliding each (about 8 min)
    python bench/load.py --clients protocol       # the same sessions as Streamlit protocol clients (no browser)
    python bench/load.py --sessions 5 --seconds 20
    python bench/load.py --think 1 3 --no-finetune

Two kinds of session (--clients), doing the same things:

- browser (the default): one headless Chromium (Debian's, through Playwright's async API) and N browser
  contexts, one page each; a press is an arrow key on the slider, the page renders what comes back.
- protocol: each session is a websocket client of bench/protocol.py speaking Streamlit's own protocol to the
  server, as the front end does (/_stcore/stream; rerun_script BackMsgs with the page, all widget values and a
  changed slider's next value or a pressed button's trigger; ForwardMsgs read back run by run), with nothing
  rendered. This measures the server, not 30 browsers rendering Plotly on the same 2 cores.

For each N: a fresh dashboard (scripts/serve.py, i.e. `streamlit run app.py`; --launcher) on a free loopback
port (an empty run store and trained-results folder, so nothing trained earlier answers), all sessions on
LeNet-300-100 (the default model; --model picks another in the sidebar of each page a session opens). After one
warm-up visit to Home (--warm) and until the server has gone idle
(Home draws without torch and then loads torch, the dataset and the model in the background), the sessions
join one after another
over --ramp seconds (a class arriving), then:

- slider sessions open Pruning, Clustering or Quantization (in turn) and move that page's first slider one
  step (sweeping back and forth between its ends), wait for the redraw, think for a random --think seconds, and
  press again, until --seconds have passed;
- every fifth session (the 5th, 10th, ...) first starts a short fine-tune: on Pipeline it sets "Fine-tune
  epochs" to 1 at a sparsity of its own (so the runs differ and queue in the training pool), presses the
  button and waits for the fine-tuned result, noting whether it saw its place in the queue (every second
  one of them, the 10th, 20th, ..., presses Cancel instead once it sees it is queued: "fine-tunes done" counts
  finished and cancelled ones); then it goes to Pruning and slides like the others.

A redraw is read, not waited for with sleeps. In a browser: after a key press the page's metric values must differ
from before, Streamlit's status widget ([data-testid="stStatusWidget"], shown while the script runs) must be gone,
and the page's websocket must have carried the script_finished message of the run the press started; latency is
from the key press to all three. A protocol client: the run its rerun_script started (the next new_session) must
have finished (its script_finished received) and have sent at least one metric or Plotly chart; latency is from
sending the BackMsg to receiving script_finished, so it holds the server's run and the messages' transfer and
decoding, and no rendering, no front-end JavaScript and no page load (a protocol page open is the websocket's
opening and the page's first run). An error is any of: a redraw that does not come within --timeout seconds (a
page open: OPEN_FACTOR times that), an exception or st.error on a page, a closed websocket, a fine-tune that does
not finish; in a browser also a page crash, for a protocol client also a script that fails to compile, a page
not found, or a run that sends no metric or chart.

Prints per N: sessions, redraws, p50 / p95 / max slider -> redraw latency, errors, fine-tunes finished (and how
many saw a queue position), page-open p95, the server's peak RSS (VmHWM of its process), the CPU the server and
the whole machine used while the sessions ran (in cores: a browser's own rendering runs on the same 2 cores), the
load average and the kind of clients (protocol clients: also the CPU they used, all in this one process); writes
bench/results/load.csv (protocol clients: load_protocol.csv; --name).
Goal at N = 30 on 2 cores: 0 errors, p95 <= 2 s, RSS <= 6 GB. Bounded: at most MAX_SESSIONS sessions, loopback
only, every wait has a timeout.

Read the CPU columns before the latencies: N Chromium pages render their Plotly charts on the same 2 cores as the
server. Measured on 1 Dec with browsers (other benchmarks running too, load average 6-33), the server used
0.17-0.27 cores at every N while the machine was at 1.8-2.0: the latencies and the N = 30 timeouts were the
clients' and the other processes' CPU, not the server's. Protocol clients leave the cores to the server.
"""

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from report import table  # noqa: E402  (also puts this checkout on sys.path)

import protocol  # noqa: E402
from chromium import CHROMIUM, FLAGS, LAUNCHERS, have_chromium, server_env, streamlit_server  # noqa: E402
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg  # noqa: E402
from streamlit.proto.WidgetStates_pb2 import WidgetState  # noqa: E402

MAX_SESSIONS = 50
DEFAULT_MODEL = "lenet-300-100"  # the sidebar's first model: what a session uses unless --model names another
SLIDER_PAGES = ("pruning", "clustering", "quantization")
FINETUNE_EVERY = 5  # every fifth session starts a fine-tune first
VIEWPORT = {"width": 1280, "height": 900}
OPEN_FACTOR = 3  # a page open may take this many --timeout (the front end's first load and a whole page run)

# JS run in the page
METRICS = ("() => [...document.querySelectorAll('[data-testid=\"stMain\"] [data-testid=\"stMetricValue\"]')]"
           ".map(e => e.innerText).join('|')")
REDRAWN = ("before => { const m = [...document.querySelectorAll('[data-testid=\"stMain\"] "
           "[data-testid=\"stMetricValue\"]')].map(e => e.innerText).join('|');"
           " return m !== '' && m !== before && !document.querySelector('[data-testid=\"stStatusWidget\"]'); }")
IDLE = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
PROBLEMS = ("() => [...document.querySelectorAll('[data-testid=\"stException\"], [data-testid=\"stAlertContentError\"]')]"
            ".map(e => e.innerText.slice(0, 300))")
SLIDER_STATE = "el => [Number(el.value), Number(el.min), Number(el.max)]"  # a slider's <input type="range">


def epochs_text(verb, n):
    """The Pipeline page's words for n epochs: "Fine-tune 1 epoch", "Fine-tuned 3 epochs" (the start of the button's
    label, which may go on: "Fine-tune 1 epoch after each stage (2 in all)")."""
    return f"{verb} {n} epoch" + ("s" if n > 1 else "")


def finetune_button(buttons, n):
    """The id of the Fine-tune button for n epochs among a run's {label: id}, or None."""
    return next((bid for label, bid in buttons.items() if label.startswith(epochs_text("Fine-tune", n))), None)


class BaseSession:
    """What every session does and measured, whichever client it is (a browser page or a protocol client): join,
    open its page (or first start a fine-tune), then press its slider until the deadline. A subclass provides
    start / close, open(page), position() and move(direction) of its slider, and the fine-tune steps."""

    def __init__(self, index, args):
        self.index, self.args = index, args
        self.deadline = None  # --seconds after its page opened (and its fine-tune finished)
        self.epochs = 1  # of its fine-tune (start_finetune)
        self.finetunes = index % FINETUNE_EVERY == FINETUNE_EVERY - 1 and not args.no_finetune
        self.page_name = "pruning" if self.finetunes else SLIDER_PAGES[index % len(SLIDER_PAGES)]
        self.rng = random.Random(index)
        self.latencies, self.errors, self.notes = [], 0, []
        self.open_s = self.finetune_s = None
        self.saw_queue = self.cancelled = False

    def error(self, what):
        self.errors += 1
        self.notes.append(what)

    async def run(self, start_delay=0.0):
        await asyncio.sleep(start_delay)  # sessions join over --ramp seconds, as a class does
        await self.start()
        try:
            if self.finetunes:
                await self.finetune()
            else:
                await self.open(self.page_name)
            self.deadline = time.perf_counter() + self.args.seconds
            await self.slide()
        except Exception as e:  # noqa: BLE001 - a timeout or a dead page is an error of this session, not a crash
            self.error(f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}")
        finally:
            await self.close()

    async def slide(self):
        """Move the page's first slider one step at a time, sweeping back and forth between its ends, thinking
        --think seconds between presses: at least --min-presses presses, then until the deadline."""
        direction = self.rng.choice((1, -1))
        presses = 0
        while True:
            value, lo, hi = await self.position()
            if value >= hi:
                direction = -1
            elif value <= lo:
                direction = 1
            await self.move(direction)
            presses += 1
            pause = self.rng.uniform(*self.args.think)
            if presses >= self.args.min_presses and time.perf_counter() + pause > self.deadline:
                break
            await asyncio.sleep(pause)

    async def finetune(self):
        """Pipeline: a fine-tune of its own, followed to the end (or, every second fine-tune session, cancelled if
        it has to queue); then Pruning."""
        t = await self.start_finetune(1 + self.index // FINETUNE_EVERY)  # 81 %, 82 %, ...: one recipe each
        await self.follow_finetune(t, cancel_if_queued=(self.index // FINETUNE_EVERY) % 2 == 1)
        await self.goto_pruning()


class Session(BaseSession):
    """One browser session (its own context: its own Streamlit session) and what it measured."""

    KEYS = {1: "ArrowRight", -1: "ArrowLeft"}

    def __init__(self, index, browser, url, args):
        super().__init__(index, args)
        self.browser, self.url = browser, url
        self.finished = []  # perf_counter of each script_finished message on this page's websocket
        self.closed = False

    # --- the page's websocket: when each script run finished ---------------------------------------
    def _socket(self, ws):
        ws.on("framereceived", self._frame)
        ws.on("close", lambda _ws: setattr(self, "closed", True))

    def _frame(self, payload):
        if isinstance(payload, str) or len(payload) > 4096:  # script_finished is a few bytes; deltas are not
            return
        msg = ForwardMsg()
        try:
            msg.ParseFromString(payload)
        except Exception:  # noqa: BLE001 - not a ForwardMsg: ignore
            return
        if msg.WhichOneof("type") == "script_finished":
            self.finished.append(time.perf_counter())

    async def start(self):
        """Its own browser context (cookies, so its own Streamlit session) and page."""
        self.context = await self.browser.new_context(viewport=VIEWPORT)
        self.page = await self.context.new_page()
        self.page.set_default_timeout(1000 * self.args.timeout)
        self.page.on("websocket", self._socket)
        self.page.on("crash", lambda _p: self.error("page crashed"))

    async def close(self):
        await self.context.close()

    async def open(self, page_name):
        t = time.perf_counter()
        wait = OPEN_FACTOR * self.args.timeout  # a first visit loads the whole front end and runs the whole page
        await self.page.goto(f"{self.url}/{page_name}", wait_until="commit", timeout=1000 * wait)
        await self.page.locator('[data-testid="stMain"] [data-testid="stSlider"]').first.wait_for(timeout=1000 * wait)
        await self.settled(t, wait)
        if self.args.model != DEFAULT_MODEL:  # the sidebar's picker, as a visitor chooses it
            await self.page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
            chose = time.perf_counter()
            await self.page.get_by_role("option", name=self.args.model, exact=True).click()
            await self.settled(chose, wait)
        self.open_s = time.perf_counter() - t
        await self.check_page()

    async def settled(self, since, timeout=None):
        """Wait until the run started after `since` has finished and the page shows no running status."""
        timeout = timeout or self.args.timeout
        end = time.perf_counter() + timeout
        while not (self.finished and self.finished[-1] > since):
            if time.perf_counter() > end:
                raise TimeoutError(f"no finished run within {timeout:g} s")
            if self.closed:
                raise ConnectionError("the websocket closed")
            await asyncio.sleep(0.02)
        await self.page.wait_for_function(IDLE, polling=50)

    async def check_page(self):
        for text in await self.page.evaluate(PROBLEMS):
            self.error(f"on the page: {text}")

    async def press(self, slider, key, measure=True):
        """One arrow-key press on `slider`; waits for the redraw (metrics changed, run finished, status gone).
        Unmeasured presses (setting up a fine-tune) wait for the run to finish only: a setting such as Fine-tune
        epochs may leave the metrics as they were."""
        before = await self.page.evaluate(METRICS)
        await slider.focus()
        t = time.perf_counter()
        await self.page.keyboard.press(key)
        if measure:
            await self.page.wait_for_function(REDRAWN, arg=before, polling=25)
        await self.settled(t)  # the run this press started (nothing else runs in this session) has finished
        if measure:
            self.latencies.append(time.perf_counter() - t)
        await self.check_page()

    @property
    def slider(self):
        return self.page.locator('[data-testid="stMain"] [data-testid="stSlider"] input[type="range"]').first

    async def position(self):
        """(value, min, max) of the page's first slider."""
        return await self.slider.evaluate(SLIDER_STATE)

    async def move(self, direction):
        await self.press(self.slider, self.KEYS[direction])

    async def goto_pruning(self):
        await self.page.locator('[data-testid="stSidebarNav"] a', has_text="Pruning").first.click()
        await self.page.get_by_text("Sparsity: share of weights").first.wait_for()
        await self.page.wait_for_function(IDLE, polling=50)

    async def start_finetune(self, steps, n_epochs=1):
        """On Pipeline: sparsity `steps` to the right, Fine-tune epochs `n_epochs`, press the button -> when pressed."""
        await self.open("pipeline")
        sparsity = self.slider
        for _ in range(steps):
            await self.press(sparsity, "ArrowRight", measure=False)
        epochs = self.page.locator('[data-testid="stSlider"]', has_text="Fine-tune epochs").locator('input[type="range"]')
        for _ in range(n_epochs):
            await self.press(epochs, "ArrowRight", measure=False)
        self.epochs = n_epochs
        t = time.perf_counter()
        await self.page.get_by_role("button", name=epochs_text("Fine-tune", n_epochs)).click()
        return t

    async def follow_finetune(self, t, cancel_if_queued=False):
        """Wait for the fine-tuned result (noting a queue position on the way), or press Cancel once queued."""
        done = self.page.get_by_text(epochs_text("Fine-tuned", self.epochs), exact=False).first
        end = t + self.args.timeout * 5
        while not await done.is_visible():
            if time.perf_counter() > end:
                raise TimeoutError("the fine-tune did not finish")
            if self.closed:
                raise ConnectionError("the websocket closed")
            if not self.saw_queue and await self.page.get_by_text("ahead of you").count():
                self.saw_queue = True
            if self.saw_queue and cancel_if_queued:
                await self.cancel_finetune()
                return
            if await self.page.evaluate(PROBLEMS):
                break
            await asyncio.sleep(0.1)
        await self.settled(t)
        self.finetune_s = time.perf_counter() - t
        await self.check_page()

    async def cancel_finetune(self):
        """Press the run's Cancel: the page must go back to offering the fine-tune, with no progress bar."""
        t = time.perf_counter()
        await self.page.get_by_role("button", name="Cancel").click()
        await self.settled(t)
        await self.page.get_by_role("button", name=epochs_text("Fine-tune", self.epochs)).wait_for()
        try:  # the interrupted run's finish can come before the rerun's: wait for the rerun to clear the bar
            await self.page.locator('[data-testid="stProgress"]').first.wait_for(
                state="detached", timeout=1000 * self.args.timeout)
        except Exception:
            self.error("a progress bar is still shown after Cancel")
        self.cancelled = True
        await self.check_page()


class ProtocolSession(BaseSession):
    """One session as a Streamlit protocol client (bench/protocol.py): the websocket and the messages a browser
    tab exchanges with the server, without the browser. The same steps as a browser Session: a page open is a
    first visit (a new connection, as page.goto is a new page load), a slider press one rerun_script with the
    slider's next value among all widget values, a button press a trigger, Pruning is reached through the
    navigation (the page_script_hash the server announced)."""

    def __init__(self, index, url, args):
        super().__init__(index, args)
        self.url = url
        self.client = self.slider = None  # the connection of its latest page open; its page's first slider (id)
        self.training = None  # index in client.runs of the run its fine-tune button started

    async def start(self):
        pass  # a page open connects: as in a browser, its time includes the websocket's opening

    async def close(self):
        if self.client is not None:
            await self.client.close()

    def check(self, run):
        """Count an error for each problem of a finished run (an exception, an st.error, a failed script)."""
        for text in run.problems:
            self.error(f"on the page: {text}")

    async def open(self, page_name):
        await self.close()
        t = time.perf_counter()
        self.client = protocol.Client(self.url)
        run = await self.client.visit(page_name, OPEN_FACTOR * self.args.timeout)
        if self.args.model != DEFAULT_MODEL:  # the sidebar's picker set, as a visitor chooses it
            picker = next(i for i, (kind, p, _) in self.client.widgets.items()
                          if kind == "selectbox" and p.label == "Model")
            mark, _ = await self.client.rerun(changes=[WidgetState(id=picker, string_value=self.args.model)])
            run = await self.client.finished(mark, OPEN_FACTOR * self.args.timeout)
        self.open_s = time.perf_counter() - t
        self.on_page(run)

    def on_page(self, run):
        """After a page's run: check it, and find its first slider."""
        self.check(run)
        self.slider = run.first_slider()
        if self.slider is None:
            raise RuntimeError(f"no slider in the main area of page {run.page_hash!r}")

    async def position(self):
        return self.client.slider_position(self.slider)

    async def move(self, direction):
        await self.press(self.slider, direction)

    async def press(self, slider, direction, measure=True):
        """One step of `slider` (an id): a rerun with its new value; waits for that run's script_finished. A
        measured press must redraw (a metric or a chart in the run); unmeasured ones set up a fine-tune."""
        mark, t = await self.client.rerun(changes=[self.client.slider_moved(slider, direction)])
        run = await self.client.finished(mark, self.args.timeout)
        if measure:
            if run.redrew:
                self.latencies.append(run.finished - t)
            else:
                self.error(f"a press sent no chart or metric ({sum(run.kinds.values())} elements)")
        self.check(run)

    async def goto_pruning(self):
        mark, _ = await self.client.rerun(page="pruning")
        self.on_page(await self.client.finished(mark, self.args.timeout))

    async def start_finetune(self, steps, n_epochs=1):
        """On Pipeline: sparsity `steps` to the right, Fine-tune epochs `n_epochs`, press the button -> when pressed."""
        await self.open("pipeline")
        for _ in range(steps):
            await self.press(self.slider, 1, measure=False)
        epochs = self.client.slider_labelled("Fine-tune epochs")
        if epochs is None:
            raise RuntimeError("no Fine-tune epochs slider on Pipeline")
        for _ in range(n_epochs):
            await self.press(epochs, 1, measure=False)
        self.epochs = n_epochs
        last = self.client.latest()
        button = finetune_button(last.buttons, n_epochs)
        if button is None:  # what the page showed instead: its run's end, its buttons and its first texts
            raise RuntimeError(f"no {epochs_text('Fine-tune', n_epochs)!r} button on Pipeline (its last run: "
                               f"{last.status}, {len(self.client.runs)} runs, buttons {sorted(last.buttons)}, "
                               f"texts {[t[:60] for t in last.texts[:4]]})")
        self.training, t = await self.client.rerun(triggers=[button])
        return t

    async def follow_finetune(self, t, cancel_if_queued=False):
        """Wait for the run the button started to finish with the fine-tuned result (noting a queue position on
        the way), or press Cancel once queued."""
        client, mark = self.client, self.training

        def news():
            run = client.runs[mark] if len(client.runs) > mark else None
            self.saw_queue = self.saw_queue or bool(run and run.shows("ahead of you"))
            return run is not None and (run.done or run.problems or (self.saw_queue and cancel_if_queued))

        await client.until(news, t + self.args.timeout * 5 - time.perf_counter(), "fine-tuned result")
        run = client.runs[mark]
        if self.saw_queue and cancel_if_queued and not run.done:
            await self.cancel_finetune(run)
            return
        await client.finished(mark, self.args.timeout)
        self.check(run)
        if not run.problems and not run.shows(epochs_text("Fine-tuned", self.epochs)):
            last = run.texts[-1][:100] if run.texts else ""
            raise RuntimeError(f"the fine-tune run ended without its result ({last})")
        self.finetune_s = run.finished - t

    async def cancel_finetune(self, training):
        """Press the run's Cancel: the rerun it starts must offer the fine-tune again, with no progress bar."""
        await self.client.until(lambda: "Cancel" in training.buttons, self.args.timeout, "Cancel button")
        mark, _ = await self.client.rerun(triggers=[training.buttons["Cancel"]])
        run = await self.client.finished(mark, self.args.timeout)
        if finetune_button(run.buttons, self.epochs) is None:
            self.error("no fine-tune button after Cancel")
        if run.kinds["progress"]:
            self.error("a progress bar is still shown after Cancel")
        self.cancelled = True
        self.check(training)
        self.check(run)


def peak_rss_mb(pid):
    """The process's peak resident set (VmHWM) in MB of 1,000,000 bytes, or None."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        return None


def pct(values, q):
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


async def server_idle(pid, quiet=0.1, window=0.5, timeout=60.0):
    """Wait until the server process used under `quiet` CPU seconds in a `window` (its background work done: after
    Home's first run, importing torch and loading the dataset and the model), at most `timeout` seconds."""
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        before = cpu_seconds(pid)
        await asyncio.sleep(window)
        if cpu_seconds(pid) - before < quiet:
            return


async def warm_up(browser, url, args):
    """Before any session: one visit to Home (the server's first run; the dataset and the model load behind it),
    or with --warm pages also one to each page the sessions use, one after another (a teacher trying the demo
    first)."""
    warm = Session(-1, browser, url, args)
    await warm.start()
    warm.page.set_default_timeout(1000 * args.timeout * OPEN_FACTOR)
    t = time.perf_counter()
    await warm.page.goto(url)
    await warm.page.locator('[data-testid="stMain"] [data-testid="stMetric"]').first.wait_for()
    await warm.settled(t)
    if args.warm == "pages":
        for name in (*SLIDER_PAGES, "pipeline"):
            await warm.open(name)
    await warm.context.close()


def cpu_seconds(pid=None):
    """CPU seconds used so far by process `pid` (user + system), or by the whole machine (all cores, busy time)."""
    tick = os.sysconf("SC_CLK_TCK")
    if pid is not None:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick
    cpu = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(cpu) - cpu[3] - cpu[4]) / tick  # all but idle and iowait


async def protocol_warm_up(url, args):
    """warm_up with a protocol client: Home's first run (it must show its metrics), then with --warm pages one
    open of each page the sessions use."""
    warm = ProtocolSession(-1, url, args)
    try:
        warm.client = protocol.Client(url)
        home = await warm.client.visit("", OPEN_FACTOR * args.timeout)
        if not home.kinds["metric"]:
            raise RuntimeError(f"Home showed no metric: {home.problems or home.status}")
        if args.warm == "pages":
            for name in (*SLIDER_PAGES, "pipeline"):
                await warm.open(name)
    finally:
        await warm.close()


async def run_sessions(sessions, args, server_pid=None, cpu=None):
    """Run the sessions, joining over --ramp seconds, each bounded in time -> the sessions. Fills `cpu` with the
    server's, the machine's and this process's CPU seconds and the wall seconds while they ran."""
    n = len(sessions)
    start = (time.perf_counter(), cpu_seconds(server_pid) if server_pid else 0.0, cpu_seconds(),
             cpu_seconds(os.getpid()))
    tasks = {asyncio.ensure_future(s.run(args.ramp * i / n)): s for i, s in enumerate(sessions)}
    _, late = await asyncio.wait(tasks, timeout=args.ramp + args.seconds + args.timeout * (OPEN_FACTOR + 8))
    if cpu is not None:
        end = (time.perf_counter(), cpu_seconds(server_pid) if server_pid else 0.0, cpu_seconds(),
               cpu_seconds(os.getpid()))
        cpu.update(wall=end[0] - start[0], server=end[1] - start[1], machine=end[2] - start[2],
                   driver=end[3] - start[3])
    for task in late:  # bounded in time: a session still going now is an error
        tasks[task].error("did not finish in time")
        task.cancel()
    if late:
        await asyncio.wait(late, timeout=30)
    return sessions


async def drive(url, n, args, server_pid=None, cpu=None):
    """N sessions of the --clients kind against the server at `url`, after a warm-up visit -> list of sessions
    (Session or ProtocolSession). Fills `cpu` (run_sessions)."""
    if args.clients == "protocol":
        await protocol_warm_up(url, args)
        if server_pid:
            await server_idle(server_pid)
        return await run_sessions([ProtocolSession(i, url, args) for i in range(n)], args, server_pid, cpu)
    from playwright.async_api import async_playwright
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            await warm_up(browser, url, args)
            if server_pid:
                await server_idle(server_pid)
            return await run_sessions([Session(i, browser, url, args) for i in range(n)], args, server_pid, cpu)
        finally:
            await browser.close()


def measure(n, args):
    """Serve a fresh dashboard, drive N sessions -> (table row, sessions)."""
    with tempfile.TemporaryDirectory(prefix="load-") as tmp:
        env = server_env(COMPRESS_STORE=Path(tmp) / "runs.sqlite", COMPRESS_TRAINED=Path(tmp) / "trained",
                         OMP_NUM_THREADS=args.threads)
        with streamlit_server(env=env, how=args.launcher, timeout=120) as (url, proc):
            cpu = {}
            sessions = asyncio.run(drive(url, n, args, proc.pid, cpu))
            rss = peak_rss_mb(proc.pid)
    lat = [x for s in sessions for x in s.latencies]
    tuned = [s for s in sessions if s.finetunes]
    row = {"sessions": n, "redraws": len(lat),
           "redraws/s": round(len(lat) / cpu["wall"], 2) if cpu.get("wall") else "-",
           "p50 (s)": round(pct(lat, 0.5), 3) if lat else "-", "p95 (s)": round(pct(lat, 0.95), 3) if lat else "-",
           "max (s)": round(max(lat), 3) if lat else "-", "errors": sum(s.errors for s in sessions),
           "sessions without a redraw": sum(1 for s in sessions if not s.latencies),
           "fine-tunes done": f"{sum(1 for s in tuned if s.finetune_s is not None or s.cancelled)} of {len(tuned)}",
           "saw queue": sum(1 for s in tuned if s.saw_queue),
           "cancelled": sum(1 for s in tuned if s.cancelled),
           "fine-tune max (s)": round(max((s.finetune_s for s in tuned if s.finetune_s), default=0), 1) or "-",
           "page open p95 (s)": round(pct([s.open_s for s in sessions if s.open_s], 0.95) or 0, 2),
           "peak RSS (MB)": round(rss) if rss else "-",
           "server CPU (cores)": round(cpu["server"] / cpu["wall"], 2) if cpu.get("wall") else "-",
           "all CPU (cores)": round(cpu["machine"] / cpu["wall"], 2) if cpu.get("wall") else "-",
           "load avg (1 min)": round(os.getloadavg()[0], 2),
           "clients": args.clients, "model": args.model}
    if args.clients == "protocol" and cpu.get("wall"):  # in a browser run, Chromium's processes do the work
        print(f"  protocol clients (all {n} in this process): {cpu['driver'] / cpu['wall']:.2f} cores")
    for s in sessions:
        for note in s.notes[:3]:
            print(f"  session {s.index} ({s.page_name}): {note}", file=sys.stderr)
    return row, sessions


def parse_args(argv=None):
    """The options (also for tests: measure(5, parse_args(["--seconds", "20"])))."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, nargs="+", default=[1, 5, 10, 30], help="N values (default 1 5 10 30)")
    ap.add_argument("--seconds", type=float, default=60, help="seconds of sliding per N, after the pages opened")
    ap.add_argument("--think", type=float, nargs=2, default=[1.0, 4.0], metavar=("MIN", "MAX"),
                    help="seconds a session looks at the chart between two presses (uniform; default 1 4)")
    ap.add_argument("--min-presses", type=int, default=1,
                    help="presses each session makes even past --seconds (the tests' liveness check: default 1)")
    ap.add_argument("--timeout", type=float, default=60,
                    help=f"seconds one redraw may take (a page open: {OPEN_FACTOR}x as long)")
    ap.add_argument("--ramp", type=float, default=15,
                    help="the sessions join one after another over this many seconds (default 15)")
    ap.add_argument("--no-finetune", action="store_true", help="sliders only")
    ap.add_argument("--model", default=DEFAULT_MODEL,
                    help=f"the sample model every session picks in the sidebar on each page it opens (default "
                         f"{DEFAULT_MODEL}); a slow one such as resnet-8 is best with --no-finetune")
    ap.add_argument("--warm", choices=("home", "pages"), default="home",
                    help="before the sessions: one visit to Home (default), or to every page they use")
    ap.add_argument("--threads", type=int, help="OMP_NUM_THREADS of the server: torch threads of each page run "
                                                "(default: unset, torch's default of one per core)")
    ap.add_argument("--launcher", choices=LAUNCHERS, default="serve",
                    help="how the server starts (bench/chromium.py's streamlit_command; default: scripts/serve.py)")
    ap.add_argument("--clients", choices=("browser", "protocol"), default="browser",
                    help="each session a headless Chromium page (default) or a Streamlit protocol client")
    ap.add_argument("--name", help="bench/results/<name>.csv (default: load, or load_protocol with --clients protocol)")
    args = ap.parse_args(argv)
    args.name = args.name or ("load" if args.clients == "browser" else "load_protocol")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.clients == "browser" and not have_chromium():
        sys.exit(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    if max(args.sessions) > MAX_SESSIONS or min(args.sessions) < 1:
        sys.exit(f"--sessions must be 1..{MAX_SESSIONS}")
    print(f"{args.clients} clients; {os.cpu_count()} cores; server threads {args.threads or 'default'}; "
          f"think {args.think[0]:g}-{args.think[1]:g} s; {args.seconds:g} s per N; "
          f"load average before: {', '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    rows = []
    for n in args.sessions:
        row, _ = measure(n, args)
        rows.append(row)
        print(row, flush=True)
    table(f"{args.name}: N concurrent sessions on one server, {args.clients} clients ({args.model}; goal at "
          "N = 30: 0 errors, p95 <= 2 s, peak RSS <= 6,000 MB)", rows, args.name)
    print(f"\nload average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
