"""Distillation: a small student learns from a big teacher's softened answers (Hinton, Vinyals & Dean 2015)."""

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

import compress_engine as ce
from compress_engine.playground import explain
from pages import common

common.through_app()

TEACHER = "teacher-1200-1200"
WIDTHS = (10, 30, 50, 100, 200, 300, 500, 800, 1200, 1600, 2000)  # hidden units per student layer
BLUE, ORANGE, GREEN, GREY, PURPLE = "#1f77b4", "#ff7f0e", "#2ca02c", "#7f7f7f", "#9467bd"
HINTON = explain.HINTON_MNIST


@st.cache_data(show_spinner="The teacher reads the test set…")
def teacher_test_logits(dataset_name):
    """The teacher's logits for every test image (numpy, n × 10), computed once per dataset."""
    return ce.logits(common.model(TEACHER), common.dataset().x("test")).numpy()


def trained(recipe):
    """The stored result of a training run of `recipe` from the teacher, or None if not trained yet."""
    return st.session_state.get("trained", {}).get((TEACHER, recipe.to_json()))


def soft_target_chart(classes, table, log_y):
    fig = go.Figure()
    for (t, p), color in zip(table.items(), (GREY, BLUE)):
        fig.add_bar(x=list(classes), y=100 * p, name=f"T = {t:g}", marker_color=color,
                    hovertemplate="%{x}: %{y:.3g} %<extra>T = " + f"{t:g}</extra>")
    fig.update_layout(barmode="group", title="Teacher's soft targets softmax(z / T)", xaxis_title="class",
                      yaxis_title="probability (%, log scale)" if log_y else "probability (%)", height=340,
                      margin=dict(l=10, r=10, t=50, b=10), legend=dict(orientation="h", y=-0.3))
    if log_y:
        fig.update_yaxes(type="log", exponentformat="power")
    else:
        fig.update_yaxes(range=[0, 100])
    return fig


def tradeoff_chart(points):
    """points: dicts with name, bytes, accuracy, color, symbol: size vs accuracy on a log size axis."""
    fig = go.Figure()
    for p in points:
        fig.add_scatter(x=[p["bytes"] / 1024], y=[100 * p["accuracy"]], mode="markers", name=p["name"],
                        marker=dict(size=14, color=p["color"], symbol=p.get("symbol", "circle"),
                                    line=dict(color="white", width=1)),
                        hovertemplate="%{x:,.1f} KB, %{y:.2f} %<extra>" + p["name"] + "</extra>")
    fig.update_xaxes(type="log")
    fig.update_layout(title="Size vs accuracy", xaxis_title="size (KB, log scale)", yaxis_title="test accuracy (%)",
                      height=400, margin=dict(l=10, r=10, t=50, b=10), legend=dict(orientation="h", y=-0.25))
    return fig


st.title("Distillation")
st.caption(f"The teacher here is always the shipped **{TEACHER}** (784-1200-1200-10), not the sidebar's model "
           f"({common.model_name()}); the sidebar's model only appears as a reference point on the size chart.")
try:
    tcard = ce.model_card(TEACHER)
    common.model(TEACHER)
except ce.CompressError as e:
    st.error(f"The distillation teacher is not available: {e}")
    st.stop()
data = common.dataset()

controls, explain_col = st.columns([1, 1.25], gap="large")
with controls:
    width = st.select_slider("Student width (hidden units in each of its 2 layers)", WIDTHS, value=800,
                             key="distill_width", help="Hinton et al.'s MNIST student is 800-800.")
    T = st.slider("Temperature T", 1.0, 20.0, 2.0, 0.5, key="distill_T",
                  help="Higher T softens the teacher's answer so the small probabilities it gives to the "
                       "wrong classes become visible to the student. With only a few epochs a mild T (2-4) "
                       "works best; Hinton et al.'s high temperatures pay off over long training.")
    alpha = st.slider("α: weight of the teacher's soft targets", 0.0, 1.0, 0.5, 0.05, key="distill_alpha",
                      help="1 − α is the weight of the ordinary loss on the true labels. Measured here with an "
                           "800-800 student and 2 epochs: 1,275 test errors on the labels alone, 1,229 distilled "
                           "at T = 2, α = 0.5, but 1,264 at T = 4.")
    epochs = st.slider("Training epochs", 1, 10, 2, 1, key="distill_epochs",
                       help="For each of the two students. An 800-800 student takes about 7 s per epoch on "
                            "2 idle cores; a 100-100 one about 2 s.")
with explain_col:
    st.markdown(
        "**Knowledge distillation** (Hinton, Vinyals & Dean 2015) trains a small *student* network to copy "
        "a big *teacher*. Besides the true label, the student sees the teacher's whole answer: not just "
        "\"this is a shirt\" but \"a shirt, a little like a T-shirt, nothing like a bag\". Dividing the "
        "teacher's logits z by a temperature T > 1 before the softmax brings those small probabilities out "
        "(the \"dark knowledge\"); the student is trained to match them at the same temperature, and the "
        "factor T² keeps their pull as strong as the labels' when T changes.")
    st.latex(r"\begin{aligned} L = {} & \alpha\, T^2\, \mathrm{KL}\!\left(\mathrm{softmax}(t/T) \,\middle\|\, "
             r"\mathrm{softmax}(s/T)\right) \\ & +\, (1-\alpha)\, \mathrm{CE}(s, y) \end{aligned}")
    st.caption("t: teacher logits, s: student logits, y: the true label. "
               f"On MNIST Hinton et al.'s teacher (two layers of {HINTON['teacher_width']}) made "
               f"{HINTON['teacher']} test errors; an {HINTON['student_width']}-{HINTON['student_width']} student "
               f"made {HINTON['student']} trained on the labels alone and {HINTON['distilled']} distilled.")

c = st.columns(3)
c[0].metric("Teacher parameters", f"{tcard['parameters']:,}")
c[1].metric("Teacher size (float32)", common.kb(tcard["dense_bytes"]))
c[2].metric("Teacher test accuracy", f"{100 * tcard['test_accuracy']:.2f} %", help=tcard["test_set"])

# --- soft targets of one test image ---------------------------------------------------------------
st.subheader("What the teacher teaches: soft targets")
t_logits = teacher_test_logits(common.DATASET)
n_test = len(t_logits)
left, right = st.columns([1, 2.2], gap="medium")
with left:
    idx = st.number_input(f"Test image (0 to {n_test - 1:,})", 0, n_test - 1, 0, 1, key="distill_image")
    truth = int(data.y("test")[idx])
    fig = px.imshow(data.x("test")[idx, 0].numpy(), binary_string=True, zmin=0, zmax=1)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    fig.update_layout(height=260, margin=dict(l=0, r=0, t=10, b=0))
    st.plotly_chart(fig, width="stretch")
    answer = int(t_logits[idx].argmax())
    st.caption(f"True class: **{data.classes[truth]}**. Teacher's answer: **{data.classes[answer]}** "
               + ("✓" if answer == truth else "✗"))
with right:
    table = explain.soft_target_table(t_logits[idx], sorted({1.0, T}))
    log_y = st.toggle("Log-scale probabilities (shows the tiny ones)", value=True, key="distill_log")
    st.plotly_chart(soft_target_chart(data.classes, table, log_y), width="stretch")
    p1, pT = table[1.0], table[T]
    m = st.columns(3)
    m[0].metric("Top class at T = 1", f"{100 * p1.max():.1f} %")
    m[1].metric("Top class at chosen T", f"{100 * pT.max():.1f} %",
                f"{100 * (pT.max() - p1.max()):+.1f} pts", delta_color="off")
    m[2].metric("Entropy at chosen T", f"{explain.entropy_bits(pT):.2f} bits",
                help="How spread out the soft targets are. 0 bits: all on one class; 3.32 bits: equal on all ten.")

# --- train the student twice: labels only, and distilled ------------------------------------------
st.subheader("Train the student, without and with distillation")
kd = common.recipe(temperature=T, alpha=alpha, student_width=width, distill_epochs=epochs)
if kd is None:
    st.stop()
# with α = 0 the soft-target term is multiplied by 0: T does not matter, so one baseline serves every T
base = kd.replace(alpha=0.0, temperature=1.0)
done_base, done_kd = trained(base), trained(kd)
slot = st.empty()  # the buttons go once both students are trained
b1, b2, _ = slot.container().columns([1.2, 0.6, 3])
clicked = (done_base is None or done_kd is None) and b1.button(
    "Train student", type="primary", icon=":material/school:", key="distill_train",
    help="Trains the same student twice from the same seed: on the labels alone, then distilled. Each run is kept "
         "for this session, so each setting trains only once.")
stop = b2.empty()
if clicked:
    stop.button("Stop", icon=":material/stop:", key="distill_stop")
elif st.session_state.get("distill_stop"):
    st.info(common.STOPPED)

left, right = st.columns(2, gap="large")
left.markdown(f"**Without KD**: {width}-{width} student on the labels alone (α = 0)")
right.markdown(f"**With KD**: same student, T = {T:g}, α = {alpha:g}")
res_base, res_kd = done_base, done_kd
if clicked:
    with left:
        res_base = common.train_run(base, "Student without KD", start_from=TEACHER)
    if res_base is not None:
        with right:
            res_kd = common.train_run(kd, "Student with KD", start_from=TEACHER)
if res_base is not None and res_kd is not None:
    slot.empty()

if res_base is None or res_kd is None:
    st.info(f"Press **Train student** to train the {width}-{width} student for {epochs} epoch"
            f"{'s' if epochs > 1 else ''}, twice. Until then, the soft targets above are what the distilled "
            "student would learn from.")
    st.stop()

n = len(data.y("test"))
for col, res, other in ((left, res_base, None), (right, res_kd, res_base)):
    mm = res["metrics"]
    errs = explain.test_errors(mm["accuracy"], n)
    with col:
        a, b = st.columns(2)
        a.metric("Test accuracy", f"{100 * mm['accuracy']:.2f} %",
                 None if other is None else f"{100 * (mm['accuracy'] - other['metrics']['accuracy']):+.2f} pts")
        b.metric(f"Test errors (of {n:,})", f"{errs:,}",
                 None if other is None else f"{errs - explain.test_errors(other['metrics']['accuracy'], n):+,}",
                 delta_color="inverse")
        a.metric("Parameters", f"{mm['params']:,}", f"{mm['params'] / tcard['parameters']:.1%} of the teacher",
                 delta_color="off", delta_arrow="off")
        b.metric("Artifact size", common.kb(mm["artifact_bytes"]), f"{mm['ratio']:,.1f}× smaller than the teacher",
                 delta_color="off", delta_arrow="off")
        common.save_button(res, "distill" if other is not None else "student (labels only)",
                           key=f"distill_save_{'kd' if other is not None else 'base'}")

left, right = st.columns([1.4, 1], gap="large")
with left:
    dense = common.run(ce.Recipe(), spinner="Evaluating the sidebar's model…")
    points = [{"name": f"teacher {TEACHER.split('-', 1)[1]}", "bytes": tcard["dense_bytes"],
               "accuracy": res_kd["metrics"]["dense_accuracy"], "color": GREY, "symbol": "diamond"},
              {"name": f"student {width}-{width}, labels only", "bytes": res_base["metrics"]["artifact_bytes"],
               "accuracy": res_base["metrics"]["accuracy"], "color": ORANGE},
              {"name": f"student {width}-{width}, distilled", "bytes": res_kd["metrics"]["artifact_bytes"],
               "accuracy": res_kd["metrics"]["accuracy"], "color": BLUE, "symbol": "star"}]
    if dense is not None:
        points.append({"name": f"{common.model_name()} (dense)", "bytes": dense["metrics"]["artifact_bytes"],
                       "accuracy": dense["metrics"]["accuracy"], "color": GREEN, "symbol": "square"})
    st.plotly_chart(tradeoff_chart(points), width="stretch")
with right:
    teacher_errs = explain.test_errors(res_kd["metrics"]["dense_accuracy"], n)
    st.markdown("**Test errors, theirs and ours**")
    rows = [("teacher", HINTON["teacher"], teacher_errs),
            ("student, labels only", HINTON["student"], explain.test_errors(res_base["metrics"]["accuracy"], n)),
            ("student, distilled", HINTON["distilled"], explain.test_errors(res_kd["metrics"]["accuracy"], n))]
    st.markdown(f"| | Hinton et al., MNIST | here, {data.name} |\n|---|--:|--:|\n"
                + "\n".join(f"| {name} | {theirs:,} | {ours:,} |" for name, theirs, ours in rows))
    st.caption(f"Hinton et al.: 800-800 student, {HINTON['test_images']:,} MNIST test images, long training. "
               f"Here: a {width}-{width} student trained {epochs} epoch{'s' if epochs > 1 else ''} on "
               f"{len(data.y('train')):,} images, scored on {n:,} test images. Fashion-MNIST is harder than MNIST, "
               "so everyone makes more errors; what to look at is the gap KD closes between the student and "
               "the teacher.")
