"""Pruning at 0 % (a walkthrough in Chromium, LeNet-300-100 and LeNet-5).

- With "Global" chosen, the accuracy-vs-sparsity curve turned into the per-layer one when the slider reached 0:
  the page's recipe at 0 % holds the default threshold (common.scoped: 0 % is the dense run on every page), and
  the curve's points were built from it.
- At 0 % the "Sparsity per layer" chart said 15.3 / 16.6 / 2.5 % of the weights were "removed" and the caption that
  a layer "lost the most": nothing was pruned; those are the zeros training left (cards.WHY_ZEROS)."""

from test_app import page
from test_app_techniques import chart

from compress_engine.playground import cards
from test_fix51_f3_prune_curve import GRID


def one_shot(at):
    """The one-shot curve's grid points, {sparsity %: accuracy} (the slider's own point, when off the grid, left out)."""
    trace = next(t for t in chart(at, "Accuracy vs sparsity")["data"] if t.get("name") == "one-shot")
    return {x: y for x, y in zip(trace["x"], trace["y"]) if x in GRID}


def test_the_global_curve_stays_global_at_zero(fmnist):
    at = page("pruning")
    at.radio(key="prune_scope").set_value("global").run()
    at.slider(key="prune_sparsity").set_value(5).run()
    global_curve = one_shot(at)
    at.slider(key="prune_sparsity").set_value(0).run()
    assert not at.exception and not at.error
    assert at.radio(key="prune_scope").value == "global"
    at_zero = one_shot(at)
    assert at_zero == global_curve and len(at_zero) == len(GRID)
    at.radio(key="prune_scope").set_value("layer").run()  # the curve the page drew at 0 % before: another one
    assert one_shot(at) != global_curve


def test_at_zero_the_per_layer_chart_says_training_left_the_zeros(fmnist):
    at = page("pruning", model="lenet-300-100")
    at.slider(key="prune_sparsity").set_value(0).run()
    assert not at.exception
    bars = chart(at, "Sparsity per layer")
    assert bars["layout"]["yaxis"]["title"]["text"] == "weights at zero (%)"
    assert max(bars["data"][0]["y"]) > 0  # LeNet-300-100 was trained with zeros in it
    captions = " ".join(c.value for c in at.caption)
    assert "At 0 % nothing is pruned" in captions and cards.WHY_ZEROS in captions
    assert "lost the most" not in captions
    at.slider(key="prune_sparsity").set_value(50).run()
    assert chart(at, "Sparsity per layer")["layout"]["yaxis"]["title"]["text"] == "weights removed (%)"
