"""A command-line user whose .npz held integer images (int64 N×1×H×W, say) for a model that takes no ids was told to
"make them floats before Dataset.from_tensors", a Python call they never made. Data loaded from an npz now says what
to change in the file (save the arrays, under the file's own names, as float32 or uint8 N×H×W pixels); a Python
caller's own tensors keep the from_tensors hint. Following the file hint makes the data load as the model takes it."""

import numpy as np
import pytest
import torch.nn as nn

from compress_engine.core.data import Dataset
from compress_engine.core.errors import ModelError
from compress_engine.core.model import check_model
from compress_engine.playground import cli
from compress_engine.playground.sources import load_dataset

NET = "import torch.nn as nn\ndef make():\n    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(24, 3))\n"


def make():
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(24, 3))


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(0)
    return {"train_x": rng.integers(0, 256, (20, 1, 6, 5)).astype(np.int64), "train_y": np.arange(20) % 3,
            "test_x": rng.integers(0, 256, (6, 1, 6, 5)).astype(np.int64), "test_y": np.arange(6) % 3}


def test_the_command_line_says_what_to_change_in_the_npz(tmp_path, arrays, capsys):
    np.savez(tmp_path / "ints.npz", **arrays)
    (tmp_path / "net.py").write_text(NET)
    code = cli.main(["run", "--model", f"{tmp_path / 'net.py'}:make", "--data", f"npz:{tmp_path / 'ints.npz'}",
                     "--sparsity", "0.5", "--finetune-epochs", "0"])
    err = capsys.readouterr().err
    assert code == 2
    assert "the data's inputs are integers" in err
    assert "from_tensors" not in err  # no Python call the user never made
    assert f"save train_x and test_x in {tmp_path / 'ints.npz'} as float32" in err
    assert "uint8 N×H×W" in err


def test_a_subset_of_npz_data_keeps_the_file_hint_in_the_files_own_names(tmp_path, arrays):
    np.savez(tmp_path / "ints.npz", **{k.split("_")[1] + "_" + k.split("_")[0]: v for k, v in arrays.items()})  # Keras's
    ds = load_dataset(f"npz:{tmp_path / 'ints.npz'}").subset(10, 4)
    with pytest.raises(ModelError) as e:
        check_model(make(), ds)
    assert f"save x_train and x_test in {tmp_path / 'ints.npz'}" in str(e.value)
    assert "from_tensors" not in str(e.value)


def test_python_tensors_keep_the_from_tensors_hint(arrays):
    ds = Dataset.from_tensors(arrays["train_x"], arrays["train_y"], arrays["test_x"], arrays["test_y"])
    with pytest.raises(ModelError, match="make them floats before Dataset.from_tensors, e.g. x.float"):
        check_model(make(), ds)


def test_following_the_file_hint_loads_data_the_model_takes(tmp_path, arrays):
    fixed = dict(arrays, train_x=arrays["train_x"].astype(np.float32) / 255,
                 test_x=arrays["test_x"].astype(np.float32) / 255)
    np.savez(tmp_path / "floats.npz", **fixed)
    check_model(make(), load_dataset(f"npz:{tmp_path / 'floats.npz'}"))  # no error
    pixels = dict(arrays, train_x=arrays["train_x"][:, 0].astype(np.uint8), test_x=arrays["test_x"][:, 0].astype(np.uint8))
    np.savez(tmp_path / "pixels.npz", **pixels)
    check_model(make(), load_dataset(f"npz:{tmp_path / 'pixels.npz'}"))
