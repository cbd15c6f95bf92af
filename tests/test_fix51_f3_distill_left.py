"""Distillation: with the labels-only student kept (a kill -9 during the "With KD" run, or trained at α = 0) and the
distilled one not, the page still said "Press Train student to train the 100-100 student for 2 epochs, twice; …".
It now says only the KD run is left, once, and the button's help too."""

from test_app import page


def test_with_the_labels_only_student_kept_only_the_kd_run_is_left(tiny):
    at = page("distillation")
    at.select_slider(key="distill_width").set_value(30)
    at.slider(key="distill_epochs").set_value(1)
    at.slider(key="distill_alpha").set_value(0.0).run()  # α = 0: the labels-only run alone
    assert any("on the labels alone; it lands" in i.value for i in at.info)
    at.button(key="distill_train").click().run()
    assert not at.exception and not at.error
    at.slider(key="distill_alpha").set_value(1.0).run()  # the same labels-only student, kept; KD not trained
    assert not at.exception
    said = [i.value for i in at.info if "Press **Train student**" in i.value]
    assert len(said) == 1 and "twice" not in said[0] and "both" not in said[0], said
    assert "once, with KD (the labels-only one is kept); it lands" in said[0] and said[0].endswith(" as a star.")
    help_ = at.button(key="distill_train").help
    assert "twice" not in help_ and "the labels-only one, from the same seed, is kept" in help_
    at.slider(key="distill_epochs").set_value(2).run()  # nothing kept at 2 epochs: both runs
    assert any("twice; both land" in i.value for i in at.info)
