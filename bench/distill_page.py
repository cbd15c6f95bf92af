"""The Distillation page in a real browser: how soon the lesson shows, and how soon a student trained live does.

    python bench/distill_page.py             # 3 repetitions (fresh server, empty trained-results folder each)
    python bench/distill_page.py --repeats 1

Each repetition starts `streamlit run app.py` on a loopback port with an empty trained-results folder
(COMPRESS_TRAINED) and run store, opens /distillation in Debian's headless Chromium (Playwright) and times:
  - the bench's grid chart visible: first visit (cold server process) and a second browser session (warm);
  - the size-vs-accuracy chart visible (the page's last chart);
  - after pressing "Train student" with the page's defaults (ResNet-8 teacher, 100-100 MLP student, 5 epochs):
    the first trained result (the labels-only student's metrics) and the second (the distilled one);
  - a third session opening the page once both are trained: the kept results shown (from disk, no training).
Beside them, the floor under the second session's goal: a new browser session on a
one-chart Streamlit app (the dashboard's settings, a warm server) until its chart is drawn.
A chart counts as shown when its title is in the page; a result when its "Test accuracy" metric is. Medians
over the repetitions; the server uses the dashboard's own thread settings. Prints the table and writes
bench/results/distill_page.csv. The load average is printed: numbers from a busy machine are not the page's.
"""

import argparse
import os
import re
import statistics
import tempfile
import time
from report import ROOT, table  # also puts the repo on sys.path
from chromium import FLOOR_APP, app_server, have_chromium, launch, server_env, streamlit_server

GRID_TITLE = "Measured: every student"
SIZE_TITLE = "Size vs accuracy"
RESULT = re.compile(r"^\s*Test accuracy\s*$")  # a trained student's metric (not "Teacher test accuracy")
TIMEOUT = 180_000  # ms: any one wait


def shown(page, text):
    page.locator(".js-plotly-plot", has_text=text).first.wait_for(timeout=TIMEOUT)


def result(page):
    return page.get_by_test_id("stMetricLabel").filter(has_text=RESULT)


def floor(browser):
    """Seconds from a new browser session's page load to the chart of a one-chart Streamlit app (the dashboard's
    settings, a warm server: a first session has drawn it): what any second session pays before its own page."""
    with app_server(FLOOR_APP, env=server_env(), settings=ROOT) as (url, _):
        for _ in range(2):  # the first session warms the server
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            t0 = time.perf_counter()
            page.goto(url)
            page.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=TIMEOUT)
            seconds = time.perf_counter() - t0
            page.close()
    return seconds


def once():
    out = {}
    with tempfile.TemporaryDirectory(prefix="distill-page-") as tmp:
        env = server_env(COMPRESS_TRAINED=os.path.join(tmp, "trained"), COMPRESS_STORE=os.path.join(tmp, "runs.sqlite"))
        t_start = time.perf_counter()
        with streamlit_server(env=env) as (url, _):
            out["server start -> healthy"] = time.perf_counter() - t_start
            from playwright.sync_api import sync_playwright
            with sync_playwright() as p:
                browser = launch(p)
                out["floor: a second session on a one-chart app -> its chart"] = floor(browser)
                for visit in ("first visit (cold server)", "second session (warm)"):
                    page = browser.new_page(viewport={"width": 1400, "height": 1000})
                    t0 = time.perf_counter()
                    page.goto(url + "/distillation")
                    shown(page, GRID_TITLE)
                    out[f"{visit}: grid shown"] = time.perf_counter() - t0
                    shown(page, SIZE_TITLE)
                    out[f"{visit}: size chart shown"] = time.perf_counter() - t0
                    if visit.startswith("second"):
                        page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=TIMEOUT)
                        t1 = time.perf_counter()
                        page.get_by_role("button", name="Train student").click()
                        result(page).first.wait_for(timeout=TIMEOUT)
                        out["Train student -> first result"] = time.perf_counter() - t1
                        result(page).nth(1).wait_for(timeout=TIMEOUT)
                        out["Train student -> both results"] = time.perf_counter() - t1
                    page.close()
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                t0 = time.perf_counter()
                page.goto(url + "/distillation")
                result(page).nth(1).wait_for(timeout=TIMEOUT)
                out["third session: kept results shown"] = time.perf_counter() - t0
                browser.close()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if not have_chromium():
        raise SystemExit("no Chromium at /usr/bin/chromium: `apt-get install chromium` (or `bash scripts/dev.sh test`)")
    runs = []
    for i in range(args.repeats):
        runs.append(once())
        print(f"  run {i + 1}: " + ", ".join(f"{k} {v:.2f} s" for k, v in runs[-1].items()), flush=True)
    goals = {"second session (warm): grid shown": 1.0, "Train student -> first result": 10.0}
    rows = [{"what": k, "median_s": round(statistics.median(r[k] for r in runs), 2),
             "max_s": round(max(r[k] for r in runs), 2), "goal_s": goals.get(k, "")} for k in runs[0]]
    load = os.getloadavg()
    table(f"Distillation page in headless Chromium, {args.repeats} fresh server(s); load average "
          f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}", rows, "distill_page")


if __name__ == "__main__":
    main()
