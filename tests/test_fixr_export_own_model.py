"""Export's Check tab on a valid artifact of the user's own model (`run --model my_models.py:make_model`): it said
"This file is not a valid artifact" with Python-only advice; it now says the file is valid, that only the model's
code rebuilds it, and how to check it (`python -m compress_engine eval FILE --model file.py:callable`)."""

import pytest
import torch
from torch import nn
from test_app import app

import compress_engine as ce


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESS_STORE", str(tmp_path / "runs.sqlite"))


def test_check_tab_says_a_users_own_artifact_is_valid_and_how_to_check_it(fmnist, store):
    torch.manual_seed(0)
    mine = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU(), nn.Linear(16, 10))
    art = ce.compress(mine, ce.Recipe(sparsity=0.5), fmnist.subset(256, 200, "few"), evaluate=False).artifact
    at = app().run().switch_page("pages/export.py").run()
    at = at.file_uploader(key="artifact_upload").upload("mine.cpg", art).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    said = " ".join(w.value for w in at.warning)
    assert "valid artifact of a **Sequential** model of your own code" in said
    assert "`python -m compress_engine eval FILE.cpg --model file.py:callable --data fashion-mnist`" in said
    assert "not a valid artifact" not in said


def test_a_damaged_artifact_is_still_not_valid(fmnist, store):
    torch.manual_seed(0)
    mine = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU(), nn.Linear(16, 10))
    art = bytearray(ce.compress(mine, ce.Recipe(sparsity=0.5), fmnist.subset(256, 200, "few"), evaluate=False).artifact)
    art[len(art) // 2] ^= 0xFF
    at = app().run().switch_page("pages/export.py").run()
    at = at.file_uploader(key="artifact_upload").upload("mine.cpg", bytes(art)).run()
    assert not at.exception and not at.warning
    assert any("This file is not a valid artifact" in e.value for e in at.error)
