"""Screenshots of every dashboard page for the README (docs/screenshots/*.png).

    python bench/screenshots.py                                   # every page, into docs/screenshots/
    python bench/screenshots.py --pages Compare Pipeline --suffix -after --demo-runs

Starts streamlit on a free loopback port and drives Debian's chromium. Each page is opened from the
sidebar (as a user would) and shot once its charts have drawn. --demo-runs points the run store at a
fresh temporary file and fills it with a few real runs of both sample models (one saved twice, as a
user pressing Save twice would), so the Compare page has something to show, and trains the Pipeline's
Deep Compression preset on LeNet-300-100 into the trained results beside it (as a teacher preparing
the demo would); the user's own store is never touched. --full-page shoots the whole scrolled page.
"""

import argparse
import hashlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

FIT_BUTTON = re.compile(r"^Fit in ")  # Sensitivity's button names its budget: "Fit in 14 KB"

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
PAGES = ["Home", "Pruning", "Clustering", "Quantization", "Distillation", "Sensitivity", "Pipeline", "Compare", "Export"]
PIPELINE_PRESET = None  # set below, once compress_engine is importable
DEMO_RUNS = [  # (model, recipe fields): a small spread of techniques over both sample models
    ("lenet-300-100", {}), ("lenet-300-100", {"sparsity": 0.8, "prune_scope": "global"}),
    ("lenet-300-100", {"sparsity": 0.9, "prune_scope": "global", "clusters": 16, "huffman": True}),
    ("lenet-300-100", {"clusters": 8}), ("lenet-300-100", {"bits": 4}), ("lenet-300-100", {"bits": 2}),
    ("lenet-300-100", {"sparsity": 0.95, "prune_scope": "global"}),
    ("lenet-5", {"sparsity": 0.8, "prune_scope": "global"}), ("lenet-5", {"bits": 4, "huffman": True}),
    # structured pruning: the only runs that move left on Compare's FLOPs chart
    ("lenet-300-100", {"sparsity": 0.5, "structured": True}), ("lenet-5", {"sparsity": 0.5, "structured": True}),
]


def seed_demo_runs(path):
    """Fill a new run store at `path` with DEMO_RUNS (the first pruning run saved twice)."""
    sys.path.insert(0, str(ROOT))
    import compress_engine as ce
    from compress_engine.playground.store import Store

    from pages import common

    global PIPELINE_PRESET  # the Pipeline's Deep Compression button on LeNet-300-100, as a Recipe
    PIPELINE_PRESET = ce.Recipe(**common.deep_compression("lenet-300-100"))

    os.environ["COMPRESS_STORE"] = str(path)
    store, data = Store(path), ce.load_dataset("fashion-mnist")
    for i, (name, fields) in enumerate(DEMO_RUNS):
        res = ce.compress(ce.load_model(name), ce.Recipe(**fields), data)
        for _ in range(2 if i == 1 else 1):  # as a page's Save button does (one run per model + recipe + data)
            store.save(name, res.recipe, res.metrics, res.artifact, data="fashion-mnist",
                       point_key=hashlib.sha256(f"{name}|{res.recipe.to_json()}".encode()).hexdigest())
    print(f"seeded {store.count()} runs into {path}")
    try:  # the dashboard's trained-results folder (a dashboard from before it existed just shows the button)
        from compress_engine.playground.sweeps import data_fingerprint, model_fingerprint
        from compress_engine.playground.trained import TrainedCache
    except ImportError:
        return
    model = ce.load_model("lenet-300-100")
    res = ce.compress(model, PIPELINE_PRESET, data)
    cache = TrainedCache(Path(path).parent / "trained")
    cache.put(cache.key(model_fingerprint(model), PIPELINE_PRESET, data_fingerprint(data)), "lenet-300-100", res)
    print(f"trained the Pipeline's Deep Compression preset: {100 * res.metrics['accuracy']:.2f} %, "
          f"{res.metrics['ratio']:.1f}x")


def shoot(page, path, full_page):
    """A screenshot of the page once every chart has drawn and every table painted."""
    page.wait_for_function(
        "[...document.querySelectorAll('.js-plotly-plot')].every(el => el.querySelector('.main-svg')) && "
        "[...document.querySelectorAll('[data-testid=\"stDataFrame\"]')].every(el => el.querySelector('canvas')) && "
        "!document.querySelector('[data-testid=\"stSkeleton\"]')",
        timeout=60_000)
    page.wait_for_load_state("networkidle")
    for table in page.locator('[data-testid="stDataFrame"]').all():  # a table's canvas paints on hover
        table.hover()
        page.wait_for_timeout(500)
    page.mouse.move(0, 0)
    page.wait_for_timeout(2500)
    page.screenshot(path=str(path), full_page=full_page)
    print("wrote", path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pages", nargs="+", default=PAGES, choices=PAGES, metavar="PAGE")
    ap.add_argument("--suffix", default="", help="appended to each file name, e.g. -before")
    ap.add_argument("--demo-runs", action="store_true", help="a temporary run store filled with demo runs")
    ap.add_argument("--full-page", action="store_true", help="shoot the whole page, not the first screen")
    ap.add_argument("--height", type=int, default=1000, help="browser window height in pixels (default 1000)")
    ap.add_argument("--model", help="the sample model to pick in the sidebar first (default: the page's first)")
    ap.add_argument("--out", type=Path, default=OUT, help="the folder the shots go to (default docs/screenshots)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    tmp = tempfile.TemporaryDirectory(prefix="screenshots-")
    if args.demo_runs:
        seed_demo_runs(Path(tmp.name) / "runs.sqlite")
        env["COMPRESS_STORE"] = str(Path(tmp.name) / "runs.sqlite")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
                               "--server.headless", "true", "--server.address", "127.0.0.1",
                               "--server.port", str(port), "--browser.gatherUsageStats", "false"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1400, "height": args.height})
            page.goto(url)
            # the first run of app.py replaces Streamlit's pages/-folder listing with the app's navigation
            page.locator('[data-testid="stSidebarNav"]').get_by_text("Home", exact=True).wait_for(timeout=120_000)
            page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=300_000)
            if args.model:  # as a visitor does: open the sidebar's picker on Home and choose
                page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
                page.get_by_role("option", name=args.model, exact=True).click()
                page.wait_for_timeout(1000)
                page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=300_000)
            for name in args.pages:
                page.locator('[data-testid="stSidebarNav"]').get_by_text(name, exact=True).click()
                page.wait_for_timeout(1000)
                page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=300_000)
                if name == "Sensitivity":  # press Fit with the page's defaults, so the shot shows a budget's allocation
                    page.get_by_role("button", name=FIT_BUTTON).click()
                    page.wait_for_timeout(1000)
                    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=600_000)
                    page.locator(".js-plotly-plot").last.scroll_into_view_if_needed()  # the fit's last chart in view
                shoot(page, args.out / f"{name.lower()}{args.suffix}.png", args.full_page)
                if name == "Compare":  # and the same runs against FLOPs
                    page.get_by_text("FLOPs per image", exact=True).click()
                    page.wait_for_timeout(1000)
                    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=300_000)
                    shoot(page, args.out / f"compare-flops{args.suffix}.png", args.full_page)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)
        tmp.cleanup()


if __name__ == "__main__":
    main()
