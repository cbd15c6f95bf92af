"""A data source is bounded by what it takes in memory once loaded, checked before it is read: a 1.9 MB gzip whose
header claims 2,500,000 28x28 images (1.96 GB of bytes, under MAX_DATA_BYTES) was unzipped and turned into 7.8 GB
of float32 (110 s, 11.4 GB RSS) though MAX_DATA_BYTES is "the most bytes one source brings into memory"."""

import gzip
import tracemalloc

import numpy as np
import pytest
from conftest import write_idx

import compress_engine as ce
from compress_engine.playground import sources
from compress_engine.playground.sources import FILES


def folder(tmp_path, n_train, gz_train=False):
    rng = np.random.default_rng(0)
    write_idx(tmp_path / FILES["train_x"], rng.integers(0, 256, (n_train, 28, 28)))
    write_idx(tmp_path / FILES["train_y"], rng.integers(0, 10, n_train))
    write_idx(tmp_path / FILES["test_x"], rng.integers(0, 256, (5, 28, 28)))
    write_idx(tmp_path / FILES["test_y"], rng.integers(0, 10, 5))
    if gz_train:
        p = tmp_path / FILES["train_x"]
        (tmp_path / (FILES["train_x"] + ".gz")).write_bytes(gzip.compress(p.read_bytes()))
        p.unlink()
    return f"idx:{tmp_path}"


@pytest.mark.parametrize("gz", [False, True])
def test_images_are_counted_as_the_float32_they_become(tmp_path, monkeypatch, gz):
    name = folder(tmp_path, 10, gz)
    monkeypatch.setattr(sources, "MAX_DATA_BYTES", 20_000)  # the 7,840 pixel bytes fit, their 31,360 float bytes not
    with pytest.raises(ce.DatasetError, match=r"\(10, 28, 28\) = 7,840 values, 31,360 bytes once loaded \(4 each\), "
                                              r"over the 20,000 bytes left of the 20,000"):
        ce.load_dataset(name)
    monkeypatch.setattr(sources, "MAX_DATA_BYTES", 50_000)  # the whole dataset: 31,360 + 80 + 15,680 + 40 bytes
    ds = ce.load_dataset(name)
    ce.load_dataset.cache_clear()
    assert ds.x("train").shape == (10, 1, 28, 28) and float(ds.x("train").max()) <= 1.0
    ce.load_dataset.cache_clear()
    monkeypatch.setattr(sources, "MAX_DATA_BYTES", 40_000)  # the test split no longer fits beside the training one
    with pytest.raises(ce.DatasetError, match=r"15,680 bytes once loaded \(4 each\), over the 8,560 bytes left"):
        ce.load_dataset(name)


def test_a_gzip_claiming_too_much_is_refused_before_it_is_unzipped(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "MAX_DATA_BYTES", 1_000_000)
    p = tmp_path / "bomb-idx3-ubyte.gz"
    with gzip.open(p, "wb") as f:  # 200,000 bytes unzipped (under the limit), 800,000 bytes as float32 (under it)
        f.write(bytes([0, 0, 8, 3]) + np.array([1000, 10, 20], ">u4").tobytes() + bytes(200_000))
    tracemalloc.start()
    try:
        with pytest.raises(ce.DatasetError, match="800,000 bytes once loaded"):
            sources.read_idx(p, 4, 500_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100_000
    assert sources.read_idx(p, 4).shape == (1000, 10, 20)
