"""Streamlit AppTest: every page renders without an exception and its controls move its metrics."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")

TIMEOUT = 120


def app():
    return AppTest.from_file(APP, default_timeout=TIMEOUT)


def test_home_shows_card(fmnist):
    at = app().run()
    assert not at.exception
    assert at.metric[0].value == "266,610"
    at.sidebar.selectbox[0].set_value("lenet-5").run()
    assert not at.exception and at.metric[0].value == "431,080"
