"""Light and dark theme in a real browser (Debian's Chromium): chart axis text readable on either theme's page, and a
keyboard focus outline on the sidebar's page links and on radio options."""

import pytest
from test_browser import browser, server  # noqa: F401 -- the suite's Chromium and Streamlit server fixtures

pytestmark = pytest.mark.browser

# WCAG's contrast ratio of the text colour each axis label shows (its fill blended by its fill-opacity over the
# page's background) against that background
CONTRAST = """() => {
  const rgb = s => s.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const lum = c => { const l = c.map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
                     return 0.2126 * l[0] + 0.7152 * l[1] + 0.0722 * l[2]; };
  const bg = rgb(getComputedStyle(document.querySelector('[data-testid=stApp]')).backgroundColor);
  const out = {};
  for (const sel of ['.xtick text', '.ytick text', '.xtitle', '.ytitle']) {
    const e = document.querySelector('.js-plotly-plot ' + sel), st = getComputedStyle(e);
    const a = Number(st.fillOpacity), c = rgb(st.fill).map((v, i) => a * v + (1 - a) * bg[i]);
    const [hi, lo] = [lum(c), lum(bg)].sort((x, y) => y - x);
    out[sel] = (hi + 0.05) / (lo + 0.05);
  }
  return out;
}"""


def pruning(browser, server, scheme):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme=scheme)
    page = context.new_page()
    page.goto(server)
    page.locator('[data-testid="stSidebarNav"] a', has_text="Pruning").click()
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=120_000)
    page.locator(".js-plotly-plot .xtick").first.wait_for(timeout=60_000)
    return context, page


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_chart_axis_text_is_readable_on_either_theme(server, browser, scheme):
    """Streamlit's chart theme drew tick labels and axis titles rgb(128, 132, 149) on the light theme's white:
    3.7:1, under WCAG AA's 4.5:1 for small text. Now at least 4.5:1 on both themes."""
    context, page = pruning(browser, server, scheme)
    try:
        contrast = page.evaluate(CONTRAST)
        assert all(c >= 4.5 for c in contrast.values()), (scheme, contrast)
    finally:
        context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_keyboard_focus_on_a_page_link_and_a_radio_option_is_outlined(server, browser, scheme):
    """A page link or radio option reached with Tab had no outline, only the faint background that also marks the
    current page: a keyboard user could not see where they were."""
    context, page = pruning(browser, server, scheme)
    outline = "e => { const s = getComputedStyle(e); return [s.outlineStyle, parseFloat(s.outlineWidth)]; }"
    try:
        seen = {}
        for _ in range(80):
            page.keyboard.press("Tab")
            where = page.evaluate("() => { const a = document.activeElement;"
                                  " return a.closest('[data-testid=stSidebarNav]') ? 'link' :"
                                  " a.matches('[data-testid=stRadio] input') ? 'radio' : null; }")
            if where and where not in seen:
                target = "document.activeElement" + (".closest('label')" if where == "radio" else "")
                seen[where] = page.evaluate(f"() => ({outline})({target})")
            if len(seen) == 2:
                break
        assert set(seen) == {"link", "radio"}, seen
        assert all(style == "solid" and width >= 2 for style, width in seen.values()), seen
    finally:
        context.close()


def test_export_parts_table_shows_its_share_column_whole(server, browser):
    """At 1,280 px the parts table's column was a third of the page: its Share column was cut ("29" of "29.5 %"),
    the rest behind a sideways scroll. Now it fits down to 1,100 px (below, the chart goes under it)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    scroll = ("() => [...document.querySelectorAll('[data-testid=stDataFrame] .dvn-scroller')]"
              ".map(s => [s.scrollWidth, s.clientWidth])")
    try:
        page.goto(server)
        page.locator('[data-testid="stSidebarNav"] a', has_text="Export").click()
        page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=120_000)
        page.locator('[data-testid="stDataFrame"] .dvn-scroller').first.wait_for(timeout=60_000)
        for width in (1280, 1110):
            page.set_viewport_size({"width": width, "height": 900})
            page.wait_for_timeout(1000)
            tables = page.evaluate(scroll)
            assert tables and all(whole <= shown for whole, shown in tables), (width, tables)
    finally:
        page.close()
