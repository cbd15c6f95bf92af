"""Start the dashboard: `streamlit run app.py`, with the engine warmed up as soon as the server is up.

    python scripts/serve.py [streamlit run options, e.g. --server.port 8502]

`bash scripts/dev.sh app` and the `app` command (`python -m compress_engine app`) both start it this way.
A first visit's Home page needs torch (about 1.1-1.7 s to import on the 2-core machine), the dataset (about 0.5 s
to read and decode), pandas and plotly. Under plain `streamlit run` the first session's first script run does all
of that, after the browser has loaded the page. Here a background thread does it once the server is listening,
while the browser loads Streamlit's JavaScript, so that first run finds it done or under way (not before: one
interpreter lock, so importing torch beside the server's own start delayed the server by about 2 s). A page that
asks for a module or the dataset while the thread is still busy with it waits for that one import or load
(Python's import lock; compress_engine.load_dataset's lock), never sees half of it and never does it twice.
bench/latency.py times the cold start both ways."""

import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def server_listening(timeout=15.0):
    """Wait until Streamlit's runtime has started (its server answers), at most `timeout` seconds.

    Checked in sys.modules, never imported here: importing streamlit from this thread would race the main thread's
    import of it. Until then the warm-up does nothing: on 2 cores, importing torch beside the server's own start
    (one interpreter lock) delayed the server, and so the browser's first request, by about 2 s."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        rt = sys.modules.get("streamlit.runtime.runtime")
        try:
            if rt is not None and rt.Runtime.exists() and rt.Runtime.instance().state.name.endswith("CONNECTED"):
                return True
        except Exception:  # noqa: BLE001 - a streamlit without these internals: warm up after the timeout
            pass
        time.sleep(0.02)
    return False


def warm():
    """Once the server is up, import what every first page run needs and load the dashboard's dataset (kept by
    load_dataset), while the browser loads Streamlit's JavaScript."""
    server_listening()
    try:
        import plotly.graph_objects  # noqa: F401 - Home's chart

        import compress_engine as ce
        from pages import common
        ce.load_dataset(common.DATASET)
    except Exception:  # noqa: BLE001 - a missing dataset or package: the page's own run says what and how to fix it
        pass


def main(argv=None):
    os.chdir(ROOT)  # .streamlit/config.toml (headless, runner settings, no Deploy button) is read from here
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # `pages` and, in a source checkout, `compress_engine`
    # pandas whole before a second thread exists: plotly (which the server imports as it starts, and every chart
    # uses) looks pandas up in sys.modules without importing it, so a pandas half-imported by the warm-up thread
    # broke about half the starts on a busy machine (AttributeError, exit 1). An import statement waits for an
    # import in progress; that lookup does not. torch and the engine are only imported, never looked up.
    import pandas  # noqa: F401
    threading.Thread(target=warm, name="warm-up", daemon=True).start()
    from streamlit.web import cli
    args = list(sys.argv[1:] if argv is None else argv)
    sys.argv = ["streamlit", "run", str(ROOT / "app.py"), *args]
    return cli.main()


if __name__ == "__main__":
    sys.exit(main())
