"""Streamlit AppTest: the home page, and the helpers every page's AppTest uses."""

import base64
import re
import sys
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest
from conftest import plots

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
sys.path.insert(0, str(ROOT))
TIMEOUT = 180


def app():
    return AppTest.from_file(APP, default_timeout=TIMEOUT)


def plotly_values(v):
    """A trace's x or y as a list: Plotly sends numeric arrays as {"dtype", "bdata": base64}, others as lists."""
    return list(np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"])) if isinstance(v, dict) else v


def page(name, model=None):
    """Run pages/<name>.py inside app.py, with the sidebar's model preset (its widget key is "model")."""
    at = app()
    if model:
        at.session_state["model"] = model
    at.switch_page(f"pages/{name}.py").run()
    assert not at.exception, at.exception
    return at


def metric(at, label):
    return next(m.value for m in at.metric if m.label == label)


def number(text):
    """'1,234.5 KB' / '89.71 %' / '12,345' / '40.1×' -> float."""
    return float(text.replace(",", "").split()[0].rstrip("×"))


def test_home_shows_card(fmnist):
    at = app().run()
    assert not at.exception
    assert at.metric[0].value == "266,610"
    import json
    import compress_engine as ce
    # the weights training left at zero, counted as the pages count the dense model's non-zero parameters
    dense = ce.compress(ce.load_model("lenet-300-100"), ce.Recipe(), ce.load_dataset("fashion-mnist"), evaluate=False)
    assert at.metric[0].delta == f"{dense.metrics['nonzero_params']:,} non-zero" != "266,610 non-zero"
    assert at.metric[1].value == f"{dense.metrics['dense_bytes'] / 1000:,.1f} KB"
    spec = json.loads(plots(at)[0])  # the 12 test images: one picture, one caption each
    assert [t["type"] for t in spec["data"]] == ["image"] and len(spec["layout"]["annotations"]) == 12
    ds = ce.load_dataset("fashion-mnist")
    pred = ce.logits(ce.load_model("lenet-300-100"), ds.x("test")[:12]).argmax(1).tolist()
    for a, p, t in zip(spec["layout"]["annotations"], pred, ds.y("test")[:12].tolist()):
        assert a["text"].startswith(ds.classes[p]) and (a["font"]["color"] == "green") == (p == t)
        assert ("wrong: is " + ds.classes[t] in a["text"]) == (p != t)
    at.sidebar.selectbox[0].set_value("lenet-5").run()
    assert not at.exception and at.metric[0].value == "431,080"
    # the command line shown is this model's, and it runs
    import shlex
    from compress_engine.playground import cli
    command = next(re.search(r"`(python -m compress_engine run [^`]+)`", m.value) for m in at.markdown
                   if "python -m compress_engine run" in m.value).group(1)
    assert "--model lenet-5 " in command
    assert cli.main(shlex.split(command)[3:]) == 0
    resnet = app()
    resnet.session_state["model"] = "resnet-8"
    resnet.run()  # BatchNorm folded: fewer parameters, none of them zero
    assert not resnet.exception and (resnet.metric[0].value, resnet.metric[0].delta) == (
        "308,074", "307,402 once BatchNorm is folded")


def test_home_draws_without_importing_torch(fmnist):
    """A server's first page: the card, the first test images and a sample model's predictions for them are read
    from disk, so Home's run imports no torch (1-2 s on 2 cores); only the dense run it starts afterwards, in the
    background (warm, left out here), does. In a fresh interpreter, as a fresh server is."""
    import subprocess
    code = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from streamlit.testing.v1 import AppTest
from pages import common
common.warm = lambda: None
at = AppTest.from_file({APP!r}, default_timeout=120).run()
assert not at.exception, at.exception
assert "torch" not in sys.modules, "Home imported torch"
at.sidebar.selectbox[0].set_value("resnet-8").run()
assert not at.exception and "torch" not in sys.modules, "a model switch on Home imported torch"
print(at.metric[0].value, len(at.get("bidi_component")) + len(at.get("plotly_chart")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["308,074", "1"], out.stdout
