"""Dataset.from_tensors on tensors that hold fewer values than they show: refused in words, not by torch."""

import os

import pytest
import torch

import compress_engine as ce


def memory_bytes():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _rest():
    return torch.randint(0, 3, (4,)), torch.randn(4, 784), torch.randint(0, 3, (4,))


@pytest.mark.skipif(memory_bytes() is None, reason="the system does not say how much memory it has")
def test_an_expanded_view_bigger_than_memory_is_refused_naming_its_size_and_the_memory():
    n = memory_bytes() // (4 * 784) + 1  # one sample more than float32 rows of 784 values fit in memory
    x = torch.zeros(1, 784).expand(n, 784)
    y, xt, yt = _rest()
    with pytest.raises(ce.DatasetError, match=rf"train_x of shape \({n}, 784\) holds {n * 784:,} values, .* GB as the "
                                              r"engine keeps them \(an expanded view .*\), more than this machine's "
                                              r".* GB of memory"):
        ce.Dataset.from_tensors(x, torch.zeros(1, dtype=torch.long).expand(n), xt, yt)


def test_a_meta_tensor_is_refused_in_words():
    y, xt, yt = _rest()
    with pytest.raises(ce.DatasetError, match="train_x is on the meta device"):
        ce.Dataset.from_tensors(torch.empty(4, 784, device="meta"), y, xt, yt)


def test_a_small_expanded_view_is_kept_value_by_value():
    y, xt, yt = _rest()
    data = ce.Dataset.from_tensors(torch.arange(784.0)[None].expand(4, 784), y, xt, yt)
    assert data.x("train").is_contiguous() and torch.equal(data.x("train")[3], torch.arange(784.0))
