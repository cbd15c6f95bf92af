"""Export's "Check an artifact" scored models that cannot fit the server's data: a 1-output model showed "Test
accuracy 19.47 %" (every answer class 0, below chance, no warning), and a 20-feature one said "Could not decode this
file as an artifact (RuntimeError: mat1 and mat2 shapes cannot be multiplied ...)", which is false: it decodes, its
inputs do not fit. Both now say they are valid artifacts of their architecture that cannot be scored on this
server's data (its shape and classes), and how to check them on the command line with the data they were made for."""

import pytest
import torch
from test_app import app

import compress_engine as ce
from compress_engine.core.model import MLP


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESS_STORE", str(tmp_path / "runs.sqlite"))


def artifact(sizes, x_shape, y):
    torch.manual_seed(0)
    x = torch.rand(64, *x_shape)
    data = ce.Dataset.from_tensors(x, y, x, y)
    return ce.compress(MLP(sizes), ce.Recipe(sparsity=0.5), data, evaluate=False).artifact


def check(art):
    at = app().run().switch_page("pages/export.py").run()
    return at.file_uploader(key="artifact_upload").upload("theirs.cpg", art).run()


@pytest.mark.parametrize("sizes, x_shape, y, arch", [
    ([20, 32, 3], (20,), torch.arange(64) % 3, "MLP 20-32-3"),  # tabular inputs
    ([784, 32, 1], (1, 28, 28), torch.rand(64), "MLP 784-32-1"),  # one output: a regression model
])
def test_an_artifact_that_does_not_fit_the_data_is_valid_but_not_scored(tiny, store, sizes, x_shape, y, arch):
    at = check(artifact(sizes, x_shape, y))
    assert not at.exception
    assert not any(m.label == "Test accuracy" for m in at.tabs[1].metric)
    said = " ".join(e.value for e in at.error).replace("\\", "")  # as the Markdown reads
    assert f"valid artifact of **{arch}**" in said and "cannot be scored on this server's data" in said
    assert "inputs 1×28×28, 10 classes" in said and "python -m compress_engine eval FILE.cpg --data " in said
    assert "Could not decode" not in said and "not a valid artifact" not in said


def test_an_artifact_that_fits_is_still_scored(tiny, store, fmnist):
    art = artifact([784, 16, 10], (1, 28, 28), torch.arange(64) % 10)
    at = check(art)
    assert not at.exception and not at.error
    assert any(m.label == "Test accuracy" for m in at.tabs[1].metric)


def test_the_engine_refuses_to_score_a_model_the_data_do_not_fit():
    """The check lives in the engine's scoring (zoo.score_decoded), which Export's check and the command line's eval
    both reach: a Python caller of evaluate_artifact gets the same refusal, not a score or torch's error."""
    from compress_engine.playground import zoo
    x = torch.rand(64, 1, 28, 28)
    data = ce.Dataset.from_tensors(x, torch.arange(64) % 10, x, torch.arange(64) % 10)
    with pytest.raises(zoo.DoesNotFitData, match="its model"):
        ce.evaluate_artifact(artifact([20, 32, 3], (20,), torch.arange(64) % 3), data)
