"""ce.logits and ce.predictions on inputs as a caller has them: converted as a Dataset converts them, or refused in
words; no inputs give the model's own output shape."""

import numpy as np
import pytest
import torch
from torch import nn

import compress_engine as ce


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))


def _cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))


X = torch.rand(5, 1, 6, 6, generator=torch.Generator().manual_seed(1))


def test_float64_and_numpy_inputs_give_what_float32_gives():
    model = _cnn()
    ref = ce.logits(model, X)
    assert torch.equal(ce.logits(model, X.double()), ref)
    assert torch.equal(ce.logits(model, X.numpy()), ref)
    assert torch.equal(ce.predictions(model, X.double().numpy()), ref.argmax(1))


def test_integer_images_and_a_single_image_are_refused_with_the_fix():
    model = _cnn()
    with pytest.raises(ce.ModelError, match=r"inputs of shape \(5, 1, 6, 6\).*x\.float\(\) / 255"):
        ce.predictions(model, (X * 255).to(torch.uint8))
    with pytest.raises(ce.ModelError, match=r"inputs of shape \(1, 6, 6\).*for one sample x, give x\[None\]"):
        ce.predictions(model, X[0])
    with pytest.raises(ce.DatasetError, match="x is a list"):
        ce.logits(model, X.tolist())


def test_no_inputs_give_the_models_output_width_and_dtype():
    model = _mlp()
    empty = ce.logits(model, torch.zeros(0, 12))
    assert empty.shape == (0, 3) and empty.dtype == torch.float32
    pred = ce.predictions(model, np.zeros((0, 12)))
    assert pred.shape == (0,) and pred.dtype == torch.int64


class _ViewNet(nn.Module):
    """Reshapes by x.size(0), as many hand-written models do: a forward of zero rows fails in it."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(12, 3)

    def forward(self, x):
        return self.fc(x.view(x.size(0), -1))


def test_no_inputs_to_a_model_that_reshapes_by_the_batch_size():
    """A zero-row forward made view(x.size(0), -1) fail ('cannot reshape tensor of 0 elements'), and the error blamed
    the inputs' shape, which was right: no inputs give no rows of the output of one zero input."""
    empty = ce.logits(_ViewNet(), torch.zeros(0, 1, 3, 4))
    assert empty.shape == (0, 3) and empty.dtype == torch.float32
    assert ce.predictions(_ViewNet(), torch.zeros(0, 1, 3, 4)).shape == (0,)
