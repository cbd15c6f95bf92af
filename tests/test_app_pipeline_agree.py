"""AppTests of the Pipeline page agreeing with the other pages (a reviewer's walk across pages, /tmp/s47/consist):
the same setting is the same recipe, and a model switch moves what the page itself set."""

from test_app import page
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
