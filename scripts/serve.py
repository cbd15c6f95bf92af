"""Start the dashboard: `streamlit run app.py` from the checkout, with its settings.

    python scripts/serve.py [streamlit run options, e.g. --server.port 8502]

`bash scripts/dev.sh app` and the `app` command (`python -m compress_engine app`) both start it this way.
Home, the page a visitor sees first, imports no torch: the model's card, the first test images and the
model's predictions for them are read from disk (sample_models/<name>.json, the first bytes of the dataset's
files), and once its chart has gone out it evaluates the dense model in a thread (pages/common.warm), which
imports torch and loads the dataset while the visitor looks at the page. This launcher used to import torch in a
thread as soon as the server listened; with Home needing none, that thread only competed with Home's run and
the browser (bench/latency.py: 5.2 s to Home's chart with it, 2.8 s without), so it is gone.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None):
    os.chdir(ROOT)  # .streamlit/config.toml (headless, runner settings, no Deploy button) is read from here
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # `pages` and, in a source checkout, `compress_engine`
    # pandas whole before any other thread exists: plotly (which the server imports as it starts, and every chart
    # uses) looks pandas up in sys.modules without importing it, so a pandas half-imported by another thread
    # broke about half the starts on a busy machine (AttributeError, exit 1). An import statement waits for an
    # import in progress; that lookup does not.
    import pandas  # noqa: F401
    from streamlit.web import cli
    args = list(sys.argv[1:] if argv is None else argv)
    sys.argv = ["streamlit", "run", str(ROOT / "app.py"), *args]
    return cli.main()


if __name__ == "__main__":
    sys.exit(main())
