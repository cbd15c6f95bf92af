"""Export: build an artifact (.cpg) from a compact recipe for the sidebar's model and download it with
its recipe JSON and its weights as safetensors (float, and int8 codes when the recipe quantizes or clusters); upload
an artifact back to decode and score it, or a recipe JSON to reproduce a run.

Uploaded files are only read by the engine's own checked decoder (ce.evaluate_artifact) or as JSON
(ce.Recipe.from_json): nothing uploaded is ever unpickled or executed.
"""

import json
import math

import pandas as pd
import plotly.express as px
import streamlit as st

import compress_engine as ce
from compress_engine.playground import explain, units, zoo
from compress_engine.playground.store import MAX_RECIPE_JSON, MAX_RECIPE_KB, file_stem, recipe_summary
from pages import common

common.through_app()

# The Check tab takes any artifact the dashboard makes. The largest is a dense export of the largest model the sidebar
# takes: every one of its weights (at most zoo.MAX_UPLOAD_PARAMS) as float32, 4 bytes each (a float16 file is read
# as float32, so its artifact is twice its size: common.MAX_WEIGHTS_MB alone does not bound it), plus the header:
# the architecture, the recipe (an uploaded one is under MAX_RECIPE_KB) and a record of each tensor (at most
# zoo.MAX_UPLOAD_TENSORS, each well under a KB). A student of the Distillation page is far smaller. The engine keeps
# and evaluates larger ones (store.MAX_ARTIFACT, which the command line's eval applies too).
HEADER_ROOM = MAX_RECIPE_JSON + zoo.MAX_UPLOAD_TENSORS * units.KB
MAX_ARTIFACT_MB = math.ceil((4 * zoo.MAX_UPLOAD_PARAMS + HEADER_ROOM) / units.MB)  # MB of 1,000,000 bytes
PARTS = ("index", "codes", "codebook", "raw")


def breakdown_chart(parts):
    """Stacked bars: bytes of each tensor split into index / codes / codebook / raw (KB), the tensors in the
    artifact's order (the model's): Plotly Express lists each part's tensors in turn, which put every bias (raw
    only) after all the weights."""
    rows = [{"tensor": name, "part": part, "kb": mine[part] / units.KB}
            for name, mine in parts["per_tensor"].items() for part in PARTS if mine.get(part)]
    fig = px.bar(pd.DataFrame(rows, columns=["tensor", "part", "kb"]), x="kb", y="tensor", color="part",
                 orientation="h", category_orders={"part": list(PARTS), "tensor": list(parts["per_tensor"])},
                 labels={"kb": "Bytes in the artifact (KB)", "tensor": "Tensor", "part": "Part"})
    fig.update_layout(title=dict(text="Each tensor's bytes, by part", yref="container", y=1, yanchor="top",
                                 pad=dict(t=8)), height=170 + 28 * len(parts["per_tensor"]),
                      # the first tensor on top (category_orders); the legend (up to two rows) under the title
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0, title=None), margin=dict(t=100, b=10))
    return fig


def show_breakdown(parts, total, key):
    """The size_breakdown of an artifact: parts table (KB and share) beside per-tensor bars."""
    left, right = st.columns(2)
    table = pd.DataFrame([{"part": p, "kb": parts[p] / units.KB, "share": 100 * parts[p] / total}
                          for p in ("header",) + PARTS])
    left.dataframe(table, hide_index=True, width="stretch", key=f"{key}_parts", column_config={
        "part": "Part", "kb": st.column_config.NumberColumn("Size (KB)", format="%.2f KB"),
        "share": st.column_config.ProgressColumn("Share", format="%.1f %%", min_value=0, max_value=100)})
    left.caption("; ".join(f"**{part}**: {what}" for part, what in explain.ARTIFACT_PARTS.items()) + ".")
    common.chart(breakdown_chart(parts), right, key=f"{key}_chart")


KEPT_RECIPE = "export_uploaded_recipe"  # session state: (file name, recipe JSON) of the recipe uploaded last


def file_label(filename):
    """An uploaded file's name as the page shows it: cut to 80 characters, literal (md_text)."""
    return common.md_text(filename if len(filename) <= 80 else filename[:80] + "…")


def recipe_from_upload(upload):
    """A Recipe from an uploaded JSON file, or None with the reason shown (size, encoding, nesting, fields, or what
    the sidebar's model refuses)."""
    name = file_label(upload.name)
    if upload.size > MAX_RECIPE_JSON:  # the run store's limit: a recipe used here can be saved
        st.error(f"{name} is {units.kb(upload.size, 0)}; a recipe JSON is under {MAX_RECIPE_KB} KB.")
        return None
    try:
        text = upload.getvalue().decode("utf-8-sig")  # a byte-order mark (Windows editors) is fine
    except UnicodeDecodeError:
        st.error(f"{name} is not UTF-8 text: a recipe is a JSON object such as "
                 '{"sparsity": 0.9, "clusters": 16, "huffman": true}.')
        return None
    try:
        return checked(ce.Recipe.from_json(text), name)
    except ce.CompressError as e:
        st.error(f"Cannot use {name}: {common.md_text(e)}")  # it quotes the file's fields and layer names
    return None


def checked(recipe, name):
    """`recipe` if the sidebar's model takes it, else None with the engine's reason shown.

    compress()'s own check against the model, before anything says the recipe is in use: layers naming no layer of
    it were "Using the uploaded recipe" in green, then refused in red. A kept recipe is checked again: the sidebar's
    model may have changed since it was uploaded."""
    try:
        ce.check_recipe(common.model(common.model_name()), recipe, common.dataset())
        return recipe
    except ce.CompressError as e:
        st.error(f"Cannot use {name}: {common.md_text(e)}")
    return None


def forget_recipe():
    """on_change of the recipe uploader: a file removed or replaced no longer counts (a new one is kept once read)."""
    st.session_state.pop(KEPT_RECIPE, None)


def using(filename, recipe):
    """What the page says of an uploaded recipe it uses, read from the uploader or kept from an earlier visit."""
    return f"Using the uploaded recipe {file_label(filename)}: {common.md_text(recipe_summary(recipe))}"


def uploaded_recipe():
    """The uploaded recipe the Make tab uses -> (recipe or None, whether one was uploaded).

    Kept in the session (KEPT_RECIPE) once read: Streamlit empties the uploader when the page is left, and coming
    back showed the default recipe while the uploaded one's run went on in the pool; now the page shows it again,
    and its run's progress (make_tab finds the job with common.training), until Clear or another upload."""
    upload = st.file_uploader("Reproduce a recipe (.json), optional", type=["json"], key="recipe_upload",
                              max_upload_size=1, help="A recipe downloaded here or written by hand",
                              on_change=forget_recipe)
    if upload is not None:
        recipe = recipe_from_upload(upload)
        if recipe is not None:
            st.session_state[KEPT_RECIPE] = (upload.name, recipe.to_json())
            st.success(using(upload.name, recipe))
        return recipe, True
    if KEPT_RECIPE not in st.session_state:
        return None, False
    filename, text = st.session_state[KEPT_RECIPE]
    recipe = checked(ce.Recipe.from_json(text), file_label(filename))
    left, right = st.columns([5, 1], vertical_alignment="center")
    if recipe is not None:
        left.success(using(filename, recipe))
    right.button("Clear", key="export_recipe_clear", on_click=forget_recipe,
                 help="Forget the uploaded recipe and use the controls")
    return recipe, True


@st.cache_data(max_entries=8, show_spinner="Decoding the artifact and scoring it on the test set…")
def check_artifact(data, dataset_name, _data):
    """Decode + score an uploaded artifact (cached by its bytes). Raises the engine's CompressError if bad
    (zoo.DoesNotFitData for a valid artifact whose model cannot take this data)."""
    out = ce.evaluate_artifact(data, _data, max_params=zoo.MAX_UPLOAD_PARAMS, cost_limit=True)  # as an upload
    out.pop("model")
    out["breakdown"] = ce.size_breakdown(data)
    return out


def misfit_text(data, ds, why):
    """What the Check tab says of a valid artifact whose model does not fit this server's data, and where to check it."""
    meta = ce.read_meta(data)
    own = model_text(meta.get("spec")) or meta.get("model_class") or "a model not named in its header"
    inputs = "×".join(map(str, ds.input_shape))
    return (f"This is a valid artifact of **{common.md_text(own)}**, but it cannot be scored on this server's data "
            f"(`{common.DATASET}`: inputs {inputs}, {ds.n_classes} classes): "
            f"{common.md_text(why)}. Check it on the command line on the data it was made for: "
            "`python -m compress_engine eval FILE.cpg --data csv:yours.csv` (or `idx:folder`, `npz:file.npz`; "
            "README, *Command line*).")


def model_text(spec):
    """A model's architecture in a few words (ce.arch_text), or None for a spec it cannot read."""
    try:
        return ce.arch_text(spec)
    except Exception:  # a spec only the decoder checked: no name is better than a traceback
        return None


def artifact_model_text(meta):
    """The Check tab's caption: the model the artifact holds (its header's architecture), which is what was scored,
    and whether it is the sidebar's: a LeNet-5 artifact checked with LeNet-300-100 in the sidebar scored under
    the page's "Model: lenet-300-100"."""
    own = model_text(meta.get("spec")) or meta.get("model_class") or "not named in its header"
    sidebar, name = model_text(common.card().get("spec")), common.md_text(common.model_name())
    text = f"Model: **{common.md_text(own)}** (from the artifact's header)"
    if own == sidebar:
        return f"{text}, the architecture of the sidebar's {name}."
    return f"{text}: not the sidebar's {name} ({common.md_text(sidebar)}), which plays no part in this check."


def own_model_text(meta):
    """What the Check tab says of a valid artifact whose header carries no architecture (a model of the user's own
    code, made by `run --model file.py:callable` or compress() on their module): only that code can rebuild it."""
    return (f"This is a valid artifact of a **{common.md_text(meta.get('model_class') or 'user-defined')}** model of "
            "your own code: its header does not describe the architecture, so only the code that builds the model can "
            "rebuild and score it, which this page does not have. Check it on the command line with "
            f"`python -m compress_engine eval FILE.cpg --model file.py:callable{common.data_flag()}` (the file and "
            "function or class that builds the model), or in Python with "
            "`ce.decode_model(artifact, module=MyNet())`, a fresh instance of its class.")


def handle_artifact_upload(data):
    """Everything the 'Check an artifact' tab shows for uploaded bytes; errors shown with st.error."""
    if len(data) > MAX_ARTIFACT_MB * units.MB:
        st.error(f"This file is {units.mb(len(data))}; artifacts are limited to {MAX_ARTIFACT_MB} MB here.")
        return None
    ds = common.dataset()
    try:
        out = check_artifact(data, common.DATASET, ds)
    except zoo.DoesNotFitData as e:
        st.error(misfit_text(data, ds, str(e)))
        return None
    except zoo.OverLimit as e:  # a valid artifact, refused from its header before anything is decoded
        st.error(f"This artifact is too large to check here: {common.md_text(e)}.")
        return None
    except ce.CompressError as e:
        # a ModelError comes after the bytes decoded (damaged ones are an ArtifactError); with no architecture in
        # the header, the file is fine and holds a model of the user's own code, which only that code rebuilds
        meta = ce.read_meta(data) if isinstance(e, ce.ModelError) else None  # the header, read once
        if meta is not None and meta.get("spec") is None:
            st.warning(own_model_text(meta))
        else:
            st.error(f"This file is not a valid artifact: {common.md_text(e)}")  # it quotes the file's tensor names
        return None
    except Exception as e:  # defence in depth: an upload must never show a traceback
        st.error(f"Could not decode this file as an artifact ({type(e).__name__}: {common.md_text(e)}).")
        return None
    meta = out["meta"] if isinstance(out["meta"], dict) else {}
    st.caption(artifact_model_text(meta))
    c = st.columns(4)
    c[0].metric("Test accuracy", f"{100 * out['accuracy']:.2f} %", help=f"on the {common.DATASET} test set")
    c[1].metric("Artifact size", common.kb(out["artifact_bytes"]))
    c[2].metric("Parameters", f"{out['params']:,}")
    c[3].metric("Non-zero parameters", f"{out['nonzero_params']:,}")
    st.caption(f"SHA-256 `{common.short_hash(data)}…` — the same bytes as a download whose hash matches.")
    carried = meta.get("recipe")
    if carried is not None:
        try:
            r = ce.Recipe.from_dict(carried)
            st.markdown(f"**Recipe it carries:** {common.md_text(recipe_summary(r))}")  # its layer names as written
            with st.expander("Its recipe as JSON (upload it under *Make an artifact* to rebuild the artifact)"):
                st.code(json.dumps(r.to_dict(), indent=2), language="json")
        except ce.CompressError as e:
            st.warning(f"The artifact decodes, but the recipe it carries is not valid here: {common.md_text(e)}")
    else:
        st.info("This artifact carries no recipe.")
    if meta.get("spec") is not None:
        with st.expander("Architecture it carries"):
            st.json(meta["spec"])
    show_breakdown(out["breakdown"], out["artifact_bytes"], "uploaded")
    return out


def recipe_form():
    """The compact recipe controls -> a Recipe (None with the error shown if invalid)."""
    lo, hi = ce.RANGES["sparsity"]
    first = common.start_settings("export", lambda f: {"export_sparsity": 100 * f["sparsity"],
                                               "export_scope": f["prune_scope"], "export_clusters": f["clusters"],
                                               "export_huffman": f["huffman"]})
    pct = st.slider("Sparsity: share of weights set to zero", 100 * lo, 100 * hi, step=0.1, format="%.1f %%",
                    key="export_sparsity", persist_state="session", value=first["export_sparsity"],
                    bind=common.LINK)
    scope = st.radio("Pruning threshold", list(common.SCOPES), format_func=common.SCOPES.get, horizontal=True,
                     key="export_scope", persist_state="session", help=common.SCOPE_HELP,
                     index=common.index_of(common.SCOPES, first["export_scope"]), bind=common.LINK)
    sharing = st.radio("Weight sharing", ["none", "k-means clusters", "uniform bits"], index=1, horizontal=True,
                       key="export_sharing", persist_state="session", bind=common.LINK)
    clusters = bits = None
    if sharing == "k-means clusters":
        clusters = st.slider("Clusters per layer", *ce.RANGES["clusters"], key="export_clusters",
                             persist_state="session", value=first["export_clusters"], bind=common.LINK)
    elif sharing == "uniform bits":
        bits = st.select_slider("Bits per weight", options=list(ce.BITS), value=4, key="export_bits",
                                persist_state="session", bind=common.LINK)
    huffman = st.toggle("Huffman-code the index and code streams", key="export_huffman", persist_state="session",
                        value=first["export_huffman"], bind=common.LINK)
    return common.recipe(sparsity=round(pct / 100, 4), prune_scope=scope, clusters=clusters, bits=bits,
                         huffman=huffman)


def make_tab():
    controls, explain = st.columns([2, 3], gap="large")
    with explain:
        st.markdown(
            "An **artifact** is the compressed model as bytes: a header (architecture and recipe), then per "
            "tensor the positions of its non-zero weights as relative indices, each weight's code, bit-packed "
            "or Huffman-coded, and the codebook the codes point into. Its length is the size shown everywhere, "
            "and decoding it gives back every weight bit for bit. The **recipe** JSON rebuilds it: the same "
            "recipe and seed give the same bytes.")
        # two lines: at 1,280 px the column is 460 px and one line (478 px) was cut at "+ rav"
        st.latex(r"\begin{aligned} \text{bytes} = {} & \text{header} + \sum_{\text{tensors}} (\text{index} + "
                 r"\text{codes} \\ & {} + \text{codebook} + \text{raw}) \end{aligned}")
    with controls:
        recipe, uploaded = uploaded_recipe()
        if not uploaded:
            recipe = recipe_form()
    if recipe is None:
        return
    title = f"{common.model_name()}: {recipe_summary(recipe)}"
    trains = ce.trained.trains(recipe)
    if trains:
        # its run still going (started before the page was left, or before another widget's rerun): followed again
        if common.cached_trained(recipe) is None and common.training(recipe) is None and not st.button(
                "Run this recipe (it trains: fine-tuning / distillation)", type="primary"):
            st.info("This recipe trains the model, which takes from seconds to minutes: press the button to run it.")
            return
        result = common.train_run(recipe)
        if result is None:
            return
        st.header(common.md_text(title))
        common.metric_cards(result["metrics"], common.dense()["metrics"])
        common.save_button(result, key="export_save")
    else:  # a run not computed yet on a slow model: its artifact and breakdown first, the accuracy after them
        st.header(common.md_text(title))
        result, _ = common.headline(recipe, key="export_save", early=True)
    art = result["artifact"]  # the same bytes with or without the evaluation
    common.downloads(art, recipe, file_stem(result["model"], recipe))
    show_breakdown(ce.size_breakdown(art), len(art), "made")
    common.complete(result)  # evaluated now (if it was drawn early): the cards get the accuracy and Save
    if not uploaded and not trains:
        # the sparsity slider's next values (0.1 % steps): they answer from the cache
        lo, hi = ce.RANGES["sparsity"]
        scope = st.session_state.get("export_scope", recipe.prune_scope)  # the radio's: at 0 % the recipe's is reset
        common.ahead(*(common.scoped(recipe.replace(sparsity=round(s, 4), prune_scope=scope))
                       for s in (recipe.sparsity + 0.001, recipe.sparsity - 0.001) if lo <= round(s, 4) <= hi))


def check_tab():
    st.markdown("Upload an artifact made here (or by `python -m compress_engine run`): it is decoded with the "
                f"engine's checked decoder, rebuilt and scored on the test set. Limit {MAX_ARTIFACT_MB} MB and "
                f"{zoo.MAX_UPLOAD_PARAMS:,} weights, as for an uploaded model; a "
                "truncated or tampered file is refused with the reason.")
    upload = st.file_uploader("Upload an artifact (.cpg)", type=["cpg"], key="artifact_upload",
                              max_upload_size=MAX_ARTIFACT_MB)
    if upload is None:
        return
    if upload.size > MAX_ARTIFACT_MB * units.MB:  # checked before the bytes are read or decoded
        st.error(f"{common.md_text(upload.name)} is {units.mb(upload.size)}; artifacts are limited to {MAX_ARTIFACT_MB} MB.")
        return
    handle_artifact_upload(upload.getvalue())


st.title("Export and check artifacts")
st.caption(f"Model: **{common.model_name()}** (change it in the sidebar). *Check an artifact* scores the model "
           "the artifact holds.")
make, check = st.tabs(["Make an artifact", "Check an artifact"])
with make:
    make_tab()
with check:
    check_tab()
