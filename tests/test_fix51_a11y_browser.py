"""Accessibility in a real browser (Debian's Chromium), from an audit against WCAG 2.2 AA: captions and chart
annotations readable on either theme (1.4.3), a visible keyboard focus on sliders, buttons and select boxes (2.4.7,
1.4.11) and on a table's toolbar (Streamlit kept it at opacity 0: invisible Tab stops), every page's tab titled after
it (2.4.2), and every chart's text there for a screen reader but hidden from sight (1.1.1)."""

import pytest
from test_browser import browser, server  # noqa: F401 -- the suite's Chromium and Streamlit server fixtures

pytestmark = pytest.mark.browser

# WCAG's contrast ratio of an element's text (its colour blended by its own and its parents' opacity, and for SVG text
# its fill and fill-opacity, over the page's background) against that background
CONTRAST = """(e) => {
  const rgb = s => s.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const lum = c => { const l = c.map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
                     return 0.2126 * l[0] + 0.7152 * l[1] + 0.0722 * l[2]; };
  const bg = rgb(getComputedStyle(document.querySelector('[data-testid=stApp]')).backgroundColor);
  const st = getComputedStyle(e), svg = e instanceof SVGElement;
  let a = svg ? Number(st.fillOpacity) : 1;
  for (let p = e; p; p = p.parentElement) a *= Number(getComputedStyle(p).opacity);
  const m = (svg ? st.fill : st.color).match(/[\\d.]+/g).map(Number);
  if (m.length > 3) a *= m[3];
  const c = m.slice(0, 3).map((v, i) => a * v + (1 - a) * bg[i]);
  const [hi, lo] = [lum(c), lum(bg)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}"""
OUTLINE = "e => { const s = getComputedStyle(e); return [s.outlineStyle, parseFloat(s.outlineWidth)]; }"


def open_page(browser, server, name, scheme="light", ready=".js-plotly-plot .xtick"):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme=scheme)
    page = context.new_page()
    page.goto(server)
    page.locator('[data-testid="stSidebarNav"] a', has_text=name).click()
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=120_000)
    page.locator(ready).first.wait_for(timeout=60_000)
    return context, page


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_captions_and_chart_annotations_are_readable_on_either_theme(server, browser, scheme):
    """Captions were Streamlit's text at 60 % opacity, 3.9:1 on the light theme's white; chart annotations
    ("dense", "teacher: 597 errors") Streamlit's chart grey, 3.7:1. Both at least 4.5:1 now, on both themes."""
    context, page = open_page(browser, server, "Pruning", scheme)
    try:
        caption = page.locator("[data-testid=stCaptionContainer]").first.evaluate(CONTRAST)
        note = page.locator(".js-plotly-plot .annotation-text", has_text="dense").first.evaluate(CONTRAST)
        assert caption >= 4.5 and note >= 4.5, (scheme, caption, note)
    finally:
        context.close()


def test_a_slider_a_button_and_a_select_box_reached_with_the_keyboard_are_outlined(server, browser):
    """Streamlit marked them only with a faint ring (about 2:1 on white, 1.8:1 on the dark theme)."""
    context, page = open_page(browser, server, "Pruning")
    try:
        seen = {}
        page.locator('[data-testid="stSidebarNav"] a').first.focus()
        for _ in range(40):
            page.keyboard.press("Tab")
            kind = page.evaluate("() => { const a = document.activeElement; return a.type === 'range' ? 'slider' :"
                                 " a.getAttribute('role') === 'combobox' ? 'select' : a.tagName === 'BUTTON' ?"
                                 " 'button' : null; }")
            if kind and kind not in seen:
                box = {"slider": "document.activeElement.parentElement.parentElement",  # the thumb
                       "select": "document.activeElement.closest('[data-testid=stSelectbox] > div')",
                       "button": "document.activeElement"}[kind]
                seen[kind] = page.evaluate(f"() => ({OUTLINE})({box})")
            if len(seen) == 3:
                break
        assert set(seen) == {"slider", "select", "button"}, seen
        assert all(style == "solid" and width >= 2 for style, width in seen.values()), seen
    finally:
        context.close()


def test_a_tables_toolbar_shows_while_one_of_its_buttons_has_the_keyboards_focus(server, browser):
    context, page = open_page(browser, server, "Export", ready='[data-testid="stDataFrame"]')
    try:
        button = page.locator('[data-testid="stElementToolbar"] button').first
        button.focus()
        assert button.evaluate("e => getComputedStyle(e.closest('[data-testid=stElementToolbar]')).opacity") == "1"
    finally:
        context.close()


def test_each_page_has_its_own_tab_title_and_every_chart_its_hidden_text(server, browser):
    context, page = open_page(browser, server, "Quantization")
    try:
        assert page.title() == "Quantization · Compression Playground"
        charts = page.locator(".js-plotly-plot").count()
        texts = page.locator(".chart-text")
        assert charts >= 2 and texts.count() == charts
        assert texts.first.text_content().startswith("Chart: ")
        box = texts.first.evaluate("e => { const c = e.closest('[data-testid=stElementContainer]'), "
                                   "r = c.getBoundingClientRect(); return [r.height, getComputedStyle(c).clipPath, "
                                   "getComputedStyle(c).position]; }")
        assert box == [1, "inset(50%)", "absolute"], box  # there for a screen reader, not seen, out of the flow
        page.locator('[data-testid="stSidebarNav"] a', has_text="Home").click()
        page.wait_for_function("() => document.title === 'Compression Playground'", timeout=60_000)
    finally:
        context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_chart_point_labels_and_a_focused_chart_toolbar_button_stand_out_on_either_theme(server, browser, scheme):
    """A re-check found Distillation's point labels ("30-30", "resnet-8") in Streamlit's chart grey (3.7:1 on white)
    and a chart toolbar button's focus a 1-px black outline, invisible on the dark theme."""
    context, page = open_page(browser, server, "Distillation", scheme, ready=".textpoint text")
    try:
        label = page.locator(".js-plotly-plot .textpoint text").first.evaluate(CONTRAST)
        assert label >= 4.5, (scheme, label)
        page.locator(".modebar-btn").first.focus()
        page.keyboard.press("Shift+Tab")
        page.keyboard.press("Tab")  # reached with the keyboard: :focus-visible
        style = page.evaluate("() => { const s = getComputedStyle(document.activeElement); return [s.outlineStyle,"
                              " parseFloat(s.outlineWidth), s.outlineColor]; }")
        bg = page.evaluate("() => getComputedStyle(document.querySelector('[data-testid=stApp]')).backgroundColor")
        assert style[:2] == ["solid", 2] and style[2] != bg, (scheme, style, bg)
        ring = page.evaluate("([c, b]) => { const rgb = s => s.match(/[\\d.]+/g).slice(0, 3).map(Number);"
                             " const lum = c => { const l = c.map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 :"
                             " ((v + 0.055) / 1.055) ** 2.4; }); return 0.2126 * l[0] + 0.7152 * l[1] + 0.0722 * l[2]; };"
                             " const [hi, lo] = [lum(rgb(c)), lum(rgb(b))].sort((x, y) => y - x);"
                             " return (hi + 0.05) / (lo + 0.05); }", [style[2], bg])
        assert ring >= 3, (scheme, style, bg, ring)  # WCAG 1.4.11: a focus indicator at least 3:1
    finally:
        context.close()
