"""Bar labels stay readable: Plotly shrank labels forced inside narrow bars (ResNet-8's eleven "Sparsity per layer"
bars, Pipeline's thin parts) to 1-2 px specks. Now no label is drawn below 10 px, it turns or moves outside a bar too
narrow for it, and only a label inside a bar is forced white (outside, on the page, it takes the theme's colour)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pages import charts  # noqa: E402


def test_bar_labels_are_never_shrunk_below_a_readable_size():
    names = [f"blocks.{i}.conv{j}" for i in range(3) for j in (1, 2)] + ["stem", "fc", "blocks.2.shortcut.0"]
    fig = charts.bars(names, [0.4] * 8 + [0.0], "Sparsity per layer", "layer", "weights removed (%)",
                      text=["40.0 %"] * 8 + ["0.0 %"], y_percent=True)
    bar = fig.data[0]
    assert fig.layout.uniformtext.minsize >= 10 and fig.layout.uniformtext.mode == "show"
    assert bar.textposition == "auto" and bar.textangle is None  # Plotly's default: turned to fit
    assert bar.insidetextfont.color == "white" and bar.textfont.color is None and bar.outsidetextfont.color is None
