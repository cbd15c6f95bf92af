"""Sensitivity's "Fit in N KB" in a real browser: does a fit outlive the visitor leaving the page, and a new session?

    python bench/fit_page.py                                  # LeNet-300-100 and LeNet-5, the page's default budget
    python bench/fit_page.py --models lenet-5 --away 0 5 --app-dir /tmp/base --name fit_page_before

For each model, a fresh server (`streamlit run`, the dashboard's thread settings) with an empty trained-results
folder (COMPRESS_TRAINED), sensitivity cache and run store. In headless Chromium (Playwright):
  1. a session picks the model, opens Sensitivity and presses Fit with the page's defaults;
  2. `--away` seconds later, while the fit runs, it opens Pruning (as a visitor reading on would), waits there
     until the Pruning page has settled, and comes back to Sensitivity (--away 0: it stays on the page);
  3. it waits (up to --timeout) for the fit's result (its "Weights kept" metric) there, and notes whether the page
     showed the fit still running or asked for Fit again (the run lost);
  4. a second browser session (a reload, another student) opens Sensitivity with the same model: seconds until the
     result shows, or "asks for Fit" if it is not kept.
Prints the table and writes bench/results/<name>.csv. The load average is printed: numbers from a busy machine
are not the page's.
"""

import argparse
import os
import re
import tempfile
import time

from report import ROOT, table  # also puts the repo on sys.path
from chromium import have_chromium, launch, server_env, streamlit_server

FIT_BUTTON = re.compile(r"^Fit in ")  # Sensitivity's button names its budget: "Fit in 14 KB"

RESULT = "Weights kept"  # the fit's result card (no other card on the page has this label)
RUNNING = ("Fit in ", "queued", "starting", "Fine-tuning", "Scanning")  # a fit's progress bar, now or before
TIMEOUT = 600  # s: one fit


def status_gone(page, timeout):
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=timeout * 1000)


def pick(page, model):
    """Choose `model` in the sidebar's picker and wait for the page to settle."""
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
    page.get_by_role("option", name=model, exact=True).click()
    page.wait_for_timeout(500)
    status_gone(page, TIMEOUT)


def nav(page, name):
    page.locator('[data-testid="stSidebarNav"]').get_by_text(name, exact=True).click()
    page.wait_for_timeout(500)


def result_shown(page):
    return page.get_by_test_id("stMetricLabel").filter(has_text=RESULT).count() > 0


def asks_for_fit(page):
    return page.get_by_text("to run it in the server's training queue").count() > 0 or \
        page.get_by_text("Press Fit to run it").count() > 0


def script_running(page):
    return page.locator('[data-testid="stStatusWidget"]').count() > 0


def running(page):
    return any(page.get_by_test_id("stProgress").filter(has_text=t).count() for t in RUNNING)


def once(model, away, app_dir, timeout):
    row = {"model": model}
    with tempfile.TemporaryDirectory(prefix="fit-page-") as tmp:
        env = server_env(COMPRESS_TRAINED=os.path.join(tmp, "trained"), COMPRESS_STORE=os.path.join(tmp, "runs.sqlite"),
                         COMPRESS_CACHE=os.path.join(tmp, "cache"))
        with streamlit_server(app_dir=app_dir, env=env, how="streamlit") as (url, _):
            from playwright.sync_api import sync_playwright
            with sync_playwright() as p:
                browser = launch(p)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(url)
                page.locator('[data-testid="stSidebarNav"]').get_by_text("Home", exact=True).wait_for(timeout=120_000)
                status_gone(page, 120)
                pick(page, model)
                nav(page, "Sensitivity")
                page.get_by_role("button", name=FIT_BUTTON).wait_for(timeout=120_000)
                status_gone(page, 120)
                t0 = time.perf_counter()
                page.get_by_role("button", name=FIT_BUTTON).click()
                row["left for Pruning after (s)"] = away or "stayed"
                if away:
                    page.wait_for_timeout(away * 1000)
                    if result_shown(page):
                        raise SystemExit(f"the fit was done within --away {away:g} s: nothing to leave; give less")
                    nav(page, "Pruning")
                    status_gone(page, timeout)
                    nav(page, "Sensitivity")
                    page.wait_for_timeout(1500)
                    row["back: the page showed"] = ("the result" if result_shown(page) else "the fit running"
                                                    if running(page) else "Fit to press (run lost)"
                                                    if asks_for_fit(page) else "something else")
                else:
                    row["back: the page showed"] = "-"
                end = time.perf_counter() + timeout
                page.wait_for_timeout(1000)  # the press's page run has begun
                while time.perf_counter() < end and not result_shown(page) and not (
                        asks_for_fit(page) and not running(page) and not script_running(page)):
                    page.wait_for_timeout(250)
                done = result_shown(page)
                if not done:  # what the page showed instead, for the reader of the table
                    shot = os.path.join(tempfile.gettempdir(), f"fit_page_{model}_{away:g}.png")
                    page.screenshot(path=shot, full_page=True)
                    print(f"  no result: the page is in {shot}", flush=True)
                waited = round(time.perf_counter() - t0, 1)
                row["Fit pressed -> result (s)"] = waited if done else f"never (page done at {waited} s)"
                page.close()
                second = browser.new_page(viewport={"width": 1400, "height": 1000})
                second.goto(url)
                status_gone(second, 120)
                pick(second, model)
                t1 = time.perf_counter()
                nav(second, "Sensitivity")
                second.get_by_role("button", name=FIT_BUTTON).wait_for(timeout=120_000)
                status_gone(second, timeout)
                row["new session -> result (s)"] = (round(time.perf_counter() - t1, 2) if result_shown(second)
                                                    else "asks for Fit")
                browser.close()
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["lenet-300-100", "lenet-5"])
    ap.add_argument("--away", type=float, nargs="+", default=[0.0, 5.0],
                    help="seconds after pressing Fit before opening Pruning (0: stay on the page); each is one run")
    ap.add_argument("--app-dir", default=str(ROOT), help="the checkout to serve (a worktree of another commit)")
    ap.add_argument("--timeout", type=float, default=TIMEOUT)
    ap.add_argument("--name", default="fit_page")
    args = ap.parse_args()
    if not have_chromium():
        raise SystemExit("no Chromium at /usr/bin/chromium: `apt-get install chromium` (or `bash scripts/dev.sh test`)")
    rows = []
    for model in args.models:
        for away in args.away:
            rows.append(once(model, away, args.app_dir, args.timeout))
            print("  " + ", ".join(f"{k}: {v}" for k, v in rows[-1].items()), flush=True)
    load = os.getloadavg()
    table(f"Fit in N KB in headless Chromium ({args.app_dir}); load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}", rows, args.name)


if __name__ == "__main__":
    main()
