"""A link's values the page cannot open on were dropped silently: prune_sparsity=150, =abc or given twice opened the
page at its start while the teacher spoke of 90 %. A note now names each (common.link_values_note, the sentence of
link_note's). The model note matches names case aside (model=LeNet-5 is lenet-5), and an upload's name is not
called "not on this server" (a teacher reloading with their own upload: it is, only that tab lost it)."""

import pytest
from streamlit.testing.v1 import AppTest

from test_fix52_url_links import opened


def notes(at):
    return " ".join(w.value for w in list(at.warning) + list(at.sidebar.warning)).replace("\\", "")


def linked(params):
    """A session opened on a link with these parameters, on a page as app.py runs it: the link read before any
    widget binds (common.sidebar: link_asked), a pruning-like slider and radio bound to the URL, then the note
    (app.py calls link_values_note once the page has run; AppTest runs a page alone, without app.py)."""
    def script():
        import streamlit as st
        from pages import common
        common.link_asked()
        st.slider("Sparsity", 0, 95, 80, 5, key="prune_sparsity", bind=common.LINK)
        st.radio("Scope", ["global", "layer"], format_func={"global": "Global", "layer": "Per layer"}.get,
                 key="prune_scope", bind=common.LINK)
        common.link_values_note()
    at = AppTest.from_function(script, default_timeout=30)
    at.query_params = dict(params)
    return at.run()


@pytest.mark.parametrize("value", ["150", "abc", ["50", "90"]])
def test_a_bad_value_in_a_link_is_named(value):
    at = linked({"prune_sparsity": value})
    assert not at.exception, at.exception
    assert at.slider(key="prune_sparsity").value == 80  # Streamlit drops it: the start
    text = notes(at)
    assert "This link's prune_sparsity" in text and "so the page shows 80" in text, text
    at.slider(key="prune_sparsity").set_value(60).run()  # changed: the note has said its piece
    assert "prune_sparsity" not in notes(at)


def test_good_values_get_no_note():
    at = linked({"prune_sparsity": "80", "prune_scope": "Per layer"})
    assert at.slider(key="prune_sparsity").value == 80 and at.radio(key="prune_scope").value == "layer"
    assert not notes(at)
    at = linked({"prune_sparsity": "90", "prune_scope": "global"})
    assert at.slider(key="prune_sparsity").value == 90 and not notes(at)


def test_a_model_name_in_another_case_is_that_model(fmnist):
    at = opened({"model": "LeNet-5"}, "pruning")
    assert at.session_state["model"] == "lenet-5"
    assert not notes(at)


def test_an_uploads_name_is_not_called_missing_from_the_server(fmnist):
    at = opened({"model": "upload-my-mlp-0123abcd"})
    text = notes(at)
    assert "not on this server" not in text and "uploaded" in text and "reload" in text, text


def test_a_switch_the_link_turned_on_and_cancel_turned_off_gets_no_note():
    """A reload in the middle of Pruning's fine-tune (its link: prune_finetune=true): the reloaded page follows the run
    (its first run does not complete), Cancel turns the switch off (common.switched_off), and the first complete run
    said "This link's prune_finetune=true is not a value this setting takes". The walkthrough of 6 December."""
    def script():
        import streamlit as st
        from pages import common
        common.link_asked()
        st.toggle("Fine-tune", key="prune_finetune", bind=common.LINK)
        st.button("Cancel", key="cancel", on_click=common.switched_off, args=("prune_finetune",))
        if st.session_state.get("prune_finetune"):
            st.stop()  # following the run: the page's run does not get to the note (app.py's, after the page)
        common.link_values_note()
    at = AppTest.from_function(script, default_timeout=30)
    at.query_params = {"prune_finetune": "true"}
    at.run()
    assert at.toggle(key="prune_finetune").value is True and not notes(at)
    at.button(key="cancel").click().run()
    assert not at.exception and at.toggle(key="prune_finetune").value is False
    assert not notes(at), notes(at)
