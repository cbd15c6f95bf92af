"""Distillation's cards 'Top class at chosen T' and 'Entropy at chosen T' followed the 'See the soft targets at T'
slider, not the Temperature the student trains at (63.0 % / 2.06 bits at Temperature 1, 2 or 7); the soft-target
bars changed colour with the Temperatures (the viewed T's bars orange, the page's 'labels only' colour, or blue);
and at 20 epochs, where the grid tried only T = 1, the caption said the fewest errors came at T = 1. The cards now
name the viewed T, each T role keeps one colour, and the caption says only T = 1 was tried."""

import json

from test_app import metric, page
from conftest import plots


def soft_bars(at):
    spec = next(json.loads(c) for c in plots(at)
                if "soft targets" in json.dumps(json.loads(c)["layout"].get("title", "")))
    return {t["hovertemplate"].split("T = ")[-1].split("<")[0]: t["marker"]["color"] for t in spec["data"]}


def test_the_cards_name_the_viewed_t_and_each_t_keeps_its_colour(fmnist):
    at = page("distillation")
    view = at.slider(key="distill_view_T").value
    colours = []
    for T in (1.0, 2.0, 7.0):
        at.slider(key="distill_T").set_value(T).run()
        assert not at.exception
        labels = [m.label for m in at.metric]
        assert f"Top class at viewed T = {view:g}" in labels and f"Entropy at viewed T = {view:g}" in labels
        assert not any("chosen T" in x for x in labels)
        bars = soft_bars(at)
        colours.append(bars[f"{view:g}"])  # the viewed T's bars
        if T != 1.0:
            assert bars[f"{T:g}"] != bars[f"{view:g}"] != bars["1"] != bars[f"{T:g}"]
    assert len(set(colours)) == 1 and colours[0] != "#ff7f0e"  # one colour, never orange ("labels only")
    at.slider(key="distill_view_T").set_value(9.0).run()
    assert metric(at, "Top class at viewed T = 9")


def test_the_caption_says_when_the_grid_tried_one_t(fmnist):
    at = page("distillation")
    at.radio(key="distill_grid_epochs").set_value(20).run()
    caption = next(c.value for c in at.caption if c.value.startswith("Drawn at T = 1 and at T ="))
    assert "fewest errors came" not in caption and "tried only T = 1" in caption
    at.radio(key="distill_grid_epochs").set_value(5).run()
    caption = next(c.value for c in at.caption if c.value.startswith("Drawn at T = 1 and at T ="))
    assert "fewest errors came at T = 1" in caption
