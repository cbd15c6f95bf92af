"""sources.py on data the user cannot read, and IDX folders' shape refusals."""

import errno
import os
import pathlib
import re

import numpy as np
import pytest

from compress_engine import DatasetError, load_dataset
from compress_engine.playground import sources
from test_sources import make_folder as _make, write_idx


def make_folder(folder, **kw):
    folder.mkdir()
    return _make(folder, **kw)

DENIED = "permission denied: change its permissions (chmod) or run as a user that can read it"


def _denied(path):
    return PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))


@pytest.fixture(autouse=True)
def _fresh_loads():
    load_dataset.cache_clear()
    yield
    load_dataset.cache_clear()


def test_a_folder_that_may_not_be_searched_is_named_with_the_fix(tmp_path, monkeypatch):
    folder = make_folder(tmp_path / "locked")
    is_file = pathlib.Path.is_file

    def locked(self):  # what stat() inside a folder of mode 0600 gives a user who is not root
        if self.parent == folder:
            raise _denied(self)
        return is_file(self)
    monkeypatch.setattr(pathlib.Path, "is_file", locked)
    with pytest.raises(DatasetError, match=re.escape(f"cannot read {folder}: {DENIED}")):
        load_dataset(f"idx:{folder}")


def test_a_file_that_may_not_be_read_is_named_with_the_fix_not_copy_again(tmp_path, monkeypatch):
    folder = make_folder(tmp_path / "f", gz=False)
    target = folder / sources.FILES["test_x"]
    read_bytes = pathlib.Path.read_bytes

    def locked(self):
        if self == target:
            raise _denied(self)
        return read_bytes(self)
    monkeypatch.setattr(pathlib.Path, "read_bytes", locked)
    with pytest.raises(DatasetError, match=re.escape(f"cannot read {target}: {DENIED}")) as e:
        load_dataset(f"idx:{folder}")
    assert "copy the file again" not in str(e.value)

    def no_open(path, *args, **kwargs):
        raise _denied(path)
    monkeypatch.setattr(sources, "open", no_open, raising=False)
    with pytest.raises(DatasetError, match=re.escape(f"cannot read {target}: {DENIED}")):
        sources.read_idx_head(target, 2, 3)


def test_first_test_images_of_an_odd_folder_say_the_prefix_and_the_hint_once(tmp_path, monkeypatch):
    from compress_engine import first_test_images
    make_folder(tmp_path / "d", n_test=20, classes=10)
    write_idx(tmp_path / "d" / sources.FILES["test_x"], np.zeros((20, 32, 32)))  # not 28×28: the full load says so
    monkeypatch.setenv("COMPRESS_DATA_DIR", str(tmp_path / "d"))
    with pytest.raises(DatasetError) as e:
        first_test_images("fashion-mnist", 12)
    msg = str(e.value)
    assert msg.startswith("COMPRESS_DATA_DIR: ") and msg.count("COMPRESS_DATA_DIR: ") == 1, msg
    # the fix said once: while the variable is set, installing the package changes nothing (the F5 hint)
    assert msg.count("unset COMPRESS_DATA_DIR") == 1 and msg.count("apt-get install") == 1 and "32×32" in msg, msg


def test_first_test_images_of_a_folder_with_one_test_image_are_what_load_dataset_holds(tmp_path, monkeypatch):
    from compress_engine import first_test_images
    make_folder(tmp_path / "one", n_test=1, classes=10)
    monkeypatch.setenv("COMPRESS_DATA_DIR", str(tmp_path / "one"))
    head = first_test_images("fashion-mnist", 12)
    full = load_dataset("fashion-mnist")
    assert np.array_equal(head["x"], full.x("test").numpy()) and head["y"].tolist() == full.y("test").tolist()


@pytest.mark.parametrize("files, words", [
    ({"train_x": np.zeros((50, 784))}, "train-images-idx3-ubyte.gz holds a 2-dimensional array (50, 784), not N×H×W"),
    ({"train_x": np.zeros((50, 3, 28, 28))}, "4-dimensional array (50, 3, 28, 28), not N×H×W images"),
    ({"train_y": np.zeros((50, 2))}, "train-labels-idx1-ubyte.gz holds a 2-dimensional array (50, 2), not N labels"),
    ({"test_x": np.zeros((0, 28, 28)), "test_y": np.zeros(0)}, "the test split is empty (0 images and labels)"),
    ({"test_y": np.zeros(7)}, "the test split has 20 images but 7 labels"),
])
def test_idx_folders_of_the_wrong_dimensions_or_an_empty_split_say_so(tmp_path, files, words):
    folder = make_folder(tmp_path / "d", n_train=50, n_test=20)
    for key, arr in files.items():
        write_idx(folder / sources.FILES[key], arr)
    with pytest.raises(DatasetError) as e:
        load_dataset(f"idx:{folder}")
    assert words in str(e.value) and "do not match" not in str(e.value), str(e.value)


def test_an_idx_file_over_200_mb_reads_as_an_npz_of_that_size_does(tmp_path):
    n = 200_000_001  # one byte over the limit IDX files once had; .npz arrays were allowed 2 GB
    path = tmp_path / "big-labels-idx1-ubyte.gz"
    with sources.gzip.open(path, "wb", compresslevel=1) as f:
        f.write(bytes([0, 0, 8, 1]) + n.to_bytes(4, "big"))
        chunk = bytes(10_000_000)
        for _ in range(n // len(chunk)):
            f.write(chunk)
        f.write(bytes(n % len(chunk)))
    assert len(sources.read_idx(path)) == n
