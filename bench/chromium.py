"""The dashboard in a real browser: start `streamlit run app.py` on a free loopback port and Debian's headless
Chromium (Playwright), for the browser test (tests/test_browser.py) and the browser benchmarks (bench/latency.py).

One copy of the flags and the start-up check, so a test and a benchmark measure the same server. No pytest here:
failures raise RuntimeError, and the caller decides whether that is a skip, a failure or a message.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"  # Playwright cannot download its own browser here
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
STREAMLIT_FLAGS = ["--server.headless", "true", "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
                   "--server.fileWatcherType", "none"]


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


LAUNCHERS = ("streamlit", "serve", "cli")


def streamlit_command(port, app_dir=ROOT, how="serve"):
    """The command that serves app_dir/app.py on 127.0.0.1:port: "streamlit" is `streamlit run app.py` itself;
    "serve" the checkout's launcher scripts/serve.py (what `bash scripts/dev.sh app` runs: the same, from the
    checkout's folder, pandas imported first); "cli" the playground's own `app` command, as a user starts it
    (`python -m compress_engine app`, which serves through scripts/serve.py in its own process)."""
    if how not in LAUNCHERS:
        raise ValueError(f"how={how!r}: one of {LAUNCHERS}")
    if how == "cli":
        return [sys.executable, "-m", "compress_engine", "app", *STREAMLIT_FLAGS[2:], "--server.port", str(port)]
    if how == "serve":
        return [sys.executable, str(Path(app_dir) / "scripts" / "serve.py"), *STREAMLIT_FLAGS, "--server.port", str(port)]
    return [sys.executable, "-m", "streamlit", "run", str(Path(app_dir) / "app.py"), *STREAMLIT_FLAGS,
            "--server.port", str(port)]


def wait_healthy(url, proc, timeout=60.0, log=None):
    """Poll url's /_stcore/health until it answers "ok"; RuntimeError (with the end of the log) if the server
    exits or does not answer within `timeout` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            break
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=1).read() == b"ok":
                return
        except OSError:
            time.sleep(0.05)
    text = ""
    if log is not None:
        log.seek(0)
        text = log.read().decode(errors="replace")[-3000:]
    raise RuntimeError(f"streamlit did not start at {url} (exit code {proc.poll()}):\n{text}")


@contextmanager
def streamlit_server(app_dir=ROOT, env=None, how="serve", timeout=60.0, wait=True):
    """Serve the dashboard on a free loopback port; yields (url, process). With wait=False the caller polls
    wait_healthy itself (to time the start). The server is stopped on exit."""
    port = free_port()
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(streamlit_command(port, app_dir, how), cwd=app_dir, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        if wait:
            wait_healthy(url, proc, timeout, log)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


# The floor under the dashboard's goals: an app that draws one small Plotly chart and nothing else (no torch, no data)
FLOOR_APP = """import plotly.graph_objects as go
import streamlit as st

st.title("One chart")
st.plotly_chart(go.Figure(go.Scatter(y=[1, 3, 2])))
"""


@contextmanager
def app_server(source, env=None, settings=None, wait=True):
    """`streamlit run` of a throwaway app whose app.py is `source`, in a temporary folder, with the Streamlit
    settings (.streamlit/) of the checkout `settings` beside it (None: Streamlit's defaults); yields (url, process)
    as streamlit_server does."""
    with tempfile.TemporaryDirectory(prefix="floor-") as folder:
        (Path(folder) / "app.py").write_text(source)
        if settings is not None:
            shutil.copytree(Path(settings) / ".streamlit", Path(folder) / ".streamlit")
        with streamlit_server(folder, env=env, how="streamlit", wait=wait) as served:
            yield served


def have_chromium():
    return Path(CHROMIUM).exists()


def launch(playwright, **kw):
    """Headless Chromium (Debian's) with the flags above."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, **kw)


def server_env(**extra):
    """os.environ plus `extra` (values converted to str; None removes the variable)."""
    env = dict(os.environ)
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env
