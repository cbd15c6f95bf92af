"""Your own weights in the dashboard, timed in headless Chromium: what an engineer who uploads a model waits for.

    python bench/uploads.py                    # the zoo's ResNet-8, saved with torch.save and uploaded
    python bench/uploads.py --model lenet-5    # any sample model's weights, uploaded as a file
    python bench/uploads.py --app-dir /tmp/old-checkout --name uploads_before   # another checkout, served
    python bench/uploads.py --steps sensitivity --scan --timeout 3000            # the upload's scan, run and timed
    python bench/uploads.py --steps sensitivity --scan --leave 30 --timeout 3000 # and the visitor leaves meanwhile
    python bench/uploads.py --model lenet-5 --steps sensitivity --fit            # then Fit in N KB, pressed and timed

Uploaded weights have no shipped runs, scans or teacher answers: every page computes them on the spot, on a fresh
server (empty run store, trained results and scan cache). One browser tab, as a person would go:

- the sidebar's uploader -> "Added ..." (the file read, the model rebuilt and scored on all 10,000 test images);
- each technique page -> its first chart, -> its accuracy curve shown (estimated first on a model slow to evaluate:
  the note says which), and -> its run finished (the one-shot curves computed, behind a progress bar when they take
  3 s or more: the note says whether the bar was seen);
- Distillation, the upload chosen as teacher -> its answers on the 70,000 images computed (progress bar);
- Sensitivity -> the page drawn, which for a scan expected to take over 20 s is a button with the estimate (the
  note quotes it); with --scan, the button pressed -> the scan's heat map drawn (minutes for a ResNet); with
  --fit, then Fit in N KB pressed (the page's defaults) -> the Fit's own scan on training images done (the note
  quotes the page's estimate of it) -> its fine-tuning began -> its result drawn.

--steps picks which of the three (curves: the technique pages; distillation; sensitivity) run after the upload.

Prints one table (what | seconds | note) and writes bench/results/uploads_<model>.csv. Bounded: every wait has a
timeout.
"""

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from report import ROOT, table  # also puts this checkout on sys.path

import torch  # noqa: E402

import compress_engine as ce  # noqa: E402
from chromium import have_chromium, launch, server_env, streamlit_server  # noqa: E402
from latency import (CHARTS, FIRST_CHART, PROGRESS, TITLE, TITLES, Tab, Timeout, chart_or_settled, click_page,  # noqa: E402
                     load, open_page)

from playwright.sync_api import sync_playwright  # noqa: E402

PAGES = ("Pruning", "Clustering", "Quantization", "Pipeline")
STEPS = ("curves", "distillation", "sensitivity")
CURVE_PAGES = ("Pruning", "Clustering", "Quantization")  # pages with an accuracy curve ("Accuracy vs ...")
# the page's accuracy curve, drawn in this run: "estimated" while any point has an error bar, else "evaluated"
ACCURACY_CURVE = (f"() => {{ const c = {CHARTS}.find(el => (((el.layout || {{}}).title || {{}}).text || '')"
                  ".includes('Accuracy vs')); return c ? (c.data.some(t => t.error_y && t.error_y.visible) ? "
                  "'estimated' : 'evaluated') : null; }")


def watch_progress(tab):
    """Start recording every progress bar's text the page shows (polled by the browser every 100 ms)."""
    tab.js("() => { window.__bars = []; setInterval(() => { for (const el of document.querySelectorAll("
           "'[data-testid=\"stProgress\"]')) { const t = el.innerText.trim(); if (t && !window.__bars.includes(t))"
           " window.__bars.push(t); } }, 100); }")


def bars(tab):
    return tab.js("() => window.__bars || []")


def open_curve_page(tab, name, timeout=300):
    """Open a page with an accuracy curve -> seconds to (its first chart, its accuracy curve, its run finished) and
    how that curve first showed: "estimated" (points not evaluated yet drawn from a sample, with error bars) or
    "evaluated". Counted from the click, made once the browser is idle."""
    first = click_page(tab, name, timeout=timeout)
    how = []

    def shown():  # below this page's own title (not the page before's, still on screen at first)
        how.append(tab.js(f"() => {TITLE}.includes({TITLES[name]!r})") and tab.js(ACCURACY_CURVE))
        return bool(how[-1])
    curve, _ = tab.wait(tab.opened, shown, f"{name}'s accuracy curve", timeout=timeout, settle=False)
    settled = tab.wait(tab.opened, None, f"finish {name}", timeout=timeout)[1]
    return first, curve, how[-1], settled


def distillation(tab, name, timeout, add):
    """Distillation: the page drawn, then the upload chosen as teacher -> its answers on every image computed."""
    first, settled, _ = open_page(tab, "Distillation")
    add("Distillation: page drawn (a sample teacher)", settled)
    tab.js("() => { window.__bars = []; }")
    tab.page.locator('[data-testid="stMain"] [data-testid="stSelectbox"]').first.click()
    t = time.perf_counter()
    tab.page.get_by_role("option", name=name, exact=True).click()
    errors = tab.page.locator('[data-testid="stMetric"]', has_text="Teacher test errors").first
    tab.wait(t, lambda: tab.js(PROGRESS) or errors.count() > 0, "choose the teacher", timeout=timeout, settle=False)
    settled = tab.wait(t, None, "the teacher's answers", timeout=timeout)[1]
    seen = [b for b in bars(tab) if "teacher's answers" in b]
    add("Distillation: upload chosen as teacher -> its answers on 70,000 images", settled,
        f"progress bar seen, last: \"{seen[-1]}\"" if seen else "no progress bar")


def sensitivity(tab, scan, timeout, add, leave=0.0):
    """Sensitivity: the page drawn (a button with the scan's estimate, for a long scan); with `scan`, the button
    pressed -> the scan's first chart (its heat map) drawn. With `leave`, that many seconds after the press the
    visitor opens Compare, and comes back once it has drawn: the note says whether the scan ran on or was lost."""
    first, settled, how = open_page(tab, "Sensitivity", scans=timeout)
    if settled is None:  # a short scan runs at once, behind a progress bar (open_page waited for its chart)
        settled = tab.wait(tab.opened, None, "Sensitivity", timeout=timeout)[1]
    button = tab.page.locator('[data-testid="stMain"] button', has_text="Scan ")
    label = re.search(r"Scan .*\(about [^)]+\)", button.first.inner_text()) if button.count() else None
    add("Sensitivity: page drawn", settled, f"button \"{label.group(0)}\": the scan waits for it" if label else
        f"the scan ran at once ({how})")
    if scan and label:
        tab.js("() => { window.__bars = []; }")
        t = time.perf_counter()
        button.first.click()
        what, fate = "Sensitivity: Scan pressed -> its heat map drawn", ""
        if leave:
            tab.page.wait_for_timeout(1000 * leave)
            tab.nav("Compare")
            tab.wait(time.perf_counter(), None, "Compare", timeout=timeout)
            tab.nav("Sensitivity")
            what = f"Sensitivity: Scan pressed, Compare opened {leave:g} s later and back -> its heat map drawn"
        if not leave:  # the press's run has begun (a scan in progress), before the button can count as "asks again"
            tab.wait(t, lambda: tab.js(PROGRESS) or button.count() == 0, "Scan pressed", timeout=timeout, settle=False)
        here = f"() => {TITLE}.includes({TITLES['Sensitivity']!r})"
        chart = tab.wait(t, lambda: tab.js(here) and (tab.js(FIRST_CHART) or (button.count() > 0 and not tab.js(
            PROGRESS))), "the scan", timeout=timeout, settle=False)[0]
        if not tab.js(FIRST_CHART):  # the button again: the scan was stopped when the page was left
            add(what, float("nan"), "the scan was lost: the page asks for Scan again")
            return
        fate = "; the scan ran on while the visitor was away" if leave else ""
        seen = [b for b in bars(tab) if b]
        estimate = label.group(0).split("(about ")[1].rstrip(")")
        add(what, chart, f"the button said about {estimate}" + (f"; first progress bar: \"{seen[0]}\"" if seen else "")
            + fate)


def fit(tab, timeout, add):
    """Sensitivity's Fit with the page's defaults, on the upload (whose scans do not ship): pressed -> its scan of
    every layer on training images done (the page's caption gives its estimate) -> its fine-tuning began -> its
    result drawn."""
    result = tab.page.locator('[data-testid="stMetricLabel"]', has_text="Weights kept")
    tuning = tab.page.get_by_test_id("stProgress").filter(has_text="fine-tuning")
    # the scan's last setting, or the part after it (which may replace that setting before the bar is redrawn)
    scanned = tab.page.get_by_test_id("stProgress").filter(has_text=re.compile(r"setting (\S+) of \1\b|answers on"))
    tab.js("() => { window.__bars = []; }")
    seen = {}

    def done():
        for what, bar in (("scanned", scanned), ("tuning", tuning)):
            if what not in seen and bar.count():
                seen[what] = time.perf_counter()
        return result.count() > 0
    button = tab.page.locator('[data-testid="stMain"] button', has_text="Fit")
    tab.wait(time.perf_counter(), lambda: button.count() > 0, "the Fit button", timeout=timeout, settle=False)
    caption = tab.page.locator('[data-testid="stCaptionContainer"]', has_text="Press Fit")
    told = re.search(r"training images, about ([^(]+?) here", caption.first.inner_text()) if caption.count() else None
    t = time.perf_counter()
    button.first.click()
    shown = tab.wait(t, done, "the fit", timeout=timeout, settle=False)[0]
    scanning = [b for b in bars(tab) if "scanning" in b]
    if "scanned" in seen:
        add("Sensitivity: Fit pressed -> its scan on training images done (its last setting shown)",
            seen["scanned"] - t, (f"the caption said about {told.group(1).strip()}" if told else "no estimate shown")
            + (f"; first progress bar: \"{scanning[0]}\"" if scanning else ""))
    if "tuning" in seen:
        # what the bar said in between, while the dense model's soft targets were computed
        between = [b for b in bars(tab) if "scanning" not in b and "fine-tuning" not in b and "starting" not in b]
        add("Sensitivity: Fit pressed -> its fine-tuning began", seen["tuning"] - t,
            (f"the bar between, {len(set(between))} texts: first \"{between[0]}\", last \"{between[-1]}\""
             if between else ""))
    add("Sensitivity: Fit pressed -> its result drawn", shown,
        "the fine-tuning's progress bar was not seen" if "tuning" not in seen else "")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="resnet-8", help="the sample model whose weights are uploaded as a file")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads of the server")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds any one step may take")
    ap.add_argument("--app-dir", type=Path, default=ROOT, help="the checkout to serve (default: this one)")
    ap.add_argument("--name", default=None, help="results file name (default: uploads_<model>)")
    ap.add_argument("--steps", nargs="+", choices=STEPS, default=STEPS, help="what to time after the upload")
    ap.add_argument("--scan", action="store_true", help="on Sensitivity, press Scan and time the scan to its chart")
    ap.add_argument("--fit", action="store_true",
                    help="on Sensitivity, press Fit (the page's defaults) and time it (Scan pressed first if asked)")
    ap.add_argument("--leave", type=float, default=0.0,
                    help="with --scan: open Compare this many seconds after pressing Scan, then come back")
    args = ap.parse_args(argv)
    if not have_chromium():
        sys.exit("no Chromium at /usr/bin/chromium: `apt-get install chromium` (Playwright cannot download one here)")
    tmp = tempfile.TemporaryDirectory(prefix="uploads-")
    weights = Path(tmp.name) / f"my-{args.model}.pt"
    torch.save(ce.load_model(args.model).state_dict(), weights)
    env = server_env(OMP_NUM_THREADS=args.threads, COMPRESS_STORE=Path(tmp.name) / "runs.sqlite",
                     COMPRESS_TRAINED=Path(tmp.name) / "trained", COMPRESS_CACHE=Path(tmp.name) / "cache")
    print(f"uploading {weights.name} ({weights.stat().st_size:,} bytes) to a fresh server, OMP_NUM_THREADS="
          f"{args.threads}; {load()}", flush=True)
    rows = []

    def add(what, seconds, note=""):
        rows.append({"what": what, "seconds": round(seconds, 2), "note": note})
        print(f"  {what}: {seconds:.2f} s" + (f" ({note})" if note else ""), flush=True)

    t_start = time.perf_counter()
    with streamlit_server(args.app_dir, env=env) as (url, _), sync_playwright() as p:
        browser = launch(p)
        tab = Tab(browser, deadline=time.perf_counter() + 10 * args.timeout)
        try:
            tab.page.goto(url)
            tab.opened = time.perf_counter()
            tab.wait(tab.opened, chart_or_settled(tab, "Home"), "Home", timeout=args.timeout)
            watch_progress(tab)
            added = tab.page.locator('[data-testid="stSidebar"] [data-testid="stAlert"]', has_text="Added")
            t = time.perf_counter()
            tab.page.locator('[data-testid="stSidebar"] input[type="file"]').set_input_files(str(weights))
            tab.wait(t, lambda: added.count() > 0, "upload", timeout=args.timeout, settle=False)
            add("upload -> \"Added\" (read, rebuilt, scored on 10,000 images)", time.perf_counter() - t,
                added.first.inner_text().strip()[:90])
            name = tab.model()
            tab.wait(t, None, "Home after the upload", timeout=args.timeout)
            for page in PAGES if "curves" in args.steps else ():
                tab.js("() => { window.__bars = []; }")
                if page in CURVE_PAGES:
                    first, curve, how, settled = open_curve_page(tab, page)
                else:
                    (first, settled, _), curve = open_page(tab, page), None
                shown = [b for b in bars(tab) if "points done" in b]
                add(f"{page}: first chart", first)
                if curve is not None:
                    add(f"{page}: accuracy curve shown", curve, how)
                add(f"{page}: run finished (curves computed)", settled,
                    f"progress bar seen, first: \"{shown[0]}\"" if shown else "no progress bar")
            if "distillation" in args.steps:
                distillation(tab, name, args.timeout, add)
            if "sensitivity" in args.steps:
                sensitivity(tab, args.scan or args.fit, args.timeout, add, args.leave)  # a Fit needs the scan
                if args.fit:
                    fit(tab, args.timeout, add)
        except Timeout as e:
            print(f"stopped: {e}")
        finally:
            browser.close()
            tmp.cleanup()
    if not rows:
        sys.exit("nothing measured")
    table(f"Uploaded weights ({args.model}'s, as a .pt file) in headless Chromium, a fresh server "
          f"(OMP_NUM_THREADS={args.threads}, {os.cpu_count()} cores; {load()})", rows,
          args.name or f"uploads_{args.model}")
    print(f"\n{time.perf_counter() - t_start:.0f} s in all; {load()}")


if __name__ == "__main__":
    main()
