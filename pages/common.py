"""What every page shares: the cached dataset, models and engine runs, the sidebar, metric cards.

No computation happens here beyond calling compress_engine; the caches make a slider move cheap:
a recipe already seen answers from st.cache_data at once.
"""

import os
import threading

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

import compress_engine as ce

DATASET = os.environ.get("COMPRESS_DATASET", "fashion-mnist")



_frame = threading.local()  # app.py marks the page run it wraps


def through_app():
    """Let every later run of this page go through app.py's frame; every page calls it first.

    Streamlit treats a folder named pages/ as "one page per file" until app.py's st.navigation has
    run once in the process: on a fresh server a first visit straight to /compare runs that page
    alone (the model is then the default one). Switch that legacy mode off, so the next
    interaction already runs inside app.py. No rerun here: it would drop the click that started
    this run (and Streamlit's AppTest runs pages this way on purpose).
    """
    if not getattr(_frame, "active", False):
        PagesManager.uses_pages_directory = False


def kb(n_bytes):
    return f"{n_bytes / 1024:,.1f} KB"


def ratio(x):
    return f"{x:,.1f}×"


@st.cache_resource(show_spinner="Loading Fashion-MNIST…")
def _dataset(name):
    return ce.load_dataset(name)


def dataset():
    """The dataset, or a clear error on the page (and the page stops) if it is missing or corrupt."""
    try:
        return _dataset(DATASET)
    except ce.CompressError as e:
        st.error(f"Cannot load the dataset: {e}")
        st.stop()


@st.cache_resource(show_spinner="Loading model…")
def model(name):
    return ce.load_model(name)


def sidebar():
    """The sample-model picker, drawn by app.py on every page so the choice persists."""
    cards = ce.list_models()
    names = [c["name"] for c in cards if not c["name"].startswith("teacher")]
    if not names:
        st.error("No sample models in sample_models/: rebuild them with "
                 "`python -m compress_engine train lenet-300-100`.")
        st.stop()
    st.sidebar.selectbox("Sample model", names, key="model")


def model_name():
    return st.session_state.get("model", "lenet-300-100")


def card():
    return ce.model_card(model_name())


@st.cache_data(max_entries=512, show_spinner=False)
def _run(model_name, recipe_json, dataset_name):
    res = ce.compress(model(model_name), ce.Recipe.from_json(recipe_json), _dataset(dataset_name))
    return _pack(model_name, res)


def _pack(model_name, res):
    """A compress() Result as plain data (picklable, so st.cache_data and session_state can keep it)."""
    return {"recipe": res.recipe.to_json(), "model": model_name, "metrics": res.metrics, "artifact": res.artifact,
            "timings": res.timings, "history": res.history,
            "weights": {n: p.detach().numpy().copy() for n, p in res.model.state_dict().items()}}


def run(recipe, spinner="Compressing…"):
    """compress(model, recipe) for the sidebar's model, cached by recipe.

    Returns a dict: recipe (JSON), model, metrics, artifact (bytes), timings, history, weights
    (numpy). Bad input shows the engine's message and stops the page: nothing below can draw.
    """
    if recipe is None:  # common.recipe() has already shown why
        st.stop()
    dataset()
    try:
        with st.spinner(spinner):
            return _run(model_name(), recipe.to_json(), DATASET)
    except ce.CompressError as e:
        st.error(str(e))
        st.stop()


def dense():
    """The uncompressed model's run (the reference every delta is measured against)."""
    return run(ce.Recipe(), spinner="Evaluating the dense model…")


def headline(recipe, spinner="Compressing…", label=None, key=None):
    """Run `recipe`, draw its metric cards against the dense model and a Save button; return (run, dense)."""
    base = dense()
    res = run(recipe, spinner)
    metric_cards(res["metrics"], base["metrics"])
    save_button(res, label or "+".join(recipe.techniques()), key=key)
    return res, base


def recipe(**fields):
    """Build a Recipe from widget values; shows the engine's message and returns None if invalid."""
    try:
        return ce.Recipe(**fields)
    except ce.CompressError as e:
        st.error(str(e))
        return None


def metric_cards(metrics, dense):
    """Parameters, artifact bytes, ratio and accuracy, each with its delta against the dense model."""
    c = st.columns(4)
    c[0].metric("Non-zero parameters", f"{metrics['nonzero_params']:,}",
                f"{metrics['nonzero_params'] - dense['nonzero_params']:+,}", delta_color="inverse")
    c[1].metric("Artifact size", kb(metrics["artifact_bytes"]),
                f"{(metrics['artifact_bytes'] - dense['artifact_bytes']) / 1024:+,.1f} KB", delta_color="inverse")
    c[2].metric("Compression ratio", ratio(metrics["ratio"]), help="dense float32 bytes / artifact bytes")
    c[3].metric("Test accuracy", f"{100 * metrics['accuracy']:.2f} %",
                f"{100 * (metrics['accuracy'] - dense['accuracy']):+.2f} pts")


def layer_picker(dense_run, prefix):
    """A layer selector and a log-scale switch side by side, for per-layer histograms; (layer, log_y)."""
    from compress_engine import viz

    c1, c2 = st.columns([2, 1])
    layer = c1.selectbox("Layer", viz.compressible_names(dense_run["weights"]), index=0, key=f"{prefix}_layer")
    return layer, c2.toggle("Log-scale counts", value=True, key=f"{prefix}_log_y")


def train_run(recipe, label="Training", start_from=None):
    """Run a recipe with fine-tuning or distillation behind a progress bar and a live loss curve.

    start_from names the model to compress (default: the sidebar's; Distillation passes its teacher).

    The result is cached in st.session_state by (model, recipe) so it survives reruns. Pressing any
    button (e.g. "Stop") reruns the page, which interrupts the run: nothing half-done is kept.
    """
    import pandas as pd

    store = st.session_state.setdefault("trained", {})
    name = start_from or model_name()
    key = (name, recipe.to_json())
    if key in store:
        return store[key]
    bar = st.progress(0.0, text=f"{label}…")
    chart = st.empty()
    losses = []

    def progress(step, total, loss, acc):
        losses.append({"step": step, "loss": loss})
        bar.progress(min(1.0, step / max(total, 1)), text=f"{label}: step {step:,} of {total:,}"
                     + (f", test accuracy {100 * acc:.1f} %" if acc is not None else ""))
        chart.line_chart(pd.DataFrame(losses), x="step", y="loss", height=200)

    try:
        res = ce.compress(model(name), recipe, dataset(), progress=progress)
    except ce.CompressError as e:
        st.error(str(e))
        return None
    out = _pack(name, res)
    store[key] = out
    bar.empty()
    chart.empty()
    return out


def save_button(result, technique_label, key=None):
    """A "Save run" button: stores a `run` / `train_run` result in the run store (listed on the Compare page).

    Returns the new run id when pressed and saved, else None. Store problems are shown with st.error.
    """
    from compress_engine.store import Store

    if result is None:
        return None
    if not st.button("Save run", key=key or f"save_run:{technique_label}", icon="💾",
                     help="Keep this run (metrics, recipe and artifact) to compare it with others on the Compare page"):
        return None
    try:
        run_id = Store().save(result["model"], result["recipe"], result["metrics"], result["artifact"],
                              technique=technique_label)
    except ce.CompressError as e:
        st.error(f"Could not save the run: {e}")
        return None
    st.toast(f"Saved run #{run_id} ({technique_label}): see it on the Compare page.", icon="✅")
    return run_id


@st.cache_data(show_spinner=False)
def predictions(model_name):
    """The dense model's predicted class for every test image (a list of ints)."""
    from compress_engine.pipeline import reference
    return reference(model(model_name), dataset())[0].tolist()
