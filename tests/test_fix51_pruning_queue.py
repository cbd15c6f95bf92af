"""Two things a re-check of Pruning's training queue found. The sparsity slider moved while "Fine-tune 1 epoch" was on
left the value it moved from training (a held arrow key trained every value it passed, the last one waiting behind
them): that run is now withdrawn, as Cancel would. And a fine-tuned curve trained on a trained-results folder it
cannot write said nothing (each point's warning went with the rerun that drew it), then was gone on reload."""

import threading

from test_fix51_f3_prune_curve import GRID, run_until, training, watch

from test_app import page


def test_moving_the_slider_while_fine_tuning_withdraws_the_run_it_moved_from(tiny, monkeypatch):
    at = page("pruning")
    at.slider(key="prune_sparsity").set_value(77).run()  # settings no other test trains
    release = threading.Event()
    _, trained = watch(monkeypatch, block=(77, release))
    try:
        at.toggle(key="prune_finetune").set_value(True)
        run_until(at, training)  # the page follows the 77 % run, still training
        threading.Timer(2, release.set).start()  # it goes on once the slider has moved
        at.slider(key="prune_sparsity").set_value(78).run()
    finally:
        release.set()
    assert not at.exception and not at.error
    at.slider(key="prune_sparsity").set_value(77).run()  # back: 77 % was withdrawn, not kept, so it trains again
    assert not at.exception and not at.error
    assert [p for p, _ in trained] == [77, 78, 77]


def test_a_curve_that_could_not_be_kept_says_so_under_it(tiny, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("COMPRESS_TRAINED", str(blocker / "trained"))  # a folder that cannot be made
    at = page("pruning")
    at.button(key="prune_ft_curve").click().run()
    assert not at.exception and not at.error
    shown = [w.value.replace("\\", "") for w in at.warning]  # as read: the page escapes Markdown (md_text)
    warned = [w for w in shown if w.startswith("Trained, but the fine-tuned points at 30 %")]
    assert warned and "could not be kept on disk" in warned[0] and f"{GRID[-1]} %" in warned[0], shown


def test_moving_back_to_a_kept_value_withdraws_the_run_too(tiny, monkeypatch):
    """The value moved to was kept already (shown at once): the run moved away from stops all the same."""
    import time
    at = page("pruning")
    at.slider(key="prune_sparsity").set_value(73).run()
    release = threading.Event()
    _, trained = watch(monkeypatch, block=(72, release))
    at.toggle(key="prune_finetune").set_value(True).run()  # 73 % trained and kept
    try:
        at.slider(key="prune_sparsity").set_value(72)
        run_until(at, training)  # the page follows the 72 % run, still training
        at.slider(key="prune_sparsity").set_value(73).run()  # kept: shown at once, and 72 % is withdrawn
    finally:
        release.set()
    assert not at.exception and not at.error
    time.sleep(3)  # the withdrawn run stops at its first step
    at.slider(key="prune_sparsity").set_value(72).run()  # not kept: it trains again
    assert not at.exception and not at.error
    assert [p for p, _ in trained] == [73, 72, 72]
