"""The main flow in a real browser: Debian's headless Chromium driven by Playwright.

Start `streamlit run app.py` on a free loopback port, choose a model, open the pruning page, move
the sparsity slider with the keyboard and check that the parameter metric and the chart change.
It measures time-to-first-chart and slider-to-redraw (printed, and written to
$BROWSER_RESULTS_DIR or a temp folder with the screenshots) but asserts no timing: numbers are
reported by benchmarks, not enforced by tests.
"""

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from chromium import CHROMIUM, have_chromium, launch, streamlit_server  # noqa: E402 (the server and flags bench/ uses)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(fmnist):
    if not have_chromium():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: `bash scripts/dev.sh test` installs Debian's chromium")
        pytest.skip(f"no Chromium at {CHROMIUM} (install it with `apt-get install chromium`)")
    try:
        with streamlit_server(timeout=120) as (url, _proc):
            yield url
    except RuntimeError as e:  # did not start: its log is in the message
        pytest.fail(str(e))


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


@pytest.fixture(scope="module")
def out_dir():
    d = Path(os.environ.get("BROWSER_RESULTS_DIR") or tempfile.mkdtemp(prefix="browser-"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def metric(page, label):
    """The value text of the st.metric whose label contains `label`."""
    box = page.locator('[data-testid="stMetric"]', has_text=label).first
    return box.locator('[data-testid="stMetricValue"]').inner_text()


def chart_signature(page):
    """Something that changes whenever the first plotly chart is redrawn with other data."""
    return page.locator(".js-plotly-plot").first.evaluate(
        "el => JSON.stringify((el.data || []).map(t => [t.x, t.y, t.z]))")


def wait_until_changes(page, fn, before, timeout=30):
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        try:
            now = fn()
        except Exception:
            now = before
        if now != before:
            return now, time.perf_counter() - t0
        page.wait_for_timeout(25)
    pytest.fail(f"nothing changed within {timeout} s (still {str(before)[:100]})")


def test_choose_model_move_sparsity(server, browser, out_dir):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    # Home: pick the model in the sidebar
    page.goto(server)
    page.locator('[data-testid="stSidebar"]').get_by_text("Model", exact=True).wait_for(timeout=60_000)
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
    page.get_by_role("option", name="lenet-300-100").click()
    page.locator('[data-testid="stMetric"]', has_text="Parameters").wait_for()
    assert metric(page, "Parameters") == "266,610"

    # Pruning page: time from opening it to its first chart
    t0 = time.perf_counter()
    page.locator('[data-testid="stSidebarNav"] a', has_text="Pruning").click()
    page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    first_chart_s = time.perf_counter() - t0
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(out_dir / "pruning-before.png"), full_page=True)
    params_before = metric(page, "Non-zero parameters")
    chart_before = chart_signature(page)

    # Move the sparsity slider with the keyboard: one key press, one rerun (End = 99 %)
    slider = page.locator('[data-testid="stSlider"] input[type="range"]').first
    slider.focus()
    t1 = time.perf_counter()
    page.keyboard.press("End")
    params_after, _ = wait_until_changes(page, lambda: metric(page, "Non-zero parameters"), params_before)
    _, redraw_s = wait_until_changes(page, lambda: chart_signature(page), chart_before)
    redraw_s = time.perf_counter() - t1
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(out_dir / "pruning-after.png"), full_page=True)

    assert int(params_after.replace(",", "")) < int(params_before.replace(",", ""))
    results = {"first_chart_s": round(first_chart_s, 3), "slider_to_redraw_s": round(redraw_s, 3),
               "params_before": params_before, "params_after": params_after}
    (out_dir / "browser_timings.json").write_text(json.dumps(results, indent=2))
    print(f"\nbrowser: {results} (screenshots in {out_dir})")


def test_no_outside_requests_and_no_deploy_button(server, browser):
    """Offline classrooms: the page asks nothing of any other host (the walkthrough's offline console showed
    ERR_NAME_NOT_RESOLVED: a Material favicon fetched from fonts.gstatic.com), and viewers get no Deploy button."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    outside, failed = [], []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith((server, "data:", "blob:")) else None)
    page.on("console", lambda m: failed.append(m.text) if "ERR_NAME_NOT_RESOLVED" in m.text else None)
    page.goto(server)
    page.locator('[data-testid="stSidebarNav"]').get_by_text("Home", exact=True).wait_for(timeout=60_000)
    for name in ("Pipeline", "Compare", "Home"):
        page.locator('[data-testid="stSidebarNav"]').get_by_text(name, exact=True).click()
        page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=120_000)
        page.wait_for_load_state("networkidle")
    assert not outside and not failed, (outside, failed)
    assert page.locator('[data-testid="stAppDeployButton"]').count() == 0  # toolbarMode viewer


def test_a_first_visit_straight_to_a_page_gets_the_apps_frame(server, browser):
    """On a fresh server a first load of /compare used to run pages/compare.py alone, in Streamlit's "one page
    per file" mode: the sidebar listed every file in pages/ (common, charts, ...) and had no model choice. It
    now runs again inside app.py's frame, on the same page."""
    with streamlit_server(timeout=120) as (url, _proc):  # its own fresh server: app.py has never run in it
        page = browser.new_page()
        try:
            page.goto(f"{url}/compare")
            page.get_by_role("heading", name="Compare").first.wait_for(timeout=60_000)
            sidebar = page.locator('[data-testid="stSidebar"]')
            sidebar.locator('[data-testid="stSelectbox"]').first.wait_for(timeout=60_000)  # the model choice
            nav = sidebar.locator('[data-testid="stSidebarNav"]').inner_text()
            assert "Pruning" in nav and "common" not in nav, nav
            assert page.url.endswith("/compare")
            assert not page.locator('[data-testid="stException"]').count()
        finally:
            page.close()


def test_an_800_px_projector_stacks_side_by_side_charts(server, browser):
    """At 800 px the sidebar leaves the page about 500 px: two charts side by side were 230 px each, their titles
    cut ("Weights before and after pruni"). Below 1,100 px a row of columns holding a chart wraps, one chart a row;
    at 1,400 px they stay side by side."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(server)
        page.locator('[data-testid="stSidebarNav"] a', has_text="Pruning").click()
        page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=120_000)
        page.locator(".js-plotly-plot").nth(1).wait_for(timeout=60_000)
        boxes = "[...document.querySelectorAll('.js-plotly-plot')].map(e => e.getBoundingClientRect())" \
                ".map(r => [Math.round(r.left), Math.round(r.width)])"
        main = "document.querySelector('[data-testid=stMainBlockContainer]').clientWidth"
        wide = page.evaluate(boxes)
        assert len({left for left, _ in wide}) > 1, wide  # side by side at 1,400 px
        for projector in (1024, 800):  # at 1,024 they were 266 px each, titles past their edge
            page.set_viewport_size({"width": projector, "height": 1000})
            page.wait_for_timeout(1000)
            narrow, width = page.evaluate(boxes), page.evaluate(main)
            assert len({left for left, _ in narrow}) == 1, (projector, narrow)  # one column
            assert all(w > 0.8 * width - 100 for _, w in narrow), (projector, narrow, width)  # each as wide as the page
    finally:
        page.close()
