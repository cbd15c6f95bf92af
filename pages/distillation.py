"""Distillation: a small student learns from a big teacher's softened answers (Hinton, Vinyals & Dean 2015).

The lesson shows before any training: the grid bench/distillation.py measured (every student, on the
labels alone and distilled at each T, mean over 3 seeds). Training live adds the user's own student to it.
The teacher's logits come from the zoo's on-disk cache, so neither the soft targets nor a training run
ever runs the teacher over the data.
"""

import threading
from pathlib import Path

import numpy as np
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

import compress_engine as ce
from compress_engine.playground import bench_results, explain, zoo
from compress_engine.playground.cards import DEFAULT_DATA, deployed_parameters
from pages import charts, common

common.through_app()

TEACHER = "resnet-8"
BENCH = Path(__file__).resolve().parent.parent / "bench" / "results"  # bench/distillation.py's grid and gains
WIDTHS = (10, 30, 50, 100, 200, 300, 500, 800)  # hidden units in each of an MLP student's 2 layers
CNN = "small CNN (a ResNet of 8-16-32 channels)"
BLUE, ORANGE, RED = charts.BLUE, charts.ORANGE, charts.RED
GREY = charts.GREY
T_START = 1.0  # the Temperature slider's first value: the grid's fewest errors at 5 epochs (the panel says so)
OTHER_SYMBOLS = ("square", "triangle-up", "cross", "x", "pentagon", "hexagon")  # the size chart's other models
HINTON = explain.HINTON_MNIST
GRID_DATA = DEFAULT_DATA  # bench/distillation.py measured the grid on it (its bench_results.TEST_IMAGES test images)
UPLOAD_LOGITS_KEPT = 4  # uploaded teachers' logits kept in memory (a Fashion-MNIST teacher's: 2.8 MB)


def teacher_logits(name, dataset_name):
    """{"train", "test"}: the teacher's logits on every image. A sample model's are read from disk
    (zoo.cached_logits: computed once, ever); uploaded weights' are computed once per server (an MLP's in under a
    second, a ResNet's in about a minute) in the training pool at the page's threads, behind its progress bar and
    Cancel (leaving the page does not stop it), and kept in memory, keyed by the weights' SHA-256. None (after
    saying why) if cancelled."""
    wid = common.weights_id(name)
    if not wid:
        return _sample_logits(name, dataset_name)
    kept, lock = _upload_logits()
    key = (name, dataset_name, wid)
    job_key = ("teacher logits", *key)  # in the pool and in this session

    def from_memory():
        with lock:
            return kept.get(key)

    def submit():
        net, data = common.model(name), common.dataset()

        def work(progress):
            found = zoo.all_logits(net, data, progress=lambda done, total: progress(done, total, phase="image"))
            with lock:
                kept[key] = found
                while len(kept) > UPLOAD_LOGITS_KEPT:
                    kept.pop(next(iter(kept)))
            return found
        return ce.jobs.pool().submit(job_key, work, threads=ce.jobs.process_threads())

    return common.pooled(job_key, "Computing your teacher's answers (once per server)", from_memory, submit)


@st.cache_resource(show_spinner="Reading the teacher's answers (computed once, kept on disk)…")
def _sample_logits(name, dataset_name):
    return zoo.cached_logits(name, common.dataset())


@st.cache_resource
def _upload_logits():
    """Uploaded teachers' logits, oldest first, shared by the server's sessions (a file uploaded again is found),
    and the lock that guards them."""
    return {}, threading.Lock()


def student_module(kind):
    """The student module for compress(): the small CNN built from a fixed seed (so the same setting gives the same
    student everywhere), or None for an MLP (the engine builds recipe.student_width's, seeded)."""
    return zoo.cnn_student(0) if kind == CNN else None


@st.cache_data(max_entries=16, show_spinner=False)
def student_params(kind, width=None, outputs=None):
    """Parameters of the student of this kind (and MLP width, scoring the teacher's `outputs` classes), as the engine
    builds it, counted as deployed (the CNN's BatchNorms folded), as a trained student's and the teacher's are counted
    on this page."""
    return ce.describe(zoo.cnn_student(0) if kind == CNN else
                       ce.student_mlp(width, common.dataset(), outputs=outputs))["params"]


def student_label(kind, width):
    return zoo.CNN_STUDENT_NAME if kind == CNN else f"{width}-{width}"


def student_key(kind):
    """The trained-results key of a student module (None for an MLP: the recipe's student_width names it)."""
    return student_label(kind, 0) if kind == CNN else None


def kept(teacher, recipe, kind):
    """A trained student of this setting kept from any session (this one, another tab, an earlier day), or None."""
    return common.cached_trained(recipe, start_from=teacher, student_key=student_key(kind))


def train(teacher, recipe, kind, label):
    """compress(teacher, recipe) into the chosen student through the shared training pool (common.train_run:
    queue position, progress, live loss, Cancel; the result kept on disk). The teacher's cached logits go in,
    so the run trains the student only. None (after saying why) if cancelled or failed. A student that could not be
    kept on disk is said once for both, below them (common.warn_not_kept_all), not under each."""
    return common.train_run(recipe, label, start_from=teacher, student=student_module(kind),
                            model_logits=teacher_logits(teacher, common.DATASET), student_key=student_key(kind),
                            warn=False)


def mine_points(res_base, res_kd):
    """The user's trained students (stored results) as chart points; their errors as the grid counts them, of its
    bench_results.TEST_IMAGES test images (on other data than the grid's, scaled to as many: the same error rate)."""
    out = []
    for res, distilled in ((res_base, False), (res_kd, True)):
        if res is not None:
            r = ce.Recipe.from_json(res["recipe"])
            mm = res["metrics"]
            out.append({"name": f"yours: {name}, {r.distill_epochs} ep, "
                                + (f"KD T = {r.temperature:g}" if distilled else "labels only"),
                        "bytes": mm["artifact_bytes"],
                        "errors": explain.test_errors(mm["accuracy"], bench_results.TEST_IMAGES),
                        "accuracy": mm["accuracy"], "color": BLUE if distilled else ORANGE, "epochs": r.distill_epochs})
    return out


def on_grid(points, rows):
    """The user's students trained for as many epochs as the grid rows shown (only those compare with it)."""
    return [m for m in points if rows and m["epochs"] == int(rows[0]["epochs"])]


def show(col, res, other):
    """A trained student's metrics (against `other`, the labels-only one, if given) and its Save button."""
    mm = res["metrics"]
    errs = explain.test_errors(mm["accuracy"], n)
    with col:
        a, b = st.columns(2)
        vs = "" if other is None else " vs labels only"  # not against the dense model, as every other page's change
        a.metric("Test accuracy", f"{100 * mm['accuracy']:.2f} %",
                 None if other is None else f"{100 * (mm['accuracy'] - other['metrics']['accuracy']):+.2f} pts{vs}")
        b.metric(f"Test errors (of {n:,})", f"{errs:,}",
                 None if other is None else f"{errs - explain.test_errors(other['metrics']['accuracy'], n):+,}{vs}",
                 delta_color="inverse")
        a.metric("Parameters", f"{mm['params']:,}", f"{mm['params'] / t_params:.0%} of the teacher's",
                 delta_color="off", delta_arrow="off")
        b.metric("Artifact size", common.kb(mm["artifact_bytes"]),
                 f"{mm['artifact_bytes'] / tcard['dense_bytes']:.0%} of the teacher's", delta_color="off",
                 delta_arrow="off")
        common.save_button(res, "distill" if other is not None else "student (labels only)",
                           key=f"distill_save_{'kd' if other is not None else 'base'}", student=name,
                           student_key=student_key(kind))
        if other is not None:  # the two students have one architecture: how much faster than the teacher it answers
            common.speed_card("distill_speed", (teacher, common.weights_id(teacher), common.DATASET, res["recipe"]),
                              res, ("Teacher", "Student", "the student"))


def view_default(tried):
    """The soft-target panel's first T: the largest T > 1 the grid tried (`tried`, sorted), else Hinton et al.'s."""
    return tried[-1] if tried and tried[-1] > 1 else float(HINTON["temperature"])


# each T of the soft-target chart keeps its colour whichever others are drawn: T = 1 grey (the plain softmax), the
# training Temperature blue (KD, as the distilled students on the size chart), the viewing T a palette colour the
# grid gives no T (orange is "labels only" on this page)
T_ROLES = {"T = 1": GREY, "training T": BLUE, "viewed T": charts.PALETTE[5]}


def soft_target_roles(T, view_T):
    """{T: (legend name, colour)} of the soft-target chart: T = 1, the training Temperature `T` and the viewing
    `view_T`, each drawn once; a T in two roles is named by both and coloured by the first (T = 1, then training)."""
    roles = {}
    for t, role in ((1.0, "T = 1"), (T, "training T"), (view_T, "viewed T")):
        name, colour = roles.get(t, (None, None))
        what = {"T = 1": None, "training T": "the student trains at it", "viewed T": "viewed"}[role]
        if name is None:
            roles[t] = (f"T = {t:g}" + (f" ({what})" if what else ""), T_ROLES[role])
        elif what:
            roles[t] = (name + (f", {what}" if "(" in name else f" ({what})"), colour)
    return dict(sorted(roles.items()))


def soft_target_chart(classes, table, log_y, roles):
    fig = go.Figure()
    for t, p in table.items():
        name, color = roles[t]
        fig.add_bar(x=list(classes), y=100 * p, name=name, marker_color=color,
                    hovertemplate="%{x}: %{y:.3g} %<extra>T = " + f"{t:g}</extra>")
    # categories, even named "0"-"4" (an IDX folder's classes), which Plotly would take for numbers and then drop
    # the outputs named otherwise ("5 (not a class of these data)")
    fig.update_xaxes(type="category")
    fig.update_layout(barmode="group", title="Teacher's soft targets softmax(z / T)", xaxis_title="class",
                      yaxis_title="probability (%, log scale)" if log_y else "probability (%)", height=340,
                      # the legend at the figure's foot: under the plot, the class names' tilted ticks (a narrow
                      # page) pushed the axis title into it; above it, three entries in two rows met the title
                      margin=dict(l=10, r=10, t=50, b=10),
                      legend=dict(orientation="h", x=0, y=0, yref="container", yanchor="bottom"))
    if log_y:
        fig.update_yaxes(type="log", exponentformat="power")
    else:
        fig.update_yaxes(range=[0, 100])
    return fig


st.title("Distillation")
names = [c["name"] for c in ce.list_models()] + list(common.uploads())
if not names:
    st.error("No sample models in sample_models/: rebuild them with `python -m compress_engine train resnet-8`.")
    st.stop()
default = TEACHER if TEACHER in names else names[0]
chosen = st.session_state.get("distill_teacher")
if chosen is not None and chosen not in names:  # an upload this session dropped (or one of another session)
    st.session_state["distill_teacher"] = default
    why = (f"the sidebar dropped it, the oldest upload, when another was added (a session keeps "
           f"{common.MAX_UPLOADS} uploads); upload it again to choose it" if chosen in common.dropped()
           else "it is no longer in this session")
    st.warning(f"The teacher went back to the default, {default}: your teacher {common.md_text(chosen)} is gone, "
               f"as {why}.")
common.link_note("distill_teacher", names, default, "teacher")
teacher = st.selectbox("Teacher", names, persist_state="session",
                       key=common.setting("distill_teacher", default), index=names.index(default), bind=common.LINK,
                       help="Any sample model can teach, and so can weights you uploaded in the sidebar (a session "
                            f"keeps {common.MAX_UPLOADS}: another drops the oldest). The default, ResNet-8, is the "
                            "most accurate; the grid below was measured with it.")
try:
    tcard = common.card_of(teacher)
    common.model(teacher)
except ce.CompressError as e:
    st.error(f"The teacher {teacher} is not available: {e}")
    st.stop()
data = common.dataset()
logits = teacher_logits(teacher, common.DATASET)
if logits is None:  # cancelled: pooled said so
    st.stop()
n = len(data.y("test"))
t_outputs = int(logits["test"].shape[1])  # the teacher's classes, and so the MLP student's (maybe more than the data's)
t_errors = int((logits["test"].argmax(1) != data.y("test")).sum())
st.caption(f"The teacher is chosen here, not in the sidebar (the sidebar's {common.model_name()} appears on the "
           "size chart). Its answers on every training and test image were computed once and are read from "
           + ("memory: uploaded weights are kept for this server's sessions." if common.weights_id(teacher) else
              "disk."))

# counted as deployed, each BatchNorm folded (as its size is, and every student's): the module's own count is larger
t_params = deployed_parameters(tcard)
folded = t_params != tcard["parameters"]
c = st.columns(4)
c[0].metric("Teacher parameters", f"{t_params:,}", "once BatchNorm is folded" if folded else None,
            delta_color="off", delta_arrow="off",
            help=(f"The model as deployed, each BatchNorm folded into the convolution before it (the module has "
                  f"{tcard['parameters']:,} while it trains), as the size beside and every student are counted."
                  if folded else None))
c[1].metric("Teacher size (float32)", common.kb(tcard["dense_bytes"]))
c[2].metric("Teacher test accuracy", f"{100 * (1 - t_errors / n):.2f} %", help=f"on all {n:,} test images")
c[3].metric(f"Teacher test errors (of {n:,})", f"{t_errors:,}")

grid = bench_results.distill_grid(BENCH, teacher)  # the measured grid, every epochs
measured = sorted({int(r["epochs"]) for r in grid})  # the epochs it was measured at
controls, explain_col = st.columns([1, 1.25], gap="large")
with controls:
    kind = st.radio("Student", ["MLP", CNN], horizontal=True, key="distill_kind", persist_state="session", bind=common.LINK,
                    help="An MLP of two hidden layers (Hinton et al.'s student is 800-800), or a small ResNet with a "
                         f"quarter of the zoo's ResNet-8's channels ({student_params(CNN):,} parameters).")
    width = st.select_slider("MLP student width (hidden units in each of its 2 layers)", WIDTHS, value=100,
                             key="distill_width", persist_state="session", disabled=kind == CNN, bind=common.LINK,
                             help=", ".join(f"{w}-{w} has {student_params('MLP', w, t_outputs):,} parameters "
                                            f"({student_params('MLP', w, t_outputs) / t_params:.0%} of {teacher}'s)"
                                            for w in (WIDTHS[0], 100, WIDTHS[-1])) + ".")
    T = st.slider("Temperature T", 1.0, 20.0, T_START, 0.5, key="distill_T", persist_state="session", bind=common.LINK,
                  help=" ".join(filter(None, (
                      "Higher T softens the teacher's answer so the small probabilities it gives to the wrong classes "
                      "become visible to the student.", explain.temperature_lesson(grid, teacher),
                      f"Hinton et al. distilled at T = {HINTON['temperature']:g} on MNIST."))))
    alpha = st.slider("α: weight of the teacher's soft targets", 0.0, 1.0, 1.0, 0.05, key="distill_alpha",
                      persist_state="session", bind=common.LINK,
                      help="1 − α is the weight of the ordinary loss on the true labels. The grid uses α = 1: the "
                           "teacher's soft targets only. At α = 0 the teacher gets no weight: that is the labels-only "
                           "student, so only it is trained.")
    epochs = st.slider("Training epochs", 1, 20, 5, 1, key="distill_epochs", persist_state="session", bind=common.LINK,
                       help="For each of the two students"
                            + (f"; the grid was measured at {' and '.join(map(str, measured))}" if measured else "")
                            + ". A 100-100 student takes about 1.3 s per epoch on one core, 800-800 about 8 s, the "
                              "CNN about 25 s.")
with explain_col:
    st.markdown(
        "**Knowledge distillation** (Hinton, Vinyals & Dean 2015) trains a small *student* network to copy "
        "a big *teacher*. Besides the true label, the student sees the teacher's whole answer: not just "
        "\"this is a shirt\" but \"a shirt, a little like a T-shirt, nothing like a bag\". Dividing the "
        "teacher's logits z by a temperature T > 1 before the softmax brings those small probabilities out "
        "(the \"dark knowledge\"); the student is trained to match them at the same temperature. Their "
        "gradients shrink as 1/T², so the factor T² keeps the soft and the hard targets' shares of the "
        "training signal roughly unchanged when T changes.")
    st.latex(r"\begin{aligned} L = {} & \alpha\, T^2\, \mathrm{KL}\!\left(\mathrm{softmax}(t/T) \,\middle\|\, "
             r"\mathrm{softmax}(s/T)\right) \\ & +\, (1-\alpha)\, \mathrm{CE}(s, y) \end{aligned}")
    st.caption("t: teacher logits, s: student logits, y: the true label. "
               f"On MNIST Hinton et al.'s teacher (two layers of {HINTON['teacher_width']}) made "
               f"{HINTON['teacher']} test errors; an {HINTON['student_width']}-{HINTON['student_width']} student "
               f"made {HINTON['student']} trained on the labels alone and {HINTON['distilled']} distilled.")

# --- the measured grid: the lesson before any training ----------------------------------------------
st.header("What KD does, measured: every student, with and without the teacher")
rows = grid
if measured:  # the grid of the epochs slider's students (the nearest measured), so the students trained land on it
    follow = min(measured, key=lambda e: (abs(e - epochs), -e))
    key = common.setting("distill_grid_epochs", follow, scope=tuple(measured))
    if st.session_state.get("_distill_grid_picked") != tuple(measured):  # it follows the slider until picked here
        st.session_state[key] = follow
    shown = st.radio("Students trained for", measured, format_func=lambda e: f"{e} epochs", horizontal=True,
                     key=key, persist_state="session",
                     on_change=lambda: st.session_state.update(_distill_grid_picked=tuple(measured)),
                     help="The grid was measured at each of these. It shows the grid nearest the training epochs "
                          "above, where a student you train lands, until you pick one here.")
    rows = [r for r in rows if int(r["epochs"]) == shown]
grid_slot = st.empty()
# the grid was measured on Fashion-MNIST: on other data the chart and its caption say so
grid_on = None if common.DATASET == GRID_DATA else GRID_DATA
grid_elsewhere = f" of {GRID_DATA}, not your data ({common.md_text(common.DATASET)})" if grid_on else ""
chosen_recipe = common.recipe(temperature=T, alpha=alpha, student_width=width, distill_epochs=epochs)
if chosen_recipe is None:
    st.stop()
# with α = 0 the soft-target term is multiplied by 0: T does not matter, so one baseline serves every T
base = chosen_recipe.replace(alpha=0.0, temperature=1.0)
kd = chosen_recipe if alpha > 0 else None  # at α = 0 the chosen setting is the labels-only run: no second student
stored = kept(teacher, base, kind), None if kd is None else kept(teacher, kd, kind)
name = student_label(kind, width)
best_T, shown_epochs, shown_Ts = "", None, []
if rows:
    shown_Ts = sorted({r["T"] for r in rows if r["T"]}, key=float)  # the Ts the grid shown tried
    g = next(r for r in rows if r["T"])
    best_T, shown_epochs = explain.grid_best_T(rows), g["epochs"]
    st.caption(f"From `bench/distillation.py` (teacher {teacher}, {g['epochs']} epochs of Adam, α = {g['alpha']} "
               f"for KD, seeds {g['seeds']}): each point is the mean of the seeds' test errors on the full test "
               f"set{grid_elsewhere}. Where the solid lines lie below the dashed one, the teacher's soft targets "
               "taught the student more than the labels alone. Your own trained students appear as stars"
               + (f", trained and tested on your data, their errors scaled to {bench_results.TEST_IMAGES:,} test "
                  "images (the same error rate): on other data than the grid's, they compare with it only roughly."
                  if grid_elsewhere else "."))
    common.chart(charts.distill_grid(rows, on_grid(mine_points(*stored), rows), grid_on), grid_slot)
    gains = bench_results.distill_gains(BENCH, teacher, g["epochs"])
    if gains:
        st.caption("Each KD run against the labels-only run of the same seed (the same starting weights, the same "
                   "batches), the errors KD saved, mean ± half range over the seeds: "
                   + "; ".join(f"**{r['student']}** {r['paired_saved']} at T = {r['best_T']}"
                               + (" (fewer in every seed)" if r["fewer_in_every_seed"] else "")
                               + (f", {r['gap_closed_%']} % of its gap to the teacher closed"
                                  if r.get("gap_closed_%") else "")
                               for r in gains)
                   + f". A negative number: KD cost errors. The gap closed is {explain.GAP_CLOSED}, of the seeds' means.")
elif common.weights_id(teacher):
    st.info(f"No measured grid for your uploaded teacher {teacher}: the grid was measured with the sample "
            "teachers (resnet-8's is shipped). Train students below: they appear on the size chart at the bottom.")
else:
    st.info(f"No measured grid for the teacher {teacher}: `python bench/distillation.py --teacher {teacher}` "
            "writes it (the shipped one is for resnet-8).")

# --- soft targets of one test image ---------------------------------------------------------------
st.header("What the teacher teaches: soft targets")
t_test = logits["test"].numpy()
left, right = st.columns([1, 2.2], gap="medium")
with left:
    idx = st.number_input(f"Test image (0 to {n - 1:,})", 0, n - 1, 0, 1, key="distill_image",
                          persist_state="session", bind=common.LINK)
    truth = int(data.y("test")[idx])
    fig = px.imshow(data.x("test")[idx, 0].numpy(), binary_string=True, zmin=0, zmax=1)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    fig.update_layout(title=f"Test image {idx:,}", height=290, margin=dict(l=0, r=0, t=40, b=0))
    common.chart(fig)
    answer = int(t_test[idx].argmax())
    st.caption(f"True class: **{data.classes[truth]}**. "
               f"Teacher's answer: **{charts.class_name(data.classes, answer)}** "
               + ("✓" if answer == truth else "✗"))
with right:
    # T = 1 (the grid's best at its shortest training, where the Temperature slider opens) shows almost nothing: the
    # panel opens at a T > 1, the largest the grid tried (Hinton et al.'s without a grid), beside T = 1
    tried = sorted({float(r["T"]) for r in grid if r["T"]})
    view_T = st.slider("See the soft targets at T", 1.0, 20.0, view_default(tried), 0.5,
                       key=common.following("distill_view_T", view_default(tried)),
                       persist_state="session", bind=common.LINK,
                       help="Only this panel: the student trains at the Temperature T set above.")
    table = explain.soft_target_table(t_test[idx], sorted({1.0, T, view_T}))
    log_y = st.toggle("Log-scale probabilities (shows the tiny ones)", value=True, key="distill_log",
                      persist_state="session")
    # every output of the teacher, also those the data have no class for (a 10-class teacher on 5-class data)
    outputs = [charts.class_name(data.classes, i) for i in range(t_test.shape[1])]
    common.chart(soft_target_chart(outputs, table, log_y, soft_target_roles(T, view_T)))
    p1, pT = table[1.0], table[view_T]
    m = st.columns(3)
    m[0].metric("Top class at T = 1", f"{100 * p1.max():.1f} %")
    # at the viewing T of the slider beside (not the training Temperature): named with it
    common.delta_metric(m[1], f"Top class at viewed T = {view_T:g}", f"{100 * pT.max():.1f} %",
                        f"{100 * (pT.max() - p1.max()):+.1f} pts", neutral=True)
    m[2].metric(f"Entropy at viewed T = {view_T:g}", f"{explain.entropy_bits(pT):.2f} bits",
                help=f"At T = {view_T:g}: how spread out the soft targets are. 0 bits: all on one class; "
                     f"{explain.entropy_bits(np.full(len(pT), 1 / len(pT))):.2f} bits: equal on all {len(pT)}.")

    # the slider keeps its value for the session: after a move, or another teacher, it need not be where it opens
    open_at = view_default(tried)
    why = "the largest T the grid tried" if tried and tried[-1] > 1 else "Hinton et al.'s"  # as view_default
    st.caption(f"Drawn at T = 1 and at T = {view_T:g} "
               + (f"(where it opens: {why})" if view_T == open_at else
                  f"(for this teacher it opens at {open_at:g}, {why})")
               + ": the higher T, the more the small probabilities show. "
               + f"The student trains at the Temperature above ({T:g}{', drawn too' if T not in (1.0, view_T) else ''})"
               + (f", which opens at {T_START:g}: " + (f"in the grid at {shown_epochs} epochs the fewest errors came at "
                                                        f"T = {best_T}." if len(shown_Ts) > 1 else
                                                        f"the grid at {shown_epochs} epochs tried only T = {best_T}.")
                  if best_T else "."))

# --- train the student twice: labels only, and distilled ------------------------------------------
st.header("Train your own student, without and with distillation")
done_base, done_kd = stored
slot = st.empty()  # the button goes once both students are trained
clicked = (done_base is None or (kd is not None and done_kd is None)) and slot.button(
    "Train student", type="primary", icon=":material/school:", key="distill_train",
    help=("Trains the student distilled: the labels-only one, from the same seed, is kept. " if done_base is not None
          else "Trains the same student twice from the same seed: on the labels alone, then distilled. "
          if kd is not None else "Trains the student on the labels alone: at α = 0 the teacher gets no weight. ")
         + "Each run is kept on disk, so each setting trains only once, for every session.")
# a rerun while this setting trains (another widget moved) follows its runs, which go on in the pool
clicked = clicked or any(common.training(r, start_from=teacher, student_key=student_key(kind))
                         for r in (base, kd) if r is not None)

left, right = st.columns(2, gap="large")
left.markdown(f"**Without KD**: {name} student on the labels alone (α = 0)")
if kd is not None:
    right.markdown(f"**With KD**: same student, T = {T:g}, α = {alpha:g}")
else:
    right.info("**α = 0 is the labels-only run**: the teacher's soft targets get no weight, so a student trained "
               "at this setting is the one on the left (T does nothing at α = 0). Raise α to distil.",
               icon=":material/info:")

if not clicked:  # trained now for another tab or a student (the teacher's link): shown, and the button follows it
    for col, r, done, what in ((left, base, done_base, "Student without KD"), (right, kd, done_kd, "Student with KD")):
        if r is not None and done is None:
            with col:
                common.watch(r, what, "Train student", start_from=teacher, student_key=student_key(kind))

# the labels-only student shows as soon as it is trained, while the distilled one trains
res_base, res_kd = done_base, done_kd
if clicked and res_base is None:
    with left:
        res_base = train(teacher, base, kind, "Student without KD")
if res_base is not None:
    show(left, res_base, None)
if clicked and res_base is not None and kd is not None and res_kd is None:
    with right:
        res_kd = train(teacher, kd, kind, "Student with KD")
if res_base is not None and res_kd is not None:
    show(right, res_kd, res_base)
if res_base is not None and (kd is None or res_kd is not None):
    slot.empty()
# students trained but not kept on disk (a read-only folder): one warning naming them, on every rerun that shows them
common.warn_not_kept_all({"without KD": (res_base or {}).get("not_kept"), "with KD": (res_kd or {}).get("not_kept")},
                         lambda kinds: f"the {name} student{'s' * (len(kinds) > 1)} " + " and ".join(kinds))
mine = mine_points(res_base, res_kd)
if rows and clicked and on_grid(mine, rows):  # redraw the grid with the new stars
    common.chart(charts.distill_grid(rows, on_grid(mine, rows), grid_on), grid_slot)
if rows and mine and not on_grid(mine, rows):
    st.caption(f"Your students trained for {epochs} epoch{'s' if epochs > 1 else ''}: "
               + (f"choose {epochs} epochs above the grid to see them on it." if epochs in measured else
                  f"the grid was measured at {' and '.join(map(str, measured))} epochs; they are on the size chart below."))
if res_base is None or (kd is not None and res_kd is None):
    both = kd is not None and res_base is None  # the labels-only student kept (another run, a restart): KD is left
    st.info(f"Press **Train student** to train the {name} student for {epochs} epoch{'s' if epochs > 1 else ''}, "
            + ("twice; both land " if both else "on the labels alone; it lands " if kd is None else
               "once, with KD (the labels-only one is kept); it lands ")
            + ("on the grid above" if rows and int(rows[0]["epochs"]) == epochs else "on the size chart below")
            + (" as stars." if both else " as a star."))
elif res_kd is not None:
    st.markdown("**Test errors, theirs and ours**")
    hinton = [("teacher", HINTON["teacher"], t_errors),
              ("student, labels only", HINTON["student"], explain.test_errors(res_base["metrics"]["accuracy"], n)),
              ("student, distilled", HINTON["distilled"], explain.test_errors(res_kd["metrics"]["accuracy"], n))]
    closed = [explain.gap_closed(hinton[1][i], hinton[2][i], hinton[0][i]) for i in (1, 2)]  # theirs, ours
    share = ["no gap (the labels-only student is no worse than the teacher)" if c is None else f"{100 * c:.0f} %"
             for c in closed]
    st.markdown(f"| measure | Hinton et al., MNIST (1200-1200 → 800-800) | here, {data.name} ({teacher} → {name}) |\n"
                "|---|--:|--:|\n" + "\n".join(f"| {k} | {theirs:,} | {ours:,} |" for k, theirs, ours in hinton)
                + f"\n| share of the student-teacher gap KD closed | {share[0]} | {share[1]} |")
    st.caption(f"What to compare is the share of the student-teacher gap that KD closes (the last row: "
               f"{explain.GAP_CLOSED}), "
               "not the error counts: " + ("Fashion-MNIST is much harder than MNIST." if grid_on is None
                                           else "they are counted on other data and test sets."))

# --- size vs accuracy: teacher, students, every sample model ------------------------------------------
cards = ce.list_models() + [up["card"] for up in common.uploads().values()]
# each at its card's accuracy: a sample model's on its own data (Fashion-MNIST), named so on other data
models = [{"label": c["name"] + ("" if charts.card_data(c, common.DATASET) == common.DATASET else
                                 f" (its card's accuracy, on {charts.card_data(c, common.DATASET)})"),
           "bytes": c["dense_bytes"], "accuracy": c["test_accuracy"]} for c in cards if c["name"] != teacher]
grid_of = f", on {grid_on}" if grid_on else ""  # the grid's points: measured on its data
grid_pts = {T: [{"label": r["student"], "bytes": int(r["bytes"]), "accuracy": r["accuracy"]}
                for r in rows if r["T"] == T and not r["student"].startswith("cnn")] for T in ("", best_T)}
# the CNN's two points and your two students each sit on one size, nearly on one accuracy: their labels would
# overlap, so each is a legend entry of its own (KD blue, labels only orange, as on the grid) named there, hover-only
cnn_pts = [(f"CNN student, {'KD T = ' + r['T'] if r['T'] else 'labels only'} (mean of seeds{grid_of})",
            [{"label": r["student"], "bytes": int(r["bytes"]), "accuracy": r["accuracy"]}],
            {"color": BLUE if r["T"] else ORANGE, "symbol": "diamond", "size": 11, "hover_only": True})
           for r in rows if r["student"].startswith("cnn") and r["T"] in ("", best_T)]
groups = [("teacher", [{"label": teacher, "bytes": tcard["dense_bytes"], "accuracy": 1 - t_errors / n}],  # these data
           {"color": RED, "symbol": "diamond", "size": 16}),
          # each a legend entry of its own, hover-only: a label by the point fell on the grid students' points
          # (lenet-300-100 on 300-300's) and labels, and teacher-1200-1200's ran off the plot's right edge
          *((m["label"], [m], {"color": GREY, "symbol": OTHER_SYMBOLS[i % len(OTHER_SYMBOLS)], "hover_only": True})
            for i, m in enumerate(models)),
          (f"students, labels only ({rows[0]['epochs']} epochs, mean of seeds{grid_of})" if rows else "", grid_pts[""],
           {"color": ORANGE, "symbol": "circle", "mode": "lines+markers+text", "dash": "dash", "size": 9}),
          (f"students, KD T = {best_T} (mean of seeds{grid_of})" if rows else "", grid_pts[best_T] if best_T else [],
           {"color": BLUE, "symbol": "star", "mode": "lines+markers", "size": 11}),
          *cnn_pts,
          *((m["name"], [{"label": m["name"], "bytes": m["bytes"], "accuracy": m["accuracy"]}],
             {"color": m["color"], "symbol": "star-open", "size": 16, "hover_only": True}) for m in mine)]
common.chart(charts.size_accuracy(groups))
smaller = [p["label"] for p in grid_pts[""] if p["bytes"] < tcard["dense_bytes"]]
larger = [p["label"] for p in grid_pts[""] if p["bytes"] >= tcard["dense_bytes"]]
st.caption("Sizes are the float32 bytes of each model's weights (students you train: their artifact's bytes). "
           + (f"Students smaller than {teacher}: {', '.join(smaller) or 'none'}; as large or larger: "
              f"{', '.join(larger) or 'none'}. " if grid_pts[""] else "")
           + "What a student buys is speed more than bytes: train one, and the page times it against its teacher. "
             "The distilled students are drawn at the grid's best T.")
