"""Data the dashboard's models cannot take gave, on every page, an error naming no model and no way on: "inputs are
1x16x16; the model takes 1x28x28", and for regression targets "give integer class labels" (the wrong fix). The error
now says the dashboard's models take 1x28x28 images in at most 10 classes, and how to compress a model made for the
data on the command line, with this data."""

import numpy as np
import pytest
from test_app import app


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESS_STORE", str(tmp_path / "runs.sqlite"))


def npz(path, x_shape, y):
    rng = np.random.default_rng(0)
    np.savez(path, train_x=rng.random((40, *x_shape), dtype=np.float32), train_y=y(40),
             test_x=rng.random((20, *x_shape), dtype=np.float32), test_y=y(20))
    return f"npz:{path}"


@pytest.mark.parametrize("x_shape, y, why", [
    ((1, 16, 16), lambda n: np.arange(n) % 3, "inputs are 1×16×16"),
    ((1, 28, 28), lambda n: np.linspace(0, 1, n, dtype=np.float32), "regression targets"),
])
@pytest.mark.parametrize("page", ["pruning", "export"])
def test_data_the_models_cannot_take_says_where_it_can_be_used(tmp_path, monkeypatch, store, x_shape, y, why, page):
    from pages import common
    data = npz(tmp_path / "mine.npz", x_shape, y)
    monkeypatch.setattr(common, "DATASET", data)
    at = app().run().switch_page(f"pages/{page}.py").run()
    assert not at.exception
    said = at.error[0].value.replace("\\", "")  # as the Markdown reads
    assert why in said
    assert "The dashboard's models (its sample models and uploaded weights) take 1×28×28 images in at most 10 " \
           "classes" in said
    assert f"`compression-playground run --model file.py:fn --data {data}`" in said
    assert "give integer class labels\n" not in said and not said.endswith("give integer class labels")
