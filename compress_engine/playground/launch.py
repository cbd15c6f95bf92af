"""`compression-playground app`: serve the dashboard from a source checkout, with nothing heavy imported first.

The command line (cli.py) imports torch and the zoo before it parses a single argument. The `app` command skips
all of that (compress_engine.__main__ sends it here): the server starts at once, and Home, the first page, draws
without torch too (bench/latency.py times the cold start).
"""

import importlib.util
import runpy
import sys
from pathlib import Path

from ..core.errors import CompressError

SERVE = "scripts/serve.py"  # the checkout's launcher: `streamlit run app.py` from the checkout, with its settings


def find_app():
    """The dashboard's app.py: beside the package in a checkout (or `pip install -e .`), else in the current folder.
    `pip install .` ships the engine and the sample models, not the dashboard."""
    for folder in (Path(__file__).resolve().parents[2], Path.cwd()):
        if (folder / "app.py").is_file() and (folder / "pages").is_dir() and (folder / SERVE).is_file():
            return folder / "app.py"
    raise CompressError("app: the dashboard (app.py and pages/) comes with the source checkout, not with "
                        "`pip install .`: clone the repository and run `bash scripts/dev.sh app` there (or `pip "
                        "install -e '.[dashboard]'` and `compression-playground app` inside it)")


def start_app(extra):
    """Serve the dashboard from this process with the checkout's scripts/serve.py (headless; extra arguments go
    to `streamlit run`); returns its exit status. CompressError if there is no checkout or no streamlit."""
    app = find_app()
    if importlib.util.find_spec("streamlit") is None:
        raise CompressError("app: streamlit is not installed in this environment: "
                            "pip install -e '.[dashboard]' (or run `bash scripts/dev.sh app`)")
    serve = runpy.run_path(str(app.parent / SERVE))  # defines main() (it runs only as __main__)
    return serve["main"](["--server.headless", "true", "--browser.gatherUsageStats", "false", *extra])


def one_line(message):
    """Messages may quote user text: keep the report on one line whatever it holds."""
    return " ".join(str(message).split())


def main(extra):
    """`app` with its further arguments -> exit status: 2 and one line on stderr for what stops it starting."""
    try:
        return start_app(extra)
    except CompressError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
