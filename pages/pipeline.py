"""Pipeline: every technique together, like Deep Compression: prune, share weights, Huffman-code, fine-tune."""

import streamlit as st

import compress_engine as ce
from compress_engine import Recipe
from compress_engine.playground import explain, store as runstore, units, viz
from pages import charts, common

common.through_app()

KS = (2, 4, 8, 16, 32, 64, 128, 256)
SHARING = {"none": "None", "cluster": "Cluster (k-means)", "quantize": "Quantize (uniform grid)"}


def defaults(start):
    """The page's first setting from the model's start (common.starts: a one-shot recipe the model survives, about
    25x at under 1 point lost on the LeNets), unless the Deep Compression preset's fine-tuned result is kept."""
    return {"pipe_sparsity": round(100 * start["sparsity"]), "pipe_scope": start["prune_scope"],
            "pipe_sharing": "cluster", "pipe_clusters": start["clusters"], "pipe_bits": 6,
            "pipe_huffman": start["huffman"], "pipe_epochs": 0}


def deep_compression(name=None):
    """The Deep Compression button's widget values for the model `name` (default: the sidebar's;
    common.deep_compression)."""
    preset = common.deep_compression(name)
    return {**defaults(preset), "pipe_epochs": preset["finetune_epochs"]}


def recipe_fields(state):
    """The Recipe fields the controls below set, from their session-state values (common.scoped drops the pruning
    threshold at 0 %)."""
    sharing = state["pipe_sharing"]
    return {"sparsity": state["pipe_sparsity"] / 100, "prune_scope": state["pipe_scope"],
            "clusters": state["pipe_clusters"] if sharing == "cluster" else None,
            "bits": state["pipe_bits"] if sharing == "quantize" else None, "huffman": state["pipe_huffman"],
            "finetune_epochs": state["pipe_epochs"]}


def widget_recipe(state):
    """The Recipe the controls below build from their session-state values."""
    return common.scoped(Recipe(**recipe_fields(state)))


def derived_stage(recipe):
    """The stage read off another run instead of computed: the shared-weights stage when Huffman coding follows
    holds the Huffman stage's very weights, so its size is that run's plain_bytes (fixed-width codes) and its
    accuracy the same."""
    return "share" if recipe.huffman else None


def stage_runs(recipe):
    """[(stage, Recipe)]: the post-training runs that measure `recipe`'s stages (explain.stage_recipes), but the
    dense one and derived_stage's."""
    skip = ("dense", derived_stage(recipe))
    return [(stage, r) for stage, _, r in explain.stage_recipes(recipe) if stage not in skip]


def train_label(recipe):
    """The Fine-tune button's words for `recipe`, true to what it trains (explain.training_epochs): "Fine-tune 1 epoch
    after each stage (2 in all)" when pruning and sharing each train; the button said "Fine-tune 1 epoch" and trained
    2 (938 steps for ResNet-8)."""
    each, total = recipe.finetune_epochs, explain.training_epochs(recipe)
    words = f"Fine-tune {each} epoch{'s' if each > 1 else ''}"
    return words if total == each else f"{words} after each stage ({total} in all)"


def use_deep_compression():
    st.session_state.update(deep_compression())


def first_settings():
    """Open on the Deep Compression preset if its fine-tuned result is kept (trained earlier, by anyone, on
    this server: it shows at once), else on the model's defaults, a one-shot setting it survives."""
    start, preset = defaults(common.starts()["pipeline"]), deep_compression()
    return preset if common.cached_trained(widget_recipe(preset)) is not None else start


def waterfall_chart(steps):
    # a step falling to near 0 (1-bit quantization of the dense weights) put its label outside, under the bar's lower
    # end: over the axis's stage name. A step over a third of the chart's height is labelled inside its bar instead
    top = steps["y"][0]
    where = ["inside" if m == "relative" and abs(v) > top / 3 else "outside"
             for m, v in zip(steps["measure"], steps["y"])]
    data = [{"type": "waterfall", "x": steps["x"], "y": [v / units.KB for v in steps["y"]], "measure": steps["measure"],
             "text": steps["text"], "textposition": where, "cliponaxis": False,
             "connector": {"line": {"color": charts.GREY, "dash": "dot"}},
             "decreasing": {"marker": {"color": charts.GREEN}}, "increasing": {"marker": {"color": charts.RED}},
             "totals": {"marker": {"color": charts.BLUE}}, "hovertemplate": "%{x}: %{text}<extra></extra>"}]
    layout = charts.base_layout("Where the bytes go: size after each stage", "stage", "artifact size (KB)", 400,
                           showlegend=False)
    layout["yaxis"]["range"] = [0, 1.15 * steps["y"][0] / units.KB]
    return charts.figure(data, layout)


def paper_chart(comp, ours_name):
    """The paper's ratios beside ours, every bar labelled with its ratio and its accuracy change against its own
    dense model; ours is hatched where the two losses are too far apart for the ratios to compare."""
    rows = comp["rows"]
    stages = [r["stage"] for r in rows]
    data = [{"type": "bar", "x": stages, "y": [r["paper"] for r in rows], "textposition": "outside",
             "name": f"Deep Compression, {comp['architecture']} on MNIST", "marker": {"color": charts.GREY},
             "text": [f"{r['paper']:g}×<br>{-r['paper_loss']:+.2f} pts" for r in rows],
             "hovertemplate": "Deep Compression, %{x}: %{text}<extra></extra>", "offsetgroup": "paper"},
            # ours: its legend swatch is the plain entry below (Plotly draws a bar's from its first bar's pattern,
            # which looked like the dotted or hatched caveat entries); every legend-only entry shares its bar slot
            # (offsetgroup), so the two real bars fill the category, centred
            {"type": "bar", "x": stages, "y": [r["ours"] or 0 for r in rows], "name": ours_name,
             "offsetgroup": "ours", "legendgroup": "ours", "showlegend": False,
             "marker": {"color": charts.BLUE, "pattern": {"shape": ["" if r["comparable"] else "." if r["one_shot"]
                                                                   else "/" for r in rows]}},
             "textposition": "outside", "text": ["—" if r["ours"] is None
                                                 else f"{r['ours']:,.1f}×<br>{-r['ours_loss']:+.2f} pts"
                                                 + ("<br>one-shot" if r["one_shot"] else "") for r in rows],
             "hovertemplate": "ours, %{x}: %{text}<extra></extra>"},
            {"type": "bar", "x": [stages[0]], "y": [None], "hoverinfo": "skip", "name": ours_name,
             "offsetgroup": "ours", "legendgroup": "ours", "marker": {"color": charts.BLUE}}]
    if any(r["one_shot"] for r in rows):  # measured without the run's fine-tuning: no verdict beside a retrained figure
        data.append({"type": "bar", "x": [stages[0]], "y": [None], "hoverinfo": "skip",
                     "name": "dotted: one-shot, the paper's retrained: no verdict",
                     "offsetgroup": "ours", "marker": {"color": "white", "line": {"color": charts.BLUE, "width": 1},
                                "pattern": {"shape": ".", "fgcolor": charts.BLUE}}})
    if not all(r["comparable"] or r["one_shot"] for r in rows if r["ours"] is not None):
        data.append({"type": "bar", "x": [stages[0]], "y": [None], "hoverinfo": "skip",
                     "name": f"hatched: loses over {comp['equal_loss_pts']:g} points more, not comparable",
                     "offsetgroup": "ours", "marker": {"color": "white", "line": {"color": charts.BLUE, "width": 1},
                                "pattern": {"shape": "/", "fgcolor": charts.BLUE}}})
    best = max([r["paper"] for r in rows] + [r["ours"] or 0 for r in rows])
    layout = charts.base_layout("Ratio and accuracy change: the paper's and ours", "",
                           "dense float32 bytes / compressed bytes (×)", 430, barmode="group",
                           legend={"orientation": "h", "y": -0.15})
    layout["yaxis"]["range"] = [0, 1.3 * best]
    return charts.figure(data, layout)


first = common.start_settings("pipeline", defaults, first=first_settings, presets=lambda name: [deep_compression(name)])


def points(accuracy, dense_acc):
    """A stage's table cells: its accuracy and the points it lost against the dense model."""
    return {"accuracy (%)": 100 * accuracy, "vs dense (pts)": 100 * (accuracy - dense_acc)}


def pruned_alone(recipe, results, tuned):
    """The pruning-alone stage to set beside the paper's (retrained) 12x, and whether it is one-shot while the run
    was fine-tuned: a fine-tuned run's pruning stage, fine-tuned as it was, if it is kept on this server (trained
    once, by anyone), else the one-shot stage measured here."""
    pruned = results.get("prune")
    if tuned is None or pruned is None:
        return pruned, False
    kept = common.cached_trained(common.scoped(recipe.replace(clusters=None, bits=None, huffman=False)))
    return (pruned, True) if kept is None else (kept, False)


def paper_column(results, m, dense_acc, recipe, tuned):
    """Our ratios and accuracy losses beside the paper's (explain.paper_comparison), for the evaluated runs."""
    pruned, one_shot = pruned_alone(recipe, results, tuned)
    comp = explain.paper_comparison(
        common.model_name(), m["dense_bytes"], m["artifact_bytes"], dense_acc, m["accuracy"],
        pruned_bytes=None if pruned is None else pruned["metrics"]["artifact_bytes"],
        pruned_accuracy=None if pruned is None else pruned["metrics"]["accuracy"],
        dense_params=m["dense_params"], pruned_nonzero=None if pruned is None else pruned["metrics"]["nonzero_params"],
        one_shot_pruning=one_shot)
    if comp is None:
        st.info(f"Deep Compression published no figure for {card['name']}.")
        return
    common.chart(paper_chart(comp, f"ours, {card['name']} on {common.data_text()}"))
    st.markdown("\n".join(f"- {r['verdict']}" for r in comp["rows"] if r["ours"] is not None))
    prune_row = comp["rows"][0]
    bench = explain.bench_deep_compression(runstore.reference_points(charts.BENCH), common.model_name())
    note = ("The paper's 12× for pruning alone counts weights (about 8 % kept); "
            + (f"ours keeps 1 weight in {prune_row['ours_params']:,.1f}, and its artifact, which must also store "
               "where each survivor sits, is the ratio drawn. "
               if prune_row["ours_params"] else "this recipe does not prune. ")
            + f"Their figures are on MNIST, ours on {common.md_text(common.data_text())}: sizes compare directly, and "
              "so do the points "
              "each loses against its own dense model, but not the accuracies themselves. "
            + ("Our pruning-alone stage is measured one-shot; fine-tuning brings the loss down"
               if one_shot or tuned is None else
               f"Our pruning-alone stage is fine-tuned {recipe.finetune_epochs} epoch"
               f"{'s' if recipe.finetune_epochs > 1 else ''}, as your run was")
            + (f" (`bench/deep_compression.py`, fine-tuning after each stage, {bench}: "
               "`bench/results/deep_compression.csv`)." if bench else "."))
    st.caption(note)


st.title("Pipeline")
card = common.card()
controls, explain_col = st.columns([1, 1.25], gap="large")
dc = common.deep_compression()
dc_epochs = explain.training_epochs(Recipe(**dc))  # after pruning and again after clustering
with controls:
    st.button("Deep Compression recipe", icon=":material/auto_fix_high:", key="pipe_preset",
              on_click=use_deep_compression,
              help=f"Prune {units.pct(dc['sparsity'], 0)} ({common.SCOPES[dc['prune_scope']].lower()} threshold), "
                   f"{dc['clusters']} clusters per layer, Huffman coding, fine-tune {dc['finetune_epochs']} epoch "
                   f"after pruning and again after clustering ({dc_epochs} epochs in all). The paper shared 256 "
                   "values (8 bits) in conv layers and 32 (5 bits) in fully connected ones (64, 6 bits, in "
                   "LeNet-300-100); 16 (4 bits) is lighter. More fine-tuning epochs win back more accuracy."
                   + common.training_time(dc_epochs))
    pct = st.slider("1. Prune: sparsity", 0, 99, step=1, format="%d %%", key="pipe_sparsity", persist_state="session",
                    value=first["pipe_sparsity"], bind=common.LINK)
    scope = st.radio("Pruning threshold", list(common.SCOPES), format_func=common.SCOPES.get, horizontal=True,
                     key="pipe_scope", persist_state="session", help=common.SCOPE_HELP,
                     index=common.index_of(common.SCOPES, first["pipe_scope"]), bind=common.LINK)
    sharing = st.radio("2. Share weights", list(SHARING), format_func=SHARING.get, horizontal=True,
                       key="pipe_sharing", persist_state="session",
                       index=common.index_of(SHARING, first["pipe_sharing"]), bind=common.LINK,
                       help="Cluster: each layer keeps k values found by k-means. Quantize: each layer's weights "
                            "snap to an evenly spaced grid of 2^bits values.")
    clusters = bits = None
    if sharing == "cluster":
        clusters = st.select_slider("Clusters per layer (k)", KS, key="pipe_clusters", persist_state="session",
                                    value=first["pipe_clusters"], bind=common.LINK)
    elif sharing == "quantize":
        bits = st.select_slider("Bits per weight", ce.BITS, key="pipe_bits", persist_state="session",
                                value=first["pipe_bits"], bind=common.LINK)
    huffman = st.toggle("3. Huffman-code the indices and codes", key="pipe_huffman", persist_state="session",
                        value=first["pipe_huffman"], bind=common.LINK)
    epochs = st.slider("Fine-tune epochs (after pruning and after sharing)", 0, 10, step=1, key="pipe_epochs",
                       persist_state="session", value=first["pipe_epochs"], bind=common.LINK,
                       help="0 answers live. More runs behind a button: the epochs run after pruning and again "
                            "after sharing." + common.training_time() + " Fine-tuning keeps pruned weights at zero "
                            "and shared weights on their values.")
with explain_col:
    st.markdown(
        "**Deep Compression** (Han, Mao & Dally, ICLR 2016) chains three steps, each saving bytes the "
        "previous one cannot: **pruning** removes most weights and stores the survivors with the gaps "
        "between their positions; **weight sharing** (clustering or quantization) lets each layer keep only a "
        "few distinct values, so every survivor is a short code into a small table; **Huffman coding** gives "
        "the frequent codes and gaps fewer bits. Fine-tuning after each step wins the accuracy back. On "
        "MNIST the paper made LeNet-300-100 40× and LeNet-5 39× smaller with no loss of accuracy.")
    # no underbraces: with them the formula was cut at the column's edge on a 1,024-px screen; the caption names them
    st.latex(r"\text{ratio} = \frac{32\,n}{m\,(b_{\text{gap}} + \lceil\log_2 k\rceil) + 32\,k}")
    st.caption("Before Huffman coding, per layer: n weights of 32 bits, m of them kept after pruning, each with a "
               "position gap of b_gap bits and a code of ⌈log₂ k⌉ bits into k shared values, and a codebook of k "
               "float32 values. The sizes below are not this formula: each is the length of a real artifact.")

# the fine-tune of the model the sidebar switched away from went on training, followed by nobody: withdrawn as
# Cancel withdraws it (it stops unless another tab or student waits for it), and said, as Pruning says it
common.let_go_on_switch("pipe_train")
common.coalesce()  # a held arrow key: only its last value is compressed
settings = {"pipe_sparsity": pct, "pipe_scope": scope, "pipe_sharing": sharing, "pipe_clusters": clusters,
            "pipe_bits": bits, "pipe_huffman": huffman, "pipe_epochs": epochs}
recipe = common.recipe(**recipe_fields(settings))
dense = common.run(Recipe(), spinner="Evaluating the dense model…")
if recipe is None or dense is None:
    st.stop()
post = recipe.replace(finetune_epochs=0)

# --- the result: live post-training, or the fine-tuned run behind its button -------------------------
tuned = None
if epochs:
    tuned = common.cached_trained(recipe)  # kept on disk: trained once, by anyone, it shows at once
    if tuned is None:
        slot = st.empty()  # the button goes once the run is done
        total = explain.training_epochs(recipe)
        clicked = slot.button(train_label(recipe), type="primary",
                              icon=":material/model_training:", key="pipe_train",
                              help="Runs the whole recipe with fine-tuning, in the server's training queue (with "
                                   "its progress and a Cancel button): "
                                   + (f"{epochs} epoch{'s' if epochs > 1 else ''} after each stage, {total} in all."
                                      if total != epochs else f"{total} epoch{'s' if total > 1 else ''}.")
                                   + common.training_time(total) + " The result is kept on this server, so a "
                                   "reload, another tab or another student sees it at once.")
        if clicked or common.training(recipe) is not None:  # a rerun while it trains keeps following it
            common.ask("pipe_train", recipe)  # a model switch mid-run withdraws it (let_go above)
            tuned = common.train_run(recipe, label="Fine-tuning")
            if tuned is not None:
                slot.empty()
        else:  # the same run training for another tab or student (the teacher's link): shown, not joined
            common.watch(recipe, "Fine-tuning", train_label(recipe))
partial = stage_runs(recipe)
measured = [r for _, r in partial]  # the stages' runs this page computes
# a run not computed yet on a slow model (LeNet-5): sizes and charts first from the runs without their evaluation,
# then the evaluations, then the page again from the cache (with the accuracies, the paper's chart and Save)
early = tuned is None and common.draw_early(post, *measured)
run = tuned or (common.unevaluated(post) if early else common.run(post, spinner="Compressing…"))
m = run["metrics"]
cards = st.empty()
with cards.container():
    common.metric_cards(m, dense["metrics"])  # with its collapse warning (common.collapse_warning)
if epochs and tuned is None:
    st.caption(f"Shown without fine-tuning: press **{train_label(recipe)}** for the fine-tuned result.")
elif tuned is not None:
    st.caption(f"Fine-tuned {epochs} epoch{'s' if epochs > 1 else ''} after each stage.")
elif not early and m["accuracy"] < dense["metrics"]["accuracy"] - 0.05:
    st.caption("One-shot compression costs accuracy here: set **Fine-tune epochs** to 1 (or press **Deep "
               "Compression recipe**) and let the remaining weights win it back.")

# --- size waterfall beside the paper's ratios -----------------------------------------------------
stages = explain.stage_recipes(recipe)
derived = derived_stage(recipe)
results = {"dense": dense}
for (stage, _), metrics in zip(partial, [common.unevaluated(r)["metrics"] for r in measured] if early else
                               common.curve_metrics(measured, "Measuring each stage…")):
    results[stage] = {"metrics": metrics}
if derived in (s for s, _, _ in stages):
    results[derived] = {"metrics": {**results["huffman"]["metrics"],
                                    "artifact_bytes": results["huffman"]["metrics"]["plain_bytes"]}}

def stage_bytes(stage):
    """A stage's bar: the dense model's float32 weights (every ratio's base), then each cut recipe's artifact."""
    return m["dense_bytes"] if stage == "dense" else results[stage]["metrics"]["artifact_bytes"]


sizes = [(label, stage_bytes(stage)) for stage, label, _ in stages]
dense_acc = dense["metrics"]["accuracy"]
# with fine-tuning, each stage row is the recipe cut after it, one-shot (the paper chart beside may draw a
# fine-tuned pruning-only run): named so, apart from the fine-tuned row (and the dense model, compressed by none)
one_shot_tag = " (one-shot)" if tuned is not None else ""
rows = [{"stage": label + ("" if stage == "dense" else one_shot_tag), "KB": stage_bytes(stage) / units.KB, "ratio": f"{m['dense_bytes'] / stage_bytes(stage):,.1f}×",
         # drawn early: no accuracy columns yet (rather than "None" cells)
         **({} if early else points(results[stage]["metrics"]["accuracy"], dense_acc))}
        for stage, label, _ in stages]
if bits is not None and not early:  # quantized: the weights rounded onto the grid's zero level (at 1 bit, all)
    zeroed = explain.rounded_to_zero(results["share"]["metrics"], results.get("prune", dense)["metrics"],
                                     pruned="prune" in results)
    if zeroed:
        st.info(zeroed, icon=":material/info:")
# the cards' artifact closes the waterfall when no stage bar is it: the fine-tuned one, or with no stage on the
# unchanged weights' (it skips the zeros training left, where the dense bar is their float32 size)
last = (("fine-tuned", f"fine-tuned {epochs} epoch{'s' if epochs > 1 else ''}") if tuned is not None else
        ("artifact", "artifact (the trained zeros skipped)") if len(stages) == 1 else None)
if last is not None:
    sizes.append((last[0], m["artifact_bytes"]))
    rows.append({"stage": last[1], "KB": m["artifact_bytes"] / units.KB, "ratio": f"{m['ratio']:,.1f}×",
                 **({} if early else points(m["accuracy"], dense_acc))})

left, right = st.columns([1.3, 1], gap="medium")
with left:
    common.chart(waterfall_chart(explain.waterfall(sizes)))
    st.dataframe(rows, hide_index=True, width="stretch",
                 column_config={"KB": st.column_config.NumberColumn(format="%.1f"),
                                "accuracy (%)": st.column_config.NumberColumn(format="%.2f"),
                                "vs dense (pts)": st.column_config.NumberColumn(format="%+.2f")})
    st.caption("The dense bar is the model's float32 weights, the base of every ratio. Each bar after it is the "
               "length of a real artifact: the recipe cut after that stage, post-training"
               + ("; the fine-tuned bar is the trained artifact (fine-tuning keeps the masks and code widths, "
                  "so only the Huffman-coded size moves)" if tuned is not None else "")
               + f". {units.CONVENTION}.")
with right:
    if early:  # the comparison is of accuracy losses: it comes with the evaluations
        st.info("Evaluating each stage on the test set…", icon=":material/hourglass_top:")
    else:
        paper_column(results, m, dense_acc, recipe, tuned)

# --- what the final artifact is made of ----------------------------------------------------------
left, right = st.columns([1.3, 1], gap="medium")
with left:
    parts = m["bytes_breakdown"]
    fig = charts.bars(list(parts), [v / units.KB for v in parts.values()], "What the artifact is made of",
                      "part", "size (KB)", text=[common.kb(v) for v in parts.values()],
                      hover=[f"{v:,} bytes" for v in parts.values()])
    common.chart(fig)
with right:
    st.markdown("\n".join(f"- **{part}**: {what}." for part, what in explain.ARTIFACT_PARTS.items()))
    if not early:  # a run is saved with its accuracy
        common.save_button(run, key="pipe_save")
if early:  # the evaluations, then the page again from the cache: every element is redrawn in place, with them
    common.show_estimate(cards, post, m, dense["metrics"])  # a slow model's accuracy estimated on a sample first
    common.run(post, spinner="Evaluating on the test set…")
    common.curve_metrics(measured, "Evaluating each stage…")
    common.finished()
    st.rerun()
# the sliders' next values, post-training, with their stages: they answer from the cache
near = [widget_recipe({**settings, "pipe_sparsity": p, "pipe_epochs": 0}) for p in viz.next_steps(range(100), pct)]
for field, values in (("clusters", KS), ("bits", ce.BITS)):
    if getattr(post, field) is not None:
        near += [post.replace(**{field: v}) for v in viz.next_steps(values, getattr(post, field))]
common.ahead(*(r for n in near for r in [n, *(r for _, r in stage_runs(n))]))
common.finished()
