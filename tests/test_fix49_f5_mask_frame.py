"""Pruning's mask image has a grey frame on the matrix's edge: on the dark theme its black (pruned) edge rows and
columns merged into the page, and where the matrix ended could not be seen."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pages import charts  # noqa: E402


def test_the_mask_is_framed_on_its_cells_outer_edges():
    for block in ((1, 1), (4, 8)):  # each cell a weight, or a block of weights (its share kept)
        fig = charts.mask(np.zeros((5, 7)), "Kept weights", block=block)  # all pruned: black on a dark page
        fr, fc = block
        frame = [s for s in fig.layout.shapes if s.type == "rect"]
        assert len(frame) == 1 and frame[0].line.color == charts.GREY and frame[0].line.width >= 1
        f = frame[0]
        assert (f.xref, f.yref) == ("x", "y")
        assert (f.x0, f.x1, f.y0, f.y1) == (-fc / 2, 6.5 * fc, -fr / 2, 4.5 * fr)  # the 7 × 5 cells' outer edges
