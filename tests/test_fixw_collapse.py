"""Every page that shows a compressed result's accuracy says when the model has collapsed to chance level.

A teacher's class demo with ResNet-8: Pruning at 99 % showed 64.3x, Clustering at k = 2 29.6x and Quantization at
1 bit 376.5x, all at 10.00 % (chance for ten classes) with no warning, and students read the big ratios as success;
only the Pipeline warned. LeNet-300-100 collapses to 10.00 % at the same settings (99 % per layer, k = 2, 1 bit)."""

import pytest
from test_app import metric, page


def collapsed(at):
    assert not at.exception and not at.error
    assert metric(at, "Test accuracy") == "10.00 %" or metric(at, "Test accuracy") == "10.01 %"
    (warning,) = [w for w in at.warning if "collapsed" in w.value]
    assert "chance level" in warning.value and "10.00 %" in warning.value


@pytest.mark.parametrize("name, key, start, value", [
    ("pruning", "prune_sparsity", 80, 99),
    ("clustering", "cluster_k", 16, 2),
    ("quantization", "quant_bits", 4, 1),
])
def test_a_collapsed_result_is_said_on_every_technique_page(fmnist, name, key, start, value):
    at = page(name, "lenet-300-100")
    assert not [w for w in at.warning if "collapsed" in w.value]  # its start: a setting it survives
    if name == "pruning":
        at.radio(key="prune_scope").set_value("layer").run()
        at.slider(key=key).set_value(value).run()
    else:
        at.select_slider(key=key).set_value(value).run()
    collapsed(at)


def test_the_pipeline_still_says_it_once(fmnist):
    at = page("pipeline", "lenet-300-100")
    at.slider(key="pipe_sparsity").set_value(99).run()
    at.radio(key="pipe_scope").set_value("layer").run()
    at.select_slider(key="pipe_clusters").set_value(2).run()
    collapsed(at)
