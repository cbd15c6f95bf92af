"""Home: the chosen model's card (a sample model's, or one made for uploaded weights) and a few test
images with its predictions."""

import plotly.express as px
import streamlit as st

from pages import common

common.through_app()

st.title("Compression Playground")
st.caption("Prune, cluster, quantize and distil neural networks on Fashion-MNIST — sizes in real bytes, "
           "accuracy on all 10,000 test images.")
card = common.card()
data = common.dataset()
st.subheader(card["name"])
st.write(card["description"])
c1, c2, c3 = st.columns(3)
c1.metric("Parameters", f"{card['parameters']:,}")
c2.metric("Dense size (float32)", common.kb(card["dense_bytes"]))
c3.metric("Test accuracy", f"{100 * card['test_accuracy']:.2f} %", help=card["test_set"])
with st.expander("How it was trained" if card["reproduce"] else "Where it came from"):
    st.json(card["training"])
    if card["reproduce"]:
        st.code(card["reproduce"], language="bash")
    else:
        st.caption("Uploaded weights: how they were trained is not known here. Their test accuracy above was "
                   "measured when you uploaded them; every page compresses them like a sample model.")

st.markdown("#### Test images and the model's predictions")
n = 12
pred = common.predictions(common.model_name(), n)
truth = data.y("test")[:n].tolist()
fig = px.imshow(data.x("test")[:n, 0].numpy(), facet_col=0, facet_col_wrap=6, binary_string=True, zmin=0, zmax=1,
                facet_col_spacing=0.01, facet_row_spacing=0.12)
for i, ann in enumerate(fig.layout.annotations):
    j = int(ann.text.split("=")[1])
    ok = pred[j] == truth[j]
    ann.text = data.classes[pred[j]] + ("" if ok else f"<br>(wrong: is {data.classes[truth[j]]})")  # text, no glyphs
    ann.font.color = "green" if ok else "crimson"
fig.update_xaxes(showticklabels=False)
fig.update_yaxes(showticklabels=False)
fig.update_layout(height=360, margin=dict(l=0, r=0, t=30, b=0))
st.plotly_chart(fig, width="stretch")

st.markdown("""
**Where to go next.** *Pruning* zeroes the smallest weights; *Clustering* lets each layer keep only k
distinct values; *Quantization* puts weights on a k-bit grid; *Distillation* trains a small student from a
large teacher; *Pipeline* chains them like Deep Compression; *Compare* shows every saved run on one chart;
*Export* downloads the compressed artifact and checks an uploaded one. The same engine runs from the command line:
`python -m compress_engine run --model lenet-300-100 --sparsity 0.9 --clusters 16 --json`.
""")

common.warm_dense()  # last, so it delays nothing on Home; every technique page starts from the dense model's run
