"""Sensitivity: compress one layer at a time and see which layers are fragile and where the cheap bytes are."""

import math

import plotly.graph_objects as go
import streamlit as st

import compress_engine as ce
from compress_engine.playground import cards, units, viz, zoo
from compress_engine.playground.explain import code_bits, stored_as
from pages import charts, common

common.through_app()

KB = units.KB  # every size on the page: 1 KB = 1,000 bytes, as on every other page
TOLERANCE = 0.005  # accuracy a layer may lose alone and still count as "cheap"
ASK_SECONDS = 20.0  # a scan expected to take longer starts on a button press (an uploaded ResNet-8: ~23 min)
GRID_SIZE = len(ce.sensitivity.SPARSITIES) * len(ce.sensitivity.CLUSTERS)  # settings per layer
FOCUS = zoo.BUDGET_FOCUS  # Recipe.prune_focus of a budget run when its box is ticked (bench/beyond.py, LeNet-5)
KD = ce.budget.KD  # a budget run fine-tunes on the dense model's soft targets at this temperature (fit_budget's kd)


def bits(k):
    """Bits a weight of k shared values takes (explain.code_bits), 32 for float32 (k None)."""
    return 32 if k is None else code_bits(k)


LEGEND_WIDTH = 430  # px a legend has in half the page's width; an entry takes about 40 + 7 px a character


def layout(fig, title, x_title, y_title, height=360, legend_rows=1):
    """Titles and size; the legend hangs under the x axis's title in a bottom margin that grows by each legend row
    beyond the first, so the plot keeps its height (ResNet-8's ten layers take five rows: at a fixed height they
    were drawn over the axis), and a top margin that grows by each title line after the first (<br>)."""
    extra = 22 * max(0, legend_rows - 1)
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, height=height + extra,
                      margin=dict(l=10, r=10, t=50 + 20 * title.count("<br>"), b=10 + extra),
                      legend=dict(orientation="h", yanchor="top", y=-0.25, x=0))
    return fig


def loss_lines(scan, axis):
    """Accuracy lost (points) by each layer alone, along sparsity (float32 values) or bits (no pruning)."""
    base = scan["dense_accuracy"]
    fig = go.Figure()
    colours = charts.colours(len(scan["layers"]))  # one a layer: ResNet-8 has ten
    for i, layer in enumerate(scan["layers"]):
        if axis == "sparsity":
            rows = ce.sensitivity.curve(scan, layer["name"], clusters=None)
            xs = [100 * r["sparsity"] for r in rows]
        else:
            rows = sorted(ce.sensitivity.curve(scan, layer["name"], sparsity=0.0), key=lambda r: bits(r["clusters"]))
            rows = [r for r in rows if r["clusters"] is not None]
            xs = [bits(r["clusters"]) for r in rows]
        fig.add_scatter(x=xs, y=[100 * (base - r["accuracy"]) for r in rows], mode="lines+markers",
                        name=f"{layer['name']} ({layer['params']:,})",
                        # a shape and a dash a layer too: ten colours alone were hard to tell apart
                        line=dict(color=colours[i], dash=charts.DASHES[i % len(charts.DASHES)]),
                        marker=dict(symbol=charts.SYMBOLS[i % len(charts.SYMBOLS)], size=7),
                        customdata=[r["bytes"] / KB for r in rows],
                        hovertemplate=(f"{layer['name']}<br>" + ("%{x:g} % pruned" if axis == "sparsity"
                                                                            else "%{x} bits")
                                       + ": %{y:.2f} pts lost, layer %{customdata:.1f} KB<extra></extra>"))
    fig.add_hline(y=100 * TOLERANCE, line_dash="dot", line_color=charts.GREY,
                  annotation_text=f"{100 * TOLERANCE:.1f} pts", annotation_position="top left")
    # as many legend entries to a row of half the page as their names allow: ResNet-8's long ones take a row each
    longest = max(len(f"{la['name']} ({la['params']:,})") for la in scan["layers"])
    legend_rows = math.ceil(len(scan["layers"]) / max(1, LEGEND_WIDTH // (40 + 7 * longest)))
    if axis == "sparsity":
        layout(fig, "Pruning one layer alone (one-shot)", "sparsity of that layer (%)",
               "accuracy lost (points)", legend_rows=legend_rows)
    else:
        layout(fig, "Sharing one layer's weights (k clusters)", "bits per kept weight (log₂ k)",
               "accuracy lost (points)", legend_rows=legend_rows)
        fig.update_xaxes(autorange="reversed", dtick=1)
    fig.update_yaxes(rangemode="tozero")
    return fig


def bytes_bars(summary):
    names = [r["layer"] for r in summary]
    fig = go.Figure()
    fig.add_bar(y=names, x=[r["dense_bytes"] / KB for r in summary], orientation="h", name="unchanged",
                marker_color=charts.GREY, opacity=0.45, hovertemplate="%{y}: %{x:.1f} KB unchanged<extra></extra>")
    fig.add_bar(y=names, x=[r["cheapest_bytes"] / KB for r in summary], orientation="h",
                name=f"smallest within {100 * TOLERANCE:.1f} pts (one-shot)", marker_color=charts.BLUE,
                text=[f"{r['dense_bytes'] / max(r['cheapest_bytes'], 1):.0f}×" for r in summary],
                textposition="outside", hovertemplate="%{y}: %{x:.1f} KB<extra></extra>")
    fig.update_layout(barmode="overlay")
    charts.log_axis(fig, "x", [r[k] / KB for r in summary for k in ("dense_bytes", "cheapest_bytes")])
    fig.update_yaxes(autorange="reversed")
    return layout(fig, "Each layer's bytes, and its smallest alone",
                  f"KB (log scale; {units.CONVENTION})", "")


def grid_heatmap(scan, layer):
    base = scan["dense_accuracy"]
    rows = ce.sensitivity.curve(scan, layer)
    ks = scan["clusters"]
    ss = scan["sparsities"]
    z = [[None] * len(ss) for _ in ks]
    text = [[""] * len(ss) for _ in ks]
    kb = [[None] * len(ss) for _ in ks]
    for r in rows:
        i, j = ks.index(r["clusters"]), ss.index(r["sparsity"])
        z[i][j] = 100 * (base - r["accuracy"])
        text[i][j] = f"{round(z[i][j], 1) + 0.0:.1f}"  # the colour's quantity, so a red cell never reads "0.0"
        kb[i][j] = r["bytes"] / KB
    fig = go.Figure(go.Heatmap(z=z, x=[f"{100 * s:g} %" for s in ss], y=[f"{bits(k)} bit" if k else "float32" for k in ks],
                               text=text, texttemplate="%{text}", colorscale="RdYlGn_r", zmin=0, zmax=5,
                               customdata=kb, colorbar=dict(title="points<br>lost"),
                               hovertemplate="%{x}, %{y}: %{z:.2f} pts lost, the layer %{customdata:.3g} KB"
                                             "<extra></extra>"))
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category")
    return layout(fig, f"{layer} alone: points lost<br><sup>colour and number; its KB in the hover</sup>", "sparsity",
                  "weights stored as", height=330)


st.title("Sensitivity")
explain, note = st.columns([1.3, 1], gap="large")
with explain:
    st.markdown(
        "**Layers are not equal.** Compress one layer at a time, the others left dense, and measure what the "
        "model loses: a layer whose curve climbs early is **fragile** (prune it gently, give it more bits); a "
        "layer that stays flat is where the **cheap bytes** are. Big layers that stay flat are the prize. "
        "Han et al. (2015) found this by hand; mixed-precision tools (Distiller, NNI, AIMET) automate it. "
        "Below the scan is what *Fit in N KB* (the size-budget engine) starts from.")
SCANNED = min(ce.sensitivity.SUBSET, common.test_count())  # the scan's images: a fixed set, or all there are
SCANNED_TEXT = (f"a fixed set of {SCANNED:,} of the {common.test_count():,}" if SCANNED < common.test_count()
                else f"all {SCANNED:,}") + f" test images of {common.md_text(common.data_text())}"
with note:
    st.caption(f"One-shot (no fine-tuning), on {SCANNED_TEXT}. Sparsity: "
               "magnitude pruning of that layer; bits: k-means weight sharing with k = 2…64 clusters. Bytes are "
               "what the encoder writes for that layer at that setting. The scan is computed once per model and "
               "kept on disk; the sample models' scans ship with them, so they show at once.")

data = common.dataset()
name = common.model_name()
net = common.model(name)
shipped = [] if name in common.uploads() else [zoo.scan_dir(name)]  # a sample model's scans ship beside it
scan = ce.sensitivity.cached(net, data, shipped=shipped)


def expected_scan():
    """(settings, seconds) of a scan of this model on this machine (each layer's share of the model re-evaluated)."""
    return ce.sensitivity.expected(net, common.eval_seconds(), len(data.y("test")), example=data.x("test")[:1])


skey = ("sensitivity scan", name, common.weights_id(name))  # the scan's job: in the pool and in this session


def submit_scan():
    """The scan as a job of the server's training pool, at the page's threads (as fast as a page run computed it),
    kept on disk by sensitivity.scan itself."""
    def work(progress):
        return ce.sensitivity.scan(net, data, progress=lambda step, total, *_: progress(step, total, phase="setting"),
                                   shipped=shipped)
    return ce.jobs.pool().submit(skey, work, threads=ce.jobs.process_threads())


if scan is None:  # an upload (only the sample models' scans ship): scanned in the training queue, kept on disk
    settings, expected = expected_scan()
    if expected >= ASK_SECONDS and common.pooled_job(skey) is None:  # minutes of the server's cores: ask first
        note = st.empty()
        if not st.button(f"Scan {name} (about {units.duration(expected)})", key="sens_go", type="primary",
                         icon=":material/play_arrow:"):
            note.info(f"No scan of {name} yet (only the sample models' scans ship). It compresses each of its "
                      f"{settings // GRID_SIZE} layers alone at {GRID_SIZE} settings: {settings:,} evaluations of "
                      f"{SCANNED_TEXT}, about {units.duration(expected)} on this machine. "
                      "It runs in the server's training queue; once done it is kept on disk, for every session.")
            st.stop()
    scan = common.pooled(skey, "Scanning every layer", lambda: ce.sensitivity.cached(net, data, shipped=shipped),
                         submit_scan)
    if scan is None:  # cancelled, or the engine refused the model: pooled said why
        st.stop()

summary = ce.sensitivity.summary(scan, TOLERANCE)
fragile, cheap = ce.sensitivity.most_fragile(summary), ce.sensitivity.cheapest(summary)  # as the table ranks them
top = max(scan["sparsities"])
steps = ", ".join(f"{100 * s:g}" for s in scan["sparsities"])
c = st.columns(3)
if fragile["max_sparsity"] < top:
    c[0].metric("Most fragile layer", viz.layer_label(fragile["layer"]),
                f"max sparsity {100 * fragile['max_sparsity']:g} % within {100 * TOLERANCE:.1f} pts",
                delta_color="off", delta_arrow="off",
                help=f"The layer that can be pruned least on its own (one-shot) while losing at most "
                     f"{100 * TOLERANCE:.1f} points: the table's max sparsity, the highest of the scanned {steps} % "
                     "within the tolerance; among layers of the same, the one that loses most at 90 % pruned"
                     + (f" (this one: {100 * fragile['loss_at_90']:.1f} pts)." if fragile["loss_at_90"] is not None
                        else "."))
else:  # e.g. an untrained upload, at chance whatever is pruned: no layer to single out
    c[0].metric("Most fragile layer", "none", f"every layer prunes to {100 * top:g} % within {100 * TOLERANCE:.1f} pts",
                delta_color="off", delta_arrow="off",
                help=f"No layer loses more than {100 * TOLERANCE:.1f} points at any scanned sparsity ({steps} %) "
                     "when pruned alone.")
c[1].metric("Cheapest bytes", viz.layer_label(cheap["layer"]),
            f"{common.kb(cheap['dense_bytes'])} → {common.kb(cheap['cheapest_bytes'])}",
            delta_color="off", delta_arrow="off",
            help=f"The layer that sheds the most bytes while losing at most {100 * TOLERANCE:.1f} points on its own.")
c[2].metric("Scanned", f"{len(scan['rows']):,} settings", f"{scan['seconds']:.0f} s once, then from disk",
            delta_color="off", delta_arrow="off")

left, right = st.columns(2, gap="medium")
with left:
    common.chart(loss_lines(scan, "sparsity"))
with right:
    common.chart(loss_lines(scan, "bits"))
left, right = st.columns([1, 1], gap="medium")
with left:
    common.chart(bytes_bars(summary))
with right:
    layer = st.selectbox("Layer", [r["layer"] for r in summary], key="sens_layer")
    common.chart(grid_heatmap(scan, layer))

st.markdown("**Per layer, alone** (within "
            f"{100 * TOLERANCE:.1f} points of the dense model's {100 * scan['dense_accuracy']:.2f} % on these images)")
st.dataframe([{"layer": r["layer"], "weights": r["params"], "unchanged KB": r["dense_bytes"] / KB,
               "loss at 90 % pruned (pts)": 100 * (r["loss_at_90"] or 0),
               "max sparsity": f"{100 * r['max_sparsity']:g} %",
               "fewest bits": bits(r["min_clusters"]) if r["min_clusters"] else "—",
               "smallest KB": r["cheapest_bytes"] / KB} for r in summary],
             hide_index=True, width="stretch",
             column_config={"weights": st.column_config.NumberColumn(format="localized"),
                            "unchanged KB": st.column_config.NumberColumn(format="%.1f"),
                            "loss at 90 % pruned (pts)": st.column_config.NumberColumn(
                                format="%.2f", help="Accuracy lost with this layer alone 90 % pruned, one-shot, "
                                                    "weights not quantized"),
                            "max sparsity": st.column_config.TextColumn(
                                help="The highest scanned sparsity within tolerance, weights not quantized"),
                            "fewest bits": st.column_config.TextColumn(
                                help="The fewest scanned bits within tolerance, nothing pruned"),
                            "smallest KB": st.column_config.NumberColumn(
                                format="%.2f", help="The layer's fewest KB of a heat-map cell within tolerance (the "
                                                    "cell's hover gives them): a sparsity and a bit width together, "
                                                    "so neither need be the two columns before")})
card = common.card()
zero = common.trained_zeros()
st.caption("Unchanged: the layer's bytes in an artifact with its weights as trained, the heat map's float32, 0 % cell"
           + (f". Training left {units.pct(zero, 0)} of {card['name']}'s weights at exactly zero ({cards.WHY_ZEROS}), "
              "and an artifact skips zeros, so a layer takes less than "
              "its float32 size (4 bytes a weight, as the other pages count the dense model)." if zero >= 0.005 else
              ": its float32 size, 4 bytes a weight."))

# --- fit in N KB: the allocation the scan leads to ------------------------------------------------
st.divider()
st.header("Fit in N KB")
left, right = st.columns([1, 1.3], gap="large")
dense_kb = sum(r["dense_bytes"] for r in summary) / KB


@st.cache_data(show_spinner=False, max_entries=64)
def fit_floor(_net, _train_scan, names, model_key, n_epochs, prune_focus, scanned):
    """(fixed, largest, smallest) of fit_budget's checks before any training, for this model and the Fit's settings:
    the bytes of the header and carried tensors and their largest tensor (budget.probe_overhead, as
    fit_budget measures them), and once the training images' scan is on disk (`scanned`), the bytes of the weights'
    smallest scanned settings (else None). model_key, n_epochs, prune_focus and scanned key the cache."""
    fixed, largest = ce.budget.probe_overhead(_net, names, n_epochs, kd=KD, focus=prune_focus)  # fit_budget's reserve
    return fixed, largest, ce.budget.smallest_bytes(_train_scan, names) if scanned else None


with left:
    budget_box = st.container()  # the budget's box first; its least value depends on the two settings under it
    epochs = st.select_slider("Fine-tuning epochs per stage", [1, 2, 4], value=1, key="budget_epochs",
                              persist_state="session", bind=common.LINK,
                              help="Pruning is reached gradually during the first stage, the shared centroids are "
                                   "trained in the second." + common.training_time())
    focus = FOCUS if st.checkbox(
        "Gather the kept weights in fewer units (prune focus)", value=False, key="budget_focus",
        persist_state="session", bind=common.LINK,
        help="Ranks each weight by its size times its unit's and input's strength, so whole units and inputs "
             "empty out and the positions of the kept ones cost less: on LeNet-5 at 160x it keeps more accuracy "
             "in the same bytes (README, bench/beyond.py). A scan of its own runs first.") else 0.0
    train_scan = ce.sensitivity.cached(net, data, split="train", refit=True, focus=focus, shipped=shipped)
    floor = fit_floor(net, train_scan, [la["name"] for la in (train_scan or scan)["layers"]],
                      (name, common.weights_id(name)), epochs, focus, train_scan is not None)
    fixed, _, smallest = floor
    top_kb = max(2.0, round(dense_kb, 1))
    # the least budget the engine takes before any training, in KB as its refusal names it: the box's least value
    least_kb = min(ce.budget.least_kb(fixed, smallest), top_kb)
    with budget_box:
        kb = st.number_input(f"Budget (KB, {units.CONVENTION})", min_value=least_kb, max_value=top_kb,
                             step=1.0, persist_state="session", bind=common.LINK,
                             help=f"From {least_kb:,.2f} KB, the least budget the engine takes for {name} with these "
                                  f"settings (the header and carried tensors"
                                  + (", the weights' smallest scanned settings" if train_scan is not None else "")
                                  + f" and some room for fine-tuning), up to {dense_kb:,.1f} KB, the layers' weights "
                                  "unchanged (an artifact skips the zeros training left): a budget that large needs "
                                  "no compressing. The Fit button names the budget it fits.",
                             key=common.setting("budget_kb", float(max(math.ceil(least_kb), round(dense_kb / 64))),
                                                scope=common.model_name()))
    # bound to the URL without value=: the box's default stays its least value, where a budget kept from before the
    # least rose goes (a value= would send it to the start), so a budget of exactly the least is left out of a link
    # the budget it fits on the button: a number typed out of range is refused by the box, which keeps the last one
    go_fit = st.button(f"Fit in {kb:,.4g} KB", type="primary", key="budget_go", icon=":material/compress:")
with right:
    st.markdown(
        "The engine picks, for every layer, the sparsity and the number of shared values (bits) that keep the "
        "most accuracy while the whole artifact fits: a knapsack over the scan's settings, each layer's damage "
        "estimated after re-fitting its kept weights (what fine-tuning recovers), measured on training images. "
        "Then it prunes gradually while fine-tuning on the dense model's soft targets, shares weights, stores "
        "biases in 8 bits and entropy-codes everything. Fragile layers keep more weights and bits; big flat layers give up most of theirs.")

# a fit trains (minutes on ResNet-8): it runs in the server's training queue and is kept on disk, like a fine-tune
budget_bytes = round(kb * KB)  # rounded, not cut: int(4.35 * 1000) is 4,349
request = {"fit_budget": {"bytes": budget_bytes, "epochs": epochs, "kd": KD, "focus": focus}}
fkey = ("fit_budget", name, common.weights_id(name), repr(request))
disk_key, kept_fits = common.request_key(request), ce.trained.TrainedCache()


def fit_from_disk():
    hit = kept_fits.get(disk_key)
    plan = (hit.get("extra") or {}).get("plan") if hit is not None else None
    return None if not isinstance(plan, dict) else {"model": name, "recipe": hit["recipe"], "metrics": hit["metrics"],
                                                     "artifact": hit["artifact"], "plan": plan}


def submit_fit():
    budget, n_epochs, prune_focus = budget_bytes, epochs, focus  # this page run's values, for the worker thread
    scan_threads = ce.jobs.process_threads()  # an upload's scan at the page's threads (as its estimate assumes)
    also_keep = common.keep_under_recipe(name, budget_kb=kb)  # replayed (Export): the same bytes and label

    def work(progress):
        def scanning(step, total, _loss, _acc):  # its accuracies are on training images, not the test set
            return progress(step, total, phase="scanning each layer on training images, setting")

        def tuning(step, total, loss, acc):
            # compress() counts its evaluations' batches too (loss None): those are not fine-tuning
            return progress(step, total, loss, acc, phase="fine-tuning, step" if loss is not None else
                            "evaluating, step")

        def answering(done, total):  # before fine-tuning, fit_budget computes the dense model's soft targets
            return progress(done, total, phase="the dense model's answers on training images, image")

        with ce.jobs.on_threads(scan_threads):  # then the training at the pool's, leaving a core to the sliders
            budget_scan = ce.sensitivity.scan(net, data, split="train", refit=True, progress=scanning,
                                              focus=prune_focus, shipped=shipped)
        res, plan = ce.fit_budget(net, data, budget, finetune_epochs=n_epochs, scan=budget_scan, progress=tuning, kd=KD,
                                  focus=prune_focus, answers_progress=answering)
        fitted = {"model": name, "recipe": res.recipe.to_json(), "metrics": res.metrics, "artifact": res.artifact,
                  "plan": plan}
        common.not_kept(fitted, kept_fits.keep(disk_key, name, res, extra={"plan": plan}))
        also_keep(res)
        return fitted

    return ce.jobs.pool().submit((str(kept_fits.folder), disk_key), work)


fit = common.kept(fkey, fit_from_disk)
common.warn_not_kept(fit)  # (a fit pooled() returns below, it warns about itself)
asked = fit is None and (go_fit or common.pooled_job(fkey) is not None)  # a rerun while it runs keeps following it
refused = ce.budget.refusal(budget_bytes, *floor) if asked and common.pooled_job(fkey) is None else None
if refused is not None:  # refused here, as fit_budget would, not after a wait in the training queue
    st.error(common.md_text(refused))
elif asked:
    fit = common.pooled(fkey, f"Fit in {kb:g} KB", fit_from_disk, submit_fit)
# asked with no result: pooled() said why (a refusal naming the budget that works, or Stopped), no "Press Fit"
if fit is None and not asked:
    first = ("" if train_scan is not None else
             " It first scans every layer on training images, about "
             f"{units.duration(expected_scan()[1])} here "
             "(then kept on disk).")
    tune = (f" It fine-tunes in two stages of {epochs} epoch{'s' * (epochs > 1)} on the dense model's soft targets."
            + common.training_time(2 * epochs))  # (the time once this machine has evaluated the model)
    st.caption("Press **Fit** to run it in the server's training queue. The result is kept on this server, so a "
               "reload, another tab or another student sees it at once." + first + tune)
elif fit is not None:
    m, plan = fit["metrics"], fit["plan"]
    real = {r["name"]: r for r in m["layers"]}
    fitted = [real[a["layer"]] for a in plan["allocation"]]  # the weights the table below lists, one layer a row
    c = st.columns(4)
    c[0].metric("Artifact", common.kb(m["artifact_bytes"]), f"budget {kb:g} KB", delta_color="off", delta_arrow="off")
    c[1].metric("Compression ratio", f"{m['ratio']:,.1f}×")
    c[2].metric("Test accuracy", f"{100 * m['accuracy']:.2f} %", f"{100 * (m['accuracy'] - m['dense_accuracy']):+.2f} pts")
    c[3].metric("Weights kept", f"{sum(r['nonzero'] for r in fitted):,}", f"of {sum(r['params'] for r in fitted):,}",
                delta_color="off", delta_arrow="off",
                help=f"The weights kept in the layers below, summed. With the biases and every other parameter: "
                     f"{m['nonzero_params']:,} non-zero parameters of {m['dense_params']:,}, as the other pages "
                     "count them.")
    common.collapse_warning(m["accuracy"], m["dense_accuracy"])  # a fit at chance level: its ratio means nothing
    if not plan.get("fits", True):  # every try came out over the budget (fit_budget's OverBudget, said here)
        st.warning("Over the budget: " + ce.budget.over_budget(
            plan["budget_bytes"], m["artifact_bytes"], len(plan["attempts"]),
            fix="(the fine-tuned carried tensors or the coding took more than predicted): press Fit with a larger "
                "budget"))
    # the fitted run as a file, replayable from its recipe (per-layer settings: compress() gives the same bytes)
    fit_recipe = ce.Recipe.from_json(fit["recipe"])
    common.downloads(fit["artifact"], fit_recipe, f"{name}-fit-{kb:g}kb")
    common.save_button(fit, charts.fit_technique(kb), key="budget_save")
    # each layer as the artifact stores it, in Clustering's words (an entropy-coded tensor has no fixed width)
    st.dataframe([{"layer": a["layer"], "sparsity": f"{100 * a['sparsity']:g} %",
                   "stored as": stored_as(real[a["layer"]], fit_recipe.huffman),
                   "weights kept": real[a["layer"]]["nonzero"], "KB predicted": a["predicted_bytes"] / KB,
                   "KB in the artifact": real[a["layer"]]["bytes"] / KB} for a in plan["allocation"]],
                 hide_index=True, width="stretch",
                 column_config={"weights kept": st.column_config.NumberColumn(format="localized"),
                                "KB predicted": st.column_config.NumberColumn(format="%.2f"),
                                "KB in the artifact": st.column_config.NumberColumn(format="%.2f")})
    weights = {a["layer"] for a in plan["allocation"]}
    parts = [(r["name"], r["bytes"]) for r in m["layers"] if r["name"] in weights]
    parts.append(("biases and other tensors", sum(r["bytes"] for r in m["layers"] if r["name"] not in weights)))
    parts.append(("header", m["bytes_breakdown"]["header"]))
    fig = go.Figure()
    colours = charts.colours(len(parts))  # one a part: ResNet-8's fit has twelve
    for i, (label, b) in enumerate(parts):
        fig.add_bar(y=["artifact"], x=[b / KB], orientation="h", name=label, marker_color=colours[i],
                    hovertemplate=f"{label}: %{{x:.2f}} KB<extra></extra>")
    fig.update_layout(barmode="stack")
    fig = layout(fig, f"Where the bytes went (KB, {units.CONVENTION})", "", "", height=220)
    fig.update_layout(legend_traceorder="normal")  # the artifact's parts left to right, as the bar stacks them
    common.chart(fig)
