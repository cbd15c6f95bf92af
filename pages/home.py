"""Home: the chosen model's card (a sample model's, or one made for uploaded weights) and a few test
images with its predictions."""

import shlex

import streamlit as st

from compress_engine.playground import cards
from pages import charts, common

common.through_app()

st.title("Compression Playground")
card = common.card()
# a sample model's card was measured on its own data (Fashion-MNIST); on other data, their name and test images, and
# the model's accuracy on them, come from the data (loaded whole already, to read their first test images)
on_card_data = charts.card_data(card, common.DATASET) == common.DATASET
if on_card_data:
    test_set = card["test_set"]  # "<data>, all <n> test images": without loading the data (nor torch)
else:
    test_set = cards.test_set_text(common.dataset())  # as a card's test_set says it
st.caption(f"Prune, cluster, quantize and distil neural networks — sizes in real bytes, accuracy on {test_set}.")
st.header(card["name"])
st.write(card["description"])
c1, c2, c3 = st.columns(3)
nonzero, deployed = card.get("nonzero_parameters"), cards.deployed_parameters(card)
if nonzero is None:  # a card without the counts
    counted = None
elif deployed == card["parameters"]:
    counted = f"{nonzero:,} non-zero"
else:  # BatchNorm folded: fewer parameters as deployed
    counted = (f"{deployed:,}" if nonzero == deployed else f"{nonzero:,} non-zero of {deployed:,}") + \
        " once BatchNorm is folded"
said = (("Below: counted on the model as deployed, each BatchNorm folded into the convolution before it, as every "
         "page counts the dense model (its size beside is of those). " if deployed != card["parameters"] else "")
        + (f"Training left some weights at exactly zero: {cards.WHY_ZEROS}."
           if nonzero is not None and nonzero < deployed else ""))
folded = deployed != card["parameters"]  # the size beside counts the folded parameters: both labels say which
c1.metric("Parameters (while training)" if folded else "Parameters", f"{card['parameters']:,}", counted,
          delta_color="off", delta_arrow="off", help=said or None)
c2.metric("Dense size (float32, BatchNorm folded)" if folded else "Dense size (float32)",
          common.kb(card["dense_bytes"]),
          help="4 bytes a parameter of the model as deployed: the base of every compression ratio the pages show.")
card_accuracy = f"{100 * card['test_accuracy']:.2f} %"
if on_card_data:
    c3.metric("Test accuracy", card_accuracy, help=card["test_set"])
else:  # the card's number is not of these data: it shows, so named, until the model is measured on them (below)
    accuracy_slot = c3.empty()
    accuracy_slot.metric(f"Test accuracy on {charts.card_data(card, common.DATASET)}", card_accuracy,
                         help=f"{card['test_set']} (the model's card); being measured on {test_set}.")
with st.expander("How it was trained" if card["reproduce"] else "Where it came from"):
    st.json(card["training"])
    if card["reproduce"]:
        st.code(card["reproduce"], language="bash")
    else:
        st.caption("Uploaded weights: how they were trained is not known here. Their test accuracy above was "
                   "measured when you uploaded them; every page compresses them like a sample model.")

st.header("Test images and the model's predictions")
n = 12
head = common.first_test_images()  # read without torch, as are the card and the predictions: a fast first paint
pred = common.predictions(common.model_name(), n)
truth = head["y"][:n].tolist()
wrong = [p != t for p, t in zip(pred, truth)]
captions = [charts.class_name(head["classes"], p, "<br>") + (f"<br>(wrong: is {head['classes'][t]})" if bad else "")
            for p, t, bad in zip(pred, truth, wrong)]  # text, no glyphs
fig = charts.image_grid(head["x"][:n, 0], captions, ["crimson" if bad else "green" for bad in wrong])
common.chart(fig, title=f"The first {n} test images, each named as the model predicts it")

# the command line for this model: a sample by name; uploaded weights need the user's own module to load into
model_flag = (f"--model {card['name']}" if card["reproduce"] else
              f"--model your_model.py:make_model --weights {shlex.quote(card['training']['file'])}")
# and the Pipeline page's one-shot start for this model (common.starts: one the model survives; ResNet-8 falls to
# chance at 90 % pruned), each Recipe field as the CLI spells its flag (cli.flag; cli itself imports torch, which Home
# does without) and a value its parser reads back (true/false for a bool)
start = common.starts(card["name"])["pipeline"]
start_flags = " ".join(f"--{field.replace('_', '-')} {str(value).lower() if isinstance(value, bool) else value}"
                       for field, value in start.items())
st.markdown(f"""
**Where to go next.** *Pruning* zeroes the smallest weights; *Clustering* lets each layer keep only k
distinct values; *Quantization* puts weights on a b-bit grid; *Distillation* trains a small student from a
large teacher; *Sensitivity* finds the fragile layers and fits the model in a size budget; *Pipeline* chains
them like Deep Compression; *Compare* shows every saved run on one chart; *Export* downloads the compressed
artifact and checks an uploaded one. The same engine runs from the command line:
`python -m compress_engine run {model_flag} {start_flags}{common.data_flag()} --json` (a one-shot setting this model
survives: the Pipeline page opens on it until the page's Deep Compression recipe has been fine-tuned on this server,
then on that).
""")

if not on_card_data:  # the dense model on these data: the run every page measures against (warm() would start it)
    accuracy_slot.metric("Test accuracy", f"{100 * common.dense()['metrics']['accuracy']:.2f} %",
                         help=f"{test_set}; its card's is {card_accuracy} on {card['test_set']}.")

common.warm()  # in the background, after Home has drawn: the dense run and each page's first setting
