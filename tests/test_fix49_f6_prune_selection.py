"""magnitude_mask sorted a tensor's every magnitude the first time it was pruned (8.6 s for 42 M at one thread),
though compress() prunes each layer once. The first call now selects the threshold (torch.kthvalue: 1.6 s) and
only a second call sorts; the masks are the same, ties (left to topk) and NaN included."""

import pytest
import torch

from compress_engine.core import prune


def tensors():
    g = torch.Generator().manual_seed(7)
    pairs = torch.randn(300, generator=g)
    zeros = torch.randn(16, 6, 3, 3, generator=g)
    zeros[zeros.abs() < 0.7] = 0.0
    zeros[0, 0, 0, 0] = -0.0
    nan = torch.randn(10, 10, generator=g)
    nan[3, 4] = float("nan")
    return {"ints": torch.randint(-4, 5, (40, 25), generator=g).float(),
            "pairs": torch.cat([pairs, -pairs])[torch.randperm(600, generator=g)], "zeros": zeros,
            "constant": torch.full((7, 9), 0.25), "random": torch.randn(100, 300, generator=g),
            "one": torch.tensor([3.0]), "float64": torch.randn(50, 20, generator=g, dtype=torch.float64),
            "half": torch.randn(30, 30, generator=g).half(), "nan": nan}


@pytest.mark.parametrize("name", list(tensors()))
def test_selection_gives_the_sorted_orders_masks(name):
    w = tensors()[name]
    n = w.numel()
    order, sel = prune.MagnitudeOrder(w), prune.MagnitudeSelection()
    for k in sorted(set(range(1, n + 1, max(1, n // 97))) | {1, n - 1, n} - {0}):
        a, b = order.mask(w, k), sel.mask(w, k)
        assert (a is None) == (b is None), (name, k)
        if a is not None:
            assert torch.equal(a, b), (name, k)


def test_the_first_prune_of_a_tensor_does_not_sort(monkeypatch):
    w = torch.randn(200, 300, generator=torch.Generator().manual_seed(11))
    sorts = []
    real = prune.MagnitudeOrder
    monkeypatch.setattr(prune, "MagnitudeOrder", lambda t: sorts.append(t.numel()) or real(t))
    first = prune.magnitude_mask(w, 0.9)
    assert sorts == []  # selected, not sorted
    assert torch.equal(first, prune.magnitude_mask(w, 0.9, cache=False))
    second = prune.magnitude_mask(w.clone(), 0.5)  # pruned again (a scan's next sparsity): sorted once, kept
    assert sorts == [w.numel()] and torch.equal(second, prune.magnitude_mask(w, 0.5, cache=False))
    prune.magnitude_mask(w, 0.7)
    assert sorts == [w.numel()]
