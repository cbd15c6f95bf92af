"""A size-budget fit's result is compress(model, result.recipe, data)'s, byte for byte: the Sensitivity page keeps it
under that recipe too (common.keep_under_recipe), so replaying the fit's recipe (Export's "Reproduce a recipe")
shows it at once, where it trained for minutes again (a reviewer's 14 KB fit of LeNet-300-100)."""

from streamlit.testing.v1 import AppTest


def _keep_page():
    import dataclasses

    import streamlit as st

    import compress_engine as ce
    from pages import common
    name = "lenet-300-100"
    res = ce.compress(common.model(name), ce.Recipe(sparsity=0.5), common.dataset(), evaluate=False)
    trained = ce.Recipe(sparsity=0.5, finetune_epochs=1)  # a fit's recipe trains: train_run looks on disk for it
    st.write(f"before: {common.cached_trained_metrics(trained, start_from=name) is not None}")
    common.keep_under_recipe(name)(dataclasses.replace(res, recipe=trained))
    kept = common.cached_trained_metrics(trained, start_from=name)
    st.write(f"after: {kept is not None and kept['artifact_bytes'] == len(res.artifact)}")


def test_a_result_kept_under_its_recipe_is_what_train_run_finds(fmnist):
    at = AppTest.from_function(_keep_page, default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    assert [m.value for m in at.markdown] == ["before: False", "after: True"]
