"""A fine-tune that could not be kept on disk (a read-only or unusable trained-results folder, a full disk) says so
under its result: it was shown as if kept, so a teacher who prepared a demo found it trained again after a restart."""

from test_app import metric
from test_app_hostile import assert_clean, at_page


def test_a_fine_tune_not_kept_on_disk_says_why_under_its_result(tiny, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("COMPRESS_TRAINED", str(blocker / "trained"))  # a folder that cannot be made
    at = at_page("pruning")
    at.slider(key="prune_sparsity").set_value(76).run()  # a setting no other test trains
    at.toggle(key="prune_finetune").set_value(True).run()
    assert_clean(at)
    assert metric(at, "Test accuracy")  # the trained result is shown
    warned = [w.value for w in at.warning if w.value.startswith("Trained, but the result could not be kept on disk")]
    assert warned and "COMPRESS\\_TRAINED" in warned[0], [w.value for w in at.warning]
    at.run()  # a rerun of the page (any widget) still says so
    assert any(w.value.startswith("Trained, but the result could not be kept") for w in at.warning)


def test_a_kept_fine_tune_shows_no_such_warning(tiny, monkeypatch):
    at = at_page("pruning")
    at.slider(key="prune_sparsity").set_value(74).run()
    at.toggle(key="prune_finetune").set_value(True).run()
    assert_clean(at)
    assert not [w.value for w in at.warning if "could not be kept" in w.value]
