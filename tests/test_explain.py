"""compress_engine.playground.explain: soft-target tables, test errors, pipeline stages, waterfall steps, paper figures."""

import math

import numpy as np
import pytest
import torch

from compress_engine import Recipe
from compress_engine.playground import explain
def test_soft_target_table_matches_softmax_in_float64():
    z = np.array([2.0, -1.0, 0.5, 8.0, 0.0, 0.0, -3.0, 1.0, 0.25, -0.5], dtype=np.float32)
    table = explain.soft_target_table(z, [1.0, 4.0, 20.0])
    assert list(table) == [1.0, 4.0, 20.0]
    for t, p in table.items():
        ref = torch.softmax(torch.tensor(z, dtype=torch.float64) / t, 0).numpy()
        np.testing.assert_allclose(p, ref, rtol=1e-5, atol=1e-7)
        assert p.dtype == np.float64 and abs(p.sum() - 1) < 1e-6
    # a higher temperature softens: the top class loses probability, the spread grows
    assert table[1.0].max() > table[4.0].max() > table[20.0].max()
    assert explain.entropy_bits(table[1.0]) < explain.entropy_bits(table[20.0]) < math.log2(10)


def test_soft_target_table_refuses_bad_input():
    with pytest.raises(ValueError, match="1-D"):
        explain.soft_target_table(np.zeros((2, 10)), [1.0])
    with pytest.raises(Exception, match="temperature"):
        explain.soft_target_table(np.zeros(10), [0.5])  # below the Recipe's range


def test_entropy_bits_and_test_errors():
    assert explain.entropy_bits([1.0, 0, 0]) == 0.0
    assert explain.entropy_bits([0.1] * 10) == pytest.approx(math.log2(10))
    assert explain.test_errors(0.9926, 10_000) == 74
    assert explain.test_errors(1.0, 10_000) == 0
    assert explain.test_errors(0.5, 500) == 250


def test_stage_recipes_cut_the_recipe_after_each_stage():
    r = Recipe(sparsity=0.92, clusters=16, huffman=True, finetune_epochs=1)
    stages = explain.stage_recipes(r)
    assert [s for s, _, _ in stages] == ["dense", "prune", "share", "huffman"]
    dense, pruned, shared, coded = (x for _, _, x in stages)
    assert dense == Recipe()
    assert pruned == Recipe(sparsity=0.92)
    assert shared == Recipe(sparsity=0.92, clusters=16)
    assert coded == r.replace(finetune_epochs=0)
    assert "16 clusters (4-bit codes)" in stages[2][1]

    quant = explain.stage_recipes(Recipe(bits=6, prune_scope="global"))
    assert [s for s, _, _ in quant] == ["dense", "share"] and quant[1][2] == Recipe(bits=6, prune_scope="global")
    assert [s for s, _, _ in explain.stage_recipes(Recipe(huffman=True))] == ["dense", "huffman"]
    assert [s for s, _, _ in explain.stage_recipes(Recipe())] == ["dense"]
    # a gradual schedule needs fine-tuning: its post-training stages are one-shot
    grad = explain.stage_recipes(Recipe(sparsity=0.9, schedule="gradual", finetune_epochs=2))
    assert grad[1][2] == Recipe(sparsity=0.9)
    with pytest.raises(TypeError):
        explain.stage_recipes({"sparsity": 0.9})


def test_waterfall_steps_add_up_to_the_final_size():
    steps = explain.waterfall([("dense", 1_066_000), ("pruned", 130_000), ("clustered", 40_000), ("huffman", 27_000)])
    assert steps["measure"] == ["absolute", "relative", "relative", "relative", "total"]
    assert steps["x"][-1] == "final artifact" and len(steps["text"]) == 5
    assert sum(steps["y"][:-1]) == steps["y"][-1] == 27_000
    assert steps["y"][1] == 130_000 - 1_066_000
    assert explain.waterfall([("dense", 100)])["y"] == [100, 100]
    with pytest.raises(ValueError):
        explain.waterfall([])


def test_paper_comparison():
    comp = explain.paper_comparison("lenet-300-100", 1_066_440, 26_661, 0.90, 0.898, pruned_bytes=106_644,
                                    pruned_accuracy=0.899, dense_params=266_610, pruned_nonzero=22_218)
    assert comp["architecture"] == "LeNet-300-100"
    prune, total = comp["rows"]
    assert (prune["paper"], total["paper"]) == (12.0, 40.0)
    assert prune["ours"] == pytest.approx(10.0) and total["ours"] == pytest.approx(40.0)
    assert prune["ours_params"] == pytest.approx(12.0, rel=1e-3)
    assert explain.paper_comparison("lenet-5", 10, 1, 0.9, 0.9)["rows"][1]["paper"] == 39.0
    no_prune = explain.paper_comparison("lenet-5", 10, 2, 0.9, 0.9)["rows"][0]
    assert no_prune["ours"] is None and no_prune["ours_params"] is None and not no_prune["comparable"]
    assert explain.paper_comparison("teacher-1200-1200", 10, 1, 0.9, 0.9) is None


def test_paper_comparison_shows_every_loss_and_compares_only_at_equal_loss():
    """The walkthrough's "ours 49.7x vs paper 40x" at 39.6 % accuracy: a bigger ratio at a 50-point loss is no win."""
    collapsed = explain.paper_comparison("lenet-300-100", 1_066_800, 21_470, 0.9013, 0.3957)["rows"][1]
    assert collapsed["paper_loss"] == pytest.approx(-0.06) and collapsed["ours_loss"] == pytest.approx(50.56)
    assert not collapsed["comparable"]
    assert collapsed["verdict"].startswith("whole pipeline: not comparable") and "50.56 points" in collapsed["verdict"]
    kept = explain.paper_comparison("lenet-300-100", 1_066_800, 24_905, 0.9013, 0.8969)["rows"][1]
    assert kept["comparable"] and kept["ours_loss"] == pytest.approx(0.44)
    assert "at equal accuracy loss" in kept["verdict"] and "42.8×" in kept["verdict"]
    edge = explain.EQUAL_LOSS_PTS
    assert explain.paper_comparison("lenet-5", 100, 1, 0.9, 0.9 - edge / 100 + 1e-9)["rows"][1]["comparable"]
    assert not explain.paper_comparison("lenet-5", 100, 1, 0.9, 0.9 - edge / 100 - 1e-4)["rows"][1]["comparable"]


def test_rounded_to_zero_explains_the_lost_nonzero_weights():
    assert explain.rounded_to_zero({"nonzero_params": 100}, {"nonzero_params": 100}) == ""
    text = explain.rounded_to_zero({"nonzero_params": 56_000}, {"nonzero_params": 266_000})
    # the share's base is said: of the dense model's non-zero weights, not of every parameter (a teacher's review)
    assert "210,000 weights (78.9 % of the dense model's non-zero ones)" in text and "zero level" in text
    pruned = explain.rounded_to_zero({"nonzero_params": 56_000}, {"nonzero_params": 266_000}, pruned=True)
    assert "210,000 weights (78.9 % of those pruning kept)" in pruned


def test_explain_does_not_import_dashboard_libraries():
    import sys
    import subprocess
    code = ("import sys, compress_engine.playground.explain; "
            "assert not any(m.split('.')[0] in ('streamlit', 'plotly') for m in sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)
