"""A complex parameter was told 'call model.float() first', which leaves it complex64 (Module.float skips complex
tensors). The advice is now to store it as torch.view_as_real pairs: the test runs the statement given and compresses."""

import pytest
import torch
from torch import nn

import compress_engine as ce
from compress_engine.core.errors import ModelError
from small_nets import Plain, RECIPE, data

def test_a_complex_parameter_gets_advice_that_works():
    class Complex(Plain):
        def __init__(self):
            super().__init__()
            self.cw = nn.Parameter(torch.tensor([1 + 2j, 3 - 1j], dtype=torch.complex64))

        def forward(self, x):
            return super().forward(x) + torch.view_as_complex(self.cw).real.sum() * 0 if not self.cw.is_complex() \
                else super().forward(x)

    model = Complex()
    with pytest.raises(ModelError, match="complex64") as e:
        ce.check_recipe(model, RECIPE, data())
    message = str(e.value)
    assert "model.float()" not in message  # leaves a complex tensor complex
    statement = message.split("pairs, ")[1].split(", and use")[0]
    exec(statement, {"model": model, "nn": nn, "torch": torch})
    assert model.cw.dtype == torch.float32 and model.cw.shape == (2, 2)
    ce.compress(model, RECIPE, data())
