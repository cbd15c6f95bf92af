import gzip
import struct

import numpy as np
import pytest

from compress_engine import DatasetError, load_dataset
from compress_engine.data import FILES, read_idx


def write_idx(path, arr, gz=True, magic=None):
    arr = np.asarray(arr, np.uint8)
    head = struct.pack(">I", magic if magic is not None else 0x0800 | arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    raw = head + arr.tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)
    return path


def make_folder(tmp_path, n_train=50, n_test=20, gz=True, classes=3):
    rng = np.random.default_rng(0)
    write_idx(tmp_path / FILES["train_x"], rng.integers(0, 256, (n_train, 28, 28)), gz)
    write_idx(tmp_path / FILES["train_y"], rng.integers(0, classes, n_train), gz)
    write_idx(tmp_path / FILES["test_x"], rng.integers(0, 256, (n_test, 28, 28)), gz)
    write_idx(tmp_path / FILES["test_y"], rng.integers(0, classes, n_test), gz)
    return tmp_path


@pytest.mark.parametrize("gz", [True, False])
def test_any_idx_folder_loads(tmp_path, gz):
    ds = load_dataset(f"idx:{make_folder(tmp_path, gz=gz)}")
    assert ds.train_x.shape == (50, 28, 28) and ds.test_y.shape == (20,)
    assert ds.x("test").shape == (20, 1, 28, 28) and float(ds.x("test").max()) <= 1.0
    assert len(ds.classes) == 3


def test_env_folder_is_searched_first(tmp_path, monkeypatch):
    load_dataset.cache_clear()
    monkeypatch.setenv("COMPRESS_DATA_DIR", str(make_folder(tmp_path, n_train=30)))
    try:
        assert len(load_dataset("fashion-mnist").train_y) == 30
    finally:
        load_dataset.cache_clear()


def test_missing_dataset_names_paths_and_fix(tmp_path, monkeypatch):
    load_dataset.cache_clear()
    monkeypatch.setattr("compress_engine.data.search_dirs", lambda: [tmp_path / "nowhere"])
    with pytest.raises(DatasetError) as e:
        load_dataset("fashion-mnist")
    assert "nowhere" in str(e.value) and "apt-get install dataset-fashion-mnist" in str(e.value)
    load_dataset.cache_clear()


def test_missing_file_in_folder(tmp_path):
    make_folder(tmp_path)
    (tmp_path / (FILES["test_y"] + ".gz")).unlink()
    with pytest.raises(DatasetError, match="t10k-labels"):
        load_dataset(f"idx:{tmp_path}")


def test_truncated_file(tmp_path):
    make_folder(tmp_path, gz=False)
    p = tmp_path / FILES["train_x"]
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(DatasetError, match="truncated"):
        read_idx(p)


def test_corrupt_gzip_and_bad_magic(tmp_path):
    p = tmp_path / "x.gz"
    p.write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    with pytest.raises(DatasetError, match="cannot read"):
        read_idx(p)
    q = write_idx(tmp_path / "y", np.zeros((2, 2)), gz=False, magic=0x0D03)
    with pytest.raises(DatasetError, match="magic"):
        read_idx(q)


def test_label_count_mismatch(tmp_path):
    make_folder(tmp_path)
    write_idx(tmp_path / FILES["test_y"], np.zeros(7))
    with pytest.raises(DatasetError, match="do not match"):
        load_dataset(f"idx:{tmp_path}")


@pytest.mark.parametrize("name", ["", "mnist", "idx:/no/such/folder", None, 3])
def test_bad_names(name):
    with pytest.raises(DatasetError):
        load_dataset(name)


def test_full_fashion_mnist(fmnist):
    assert fmnist.train_x.shape == (60000, 28, 28) and fmnist.test_x.shape == (10000, 28, 28)
    assert fmnist.classes[0] == "T-shirt/top" and len(fmnist.classes) == 10
    # balanced classes: 6,000 / 1,000 images each
    assert fmnist.train_y.bincount().tolist() == [6000] * 10
    assert fmnist.test_y.bincount().tolist() == [1000] * 10
