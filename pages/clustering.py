"""Weight clustering: every weight of a layer shares one of k centroids and is stored as a small index."""

import streamlit as st

from compress_engine.playground import units, viz
from compress_engine.playground.explain import code_bits, stored_as
from pages import charts, common

common.through_app()

KS = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)  # cluster counts on a log scale
CURVE = (2, 4, 8, 16, 32, 64, 128, 256)  # cluster counts of the curves (plus the current one)
INITS = {"linear": "Linear", "density": "Density", "kmeans++": "k-means++"}

@st.fragment
def layer_histogram(dense_weights, weights, pct):
    """One layer's weights and centroids; choosing another layer reruns only this fragment."""
    layer, log_y = common.layer_picker({"weights": dense_weights}, "cluster")
    clustered = weights[layer]
    kept = viz.kept_values(dense_weights[layer], clustered)
    cents = viz.centroids(clustered)
    rng = viz.value_range(kept, cents, pad=0.02)
    counts, edges = viz.histogram(kept, 150, rng)
    fig = charts.histogram([{"name": f"non-zero weights before clustering ({len(kept):,})", "counts": counts,
                             "edges": edges, "color": charts.BLUE}],
                           f"{layer}: weights and their {len(cents)} centroids", log_y=log_y,
                           vlines=[charts.vline(cents, f"centroids ({len(cents)})", color=charts.RED, width=1.5)])
    common.chart(fig)
    st.caption("Every weight between two red lines' midpoints becomes the line it is nearest to. "
               + ("Pruned weights are left out: they are stored as gaps, not clustered." if pct else ""))


st.title("Weight clustering")
controls, explain = st.columns([1, 1.25], gap="large")
first = common.start_settings("clustering", lambda f: {"cluster_k": f["clusters"]})
with controls:
    k = st.select_slider("Clusters per layer (k)", KS, key="cluster_k", persist_state="session",
                         value=first["cluster_k"], bind=common.LINK,
                         help="2 to 256 centroids per layer, on a log scale.")
    init = st.radio("Centroid initialisation", list(INITS), format_func=INITS.get, horizontal=True,
                    key="cluster_init", persist_state="session", bind=common.LINK,
                    help="Linear: evenly spaced between the smallest and largest weight (keeps the rare large "
                         "weights, Deep Compression's choice). Density: evenly spaced in the weights' cumulative "
                         "distribution (many centroids near zero). k-means++: random seeds chosen far apart.")
    pct = st.slider("Prune first (sparsity)", 0, 99, 0, 1, format="%d %%", key="cluster_sparsity",
                    persist_state="session", bind=common.LINK,
                    help="Per-layer magnitude pruning before clustering; only the kept weights are clustered.")
    huffman = st.toggle("Huffman-code the indices", key="cluster_huffman", persist_state="session", bind=common.LINK,
                        help="Frequent cluster indices (and position gaps) get shorter codes.")
with explain:
    st.markdown(
        "**Weight sharing** (Deep Compression, Han et al. 2016, §3): k-means groups each layer's weights into "
        "*k* clusters and replaces every weight by its cluster's centroid. The layer is then stored as a "
        "table of *k* float32 centroids plus one small index per weight: the index needs only log₂ *k* bits "
        "instead of the 32 of a float. With pruning first, only the kept weights are clustered; the zeros are "
        "stored as gaps between positions. Huffman coding then gives the frequent indices shorter codes.")
    st.latex(r"\text{bits per index} = \lceil \log_2 k \rceil = \lceil \log_2 %d \rceil = %d"
             % (k, code_bits(k)))
    st.latex(r"\text{bytes per layer} \approx \tfrac{1}{8}\, n \lceil \log_2 k \rceil + 4k")
    st.caption("n = non-zero weights kept; the bytes per layer also store the gaps between their positions whenever "
               "a layer has zeros" + (f", which {common.model_name()} has even unpruned (training left some of its "
                                      "weights at exactly zero)." if common.trained_zeros() else "."))

common.coalesce()  # a held arrow key: only its last value is compressed
recipe = common.recipe(sparsity=pct / 100, clusters=k, cluster_init=init, huffman=huffman)
run, dense = common.headline(recipe, "Clustering…", key="cluster_save", early=True)  # weights first, accuracy next
m = run["metrics"]

# --- one layer's weights with its centroids -----------------------------------------------------
left, right = st.columns(2, gap="medium")
with left:
    layer_histogram(dense["weights"], run["weights"], pct)
with right:
    # what each tensor became first: a model of long names (ResNet-8's "blocks.2.shortcut.0.weight") overflows
    # the half-page column, and the columns pushed out of sight are then the shape and count, not the answer
    rows = [{"tensor": r["name"], "stored as": stored_as(r, huffman), "KB": r["bytes"] / units.KB, "non-zero": r["nonzero"],
             "shape": "×".join(map(str, r["shape"]))} for r in m["layers"]]
    st.markdown("**What each tensor stores** (a clustered one: its centroids and "
                + ("codes Huffman- or range-coded where that is smaller, of varying length: bits a kept weight are "
                   "its bytes × 8 / its non-zero weights, positions and centroids included" if huffman else
                   "an index of so many bits per kept weight")
                + "; biases stay float32)")
    st.dataframe(rows, hide_index=True, width="stretch",
                 column_config={"non-zero": st.column_config.NumberColumn(format="localized"),
                                "KB": st.column_config.NumberColumn("KB", format="%.1f")})
    parts = m["bytes_breakdown"]
    st.caption("Artifact bytes by part: " + ", ".join(f"{key} {common.kb(v)}" for key, v in parts.items())
               + f". Dense float32: {common.kb(m['dense_bytes'])}.")

# --- accuracy and bytes vs k --------------------------------------------------------------------
points = viz.curve_points(CURVE, k)


def k_curves(curve, margins, key):
    common.accuracy_and_size(curve, margins, key, run, dense, points, k, "cluster count",
                             "clusters per layer k (log scale)", (init, "artifact"), f"current (k = {k})",
                             x_log=True, x_ticks=CURVE)


common.curve_metrics([recipe.replace(clusters=kk) for kk in points], "Curve over k…", draw=k_curves,
                     pending=run)  # the run evaluated once the curve is drawn estimated
st.caption(f"Same initialisation, pruning ({pct} %) and Huffman setting at every point. "
           f"The dense float32 model is {common.kb(dense['metrics']['dense_bytes'])}.")
common.ahead(*(recipe.replace(clusters=kk) for kk in viz.next_steps(KS, k)))  # the slider's next values
common.finished()
