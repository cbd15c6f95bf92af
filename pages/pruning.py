"""Pruning: set the smallest weights to zero; watch the size fall and the accuracy hold, then collapse."""

import streamlit as st

import compress_engine as ce
from compress_engine.playground import cards, units, viz
from compress_engine.playground.explain import collapsed, said_list  # (`explain` is the page's column)
from pages import charts, common

common.through_app()

TOP = 99  # the sparsity slider's largest value (%)
GRID = (0, 30, 50, 70, 80, 85, 90, 93, 95, 97, 99)  # sparsity (%) of the accuracy-vs-sparsity curves
CURVE = "prune_ft_curve_for"  # the fine-tuned curve asked for (its curve_id), else False: Cancel (cancel_resets) sets it
ONE_POINT = "prune_ft_curve_one"  # with CURVE: the one point of it followed, joined (a reload), the rest not asked for


def _structured_changed():
    # structured pruning removes the same fraction of units in every layer: force the per-layer scope
    if st.session_state.get("prune_structured"):
        st.session_state["prune_scope"] = "layer"


def _fit_flops():
    """The FLOPs budget's "Fit" button: move the sparsity slider to the smallest whole % whose structured pruning needs
    at most the budget's share of the dense model's FLOPs (counted exactly, ce.flops), or say why none does."""
    budget = st.session_state["prune_flops_pct"]
    try:
        costs = ce.flops.Costs(common.model(common.model_name()), common.dataset().x("test")[:2])
        share = costs.smallest_sparsity(budget / 100 * costs.dense, [p / 100 for p in range(TOP + 1)])
        if share is None:
            raise ce.flops.out_of_reach(budget / 100, costs.of_sparsity(TOP / 100), costs.dense,
                                        f"with {TOP} % of every layer's units removed (whole layers never go, nor "
                                        "the classes),", percent=True)
        pct = round(100 * share)
    except ce.CompressError as e:
        st.session_state["prune_flops_message"] = ("error", f"{e}.")
        return
    st.session_state["prune_sparsity"] = pct
    st.session_state["prune_flops_message"] = ("fit", f"{pct} % is the smallest sparsity that fits {budget:g} % of "
                                               "the FLOPs.", pct, common.model_name())


@st.fragment
def weights_histogram(dense_weights, weights):
    """All layers' weights before and after; its log-scale switch reruns only this fragment."""
    log_y = st.toggle("Log-scale counts", value=True, key="prune_log_y")
    before = viz.values(dense_weights)
    after = viz.nonzero_values(weights)
    rng = viz.value_range(before, after)
    c0, edges = viz.histogram(before, 120, rng)
    c1, _ = viz.histogram(after, 120, rng)
    fig = charts.histogram(
        [{"name": f"dense ({len(before):,} weights)", "counts": c0, "edges": edges, "color": charts.GREY,
          "opacity": 0.45},
         {"name": f"kept, non-zero ({len(after):,})", "counts": c1, "edges": edges, "color": charts.BLUE,
          "opacity": 0.75}],
        "Weights before and after pruning (all layers)", log_y=log_y)
    common.chart(fig)


@st.fragment
def mask_chart(dense_weights, weights, structured, pct):
    """One layer's kept weights as an image; choosing another layer reruns only this fragment."""
    names = viz.compressible_names(dense_weights)
    layer = st.selectbox("Layer for the mask image", names, key="prune_mask_layer")
    if structured:
        kept = viz.structured_masks(dense_weights, pct / 100)[layer]
    else:
        kept = viz.kept_mask(weights[layer])
    image, block = viz.mask_image(kept, max_side=300)
    shape = "×".join(map(str, dense_weights[layer].shape))
    fig = charts.mask(image, f"Kept weights of {layer} ({shape})<br><sup>{int(kept.sum()):,} of {kept.size:,}</sup>", block)
    common.chart(fig)
    note = "White = kept, black = pruned. Rows are output units, columns inputs"
    if dense_weights[layer].ndim == 4:
        note += " (a conv weight drawn as out × (in·k·k))"
    if block != (1, 1):
        note += f"; each pixel is a {block[0]}×{block[1]} block, grey = the share of it kept"
    st.caption(note + ".")


st.title("Pruning")
controls, explain = st.columns([1, 1.25], gap="large")
# the first setting (and why it is that one) is common's: the structured toggle also sets the scope
first = common.start_settings("pruning", lambda f: {"prune_sparsity": round(100 * f["sparsity"]),
                                            "prune_scope": f["prune_scope"]})
with controls:
    # structured pruning's share is of each layer's units (the toggle below, read before it is drawn)
    pct = st.slider("Sparsity: share of each layer's units removed" if st.session_state.get("prune_structured") else
                    "Sparsity: share of weights set to zero", 0, TOP, step=1, format="%d %%", key="prune_sparsity",
                    value=first["prune_sparsity"], persist_state="session", bind=common.LINK)
    structured = st.toggle("Structured: remove whole neurons / filters", key="prune_structured",
                           persist_state="session", bind=common.LINK,
                           on_change=_structured_changed,
                           help="Removes whole hidden units (rows of a Linear weight, filters of a conv), "
                                "so the dense model really shrinks. Always per layer.")
    scope = st.radio("Threshold", list(common.SCOPES), format_func=common.SCOPES.get, horizontal=True,
                     key="prune_scope", persist_state="session", bind=common.LINK,
                     index=common.index_of(common.SCOPES, first["prune_scope"]),
                     disabled=structured,
                     help="Structured pruning removes the same fraction of units in every layer, so it is "
                          "always per layer." if structured else
                          common.SCOPE_HELP)
    # a structured share the model has collapsed at (the unstructured start, 80 %, on the LeNets): what to try, from
    # the one-shot curve below once it is measured (structured_hint)
    hint = st.empty() if structured else None
    if structured:  # a budget of what the model costs to run, rather than a share of units
        left_col, right_col = st.columns([3, 1], vertical_alignment="bottom")
        left_col.number_input("FLOPs budget: % of the dense model's FLOPs per image", min_value=0.1, max_value=100.0,
                              value=25.0, step=5.0, format="%.1f", key="prune_flops_pct", persist_state="session",
                              bind=common.LINK,
                              help="Fit sets the sparsity above to the smallest whole % whose smaller model needs at "
                                   "most this share of the dense model's forward FLOPs (multiply-adds count 2), "
                                   "counted exactly on this model.")
        right_col.button("Fit", key="prune_flops_fit", on_click=_fit_flops, icon=":material/speed:",
                         help="Move the sparsity slider to the smallest share that fits the budget.")
        said = st.session_state.get("prune_flops_message")
        if said and said[0] == "error":
            st.error(st.session_state.pop("prune_flops_message")[1])
        elif said and said[2:] == (pct, common.model_name()):  # only while the slider holds the fitted value
            st.caption(said[1])
    # a reload mid fine-tune (a new session: the switch off) left its run training in the pool, unshown: joined, the
    # switch is on again and the page follows it, as the tab before the reload did
    fields = dict(sparsity=pct / 100, prune_scope="layer" if structured else scope, structured=structured)
    if pct > 0 and not st.session_state[common.setting("prune_finetune", False, scope=common.model_name())]:
        try:
            if common.rejoined(common.scoped(ce.Recipe(**fields, finetune_epochs=1))) is not None:
                st.session_state["prune_finetune"] = True
        except ce.CompressError:  # common.recipe says so below
            pass
    finetune = st.toggle("Fine-tune 1 epoch (pruned weights stay zero)",  # off again for another model: it trains
                         key=common.setting("prune_finetune", False, scope=common.model_name()),
                         persist_state="session", bind=common.LINK,
                         help="One epoch of Adam on the training set with the mask held fixed."
                              + common.training_time() + " Kept on disk, so each setting is trained only once.")
with explain:
    st.markdown(
        "**Magnitude pruning** (Han et al. 2015) sets the weights closest to zero to exactly zero. A trained "
        "network has many weights that barely matter, so a large share can go before the accuracy moves. "
        "The artifact then stores only the non-zero values and the gaps between their positions.\n\n"
        "- **Per layer**: each layer loses the same share. **Global**: one threshold for the whole network, "
        "so big layers full of tiny weights lose more and small, crowded layers are spared.\n"
        "- **Structured** removes whole neurons, so the dense model itself gets smaller and faster, but the "
        "choice is coarser and accuracy falls sooner.\n"
        "- **One-shot** pruning collapses early; one epoch of **fine-tuning** with the mask held fixed "
        "lets the remaining weights take over the work of the removed ones.")
    st.latex(r"w' = w \cdot \mathbf{1}\left[\,|w| \ge t\,\right]")  # two lines: one was cut at its right end
    st.latex(r"t = s\text{-quantile of } |w|")

common.coalesce()  # a held arrow key: only its last value is compressed
recipe = common.recipe(**fields, finetune_epochs=int(finetune))
tuned = finetune and pct > 0


def curve_stopped(asked, left):
    """What became of the fine-tuned curve asked for (`asked`: its curve_id) once the page shows another model or
    pruning mode: left is common.let_go's account of its point in flight (withdrawn as Cancel withdraws it), or None."""
    before, now = asked[0], common.model_name()
    switched = (before, asked[1]) != (now, common.weights_id(now))
    text = (f"You switched the model to {common.md_text(now)}, so the fine-tuned curve of {common.md_text(before)} "
            "stopped." if switched else
            "You changed the pruning mode, so the fine-tuned curve of the mode before stopped.")
    # not "go back": a teacher took it for the browser's Back, which leaves the page's settings behind
    back = f"the model back to {common.md_text(before)}" if switched else "the pruning mode back"
    return (text + ("" if left is None else " " + left_text(left, "Its point"))
            + f" The points finished before are kept; the rest are not trained. Switch {back} and press "
              "**Compute the fine-tuned curve** to compute them.")


def left_text(left, what):
    """What became of a run withdrawn by common.let_go (`left`, its account), named `what` ("Its point") and its
    sparsity."""
    return common.left_text(left, what + f" at {round(100 * ce.Recipe.from_json(left[0][1]).sparsity)} %")


# the switch's fine-tune of the model the sidebar switched away from (the switch is off again for this one) went on
# training, followed by nobody: withdrawn as the slider's supersede and Cancel withdraw it, and said
common.let_go_on_switch("prune_finetune", left_text)
# while this sparsity's fine-tune is queued or running, the page shows its one-shot run, labelled so, and follows the
# run at its end (then draws again, fine-tuned): a ResNet-8 epoch takes minutes, and the cards and charts of the
# sparsity before the slider moved stayed greyed out all that time
training_now = tuned and common.cached_trained(recipe) is None
if training_now:  # queued at the page's end, once the one-shot run is drawn: a burst of arrow-key presses queues
    follow = st.empty()  # only its last value; its place in line, progress and Cancel show here, above the cards
    st.info(f"Fine-tuning 1 epoch at {pct} % sparsity: until it finishes, the cards and charts below show the "
            f"**one-shot** result at {pct} %.", icon=":material/hourglass_top:")
tuned_shown = tuned and not training_now  # the run below is the fine-tuned one


def at(p, epochs=0):
    """The page's recipe at p % sparsity (a curve's point), fine-tuned `epochs`: at 0 % the dense run's (scoped).
    The threshold is the page's own (fields): at 0 % `recipe` holds the default one, and the global curve drawn at 0 %
    was the per-layer one."""
    return common.scoped(recipe.replace(sparsity=p / 100, prune_scope=fields["prune_scope"], finetune_epochs=epochs))


# the curve asked for of another model or pruning mode than this run's (the sidebar's model switched mid-curve): its
# point in flight is withdrawn, as Cancel and the slider's supersede withdraw a run (it stops unless another session
# waits for it), the rest is not trained, and the curve's place says so (the point went on training, unsaid, before)
curve_id = (common.model_name(), common.weights_id(common.model_name()), common.DATASET, at(GRID[1], 1).to_json())
curve_said = None
if st.session_state.get(CURVE) and st.session_state[CURVE] != curve_id:
    curve_said = curve_stopped(st.session_state[CURVE], common.let_go(CURVE))
    st.session_state[CURVE] = False


def curve_button():
    """The fine-tuned curve's button; pressed (True), the curve of this model and pruning mode is asked for."""
    if st.button(f"Compute the fine-tuned curve ({len(missing)} × 1 epoch)", key="prune_ft_curve",
                 help=common.training_time(len(missing), "a point").lstrip()
                      + " Each point is kept on this server, so everyone sees it from then on. The points train one "
                        "at a time in the training queue, which shows your place in line, the progress and a Cancel; "
                        "moving the sparsity slider does not stop them, and finished points are kept."):
        st.session_state[CURVE] = curve_id
        st.session_state.pop(ONE_POINT, None)
        return True
    return False


try:
    run, dense = common.headline(at(pct) if training_now else recipe,
                                 "Fine-tuning 1 epoch…" if tuned_shown else "Pruning…", key="prune_save",
                                 early=True,  # the weights' charts come before the evaluation
                                 cancel_resets="prune_finetune")  # Cancel: the one-shot page, not an empty one
except Exception as e:  # e.g. fine-tuning failing half-way: a message, never a traceback
    st.error(f"{'Fine-tuning' if tuned_shown else 'Pruning'} failed ({type(e).__name__}: {str(e)[:300]}). Nothing of "
             "the run was kept; change a control or rerun the page to try again.")
    st.stop()
m = run["metrics"]

# fine-tuned points for this model and pruning mode, {sparsity %: (accuracy, bytes)}: every one trained so far,
# by this session or any other (they are kept on disk), so a reload or another student sees the curve at once
# lost: the points this session trained that could not be kept on disk (a read-only folder), said under the curve
# as a fine-tune says it, since each point's own warning goes with the rerun that draws the curve with it
ft_points, lost = {0: (dense["metrics"]["accuracy"], dense["metrics"]["artifact_bytes"])}, {}
for p in GRID[1:]:
    point = at(p, 1)
    kept = common.cached_trained_metrics(point)
    if kept is not None:
        ft_points[p] = (kept["accuracy"], kept["artifact_bytes"])
    if not (tuned_shown and p == pct) and (why := common.not_kept_reason(point)):
        lost[p] = why
if tuned_shown:
    ft_points[pct] = (m["accuracy"], m["artifact_bytes"])

# --- weights: histogram before/after, per-layer sparsity ---------------------------------------
left, right = st.columns(2, gap="medium")
with left:
    weights_histogram(dense["weights"], run["weights"])
with right:
    rows = viz.layer_sparsity(m, dense["metrics"])
    trained_only = pct == 0 and m["sparsity"] > 0  # nothing pruned: the zeros are the ones training left
    fig = charts.bars([viz.layer_label(r["name"]) for r in rows], [r["sparsity"] for r in rows],
                      "Sparsity per layer", "layer", "weights at zero (%)" if trained_only else "weights removed (%)",
                      text=[units.pct(r["sparsity"]) for r in rows],
                      hover=[f"{units.pct(r['sparsity'])} {'at zero' if trained_only else 'removed'}: "
                             f"{r['nonzero']:,} of {r['params']:,} not zero" for r in rows],
                      reference={"y": m["sparsity"], "name": f"whole model {units.pct(m['sparsity'])}"},
                      y_percent=True)
    common.chart(fig)
    hardest, biggest = max(rows, key=lambda r: r["sparsity"]), max(rows, key=lambda r: r["params"])
    if trained_only:
        st.caption(f"At 0 % nothing is pruned: these are the weights training left at exactly zero "
                   f"({cards.WHY_ZEROS}). The artifact skips them as it skips pruned weights, so even unpruned it is "
                   "smaller than the float32 model.")
    else:
        st.caption(("Removing a layer's units also removes the next layer's inputs from them, so inner layers "
                    "lose more than the chosen share. The whole-model figure counts biases too: a removed unit's "
                    "bias goes with it." if structured else
                    ((f"One threshold for every layer: here the biggest layer, {viz.layer_label(hardest['name'])}, "
                      f"lost the most ({units.pct(hardest['sparsity'])}): a layer whose weights are small overall "
                      "loses more. " if hardest is biggest else
                      f"One threshold for every layer: here {viz.layer_label(hardest['name'])} lost the most "
                      f"({units.pct(hardest['sparsity'])}), the biggest layer, {viz.layer_label(biggest['name'])}, "
                      f"{units.pct(biggest['sparsity'])}: a layer whose weights are small overall loses more. ")
                     if scope == "global" and rows else "Per layer gives every layer the same share. ")
                    + "The whole-model figure counts biases too, which are never pruned.")
                   + (" " + viz.flops_text(m.get("flops"), dense["metrics"].get("flops")) if structured else ""))
    if structured and pct > 0:
        common.speed_card("prune_speed", (common.model_name(), common.weights_id(common.model_name()),
                                          common.DATASET, run["recipe"]), run, ("Dense", "Pruned", "the pruned model"))

# --- accuracy vs sparsity: one-shot, and fine-tuned -------------------------------------------
# the fine-tuned curve, once its button asked for it (for this model, data and pruning mode: curve_id): its points
# train one at a time, each through the training pool as the switch's fine-tune does, followed at the page's end
# (place in line, progress, Cancel; a rerun goes on with it), and the page is drawn again after each, with it
missing = [p for p in GRID if p not in ft_points]
curving = bool(missing) and st.session_state.get(CURVE) == curve_id
# a reload mid-curve (a new session, the button's press gone) left its point training in the pool, unshown: joined, it
# is followed here (place in line, progress, Cancel) and kept; the rest of the curve waits for the button, since
# whether it was asked for went with the session before the reload (the point may be a fine-tune switch's)
rejoined = None if curving else next((p for p in missing if common.rejoined(at(p, 1)) is not None), None)
if rejoined is not None:
    st.session_state[CURVE], st.session_state[ONE_POINT], curving = curve_id, rejoined, True
one_point = st.session_state.get(ONE_POINT) if curving else None
if one_point is not None and one_point not in missing:  # it finished (kept) while no run of the page followed it
    st.session_state[CURVE], one_point, curving = False, None, False
    st.session_state.pop(ONE_POINT, None)
left, right = st.columns(2, gap="medium")
with right:  # first: the curve on the left may take a while to evaluate (a slow model), the mask needs none
    mask_chart(dense["weights"], run["weights"], structured, pct)
with left:
    if curve_said:
        st.info(curve_said, icon=":material/cancel:")
    curve_slot = st.empty()  # the button, or the point training now
    if missing and not curving:
        with curve_slot.container():
            curving = curve_button()
            if not curving:  # a point of this curve training for another tab or student (the teacher's link)
                next((p for p in missing
                      if common.watch(at(p, 1), f"Fine-tuning at {p} % sparsity", "Compute the fine-tuned curve")),
                     None)
    points = viz.curve_points(GRID, pct)

    def accuracy_curve(curve, margins, key):
        """Accuracy vs sparsity: one-shot (points not evaluated yet estimated, with their margins) and fine-tuned."""
        text = [common.kb(c["artifact_bytes"]) + (f", {c['flops'] / 1e6:,.2f} MFLOPs"  # what each model costs to run
                                                   if structured and c.get("flops") else "") for c in curve]
        series = [{"name": "one-shot", "x": points, "y": [c["accuracy"] for c in curve], "margin": margins,
                   "color": charts.BLUE, "text": text}]
        if len(ft_points) > 1:
            ft = sorted(ft_points.items())
            series.append({"name": "fine-tuned 1 epoch", "x": [p for p, _ in ft], "y": [a for _, (a, _) in ft],
                           "color": charts.GREEN, "text": [common.kb(b) for _, (_, b) in ft]})
        structured_hint(curve)
        common.chart(charts.curve(series, "Accuracy vs sparsity",
                                  "units removed per layer (%)" if structured else "sparsity (%)",
                                  "test accuracy (%)",
                                  current={"x": pct, "y": common.current_accuracy(run, curve[points.index(pct)]),
                                           "name": f"current ({'fine-tuned' if tuned_shown else 'one-shot'}"
                                                   + (", fine-tuning…)" if training_now else ")")},
                                  hline={"y": dense["metrics"]["accuracy"], "name": "dense"}, y_percent=True),
                     key=f"{key}_accuracy")

    def structured_hint(curve):
        """Under the structured toggle, when the model has collapsed at this share of units: the shares of the one-shot
        curve where it has not, with their accuracies, to try instead."""
        dense_acc, data = dense["metrics"]["accuracy"], common.dataset()
        if hint is None or pct == 0 or collapsed(common.current_accuracy(run, curve[points.index(pct)]), dense_acc,
                                                 data) is None:
            return
        held = [(p, c["accuracy"]) for p, c in zip(points, curve)
                if 0 < p < pct and collapsed(c["accuracy"], dense_acc, data) is None]
        hint.info(f"Structured pruning removes whole units, which costs far more accuracy than zeroing the same share "
                  f"of single weights: at {pct} % of each layer's units this model has collapsed. "
                  # each with the points it loses: above chance is not near dense (LeNet-5: 37.8 % at 70 %)
                  + ("One-shot it has not collapsed at " + said_list(f"{p} % ({units.pct(a, 1)}, "
                                                                     f"{100 * (a - dense_acc):+.1f} pts vs dense)"
                                                                     for p, a in held)
                     + " (the curve below): move the slider there." if held else
                     "Move the slider down to where the curve below rises."),
                  icon=":material/lightbulb:")

    common.curve_metrics([at(p) for p in points], "One-shot curve…",
                         draw=accuracy_curve, pending=run)  # the run evaluated once the curve is drawn estimated
    common.warn_not_kept_all(lost, lambda ps: f"the fine-tuned point{'s' * (len(ps) > 1)} at "
                                              + said_list(f"{p} %" for p in ps))
    if len(ft_points) == 1 and not training_now and not curving:
        st.caption("Turn on “Fine-tune 1 epoch” or press the button to draw the fine-tuned curve beside the "
                   "one-shot one.")
# the slider's next values, one-shot (the curve's point there even when fine-tuning): they answer from the cache
common.ahead(*(at(p) for p in viz.next_steps(range(100), pct)))
common.finished()
if training_now:  # the page is drawn: queue (or join) the fine-tune and follow it, then draw again, fine-tuned
    with follow.container():
        tuned_run = common.train_run(recipe, label="Fine-tuning 1 epoch", cancel_resets="prune_finetune")
    if tuned_run is not None:
        st.rerun()
if curving:  # the curve's next point (or the one joined), then the page again with it
    p = one_point if one_point in missing else missing[0]
    with curve_slot.container():
        which = ("a curve point already training: the rest of the curve waits for the button" if p == one_point else
                 f"curve point {len(GRID) - len(missing)} of {len(GRID) - 1}")
        point = common.train_run(at(p, 1), label=f"Fine-tuning at {p} % sparsity ({which})", cancel_resets=CURVE)
        if point is None:  # failed (pooled said how): the points before it are kept, the rest wait for the button
            st.session_state[CURVE] = False
            st.caption("The fine-tuned points finished before it are kept.")
            curve_button()
    if point is not None:
        if p == one_point:  # the joined point alone: the button for the rest
            st.session_state[CURVE] = False
            st.session_state.pop(ONE_POINT, None)
        st.rerun()
elif not missing and st.session_state.get(CURVE) == curve_id:
    st.session_state[CURVE] = False  # every point done
