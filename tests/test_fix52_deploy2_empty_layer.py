"""A model with a zero-size layer (nn.Linear(144, 0)) passed check_recipe with bits=8, then compress() refused it
("w must be a non-empty tensor"): quantization now carries an empty weight as it is (nothing to quantize), as pruning
and clustering do, so check_recipe's promise (compress refuses nothing it passes) holds. Checked against decode:
the artifact gives back the compressed model's weights exactly, and the int8 file gives back decode's."""

import warnings

import pytest
import torch
from torch import nn

import compress_engine as ce
from small_nets import images_12


class WithEmpty(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(144, 10)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch: initializing zero-element tensors is a no-op
            self.empty = nn.Linear(144, 0)

    def forward(self, x):
        x = x.flatten(1)
        return self.fc(x) + self.empty(x).sum()


@pytest.fixture(scope="module")
def data():
    return images_12()


@pytest.mark.parametrize("recipe", [dict(bits=8), dict(bits=8, per_channel=True), dict(bits=4, sparsity=0.5),
                                    dict(bits=8, calibration="mse")])
def test_an_empty_layer_is_carried_through_quantization(data, recipe):
    torch.manual_seed(0)
    model = WithEmpty()
    r = ce.Recipe(**recipe)
    assert ce.check_recipe(model, r, data) is None  # passes check_recipe ...
    result = ce.compress(model, r, data)  # ... so compress takes it
    state = ce.decode(result.artifact)
    assert state["empty.weight"].shape == (0, 144) and state["empty.bias"].shape == (0,)
    own = result.model.state_dict()
    for name, t in state.items():  # decode gives back the compressed model's weights exactly
        assert torch.equal(t, own[name]), name
    levels = 2 ** recipe["bits"]
    per_row = [row.unique().numel() for row in state["fc.weight"]]
    assert max(per_row) <= levels and state["fc.weight"].unique().numel() > 1  # the other layer was quantized
    back = ce.read_int8(ce.int8_safetensors(result.artifact))
    assert list(back) == list(state) and all(torch.equal(back[k], state[k]) for k in state)
