"""Home and Quantization texts a review found false or unclear: ResNet-8's 'Parameters 308,074' beside a dense size
of the 307,402 folded ones, 'a k-bit grid' where Quantization says b (k is clusters), a command line without the
server's data, and Quantization's '8 bits instead of 32 is 4x smaller, 4 bits 8x' beside cards of 5.2x and 15.2x."""

import re
import shlex
import sys

from streamlit.testing.v1 import AppTest

from test_app import ROOT, page

sys.path.insert(0, str(ROOT))


def home(name, monkeypatch):
    from pages import common
    monkeypatch.setattr(common, "warm", lambda: None)  # no background runs: this reads the page only
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["model"] = name
    at.run()
    assert not at.exception, at.exception
    return at


def test_home_says_which_count_the_dense_size_is_of(monkeypatch):
    labels = [m.label for m in home("resnet-8", monkeypatch).metric]
    assert "Parameters (while training)" in labels and "Dense size (float32, BatchNorm folded)" in labels
    labels = [m.label for m in home("lenet-5", monkeypatch).metric]  # nothing folded: plain labels
    assert "Parameters" in labels and "Dense size (float32)" in labels


def test_home_command_names_the_data_and_uses_b_for_bits(monkeypatch):
    from compress_engine.playground import cli
    from pages import common
    at = home("lenet-5", monkeypatch)
    text = " ".join(m.value for m in at.markdown)
    assert "b-bit grid" in text and "k-bit grid" not in text
    command = re.search(r"`(python -m compress_engine run [^`]+)`", text).group(1)
    args = cli.parser().parse_args(shlex.split(command)[3:])
    assert args.data == common.DATASET and f"--data {shlex.quote(common.DATASET)}" in command


def test_quantization_lead_says_per_stored_weight(tiny):
    text = " ".join(m.value for m in page("quantization").markdown)
    assert "4× smaller per stored weight" in text and "round to exactly zero" in text
