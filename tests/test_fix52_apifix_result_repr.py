"""repr(Result) printed the whole dataclass, every metric and the model: 8,000-14,000 characters for a 5k-parameter
model in a notebook. It is now one short line: the score against the dense model's, the bytes and ratio, and the
recipe's non-default fields."""

import pytest
import torch
from torch import nn

import compress_engine as ce


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    x, y = torch.randn(60, 16), torch.arange(60) % 4
    ds = ce.Dataset.from_tensors(x[:40], y[:40], x[40:], y[40:])
    return nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4)), ds


def test_repr_is_one_short_line_of_what_matters(setup):
    model, ds = setup
    r = ce.compress(model, ce.Recipe(sparsity=0.5, clusters=16, huffman=True), ds)
    m = r.metrics
    text = repr(r)
    assert text == (f"Result(accuracy {m['accuracy']:.4f} (dense {m['dense_accuracy']:.4f}), "
                    f"{len(r.artifact):,} bytes (dense {m['dense_bytes']:,}: {m['dense_bytes'] / len(r.artifact):.1f}x), "
                    f"Recipe(sparsity=0.5, clusters=16, huffman=True))")
    assert len(text) < 200 and "\n" not in text


def test_an_unevaluated_result_and_per_layer_settings(setup):
    model, ds = setup
    r = ce.compress(model, ce.Recipe(layers={"0.weight": {"sparsity": 0.9}, "2.weight": {"clusters": 4}}), ds,
                    evaluate=False)
    assert repr(r).startswith("Result(accuracy not evaluated, ")
    assert repr(r).endswith(", Recipe(layers=<2 layers>))")


def test_a_regression_result_says_r2_and_a_ratio_below_1():
    torch.manual_seed(0)
    x = torch.randn(60, 8)
    ds = ce.Dataset.from_tensors(x[:40], x[:40, :1] * 2, x[40:], x[40:, :1] * 2)
    r = ce.compress(nn.Linear(8, 1), ce.Recipe(bits=8), ds)  # 9 weights: the header outweighs them
    m = r.metrics
    assert m["ratio"] < 1 and repr(r) == (f"Result(r2 {m['r2']:.4f} (dense {m['dense_r2']:.4f}), {len(r.artifact):,} "
                                          f"bytes (dense {m['dense_bytes']}: {m['ratio']:.2f}x), Recipe(bits=8))")
