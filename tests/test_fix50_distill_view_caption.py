"""The soft-target panel's caption said where its slider opens as if it were there: moved (or kept for the session
across a change of teacher, an own-data review: at 4 under a caption 'it opens at 20'), it now says so."""

from test_app import page


def caption(at):
    return next(c.value for c in at.caption if c.value.startswith("Drawn at T = 1 and at T = "))


def test_the_caption_says_where_the_panel_opens_and_whether_it_is_there(fmnist):
    at = page("distillation")
    assert not at.exception
    opened = at.slider(key="distill_view_T").value
    assert f"Drawn at T = 1 and at T = {opened:g} (where it opens: " in caption(at)
    at.slider(key="distill_view_T").set_value(7.0).run()
    assert not at.exception
    assert f"Drawn at T = 1 and at T = 7 (for this teacher it opens at {opened:g}, " in caption(at)
