"""Labels given as a column (N, 1), as pandas' df[["label"]].values makes them: the messages say y.reshape(-1),
never y.argmax(1) (which makes every label 0)."""

import pytest
import torch

import compress_engine as ce


def _xy(n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=g), torch.randint(0, 3, (n, 1), generator=g)


def test_a_column_of_labels_in_one_split_says_reshape_not_argmax():
    (x, y), (xt, yt) = _xy(30, 0), _xy(10, 1)
    with pytest.raises(ce.DatasetError, match=r"same label shape \(if they hold one label per sample in a column") as e:
        ce.Dataset.from_tensors(x, y, xt, yt[:, 0])
    assert "y.reshape(-1)" in str(e.value) and "argmax" not in str(e.value)


def test_columns_of_labels_in_both_splits_warn_to_reshape():
    (x, y), (xt, yt) = _xy(30, 0), _xy(10, 1)
    with pytest.warns(UserWarning, match=r"read as a label per position, for a model that returns \(N, C, 1\) logits; "
                                         r"if they hold one label per sample in a column.*y\.reshape\(-1\)"):
        ce.Dataset.from_tensors(x, y, xt, yt)
    with pytest.warns(UserWarning, match=r"\(N, C, 1, 1\) logits"):
        ce.Dataset.from_tensors(x, y[:, :, None].numpy(), xt, yt[:, :, None].numpy())


def test_a_model_refused_for_a_column_of_labels_is_told_to_reshape_them():
    (x, y), (xt, yt) = _xy(30, 0), _xy(10, 1)
    with pytest.warns(UserWarning):
        data = ce.Dataset.from_tensors(x, y, xt, yt)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    with pytest.raises(ce.ModelError, match=r"must return \(N, 3, 1\) logits.*y\.reshape\(-1\)") as e:
        ce.compress(model, ce.Recipe(sparsity=0.5), data)
    assert "argmax" not in str(e.value)
