"""An .npz of uint8 N×H×W images (as an IDX folder holds, as Keras's mnist.npz holds) loads as the IDX folder of the
same arrays does: float32 N×1×H×W in [0, 1]. A command-line user's npz of their MNIST-format subset was refused for
the model that took its IDX folder ("the data's inputs are integers ... make them floats before
Dataset.from_tensors", a Python call they never made)."""

import gzip
import struct

import numpy as np
import torch

from compress_engine.playground.sources import load_dataset


def idx(path, arr):
    head = struct.pack(">I", 0x0800 | arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(head + arr.tobytes())


def test_uint8_images_in_npz_load_as_the_idx_folder_of_them(tmp_path):
    rng = np.random.default_rng(0)
    a = {"train_x": rng.integers(0, 256, (30, 6, 5), dtype=np.uint8), "train_y": (np.arange(30) % 3).astype(np.uint8),
         "test_x": rng.integers(0, 256, (9, 6, 5), dtype=np.uint8), "test_y": (np.arange(9) % 3).astype(np.uint8)}
    np.savez(tmp_path / "d.npz", **a)
    folder = tmp_path / "idx"
    folder.mkdir()
    for key, stem in (("train_x", "train-images-idx3-ubyte"), ("train_y", "train-labels-idx1-ubyte"),
                      ("test_x", "t10k-images-idx3-ubyte"), ("test_y", "t10k-labels-idx1-ubyte")):
        idx(folder / f"{stem}.gz", a[key])
    from_npz, from_idx = load_dataset(f"npz:{tmp_path / 'd.npz'}"), load_dataset(f"idx:{folder}")
    assert from_npz.input_shape == from_idx.input_shape == (1, 6, 5)
    assert not from_npz.integer_inputs
    for split in ("train", "test"):
        x = from_npz.x(split)
        assert x.dtype == torch.float32
        assert torch.equal(x, from_idx.x(split))
        # independent reference: pixel / 255 with a channel axis
        ref = torch.from_numpy(a[f"{split}_x"].astype(np.float32) / np.float32(255)).unsqueeze(1)
        assert torch.equal(x, ref)
        assert torch.equal(from_npz.y(split), from_idx.y(split))
