"""An .npz saved with Keras's names (x_train, y_train, x_test, y_test, as keras.datasets' mnist.npz and
fashion_mnist hold them) was refused ("lacks train_x, ..."), so a command-line user with Keras's file could not load
it. Both spellings are read as the same layout; a file holding one array under both names is refused, naming them."""

import json

import numpy as np
import pytest
import torch

from compress_engine.core.errors import DatasetError
from compress_engine.playground import cli
from compress_engine.playground.sources import load_dataset

KERAS = {"train_x": "x_train", "train_y": "y_train", "test_x": "x_test", "test_y": "y_test"}


def arrays(images):
    rng = np.random.default_rng(1)
    if images:  # uint8 N×H×W pixels, as Keras's mnist.npz
        x = {s: rng.integers(0, 256, (n, 5, 4), dtype=np.uint8) for s, n in (("train", 24), ("test", 8))}
    else:
        x = {s: rng.standard_normal((n, 7)).astype(np.float32) for s, n in (("train", 24), ("test", 8))}
    return {"train_x": x["train"], "train_y": (np.arange(24) % 3).astype(np.uint8),
            "test_x": x["test"], "test_y": (np.arange(8) % 3).astype(np.uint8)}


@pytest.mark.parametrize("images", [True, False])
def test_keras_names_load_as_the_readme_names(tmp_path, images):
    a = arrays(images)
    np.savez(tmp_path / "readme.npz", **a)
    np.savez(tmp_path / "keras.npz", **{KERAS[k]: v for k, v in a.items()})
    mixed = {("train_x" if k == "train_x" else KERAS[k]): v for k, v in a.items()}  # each array named once
    np.savez(tmp_path / "mixed.npz", **mixed)
    ref = load_dataset(f"npz:{tmp_path / 'readme.npz'}")
    for other in ("keras", "mixed"):
        ds = load_dataset(f"npz:{tmp_path / (other + '.npz')}")
        assert ds.classes == ref.classes and ds.input_shape == ref.input_shape
        for split in ("train", "test"):
            assert ds.x(split).dtype == ref.x(split).dtype
            assert torch.equal(ds.x(split), ref.x(split)) and torch.equal(ds.y(split), ref.y(split))
            # independent reference: the arrays as saved (pixels / 255 with a channel axis)
            x = a[f"{split}_x"]
            want = torch.from_numpy(x.astype(np.float32) / np.float32(255)).unsqueeze(1) if images else torch.from_numpy(x)
            assert torch.equal(ds.x(split), want)
            assert ds.y(split).tolist() == a[f"{split}_y"].tolist()


def test_both_spellings_of_an_array_are_refused_naming_them(tmp_path):
    a = arrays(False)
    np.savez(tmp_path / "both.npz", **a, x_train=a["train_x"] * 2)
    with pytest.raises(DatasetError) as e:
        load_dataset(f"npz:{tmp_path / 'both.npz'}")
    assert "train_x and x_train" in str(e.value) and "both spellings" in str(e.value)
    assert "y_train" not in str(e.value)  # only the clashing pair is named


def test_a_missing_array_names_both_spellings(tmp_path):
    a = arrays(False)
    np.savez(tmp_path / "short.npz", **{KERAS[k]: v for k, v in a.items() if k != "test_y"})
    with pytest.raises(DatasetError, match=r"lacks test_y \(or y_test\)"):
        load_dataset(f"npz:{tmp_path / 'short.npz'}")


def test_the_command_line_inspects_a_keras_npz(tmp_path, capsys):
    a = arrays(False)
    np.savez(tmp_path / "keras.npz", **{KERAS[k]: v for k, v in a.items()})
    (tmp_path / "net.py").write_text("import torch.nn as nn\ndef make():\n    return nn.Sequential(nn.Linear(7, 3))\n")
    code = cli.main(["inspect", "--model", f"{tmp_path / 'net.py'}:make", "--data", f"npz:{tmp_path / 'keras.npz'}"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)
