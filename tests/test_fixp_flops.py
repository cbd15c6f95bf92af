"""The FLOPs "out of reach" refusal is the engine's (flops.out_of_reach): the Pruning page's Fit shows it."""

import compress_engine as ce
from compress_engine.core import flops
from test_app import page


def test_out_of_reach_rounds_up_to_a_tenth_of_a_percent_in_either_unit():
    share = str(flops.out_of_reach(0.001, 4730, 532400, "with all of it removed"))
    percent = str(flops.out_of_reach(0.001, 4730, 532400, "with all of it removed", percent=True))
    assert share.startswith("target=0.001 of the FLOPs is out of reach: with all of it removed the model still")
    assert share.endswith("needs 4,730 of its 532,400 FLOPs; ask for at least 0.009")
    assert percent.startswith("A budget of 0.1 % of the FLOPs is out of reach: with all of it removed the model")
    assert percent.endswith("ask for at least 0.9 %")


def test_the_pruning_pages_fit_shows_the_engines_refusal(tiny):
    from pages import common
    at = page("pruning")
    at.toggle(key="prune_structured").set_value(True).run()
    at.number_input(key="prune_flops_pct").set_value(0.1).run()
    at.button(key="prune_flops_fit").click().run()
    assert not at.exception
    costs = ce.flops.Costs(common.model("lenet-300-100"), common.dataset().x("test")[:2])
    top = int(at.slider(key="prune_sparsity").max)  # the page's largest sparsity (%)
    said = flops.out_of_reach(0.001, costs.of_sparsity(top / 100), costs.dense,
                              f"with {top} % of every layer's units removed (whole layers never go, nor the classes),",
                              percent=True)
    assert [e.value for e in at.error] == [f"{said}."]
