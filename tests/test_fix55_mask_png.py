"""Pruning's kept-weight image is one greyscale PNG in an image trace, not a heatmap: Chromium redrew a heatmap's
300 × 262 cells on every slider press (65 ms of a Pruning redraw, bench/latency.py). The PNG must still show the
mask exactly, fill the plot as the heatmap did, and read to a screen reader as the heatmap's text did."""

import base64
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from compress_engine.playground import viz  # noqa: E402
from pages import charts  # noqa: E402


def _pixels(fig):
    head, data = fig.data[0].source.split(",", 1)
    assert head == "data:image/png;base64"
    image = Image.open(io.BytesIO(base64.b64decode(data)))
    assert image.mode == "L"
    return np.asarray(image)


def test_the_png_holds_the_mask_pixel_for_pixel():
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(37, 50)) * (rng.random((37, 50)) > 0.8)  # 80 % pruned
    image, block = viz.mask_image(weight)
    fig = charts.mask(image, "Kept", block)
    assert [t.type for t in fig.data] == ["image"]
    assert np.array_equal(_pixels(fig), np.where(weight != 0, 255, 0))  # white kept, black pruned, in place


def test_a_block_is_grey_by_its_share_kept_and_sits_on_its_weights():
    weight = np.zeros((4, 700))
    weight[:, :350] = 1.0  # the left half kept
    weight[0, 351] = 1.0  # one weight of the block of weights 351-353
    image, block = viz.mask_image(weight, max_side=300)
    assert block == (1, 3)
    fig = charts.mask(image, "Kept", block)
    px = _pixels(fig)
    assert px.shape == image.shape and px[1, 0] == 255 and px[1, -1] == 0
    assert px[0, 117] == round(255 / 3) and px[1, 117] == 0  # one of its three kept: a third grey
    trace = fig.data[0]
    assert (trace.x0, trace.dx, trace.y0, trace.dy) == (0, 3, 0, 1)  # pixel i centred on its block's weights


def test_it_fills_the_plot_and_reads_as_the_heatmap_did():
    image = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.25]])
    fig = charts.mask(image, "Kept")
    assert fig.layout.yaxis.scaleanchor is False and fig.layout.yaxis.autorange == "reversed"
    heat = charts.figure([{"type": "heatmap", "z": np.rint(100 * image), "colorbar": {"title": {"text": "kept"},
                                                                                      "ticksuffix": " %"}}], {})
    text = charts.describe(fig)
    assert "a grid of 2 rows by 3 columns, values (kept) from 0 % to 100 %" in text
    assert charts._trace_text(fig.data[0]) == charts._trace_text(heat.data[0]).split(";")[0]


def test_block_means_are_numpys_nanmean_exactly():
    """viz.mask_image's block means (counts over a bool copy, a byte a weight) against np.nanmean of each block on a
    NaN-padded float64 copy, the way it used to compute them: the same float64 values, edge blocks included."""
    rng = np.random.default_rng(1)
    for shape in [(301, 787), (1201, 600), (10, 5000), (700, 3, 3, 3)]:
        w = rng.normal(size=shape) * (rng.random(shape) > 0.6)
        image, (fr, fc) = viz.mask_image(w, max_side=300)
        m = viz.as_matrix(w) != 0
        R, C = -(-m.shape[0] // fr), -(-m.shape[1] // fc)
        padded = np.full((R * fr, C * fc), np.nan)
        padded[:m.shape[0], :m.shape[1]] = m
        assert np.array_equal(image, np.nanmean(padded.reshape(R, fr, C, fc), axis=(1, 3))), shape
