"""AppTests of the Pipeline page agreeing with the other pages (a reviewer's walk across pages, /tmp/s47/consist):
the same setting is the same recipe, and a model switch moves what the page itself set."""

from test_app import metric, page
from test_app_compare_export import store  # noqa: F401 (fixture)

import compress_engine as ce


def test_a_pipeline_that_does_not_prune_saves_the_recipe_the_other_pages_build(fmnist, store):  # noqa: F811
    """At 0 % sparsity the Pipeline sent prune_scope='global': Clustering's 16 clusters and the Pipeline's 0 %,
    16 clusters were two recipes, 17 bytes apart, and two runs on Compare."""
    at = page("pipeline", "lenet-300-100")
    at.slider(key="pipe_sparsity").set_value(0).run()
    assert at.radio(key="pipe_scope").value == "global"  # the threshold left as it was: it prunes nothing
    at.button(key="pipe_save").click().run()
    assert not at.exception and not at.error
    (run,) = store.list()
    assert ce.Recipe.from_json(run["recipe"]) == ce.Recipe(clusters=16, huffman=True)


def controls(at):
    return (at.slider(key="pipe_sparsity").value, at.radio(key="pipe_scope").value, at.slider(key="pipe_epochs").value)


def switch(at, model):
    at.session_state["model"] = model  # the sidebar's choice (its widget key)
    at.run()
    assert not at.exception and not at.error
    return at


def test_the_pipeline_opened_on_one_models_preset_moves_to_the_next_models_start(tiny):
    """LeNet-300-100's page opened on its kept Deep Compression result (92 % global, 1 epoch); switched to ResNet-8,
    the controls stayed and showed ResNet-8 collapsed at 10.00 %: the page had set them, the visitor had not. They
    now move to ResNet-8's start; and to a model's preset, its kept result shown, when the page opens on it."""
    from pages import common
    first = page("pipeline", "lenet-300-100")
    first.button(key="pipe_preset").click().run()
    first.button(key="pipe_train").click().run()  # kept on disk: the page now opens on it
    assert not first.exception and not first.error
    at = page("pipeline", "lenet-300-100")
    assert controls(at) == (92, "global", 1)
    switch(at, "resnet-8")
    start = common.starts("resnet-8")["pipeline"]
    assert controls(at) == (round(100 * start["sparsity"]), start["prune_scope"], 0) == (40, "layer", 0)
    assert at.select_slider(key="pipe_clusters").value == start["clusters"]
    assert not any(c.value.startswith("Shown without fine-tuning") for c in at.caption)  # no ~200 s invitation
    switch(at, "lenet-300-100")  # back: the page opens on the kept preset, shown at once
    assert controls(at) == (92, "global", 1) and "pipe_train" not in [b.key for b in at.button]


def test_a_pressed_preset_follows_the_model_and_a_moved_control_stays(tiny):
    """ResNet-8's preset (80 % per layer) stayed on LeNet-5 after a switch; a control the visitor moved stays."""
    from pages import common
    at = page("pipeline", "resnet-8")
    at.button(key="pipe_preset").click().run()
    assert controls(at) == (80, "layer", 1)
    switch(at, "lenet-5")
    start = common.starts("lenet-5")["pipeline"]
    assert controls(at) == (round(100 * start["sparsity"]), start["prune_scope"], 0) == (80, "global", 0)
    at = page("pipeline", "lenet-5")
    at.button(key="pipe_preset").click().run()
    at.slider(key="pipe_sparsity").set_value(91).run()  # the visitor's own setting
    switch(at, "lenet-300-100")
    assert controls(at) == (91, "global", 1)


def test_a_pipeline_result_at_chance_level_says_the_model_collapsed(fmnist):
    """ResNet-8 at 92 % global showed 48.6x and 10.00 % (chance for ten classes) with nothing saying it collapsed."""
    at = page("pipeline", "lenet-300-100")
    assert not at.warning  # its start: 80 % global, a setting it survives
    at.slider(key="pipe_sparsity").set_value(99).run()
    at.radio(key="pipe_scope").set_value("layer").run()
    at.select_slider(key="pipe_clusters").set_value(2).run()
    assert not at.exception and not at.error
    assert metric(at, "Test accuracy") == "10.00 %"
    (warning,) = at.warning
    assert "collapsed" in warning.value and "10.00 %" in warning.value
