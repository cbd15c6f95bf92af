"""Distillation on a trained-results folder that cannot be written (COMPRESS_TRAINED read-only, a full disk): the page
warned once per student, two yellow boxes with the same text ("Trained, but the result could not be kept on disk: …"),
neither saying which student it was about. It now says it once, naming the students that could not be kept."""

import errno
import re

from test_app import page

from compress_engine.playground import trained


def read_only(monkeypatch):
    def write_atomic(path, data):
        raise OSError(errno.EROFS, "Read-only file system", str(path))
    monkeypatch.setattr(trained, "write_atomic", write_atomic)


def not_kept(at):
    said = [re.sub(r"\\(.)", r"\1", w.value) for w in at.warning]  # md_text's escapes, as Markdown shows them
    return [w for w in said if "could not be kept on disk" in w]


def trained_on_a_read_only_folder(tmp_path, monkeypatch, alpha):
    """Distillation's 30-30 students trained 1 epoch at `alpha` where nothing can be written."""
    monkeypatch.setenv("COMPRESS_TRAINED", str(tmp_path / "read-only"))
    read_only(monkeypatch)
    at = page("distillation")
    at.select_slider(key="distill_width").set_value(30)
    at.slider(key="distill_epochs").set_value(1)
    at.slider(key="distill_alpha").set_value(alpha).run()
    at.button(key="distill_train").click().run()
    assert not at.exception and not at.error
    return at


def test_both_students_not_kept_are_named_in_one_warning(tiny, tmp_path, monkeypatch):
    at = trained_on_a_read_only_folder(tmp_path, monkeypatch, 0.5)
    warned = not_kept(at)
    assert len(warned) == 1, warned
    (text,) = warned
    assert "not writable (Read-only file system)" in text and text.count("could not be kept on disk") == 1
    assert text.startswith("Trained, but the 30-30 students without KD and with KD could not be kept on disk: "), text
    at.run()  # a rerun still says it, once
    assert len(not_kept(at)) == 1, not_kept(at)


def test_one_student_not_kept_is_named_alone(tiny, tmp_path, monkeypatch):
    """α = 0: the labels-only student is the one run; the warning names it and no other."""
    at = trained_on_a_read_only_folder(tmp_path, monkeypatch, 0.0)
    (text,) = not_kept(at)
    assert text.startswith("Trained, but the 30-30 student without KD could not be kept on disk: "), text
