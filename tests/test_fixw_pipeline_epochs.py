"""Pipeline's Fine-tune button says how many epochs it trains.

The Deep Compression preset's button said "Fine-tune 1 epoch" and trained 2 (938 steps for ResNet-8: one epoch after
pruning, one after clustering); the time beside the preset read "About 5 min (2 min an epoch)"."""

from test_app import page

import compress_engine as ce
from compress_engine.playground import explain


def steps(recipe, model, data):
    totals = []
    ce.compress(model, recipe, data, progress=lambda step, total, *a, **kw: totals.append(total), evaluate=False)
    return totals[-1]


def test_training_epochs_counts_what_compress_trains(lenet300, small):
    dc = ce.Recipe(sparsity=0.9, clusters=16, huffman=True, finetune_epochs=1)
    pruned = ce.Recipe(sparsity=0.9, finetune_epochs=1)
    assert explain.training_epochs(dc) == 2 and explain.training_epochs(pruned) == 1
    assert explain.training_epochs(ce.Recipe(sparsity=0.9)) == 0
    assert steps(dc, lenet300, small) == 2 * steps(pruned, lenet300, small)


def test_the_deep_compression_button_says_it_trains_an_epoch_after_each_stage(tiny):
    at = page("pipeline", "lenet-300-100")
    at.button(key="pipe_preset").click().run()
    assert not at.exception and not at.error
    train = at.button(key="pipe_train")
    assert train.label == "Fine-tune 1 epoch after each stage (2 in all)"
    assert "1 epoch after each stage, 2 in all." in train.help
    assert "(2 epochs in all)" in at.button(key="pipe_preset").help
    assert any("press **Fine-tune 1 epoch after each stage (2 in all)**" in c.value for c in at.caption)
    at.select_slider(key="pipe_clusters")  # still there; with sharing off, one stage trains: the plain words
    at.radio(key="pipe_sharing").set_value("none").run()
    assert at.button(key="pipe_train").label == "Fine-tune 1 epoch"


def test_the_time_of_several_epochs_adds_up(monkeypatch):
    """148 s an epoch: 2 epochs were "About 5 min (2 min an epoch)", each rounded apart."""
    from pages import common
    monkeypatch.setattr(common, "model_name", lambda: "resnet-8")
    monkeypatch.setattr(common, "epoch_seconds", lambda: 148.0)
    assert common.training_time(2) == " About 5 min (2.5 min an epoch) for resnet-8 here."
    assert common.training_time() == " About 2 min an epoch for resnet-8 here."
    monkeypatch.setattr(common, "epoch_seconds", lambda: 20.0)
    assert common.training_time(9, "a point") == " About 3 min (20 s a point) for resnet-8 here."
