"""What every page shares: the cached dataset, models and engine runs, the sidebar, metric cards.

No computation happens here beyond calling compress_engine; the caches make a slider move cheap:
a recipe already seen answers from st.cache_data at once.

The sidebar also takes the user's own weights (ce.read_weights: safetensors or a weights-only
torch checkpoint, so an upload never runs code). An uploaded model lives in this browser session
only; everywhere else it is a model name like a sample's, and cache keys also carry its SHA-256.
"""

import functools
import hashlib
import html
import json
import logging
import os
import re
import shlex
import threading
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import streamlit as st
from streamlit.runtime import Runtime
from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner import get_script_run_ctx

import compress_engine as ce
from compress_engine.playground import units
from compress_engine.playground.cards import (CLASSES, DEFAULT_DATA, IMAGE, data_label, deployed_parameters,
                                              test_set_text)

DEFAULT_DATASET = DEFAULT_DATA  # what the command line's --data is when not given (cli.py)
DATASET = os.environ.get("COMPRESS_DATASET", DEFAULT_DATASET)
MAX_WEIGHTS_MB = units.MAX_UPLOAD_MB  # uploaded weight files, in MB of 1,000,000 bytes
MAX_UPLOADS = 3      # uploaded models kept per session, oldest dropped first
log = logging.getLogger(__name__)  # what work in threads of our own (warm(), ahead()) could not do: the server's log


_frame = threading.local()  # frame() marks the page run app.py wraps
_running = [0, 0.0, 0.0]  # page runs in progress in this process (all sessions); when the last one ended and
# when the last one started (monotonic)
_running_lock = threading.Lock()
_waiting = [0]  # of those, the ones waiting for a training job (following its progress), computing nothing


def chart(fig, where=None, title=None, key=None):
    """Draw a Plotly figure full width in `where` (st by default, or a column or slot), followed by its text
    (charts.describe: title, axes, every series' points), visually hidden for a screen reader: the SVG alone was read
    as its tick labels run together. In a container of their own, so a slot (st.empty) holds both. title: what the
    text calls a figure without a title of its own. The chart is updated in place when a rerun changes it
    (live_chart); key: its name from run to run, by default its place on the page."""
    from pages import charts, live_chart
    box = (where or st).container()
    live_chart.draw(box, fig, key)
    box.html(f'<p class="chart-text">{html.escape(charts.describe(fig, title))}</p>')


@contextmanager
def frame():
    """app.py runs each page inside this, so through_app() knows the page is not running alone. It also counts the
    session's runs (warm() treats the first one apart) and the page runs in progress, which runs computed ahead
    give way to (ahead())."""
    _frame.active = True
    st.session_state["_runs"] = st.session_state.get("_runs", 0) + 1
    with _running_lock:
        _running[0] += 1
        _running[2] = time.monotonic()
    try:
        yield
    finally:
        _frame.active = False
        with _running_lock:
            _running[0] -= 1
            _running[1] = time.monotonic()


def through_app():
    """Let every later run of this page go through app.py's frame; every page calls it first.

    Streamlit treats a folder named pages/ as "one page per file" until app.py's st.navigation has
    run once in the process: on a fresh server a first visit straight to /compare runs that page
    alone (no model choice in the sidebar, and every file of pages/ listed as a page). Switch that
    legacy mode off, and run the session's first such run again: now inside app.py, on the same
    page. Only a session's first run is run again: a later one may have been started by a click,
    which a rerun would drop. Streamlit's AppTest runs pages alone on purpose, and gets no rerun.
    """
    if getattr(_frame, "active", False):
        return
    PagesManager.uses_pages_directory = False
    if _served() and not st.session_state.get("_through_app"):
        # once per session: never a loop, and a session's first run (a page load) has no click to drop
        st.session_state["_through_app"] = True
        st.rerun()


kb, ratio, pct = units.kb, units.ratio, units.pct  # the one unit convention (1 KB = 1,000 bytes)


def data_text():
    """This server's data as pages name it: "Fashion-MNIST" for the default, else its --data name ("idx:/folder")."""
    return data_label(DATASET)


def test_count():
    """How many test images this server's data has (Fashion-MNIST's 10,000; a folder of one's own, its own count)."""
    return len(dataset().y("test"))


class DoesNotFit(ce.DatasetError):
    """Data that loads but that the dashboard's models cannot take (another input shape, labels not classes 0-9)."""


@st.cache_resource(show_spinner=f"Loading {data_text()}…")
def _dataset(name):
    data = ce.load_dataset(name)
    try:
        return data.require(input_shape=IMAGE, n_outputs=CLASSES)
    except ce.DatasetError as e:
        raise DoesNotFit(str(e)) from None


def dataset():
    """The dataset, or a clear error on the page (and the page stops) if it is missing or corrupt, or if the
    dashboard's models cannot take it (then where such data can be compressed: the command line)."""
    try:
        return _dataset(DATASET)
    except DoesNotFit as e:
        st.error(f"Cannot load the dataset: {md_text(e)}. The dashboard's models (its sample models "
                 f"and uploaded weights) take {'×'.join(map(str, IMAGE))} images in at most {CLASSES} "
                 "classes. Compress a model made for these data on the command line: "
                 f"`compression-playground run --model file.py:fn{data_flag()}` (README, *Command line*).")
        st.stop()
    except ce.CompressError as e:
        st.error(f"Cannot load the dataset: {md_text(e)}")
        st.stop()


@st.cache_resource(show_spinner=False, max_entries=4)
def _first_images(name):
    return ce.first_test_images(name)


def first_test_images():
    """The dataset's first test images and labels ({"x", "y", "classes"}, numpy), read from their files alone:
    no torch, no whole dataset. A clear error on the page (and the page stops) if the data is missing or corrupt."""
    try:
        return _first_images(DATASET)
    except ce.CompressError as e:
        st.error(f"Cannot load the dataset: {md_text(e)}")
        st.stop()


@st.cache_resource(show_spinner="Loading model…")
def _sample_model(name):
    return ce.load_model(name)


def uploads():
    """This session's uploaded models, oldest first: {name: {"model", "card", "sha256"}}."""
    return st.session_state.setdefault("uploaded_models", {})


def model(name):
    """The model called `name`: one uploaded in this session, else a sample model (shared by all sessions). In a
    thread of our own, which has no session (warm(), ahead()), only a sample model."""
    up = _upload(name)
    return up["model"] if up is not None else _sample_model(name)


def _upload(name):
    """This session's upload called `name`, else None (always None in a thread of our own: it has no session)."""
    return uploads().get(name) if get_script_run_ctx(suppress_warning=True) is not None else None


def weights_id(name):
    """What identifies a model's weights besides its name, for cache keys: an upload's SHA-256, '' for samples."""
    up = uploads().get(name)
    return up["sha256"] if up is not None else ""


def sidebar(page=None):
    """The model picker (sample models and this session's uploads) and the weights uploader, drawn by
    app.py on every page so the choice persists. page: the st.Page shown (a link's model in another case opens it
    again with the name as the server spells it, in the URL too: link_case)."""
    cards = ce.list_models()
    names = [c["name"] for c in cards if not c["name"].startswith("teacher")] + list(uploads())
    if not names:
        st.error("No sample models in sample_models/: rebuild them with "
                 "`python -m compress_engine train lenet-300-100`.")
        st.stop()
    link_asked()
    link_case("model", names, page)
    if st.session_state.get("model", names[0]) not in names:  # an upload of another (or an expired) session
        st.session_state["model"] = names[0]
    link_note("model", names, names[0], "model", st.sidebar)
    st.sidebar.selectbox("Model", names, key="model", bind=LINK,
                         help="The shipped sample models, and any weights you uploaded below in this session.")
    st.sidebar.file_uploader(
        "Your own weights (.safetensors / .pt, state_dict only)", type=["safetensors", "pt", "pth"],
        key="weights_upload", on_change=_on_weights_upload, max_upload_size=MAX_WEIGHTS_MB,
        help=f"A state dict of compress_engine's MLP (784 inputs, 10 classes), LeNet-5 or ResNet (1 to 6 blocks, "
             f"BatchNorm or folded), of any widths up to {MAX_WEIGHTS_MB} MB and up to the cost per image at which this "
             "server scores the test set in about a minute (a model over it is refused with its count and the "
             "limit). It is "
             "read without running code (safetensors, or torch.load with weights_only=True) and scored on the test "
             f"set; it stays in this session only. A session keeps {MAX_UPLOADS} uploads: another one drops the "
             "oldest (the message says which).")
    kind, text = st.session_state.get("weights_message") or (None, None)
    if kind == "error":  # until the file is removed or replaced: it says why the file shown was refused
        st.sidebar.error(md_text(text))  # literally: a refusal quotes names such as __main__.MyMLP
    elif kind == "success":  # once: "it is selected above" stops being true when another model is chosen
        st.sidebar.success(text)
        st.session_state.pop("weights_message")


def link_note(key, names, fallback, what, where=st):
    """Call before the select box `key` (bound to the URL): a first load's link naming a model that is not among
    `names` opens on `fallback`, as Streamlit drops the value, and a note says why until another is chosen. A name
    differing only in case (model=LeNet-5) is taken as the model it names. An upload's name (upload-…) is not a typo:
    it lives only in the browser tab that uploaded it, so another tab, another person or the same tab reloaded starts
    without it; a teacher reloading with their own upload was told it "is not on this server"."""
    mark = f"_link_{key}"
    if key not in st.session_state:  # the session's first run of this widget: what the link asked for
        linked = st.query_params.get(key)
        if linked is not None and linked not in names:
            same = _spelled_as(linked, names)
            if same:
                st.session_state[key] = same
            else:
                st.session_state[mark] = linked
    linked = st.session_state.get(mark)
    if linked is None:
        return
    if st.session_state.get(key, fallback) != fallback:
        st.session_state.pop(mark)
        return
    if linked.startswith("upload-"):
        why = ("is an uploaded model: an upload stays in the browser tab that uploaded it, and another tab, a reload "
               "or a link starts without it")
        then = "Upload its weights again in the sidebar to use it here"
    else:
        why, then = "is not on this server", "Check the link's spelling, upload the model's weights in the sidebar"
    where.warning(link_text(f"{what}, {md_text(linked)},", why, md_text(fallback))
                  + f" {then}, or pick another {what}.")


def link_case(key, names, page):
    """A first load's link whose `key` names one of `names` in another case (model=LeNet-5): `page` opens again on
    the same link with the name as spelled here. Streamlit drops a value that is not an option, and a value the server
    sets is not written to the URL (nor may the server write a bound widget's parameter), so the link's model was
    shown but a reload opened the default."""
    linked = st.query_params.get(key)
    if page is None or key in st.session_state or linked is None or linked in names:
        return
    same = _spelled_as(linked, names)
    if same:
        params = {k: st.query_params.get_all(k) for k in st.query_params}
        st.switch_page(page, query_params={**params, key: same})


def _spelled_as(linked, names):
    """The one of `names` a link's value names in another case (or with spaces around), else None."""
    return next((n for n in names if n.lower() == linked.strip().lower()), None)


def link_text(what, why, shown):
    """A link's note, one sentence for every setting it could not open on: "This link's model, x, is not on this
    server, so the page shows lenet-300-100." (link_note, link_values_note)."""
    return f"This link's {what} {why}, so the page shows {shown}."


def link_asked():
    """At the session's first run, before any widget binds to the URL (sidebar()): what its link held, {parameter:
    [values]}, kept until link_values_note has looked at it (Streamlit drops a value it cannot take silently)."""
    if "_link_asked" not in st.session_state:
        st.session_state["_link_asked"] = {k: st.query_params.get_all(k) for k in st.query_params if k != "model"}
    asked = st.session_state["_link_asked"]
    for k in [k for k in asked if k not in st.session_state and k not in st.query_params]:
        asked.pop(k)  # dropped from the URL as another page's setting (Streamlit): not this link's page's


def _took(texts, value):
    """Whether a widget holding `value` took a link's `texts` (its values for the widget's parameter): a number
    equal, a switch's true/false, an option's value in its label ("Per layer": "layer"), case aside."""
    if isinstance(value, (list, tuple)):
        return sorted(t.strip().lower() for t in texts) == sorted(str(v).lower() for v in value)
    if len(texts) != 1:
        return False
    t = texts[0].strip().lower()
    if value is None or isinstance(value, bool):
        return value is None or t == str(value).lower()
    if isinstance(value, (int, float)):
        try:
            return float(t) == float(value)
        except ValueError:
            return False
    return str(value).lower() in t


def link_values_note(where=st):
    """After the page's first complete run: a note naming each setting of the link the page could not open on (out
    of range, not a number, not an option, given twice: Streamlit drops it silently), and what it shows instead,
    until that setting is changed. A teacher's link with prune_sparsity=150 opened at 80 % while they spoke of 90."""
    asked, bad = st.session_state.get("_link_asked", {}), st.session_state.get("_link_bad", {})
    for k in [k for k in asked if k in st.session_state]:  # drawn by now: it took the link's value, or not
        texts = asked.pop(k)
        if f"_link_{k}" not in st.session_state and not _took(texts, st.session_state[k]):  # (link_note's: said)
            bad[k] = (texts, st.session_state[k])
    bad = {k: v for k, v in bad.items() if st.session_state.get(k) == v[1]}
    st.session_state["_link_bad"] = bad
    for key, (texts, shown) in bad.items():
        what, why = ((f"{key}={texts[0]}", "is not a value this setting takes (out of its range, not a number, or "
                      "not one of its options)") if len(texts) == 1 else
                     (f"{key} ({', '.join(texts)})", f"is given {len(texts)} times"))
        where.warning(link_text(md_text(what), why, md_text(shown)), icon=":material/link_off:")


def _on_weights_upload():
    """on_change of the weights uploader (runs before the script, so it may still select the new model)."""
    st.session_state.pop("weights_message", None)
    f = st.session_state.get("weights_upload")
    if f is not None:
        st.session_state["weights_message"] = upload_weights(f.getvalue(), f.name)


def upload_weights(data, filename):
    """Process an uploaded weight file for the sidebar -> ("success" | "error", message); never raises.

    On success the model is added to this session's choice and selected (call this before the
    model selectbox is drawn, as the uploader's on_change callback does)."""
    filename = _safe_filename(filename)
    if len(data) > MAX_WEIGHTS_MB * units.MB:  # checked before the bytes are parsed
        return "error", (f"{filename} is {units.mb(len(data))} ({len(data):,} bytes); weight uploads are limited "
                         f"to {MAX_WEIGHTS_MB} MB ({MAX_WEIGHTS_MB * units.MB:,} bytes) here.")
    try:
        name, gone = add_upload(data, filename)
    except ce.CompressError as e:
        return "error", f"Cannot use these weights: {e}"
    except Exception as e:  # defence in depth: an upload must never show a traceback
        return "error", f"Could not read {filename} ({type(e).__name__}: {str(e)[:200]})."
    st.session_state["model"] = name
    c = uploads()[name]["card"]
    return "success", (f"Added **{name}** ({c['parameters']:,} parameters, test accuracy "
                       f"{100 * c['test_accuracy']:.2f} %); it is selected above."
                       + (f" Dropped **{', '.join(gone)}**, the oldest: a session keeps at most {MAX_UPLOADS} "
                          "uploads; upload that file again to use it." if gone else ""))


def add_upload(data, filename):
    """Read weights with the engine, score the model on the whole test set (its dense accuracy, as a sample
    model's card has) and add it to this session's models; returns its name and the uploads it pushed out, oldest
    first (a file uploaded again is not new). CompressError if bad."""
    try:
        ds = _dataset(DATASET)
    except DoesNotFit:  # data the pages cannot take: read_weights says so, describing them
        ds = ce.load_dataset(DATASET)
    net = ce.read_weights(data, filename, max_bytes=MAX_WEIGHTS_MB * units.MB, cost_limit=True, dataset=ds)
    sha = hashlib.sha256(data).hexdigest()
    name = f"upload-{_stem(filename)}-{sha[:8]}"
    _, acc = ce.reference(net, ds)
    store = uploads()
    store.pop(name, None)
    if name in dropped():  # uploaded again
        dropped().remove(name)
    store[name] = {"model": net, "sha256": sha, "card": _upload_card(name, filename, net, acc, ds, sha, len(data))}
    gone = []
    while len(store) > MAX_UPLOADS:
        gone.append(next(iter(store)))
        store.pop(gone[-1])
        dropped().append(gone[-1])
    return name, gone


def dropped():
    """The uploads this session dropped to keep MAX_UPLOADS, oldest first (a page that had chosen one says so)."""
    return st.session_state.setdefault("dropped_uploads", [])


def _safe_filename(filename):
    """An upload's name with only letters, digits, '.', '-', '_' and spaces (it is shown as Markdown),
    shortened but keeping its suffix (which says how to read it)."""
    path = Path(re.sub(r"[^\w.\- ]", "_", str(filename)) or "weights")
    return path.stem[:100] + path.suffix[:16]


def _stem(filename):
    return re.sub(r"[^A-Za-z0-9]+", "-", Path(filename).stem).strip("-")[:32].strip("-") or "weights"


def _upload_card(name, filename, net, acc, ds, sha, n_bytes):
    """A model card for uploaded weights, with the same fields as a sample model's."""
    spec = ce.arch_spec(net)
    arch = ce.arch_text(spec)
    params = ce.param_count(net)
    return {"name": name, "description": f"Your weights from {filename}: {arch}, scored on the test set when uploaded.",
            "spec": spec, "parameters": params, **ce.card_sizes(net), "test_accuracy": acc,
            "test_set": test_set_text(ds),
            "training": {"source": "uploaded in this browser session", "file": filename, "bytes": n_bytes,
                         "sha256": sha},
            "reproduce": None}


def model_name():
    return st.session_state.get("model", "lenet-300-100")


def _model_args():
    """(name, dataset, weights id) of the sidebar's model: how _eval_seconds, warm() and ahead() key a model."""
    name = model_name()
    return name, DATASET, weights_id(name)


def card():
    """The chosen model's card: a sample model's JSON card, or the one made when the weights were uploaded."""
    return card_of(model_name())


def card_of(name):
    """Model `name`'s card (an upload's in this session, else a sample's); ModelError for a name neither knows."""
    up = _upload(name)
    return up["card"] if up is not None else ce.model_card(name)


@st.cache_data(max_entries=512, show_spinner=False)
def _run(model_name, recipe_json, dataset_name, weights_id=""):
    recipe = ce.Recipe.from_json(recipe_json)
    if ce.trained.trains(recipe):  # kept on disk: once trained, every session and every restart has it at once
        hit = _trained_hit(model_name, recipe_json, dataset_name, weights_id)
        if hit is not None:
            return hit
    res = ce.curves.compress(model(model_name), recipe, _dataset(dataset_name),  # shipped runs: no evaluation
                             _shipped(model_name, dataset_name, weights_id)[0],
                             model_logits=_kept_logits(model_name, dataset_name, weights_id))
    args = (model_name, dataset_name, weights_id)
    if "evaluate" in res.timings:
        _eval_seconds[args] = res.timings["evaluate"]  # see ahead()
    elif _eval_seconds.get(args) is None:  # a shipped run: the seconds its evaluation took when it shipped, until
        _eval_seconds[args] = _shipped(*args)[1]  # this machine measures one
    _computed.add((model_name, recipe_json, dataset_name, weights_id))  # see headline(early=True)
    packed = _pack(model_name, res)
    if ce.trained.trains(recipe):
        not_kept(packed, _keep_trained(model_name, recipe, dataset_name, weights_id, res))
    return packed


_computed = set()  # _run's arguments it has computed in this process (st.cache_data can't be asked without computing)


@st.cache_resource(show_spinner=False, max_entries=16)
def _shipped(model_name, dataset_name, weights_id):
    """The one-shot runs shipped beside a sample model for its pages' first settings, and the seconds an evaluation
    took when they were made: ({recipe JSON: metrics}, seconds), or ({}, None) for an upload, a model that ships
    none, other weights or data."""
    if weights_id or not ce.curves.path(model_name).is_file():
        return {}, None
    return ce.curves.shipped(model_name, _model_key(model_name, weights_id), _dataset(dataset_name).fingerprint(),
                             with_seconds=True)


@st.cache_data(max_entries=64, show_spinner=False)
def _applied(model_name, recipe_json, dataset_name, weights_id=""):
    """_run's result without the evaluation (metrics' accuracy None): what a page draws before the accuracy."""
    return _pack(model_name, _applied_result(model_name, recipe_json, dataset_name, weights_id))


@st.cache_resource(max_entries=8, show_spinner=False)
def _applied_result(model_name, recipe_json, dataset_name, weights_id=""):
    """compress(evaluate=False) of a recipe: the Result itself (shared, never changed), which _applied packs and
    _estimated scores a sample with."""
    return ce.compress(model(model_name), ce.Recipe.from_json(recipe_json), _dataset(dataset_name), evaluate=False)


ESTIMATE_MIN_EVAL = 1.5  # s: a model slower to evaluate (ResNet-8: 5-7 s on 2 cores) shows an estimate first


@st.cache_data(max_entries=256, show_spinner=False)
def _estimated(model_name, recipe_json, dataset_name, weights_id=""):
    """ce.estimate of a recipe's run (applied, not evaluated) on 1,000 test images, against the dense model's
    answers on all of them: ResNet-8's takes ~0.6 s where the whole test set takes 5-7."""
    return ce.estimate(_applied_result(model_name, recipe_json, dataset_name, weights_id).model,
                       _dataset(dataset_name), reference=_dense_answers(model_name, dataset_name, weights_id))


@st.cache_resource(max_entries=8, show_spinner=False)
def _dense_answers(model_name, dataset_name, weights_id):
    """The dense model's answers on the whole test set: a sample model's from the logits kept beside it, else
    ce.reference's (kept since the dense run's evaluation: an upload's was scored when it was added)."""
    return ce.dense_reference(model(model_name), _dataset(dataset_name),
                              _kept_logits(model_name, dataset_name, weights_id))[0]


@st.cache_resource(max_entries=8, show_spinner=False)
def _kept_logits(model_name, dataset_name, weights_id):
    """{"test": a sample model's logits on the test set} when they are kept on disk (ResNet-8 ships them), else None.
    compress() takes its dense reference from them: ResNet-8's dense run is shipped, not evaluated, so the first run
    a server evaluated for it also evaluated the dense model (5-7 s more)."""
    return None if weights_id else ce.kept_test_logits(model_name, _dataset(dataset_name))


def _pack(model_name, res):
    """A compress() Result as plain data (picklable, so st.cache_data and session_state can keep it)."""
    return {"recipe": res.recipe.to_json(), "model": model_name, "metrics": res.metrics, "artifact": res.artifact,
            "timings": res.timings, "history": res.history,
            "weights": {n: p.detach().numpy().copy() for n, p in res.model.state_dict().items()}}


# --- trained results on disk (compress_engine.playground.trained): keyed by model weights + recipe + data ---

@st.cache_resource(show_spinner=False, max_entries=16)
def _model_key(model_name, weights_id):
    """The model's weights fingerprint (computed once per model and process)."""
    return ce.sweeps.model_fingerprint(model(model_name))


def _trained_key(model_name, recipe_json, dataset_name, weights_id):
    data_id = _dataset(dataset_name).fingerprint()  # computed once per Dataset (~0.15 s for Fashion-MNIST)
    return ce.trained.TrainedCache.key(_model_key(model_name, weights_id), recipe_json, data_id)


def _trained_hit(model_name, recipe_json, dataset_name, weights_id):
    """A trained result from disk, packed like _pack's (weights decoded from its artifact), or None."""
    return _trained_from_disk(_trained_key(model_name, recipe_json, dataset_name, weights_id), model_name, recipe_json)


def _keep_trained(model_name, recipe, dataset_name, weights_id, res):
    """Keep a trained result on disk -> None, or why it could not be kept (TrainedCache.keep)."""
    return ce.trained.TrainedCache().keep(_trained_key(model_name, recipe.to_json(), dataset_name, weights_id),
                                          model_name, res)


def not_kept(packed, why):
    """Mark a packed trained result that could not be kept on disk with why (shown by warn_not_kept), so a teacher
    who prepared a demo is not told it is ready when a restart would train it again (a read-only folder, a full
    disk)."""
    if why:
        packed["not_kept"] = why


def not_kept_reason(recipe, start_from=None):
    """Why this session's trained result of `recipe` (train_run's) could not be kept on disk (not_kept), or None."""
    found = st.session_state.get("trained", {}).get((start_from or model_name(), recipe.to_json()))
    return (found or {}).get("not_kept")


def warn_not_kept(result, what="the result"):
    """Say so under a trained result (what: how to name it) that could not be kept on disk (not_kept)."""
    if result and result.get("not_kept"):
        st.warning(md_text(f"Trained, but {what} " + result["not_kept"]
                           + ". A reload, another tab or a restart of the server may train it again."))


def warn_not_kept_all(lost, name):
    """warn_not_kept for several trained results at once, lost = {item: why} (why: its not_kept, or None if kept),
    name(items) -> how to name them ("the fine-tuned points at 30 % and 50 %"): one warning naming every item not
    kept, with the first one's reason (one folder's: each file's may name its own path). A read-only folder gave a
    page with two students two boxes of the same text, neither saying which student it meant."""
    items = [item for item, why in lost.items() if why]
    if items:
        warn_not_kept({"not_kept": lost[items[0]]}, name(items))


def cached_trained(recipe, start_from=None, student_key=None):
    """The trained result of `recipe` for the sidebar's model (or `start_from`; with student_key, into the student
    train_run got under that key) if one is kept — in this session or on disk from any earlier session — else
    None. Never trains. Packed like run()'s result."""
    name = start_from or model_name()
    key = (name, recipe.to_json()) if student_key is None else (name, recipe.to_json(), student_key)
    return kept(key, _trained_reader(name, recipe, student_key))


def _trained_reader(name, recipe, student_id=None):
    """lookup for pooled() and kept(): the kept trained result of `recipe` on `name` (+ a student), or None."""
    def from_disk():
        if not ce.trained.trains(recipe):
            return None
        dataset()
        return _trained_from_disk(_trained_disk_key(name, recipe.to_json(), student_id), name, recipe.to_json())
    return from_disk


def cached_trained_metrics(recipe, start_from=None):
    """Just the metrics of a kept trained result (a small file read; for curves of many points), or None."""
    name = start_from or model_name()
    found = st.session_state.get("trained", {}).get((name, recipe.to_json()))
    if found is not None:
        return found["metrics"]
    dataset()
    return ce.trained.TrainedCache().metrics(_trained_key(name, recipe.to_json(), DATASET, weights_id(name)))


def run(recipe, spinner="Compressing…"):
    """compress(model, recipe) for the sidebar's model, cached by recipe.

    Returns a dict: recipe (JSON), model, metrics, artifact (bytes), timings, history, weights
    (numpy). Bad input shows the engine's message and stops the page: nothing below can draw.
    """
    if recipe is None:  # common.recipe() has already shown why
        st.stop()
    dataset()
    try:
        key = _key(recipe)
        with st.spinner(spinner), _asking(key), _superseded():
            result = _run(*key)
        warn_not_kept(result)
        return result
    except ce.CompressError as e:
        st.error(md_text(e))
        st.stop()


def _superseded():
    """Inside, an evaluation this page run computes stops between two batches once the session has asked for a newer
    run (a slider pressed again): reading session state is where Streamlit stops a replaced run (it raises its
    RerunException there), so a superseded ResNet-8 evaluation no longer holds the next run up for its 5-7 s. Nothing
    of the stopped run is cached."""
    def check():
        st.session_state.get("_run_unfinished")  # a stop point (see coalesce)
        return False
    return ce.stop_when(check)


@st.cache_data(max_entries=4096, show_spinner=False)
def _metrics(model_name, recipe_json, dataset_name, weights_id=""):
    known = _shipped(model_name, dataset_name, weights_id)[0].get(recipe_json)  # a curve point read, not computed
    return known if known is not None else _run(model_name, recipe_json, dataset_name, weights_id)["metrics"]


CURVE_PROGRESS_MIN = 3.0  # s: a curve expected to take longer shows a progress bar, not just a spinner


def curve_metrics(recipes, spinner="Computing the curve…", draw=None, pending=None):
    """The metrics of run(r) for each recipe r (the sidebar's model), for curves of many points.

    Cached apart from the runs: a point already computed costs a copy of a small dict, not of its weights and
    artifact (st.cache_data hands out copies), and one spinner covers the whole curve. Between two points the
    run checks in with Streamlit, so a moved slider stops a long curve at the next point. A curve whose points
    still to compute would take CURVE_PROGRESS_MIN seconds or more (the model's last evaluation times their
    number: an uploaded ResNet-8's curves take about a minute a page, bench/uploads.py) shows a progress bar
    instead: which point, and about how long is left, from the points computed so far.

    draw(curve, margins, key), if given, draws the page's charts of the curve (a list of metrics, as returned) in a
    slot here, `key` prefixing its charts' keys. On a model that takes ESTIMATE_MIN_EVAL seconds or more to
    evaluate, with points still to compute, it is called first with those points' accuracy estimated (ce.estimate
    on a sample of the test set: ~1 s a point for ResNet-8 instead of 5-7) and margins[i] their 95 % half-widths
    (None for an evaluated point), then again as each point is evaluated: the curve shows in seconds, and sharpens.
    Otherwise it is called once, margins all None.
    pending: the page's run as headline(early=True) returned it, completed here (in place, see complete()) once the
    estimated curve is drawn, else first: an uploaded ResNet's page shows its curve ~7 s sooner than if it waited for
    its own run's evaluation. Until then draw() gets it unevaluated (current_accuracy()).
    """
    dataset()
    keys = [_key(r) for r in recipes]
    todo = [k for k in keys if not _known(k)]
    slot = (st.empty(), st.empty()) if draw is not None else None
    shown = _estimated_curve(keys, todo) if slot is not None and todo and _estimates_first() else None
    if shown is not None:
        _draw_curve(slot, draw, shown)
    if pending is not None:
        complete(pending)
        todo = [k for k in todo if not _known(k)]  # the run is a point of its curve
    each = _eval_seconds.get(_model_args())
    bar = (st.progress(0.0, text=_curve_text(spinner, 0, len(todo), len(todo) * each))
           if todo and each and len(todo) * each >= CURVE_PROGRESS_MIN else None)
    out, done, began = [], 0, time.monotonic()
    with st.spinner(spinner) if bar is None else nullcontext():
        for i, k in enumerate(keys):
            with _asking(k):
                out.append(_point(_metrics, k))
            if shown is not None and shown[i][1] is not None:  # an estimated point, now evaluated
                shown[i] = (out[-1], None)
                _draw_curve(slot, draw, shown, i + 1)
            if bar is not None and k in todo:
                done += 1
                left = units.remaining(time.monotonic() - began, done, len(todo))
                bar.progress(done / len(todo), text=_curve_text(spinner, done, len(todo), left))
    if bar is not None:
        bar.empty()
    if slot is not None and shown is None:
        _draw_curve(slot, draw, [(m, None) for m in out])
    return out


ESTIMATED_CURVE = ("Open points with bars are estimated on {inputs:,} of the {of:,} test images (95 % interval); "
                   "each is replaced as it is evaluated on all of them.")


def _estimates_first():
    """Whether a curve's points still to compute are estimated first: the sidebar's model is slow to evaluate."""
    return eval_seconds() >= ESTIMATE_MIN_EVAL


def _estimated_curve(keys, todo):
    """[(metrics, estimate)] of a curve: its points known already as they are (estimate None), the others with their
    accuracy estimated (_estimated_point), behind a progress bar. None if there is no accuracy to estimate."""
    bar = st.progress(0.0, text=f"Estimating the curve: 0 of {len(todo)} points")
    out, done = [], 0
    for k in keys:
        out.append((_point(_metrics, k), None) if k not in todo else _point(_estimated_point, k))
        if k in todo:
            if out[-1][1].get("margin") is None:
                bar.empty()
                return None
            done += 1
            bar.progress(done / len(todo), text=f"Estimating the curve: {done} of {len(todo)} points")
    bar.empty()
    return out


def _point(compute, key):
    """compute(*key) for one point of a curve, after a stop point (see coalesce) and stopping within an evaluation
    once superseded; bad input shows the engine's message and stops the page, as run() does."""
    st.session_state.get("_run_unfinished")
    try:
        with _superseded():
            return compute(*key)
    except ce.CompressError as e:
        st.error(md_text(e))
        st.stop()


@st.cache_data(max_entries=256, show_spinner=False)
def _estimated_point(model_name, recipe_json, dataset_name, weights_id=""):
    """A curve point not evaluated yet: (the run's metrics with its accuracy estimated, the ce.estimate)."""
    est = _estimated(model_name, recipe_json, dataset_name, weights_id)
    metrics = dict(_applied_result(model_name, recipe_json, dataset_name, weights_id).metrics)
    metrics["accuracy"] = est["accuracy"]
    return metrics, est


def _draw_curve(slot, draw, shown, n=0):
    """draw(curve, margins, key) in `slot` (an st.empty and the one below it, for a caption while some points are
    estimated), `shown` being [(metrics, estimate or None)]. The n-th drawing in a run: the charts' keys, unique within
    the run, as Streamlit requires of identical elements (a size curve drawn again unchanged)."""
    est = [e for _, e in shown]
    with slot[0].container():
        draw([m for m, _ in shown], [None if e is None else e["margin"] for e in est], f"{draw.__name__}_{n}")
    first = next((e for e in est if e is not None), None)
    if first is not None:
        slot[1].caption(ESTIMATED_CURVE.format(**first))
    else:
        slot[1].empty()


def _known(key):
    """Whether _run's arguments `key` need no computation: computed in this process, or a shipped run."""
    return key in _computed or key[1] in _shipped(key[0], *key[2:])[0]


def _curve_text(spinner, done, total, seconds):
    """A curve's progress bar text: "One-shot curve: 3 of 12 points done, about 20 s left"."""
    return f"{spinner.rstrip('…')}: {done} of {total} points done, {units.left(seconds)}"


def dense():
    """The uncompressed model's run (the reference every delta is measured against)."""
    return run(ce.Recipe(), spinner="Evaluating the dense model…")


# One fine-tuning epoch in the training pool (1 thread) over one evaluation of the test set here (2 threads), per
# training precision (training_precision) and architecture: `python bench/speed.py --only 10` (speed_epoch.csv)
# measured, in float32, LeNet-300-100 47x (Adam's steps outweigh its tiny forward pass), LeNet-5 41x, ResNet-8 29x
# (1.1 s, 12.9 s and 119 s an epoch); in bfloat16 mixed precision (AMX), 41x, 23x and 10x (0.94 s, 7.3 s, 42 s).
# A single visitor's job may run on both cores (jobs.spare), quicker still: these are the longest it takes.
EPOCH_PER_EVAL = {"float32": {"mlp": 47.0, "lenet5": 41.0, "resnet": 29.0},
                  "bfloat16": {"mlp": 41.0, "lenet5": 23.0, "resnet": 10.0}}


def epoch_per_eval(arch):
    """EPOCH_PER_EVAL's ratio for `arch` in the dashboard's training precision (the largest for an architecture the
    bench has not measured)."""
    ratios = EPOCH_PER_EVAL[training_precision()]
    return ratios.get(arch, max(ratios.values()))


def epoch_seconds():
    """About how long one fine-tuning epoch of the sidebar's model takes in the training pool: its evaluation time
    here times its architecture's epoch_per_eval.
    None until an evaluation time is known (a help text asking must not make a page wait for one)."""
    seconds = _eval_seconds.get(_model_args())
    if seconds is None:
        return None
    return epoch_per_eval(_arch()) * seconds


def training_time(epochs=1, what="an epoch"):
    """For help texts: ' About 20 s an epoch for lenet-5 here.', or for several, ' About 3 min (20 s a point) for
    lenet-5 here.'; '' while epoch_seconds() is unknown."""
    each = epoch_seconds()
    if each is None:
        return ""
    per = units.duration(each)
    if epochs == 1:
        return f" About {per} {what} for {model_name()} here."
    total = units.duration(epochs * each)
    if per.endswith(" min") and total.endswith(" min") and int(total.split()[0]) != epochs * int(per.split()[0]):
        per = f"{each / 60:.1f} min"  # each rounded apart: "5 min (2 min an epoch)" for 2 epochs of 2.5 min
    return f" About {total} ({per} {what}) for {model_name()} here."


def eval_seconds():
    """Seconds one evaluation of the sidebar's model on the whole test set takes here: its last run's, else its
    shipped runs' record, else measured now (the dense run, which every page needs anyway)."""
    args = _model_args()
    if _eval_seconds.get(args) is None:
        dense()
    return _eval_seconds.get(args) or 0.0


# Each technique page's first setting, as Recipe fields (the rest are Recipe's defaults): the page's controls start
# from these, and warm() computes their runs after Home has drawn, so the page opened next shows its first chart
# without an evaluation first (LeNet-5: 1.3-1.9 s to its first chart when computed on the click, ~0.5 s warm).
# Pruning, Pipeline and Export: a sparsity the sample models survive one-shot (80 % global: LeNet-300-100 -0.8
# points, LeNet-5 -0.5, the 1200-1200 teacher -0.1; per layer LeNet-5 falls to 69 %, and at 50 % per layer loses 7
# points under Export's clusters); sliding on to 95 % shows the collapse. Pipeline opens on the Deep Compression
# preset instead when its fine-tuned result is kept (pipeline.first_settings). Quantization opens on 4 bits, which
# costs 1.4-2.6 points: the page explains the weights rounded to zero. A test checks every start on every sample
# model (tests/test_app_walkthrough.py).
STARTS = {
    "pruning": {"sparsity": 0.8, "prune_scope": "global"},
    "clustering": {"clusters": 16},
    "quantization": {"bits": 4},
    "pipeline": {"sparsity": 0.8, "prune_scope": "global", "clusters": 16, "huffman": True},
    "export": {"sparsity": 0.5, "prune_scope": "global", "clusters": 16, "huffman": True},
}
# An architecture that collapses at a start opens on its own (ResNet-8, and any ResNet uploaded). ResNet-8 is compact
# and its weights, BatchNorm folded in, differ in scale from layer to layer, so one global threshold empties whole
# layers: one-shot on all 10,000 test images (dense 94.03 %), 40 % global 85.1 %, 80 % global 10.0 %, 70 % per layer
# 19.7 %; 40 % per layer 93.5 %, and with 16 clusters and Huffman coding 92.8 % at 10.1x.
ARCH_STARTS = {"resnet": {page: {"sparsity": 0.4, "prune_scope": "layer"}
                          for page in ("pruning", "pipeline", "export")}}


# The Pipeline's "Deep Compression recipe" button: Han et al. 2016's shape (most weights pruned, 16 shared values per
# layer, Huffman coding, fine-tuning after pruning and after sharing), as Recipe fields. A ResNet prunes per layer,
# less: ResNet-8 fine-tuned 1 epoch a stage (bench/starts.py --preset, all 10,000 test images, dense 94.03 %) ended
# at 10.00 % with 92 % global, 82.83 % with 90 % per layer (36.2x) and 91.21 % with 80 % per layer (21.7x).
DEEP_COMPRESSION = {"sparsity": 0.92, "prune_scope": "global", "clusters": 16, "huffman": True, "finetune_epochs": 1}
ARCH_DEEP_COMPRESSION = {"resnet": {"sparsity": 0.8, "prune_scope": "layer"}}


def deep_compression(name=None):
    """The Pipeline preset's Recipe fields for the model `name` (default: the sidebar's), with its architecture's."""
    return {**DEEP_COMPRESSION, **ARCH_DEEP_COMPRESSION.get(_arch(name), {})}


def _arch(name=None):
    """The architecture ("mlp", "lenet5", "resnet") of the model `name` (default: the sidebar's); None for a model no
    longer known (an expired upload)."""
    try:
        return card_of(model_name() if name is None else name)["spec"]["arch"]
    except ce.ModelError:
        return None


SCOPES = {"layer": "Per layer", "global": "Global"}  # Recipe.prune_scope's choices, as the controls name them
SCOPE_HELP = ("Per layer: every layer loses the same share. Global: one magnitude threshold for the whole network, "
              "which suits layers of like scale: ResNet-8's, with BatchNorm folded in, differ so much that a global "
              "threshold empties some of them.")


def starts(name=None):
    """{page: Recipe fields}: each technique page's first setting for the model `name` (default: the sidebar's),
    STARTS with its architecture's ARCH_STARTS (nothing more for a model no longer known: an expired upload)."""
    own = ARCH_STARTS.get(_arch(name), {})
    return {page: {**fields, **own.get(page, {})} for page, fields in STARTS.items()}


def trained_zeros():
    """The share of the sidebar model's parameters (as deployed) that training left at exactly zero (cards.WHY_ZEROS):
    0 for a card without the count."""
    from compress_engine.playground import viz
    own = card()
    return viz.zero_share(own.get("nonzero_parameters"), deployed_parameters(own)) or 0.0


# where GitHub-flavoured Markdown makes a link of plain text, escapes or not ("https:", "www.", "a@b")
AUTOLINK = re.compile(r"(?i)\b(?:https?|mailto|xmpp)(?=:)|\bwww(?=\.)|@")


def md_text(text):
    """User text (a run's name) shown literally where Streamlit renders Markdown (st.table cells, button labels,
    alerts): every character Markdown, LaTeX or Streamlit's directives give a meaning backslash-escaped, so
    '**bold**', '$x^2$' or ':red[red]' in a name stay as typed (CommonMark lets any punctuation be escaped), and an
    invisible word joiner (U+2060) after "https", "www" or "@", so no link is made of a URL or an address."""
    text = AUTOLINK.sub(lambda m: m.group(0) + "\u2060", str(text))
    return re.sub(r"([\\`*_{}\[\]()#+\-.!$~|<>:^=&])", r"\\\1", text)


# bind= of every setting a link carries (pages' knobs and the sidebar's model): Streamlit keeps the widget's value in
# the page's URL as a query parameter named after its key (?prune_sparsity=90&prune_structured=true), so a reload or
# a copied link opens the same view. The URL wins over a page's start on a first load; an invalid value (out of range,
# not an option) is dropped and the widget opens on its default; a value equal to the widget's default is left out
# of the URL, hence value= on widgets whose opening is computed (start_settings, setting()). Parameters of another
# page are dropped from the URL when a page opens (Streamlit does so for bound widgets), its values kept in the
# session (persist_state), and back in the URL on return.
LINK = "query-params"


class _OpeningValue(logging.Filter):
    """Streamlit logs, with a stack trace, that a widget given value= was also set through session state: here by
    design (start_settings' value= is what a link leaves out; the state is the setting). Only that line is dropped."""

    def filter(self, record):
        return "was created with a default value but also had its value set" not in record.getMessage()


logging.getLogger("streamlit.elements.lib.policies").addFilter(_OpeningValue())


def setting(key, default, scope=None):
    """key= for a widget drawn without a value of its own: `default` until the visitor sets one, and again when
    `scope` changes (what the default or the widget's range depends on, e.g. the sidebar's model). The pages'
    settings are drawn with persist_state="session": Streamlit otherwise drops the state of a widget a run does not
    draw, so a teacher who set 5 bits, showed another page and came back found the start (4 bits) again, and a
    Fit's budget was gone while it trained on. A widget bound to the URL (LINK) also takes `default` as its value=, so
    that a link leaving the setting out opens on it."""
    mark = f"_scope_{key}"
    if key not in st.session_state or st.session_state.get(mark, scope) != scope:
        st.session_state[key] = default
    st.session_state[mark] = scope
    return key


def following(key, default):
    """key= for a widget bound to the URL (LINK) whose value= `default` is computed from another setting (Distillation's
    soft-target T from the teacher): Streamlit leaves a value equal to the default out of the URL, and a link or a
    reload opens on the default computed from the link's settings. So a widget still on its previous default (what a
    link shows by leaving it out) moves to the new one when the default changes; a value the visitor chose (in the
    link) stays. A teacher switch once kept the panel at 4 where the link, leaving 4 out, opened it at 20."""
    mark = f"_default_{key}"
    if key not in st.session_state or st.session_state[key] == st.session_state.get(mark, default):
        st.session_state[key] = default
    st.session_state[mark] = default
    return key


def start_settings(page, values, first=None, presets=None):
    """Start a page's controls on the sidebar model's first setting. values(fields) -> {session_state key: widget
    value} for the Recipe fields of starts(model)[page]. A key gets its value when the page has none (its first
    run); its widget keeps it when the visitor leaves the page (persist_state="session", setting()). When the
    sidebar's model changed since, and every key still holds what the page itself set for the previous model (its
    start, or one of presets(previous model): a preset button's values), they all move to the new model's: an
    untouched setting follows the model, a setting the visitor chose stays whole. first() -> the values to open on
    instead of the start (Pipeline: its Deep Compression preset when that one's trained result is kept). Pipeline's
    preset once stayed after a switch, LeNet-300-100's 92 % global showing ResNet-8 collapsed at 10.00 %.
    Returns the values the page opens on for this model (first()'s or the start): each widget takes its own as its
    value= (or index=), so that a setting a link leaves out (Streamlit drops a bound widget's URL parameter while it
    holds its default, see LINK) is the one the page opens on, not the slider's minimum or the first option: a
    teacher's 0 % sparsity came back as the start's 80 % on reload. Streamlit logs once per server that such a widget
    was also set through session state; its value is the state's, as intended."""
    name, mark = model_name(), f"_start_model_{page}"
    prev = st.session_state.get(mark)
    own = [values(starts(prev)[page]), *(presets(prev) if presets else ())] if prev not in (None, name) else []
    untouched = any(all(st.session_state.get(k) == v for k, v in o.items()) for o in own)
    start = values(starts(name)[page])
    opening = first() if first else start
    if untouched or any(k not in st.session_state for k in start):
        for key, value in opening.items():
            if key not in st.session_state or untouched:
                st.session_state[key] = value
    st.session_state[mark] = name
    return opening


def index_of(options, value):
    """index= for a radio or select box that opens on `value` (start_settings)."""
    return list(options).index(value)


_compute_lock = threading.Lock()  # the dense run of warm() and the runs computed ahead, one at a time
QUIET = 1.0  # s without any page run before a run is computed ahead (a visitor reading, not pressing keys)
GRACE = 0.1  # s a page run may run beside a run computed ahead before that one stops (unless the page waits for it)
AHEAD_MAX = 32  # runs waiting to be computed ahead (beyond it the oldest requests are dropped)
AHEAD_TTL = 120.0  # s a request to compute ahead stays wanted (after that the visitor has moved on)
WARM_MAX_EVAL = 2.0  # s: a model whose evaluation takes longer gets nothing computed ahead (ResNet-8: ~5 s each)
_eval_seconds = {}  # (model, dataset, weights id) -> its last computed run's evaluation seconds
_ahead = []  # [(asked at (monotonic), _run's arguments)]: oldest first
_ahead_cv = threading.Condition()
_ahead_thread = []  # the one worker, started on first use
_asked = {}  # _run's arguments -> page runs waiting for that run now (a run computed ahead for them goes on)


def warm():
    """Compute the sidebar model's dense run, then ask for each page's STARTS run ahead (ahead()), drawing nothing
    (Home calls it after its chart): every technique page starts from the dense run and opens on its start, so the
    page opened next draws sooner. Also the fingerprints that look up trained results on disk (the dataset's takes
    ~0.15 s, once).

    The dense run is computed in this run, after the chart (a page clicked meanwhile waits for it, as it needs it),
    except in a session's first run, which does it in a thread and ends at once: its browser is still loading
    Plotly then, and a run that kept going held Home's first chart back, 6.3-6.7 s from the command instead of
    4.5-4.8 (bench/latency.py, headless Chromium on 2 cores). A page asking for one of these runs meanwhile waits
    for that one computation (st.cache_data computes a key once at a time).
    Under AppTest (no browser, no server) only the dense run."""
    args = _model_args()  # recipes are made below: it imports torch, which Home did without
    if not _served():
        _warm_dense(*args)  # AppTest's runtime is a stand-in
        return
    if st.session_state.get("_runs") == 1:  # a first run has no upload yet: the thread needs no session
        threading.Thread(target=_warm, args=(args,), name="warm", daemon=True).start()
    else:
        _warm(args)


def _warm(args):
    """The dense run of the model `args` = (name, dataset, weights id), then its page starts asked for ahead."""
    if _warm_dense(*args) is not None:
        _push(args, [ce.Recipe(**fields) for fields in starts(args[0]).values()])


def _real_server():
    """Whether a real Streamlit server runs here (AppTest's runtime is a stand-in: it runs no threads of ours, and
    its sessions have no tabs to connect or go)."""
    return Runtime.exists() and type(Runtime.instance()) is Runtime


def _served():
    """Whether this is a real server's script run."""
    return _real_server() and get_script_run_ctx() is not None


def _warm_dense(name, dataset_name, wid):
    """The dense run and the fingerprints of trained results -> the run's evaluation seconds (None if it failed)."""
    try:
        recipe_json = ce.Recipe().to_json()
        with _compute_lock:
            res = _run(name, recipe_json, dataset_name, wid)
            _trained_key(name, recipe_json, dataset_name, wid)  # the data and model fingerprints trained results use
        return res["timings"].get("evaluate", 0.0)
    except Exception:  # noqa: BLE001 - a missing dataset or a broken model: the page that needs the run says why
        log.exception("warming %s on %s: its dense run failed (the page that needs it shows why)", name, dataset_name)
        return None


def ahead(*recipes):
    """Compute these runs of the sidebar's model ahead, in the background, the first first: what the visitor is
    likely to ask for next (a slider's neighbouring values, each page's first setting), so that it answers from
    the cache when asked. Recipes that train, and None, are left out. Nothing under AppTest.

    This is work nobody may ask for, so it gives way to work somebody does: one thread computes every session's
    requests, newest first, one at a time; only once no page run has been in progress for QUIET seconds; a page run
    begun GRACE seconds ago that has not asked for the run being computed stops it before its next evaluation
    batch (ce.stop_when; it goes back in line), while one that asks for it waits for it; a request older than
    AHEAD_TTL is dropped, as are the oldest beyond AHEAD_MAX; and a model whose evaluation takes over WARM_MAX_EVAL
    seconds gets none (ResNet-8's runs would be seconds of both cores each), nor does an upload: it lives in its
    browser session, and the worker has none (a thread given a session's context could take that session's rerun
    request: Streamlit's cache wait calls the context's stop-or-rerun check). Without these rules page starts
    computed beside the next model's dense run made LeNet-5's Pruning page 2.5-3.6 s to its first chart instead of
    1.9, and computed between slider presses, beside the next press, its redraw 2.0 s instead of 1.4."""
    if not _served():
        return
    _push(_model_args(), recipes)


def _push(args, recipes):
    """Queue recipes of the model `args` = (name, dataset, weights id) to compute ahead (see ahead())."""
    seconds = _eval_seconds.get(args)
    if seconds is None or seconds > WARM_MAX_EVAL or args[2]:  # unmeasured, too slow, or an upload
        return
    now = time.monotonic()
    with _ahead_cv:
        for r in reversed(recipes):  # the worker takes the newest first
            if r is None or ce.trained.trains(r):
                continue
            key = (args[0], r.to_json(), *args[1:])
            _ahead[:] = [e for e in _ahead if e[1] != key]
            _ahead.append((now, key))
        del _ahead[:-AHEAD_MAX]
        if not _ahead_thread:
            _ahead_thread.append(threading.Thread(target=_ahead_worker, name="ahead", daemon=True))
            _ahead_thread[0].start()
        _ahead_cv.notify()


_prepared = []  # [True] once the ahead thread has imported what a first fine-tune would (ce.prepare_training)


def _ahead_worker():
    """The one thread that computes ahead: the newest request, each time no page run has run for QUIET seconds; with
    none left, once, what the server's first fine-tune would otherwise import first (0.9 s, ce.prepare_training)."""
    while True:
        with _ahead_cv:
            while not _ahead and _prepared:
                _ahead_cv.wait()
        if _wait_quiet(patience=1.0):
            entry = _next_ahead()
            if entry is not None:
                _compute_ahead(entry)
                ce.jobs.release_threads()  # it may wait long for the next: its idle OpenMP workers would slow the rest
            elif not _prepared:
                ce.prepare_training()
                _prepared.append(True)


def _next_ahead():
    """The newest request not older than AHEAD_TTL (older ones are dropped), or None."""
    with _ahead_cv:
        now = time.monotonic()
        _ahead[:] = [e for e in _ahead if now - e[0] <= AHEAD_TTL]
        return _ahead.pop() if _ahead else None


def _compute_ahead(entry):
    """Compute one request (a no-op if it is cached, or None); stopped by a page run, it goes back in line."""
    if entry is None:
        return
    key = entry[1]
    with _compute_lock:
        try:
            began = time.monotonic()
            with ce.stop_when(lambda: _give_way(key, began)):
                _run(*key)
        except ce.Stopped:
            with _ahead_cv:
                _ahead.insert(sum(e[0] <= entry[0] for e in _ahead), entry)  # where it was, by time asked
        except Exception:  # noqa: BLE001 - a model a technique cannot take: its page says why when asked
            log.exception("computing ahead %s %s failed (its page shows why when asked)", key[0], key[1])


def _give_way(key, began):
    """Whether the run of `key` computed ahead since `began` (monotonic) should stop: a page run began since then,
    GRACE seconds ago or more, and no page run is waiting for this one. Also when that page run has already ended:
    its browser is drawing it then, on the same cores when the visitor runs the dashboard on their own machine."""
    with _running_lock:
        started = _running[2]
        return started > began and time.monotonic() - started >= GRACE and not _asked.get(key)


@contextmanager
def _asking(key):
    """A page run waits for _run(*key) inside: a run of it computed ahead goes on (see _give_way)."""
    with _running_lock:
        _asked[key] = _asked.get(key, 0) + 1
    try:
        yield
    finally:
        with _running_lock:
            _asked[key] -= 1
            if not _asked[key]:
                del _asked[key]


def _wait_quiet(quiet=QUIET, patience=1.0):
    """Whether no page run has been in progress for `quiet` seconds (polled every 50 ms) before `patience` ran out."""
    end = time.monotonic() + patience
    while True:
        with _running_lock:
            if _running[0] == 0 and time.monotonic() - _running[1] >= quiet:
                return True
        if time.monotonic() >= end:
            return False
        time.sleep(0.05)


def headline(recipe, spinner="Compressing…", label=None, key=None, early=False, cancel_resets=None):
    """Run `recipe`, draw its metric cards against the dense model and a Save button; return (run, dense).
    A recipe that trains goes through train_run (the training queue, progress, live loss, Cancel; kept on disk);
    cancelled or failed, the page stops there, after train_run has said why. cancel_resets: the key of the toggle
    that asked for the training, turned off by Cancel, so the page draws again without it (not blank).

    early=True, for a recipe that does not train and has not been computed yet, on a model whose evaluation takes
    EARLY_MIN_EVAL seconds or more: the cards are drawn from the run
    without its evaluation (weights and sizes; the accuracy "…"), and that run is returned at once. The page draws
    what needs no accuracy, then calls complete(run): it evaluates, fills in the cards and adds the Save button.
    The page's first charts then come before the evaluation (LeNet-5: 0.5 s of the test set; ResNet-8: 5 s)."""
    base = dense()
    if recipe is not None and ce.trained.trains(recipe):
        res = train_run(recipe, label=spinner.rstrip("…"), cancel_resets=cancel_resets)
        if res is None:
            st.stop()
    elif early and recipe is not None and draw_early(recipe):
        slot = st.empty()
        res = unevaluated(recipe)
        with slot.container():
            metric_cards(res["metrics"], base["metrics"])
        res["pending"] = (slot, recipe, spinner, label, key, base)
        return res, base
    else:
        res = run(recipe, spinner)
    with st.empty().container():  # one element, as early=True's slot: the page below keeps its place either way
        metric_cards(res["metrics"], base["metrics"])
        save_button(res, label, key=key)
    return res, base


EARLY_MIN_EVAL = 0.2  # s: a quicker evaluation (LeNet-300-100: 0.05 s) is not worth drawing the cards twice


def draw_early(*recipes):
    """Whether a page should draw these runs (the sidebar's model; none of them trains) before evaluating them: one
    of them has not been computed yet, and the model takes EARLY_MIN_EVAL seconds or more to evaluate. Such a page
    draws unevaluated(r) first, then evaluates (run, curve_metrics) and redraws. A shipped run needs no evaluation.
    """
    keys = [_key(r) for r in recipes]
    return bool(keys) and not all(_known(k) for k in keys) and _slow(keys[0])


def unevaluated(recipe):
    """The run of `recipe` on the sidebar's model without its evaluation (metrics' accuracy None; the same weights
    and artifact), cached. Bad input shows the engine's message and stops the page, as run() does."""
    try:
        return _applied(*_key(recipe))
    except ce.CompressError as e:
        st.error(md_text(e))
        st.stop()


def _slow(key):
    """Whether the model of _run's arguments `key` takes EARLY_MIN_EVAL seconds or more to evaluate."""
    return (_eval_seconds.get((key[0], *key[2:])) or 0.0) >= EARLY_MIN_EVAL


def complete(res):
    """The evaluated run of one headline(early=True) returned, in place of `res` (the same dict, so what holds it
    sees it evaluated; `res` as it was if it was evaluated already): its cards are drawn again with the accuracy, and
    the Save button is added. On a model that takes ESTIMATE_MIN_EVAL seconds or more to evaluate, the cards show an
    estimate first (show_estimate)."""
    if "pending" not in res:
        return res
    slot, recipe, spinner, label, key, base = res["pending"]
    show_estimate(slot, recipe, res["metrics"], base["metrics"])
    done = run(recipe, spinner)
    with slot.container():
        metric_cards(done["metrics"], base["metrics"])
        save_button(done, label, key=key)
    res.clear()
    res.update(done)
    return res


def current_accuracy(res, point):
    """The accuracy a curve's "current" marker shows: the page's run's, or while that is not evaluated yet (see
    curve_metrics(pending=)), the curve's own `point` at that setting (estimated or evaluated)."""
    accuracy = res["metrics"]["accuracy"]
    return point["accuracy"] if accuracy is None else accuracy


def accuracy_and_size(curve, margins, key, res, dense_res, x, at, what, x_title, names, now, dense_name="dense",
                      **axis):
    """Clustering's and Quantization's pair of curves side by side, a curve_metrics(draw=) drawing: accuracy (points
    with a margin estimated) and artifact size vs `what`, at settings `x` (the page's run `res` at `at`, labelled
    `now`), against the dense run. names: the two series' names; axis: charts.curve's x axis options."""
    from pages import charts
    point = curve[list(x).index(at)]
    pairs = [("accuracy", "Accuracy", "test accuracy (%)", [c["accuracy"] for c in curve], margins,
              current_accuracy(res, point), charts.BLUE,
              {"hline": {"y": dense_res["metrics"]["accuracy"], "name": dense_name}, "y_percent": True}),
             ("bytes", "Artifact size", "artifact size (KB)", [c["artifact_bytes"] / units.KB for c in curve], None,
              res["metrics"]["artifact_bytes"] / units.KB, charts.ORANGE, {})]
    for column, name, (part, title, y_title, ys, margin, y_now, color, extra) in zip(
            st.columns(2, gap="medium"), names, pairs):
        fig = charts.curve([{"name": name, "x": list(x), "y": ys, "margin": margin, "color": color}],
                           f"{title} vs {what}", x_title, y_title, current={"x": at, "y": y_now, "name": now},
                           **extra, **axis)
        chart(fig, column, key=f"{key}_{part}")


def show_estimate(slot, recipe, metrics, dense_metrics):
    """Before a slow evaluation (ESTIMATE_MIN_EVAL seconds or more; a run not computed yet), the metric cards in
    `slot` again, with the accuracy estimated on a sample of the test set (ce.estimate): ResNet-8's accuracy shows
    ~0.6 s after a slider move instead of 5-7 s. The cards of the evaluated run replace them."""
    key = _key(recipe)
    if _known(key) or eval_seconds() < ESTIMATE_MIN_EVAL:
        return
    try:
        with st.spinner("Estimating the accuracy on a sample of the test set…"):
            est = _estimated(*key)
    except ce.CompressError:  # the run itself will say what was wrong
        return
    with slot.container():
        metric_cards(metrics, dense_metrics, estimate=est)


def _key(recipe):
    """_run's arguments for `recipe` on the sidebar's model."""
    name = model_name()
    return name, recipe.to_json(), DATASET, weights_id(name)


BURST_PAUSE = 0.12  # s a run waits when the run before it was cut short (a held key sends a value every ~50 ms)


def coalesce():
    """Call once per page (or fragment) run, before its first engine call; call finished() at its end.

    A held arrow key sends a new slider value every ~50 ms, and Streamlit stops a run for the next one
    only between st calls: each run would still do one whole compress() before it notices, so 90 presses
    meant 90 compressions (9 s of catching up after the key was let go). A run that starts while the run
    before it never finished (it was cut short by this one) waits BURST_PAUSE first and then reads the
    session state, which is where Streamlit stops it if a newer value has arrived in the meantime: a burst
    costs one compress(), at its end. A single press (the run before it had finished) never waits.
    """
    if st.session_state.get("_run_unfinished", False):
        time.sleep(BURST_PAUSE)
    st.session_state["_run_unfinished"] = True  # reading or writing session state is a stop point


def finished():
    """The end of a page (or fragment) run that called coalesce(): the next run starts without waiting."""
    st.session_state["_run_unfinished"] = False


def recipe(**fields):
    """Build a Recipe from widget values (as scoped() has it); shows the engine's message and returns None if
    invalid."""
    try:
        return scoped(ce.Recipe(**fields))
    except ce.CompressError as e:
        st.error(md_text(e))
        return None


def scoped(recipe):
    """`recipe` as every page builds one: a pruning threshold (prune_scope) only when it prunes; at 0 % it is
    Recipe's default, so the same setting is the same recipe (run, artifact bytes and saved run) on every page.
    Export at 0 %, global, saved another run than Clustering's (its header longer), and Pruning's 0 %
    was not the dense run. Recipe.to_json keeps every field: the keys of runs already shipped and kept stay.
    A recipe that trains does so in training_precision()."""
    if recipe is None:
        return recipe
    if ce.trained.trains(recipe) and recipe.precision != training_precision():
        recipe = recipe.replace(precision=training_precision())
    default = ce.Recipe().prune_scope
    if recipe.prunes() or recipe.prune_scope == default:
        return recipe
    return recipe.replace(prune_scope=default)


@functools.cache
def training_precision():
    """What the dashboard trains in: bfloat16 mixed precision on a CPU that multiplies bfloat16 in hardware
    (ce.native_bfloat16: Intel AMX), float32 elsewhere. LeNet-5's fine-tuning job took 9.9 s instead of 15.7 at one
    thread here, its accuracy 91.98 % instead of 92.07 % (bench/training_pace.py)."""
    return "bfloat16" if ce.native_bfloat16() else "float32"


NO_CHANGE = "no change"


def delta_metric(where, label, value, delta_text, fewer_is_better=False, help=None, neutral=False):
    """st.metric with a delta; a change that shows as zero ("+0", "+0.0 KB", "+0.00 pts") reads "no change",
    grey and without an arrow, instead of a red or green up-arrow. neutral: a change that is neither good nor bad
    (grey either way)."""
    if float(delta_text.replace(",", "").split()[0]) == 0:
        where.metric(label, value, NO_CHANGE, delta_color="off", delta_arrow="off", help=help)
    else:
        where.metric(label, value, delta_text, help=help,
                     delta_color="off" if neutral else "inverse" if fewer_is_better else "normal")


SPEED_SECONDS = 1.0  # about how long timing two models on a batch may take (ResNet-8: 4 turns, not 20)
ONE_SECONDS, ONE_REPEATS = 0.5, 200  # and on one image at a time, where a call takes about a millisecond


def _time_pair(state, key, artifact):
    """speed_card's button (on_click: it runs before the fragment is drawn again, so the button then says "Time
    again"): the model named key[0] against the artifact's model, rebuilt, on this CPU now, on a batch of test images
    and on one image (a single request, where a layer's fixed costs weigh more: bench/speedup.py)."""
    timed = st.session_state.setdefault(state, {})
    try:
        smaller, _ = ce.decode_model(artifact)
        big, data = model(key[0]), dataset()
        timed[key] = {**ce.speedup(big, smaller, data, seconds=SPEED_SECONDS),
                      "one": ce.speedup(big, smaller, data, batch_size=1, seconds=ONE_SECONDS, repeats=ONE_REPEATS)}
    except Exception as e:  # noqa: BLE001 - a message on the page, never a traceback
        timed[key] = {"error": f"Timing failed ({type(e).__name__}: {md_text(str(e)[:200])}); press the button to "
                                "try again."}


@st.fragment
def speed_card(state, key, run, names):
    """How much faster a smaller model (structured pruning's, a distilled student) really runs on this CPU than the
    model named key[0], timed on request (its button reruns only this fragment); each setting's timing is kept for
    the session in st.session_state[state]. key: (model name, its weights' id, the dataset, the recipe);
    names: (the big model's label, the small one's, the small one in a sentence)."""
    timed = st.session_state.get(state, {})
    st.button("Time again" if "ms" in timed.get(key, {}) else f"Time the {names[0].lower()} and {names[2]} on this CPU",
              key=f"{state}_go", icon=":material/timer:", on_click=_time_pair, args=(state, key, run["artifact"]),
              help="Runs both on 256 test images, in turns, for about a second, then on one image at a time. Timings "
                   "vary with the machine's load (every visitor's runs share its cores).")
    t = timed.get(key)
    if t is None:
        return
    if "error" in t:
        st.error(timed.pop(key)["error"])
        return
    c = st.columns(3)
    c[0].metric(names[0], units.ms(t["dense_ms"]))
    delta_metric(c[1], names[1], units.ms(t["ms"]), units.ms(t["ms"] - t["dense_ms"], signed=True),
                 fewer_is_better=True)
    c[2].metric("Speed-up", ratio(t["speedup"]))
    from compress_engine.playground import viz
    fewer = viz.flops_ratio(run["metrics"].get("flops"), run["metrics"].get("dense_flops"))
    one = t["one"]
    st.caption(f"Median of {t['repeats']} forward passes each over {t['batch']} test images, the two models in turns, "
               "on this machine's CPU now." + (f" The FLOPs fall {fewer:.1f}×; time also goes to moving data and to "
                                               "each layer's fixed costs, so the two differ." if fewer else "")
               + f" One image at a time (a single request, {one['repeats']} turns): {units.ms(one['dense_ms'])} "
                 f"{names[0].lower()}, {units.ms(one['ms'])} {names[1].lower()}, {units.faster(one['speedup'])}; "
                 "there the fixed costs weigh most.")


def metric_cards(metrics, dense, estimate=None):
    """Parameters, artifact bytes, ratio and accuracy, each with its delta against the dense model. A run not
    evaluated yet (accuracy None) shows "…", or the `estimate` (ce.estimate) marked as one, with its margin."""
    c = st.columns(4)
    delta_metric(c[0], "Non-zero parameters", f"{metrics['nonzero_params']:,}",
                 f"{metrics['nonzero_params'] - dense['nonzero_params']:+,}", fewer_is_better=True,
                 help=f"Parameters not exactly zero, against the dense model's {dense['nonzero_params']:,}.")
    delta_metric(c[1], "Artifact size", kb(metrics["artifact_bytes"]),
                 units.signed_kb(metrics["artifact_bytes"] - metrics["dense_bytes"]), fewer_is_better=True,
                 help=f"The length of the compressed file, against the dense model's float32 weights "
                      f"({kb(metrics['dense_bytes'])}), as the ratio is; {units.CONVENTION}.")
    c[2].metric("Compression ratio", ratio(metrics["ratio"]), help="dense float32 bytes / artifact bytes")
    if metrics["accuracy"] is None and estimate is not None and estimate.get("margin") is not None:
        n, of, margin = estimate["inputs"], estimate["of"], 100 * estimate["margin"]
        change = round(100 * (estimate["accuracy"] - dense["accuracy"]), 1) + 0.0  # (no "-0.0"); grey: not evaluated
        c[3].metric("Test accuracy", f"≈ {100 * estimate['accuracy']:.1f} %", f"{change:+.1f} ± {margin:.1f} pts",
                    delta_color="off", delta_arrow="auto" if change else "off",
                    help=f"Estimated from {n:,} of the {of:,} test images (a random sample, corrected by the dense "
                         f"model's answers on all of them): the accuracy on all {of:,} lies within ± {margin:.1f} "
                         f"points of it, 95 times in 100. All {of:,} are being evaluated now.")
    elif metrics["accuracy"] is None:  # headline(early=True): the evaluation comes next
        c[3].metric("Test accuracy", "…", help=f"Evaluating the {test_count():,} test images…")
    else:
        delta_metric(c[3], "Test accuracy", f"{100 * metrics['accuracy']:.2f} %",
                     f"{100 * (metrics['accuracy'] - dense['accuracy']):+.2f} pts")
        collapse_warning(metrics["accuracy"], dense["accuracy"])
    own = card()
    if own["parameters"] != dense["params"]:  # BatchNorms folded: the dense model as deployed is every change's base
        st.caption(f"{own['name']} is compressed as deployed, its BatchNorms folded into the convolutions: "
                   f"{dense['params']:,} parameters ({own['parameters']:,} unfolded), {kb(dense['dense_bytes'])} of "
                   "float32, the base of every change above.")


def collapse_warning(accuracy, dense_accuracy):
    """A warning when `accuracy` is at chance level and the dense model's is not (explain.collapsed): the ratio beside
    it is of a model that no longer classifies. metric_cards draws it under every evaluated result's cards: ResNet-8
    showed 10.00 % at 64.3x (Pruning, 99 %), 29.6x (Clustering, k = 2) and 376.5x (Quantization, 1 bit) with
    nothing saying so, where only the Pipeline warned."""
    from compress_engine.playground import explain
    data = dataset()
    chance = explain.collapsed(accuracy, dense_accuracy, data)
    if chance is None:
        return
    st.warning(f"**The model has collapsed**: {units.pct(accuracy, 2)} is chance level. Answering the test set's most "
               f"frequent class for every input scores {units.pct(chance, 2)} ({data.n_classes:,} classes), so this "
               "ratio is of a model that no longer tells the classes apart: step the controls back until the "
               "accuracy returns.", icon=":material/warning:")


def layer_picker(dense_run, prefix):
    """A layer selector and a log-scale switch side by side, for per-layer histograms; (layer, log_y)."""
    from compress_engine.playground import viz
    c1, c2 = st.columns([2, 1])
    layer = c1.selectbox("Layer", viz.compressible_names(dense_run["weights"]), index=0, key=f"{prefix}_layer")
    return layer, c2.toggle("Log-scale counts", value=True, key=f"{prefix}_log_y")


STOPPED = "Stopped: nothing of the interrupted run was kept."


def others_text(others):
    """Who else waits for a run, as a class says it: "1 other tab or student", "3 other tabs or students" (a session
    is one browser tab: the teacher's own second tab counts as a student's does)."""
    return f"{others} other tab{'s' if others > 1 else ''} or student{'s' if others > 1 else ''}"


def goes_on_text(others):
    """What a run withdrawn from does when `others` others still wait for it (Cancel's stopped_text, let_go's
    left_text)."""
    return f"goes on for {others_text(others)} that asked for it, and is kept when it finishes"


def stopped_text(others, finished=False):
    """What Cancel did: the run stopped, or (asked for by `others` other sessions too) it goes on for them, or it had
    `finished` already (and is kept)."""
    if finished:
        return "The run had finished as you pressed Cancel: it is kept, and shows at once when you ask for it again."
    if not others:
        return STOPPED
    return f"You stopped waiting: the run {goes_on_text(others)} (come back to see it)."


TRAIN_POLL = 0.2  # seconds between two looks at a training job's progress (the page redraws only on change)


def train_run(recipe, label="Training", start_from=None, student=None, model_logits=None, student_key=None,
              cancel_resets=None, warn=True):
    """Run a recipe with fine-tuning or distillation through the training pool (pooled()), behind a progress bar, a
    live loss curve and a Cancel button.

    start_from names the model to compress (default: the sidebar's; Distillation passes its teacher).
    student (a module) and model_logits (the model's cached logits) go to ce.compress; the student is part of
    the result's key: student_key names it (e.g. "cnn 8-16-32"), else its weights' fingerprint does.

    The result is kept on disk by model weights + recipe + data (compress_engine.playground.trained), so a
    reload, another tab or another student gets it at once, and in st.session_state for this session's reruns.
    Returns None (after saying why: bad recipe, cancelled, or failed half-way) when there is no result.
    cancel_resets, warn: see pooled().
    """
    name = start_from or model_name()
    recipe_json = recipe.to_json()
    student_id = None if student is None else (student_key or ce.sweeps.model_fingerprint(student))
    key = (name, recipe_json) if student_id is None else (name, recipe_json, student_id)
    return pooled(key, label, _trained_reader(name, recipe, student_id),
                  lambda: _submit_training(name, recipe, student, student_id, model_logits), cancel_resets, warn)


def training(recipe, start_from=None, student_key=None):
    """This session's queued or running train_run of `recipe` (a ce.jobs.Job), or None.

    A page that calls train_run only when its button was pressed can call it again while this is not None, so
    that a rerun (any other widget) keeps showing the run's place in line and progress instead of dropping them.
    A run of `recipe` still queued or running in the pool that nobody who asked for it is connected to any more (this
    tab before a reload: a reload is a new session) is joined here: this session follows it, keeps it running and may
    cancel it, as if it had asked for it itself. Nothing new is started; another user's run is not joined, nor one
    this session cancelled (until it presses the button again).
    Pass the same student_key as to train_run (a student given without one is keyed by its weights)."""
    name = start_from or model_name()
    key = run_key(recipe, start_from, student_key)
    job = pooled_job(key)
    if (job is None and ce.jobs.pool().busy() and ce.trained.trains(recipe)
            and key not in st.session_state.get("declined_runs", ())):
        dataset()
        job = ce.jobs.pool().join(_pool_key(name, recipe.to_json(), student_key), present=_session_present)
        if job is not None:  # pooled() follows it as this session's own
            st.session_state.setdefault("train_jobs", {})[key] = job
    return job


def rejoined(recipe, start_from=None, student_key=None):
    """training()'s join alone: a queued or running run of `recipe` this session was not waiting for, that it follows
    from now on (the run of this tab before a reload: nobody who asked for it is connected), or None. For a page whose
    run was asked for by session state a reload loses (Pruning's fine-tune switch, its curve's button): joined, the
    page sets that state again, and shows the run (place in line, progress, Cancel) instead of the button alone."""
    key = run_key(recipe, start_from, student_key)
    return None if pooled_job(key) is not None else training(recipe, start_from, student_key)


WATCH_EVERY = 1.0  # s between two redraws of a run another tab or student trains (watch())


def watch(recipe, label, press, start_from=None, student_key=None):
    """Show that train_run's run of `recipe` is queued or running for another tab or student, when this session does
    not follow it (training() joins only a run nobody who asked for it is there for: a second student is not enrolled
    in the first one's run): its place in line and progress, redrawn every WATCH_EVERY s, and that pressing `press`
    (the page's button) follows the same run, not a second one. Once it finishes the page is drawn again: its result,
    kept on disk, shows at once. A second tab or a student opening the teacher's link saw the button alone, as if
    nothing trained. -> the job, or None (no such run, or this session's own)."""
    key = run_key(recipe, start_from, student_key)
    if pooled_job(key) is not None or not ce.jobs.pool().busy() or not ce.trained.trains(recipe):
        return None
    dataset()
    job = ce.jobs.pool().get(_pool_key(key[0], recipe.to_json(), student_key))
    if job is None or job.done:
        return None

    @st.fragment(run_every=WATCH_EVERY)
    def show():
        if job.done:
            st.rerun()  # the whole page: the result is kept
        others = job.others()
        whose = f" for {others_text(others)}" if others else ""
        ahead, p = job.ahead(), job.progress
        if ahead:
            view = (0.0, f"{label}{whose}: queued, {ahead} training run{'s' if ahead > 1 else ''} ahead of it")
        elif p is None:
            view = (0.0, f"{label}{whose}: starting…")
        else:
            view = (min(1.0, p.step / max(p.total, 1)), progress_text(label + whose, p))
        st.progress(*view)
        st.caption(f"This run was asked for in another tab or by a student. Press **{press}** to follow it here "
                   "too (with its loss curve and a Cancel): it is the same run, not a second one. Its result shows "
                   "here when it finishes.")
    show()
    return job


def run_key(recipe, start_from=None, student_key=None):
    """pooled()'s key of train_run's run of `recipe` on `start_from` (default the sidebar's model), + a student."""
    name = start_from or model_name()
    return (name, recipe.to_json()) if student_key is None else (name, recipe.to_json(), student_key)


def ask(toggle, recipe, start_from=None):
    """Record that the page's button `toggle` asked for train_run's run of `recipe`, as a toggle's cancel_resets
    does, so that let_go(toggle) withdraws it once the page shows another model (Pipeline's fine-tune: the sidebar's
    model switched mid-run left it training for nobody, unsaid)."""
    st.session_state.setdefault("toggle_runs", {})[toggle] = run_key(recipe, start_from)


def pooled(key, label, lookup, submit, cancel_resets=None, warn=True):
    """The result of the long job `key` (a hashable naming what it produces), run in the process-wide training pool
    behind its place in line, a progress bar, a live loss curve and a Cancel button; or None (after saying why:
    cancelled, a CompressError, or failed half-way).

    lookup() gives the result if it is kept already (on disk, or in the server's memory), else None; submit()
    queues the job (ce.jobs.pool().submit, whose work keeps its result before it returns) -> ce.jobs.Job.

    Jobs run in compress_engine.playground.jobs' pool (a fixed number of workers, torch threads set per job), so
    thirty students pressing "Fine-tune" queue instead of thrashing: the page shows its place in line ("queued: 2
    ahead of you"), then the run's progress. The same run asked for by another session (the same key of the pool)
    is joined, not trained twice. A rerun of the page (any widget) does not stop the run: it goes on in the pool, and
    the next call here picks it up again (or finds it on disk). Cancel withdraws this session; the run stops once no
    session is waiting for it (a closed tab stops waiting SESSION_GRACE s after it went), and nothing of it is kept.
    cancel_resets: the key of a toggle that asked for the job, which Cancel turns off (and says it stopped in a
    toast): the page then draws as without it, not an empty page under "Stopped".
    warn=False: the page says itself that the result could not be kept on disk (warn_not_kept_all, once for all
    its results), not under each one."""
    store = st.session_state.setdefault("trained", {})
    waiting = st.session_state.setdefault("train_jobs", {})  # this session's runs in the pool, by `key`
    cancel_key = "train_cancel:" + hashlib.sha256(repr(key).encode()).hexdigest()[:16]
    if st.session_state.get(cancel_key):  # this page run is the one this session's Cancel started
        waiting.pop(key, None)
        st.info(st.session_state.get("cancel_said", {}).pop(key, STOPPED))
        return None
    if cancel_resets is not None:  # (also when `key` is kept: the run moved away from still stops)
        _supersede(cancel_resets, key)
    found = kept(key, lookup)
    if found is not None:
        waiting.pop(key, None)
        if warn:
            warn_not_kept(found)
        return found

    job = waiting.get(key)
    if job is None:
        job = submit()
        waiting[key] = job
        st.session_state.get("declined_runs", set()).discard(key)  # asked for again: training() follows it again
    if not job.done:
        _follow_training(job, label, key, cancel_key, cancel_resets)
    waiting.pop(key, None)
    if job.state == ce.jobs.DONE:
        store[key] = job.value
        if warn:
            warn_not_kept(job.value)
        return job.value
    if job.state == ce.jobs.CANCELLED or isinstance(job.error, ce.Stopped):
        st.info(STOPPED)
    elif isinstance(job.error, ce.CompressError):
        st.error(md_text(job.error))
    else:  # a run that fails half-way is a message, never a traceback
        e = job.error
        st.error(f"{label} failed ({type(e).__name__}: {md_text(str(e)[:300])}). Nothing of the run was kept; "
                 "start it again to retry.")
    return None


def _supersede(toggle, key):
    """This session withdraws from the run its toggle `toggle` asked for before `key` (the slider moved while the
    switch was on), as its Cancel would: the run stops unless another session waits for it (then it goes on, and is
    kept). A held arrow key left each value it passed training in turn, the one asked for last waiting behind them."""
    asked = st.session_state.setdefault("toggle_runs", {})
    if asked.get(toggle) != key:
        let_go(toggle)
    asked[toggle] = key


def let_go(toggle, keep=None):
    """This session withdraws from the run its toggle `toggle` (pooled's cancel_resets) asked for last, if it is still
    queued or running, as its Cancel would (_withdraw): the run stops unless another session waits for it, and then
    goes on for them and is kept. For a page whose toggle's run no longer belongs to what it shows (Pruning's
    fine-tuned curve of the model the sidebar switched away from). -> None if no run of it was waiting, else (its
    key, its state as withdrawn (DONE: it had just finished, and is kept), how many other sessions it goes on for:
    0, it stops and nothing of it is kept), as Cancel's stopped_text counts them. keep(key) -> True: that run is
    still the page's, left alone (None: none is)."""
    key = st.session_state.get("toggle_runs", {}).get(toggle)
    if key is None or (keep is not None and keep(key)):
        return None
    st.session_state["toggle_runs"].pop(toggle)
    if pooled_job(key) is None:
        return None
    job, state = _withdraw(key)
    return key, state, job.others() if state in (ce.jobs.QUEUED, ce.jobs.RUNNING) else 0


def let_go_on_switch(toggle, describe=None):
    """A page's toggle's fine-tune of the model the sidebar switched away from (let_go: withdrawn, as Cancel would),
    said in an st.info: "You switched the model to X. The fine-tune of Y ..." (describe(left, what): its account,
    default left_text). Pruning's switch and Pipeline's button."""
    left = let_go(toggle, keep=lambda key: key[0] == model_name())
    if left is not None:
        st.info(f"You switched the model to {md_text(model_name())}. "
                + (describe or left_text)(left, f"The fine-tune of {md_text(left[0][0])}"), icon=":material/cancel:")


def left_text(left, what):
    """What became of a run withdrawn by let_go (`left`, its account), named `what` ("The fine-tune of lenet-5")."""
    _, state, others = left
    return (f"{what} had just finished, and is kept." if state == ce.jobs.DONE else
            f"{what} {goes_on_text(others)}." if others
            else f"{what}, which was training, stopped: nothing of it is kept.")


def pooled_job(key):
    """This session's queued or running pooled() job of `key` (a ce.jobs.Job), or None."""
    job = st.session_state.get("train_jobs", {}).get(key)
    return job if job is not None and not job.done else None


def kept(key, lookup):
    """pooled()'s result of `key` if this session has it or lookup() finds it kept, else None. Never runs anything."""
    found = st.session_state.get("trained", {}).get(key)
    if found is None:
        found = lookup()
        if found is not None:
            st.session_state.setdefault("trained", {})[key] = found
    return found


def _trained_disk_key(name, recipe_json, student_id=None):
    """The trained-results key of `name`'s weights (+ a student's id) + recipe + this dataset: for no student
    it is _trained_key's, so cached_trained finds what train_run kept."""
    model_id = _model_key(name, weights_id(name)) + (f"+student:{student_id}" if student_id else "")
    return ce.trained.TrainedCache.key(model_id, recipe_json, _dataset(DATASET).fingerprint())


def keep_under_recipe(name=None, budget_kb=None):
    """On the page's thread: a function keep(result) for a job's worker thread that keeps a trained compress()
    Result also under its own recipe's trained-results key, where train_run looks: a size-budget fit's result is
    compress(model, result.recipe, data)'s, byte for byte, so replaying its recipe (Export) shows it at once
    instead of training it again. budget_kb: the Fit's budget, kept with it, so that replay is saved under the
    Fit's technique (store.technique_label), not its recipe's."""
    name = name or model_name()
    model_id, data_id, cache = _model_key(name, weights_id(name)), dataset().fingerprint(), ce.trained.TrainedCache()
    from compress_engine.playground.store import technique_label
    extra = None if budget_kb is None else {"technique": technique_label(None, budget_kb=budget_kb)}
    return lambda res: cache.put(ce.trained.TrainedCache.key(model_id, res.recipe.to_json(), data_id), name, res,
                                 extra=extra)


def request_key(request, name=None):
    """The trained-results key of a trained request that no Recipe names (a dict, e.g. {"fit_budget": {...}}) on
    `name`'s weights (default the sidebar's model) and this dataset: what a page keeps such a result under."""
    name = name or model_name()
    return ce.trained.TrainedCache.key(_model_key(name, weights_id(name)), request, dataset().fingerprint())


def _trained_from_disk(disk_key, name, recipe_json):
    """A kept trained result packed like _pack's (weights decoded from its artifact), or None."""
    hit = ce.trained.TrainedCache().get(disk_key)
    if hit is None:
        return None
    try:
        weights = {n: t.numpy() for n, t in ce.decode(hit["artifact"]).items()}
    except ce.CompressError:  # a damaged file: train again
        return None
    technique = (hit.get("extra") or {}).get("technique")  # a Fit's, kept with it (keep_under_recipe)
    return {"recipe": recipe_json, "model": name, "metrics": hit["metrics"], "artifact": hit["artifact"],
            "timings": hit["timings"], "history": hit["history"], "weights": weights,
            **({"technique": technique} if isinstance(technique, str) else {})}


def _submit_training(name, recipe, student, student_id, model_logits):
    """Queue the run in the process-wide pool (or join the same run queued by another session) -> ce.jobs.Job.

    Everything session-bound (the model, the data, the disk folder) is looked up here, on the page's thread;
    the job itself only calls the engine and keeps its result on disk before it counts as done."""
    net, ds, cache = model(name), dataset(), ce.trained.TrainedCache()
    pool_key = _pool_key(name, recipe.to_json(), student_id)
    disk_key = pool_key[1]

    def work(progress):
        res = ce.compress(net, recipe, ds, student=student, progress=progress, model_logits=model_logits,
                          warn_collapse=False)  # (the page says it)
        packed = _pack(name, res)
        not_kept(packed, cache.keep(disk_key, name, res))
        return packed

    return ce.jobs.pool().submit(pool_key, work)


def _pool_key(name, recipe_json, student_id=None):
    """The training pool's key of train_run's run of `recipe_json` on `name` (+ a student): the trained-results folder
    and its key there, what the run produces (so the same run asked for twice, by any session, is one job)."""
    return str(ce.trained.TrainedCache().folder), _trained_disk_key(name, recipe_json, student_id)


# s a session may be disconnected and still count as waiting for its training runs: a network blip, or a tab that
# reconnects to the same session, must not stop a run, while a closed tab (it never presses Cancel) must not hold the
# training worker, the only one on a 2-core server, for everyone else for long
SESSION_GRACE = 15.0
_gone_since = {}  # session id -> time.monotonic() when it was first found disconnected


def _session_alive(session_id):
    """Whether the Streamlit session `session_id` still counts as waiting for its runs (the pool's alive(): called on a
    worker thread). Disconnected for SESSION_GRACE s, it is gone; with no real server (AppTest's stand-in runtime,
    a script) every session is alive."""
    if not _real_server():
        return True
    if Runtime.instance().is_active_session(session_id):
        _gone_since.pop(session_id, None)
        return True
    now = time.monotonic()
    return now - _gone_since.setdefault(session_id, now) < SESSION_GRACE


def _session_present(session_id, alive):
    """The pool's join(present=): whether the session that asked for a run is there now, a tab connected to it (a
    reloaded tab's old session is not, though it counts as waiting for SESSION_GRACE s); with no real server
    (AppTest's stand-in runtime, a script), its alive()."""
    if not _real_server():
        return bool(alive is None or alive())
    return Runtime.instance().is_active_session(session_id)


def _whoami():
    """ce.jobs.whoami: the submitter of the calling thread's script run (its session id, and whether that session is
    still there), or None off a script run."""
    ctx = get_script_run_ctx(suppress_warning=True)
    if ctx is None:
        return None
    session_id = ctx.session_id
    return session_id, lambda: _session_alive(session_id)


ce.jobs.whoami = _whoami  # every page's pool().submit, cancel() and others() is its session's
# others() counts, and Cancel leaves waiting, only sessions with a tab connected: Streamlit's runtime keeps a reloaded
# or closed tab's session as it keeps a network blip's (disconnect_session stores both for a reconnect; the websocket's
# close code is not kept), so either counts as alive for SESSION_GRACE s, but neither is someone waiting
ce.jobs.present = _session_present


def _withdraw(key):
    """This session stops waiting for its pooled run `key` (Cancel, or the slider moved on: _supersede): the run stops
    unless another session waits for it, and training() joins it no more. -> (the job or None, its state then)."""
    job = st.session_state.get("train_jobs", {}).pop(key, None)
    state = job.cancel() if job is not None else None
    st.session_state.setdefault("declined_runs", set()).add(key)
    return job, state


def _cancel_training(key, resets=None):
    """on_click of a run's Cancel button: runs before the page does, whether or not the page draws it again; turns
    off the toggle `resets` (pooled's cancel_resets), saying so."""
    job, state = _withdraw(key)
    # others still waiting (live sessions): it goes on, and is kept; a finished job has nobody waiting for it
    said = stopped_text(job.others() if state in (ce.jobs.QUEUED, ce.jobs.RUNNING) else 0,
                        finished=state == ce.jobs.DONE)
    st.session_state.setdefault("cancel_said", {})[key] = said
    if resets is not None:
        switched_off(resets)
        st.toast(said, icon=":material/cancel:")


def switched_off(toggle):
    """Turn off the toggle `toggle` for the visitor (Cancel does). A link that turned it on had its value taken: the
    note on the link's values (link_values_note) is not to call it one the page could not open on. A reload in the
    middle of Pruning's fine-tune, then Cancel, said "This link's prune_finetune=true is not a value this setting
    takes", as the reloaded page's first complete run came after the Cancel."""
    st.session_state[toggle] = False
    st.session_state.get("_link_asked", {}).pop(toggle, None)


# s between two redraws of a followed run's progress bar while only its step count moves (its place in line, and
# the run starting, show at once): at 5 a second the bar kept headless Chromium busy 14 % of a core, at 1 a second
# 8 %, 4 % with nothing redrawn (bench/training_pace.py), beside a training job on the same 2 cores
PROGRESS_EVERY = 1.0


def progress_text(label, p, now=None):
    """A running job's progress line from its ce.jobs.Progress `p`: "Fit in 20 KB: fine-tuning, step 300 of 938,
    loss 0.412 (about 2 min left)"; the time left is at the pace of the part running (p.phase) since it began."""
    if not p.total:  # a part with no steps to count: its name alone
        return f"{label}: {p.phase or 'starting'}…"
    now = time.monotonic() if now is None else now
    # at the pace of the steps since this part's first report (jobs.Progress): none to go by until a second one
    left = (units.remaining(now - p.began, p.step - p.first, p.total - p.first)
            if p.began is not None and p.first is not None and p.first < p.step < p.total else None)
    return (f"{label}: {p.phase or 'step'} {p.step:,} of {p.total:,}"
            + (f", loss {p.loss:.3f}" if p.loss is not None else "")
            + (f", test accuracy {100 * p.acc:.1f} %" if p.acc is not None else "")
            + (f" ({units.left(left)})" if left is not None else ""))


def _follow_training(job, label, key, cancel_key, cancel_resets=None):
    """Show `job` until it is finished: its place in line, then a progress bar and the loss curve; and a Cancel
    button. Redraws only what changed. Any widget's rerun interrupts this (the job goes on in the pool).

    The loss curve is a plotly figure from plain lists, not st.line_chart: that would import pandas in this page
    run, and plotly's figure builders in other sessions' runs then find pandas half-imported in sys.modules
    (AttributeError: partially initialized module 'pandas'), as bench/load.py found with 5 sessions."""
    import plotly.graph_objects as go

    slot = st.empty()
    with slot.container():
        bar = st.progress(0.0, text=f"{label}…")
        loss_slot = st.empty()
        st.button("Cancel", key=cancel_key, icon=":material/cancel:", on_click=_cancel_training,
                  args=(key, cancel_resets),
                  help="Stop waiting for this run. It stops, and nothing of it is kept, unless another tab or "
                       "student is waiting for the same run.")
    shown, shown_kind, points, sent = None, None, 0, 0.0
    ce.jobs.release_threads()  # this thread waits from here on: its idle OpenMP workers would slow the training's
    while True:
        st.session_state.get(cancel_key)  # a yield point: with runner.fastReruns off, a rerun (Cancel) waits for one
        ahead, p = job.ahead(), job.progress
        others = job.others()  # other sessions still there that wait for it (a closed tab stops counting)
        shared = f" (also for {others_text(others)})" if others > 0 else ""
        if ahead:
            view = (0.0, f"{label}: queued, {ahead} training run{'s' if ahead > 1 else ''} ahead of you{shared}")
        elif p is None:
            view = (0.0, f"{label}: starting{shared}…")
        else:
            view = (min(1.0, p.step / max(p.total, 1)), progress_text(label, p) + shared)
        kind = (bool(ahead), p is None)
        if view != shown and (kind != shown_kind or time.monotonic() - sent >= PROGRESS_EVERY):
            bar.progress(*view)
            shown, shown_kind, sent = view, kind, time.monotonic()
        losses = job.losses
        if len(losses) != points and len(losses) > 1:
            points = len(losses)
            step = max(1, points // 500)  # at most ~500 points drawn
            shown_losses = losses[::step]
            fig = go.Figure(go.Scatter(x=[x for x, _ in shown_losses], y=[y for _, y in shown_losses], mode="lines",
                                       name="loss"))
            fig.update_layout(height=220, margin=dict(l=10, r=10, t=30, b=10), title="Training loss",
                              xaxis_title="step", yaxis_title="loss")
            chart(fig, loss_slot)
        with _waiting_only():
            if job.wait(TRAIN_POLL):
                break
    slot.empty()


@contextmanager
def _waiting_only():
    """Inside, this page run only waits (for a training job): it does not count as computing (_cores_free)."""
    with _running_lock:
        _waiting[0] += 1
    try:
        yield
    finally:
        with _running_lock:
            _waiting[0] -= 1


def _cores_free():
    """ce.jobs.spare: whether no page run computes now (one waiting for a training job does not) and nothing is
    warmed or computed ahead: the training pool then runs its job on the page runs' threads too, until the next step
    after a page run starts (LeNet-5's fine-tuning job: 15.7 s on the pool's one thread, 8.2 s on two;
    bench/training_pace.py)."""
    with _running_lock:
        computing = _running[0] - _waiting[0]
    return computing <= 0 and not _compute_lock.locked()


ce.jobs.spare = _cores_free  # a training job takes the cores no page run computes on, step by step


def save_button(result, technique=None, key=None, student=None, student_key=None):
    """A "Save run" button: stores a `run` / `train_run` result in the run store (listed on the Compare page),
    under `technique`, by default the label store.technique_label gives its recipe (a replayed Fit's: its own).

    A run is its model's weights + recipe + data (ce.sweeps.point_key, the key sweeps store points under): saving
    the same one again keeps the one stored run. Returns the run's id when pressed and saved, else None.
    A distilled student is stored under its teacher's name: `student` (e.g. "100-100") becomes the run's name,
    and `student_key` (train_run's, for a student module the recipe does not name) is part of its key, so a CNN
    student is not taken for the MLP student of the same recipe. Store problems are shown with st.error.
    """
    from compress_engine.playground.store import Store, technique_label

    if result is None:
        return None
    label = technique or result.get("technique") or technique_label(result["recipe"])
    if not st.button("Save run", key=key or f"save_run:{label}", icon=":material/save:",
                     help="Keep this run (metrics, recipe and artifact) to compare it with others on the Compare "
                          "page, where you can also name it. The same model, recipe and data are saved once."):
        return None
    name = result["model"]
    model_id = ce.sweeps.model_id(name, _model_key(name, weights_id(name)), student_key)
    # the data's name and content, as a sweep keys its points: the same run from a sweep or a Save is stored once
    point = ce.sweeps.point_key(model_id, ce.Recipe.from_json(result["recipe"]), ce.sweeps.data_id(DATASET, dataset()))
    try:
        store = Store()
        saved_before = store.stored_points([point])
        run_id = store.save(name, result["recipe"], result["metrics"], result["artifact"], technique=label,
                            data=DATASET, point_key=point, name=None if student is None else f"{student} student")
    except ce.CompressError as e:
        st.error(f"Could not save the run: {md_text(e)}")
        return None
    if saved_before:
        st.toast(f"Already saved as run #{run_id} (same model, recipe and data): nothing was added.",
                 icon=":material/info:")
    else:
        st.toast(f"Saved run #{run_id} ({label}): see it on the Compare page.", icon=":material/check_circle:")
    return run_id


def short_hash(data):
    """The first 16 hex digits of bytes' SHA-256: enough for a person to match a download against a page."""
    return hashlib.sha256(data).hexdigest()[:16]


def data_flag():
    """The command line's `--data` for this server's data, with a leading space. Every command a page shows to run
    or check something elsewhere carries it: without it, the command line scores on its default (Fashion-MNIST)
    what the page scored on the server's data. Given even for the default, so a copied command says its data."""
    return f" --data {shlex.quote(DATASET)}"


@st.cache_data(max_entries=8, show_spinner=False)
def deploy_files(artifact):
    """The artifact's weights for a deployment runtime: (float safetensors bytes, int8 safetensors bytes or None,
    the engine's reason there is no int8 file or None), cached by the artifact's bytes (a page reruns on every
    widget; a new artifact costs one decode: about 55 ms for LeNet-5's)."""
    return ce.deploy_files(artifact)


def downloads(artifact, recipe, stem):
    """The artifact's and its recipe's download buttons side by side, how to check the artifact anywhere, and the
    weights for a deployment runtime (deploy_files: the float and the int8 safetensors files), each button labelled
    with its size in bytes, with the lines of Python that load each file. Export's and Sensitivity's Fit."""
    a, b = st.columns(2)
    a.download_button(f"Download artifact ({kb(len(artifact))})", artifact, file_name=f"{stem}.cpg",
                      mime="application/octet-stream", icon=":material/deployed_code:", on_click="ignore", type="primary")
    b.download_button("Download recipe (.json)", json.dumps(recipe.to_dict(), indent=2), file_name=f"{stem}.json",
                      mime="application/json", icon=":material/description:", on_click="ignore")
    st.caption(f"SHA-256 of the artifact `{short_hash(artifact)}…`. Check it anywhere: "
               f"`python -m compress_engine eval {stem}.cpg{data_flag()}`. Load it in Python: `import compress_engine; "
               f"model, meta = compress_engine.decode_model(open('{stem}.cpg', 'rb').read())` rebuilds the model it holds (as "
               "compressed: BatchNorms folded, pruned units removed), or add `module=YourNet()` to load it into a "
               "fresh instance of your own class.")
    weights, int8, why_not = deploy_files(artifact)
    c, d = st.columns(2)
    c.download_button(f"Weights (.safetensors, {len(weights):,} bytes)", weights, file_name=f"{stem}.safetensors",
                      mime="application/octet-stream", icon=":material/download:", on_click="ignore")
    c.caption("Every tensor as decoded, float, for plain PyTorch (no compress_engine); `model` is a fresh instance "
              "of the compressed model:\n```python\nfrom safetensors.torch import load_file\n"
              f"state = load_file('{stem}.safetensors')\nmodel.load_state_dict(state)\n```")
    if int8 is None:
        d.caption(f"No int8 weights: {md_text(why_not)}")
        return
    d.download_button(f"int8 weights (.safetensors, {len(int8):,} bytes)", int8, file_name=f"{stem}-int8.safetensors",
                      mime="application/octet-stream", icon=":material/download:", on_click="ignore")
    d.caption("Quantized tensors as int8 / uint8 codes with their scale and zero point, clustered ones as uint8 "
              "indices into their codebook (names and formula: docs/FORMAT.md, section 10); back to float, bit for "
              "bit:\n```python\nimport compress_engine\n"
              f"state = compress_engine.read_int8(open('{stem}-int8.safetensors', 'rb').read())\n"
              f"model.load_state_dict(state)\n```\nMind: {md_text(ce.INT8_WARNING)}.")


def predictions(model_name, n=None):
    """The dense model's predicted class for the first n test images (every one if n is None), a list of ints.

    Home shows 12: those are 12 images through the model, not the 10,000 of the dense reference, so a
    first visit or a model switch draws at once (LeNet-5's whole test set is ~0.4 s on 2 cores). A sample model's
    card keeps its answers for the first test images: those are read, not computed, so a server's first Home
    page draws without importing torch."""
    if n is not None and not weights_id(model_name):
        kept = ce.head_predictions(ce.model_card(model_name), DATASET, first_test_images()["x"], n)
        if kept is not None:
            return kept
    return _predictions(model_name, weights_id(model_name), DATASET, n)


@st.cache_data(show_spinner=False, max_entries=64)
def _predictions(model_name, weights_id, dataset_name, n=None):
    if n is None:
        return ce.reference(model(model_name), dataset())[0].tolist()
    return ce.predictions(model(model_name), dataset().x("test")[:n]).tolist()
