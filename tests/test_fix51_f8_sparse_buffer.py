"""A sparse buffer crashed check_model with torch's NotImplementedError (torch.isfinite, then torch.equal take no
sparse tensor) before the storability check could name it, and a non-persistent one, which no artifact stores, could
not be compressed at all. A sparse COO one that stays out of the state dict now compresses; a persistent one is named
with the fix; a CSR one, which torch cannot deepcopy (the engine copies every model), is named with the fix too."""

import pytest
import torch

import compress_engine as ce
from compress_engine.core.errors import ModelError
from small_nets import Plain, RECIPE, data

@pytest.mark.parametrize("layout", ["coo", "csr"])
@pytest.mark.parametrize("persistent", [True, False])
def test_sparse_buffer(layout, persistent):
    model = Plain()
    adj = torch.eye(4).to_sparse() if layout == "coo" else torch.eye(4).to_sparse_csr()
    model.register_buffer("adj", adj, persistent=persistent)
    if persistent or layout == "csr":  # stored, or not copyable by torch: named, with the fix
        with pytest.raises(ModelError, match=r"buffer 'adj' is (torch\.float32 \()?torch\.sparse_.*t\.to_dense\(\)"):
            ce.check_recipe(model, RECIPE, data())
    else:  # not stored: nothing to refuse
        result = ce.compress(model, RECIPE, data())
        assert "adj" not in ce.decode(result.artifact)
