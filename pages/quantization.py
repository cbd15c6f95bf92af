"""Uniform quantization: every weight becomes a b-bit integer on an evenly spaced grid."""

import streamlit as st

import compress_engine as ce
from compress_engine.playground import units, viz
from compress_engine.playground.explain import int8_verdict, rounded_to_zero
from pages import charts, common

common.through_app()

MAX_LINES = 256  # draw the grid's levels up to this many (16 bits has 65,536)


INT8_SECONDS = 3.0  # about how long the timing may take: ResNet-8 gets 8 or so turns, not 20 (7 s)


@st.cache_data(show_spinner="Timing the int8 runtime…", max_entries=8)
def int8_timing(model_name, dataset_name):
    """fp32 vs torch.ao int8 latency of the dense sample model on 256 test images, once per model."""
    return ce.int8_latency(common.model(model_name), common.dataset().x("test")[:256], seconds=INT8_SECONDS)


def int8_card():
    """fp32 vs int8 latency of the dense model, measured on this machine (once per model; "Measure again")."""
    t = int8_timing(common.model_name(), common.DATASET)
    n_int8, n_all = len(t["int8_layers"]), len(t["int8_layers"]) + len(t["fp32_layers"])
    st.markdown("**A real int8 runtime** (dense model, torch.ao dynamic quantization" +
                (f"; **only {n_int8} of its {n_all} layers run in int8**: convolutions stay float32, so the "
                 "times below are mostly float32's)" if t["fp32_layers"] else ")"))
    c = st.columns(3)
    lo, hi, n = *t["speedup_spread"], t["repeats"]
    tells, verdict = int8_verdict(t, INT8_SECONDS)
    c[0].metric("float32", units.ms(t["fp32_ms"]))
    if tells and not verdict:  # a difference its turns show: green or red beside the time
        common.delta_metric(c[1], "int8", units.ms(t["int8_ms"]), units.ms(t["int8_ms"] - t["fp32_ms"], signed=True),
                            fewer_is_better=True)
    else:  # none they can tell: no coloured change that the Speed-up card's "—" or the caption contradicts
        c[1].metric("int8", units.ms(t["int8_ms"]))
    c[2].metric("Speed-up", common.ratio(t["speedup"]) if tells and not verdict else "—",
                help="float32's median time / int8's (the spread is below)")
    if st.button("Measure again", key="quant_remeasure", help="Timings vary with the machine's load."):
        int8_timing.clear()
        st.rerun()
    st.caption(
        f"Median of {n} forward passes of each over 256 test images on this machine's CPU "
        f"({t['engine']} engine), float32 and int8 in turns; the turns' speed-ups spread from {common.ratio(lo)} "
        f"to {common.ratio(hi)} (middle half)" + (f"; {verdict}" if verdict else "") + ". "
        f"int8 weights and matrix products: {', '.join(t['int8_layers']) or 'none'}; "
        f"still float32: {', '.join(t['fp32_layers']) or 'none'} (torch's dynamic quantization covers Linear, "
        "LSTM and GRU layers only). It uses torch's own 8-bit per-tensor grid, independent of the settings above; "
        "the numbers on this page are the fake-quantized model's, which computes exactly what the integers would.")


@st.fragment
def layer_histogram(dense_weights, weights, bits, symmetric, per_channel, calibration):
    """One layer's weights and its grid; choosing another layer reruns only this fragment."""
    layer, log_y = common.layer_picker({"weights": dense_weights}, "quant")
    w = dense_weights[layer]
    grid = viz.quant_grid(w, bits, symmetric, per_channel, calibration)
    if per_channel:
        before, after = viz.channel_values(w, 0), viz.channel_values(weights[layer], 0)
        what = f"{layer}, output channel 0"
    else:
        before, after = viz.values({layer: w}), viz.values({layer: weights[layer]})
        what = layer
    levels = grid["values"]
    draw = len(levels) <= MAX_LINES
    rng = viz.value_range(before, levels if draw else [], pad=0.02)
    c0, edges = viz.histogram(before, 150, rng)
    c1_, _ = viz.histogram(after, 150, rng)
    fig = charts.histogram([{"name": f"float32 weights ({len(before):,})", "counts": c0, "edges": edges,
                             "color": charts.BLUE},
                            {"name": "quantized weights", "counts": c1_, "edges": edges, "color": charts.ORANGE,
                             "opacity": 0.5}],
                           f"{what}: weights and the {len(levels):,}-value grid", log_y=log_y,
                           vlines=[charts.vline(levels, f"grid ({len(levels)} values)", color=charts.RED, width=1)]
                           if draw else ())
    common.chart(fig)
    note = (f"Scale s = {grid['scale']:.3g}, zero point z = {grid['zero_point']}, q in "
            f"[{grid['qmin']}, {grid['qmax']}].")
    if per_channel:
        note += (" Per channel every output unit has its own grid: shown are channel 0's weights and grid.")
    if not draw:
        note += f" The {len(levels):,} levels are too dense to draw; they span [{levels[0]:.3g}, {levels[-1]:.3g}]."
    st.caption(note)


ONE_BIT = ("Both grids keep 0 exactly (so pruned weights stay pruned, as PyTorch's fake-quantize does), so a 1-bit "
           "grid is 0 and one other level. The symmetric grid would put it at -2 × the largest |weight| and make "
           "every positive weight 0, so 1-bit weights use the affine grid: its level, max − min away from 0, lies "
           "on the side where the weights reach further, and every weight of the other sign still becomes 0 (per "
           "channel, each unit keeps its own side).")


def _bits_changed():
    # a symmetric grid cannot hold 1-bit weights (the engine refuses it): 1 bit forces the affine grid
    if st.session_state.get("quant_bits") == 1:
        st.session_state["quant_symmetric"] = False


st.title("Quantization")
controls, explain = st.columns([1, 1.25], gap="large")
first = common.start_settings("quantization", lambda f: {"quant_bits": f["bits"]})
with controls:
    bits = st.select_slider("Bit width", ce.BITS, key="quant_bits", persist_state="session", on_change=_bits_changed,
                            value=first["quant_bits"], bind=common.LINK,
                            help="1 to 8 bits, or 16. Float32 weights use 32.")
    symmetric = st.radio("Grid", [False, True], horizontal=True, key="quant_symmetric", persist_state="session",
                         bind=common.LINK,
                         disabled=bits == 1,
                         format_func=lambda s: "Symmetric (zero point 0)" if s else "Affine (with a zero point)",
                         help=ONE_BIT if bits == 1 else None) and bits != 1
    per_channel = st.radio("Granularity", [False, True], horizontal=True, key="quant_per_channel",
                           persist_state="session", bind=common.LINK,
                           format_func=lambda c: "Per output channel" if c else "Per tensor")
    calibration = st.radio("Calibration", ["minmax", "mse"], horizontal=True, key="quant_calibration",
                           persist_state="session", bind=common.LINK,
                           format_func={"minmax": "Min-max", "mse": "MSE (search the clipping range)"}.get)
with explain:
    st.markdown(
        "**Uniform quantization** stores each weight as a *b*-bit integer *q* on an evenly spaced grid of "
        "$2^b$ values with step *s* (the scale): 8 bits instead of 32 is 4× smaller per stored weight, 4 bits "
        "8×. The artifact's ratio on the cards below may differ from that: any weights that round to exactly zero "
        "(and any pruned ones) are not stored as codes but as gaps between the others' positions, which can make "
        "it larger (when some round to zero, a note under the cards counts them), and the grids' scales and zero "
        "points and the header add bytes.\n\n"
        "- **Affine** grids span [min, max] of the weights and use a zero point *z* so that 0 is exactly on the "
        "grid; **symmetric** grids are centred on 0 (*z* = 0), simpler to compute with but they waste levels when "
        "the weights are lopsided. At 1 bit a grid that keeps 0 has one other level, so it keeps the weights of "
        "one sign only (symmetric: the negative ones).\n"
        "- **Per channel**: each output unit gets its own grid, so a unit with small weights is not forced onto "
        "the coarse grid of the layer's largest one.\n"
        "- **Min-max** calibration covers every weight; **MSE** shrinks the range, clipping rare outliers when "
        "that lowers the total squared error.")
    st.latex(r"q = \operatorname{clamp}\!\left(\operatorname{round}\!\left(\tfrac{w}{s}\right) + z,\;"
             r"q_{\min},\, q_{\max}\right)")
    st.latex(r"w \approx \hat w = s\,(q - z)")
    st.latex(r"\text{min-max: } s = \tfrac{\max w - \min w}{q_{\max} - q_{\min}},\;\; "
             r"z = q_{\min} - \operatorname{round}\!\left(\tfrac{\min w}{s}\right)")
    st.latex(r"\text{symmetric: } z = 0,\;\; s = \tfrac{\max |w|}{(q_{\max} - q_{\min})/2}")

common.coalesce()  # a held arrow key: only its last value is compressed
recipe = common.recipe(bits=bits, symmetric=symmetric, per_channel=per_channel, calibration=calibration)
run, dense = common.headline(recipe, "Quantizing…", key="quant_save", early=True)  # weights first, accuracy next
m = run["metrics"]
zeroed = rounded_to_zero(m, dense["metrics"])
if zeroed:
    st.info(zeroed, icon=":material/info:")

# --- one layer's weights with the grid ----------------------------------------------------------
left, right = st.columns(2, gap="medium")
with left:
    layer_histogram(dense["weights"], run["weights"], bits, symmetric, per_channel, calibration)
int8_slot = right.empty()  # filled last (int8_card): its timing takes ~2 s on ResNet-8, and nothing else needs it
int8_slot.caption("A real int8 runtime is timed here once the curves below are computed.")  # (an upload: a minute)

# --- accuracy and bytes vs bits -------------------------------------------------------------------
points = [b for b in ce.BITS if not (symmetric and b == 1)]
scheme = f"{'symmetric' if symmetric else 'affine'}, {'per channel' if per_channel else 'per tensor'}, {calibration}"


def bit_curves(curve, margins, key):
    # bit widths at their true distances (8 -> 16 is 8 bits, not one step): the size grows in a straight line
    common.accuracy_and_size(curve, margins, key, run, dense, points, bits, "bit width", "bits per weight",
                             (scheme, scheme), f"current ({bits} bit{'s' * (bits != 1)})", "dense float32", x_ticks=points)


common.curve_metrics([recipe.replace(bits=b) for b in points], "Curve over bit widths…", draw=bit_curves,
                     pending=run)  # the run evaluated once the curve is drawn estimated
st.caption(f"Same grid settings at every point. The dense float32 model is "
           f"{common.kb(dense['metrics']['dense_bytes'])}.")
with int8_slot.container():
    int8_card()
# the slider's next values (the curve's points there are shipped metrics, not runs: the cards need the run itself)
common.ahead(*(recipe.replace(bits=b, symmetric=symmetric and b != 1) for b in viz.next_steps(ce.BITS, bits)))
common.finished()
