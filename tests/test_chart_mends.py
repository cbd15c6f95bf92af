"""Mends from a review of the dashboard in Chromium: hover texts with units, the Export page's tensor order, its
formula's width and Clustering's per-tensor label with Huffman coding on."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from test_app import app

from compress_engine.playground import units

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pages import charts  # noqa: E402
from conftest import plots


def test_every_curve_trace_names_its_knob_and_its_value_with_the_unit():
    """The review saw "16: 89.76" and "16: 147.86" on the curves, and Plotly's default "(16, 147.863)" on the star."""
    series = [{"name": "linear", "x": [2, 16, 256], "y": [0.5, 0.8976, 0.9]}]
    acc = charts.curve(series, "Accuracy vs cluster count", "clusters per layer k (log scale)", "test accuracy (%)",
                       current={"x": 16, "y": 0.8976, "name": "current (k = 16)"}, y_percent=True, x_log=True)
    size = charts.curve([{**series[0], "y": [40.1, 147.86, 300.0]}], "Artifact size vs cluster count",
                        "clusters per layer k (log scale)", "artifact size (KB)",
                        current={"x": 16, "y": 147.863, "name": "current (k = 16)"}, x_log=True)
    for fig, unit, name in ((acc, " %", "test accuracy"), (size, " KB", "artifact size")):
        assert len(fig.data) == 2  # the series and the star
        for t in fig.data:
            assert t.hovertemplate.startswith(t.name + "<br>")  # the trace's name in the text: not cut in a side box
            assert "clusters per layer k: %{x}<br>" in t.hovertemplate
            assert f"{name}: %{{y:.2f}}{unit}" in t.hovertemplate
            assert t.hovertemplate.endswith("<extra></extra>")


def test_sparsity_curve_has_its_percent_on_x_too():
    fig = charts.curve([{"name": "one-shot", "x": [0, 50], "y": [0.9, 0.8]}], "Accuracy vs sparsity", "sparsity (%)",
                       "test accuracy (%)", y_percent=True)
    assert "sparsity: %{x} %<br>test accuracy: %{y:.2f} %" in fig.data[0].hovertemplate


def test_histogram_bars_and_lines_say_what_they_are():
    """The review saw "non-zero wei...(0.06166496, 2915)": the name cut to 15 characters, a bare pair of numbers."""
    edges = np.linspace(-0.5, 0.5, 11)
    fig = charts.histogram([{"name": "non-zero weights before clustering (2,915)", "counts": np.arange(10),
                             "edges": edges}], "w", vlines=[charts.vline([0.1, 0.2], "centroids (2)")])
    bars, lines = fig.data
    assert bars.hovertemplate == ("non-zero weights before clustering (2,915)<br>weight value %{customdata[0]:.4g} to "
                                  "%{customdata[1]:.4g}<br>count: %{y:,}<extra></extra>")
    assert np.allclose(np.asarray(bars.customdata), np.stack([edges[:-1], edges[1:]], axis=1))  # each bar's bin
    assert lines.hovertemplate == "centroids (2)<br>weight value: %{x:.4g}<extra></extra>"
    log = charts.histogram([{"name": "a", "counts": np.arange(1, 11), "edges": edges}], "w", log_y=True)
    assert "<br>count: %{y:,}" in log.data[0].hovertemplate  # "(log scale)" is not a unit


def test_bars_and_their_reference_line_carry_units():
    fig = charts.bars(["fc1", "fc2"], [0.9, 0.5], "Sparsity per layer", "layer", "weights removed (%)",
                      reference={"y": 0.8, "name": "whole model 80.0 %"}, y_percent=True)
    assert fig.data[0].hovertemplate == "layer: %{x}<br>weights removed: %{y:.2f} %<extra></extra>"
    assert fig.data[1].hovertemplate == "whole model 80.0 %<br>weights removed: %{y:.2f} %<extra></extra>"
    told = charts.bars(["codes"], [1.5], "parts", "part", "size (KB)", hover=["1,500 bytes"])
    assert told.data[0].hovertemplate == "part: %{x}<br>%{customdata}<extra></extra>"
    assert list(told.data[0].customdata) == ["1,500 bytes"]


def test_quantity_reads_the_unit_from_an_axis_title():
    assert charts.quantity("artifact size (KB)") == ("artifact size", " KB")
    assert charts.quantity("size (KB, log scale)") == ("size", " KB")
    assert charts.quantity("count (log scale)") == ("count", "")
    assert charts.quantity("test errors (of 10,000)") == ("test errors (of 10,000)", "")
    assert charts.quantity("accuracy", percent=True) == ("accuracy", " %")
    assert charts.quantity("bits per weight") == ("bits per weight", "")




def test_export_breakdown_keeps_the_artifacts_tensor_order(tmp_path, monkeypatch, fmnist, lenet300):
    """The review saw layers.0.weight, layers.1.weight, layers.1.bias, layers.2.weight, layers.0.bias, ...: the
    biases (raw float32 only) drawn after the weights (index and codes)."""
    monkeypatch.setenv("COMPRESS_STORE", str(tmp_path / "runs.sqlite"))
    at = app().run().switch_page("pages/export.py").run()
    assert not at.exception
    spec = json.loads(plots(at)[0])
    axis = spec["layout"]["yaxis"]
    drawn = axis["categoryarray"]  # bottom to top, unless the axis is reversed
    drawn = drawn if axis.get("autorange") == "reversed" else drawn[::-1]  # top to bottom
    assert drawn == list(lenet300.state_dict()) and any(n.endswith("bias") for n in drawn)


@pytest.mark.browser
def test_export_formula_fits_its_column_at_1280_by_720(fmnist):
    """At 1,280 × 720 the Make-an-artifact formula was 478 px in a 460-px column and read "… + codebook + rav": it
    now breaks over two lines, and no formula of a page overflows its box (KaTeX's 2-px end spacer is padded)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    from chromium import have_chromium, launch, streamlit_server
    from playwright.sync_api import sync_playwright

    if not have_chromium():
        pytest.skip("no Chromium")
    fit = ("[...document.querySelectorAll('.katex-display')].map(e => [e.innerText.split('\\n')[0], e.scrollWidth, "
           "e.clientWidth])")
    with streamlit_server(timeout=120) as (url, _proc), sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.goto(url)
            page.locator('[data-testid="stSidebarNav"] a', has_text="Export").click()
            page.locator(".katex-display").first.wait_for(timeout=120_000)
            page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=120_000)
            page.wait_for_timeout(500)
            formulas = page.evaluate(fit)
            assert formulas and all(sw <= cw for _, sw, cw in formulas), formulas
        finally:
            browser.close()


def test_clustering_table_claims_no_fixed_bit_width_with_huffman_on(fmnist):
    """With Huffman on the table said "16 centroids, 4 bit" beside 36.3 KB for 47,040 weights (6.2 bits each): it
    now gives the bits its bytes measure per kept weight; with Huffman off the fixed width stays. The label names
    the coding the artifact holds: the encoder keeps a fixed width where entropy coding would not pay (99 %
    pruned, k = 2, read 'Huffman-coded' over fixed 1-bit codes), and range-codes where that is smaller."""
    import compress_engine as ce
    from compress_engine.core.encode import breakdown_and_codings
    from test_app import page

    at = page("clustering")
    table = next(d.value for d in at.dataframe if "stored as" in d.value.columns)
    fixed = table[table["stored as"] != "float32"]
    assert len(fixed) and all(s.endswith(" bit") for s in fixed["stored as"])  # ceil(log2 16) = 4 bit, exact

    def labels_and_codings(k, pct):
        at.select_slider(key="cluster_k").set_value(k)
        at.slider(key="cluster_sparsity").set_value(pct)
        at.toggle(key="cluster_huffman").set_value(True).run()
        assert not at.exception
        table = next(d.value for d in at.dataframe if "stored as" in d.value.columns)
        recipe = ce.Recipe(sparsity=pct / 100, clusters=k, huffman=True)
        artifact = ce.compress(ce.load_model("lenet-300-100"), recipe, fmnist).artifact
        _, codings = breakdown_and_codings(artifact)
        return table[table["stored as"] != "float32"], codings

    coded, codings = labels_and_codings(16, 0)
    assert len(coded)
    for _, row in coded.iterrows():
        word = {"range": "range-coded", "huffman": "Huffman-coded", "huffman-zlib": "Huffman-coded"}.get(
            codings[row["tensor"]])
        if word is None:
            assert row["stored as"] == "16 centroids, 4 bit (entropy coding would not pay)"
            continue
        assert row["stored as"].startswith(f"16 centroids, {word}: ")
        measured = float(row["stored as"].split(": ")[1].split()[0])
        assert measured == pytest.approx(8 * row["KB"] * units.KB / row["non-zero"], abs=0.06)
    coded, codings = labels_and_codings(2, 99)
    plain = [n for n, c in codings.items() if c == "fixed"]
    assert plain  # 99 % pruned, 2 centroids: some codes stay 1 bit wide
    for _, row in coded.iterrows():
        assert ("Huffman" in row["stored as"]) == (codings[row["tensor"]] in ("huffman", "huffman-zlib"))
        if row["tensor"] in plain:
            assert row["stored as"] == "2 centroids, 1 bit (entropy coding would not pay)"
