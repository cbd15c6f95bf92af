"""Turning on Structured on LeNet-5 kept the unstructured start, 80 %, where removing 80 % of every layer's units
collapses it (10.55 %, -81.59 pts), with only the collapse warning. The page now says right under the toggle where
the one-shot curve shows the model still classifies."""

import re

from test_app import page

from compress_engine.playground import units


def test_a_collapsed_structured_share_says_which_shares_to_try(tiny):
    at = page("pruning", model="lenet-5")
    assert not any("Structured pruning removes whole units" in i.value for i in at.info)
    at.toggle(key="prune_structured").set_value(True).run()
    assert not at.exception and at.slider(key="prune_sparsity").value == 80
    assert any("collapsed" in w.value for w in at.warning)  # the case the review saw
    hint = next(i.value for i in at.info if "Structured pruning removes whole units" in i.value)
    shares = [int(p) for p in re.findall(r"(\d+) % \(", hint)]
    assert shares and all(0 < p < 80 for p in shares)
    at.slider(key="prune_sparsity").set_value(max(shares)).run()  # there it has not collapsed: no hint
    assert not at.exception and not any("collapsed" in w.value for w in at.warning)
    assert not any("Structured pruning removes whole units" in i.value for i in at.info)
