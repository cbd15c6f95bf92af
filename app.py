"""Compression Playground — the entry point: `streamlit run app.py`.

This file is the frame around every page: it draws the sidebar (model choice, kept across pages,
and an uploader for the user's own weights) and routes to the page scripts in pages/. Pages stay
thin: widgets in, one engine call, charts out.
"""

import streamlit as st

from pages import common

st.set_page_config(page_title="Compression Playground", page_icon=":material/compress:", layout="wide")

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
common.sidebar()
with common.frame():
    page.run()
