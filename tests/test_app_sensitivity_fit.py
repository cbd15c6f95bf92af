"""AppTest of the Sensitivity page's Fit cards agreeing with the table under them."""

import pytest

from test_app import metric, number, page


@pytest.fixture
def fitted(fmnist, tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESS_CACHE", str(tmp_path))
    at = page("sensitivity", "lenet-300-100")
    at.number_input(key="budget_kb").set_value(30.0).run()
    at.button(key="budget_go").click().run()
    assert not at.exception and not at.error
    return at


def test_the_fits_weights_kept_card_is_the_tables_weights_kept(fitted):
    """LeNet-5's card said 21,946 weights kept 'of 431,080' where its table's 'weights kept' summed to 21,500: the
    card counted every non-zero parameter, biases included, which the other pages call 'Non-zero parameters'."""
    card = next(m for m in fitted.metric if m.label == "Weights kept")
    table = fitted.dataframe[1].value
    assert number(card.value) == table["weights kept"].sum()
    fit = next(v for k, v in fitted.session_state["trained"].items() if k[0] == "fit_budget")
    layers = {r["name"]: r["params"] for r in fit["metrics"]["layers"]}
    assert card.delta == f"of {sum(layers[name] for name in table['layer']):,}"  # the table's layers' weights
    assert f"{fit['metrics']['nonzero_params']:,} non-zero parameters" in card.help
    assert number(metric(fitted, "Artifact")) <= 30.0


def test_every_layer_and_every_part_of_a_fit_gets_its_own_colour(fmnist):
    """ResNet-8's ten layers and its fit's twelve parts were coloured from a 9-colour palette, cycling: stem.weight and
    fc.weight were both blue. Each line of the scan's charts has its own colour, and charts.colours gives n apart."""
    import json

    from pages import charts

    at = page("sensitivity", "resnet-8")
    assert not at.exception and not at.error
    for chart in at.get("plotly_chart")[:2]:  # accuracy lost by pruning, by sharing: one line a layer
        lines = [t for t in json.loads(chart.proto.spec)["data"] if t.get("mode") == "lines+markers"]
        assert len(lines) == 10
        assert len({t["line"]["color"] for t in lines}) == len(lines), [t["line"]["color"] for t in lines]
    many = charts.colours(12)  # the fit's parts on ResNet-8
    assert many[:len(charts.PALETTE)] == list(charts.PALETTE) and len(set(many)) == 12
    assert charts.GREY not in many and len(set(charts.colours(40))) == 40
