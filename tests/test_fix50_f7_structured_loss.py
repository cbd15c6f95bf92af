"""Pruning's structured-collapse hint on LeNet-5 said it 'still classifies at ... 70 % (37.8 %)', where the dense
model has 92.14 %: not collapsed to chance is not close to dense. Each share it lists now says how many points it
loses against the dense model, and the hint says 'has not collapsed'."""

import re

from test_app import page


def test_the_structured_hint_says_what_each_share_loses(tiny):
    at = page("pruning", model="lenet-5")
    at.toggle(key="prune_structured").set_value(True).run()
    assert not at.exception
    hint = next(i.value for i in at.info if "Structured pruning removes whole units" in i.value)
    assert "still classifies" not in hint and "has not collapsed" in hint
    listed = re.findall(r"(\d+) % \(([\d.]+) %, ([+-][\d.]+) pts vs dense\)", hint)
    assert listed and len(listed) == len(re.findall(r"(\d+) % \(", hint))  # every share with its loss
    (_, a0, d0), *rest = listed
    for _, a, d in rest:  # one dense accuracy behind every loss
        assert abs((float(a) - float(a0)) - (float(d) - float(d0))) < 0.15
