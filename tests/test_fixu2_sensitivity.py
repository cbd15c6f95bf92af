"""Sensitivity: the 'Most fragile layer' card ranks the layers as the table under it does, and the heat map's
numbers are the quantity its colour shows. With ResNet-8 the card once said blocks.1.conv2 (-53.9 pts at 90 %
pruned) while the table showed stem.weight cannot be pruned at all within 0.5 points, and red cells read '0.0' (KB)."""

import json

from test_app import page
from conftest import plots


def test_the_fragile_card_is_the_tables_lowest_max_sparsity(fmnist):
    at = page("sensitivity", "resnet-8")
    assert not at.exception
    table = at.dataframe[0].value
    sparsity = [float(v.rstrip(" %")) for v in table["max sparsity"]]
    lowest = min(sparsity)
    ties = [i for i, v in enumerate(sparsity) if v == lowest]
    expected = max(ties, key=lambda i: table["loss at 90 % pruned (pts)"][i])
    card = next(m for m in at.metric if m.label == "Most fragile layer")
    assert card.value == table["layer"][expected].removesuffix(".weight") == "stem"
    assert card.delta == f"max sparsity {lowest:g} % within 0.5 pts"


def test_the_heat_maps_numbers_are_its_colours(fmnist):
    at = page("sensitivity", "resnet-8")
    at.selectbox(key="sens_layer").set_value("stem.weight").run()
    spec = json.loads(plots(at)[3])
    (heat,) = spec["data"]
    cells = [(z, t) for zr, tr in zip(heat["z"], heat["text"]) for z, t in zip(zr, tr) if z is not None]
    assert cells and all(float(t) == round(z, 1) for z, t in cells)
    assert any(z > 5 for z, _ in cells)  # red cells: they read as points lost, not a layer's KB of "0.0"
    title = spec["layout"]["title"]["text"]
    assert "points lost<br><sup>colour and number" in title and "KB in the hover" in title
