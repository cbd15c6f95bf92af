"""A class demo on a 1,024 × 768 projector, ResNet-8 chosen: metric cards read "Teacher parame…", "Non-zero para…",
"once BatchNorm …", and formulas were cut at their column's edge ("KL(softmax(t/T) ‖ softm", "q_min, q_",
"⌈log₂ 1"), the rest behind a sideways scroll bar, and a chart title at the chart's edge ("bars: best to wo"). In a
real browser (bench/chromium.py's server and Chromium), no metric label or delta is cut, no display formula is wider
than its box or its column, no chart title is wider than its chart, and a row's values share one line, at 1,024 × 768
and at 1,280 × 720.
"""

import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CUT = """() => {
  const cut = e => e.scrollWidth > e.clientWidth + 1;
  const metrics = [...document.querySelectorAll(
      "[data-testid=stMetricLabel] [data-testid=stMarkdownContainer], [data-testid=stMetricDelta] [data-testid=stMarkdownContainer]")]
    .filter(cut).map(e => [e.innerText, e.scrollWidth, e.clientWidth]);
  const formulas = [...document.querySelectorAll('.katex-display')].filter(e => {
      const box = e.closest('[data-testid=stMarkdown]').getBoundingClientRect(), k = e.querySelector('.katex');
      return cut(e) || k.getBoundingClientRect().right > box.right + 1;
    }).map(e => [e.innerText.split('\\n')[0], e.scrollWidth, e.clientWidth]);
  const rows = [...document.querySelectorAll('[data-testid=stHorizontalBlock]')]
    .filter(r => !r.querySelector('[data-testid=stHorizontalBlock]'))
    .map(r => [...r.querySelectorAll('[data-testid=stMetricValue]')].map(v => Math.round(v.getBoundingClientRect().top)))
    .filter(tops => tops.length > 1 && Math.max(...tops) - Math.min(...tops) > 2);
  const titles = [...document.querySelectorAll('.js-plotly-plot .gtitle')].filter(t =>
      t.getBoundingClientRect().width > t.closest('.js-plotly-plot').getBoundingClientRect().width + 1)
    .map(t => [t.textContent, Math.round(t.getBoundingClientRect().width)]);
  return {metrics, formulas, rows, titles};
}"""


# the page laid out at the new width: every Plotly chart redrawn to its box (Plotly resizes on a debounced
# window resize), checked on two animation frames in a row
SETTLED = """w => {
  if (window.innerWidth !== w) return false;
  const sizes = [...document.querySelectorAll('.js-plotly-plot')].map(p => {
    const svg = p.querySelector('.main-svg');
    return svg ? Math.round(svg.getBoundingClientRect().width) - Math.round(p.getBoundingClientRect().width) : 0;
  });
  const same = sizes.every(d => Math.abs(d) <= 1);
  const key = JSON.stringify([...document.querySelectorAll('.js-plotly-plot')].map(p => Math.round(p.getBoundingClientRect().width)));
  const ok = same && window.__lastLayout === key;
  window.__lastLayout = key;
  return ok;
}"""


def test_cards_and_formulas_fit_a_1024_px_projector(fmnist):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    from chromium import have_chromium, launch, streamlit_server
    from playwright.sync_api import sync_playwright

    if not have_chromium():
        pytest.skip("no Chromium")
    with streamlit_server(timeout=120) as (url, _proc), sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1024, "height": 768})
            page.goto(url)
            page.locator('[data-testid="stSidebar"]').get_by_text("Model", exact=True).wait_for(timeout=60_000)
            page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
            page.get_by_role("option", name="resnet-8", exact=True).click()
            page.locator('[data-testid="stMetric"]', has_text="Parameters").wait_for(timeout=120_000)
            found = {}
            for name in ("Distillation", "Quantization", "Clustering"):
                page.locator('[data-testid="stSidebarNav"] a', has_text=name).click()
                page.locator(".katex-display").first.wait_for(timeout=120_000)
                page.locator('[data-testid="stMetric"]').first.wait_for(timeout=120_000)
                page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=120_000)
                for width, height in ((1024, 768), (1280, 720)):
                    page.set_viewport_size({"width": width, "height": height})
                    page.wait_for_function(SETTLED, arg=width, polling="raf", timeout=10_000)
                    seen = page.evaluate(CUT)
                    found.update({(name, width, what): bad for what, bad in seen.items() if bad})
            assert not found, found
        finally:
            browser.close()
