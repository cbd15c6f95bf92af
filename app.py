"""Compression Playground — the entry point: `streamlit run app.py`.

This file is the frame around every page: it draws the sidebar (model choice, kept across pages,
and an uploader for the user's own weights) and routes to the page scripts in pages/. Pages stay
thin: widgets in, one engine call, charts out.
"""

import pandas  # noqa: F401 - whole before any page runs: see below
import streamlit as st

from pages import common

# pandas is imported here, by every run before its page, not lazily by the first st.dataframe: plotly's figure
# builders look pandas up in sys.modules without importing it, so a session building a chart while another
# session's run is still importing pandas got "partially initialized module 'pandas' has no attribute 'Series'"
# (bench/load.py, 5 sessions on a fresh server). An import statement waits for an import in progress; the lookup
# does not. It costs the server's first run about 0.4 s, once.

# The tab icon, drawn here: a ":material/...:" page icon is fetched from fonts.gstatic.com, and the page must
# make no request outside this server (offline classrooms, no third parties).
ICON = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><rect width="24" height="24" rx="5" '
        'fill="#1f77b4"/><path d="M12 3v6M9 6l3 3 3-3M12 21v-6M9 18l3-3 3 3M5 12h14" stroke="#fff" '
        'stroke-width="2" fill="none" stroke-linecap="round" stroke-linejoin="round"/></svg>')
TITLE = "Compression Playground"
st.set_page_config(page_title=TITLE, page_icon=ICON, layout="wide")
# A classroom projector is often 1,024 px wide: there four metric cards cut their values ("243.1 …") and long switch
# labels were cut short ("Structured: remove who…"). Below 1,280 px the values get a smaller font, and labels wrap;
# below 1,000 px (800 px: the sidebar leaves 500) the values shrink again.
# Metric labels and deltas wrap at every width: at 1,024 px ResNet-8's cards read "Teacher parame…", "Non-zero
# para…", "once BatchNorm …" (wrapping only below 1,000 px missed them). A taller card is fine; a cut one is not.
# Below 1,100 px a label takes two lines' height, its text at the bottom, so the values of a row stay on one line
# when one of its labels wraps (at 1,280 px none does, and cards keep their height).
# A display formula fits its column instead of scrolling sideways (at 1,024 px Distillation's loss ended
# "KL(softmax(t/T) ‖ softm" and Quantization's "q_min, q_", the rest behind a scroll bar nobody saw on a projector):
# it breaks after = + , as inline KaTeX does, and its font is at most 5 % of its column's width (cqi), which shrinks
# it only in a column narrower than about 390 px, enough for the widest formula that cannot break (an aligned one,
# 19 em). The scroll bar stays only as a last resort. KaTeX ends a formula of several lines with a 2-px spacer beyond
# its box: padded, so such a formula does not scroll.
# Charts side by side stack, one a row, below 1,100 px: at 1,024 the sidebar left them 266 px each, and their titles
# ran past their right edge (a projector walkthrough).
# Charts' tick labels and axis titles (every axis's and colour bar's; and bar labels outside their bars) take the
# page's text colour, a little faded: Streamlit's chart theme drew them rgb(128, 132, 149) on the light theme's white,
# 3.7:1, under the 4.5:1 small text needs (WCAG AA). Now 7.2:1 on the light theme's white, 10:1 on the dark theme's
# near-black (tests/test_fix49_f5_browser.py measures both). CSS follows a switch of theme at once; a colour set in
# the figure, built before the switch, would not (and st.context.theme may be stale right after one, as its docs say).
# A page link, a radio option or a switch reached with the keyboard gets an outline in the text colour: Streamlit
# marked it only with the faint background that also marks the current page.
# Captions are the text colour at 75 % opacity (Streamlit's 60 % was 3.9:1 on the light theme's white, under AA's
# 4.5:1), and chart annotations and point labels in Streamlit's chart grey (rgb(128, 132, 149), 3.7:1) or the
# palette's grey (rgb(127, 127, 127), 4.0:1 at 10 px) take the tick labels' colour; one given another colour keeps it.
# A table's toolbar is shown while one of its buttons has the keyboard's focus (Streamlit kept it at opacity 0: four
# invisible Tab stops a table), and buttons (a chart toolbar's too: Plotly's 1-px black outline vanished on the dark
# theme), sliders, tabs, help icons and select boxes reached with the keyboard get a solid outline in the text colour
# (Streamlit's faint ring was about 2:1).
# A chart's text (common.chart: what a screen reader reads instead of the SVG's tick labels run together) is
# visually hidden, out of the page's flow, so it adds no gap under the chart.
# A page's sections are h2 (st.header) under its h1 title, as a screen reader's outline expects, where they were h3
# (st.subheader) or h4: drawn at the size of Streamlit's h3, so they look as before.
st.html("<style>[data-testid='stMain'] [data-testid='stHeading'] h2 { font-size: 1.75rem; padding-top: 0.75rem; } "
        ".js-plotly-plot :is([class$='tick'] > text, text[class$='title']:not(.gtitle), "
        ".bartext-outside) { fill: currentColor !important; fill-opacity: 0.8 !important; } "
        "[data-testid='stSidebarNav'] a:focus-visible, [data-testid='stRadio'] label:has(input:focus-visible), "
        "[data-testid='stCheckbox'] label:has(input:focus-visible) "
        "{ outline: 2px solid currentColor; outline-offset: 2px; border-radius: 4px; } "
        "@media (max-width: 1280px) { [data-testid='stMetricValue'] { font-size: 1.75rem; } } "
        "@media (max-width: 1000px) { [data-testid='stMetricValue'] { font-size: 1.3rem; } } "
        "[data-testid='stCaptionContainer'] { opacity: 0.75; } "
        ".js-plotly-plot :is(.annotation-text, .textpoint text):is([style*='fill: rgb(128, 132, 149)'], "
        "[style*='fill: rgb(127, 127, 127)']) { fill: currentColor !important; fill-opacity: 0.8 !important; } "
        ".js-plotly-plot .modebar-btn:focus-visible { outline: 2px solid currentColor !important; } "
        "[data-testid='stElementToolbar']:focus-within { opacity: 1; } "
        ":is(button, [role='tab'], [data-testid='stTooltipHoverTarget']):focus-visible, "
        ":is([data-testid='stSelectbox'], [data-testid='stMultiSelect']) > div:has(input:focus-visible), [data-testid='stSlider'] div:has(> div > "
        "input[type='range']:focus-visible) { outline: 2px solid currentColor; outline-offset: 2px; } "
        "[data-testid='stElementContainer']:has(.chart-text) { position: absolute; width: 1px; height: 1px; "
        "overflow: hidden; clip-path: inset(50%); white-space: nowrap; } "
        "[data-testid='stMetricLabel'] p, [data-testid='stMetricDelta'] p { white-space: normal; } "
        "[data-testid='stWidgetLabel'] p, [data-testid='stCheckbox'] label p { white-space: normal; } "
        "[data-testid='stMarkdown']:has(.katex-display) { container-type: inline-size; } "
        ".katex-display { overflow-x: auto; overflow-y: hidden; } "
        ".katex-display > .katex { padding-right: 2px; white-space: normal; font-size: min(1.21em, 5cqi); } "
        "@media (max-width: 1100px) { [data-testid='stMetricLabel'] { min-height: 2lh; align-content: end; } "
        "[data-testid='stHorizontalBlock']:has(.live-chart, .js-plotly-plot) "
        "{ flex-wrap: wrap; } [data-testid='stHorizontalBlock']:has(.live-chart, .js-plotly-plot) > "
        "[data-testid='stColumn'] { min-width: 100%; } }</style>")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/pruning.py", title="Pruning", icon=":material/content_cut:"),
    st.Page("pages/clustering.py", title="Clustering", icon=":material/scatter_plot:"),
    st.Page("pages/quantization.py", title="Quantization", icon=":material/straighten:"),
    st.Page("pages/distillation.py", title="Distillation", icon=":material/school:"),
    st.Page("pages/sensitivity.py", title="Sensitivity", icon=":material/tune:"),
    st.Page("pages/pipeline.py", title="Pipeline", icon=":material/account_tree:"),
    st.Page("pages/compare.py", title="Compare", icon=":material/leaderboard:"),
    st.Page("pages/export.py", title="Export", icon=":material/download:"),
]
page = st.navigation(PAGES)
# Each page's browser tab is titled after it ("Pruning · Compression Playground"), so a tab, a bookmark or a screen
# reader's window list tells pages apart: the one title above named every page the same (WCAG 2.4.2).
if page is not PAGES[0]:  # Home keeps the product's name alone
    st.set_page_config(page_title=f"{page.title} · {TITLE}")
common.sidebar(page)
link_note = st.empty()  # above the page: what of its link it could not open on (said once the page has drawn)
with common.frame():
    page.run()
with link_note.container():
    common.link_values_note()
