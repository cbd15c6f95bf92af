"""Distillation's "See the soft targets at T" opens at a T computed from the teacher (view_default), and Streamlit
leaves a bound widget's value out of the URL while it equals that value=. After a teacher switch the slider kept the
old teacher's opening (4) while its default became the new teacher's (20): the link, leaving 4 out, opened the panel
at 20 with other numbers. Now an untouched slider follows its default (common.following); a moved one stays."""

from test_app import page


def slider(at):
    return at.slider(key="distill_view_T")


def default_of(widget):
    return float(widget.proto.default[0])


def switch_teacher(at, name):
    at.selectbox(key="distill_teacher").set_value(name).run()
    assert not at.exception


def test_an_untouched_view_moves_with_its_default_a_moved_one_stays(fmnist):
    at = page("distillation")
    assert not at.exception
    first = slider(at).value
    assert first == default_of(slider(at))
    other = next(n for n in at.selectbox(key="distill_teacher").options if n != at.selectbox(key="distill_teacher").value)
    switch_teacher(at, other)
    assert default_of(slider(at)) != first  # the other teacher's panel opens elsewhere (the grid is ResNet-8's)
    # what a link/reload of this page opens on when it leaves the value out is the widget's default: the same view
    assert slider(at).value == default_of(slider(at))
    # a T the visitor chose is in the link (not the default), and stays across a teacher switch
    slider(at).set_value(7.5).run()
    switch_teacher(at, at.selectbox(key="distill_teacher").options[0] if other != at.selectbox(
        key="distill_teacher").options[0] else at.selectbox(key="distill_teacher").options[1])
    assert slider(at).value == 7.5
