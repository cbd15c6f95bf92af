"""Plotly figure builders shared by the technique pages (plotly, and Pillow for a PNG: no streamlit, no torch).

Each function takes data already shaped by compress_engine.playground.viz (counts and edges, images, rows
of settings) and returns a go.Figure with titled axes and units; pages draw it with common.chart (pages/live_chart:
updated in place when a rerun changes it).
"""

import base64
import colorsys
import html
import io
import math
import os
import re
from pathlib import Path

import numpy as np
import plotly.express as px
import plotly.graph_objects as go
from PIL import Image

from compress_engine.playground import bench_results, units, viz

BENCH = Path(__file__).resolve().parent.parent / "bench" / "results"  # what bench/ measured, as pages read it
PALETTE, GREY = viz.PALETTE, viz.GREY  # the one palette (defined in viz, shared with bench/)
BLUE, ORANGE, GREEN, RED, PURPLE = PALETTE[:5]


def _rgb(colour):
    return tuple(int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5))


def _apart(colour, others, least=0.3):
    """True if `colour` (#rrggbb) is at least `least` from each of `others` in RGB (0-1 a channel), and neither too
    dark nor too light to tell from the axes' black and the page's white."""
    far = all(sum((a - b) ** 2 for a, b in zip(_rgb(colour), _rgb(o))) ** 0.5 >= least for o in others)
    return far and 0.25 <= colorsys.rgb_to_hls(*_rgb(colour))[1] <= 0.7


def _longer(base, candidates):
    out = list(base)
    for c in candidates:
        if _apart(c, out + [GREY]):
            out.append(c)
    return tuple(out)


# PALETTE, then the colours of Plotly's longer qualitative palettes that stand apart from it, from each other and from
# GREY: for charts with more series than PALETTE has (ResNet-8's fit: 10 layers, biases, header; with PALETTE's 9,
# cycling gave stem.weight and fc.weight the same blue)
MANY = _longer(PALETTE, px.colors.qualitative.Dark24 + px.colors.qualitative.Light24 + px.colors.qualitative.Alphabet)


# A saved run's technique label, and Compare's grouping of labels, are the run store's (store.technique_label and
# technique_group: one definition for every page). Imported when called: the store imports torch, Home does not.

def fit_technique(kb):
    """The technique a Fit in `kb` KB is saved under (the run store's technique column): "fit 14 KB"."""
    from compress_engine.playground.store import technique_label
    return technique_label(None, budget_kb=kb)


def technique_group(technique):
    """A saved run's technique as Compare's legend groups it (store.technique_group): every Fit's is one."""
    from compress_engine.playground.store import technique_group as group
    return group(technique)


def colours(n):
    """n colours, each its own: MANY's first n, then (past MANY) hues evenly around the colour wheel."""
    extra = max(0, n - len(MANY))
    wheel = ["#%02x%02x%02x" % tuple(round(255 * v) for v in colorsys.hls_to_rgb(i / extra, 0.45, 0.7))
             for i in range(extra)]
    return list(MANY[:n]) + wheel
# one marker shape a model (Plotly Express cycles 5 shapes, so a sixth model was drawn as the first one's circles), or
# a series: with DASHES, what tells series apart where colour cannot (a colour-blind reader, a grey printout)
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross", "x", "triangle-down", "pentagon", "hexagon",
           "star", "hourglass", "bowtie", "triangle-left", "triangle-right", "star-diamond", "octagon")
DASHES = ("solid", "dot", "dash", "longdash", "dashdot", "longdashdot")  # Plotly's line dashes
HEIGHT = 360
# Plotly checks every property as a figure is built: about 10 ms for a two-trace histogram, ten times the figure
# itself, and every slider move builds 3-5 figures while all sessions share one interpreter lock (bench/load.py:
# 30 sessions keep the server's lock busy). The builders below therefore write Plotly's JSON names as plain
# dicts and skip that check on the server; the tests set PLAYGROUND_CHECK_CHARTS=1, so every figure an AppTest
# draws is checked, and tests/test_charts.py checks each builder's output equals the checked build's.
CHECK = os.environ.get("PLAYGROUND_CHECK_CHARTS") == "1"


def figure(data, layout):
    """A go.Figure of trace dicts and a layout dict (Plotly's nested names: marker={"color": ...}, no
    "marker_color" shorthand; a None value means "not set", as for Plotly), checked only when CHECK is set."""
    return go.Figure(data=[_set(t) for t in data], layout=_set(layout), _validate=CHECK)


def _set(spec):
    """A dict without its None values (nor the dicts left empty), at every level of nested dicts (and of dicts in
    lists, e.g. shapes), as Plotly leaves them out."""
    out = {}
    for k, v in spec.items():
        if isinstance(v, dict):
            if sub := _set(v):
                out[k] = sub
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            out[k] = [_set(x) for x in v]
        elif v is not None:
            out[k] = v
    return out


def base_layout(title, x_title, y_title, height=HEIGHT, **kw):
    """The layout every chart starts from (a dict for figure()): titles, height, margins, the legend under it."""
    return {"title": {"text": title}, "xaxis": {"title": {"text": x_title}}, "yaxis": {"title": {"text": y_title}},
            "height": height, "margin": {"l": 10, "r": 10, "t": 50, "b": 10},
            "legend": {"orientation": "h", "y": -0.22}, **kw}


def quantity(title, percent=False):
    """An axis title split into what it measures and its unit, for hover texts: the title is where a chart names
    its unit (units.py's convention: "%", "KB"), so the hover says the same. "artifact size (KB)" -> ("artifact
    size", " KB"); "sparsity (%)" -> ("sparsity", " %"); "clusters per layer k (log scale)" -> ("clusters per layer
    k", ""); a note that is not a unit stays in the name: "test errors (of 10,000)". percent: the values are
    shown as % whatever the title says."""
    m = re.fullmatch(r"(.*?)\s*\(([^()]*)\)", title.strip())
    if not m:
        return title, " %" if percent else ""
    notes = [n.strip() for n in m[2].split(", ") if n.strip() != "log scale"]
    if notes and " " in notes[0]:  # a remark, not a unit
        return title, " %" if percent else ""
    unit = notes[0] if notes else ("%" if percent else "")
    return m[1], f" {unit}" if unit else ""


LONE_SPAN = 1.5  # a log axis over one value spans this factor either side of it


def log_ticks(values, ticks=None):
    """An axis's log type with readable whole-number ticks over `values` (viz.log_ticks): "20 50 100 200", never
    Plotly's "8 9 10 2 3 … 100 2". `ticks` gives the tick values instead (e.g. the powers of two of a cluster
    count). Every log axis of the dashboard goes through here."""
    if ticks is not None:
        ticks = [(t, viz.tick_label(t)) for t in ticks]
    else:
        ticks = viz.log_ticks(values)
        if len(ticks) == 1:  # one value (Compare with a single run): a lone tick read "28.123"; whole ticks around it
            v = ticks[0][0]  # at least one on each side, inside the range drawn (viz.lone_ticks)
            return {**log_ticks(None, [t for t, _ in viz.lone_ticks(v, LONE_SPAN)]),
                    "range": [math.log10(v / LONE_SPAN), math.log10(v * LONE_SPAN)]}
    return {"type": "log", "tickmode": "array", "tickvals": [v for v, _ in ticks], "ticktext": [t for _, t in ticks]}


def log_axis(fig, axis, values, ticks=None):
    """Make the x or y axis of a built figure logarithmic, with log_ticks' ticks."""
    (fig.update_xaxes if axis == "x" else fig.update_yaxes)(**log_ticks(values, ticks))
    return fig


def histogram(series, title, x_title="weight value", log_y=False, height=HEIGHT, vlines=()):
    """Overlaid histograms with shared bins. series: dicts with name, counts, edges, and optional
    color and opacity. Bars sit at the bin centres and are one bin wide. vlines: vline() traces on top."""
    y_title = "count (log scale)" if log_y else "count"
    (x_name, x_unit), (y_name, _) = quantity(x_title), quantity(y_title)
    data = []
    for s in series:
        edges = np.asarray(s["edges"])
        data.append({"type": "bar", "x": (edges[:-1] + edges[1:]) / 2, "y": np.asarray(s["counts"]),
                     "width": np.diff(edges), "name": s["name"], "opacity": s.get("opacity", 0.6),
                     "marker": {"color": s.get("color"), "line": {"width": 0}},
                     "customdata": np.stack([edges[:-1], edges[1:]], axis=1),  # each bar's bin
                     "hovertemplate": f"{s['name']}<br>{x_name} %{{customdata[0]:.4g}} to %{{customdata[1]:.4g}}"
                                      f"{x_unit}<br>{y_name}: %{{y:,}}<extra></extra>"})
    # the lines' names with their x: Plotly's default named them in its side box, cut to 15 characters
    vlines = [{**v, "hovertemplate": f"{v['name']}<br>{x_name}: %{{x:.4g}}{x_unit}<extra></extra>"} for v in vlines]
    layout = base_layout(title, x_title, y_title, height, barmode="overlay", bargap=0)
    if log_y:
        layout["yaxis"].update(log_ticks([c for s in series for c in s["counts"]]))
    if vlines:
        layout["yaxis2"] = {"overlaying": "y", "range": [0, 1], "visible": False, "fixedrange": True}
    return figure(data + list(vlines), layout)


def vline(xs, name, color=RED, width=1.0, dash=None):
    """Vertical lines at each x across the full plot height (histogram(vlines=...)), as one legend entry: one
    trace with gaps rather than one shape per line, so hundreds of lines stay cheap; works with a log y axis."""
    xs = np.asarray(xs, dtype=float)
    x = np.repeat(xs, 3).astype(object)
    y = np.tile(np.array([0.0, 1.0, None], dtype=object), len(xs))
    x[2::3] = None
    return {"type": "scatter", "x": x, "y": y, "mode": "lines", "name": name, "yaxis": "y2",
            "line": {"color": color, "width": width, "dash": dash}}


def curve(series, title, x_title, y_title, current=None, hline=None, x_log=False, y_percent=False, height=HEIGHT,
          x_ticks=None):
    """Lines with markers, one per series (dicts with name, x, y, optional color, dash, text for
    hover, and margin: a 95 % half-width per point, None where y is exact), the current setting as a star (dict x,
    y, name) and an optional reference line (dict y, name). y_percent: y values are fractions shown as %. x_ticks:
    the x axis's tick values (on a linear axis, e.g. the bit widths 1-8 and 16 at their true distances).
    A point with a margin is an estimate: an open marker with an error bar."""
    scale = 100.0 if y_percent else 1.0
    (x_name, x_unit), (y_name, y_unit) = quantity(x_title), quantity(y_title, y_percent)

    def hover(name, more=""):  # the series, the knob's value and the measure's, each with its unit
        return f"{name}<br>{x_name}: %{{x}}{x_unit}<br>{y_name}: %{{y:.2f}}{y_unit}{more}<extra></extra>"

    data = []
    for s in series:
        margin = s.get("margin") or ()
        estimated = any(e is not None for e in margin)
        trace = {"type": "scatter", "x": list(s["x"]), "y": [scale * v for v in s["y"]], "mode": "lines+markers",
                 "name": s["name"], "line": {"color": s.get("color"), "dash": s.get("dash")}, "text": s.get("text"),
                 "hovertemplate": hover(s["name"], ("%{customdata}" if estimated else "")
                                        + ("<br>%{text}" if s.get("text") else ""))}
        if estimated:
            trace["error_y"] = {"type": "data", "array": [None if e is None else scale * e for e in margin],
                                "visible": True, "thickness": 1, "width": 3}
            trace["marker"] = {"symbol": ["circle" if e is None else "circle-open" for e in margin], "size": 8}
            trace["customdata"] = ["" if e is None else f" ± {scale * e:.2f}{y_unit} (estimated)" for e in margin]
        data.append(trace)
    layout = base_layout(title, x_title, y_title, height)
    if hline is not None:  # a dotted line across the plot, labelled at its right end (as add_hline draws it)
        y = scale * hline["y"]
        layout["shapes"] = [{"type": "line", "xref": "x domain", "x0": 0, "x1": 1, "yref": "y", "y0": y, "y1": y,
                             "line": {"dash": "dot", "color": GREY}}]
        layout["annotations"] = [{"text": hline["name"], "showarrow": False, "xref": "x domain", "x": 1,
                                  "xanchor": "right", "yref": "y", "y": y, "yanchor": "top"}]
    if current is not None:
        data.append({"type": "scatter", "x": [current["x"]], "y": [scale * current["y"]], "mode": "markers",
                     "name": current["name"], "hovertemplate": hover(current["name"]),
                     "marker": {"symbol": "star", "size": 16, "color": RED, "line": {"color": "white", "width": 1}}})
    if x_log:
        layout["xaxis"].update(log_ticks([x for s in series for x in s["x"]] + ([current["x"]] if current else []),
                                         x_ticks))
    elif x_ticks is not None:
        layout["xaxis"].update(tickmode="array", tickvals=list(x_ticks), ticktext=[viz.tick_label(t) for t in x_ticks])
    return figure(data, layout)


def bars(names, ys, title, x_title, y_title, text=None, hover=None, reference=None, y_percent=False,
         height=HEIGHT):
    """One bar per name; optional text on the bars, hover text, and a dashed reference line (dict y, name).

    A label sits inside its bar (white), turned or outside it (the theme's colour) where the bar is too small for
    it, never below 10 px: forced inside, Plotly shrank ResNet-8's eleven sparsity labels to specks."""
    scale = 100.0 if y_percent else 1.0
    (x_name, x_unit), (y_name, y_unit) = quantity(x_title), quantity(y_title, y_percent)
    value = f"{y_name}: %{{y:.2f}}{y_unit}"
    data = [{"type": "bar", "x": list(names), "y": [scale * v for v in ys], "text": text, "textposition": "auto",
             "marker": {"color": BLUE}, "insidetextfont": {"color": "white"},
             "customdata": None if hover is None else list(hover),
             "hovertemplate": f"{x_name}: %{{x}}{x_unit}<br>" + ("%{customdata}" if hover else value)
                              + "<extra></extra>",
             "showlegend": False}]
    if reference is not None:  # its label in the legend, clear of the bars' text
        data.append({"type": "scatter", "x": list(names), "y": [scale * reference["y"]] * len(names),
                     "mode": "lines", "name": reference["name"], "line": {"color": RED, "dash": "dash"},
                     "hovertemplate": f"{reference['name']}<br>{value}<extra></extra>"})
    layout = base_layout(title, x_title, y_title, height, uniformtext={"minsize": 10, "mode": "show"})
    if reference is not None:  # above the plot, right of the title: under it, long tilted names ran into it
        layout["legend"] = {"orientation": "h", "x": 1, "xanchor": "right", "y": 1.02, "yanchor": "bottom"}
    if y_percent:
        layout["yaxis"]["range"] = [0, 105]
    return figure(data, layout)


def mask(image, title, block=(1, 1), height=HEIGHT + 40):
    """A kept-weight image: white = kept, black = pruned (grey = the fraction kept of a block).

    One greyscale PNG in an image trace, not a heatmap of its values: Chromium redraws a heatmap's 300 × 262 cells
    on every slider press, 65 ms of a Pruning redraw here (bench/latency.py). Its text for a screen reader (the
    trace's meta, which describe reads) is the one a heatmap of the same percentages gets."""
    fr, fc = block
    image = np.asarray(image, dtype=np.float64)
    data = [{"type": "image", "source": _png(np.rint(255 * image).astype(np.uint8)), "x0": 0, "dx": fc, "y0": 0,
             "dy": fr, "hovertemplate": "outputs %{y}…, inputs %{x}…<extra></extra>",
             "meta": _grid_text(np.rint(100 * image), "kept", " %")}]
    layout = base_layout(title, "input (column of the weight matrix)", "output unit (row)", height)
    layout["yaxis"].update(autorange="reversed", scaleanchor=False)  # fills the plot as the heatmap did, not square
    # a grey frame on the matrix's edge: on the dark theme's page its black (pruned) edge rows merged into the page
    rows, cols = np.shape(image)
    layout["shapes"] = [{"type": "rect", "xref": "x", "yref": "y", "x0": -fc / 2, "x1": (cols - 0.5) * fc,
                         "y0": -fr / 2, "y1": (rows - 0.5) * fr, "line": {"color": GREY, "width": 1}}]
    return figure(data, layout)


def _png(grey):
    """A 2-D uint8 array as a greyscale PNG data URI (0 black, 255 white). zlib level 1: a 300 × 262 mask in 1 ms
    and 15 KB, where the default level 6 takes 3.8 ms for 13 KB, on every slider press."""
    buf = io.BytesIO()
    Image.fromarray(grey, mode="L").save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def class_name(classes, index, sep=" "):
    """Output `index`'s class name in the data's `classes`; for an output the data have no class for (a sample
    model's 10 outputs on data of fewer classes, which fits_logits allows), its number and that (`sep` before it)."""
    return classes[index] if 0 <= index < len(classes) else f"{index}{sep}(not a class of these data)"


def card_data(card, data_name):
    """The data a model card's test accuracy was measured on: a sample model's, named by its card's test_head (the
    data it was trained on), or for uploaded weights, scored on the server's data when uploaded, `data_name`."""
    return (card.get("test_head") or {}).get("data", data_name)


def image_grid(images, captions, colors, cols=6, height=HEIGHT):
    """Small grey images ([0, 1], N×H×W) as one picture, `cols` to a row, each captioned above in its colour.

    One image trace (a PNG) with annotations, not a subplot per image: Home's 12 test images as 12 facets were
    24 axes for Plotly to lay out on the first page a visitor sees."""
    images = np.asarray(images, dtype=np.float32)
    n, h, w = images.shape
    rows, gap, band = -(-n // cols), max(2, w // 7), h // 2  # gap between images, caption band above each row
    sheet = np.ones((rows * (h + band), cols * (w + gap) - gap), np.float32)  # white between the images
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        sheet[r * (h + band) + band:(r + 1) * (h + band), c * (w + gap):c * (w + gap) + w] = img
    fig = px.imshow(sheet, binary_string=True, zmin=0, zmax=1)  # sent as one PNG, not its pixel values
    fig.update_traces(hoverinfo="skip", hovertemplate=None)
    for i, (text, color) in enumerate(zip(captions, colors)):
        r, c = divmod(i, cols)
        fig.add_annotation(x=c * (w + gap) + w / 2, y=r * (h + band) + band - 1, text=text, showarrow=False,
                           yanchor="bottom", font=dict(color=color, size=12))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig.update_layout(height=height, margin=dict(l=0, r=0, t=10, b=0))


def distill_grid(rows, mine=(), measured_on=None):
    """Test errors of each student (x: its size) on the labels alone and distilled at each T: mean over
    seeds, bars from the best to the worst seed; MLPs as lines, the CNN student as diamonds; the teacher's
    errors as a line. `mine`: the user's trained students, as stars. Each T has its own colour and marker shape
    (the MLPs' SYMBOLS but the diamond, the CNN's a diamond of its own kind), so none is told by colour alone.
    `measured_on`: the grid's data, named in the title, the teacher's line and the error axis, when the page's
    data are others (the stars, the user's students on the page's data, then say so in their hover)."""
    on = f" on {measured_on}" if measured_on else ""
    fig = go.Figure()
    teacher_errors = int(rows[0]["teacher_errors"])
    temps = sorted({r["T"] for r in rows}, key=lambda t: (t != "", float(t or 0)))
    colors = {"": ORANGE, **{t: c for t, c in zip([t for t in temps if t], (BLUE, PURPLE, GREEN, RED, GREY))}}
    shapes, diamonds = [s for s in SYMBOLS if s not in ("diamond", "star")], ("diamond", "diamond-open",
                                                                           "diamond-cross", "diamond-x", "diamond-tall")
    shapes, diamonds = ({t: kinds[i % len(kinds)] for i, t in enumerate(temps)} for kinds in (shapes, diamonds))
    for T in temps:
        everyone = sorted((r for r in rows if r["T"] == T), key=lambda r: int(r["bytes"]))
        how = "labels only" if not T else f"KD, T = {T}"
        # the MLPs as one line over their widths; the CNN student (a different kind) as a lone diamond
        for pts, cnn in (([r for r in everyone if not r["student"].startswith("cnn")], False),
                         ([r for r in everyone if r["student"].startswith("cnn")], True)):
            if not pts:
                continue
            mean = [float(r["errors_mean"]) for r in pts]
            fig.add_scatter(
                x=[int(r["bytes"]) / units.KB for r in pts], y=mean, mode="markers" if cnn else "lines+markers",
                name=how + (" (CNN student)" if cnn else ""), legendgroup=how, showlegend=not cnn,
                line=dict(color=colors[T], dash="dash" if not T else "solid"),
                marker=dict(size=12 if cnn else 9, symbol=diamonds[T] if cnn else shapes[T]),
                error_y=dict(type="data", symmetric=False, array=[int(r["errors_max"]) - m for r, m in zip(pts, mean)],
                             arrayminus=[m - int(r["errors_min"]) for r, m in zip(pts, mean)], thickness=1.2),
                text=[r["student"] for r in pts],
                hovertemplate="%{text}, %{x:,.1f} KB: %{y:,.0f} errors<extra>" + how + "</extra>")
    fig.add_hline(y=teacher_errors, line=dict(color=GREY, dash="dot"),
                  annotation_text=f"teacher{on}: {teacher_errors:,} errors", annotation_position="top left")
    per = f" per {bench_results.TEST_IMAGES:,} test images of your data" if on else ""  # the grid's count, scaled
    for m in mine:
        fig.add_scatter(x=[m["bytes"] / units.KB], y=[m["errors"]], mode="markers", name=m["name"],
                        marker=dict(symbol="star", size=17, color=m["color"], line=dict(color="white", width=1)),
                        hovertemplate="%{x:,.1f} KB: %{y:,} errors" + per + "<extra>" + m["name"] + "</extra>")
    log_axis(fig, "x", [int(r["bytes"]) / units.KB for r in rows] + [m["bytes"] / units.KB for m in mine])
    seeds = max(len(r["seeds"].split()) for r in rows)
    # two title lines: in one, the chart's half of a 1,024-px page cut it at "bars: best to wo"
    fig.update_layout(title=f"Measured: every student, with and without KD{on}<br><sup>mean of {seeds} seeds; bars: "
                            "best to worst seed</sup>",
                      xaxis_title="student size (KB of float32 weights, log scale)",
                      yaxis_title=f"test errors{on} (of {bench_results.TEST_IMAGES:,})",
                      height=440, margin=dict(l=10, r=10, t=70, b=10), legend=dict(orientation="h", y=-0.25))
    return fig


def size_accuracy(groups):
    """groups: (name, points, style) with points dicts of label, bytes, accuracy: size vs accuracy, log size axis.
    style: color, symbol, and optionally mode, dash, size, text_at, where the labels go (default above the points:
    "bottom left" keeps one group's labels clear of another's drawn above nearby points), and hover_only (the labels
    in the hover alone: for points that sit on others', named by the group's legend entry). A label near either end
    of the axis reaches inwards, so none is cut at the plot's edge."""
    fig = go.Figure()
    sizes = [p["bytes"] for _, pts, _ in groups for p in pts]
    lo, hi = (np.log10(min(sizes)), np.log10(max(sizes))) if sizes else (0.0, 0.0)

    def text_at(default, size):
        """`default` ("top center", ...) turned inwards at the axis's ends (the outer tenth of its log span); at the
        left end below the point too, clear of the lines that rise from it to the right (the grid students')."""
        where = (np.log10(size) - lo) / (hi - lo) if hi > lo else 0.5
        vertical, horizontal = default.split()
        return "bottom right" if where < 0.1 else f"{vertical} {'left' if where > 0.9 else horizontal}"

    for gname, pts, style in groups:
        if not pts:
            continue
        pts = sorted(pts, key=lambda p: p["bytes"])
        mode = style.get("mode", "markers+text")
        fig.add_scatter(x=[p["bytes"] / units.KB for p in pts], y=[100 * p["accuracy"] for p in pts], name=gname,
                        mode=mode.replace("+text", "") if style.get("hover_only") else mode,
                        text=[p["label"] for p in pts],
                        textposition=[text_at(style.get("text_at", "top center"), p["bytes"]) for p in pts],
                        textfont=dict(size=10), line=dict(color=style["color"], dash=style.get("dash")),
                        marker=dict(size=style.get("size", 11), color=style["color"], symbol=style["symbol"],
                                    line=dict(color="white", width=1)),
                        hovertemplate="%{text}: %{x:,.1f} KB, %{y:.2f} %<extra>" + gname + "</extra>")
    log_axis(fig, "x", [b / units.KB for b in sizes])
    ys = [100 * p["accuracy"] for _, pts, _ in groups for p in pts]
    if ys:  # room above the top point for its label (Plotly's autorange leaves text out)
        span = max(max(ys) - min(ys), 1.0)
        fig.update_yaxes(range=[min(ys) - 0.08 * span, max(ys) + 0.15 * span])
    # the legend (a line an entry, below the plot) grows with the groups: the figure grows with it, the plot keeps
    # its height
    fig.update_layout(title="Size vs accuracy: the teacher, the students and every sample model",
                      xaxis_title="size (KB, log scale)", yaxis_title="test accuracy (%)",
                      height=360 + 22 * len(fig.data), margin=dict(l=10, r=10, t=50, b=10),
                      legend=dict(orientation="h", y=-0.25))
    return fig


TEXT_POINTS = 24  # a series of at most this many points is read out point by point; a longer one by its ranges
UNITS = ("KB", "MB", "bytes", "%", "×", "points", "pts", "s", "ms", "errors")  # what a chart's axis title may measure in


def _plain(text):
    """A Plotly text (title, name, annotation) as read: <br> a space (a subtitle, <br><sup>, a comma), other tags
    dropped, HTML entities read (viz.chart_text escapes names; common.chart escapes the whole text once)."""
    text = re.sub(r"<br\s*/?>\s*<sup>", ", ", str(text or ""))
    return html.unescape(re.sub(r"<[^>]+>", "", re.sub(r"<br\s*/?>", " ", text))).strip()


def _unit(title):
    """The unit an axis title gives its numbers, for a chart's text: quantity()'s, or the first word of its
    parenthesis ("size (KB of float32 weights, log scale)" -> " KB"), or the title itself when it is one ("KB (log
    scale; 1 KB = 1,000 bytes)" -> " KB")."""
    unit = quantity(title)[1]
    if unit:
        return unit
    m = re.fullmatch(r"(.*?)\s*\(([^()]*)\)", title.strip())
    name, note = (m[1], m[2]) if m else (title.strip(), "")
    for word in (name, note.split(" ")[0].rstrip(",;")):
        if word in UNITS:
            return f" {word}"
    return ""


def _is_num(v):
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _num(v, unit=""):
    """A value as a chart's text reads it: a number to 4 significant digits with its unit, anything else as it is."""
    if not _is_num(v):
        return _plain(v)
    if not math.isfinite(v):
        return "no value" if math.isnan(v) else f"{v}"
    return (f"{int(v):,}" if float(v).is_integer() and abs(v) < 1e15 else f"{v:,.4g}") + unit


def _values(seq):
    return [] if seq is None else list(np.asarray(seq, dtype=object).ravel())


def _span(vals, unit=""):
    """ "from <least> to <most>" of numbers (in numpy: a mask's 235,200 cells took 0.2 s one by one), or "from <first>
    to <last>" of names."""
    try:
        nums = np.asarray(vals, dtype=float)
    except (TypeError, ValueError):  # names (categories)
        return f"from {_num(vals[0], unit)} to {_num(vals[-1], unit)}"
    nums = nums[np.isfinite(nums)]
    if not nums.size:
        return f"from {_num(vals[0], unit)} to {_num(vals[-1], unit)}"
    return f"from {_num(float(nums.min()), unit)} to {_num(float(nums.max()), unit)}"


def _trend(ys, unit=""):
    """A long series' values: where they start and end, and their extent ("from 2.146 at the start to 0.1431 at the
    end, lowest 0.1431, highest 2.146"), so a reader hears whether a loss fell."""
    nums = [float(v) for v in ys if _is_num(v) and math.isfinite(v)]
    if not nums:
        return "no values"
    return (f"from {_num(nums[0], unit)} at the start to {_num(nums[-1], unit)} at the end, lowest "
            f"{_num(min(nums), unit)}, highest {_num(max(nums), unit)}")


def _texts(t, n, ys):
    """A trace's per-point labels (its text), when it has one a point, else None; a label that only writes its point's
    value again ("80.9 %" on a bar of 80.95 %) is left out ("")."""
    text = getattr(t, "text", None)
    if text is None or isinstance(text, str):
        return None
    labels = [_plain(x) for x in _values(text)]
    if len(labels) < n or not any(labels):
        return None
    return ["" if _restates(label, y) else label for label, y in zip(labels, ys)]


def _restates(label, y):
    """Whether a label is only the number y, rounded, with a unit ("1,066.4 KB" for 1066.44; "80.9 %" for 80.95)."""
    m = re.fullmatch(r"\s*([-+−]?[\d,]*\.?\d+)\s*(?:%|×|x|KB|MB|bytes|pts|points)?\s*", label)
    if not m or not _is_num(y):
        return False
    value = float(m[1].replace(",", "").replace("−", "-"))
    return abs(value - float(y)) <= 0.01 * abs(float(y)) + 0.051


def _bins(centres, counts, widths, unit=""):
    """histogram()'s bars as read: how many values, over what range, where most are, and an empty stretch around
    zero between two filled bins (the band pruning empties)."""
    lo, hi = centres - widths / 2, centres + widths / 2
    filled = np.flatnonzero(counts > 0)
    if not filled.size:
        return "a histogram with no values"
    text = (f"a histogram of {int(counts.sum()):,} values in {len(counts)} bins from {_num(lo[filled[0]], unit)} to "
            f"{_num(hi[filled[-1]], unit)}, the most ({int(counts.max()):,}) near {_num(centres[counts.argmax()], unit)}")
    gaps = [(hi[a], lo[b]) for a, b in zip(filled[:-1], filled[1:]) if b > a + 1 and hi[a] <= 0 <= lo[b]]
    if gaps:
        text += f", none from {_num(gaps[0][0], unit)} to {_num(gaps[0][1], unit)}"
    return text


def _trace_text(t, x_unit="", y_unit=""):
    """One trace of a figure as a sentence, or "" for one with nothing to read (a legend-only entry): its name and its
    points, each with its label if it has one (or their ranges and trend, for a long series), numbers with the units
    of the axes' titles; vertical lines (vline) as their positions; a value shared by every point once."""
    name = _plain(getattr(t, "name", None))
    head = f"{name}: " if name else ""
    if t.type == "histogram":
        vals = _values(t.x if t.x is not None else t.y)
        return f"{head}a histogram of {len(vals):,} values {_span(vals, x_unit)}" if vals else f"{head}an empty histogram"
    if t.type == "heatmap":
        z = np.asarray(t.z if t.z is not None else [[]], dtype=float)
        if not z.size:
            return f"{head}an empty grid"
        bar = getattr(t, "colorbar", None)  # what the colours measure: its title, its numbers' suffix (" %")
        what = _plain(bar.title.text) if bar is not None and bar.title is not None else ""
        suffix = (bar.ticksuffix or "") if bar is not None else ""
        rows = _values(t.y) or list(range(z.shape[0]))
        cols = _values(t.x) or list(range(z.shape[-1]))
        cells = ""
        if z.size <= TEXT_POINTS * 4 and len(rows) == z.shape[0] and len(cols) == z.shape[-1]:
            cells = "; " + "; ".join(f"{_num(r)}: " + ", ".join(f"{_num(c)} {_num(v)}" for c, v in zip(cols, row))
                                     for r, row in zip(rows, z.tolist()))
        return f"{head}{_grid_text(z, what, suffix)}{cells}"
    if t.type == "image":  # a picture of values (mask) carries their text in its meta
        return head + (t.meta if isinstance(t.meta, str) else "an image")
    xs, ys = _values(getattr(t, "x", None)), _values(getattr(t, "y", None))
    if getattr(t, "orientation", None) == "h":
        xs, ys, x_unit, y_unit = ys, xs, y_unit, x_unit
    if not xs and ys:
        xs = list(range(len(ys)))
    if xs and any(x is None for x in xs) and getattr(t, "yaxis", None) not in (None, "y"):  # vline's lines
        at = list(dict.fromkeys(x for x in xs if x is not None))
        return f"{head}at " + (", ".join(_num(x, x_unit) for x in at) if len(at) <= TEXT_POINTS * 2
                               else f"{len(at):,} values {_span(at, x_unit)}")
    n = min(len(xs), len(ys))
    if not n or all(y is None for y in ys[:n]):
        return ""
    widths = getattr(t, "width", None)
    if t.type == "bar" and widths is not None and not isinstance(widths, (int, float)) and n > TEXT_POINTS:
        return head + _bins(np.asarray(xs[:n], float), np.asarray(ys[:n], float), np.asarray(widths, float), x_unit)
    labels = _texts(t, n, ys[:n])
    if n > 1 and len({y for y in ys[:n] if y is not None}) == 1 and labels is None:  # a reference line
        return f"{head}{_num(ys[0], y_unit)} at every point, {_span(xs[:n], x_unit)}"
    if n <= TEXT_POINTS:
        return head + "; ".join(f"{_num(x, x_unit)}: {_num(y, y_unit)}" + (f" ({labels[i]})" if labels and labels[i]
                                                                           else "")
                                for i, (x, y) in enumerate(zip(xs[:n], ys[:n])) if y is not None)
    return f"{head}{n:,} points, horizontal {_span(xs[:n], x_unit)}, vertical {_trend(ys[:n], y_unit)}"


def _grid_text(z, what="", suffix=""):
    """A grid of values as words: its rows, columns and the range of its finite values (what they measure, in
    brackets, and their unit's suffix, e.g. " %")."""
    fin = z[np.isfinite(z)]
    rng = f", values{f' ({what})' if what else ''} {_span(fin, suffix)}" if fin.size else ""
    return f"a grid of {z.shape[0]} rows by {z.shape[-1]} columns{rng}"


def describe(fig, title=None):
    """The figure as plain text, for a screen reader (common.chart puts it after the chart, visually hidden): its
    title, its axes' titles, every visible trace's points (or their ranges), and its annotations. A chart drawn as
    SVG alone was read as its tick labels run together ("−0.5 0 0.5 1 10 100 1,000"), its lesson lost (WCAG 1.1.1).
    title: what to call a figure without a title of its own (one a heading above names)."""
    lay = fig.layout
    parts = [f"Chart: {_plain(lay.title.text) or title or 'untitled'}."]
    axes = [(what, _plain(getattr(lay, key).title.text)) for what, key in (("horizontal", "xaxis"), ("vertical", "yaxis"))]
    if any(title for _, title in axes):
        parts.append("; ".join(f"{what} axis: {title}" for what, title in axes if title) + ".")
    units = [_unit(title) for _, title in axes]
    parts += [text + "." for t in fig.data if t.visible is not False and (text := _trace_text(t, *units))]
    notes = []
    for a in lay.annotations:
        text = _plain(a.text)
        at = _num(a.y, units[1]) if a.yref == "y" and a.xref != "x" and _is_num(a.y) else ""
        if text:
            notes.append(text + (f" (at {at})" if at and _num(a.y) not in text else ""))
    if notes:
        parts.append("Notes: " + "; ".join(notes) + ".")
    return " ".join(parts)
