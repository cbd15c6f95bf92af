"""Compare: every saved run in a table and on a size-vs-accuracy chart with its Pareto frontier;
pick runs to see them side by side (metrics and per-layer sparsity), download the table, delete runs.

Runs come from the run store (compress_engine.playground.store, SQLite); each technique page saves one with
its "Save run" button, and a sweep (compress_engine.playground.sweeps, the command line's sweep --store) one a point.
"""


import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

import compress_engine as ce
from compress_engine.playground import store as runstore, units, viz
from pages import charts, common

common.through_app()

BENCH = charts.BENCH  # what bench/ measured (its reference points)
# what the chart (and its frontier, and the table's leading columns) measure cost in: {key: (radio label, column)}
COSTS = {"bytes": ("Artifact size", "kb"), "flops": ("FLOPs per image", "mflops")}
# what the chart's y axis measures a run's accuracy by: {key: (radio label, column, axis title)}. Loss against its own
# dense model compares runs of models of different dense accuracy at equal loss (LeNet-5 at 90 % lost 1 point where
# LeNet-300-100 at 89 % lost none)
ACCURACY = {"accuracy": ("Accuracy", "acc_pct", "Test accuracy (%)"),
            "loss": ("Points lost vs dense", "loss_pts", "Accuracy lost vs its dense model (points)")}
FRONTIER_DASHES = ("dash", "longdash", "dashdot", "longdashdot")  # each model's frontier; benchmark lines are dotted
# the runs table's columns (px): Streamlit's "small" is 75, its row ticks 32; 1280 px shows 818 of the table
TABLE_PX, TICKS_PX, SMALL_PX, RUN_PX, RATIO_PX, RECIPE_PX = 818, 32, 75, 56, 60, 90
# why a run has no FLOPs count (compress_engine.core.flops.count_or_none gives None when counting fails)
NO_FLOPS = "saved before FLOPs were counted, or of a model the FLOPs counter cannot run"


def summary(recipe_json):
    """The recipe in a few words; a row damaged by another program says so instead of stopping the page."""
    try:
        return runstore.recipe_summary(recipe_json)
    except ce.CompressError as e:
        return f"unreadable recipe: {str(e)[:120]}"


def fewer_flops(x):
    """A run's FLOPs against the dense model's (viz.flops_ratio) in words, as the side-by-side table and the chart's
    hover say it: "the same" when it rounds to 1.0×, else "2.1× fewer"; "–" without both counts."""
    if x is None or pd.isna(x):
        return "–"
    return "the same" if round(x, 1) == 1 else f"{x:.1f}× fewer"


def add_references(fig, refs, ref_set, name_data=False):
    """The chosen set of benchmark points on `fig`: grey, labelled, one legend entry per series; -> their sizes (KB).
    name_data: their legend and hover name the benchmarks' data (beside runs on other data, as the runs' say theirs)."""
    xs, on = [], f" on {viz.REFERENCE_DATA}" if name_data else ""
    series = viz.reference_series(refs, ref_set) if ref_set != "none" else []
    # the largest points' labels run left, away from the chart's right edge: above the point for the most accurate
    # series, then below, above... (LeNet-300-100's and LeNet-5's "dense float32", 0.2 decades and 2 points apart,
    # were written over each other)
    led = sorted((s for s in series if s["labels"][0]), key=lambda s: -s["accuracy"][0])
    first = {id(s): ("top left", "bottom left")[rank % 2] for rank, s in enumerate(led)}
    for s in series:
        xs += [b / units.KB for b in s["bytes"]]
        fig.add_trace(go.Scatter(
            x=[b / units.KB for b in s["bytes"]], y=[100 * a for a in s["accuracy"]], mode="lines+markers+text",
            name=f"bench: {s['name']}{on}", text=s["labels"], textfont=dict(size=10, color=charts.GREY),
            # sides alternate after the largest point's
            textposition=[first.get(id(s), "top left")]
                         + [("top center", "bottom center")[i % 2] for i in range(1, len(s["labels"]))],
            line=dict(color=charts.GREY, width=1, dash="dot"),
            marker=dict(symbol="x-thin", size=9, line=dict(width=2, color=charts.GREY)), customdata=s["hover"],
            hovertemplate=f"bench, {s['model']}{on}: "
                          + "%{customdata}<br>%{x:.1f} KB, accuracy %{y:.2f} %<extra></extra>"))
    return xs


def reference_choice(refs):
    """The radio choosing which benchmark points to draw -> a viz.REFERENCE_SETS key or "none"."""
    ref_sets = [src for src in viz.REFERENCE_SETS if any(r["source"] == src for r in refs)]
    return st.radio("Benchmark reference points", ["none"] + ref_sets, index=min(1, len(ref_sets)), horizontal=True,
                    format_func=lambda s: viz.REFERENCE_SETS.get(s, "none"), key="compare_refs", bind=common.LINK,
                    help="Measured by bench/deep_compression.py (the paper's three stages, fine-tuned), "
                         "bench/techniques.py (the best recipe of each technique at a size budget) and bench/beyond.py "
                         f"(a size budget fit layer by layer, each sample model ResNet-8 included): {BENCH}")


def layout(fig, xs):
    """The size (or FLOPs) axis on a log scale and the legend under the plot, in rows: beside it, its technique, model
    and bench entries took over half a 1024 px page's width and left the plot a strip with upright ticks."""
    charts.log_axis(fig, "x", xs)
    fig.update_layout(height=620, legend=dict(title=None, orientation="h", x=0, xanchor="left", y=-0.14,
                                              yanchor="top"), margin=dict(t=30))


st.title("Compare runs")
# the sidebar's model picks what the other pages compress; here runs of every model are shown (Models, below)
st.sidebar.caption("Compare shows the saved runs of every model: choose which with **Models** on the page.")
st.caption("Every run saved with a page's **Save run** button or by a sweep (`compression-playground sweep ... "
           "--store`), measured in real artifact bytes on the whole test set of its data.")

try:
    store = runstore.Store()
    runs = store.list()
except ce.CompressError as e:
    st.error(f"Cannot open the run store: {e}")
    st.stop()

READ_ONLY_HELP = "The run store can only be read here: see the note at the top of the page."
if store.read_only:  # the runs are listed; saving, renaming and deleting would fail
    st.info(common.md_text(f"The run store {store.path} can only be read here: its file or folder is not writable by "
                           "the dashboard. Its runs are listed below, but no run can be saved (a page's Save run says so), "
                           "renamed or deleted; make it writable, or set COMPRESS_STORE to another file path, and "
                           "restart the dashboard."))
flash = st.session_state.pop("compare_flash", None)
if flash:
    st.success(flash)
if st.session_state.get("compare_warning"):
    st.warning(st.session_state.pop("compare_warning"))

if not runs:
    st.info("No saved runs yet. Open a technique page (Pruning, Clustering, Quantization, Distillation, Pipeline "
            f"or Export), pick a setting and press **Save run**; it appears here. Runs are kept in `{store.path}`.")
    refs = runstore.reference_points(BENCH)
    if refs:  # what the benchmarks measured, so the chart a saved run lands on is there from the start
        ref_set = reference_choice(refs)
    if refs and ref_set != "none":
        fig = go.Figure()
        fig.update_layout(xaxis_title="Artifact size (KB, log scale)", yaxis_title="Test accuracy (%)")
        layout(fig, add_references(fig, refs, ref_set))
        common.chart(fig, title="What the benchmarks measured")
        st.caption(f"Until a run is saved: what the benchmarks measured, on {viz.REFERENCE_DATA}. Hover a point for "
                   "its recipe.")
    st.stop()

# --- which runs ---------------------------------------------------------------------------------
df = pd.DataFrame(runs)
for col in (*runstore.NUMERIC, *runstore.METRIC_COLUMNS):
    df[col] = pd.to_numeric(df[col], errors="coerce")  # optional metrics may be missing (None -> NaN)
df["created"] = df["created"].str.slice(0, 16).str.replace("T", " ")
df["summary"] = df["recipe"].map(summary)
in_sweep = df["sweep"].notna() if "sweep" in df else pd.Series(False, index=df.index)  # points of a sweep
df.loc[in_sweep, "summary"] = [runstore.sweep_summary(r, g, f) for r, g, f in zip(df.loc[in_sweep, "recipe"],
                                                                          df.loc[in_sweep, "sweep"],
                                                                          df.loc[in_sweep, "sweep_field"])]
df["name"] = df["name"].fillna("")  # no "None" cells for runs without a name
df["label"] = [n or f"#{i} {t}" for n, i, t in zip(df["name"], df["id"], df["technique"])]
# the chart's colour: every Fit is one technique, whatever its budget; a named Fit's hover still names its budget
df["group"] = df["technique"].map(charts.technique_group)
df["hover"] = [lab if g == t or t in lab else f"{lab} ({t})"
               for lab, g, t in zip(df["label"], df["group"], df["technique"])]
# what the chart shows of user text (names, techniques, models, an upload's layer names in a recipe), escaped: Plotly
# renders HTML in hovers and legends, and the run store is shared by every session (viz.chart_text)
for col in ("hover", "group"):
    df[col] = df[col].map(viz.chart_text)
df["summary_text"] = df["summary"].map(viz.chart_text)
# the data each run was measured on (a run saved before the store kept it was on the default data): runs of one model
# on two datasets are two series, each with its own frontier, and the table, hover and legend say which data
df["data"] = (df["data"] if "data" in df else pd.Series(None, index=df.index, dtype=object)).fillna(
    common.DEFAULT_DATASET)
many_data = df["data"].nunique() > 1
df["series"] = df["model"] + (" on " + df["data"] if many_data else "")
df["series_text"], df["data_text"] = df["series"].map(viz.chart_text), df["data"].map(viz.chart_text)
df["kb"] = df["artifact_bytes"] / units.KB
df["acc_pct"] = 100 * df["accuracy"]
df["loss_pts"] = pd.to_numeric(pd.Series([viz.points_lost(a, d) for a, d in zip(df["accuracy"], df["dense_accuracy"])],
                                         index=df.index, dtype=object))  # None (no dense accuracy) -> NaN
df["delta_pts"] = -df["loss_pts"]
df["agree_pct"] = 100 * df["agreement"]
# zeros among the run's own parameters: the engine's sparsity counts against the dense model, so the units structured
# pruning removed, or a student's missing layers, read as zeros ("64.0 %" for a run whose every weight is non-zero)
df["sparsity_pct"] = 100 * pd.to_numeric(pd.Series([viz.zero_share(z, p) for z, p in zip(df["nonzero_params"],
                                                                                         df["params"])],
                                                    index=df.index, dtype=object))  # None (no counts) -> NaN
df["mflops"] = df["flops"] / 1e6
df["flops_x"] = pd.to_numeric(pd.Series([viz.flops_ratio(f, d) for f, d in zip(df["flops"], df["dense_flops"])],
                                         index=df.index, dtype=object))  # None (no counts) -> NaN
df["flops_words"] = df["flops_x"].map(fewer_flops)

controls, explain = st.columns([2, 3], gap="large")
with controls:
    models = sorted(df["model"].unique())
    # a model whose first run was saved since this page last drew (another tab, another page) is shown too; one whose
    # runs are all gone leaves the choice
    known = st.session_state.get("compare_known_models")
    if known is not None and "compare_models" in st.session_state:
        kept = [m for m in st.session_state["compare_models"] if m in models]
        st.session_state["compare_models"] = kept + [m for m in models if m not in known and m not in kept]
    st.session_state["compare_known_models"] = models
    chosen = st.multiselect("Models", models, key=common.setting("compare_models", models), default=models,
                            bind=common.LINK,
                            help="Runs of these models (sample models and your uploads) are shown in the chart and "
                                 "the table. Each model has its own frontier: its runs are compared with each "
                                 "other, not with another model's.")
    cost = st.radio("Cost", list(COSTS), format_func=lambda c: COSTS[c][0], horizontal=True, key="compare_cost",
                    persist_state="session", bind=common.LINK,
                    help="What a run costs on the chart and its frontier: the artifact's bytes (what pruning, "
                         "clustering and quantization shrink), or the forward FLOPs of one image (what only removing "
                         "whole units, structured pruning or a smaller student, cuts: zeros still get multiplied)")
    y_key = st.radio("Accuracy as", list(ACCURACY), format_func=lambda c: ACCURACY[c][0], horizontal=True,
                     key="compare_accuracy", persist_state="session", bind=common.LINK,
                     help="The chart's height: test accuracy, or the points of accuracy a run lost against its own "
                          "dense model (lower is better, drawn upwards), to compare models of different dense "
                          "accuracy at equal loss")
    max_loss = st.number_input("Lost at most (points)", min_value=0.0, max_value=100.0, value=None, step=0.5,
                               format="%.1f", key="compare_max_loss", placeholder="any loss",
                               bind=common.LINK,
                               help="Show only the runs that lost at most this many points of accuracy against "
                                    "their dense model (empty: all runs)")
    if cost == "bytes" and y_key == "accuracy":
        # the benchmarks measured the sample models on their data: drawn only beside runs on that data
        on_bench = set(df.loc[df["model"].isin(chosen or models) & (df["data"] == viz.REFERENCE_DATA), "model"])
        refs = [r for r in runstore.reference_points(BENCH) if r["model"] in on_bench]
        ref_set = reference_choice(refs)
    else:  # the benchmarks' points have sizes and accuracies, not FLOPs or losses
        refs, ref_set = [], "none"
with explain:
    st.markdown("A run **dominates** another if it costs no more *and* is no less accurate (and better in one). "
                "The runs no other run of the same model on the same data dominates form its **Pareto frontier** "
                "(the dashed staircase): for each cost it is the best accuracy seen so far. A point below the line is "
                "beaten by one on it.")

shown = df[df["model"].isin(chosen)]
if max_loss is not None:
    shown = shown[shown["loss_pts"] <= max_loss + 1e-9]  # a run without its dense accuracy has no loss: left out
shown = shown.reset_index(drop=True)
if shown.empty:
    st.info("No saved runs of the chosen models" + ("" if max_loss is None else f" lost at most {max_loss:g} points")
            + ": pick one or more models above" + ("" if max_loss is None else " or allow a larger loss") + ".")
    st.stop()
x_col, y_col = COSTS[cost][1], ACCURACY[y_key][1]
merit = shown["accuracy"] if y_key == "accuracy" else -shown["loss_pts"]  # higher is better
fronts = runstore.pareto_fronts(zip(shown[x_col], merit), shown["series"])  # runs without the cost (or loss): none
shown["pareto"] = shown.index.isin([i for f in fronts.values() for i in f])

# --- table (select rows here) -------------------------------------------------------------------
st.header(f"{len(shown)} saved run{'s' * (len(shown) != 1)}")
# Ticks are kept as run ids, not row positions. Another tab's save or delete, or a change of the models shown, moves
# the rows: a tick on #12 moved to the new #13, and "Delete selected" offered to delete #13. The table is a new widget
# whenever its runs change, with the runs still ticked ticked again; and whenever runs are picked in "Selected runs"
# below it (the keyboard's way: a table's rows are ticked by mouse only), which bumps compare_table_version.
ids = [int(i) for i in shown["id"]]
ticked = set(st.session_state.get("compare_ticked", ()))
table_key = ("runs_table_" + common.short_hash(",".join(map(str, ids)).encode())
             + f"_{st.session_state.get('compare_table_version', 0)}")
again = [row for row, run in enumerate(ids) if run in ticked]
model_px = min(130, 24 + 8 * int(shown["model"].str.len().max()))
technique_px = min(150, 24 + 7 * int(shown["technique"].str.len().max()))
named = (shown["name"] != "").any()
room = TABLE_PX - TICKS_PX - RUN_PX - model_px - 4 * SMALL_PX - RATIO_PX - technique_px  # left for name and recipe
# a name as wide as the longest (Streamlit's "small" cut "100-100 student") up to 150 px, within 1280 px: the name
# the visitor gave a run tells it apart before its recipe does, which is last, cut by a narrow page, and whole below
name_px = max(SMALL_PX, min(24 + 7 * int(shown["name"].str.len().max()), 150, room)) if named else 0
event = st.dataframe(
    shown, hide_index=True, key=table_key, on_select="rerun", selection_mode="multi-row",
    selection_default={"selection": {"rows": again}} if again else None,
    # a projector's 1024 px shows about 560 px of table, 1280 px about 820 (TABLE_PX): the numbers lead (accuracy
    # first, then the cost), then what tells runs apart, the technique (the chart's colours) and the recipe, last, in
    # what 1280 px leaves (a sweep point's starts with its swept value; it is in full side by side below). The rest
    # (zeros, agreement, non-zero parameters, saved) are side by side below and in the CSV (the Name column only once
    # a run has a name; the Model and Technique columns as wide as their longest)
    column_order=["id", *(["name"] if named else []), "model",
                  *(["data"] if many_data else []), "acc_pct", "delta_pts",
                  *(("kb", "ratio") if cost == "bytes" else ("mflops", "flops_x")), "pareto", "technique", "summary"],
    column_config={
        "id": st.column_config.NumberColumn("Run", format="#%d", width=RUN_PX),
        "name": st.column_config.TextColumn("Name", width=name_px,
                                            help="Tick one run to name it below the chart"),
        "model": st.column_config.TextColumn("Model", width=model_px),
        "data": st.column_config.TextColumn("Data", width="small", help="The data the run was measured on"),
        "technique": st.column_config.TextColumn("Technique", width=technique_px),
        "summary": st.column_config.TextColumn("Recipe", width=max(RECIPE_PX, room - name_px)),
        "kb": st.column_config.NumberColumn("Size", format="%.1f KB", help=units.CONVENTION, width="small"),
        "ratio": st.column_config.NumberColumn("Ratio", format="%.1f×", width=RATIO_PX),
        "mflops": st.column_config.NumberColumn("MFLOPs", format="%.3f", width="small",
                                                help="Forward FLOPs of one image, in millions (a multiply-add counts "
                                                     "2); empty where none was counted: "
                                                     f"{NO_FLOPS}"),
        "flops_x": st.column_config.NumberColumn("Fewer", format="%.1f×", width=RATIO_PX,
                                                 help="The dense model's FLOPs / this run's"),
        "acc_pct": st.column_config.NumberColumn("Accuracy", format="%.2f %%", width="small"),
        "delta_pts": st.column_config.NumberColumn("vs dense", format="%+.2f pts", width="small"),
        "sparsity_pct": st.column_config.NumberColumn("Zeros", format="%.1f %%", width="small",
                                                      help="Share of its own parameters that are exactly zero (a "
                                                           "structured-pruned run or a student has fewer instead)"),
        "pareto": st.column_config.CheckboxColumn("Frontier", help="On its model's Pareto frontier: no run of "
                                                                  "that model on the same data costs less and is "
                                                                  "more accurate",
                                                  width="small"),
    },
)
rows = sorted(event.selection.rows) if event is not None else []
selected = [ids[i] for i in rows if i < len(ids)]
st.session_state["compare_ticked"] = sorted(ticked - set(ids) | set(selected))  # runs of models hidden stay ticked


def picked():
    """"Selected runs" changed: its runs are the ticked ones of those shown, and the table is drawn anew with them
    ticked (a table keeps its own ticks otherwise)."""
    shown_ids = set(st.session_state.get("compare_shown_ids", ()))
    st.session_state["compare_ticked"] = sorted(set(st.session_state.get("compare_ticked", ())) - shown_ids
                                                | set(st.session_state.get("compare_pick", ())))
    st.session_state["compare_table_version"] = st.session_state.get("compare_table_version", 0) + 1


names = {i: f"#{i} {n or t} · {m}" for i, n, t, m in zip(ids, shown["name"], shown["technique"], shown["model"])}
st.session_state["compare_shown_ids"] = ids
st.session_state["compare_pick"] = selected  # the table's ticks (a widget's state may be set before it is drawn)
# typed text matches as a substring, and the list offers no "Select N matches": fuzzy matching found "#1" in every run
# whose label had a "#" and a "1" after it, and Enter took that offer at the list's top, selecting (for Delete) them all
st.multiselect("Selected runs", ids, key="compare_pick", on_change=picked, placeholder="Type a run's number or name",
               format_func=names.get, filter_mode="contains", select_all=False,
               help="The runs ticked in the table, and a way to pick them by keyboard: Tab here, type, Enter")
st.caption("Tick rows (left edge of the table) or pick runs in **Selected runs** to compare them side by side "
           "below" + (" or download them." if store.read_only else ", download or delete them; select one to name it."))

# --- Pareto chart -------------------------------------------------------------------------------
# a run without a FLOPs count has no place on the FLOPs chart, one without its dense accuracy none on the loss chart
plotted = shown[shown[x_col].notna() & shown[y_col].notna()]
NO_LOSS = "saved without its dense model's accuracy"
if plotted.empty:
    st.info(f"None of these runs has its FLOPs counted ({NO_FLOPS}). Choose **Artifact size** above to chart them."
            if shown[x_col].isna().all() else f"None of these runs has a loss ({NO_LOSS}). Choose **Accuracy** "
                                               "above to chart them.")
else:
    per_run = ("%{x:.1f} KB, %{customdata[2]:.1f}×" if cost == "bytes" else
               "%{x:.3f} MFLOPs, vs dense: %{customdata[3]}")
    def in_order_saved(column, styles):
        """{value of `column`: a style} in the order its values were first saved, over every run (not only those
        shown): a technique keeps its colour and a model its shape as runs come and go (the legend's alphabetical
        order gave "quantize" another colour once "prune+cluster+huffman" was saved)."""
        first = df.groupby(column)["id"].min().sort_values().index
        return {v: styles[i % len(styles)] for i, v in enumerate(first)}

    # one colour a technique, however many there are (cycling PALETTE's 9 gave a 10th the first one's blue)
    colours = in_order_saved("group", charts.colours(df["group"].nunique()))
    # a shape a model; with one model shown, a shape a technique: its colour was then all that told techniques apart,
    # and red against green is one colour to many colour-blind users (WCAG 1.4.1)
    shape_by = "series_text" if plotted["series"].nunique() > 1 else "group"
    fig = px.scatter(plotted, x=x_col, y=y_col, color="group", symbol=shape_by,
                     symbol_map=in_order_saved(shape_by, charts.SYMBOLS),
                     custom_data=["hover", "summary_text", "ratio", "flops_words", "acc_pct", "data_text"],
                     color_discrete_map=colours,
                     category_orders={"group": sorted(plotted["group"].unique())},
                     labels={"kb": "Artifact size (KB, log scale)", "mflops": "Forward MFLOPs per image (log scale)",
                             "acc_pct": ACCURACY["accuracy"][2], "loss_pts": ACCURACY["loss"][2],
                             "group": "Technique", "series_text": "Model"})
    fig.update_traces(marker=dict(size=11, line=dict(width=1, color="white")),
                      hovertemplate="%{customdata[0]}<br>%{customdata[1]}<br>" + per_run
                                    + "<br>accuracy %{customdata[4]:.2f} %"
                                    + ("" if y_key == "accuracy" else ", %{y:.2f} points lost")
                                    + ("<br>on %{customdata[5]}" if many_data else "") + "<extra></extra>")
    in_colour = {}  # sweeps drawn so far in each colour: a grid's settings share a technique, so a dash each,
    # given in the order the sweeps were saved (the first solid), as the legend lists them
    swept = plotted[plotted["sweep"].notna()].groupby("sweep") if "sweep" in plotted else []
    for name, pts in sorted(swept, key=lambda group: group[1]["id"].min()):
        pts = pts.sort_values(x_col)  # a sweep is one group: its points joined in cost order, one legend entry
        # in its points' technique colour (the most of them: a sparsity sweep from 0 starts with unpruned ones)
        colour = colours[pts["group"].mode()[0]]
        n = in_colour[colour] = in_colour.get(colour, -1) + 1
        fig.add_trace(go.Scatter(x=pts[x_col], y=pts[y_col], mode="lines", name=viz.chart_text(name),
                                 hoverinfo="skip", line=dict(width=2, color=colour,
                                                             dash=charts.DASHES[n % len(charts.DASHES)])))
    for n, (model, front) in enumerate(fronts.items()):  # dashed (the benchmarks' lines are dotted), a dash a model
        line = shown.loc[front]
        fig.add_trace(go.Scatter(x=line[x_col], y=line[y_col], mode="lines", line_shape="hv",
                                 name="Pareto frontier" + (f": {viz.chart_text(model)}" if len(fronts) > 1 else ""),
                                 line=dict(color=charts.GREY, dash=FRONTIER_DASHES[n % len(FRONTIER_DASHES)],
                                           width=2), hoverinfo="skip"))
    if selected:
        sel = plotted[plotted["id"].isin(selected)]
        fig.add_trace(go.Scatter(x=sel[x_col], y=sel[y_col], mode="markers", name="selected", hoverinfo="skip",
                                 marker=dict(size=20, color="rgba(0,0,0,0)", line=dict(width=2, color="crimson"))))
    ref_x = add_references(fig, refs, ref_set, name_data=many_data)
    layout(fig, list(plotted[x_col]) + ref_x)
    if y_key == "loss":  # less lost is better: up, as on the accuracy chart
        fig.update_yaxes(autorange="reversed")
    common.chart(fig, title="The saved runs")
    for missing, why in ((shown[x_col].isna(), f"no FLOPs count ({NO_FLOPS})"),
                         (shown[x_col].notna() & shown[y_col].isna(), f"no loss ({NO_LOSS})")):
        if n := int(missing.sum()):
            st.caption(f"{n} of these runs {'have' if n != 1 else 'has'} {why}: "
                       f"{'they are' if n != 1 else 'it is'} not on this chart.")

# a sweep's points that failed (the run store's sweep_failures) are on no chart: say so, with the first error
try:
    failing = [s for s in store.sweeps() if s["failed"] and s["model"] in chosen]
    for s in failing:
        first = store.sweep_failures(s["id"])[:1]
        why = f": {first[0]['error'].splitlines()[0][:160]}" if first and first[0]["error"].strip() else ""
        st.caption(f"{common.md_text(s['label'])}: {s['failed']} of {s['runs'] + s['failed']} points failed"
                   f"{common.md_text(why)} (not on the chart; the sweep retries them when run again).")
except ce.CompressError as e:
    st.caption(f"Could not read the sweeps' failed points: {common.md_text(e)}")

# --- actions on the whole table / the selection -----------------------------------------------
def rename(run_id):
    """The Rename button's callback: name run #run_id as typed, and say what happened at the top of the page."""
    new_name = st.session_state.get(f"rename_to_{run_id}") or ""
    try:
        renamed = store.rename(run_id, new_name)
    except ce.CompressError as e:
        st.session_state["compare_warning"] = f"Could not rename run #{run_id}: {e}"
        return
    if not renamed:  # deleted meanwhile (another tab, another program)
        st.session_state["compare_warning"] = f"Run #{run_id} was not renamed: it is no longer stored (deleted in " \
                                              "another tab?)."
    else:
        named = common.md_text(new_name.strip())  # st.success renders Markdown: the name stays as typed
        st.session_state["compare_flash"] = (f"Run #{run_id} is now called “{named}”." if new_name.strip()
                                             else f"Run #{run_id} has no name now.")


# the store's columns (a run's name after its id; its sweep's label, not the sweep's row id), then the frontier
csv = shown[["id", "name", *(c for c in runstore.COLUMNS if c not in ("id", "name", "sweep_id")), "sweep",
             *runstore.METRIC_COLUMNS, "pareto"]].to_csv(index=False)
# the two buttons side by side in half the width, or one under the other where it is narrower (1,024 px: side by
# side in [1, 1, 2] columns each was cut by a few pixels)
buttons, c = st.columns([2, 2], vertical_alignment="bottom")
row = buttons.container(horizontal=True)
row.download_button("Download CSV", csv, file_name="compression-runs.csv", mime="text/csv", icon=":material/download:",
                    on_click="ignore", help="The runs shown above, one row each, with the full recipe JSON")
if row.button(f"Delete selected ({len(selected)})", disabled=not selected or store.read_only, icon=":material/delete:",
              help=READ_ONLY_HELP if store.read_only else None):
    st.session_state["pending_delete"] = selected
if len(selected) == 1 and not store.read_only:  # name (or rename) the one ticked run
    run_id = selected[0]
    current = shown.loc[shown["id"] == run_id, "name"].iloc[0]
    with c.form(f"rename_{run_id}", border=False, enter_to_submit=True):
        left, right = st.columns([3, 1], vertical_alignment="bottom")
        left.text_input(f"Name of run #{run_id}", value=current if isinstance(current, str) else "",
                        max_chars=runstore.MAX_NAME, placeholder="e.g. Deep Compression demo", key=f"rename_to_{run_id}")
        # a callback: it runs even when the rerun no longer draws this form (the run deleted in another tab)
        right.form_submit_button("Rename", icon=":material/edit:", on_click=rename, args=(run_id,))
pending = st.session_state.get("pending_delete")
if pending:
    st.warning(f"Delete run{'s' * (len(pending) > 1)} {', '.join(f'#{i}' for i in pending)}? This cannot be undone.")
    yes, no, _ = st.columns([1, 1, 3])
    if yes.button("Yes, delete", type="primary"):
        try:
            n = store.delete(pending)
        except ce.CompressError as e:  # said after the rerun below (an error drawn here would vanish with it)
            st.session_state["compare_warning"] = common.md_text(f"Could not delete: {e}")
        else:
            st.session_state["compare_flash"] = f"Deleted {n} run{'s' * (n != 1)}."
        st.session_state.pop("pending_delete", None)
        st.rerun()
    if no.button("Cancel"):
        st.session_state.pop("pending_delete", None)
        st.rerun()

# --- side by side -------------------------------------------------------------------------------
st.header("Side by side")
if not selected:
    st.info("Select runs in the table (or by number or name in **Selected runs** under it) to compare their metrics "
            "and per-layer sparsity here.")
    st.stop()

try:
    full = [r for r in (store.get(i) for i in selected) if r is not None]
except ce.CompressError as e:  # e.g. a row whose metrics another program damaged: it can still be deleted
    st.error(common.md_text(f"Cannot show the selected runs side by side: {e}"))
    st.stop()
label = {r["id"]: f"#{r['id']} {r.get('name') or r['technique']}" for r in full}  # plain text: charts, dataframes
LEGEND_CHARS = 32  # a run's name in the chart's legend: longer ones squeezed the plot to 60 px (200 are allowed)


def is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def share(x):  # values another program wrote may be missing or text: shown as "–", not a crash
    return show(x, lambda f: units.pct(f, digits=2))


def show(x, fmt):
    return fmt(x) if is_number(x) else "–"


metrics_rows = {}
for r in full:
    m = r["metrics"]
    parts = m.get("bytes_breakdown")
    parts = {k: v for k, v in parts.items() if is_number(v)} if isinstance(parts, dict) else {}
    metrics_rows[common.md_text(label[r["id"]])] = {  # st.table renders its headers and cells as Markdown
        "Model": common.md_text(r["model"]), **({"Data": common.md_text(r.get("data") or common.DEFAULT_DATASET)}
                                                if many_data else {}),
        "Technique": common.md_text(r["technique"]),
        "Recipe": common.md_text(summary(r["recipe"])),
        "Artifact size": show(r["artifact_bytes"], common.kb), "Compression ratio": show(r["ratio"], common.ratio),
        "Test accuracy": share(r["accuracy"]), "Dense accuracy": share(r["dense_accuracy"]),
        "Agreement with dense": share(r["agreement"]),
        "Parameters": show(r["params"], "{:,}".format), "Non-zero parameters": show(r["nonzero_params"], "{:,}".format),
        "Zero weights": share(viz.zero_share(r["nonzero_params"], r["params"])),
        "Forward FLOPs per image": show(r["flops"], lambda f: f"{f / 1e6:,.3f} M"),
        "FLOPs vs dense": show(viz.flops_ratio(r["flops"], r["dense_flops"]), fewer_flops),
        **{f"Bytes: {k}": common.kb(v) for k, v in parts.items()},
        "Saved (UTC)": r["created"][:16].replace("T", " "),
    }
st.table(pd.DataFrame(metrics_rows))

layers = pd.DataFrame({label[r["id"]]: {row["name"]: row["sparsity"] for row in viz.layer_sparsity(r["metrics"])}
                       for r in full})
if not layers.empty:
    st.markdown("**Zero weights per layer**, of each layer's own weights (a structured-pruned layer has fewer "
                "instead, a student other layers: see Parameters above)")
    long = (100 * layers).reset_index(names="layer").melt(id_vars="layer", var_name="run", value_name="zero_pct")
    long["full"] = long["run"].map(viz.chart_text)  # the hover names the run in full
    long["run"] = [viz.chart_text(n if len(n) <= LEGEND_CHARS else n[:LEGEND_CHARS - 1] + "…") for n in long["run"]]
    long["layer"] = long["layer"].map(viz.chart_text)  # an upload's own layer names
    bars = px.bar(long.dropna(), x="layer", y="zero_pct", color="run", barmode="group",
                  color_discrete_sequence=charts.colours(len(layers.columns)),  # one colour a run, however many
                  custom_data=["full"], labels={"layer": "Layer", "zero_pct": "Zero weights (%)", "run": "Run"})
    # the table beside it rounds to 0.1 %, and so does the hover (plotly express's showed "zero_pct=79.86111")
    bars.update_traces(hovertemplate="Run %{customdata[0]}<br>Layer %{x}<br>%{y:.1f} % zero weights<extra></extra>")
    bars.update_layout(height=360, yaxis_range=[0, 100], margin=dict(t=20))
    left, right = st.columns([3, 2])
    common.chart(bars, left)
    short = {c: c.split()[0] for c in layers.columns}  # "#4": the chart's legend names the run in full
    right.dataframe((100 * layers).rename(columns=short).map(lambda v: "—" if pd.isna(v) else f"{v:.1f} %"),
                    width="stretch")  # "—": a layer this run does not have (not "None")

cols = st.columns(min(4, len(full)))
for i, r in enumerate(full):
    if r["artifact"] is not None:
        cols[i % len(cols)].download_button(f"Artifact {common.md_text(label[r['id']])} (.cpg)", r["artifact"],
                                            on_click="ignore",
                                            file_name=f"{r['model']}-run{r['id']}.cpg", mime="application/octet-stream",
                                            key=f"dl_artifact_{r['id']}")
