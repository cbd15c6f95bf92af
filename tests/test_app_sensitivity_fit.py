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
