"""A view survives a reload and travels as a link, in a real browser (Debian's Chromium): a teacher picks LeNet-5,
moves the Pruning slider, reloads the page, and finds the same slider, the same model and the same parameter count;
the page's URL, opened in a fresh browser context (a student's browser), shows the same view. Another page's URL does
not carry Pruning's settings, and they come back with the Pruning page."""

from urllib.parse import parse_qs, urlsplit

import pytest
from test_browser import browser, metric, server  # noqa: F401 -- the suite's Chromium and Streamlit server fixtures

pytestmark = pytest.mark.browser


def query(page):
    return {k: v[-1] for k, v in parse_qs(urlsplit(page.url).query).items()}


def settled(page):
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=120_000)


def until(page, fn, what, timeout=30_000, seen=None):
    """Wait for fn() to hold; failing, say what `what` was instead (seen(): the view the page showed)."""
    for _ in range(timeout // 50):
        if fn():
            return
        page.wait_for_timeout(50)
    pytest.fail(f"{what}: still not so (URL {page.url}" + (f"; seen {seen()}" if seen else "") + ")")


def steady(page, quiet_ms=1000):
    """view(page) once the page has settled and shown the same view twice, quiet_ms apart. settled() alone can return
    in the moment before a rerun asked for has begun (its status widget not shown yet), and the cards then read are
    the run's before: a LeNet-5 card read as the view at 0 % though it was 80 %'s (a reload then showed 0 %'s)."""
    last = None
    for _ in range(60):
        settled(page)
        now = view(page)
        if now == last:
            return now
        last = now
        page.wait_for_timeout(quiet_ms)
    pytest.fail(f"the page never showed the same view twice {quiet_ms} ms apart (last {last})")


def view(page):
    """The Pruning page as a visitor sees it: the sidebar's model, the slider's value, the parameter count."""
    page.locator('[data-testid="stMetric"]', has_text="Non-zero parameters").wait_for(timeout=120_000)
    model = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"] input').first.input_value()
    slider = page.locator('[data-testid="stSlider"] input[type="range"]').first.input_value()
    return model.strip(), slider, metric(page, "Non-zero parameters")


def test_reload_and_link_keep_the_view(server, browser):  # noqa: F811 -- the fixtures imported above
    teacher = browser.new_context(viewport={"width": 1400, "height": 1000})
    student = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = teacher.new_page()
        page.goto(server)
        page.locator('[data-testid="stSidebarNav"] a', has_text="Pruning").click()
        settled(page)
        start = view(page)
        assert start[0] == "lenet-300-100" and start[1] == "80", start
        page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
        page.get_by_role("option", name="lenet-5").click()
        until(page, lambda: query(page).get("model") == "lenet-5", "the model in the URL")
        before = steady(page)
        # 0 %: the slider's minimum, which Streamlit would leave out of the URL were it the widget's default
        page.locator('[data-testid="stSlider"] input[type="range"]').first.focus()
        page.keyboard.press("Home")
        until(page, lambda: query(page).get("prune_sparsity") == "0", "the slider in the URL")
        until(page, lambda: view(page)[2] != before[2], "the parameter count after the slider moved")
        moved = steady(page)
        assert moved[:2] == ("lenet-5", "0"), moved
        link = page.url

        page.reload()
        settled(page)
        until(page, lambda: view(page) == moved, "the same view after a reload",
              seen=lambda: (view(page), moved))
        assert query(page).get("prune_sparsity") == "0" and query(page).get("model") == "lenet-5"

        # another page: Pruning's settings leave its URL (the model stays), and come back with Pruning
        page.locator('[data-testid="stSidebarNav"] a', has_text="Quantization").click()
        settled(page)
        until(page, lambda: "/quantization" in page.url and "prune_sparsity" not in query(page), "Quantization's URL")
        assert query(page).get("model") == "lenet-5"
        page.locator('[data-testid="stSidebarNav"] a', has_text="Pruning").click()
        settled(page)
        until(page, lambda: view(page) == moved and query(page).get("prune_sparsity") == "0", "Pruning again",
              seen=lambda: (view(page), moved))

        # the copied link, in another browser: the same view
        other = student.new_page()
        other.goto(link)
        settled(other)
        until(other, lambda: view(other) == moved, "the same view from the link", seen=lambda: (view(other), moved))
        assert not other.locator('[data-testid="stException"]').count()
    finally:
        teacher.close()
        student.close()
