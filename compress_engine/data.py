"""Datasets: full Fashion-MNIST (or any MNIST-format IDX folder) as tensors.

The IDX format is four big-endian u32s of header (magic, then one size per dimension) followed by
raw uint8 pixels or labels. We read it with numpy (gzip or plain), check every size against the
bytes actually there, and fail with a message that names the file and the fix.
"""

import gzip
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .errors import DatasetError

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
INSTALL_HINT = ("install it with `sudo apt-get install dataset-fashion-mnist` (Debian), or point "
                "COMPRESS_DATA_DIR at a folder holding train-images-idx3-ubyte.gz, "
                "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz")
FILES = {"train_x": "train-images-idx3-ubyte", "train_y": "train-labels-idx1-ubyte",
         "test_x": "t10k-images-idx3-ubyte", "test_y": "t10k-labels-idx1-ubyte"}
MAX_BYTES = 200_000_000  # an IDX file bigger than this is not an MNIST-like dataset


def search_dirs():
    """Where Fashion-MNIST is looked for, in order."""
    home = Path.home()
    dirs = [os.environ.get("COMPRESS_DATA_DIR"),
            "/usr/share/datasets/fashion-mnist",
            home / ".keras/datasets/fashion-mnist",
            home / ".cache/torchvision/FashionMNIST/raw",
            home / "data/FashionMNIST/raw",
            Path("data/FashionMNIST/raw")]
    return [Path(d) for d in dirs if d]


@dataclass(frozen=True, eq=False)
class Dataset:
    """Train/test images (uint8, N×28×28) and labels (int64), plus class names.

    `x(split)` gives the float32 N×1×H×W tensor in [0, 1] that the models take; it is computed
    once per split and kept, because every evaluation needs it.
    """
    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple
    source: str = ""
    _float: dict = field(default_factory=dict, repr=False)

    def x(self, split="test"):
        if split not in self._float:
            u8 = self.train_x if split == "train" else self.test_x
            self._float[split] = (u8.float() / 255.0).unsqueeze(1).contiguous()
        return self._float[split]

    def y(self, split="test"):
        return self.train_y if split == "train" else self.test_y


def read_idx(path):
    """Read one IDX file (gzip or plain) into a numpy uint8 array, checking its header."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise DatasetError(f"{path} is {path.stat().st_size:,} bytes: too big for an IDX image/label file")
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            with gzip.open(path, "rb") as f:
                raw = f.read(MAX_BYTES + 1)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DatasetError(f"cannot read {path}: {e}. Re-download or reinstall the data; {INSTALL_HINT}") from None
    if len(raw) < 8 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or not 1 <= raw[3] <= 4:
        raise DatasetError(f"{path} is not an unsigned-byte IDX file (bad magic number {raw[:4].hex()}); {INSTALL_HINT}")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise DatasetError(f"{path} is truncated inside its header; {INSTALL_HINT}")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    n = int(np.prod(shape, dtype=np.int64))
    body = len(raw) - 4 - 4 * ndim
    if body != n:
        raise DatasetError(f"{path} header says {shape} = {n:,} bytes of data but the file holds {body:,}: "
                           f"the file is truncated or corrupt; {INSTALL_HINT}")
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def find_file(folder, stem):
    """The IDX file for `stem` in `folder`: .gz or plain, with '-idx' or '.idx' spelling."""
    for name in (stem, stem.replace("-idx", ".idx")):
        for suffix in (".gz", ""):
            p = Path(folder) / (name + suffix)
            if p.is_file():
                return p
    return None


def read_folder(folder, name, classes=None):
    """Load the four IDX files of an MNIST-format folder into a Dataset, checking they agree."""
    folder = Path(folder)
    paths = {k: find_file(folder, stem) for k, stem in FILES.items()}
    missing = [FILES[k] + ".gz" for k, p in paths.items() if p is None]
    if missing:
        raise DatasetError(f"{folder} lacks {', '.join(missing)}; {INSTALL_HINT}")
    arr = {k: read_idx(p) for k, p in paths.items()}
    for split in ("train", "test"):
        x, y = arr[f"{split}_x"], arr[f"{split}_y"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y) or len(x) == 0:
            raise DatasetError(f"{folder}: {split} images {x.shape} and labels {y.shape} do not match "
                               f"(need N×H×W images and N labels); {INSTALL_HINT}")
    if arr["train_x"].shape[1:] != arr["test_x"].shape[1:]:
        raise DatasetError(f"{folder}: train images are {arr['train_x'].shape[1:]} but test images are "
                           f"{arr['test_x'].shape[1:]}")
    n_classes = int(max(arr["train_y"].max(), arr["test_y"].max())) + 1
    if classes is None or len(classes) < n_classes:
        classes = tuple(str(i) for i in range(n_classes))
    t = {k: torch.from_numpy(v.copy()) for k, v in arr.items()}
    return Dataset(name, t["train_x"], t["train_y"].long(), t["test_x"], t["test_y"].long(),
                   tuple(classes), source=str(folder))


@lru_cache(maxsize=4)
def load_dataset(name="fashion-mnist"):
    """Load "fashion-mnist" (searched in `search_dirs()`) or "idx:/path/to/folder" (any MNIST-format folder)."""
    if not isinstance(name, str) or not name:
        raise DatasetError(f"dataset must be 'fashion-mnist' or 'idx:/path/to/folder', got {name!r}")
    if name.startswith("idx:"):
        folder = Path(name[4:]).expanduser()
        if not folder.is_dir():
            raise DatasetError(f"dataset folder {folder} does not exist; give 'idx:' a folder with the four "
                               f"MNIST-format IDX files")
        return read_folder(folder, name)
    if name != "fashion-mnist":
        raise DatasetError(f"unknown dataset {name!r}: use 'fashion-mnist' or 'idx:/path/to/folder'")
    tried = search_dirs()
    for d in tried:
        if d.is_dir() and all(find_file(d, stem) for stem in FILES.values()):
            return read_folder(d, name, FASHION_CLASSES)
    raise DatasetError(f"Fashion-MNIST not found (looked in {', '.join(map(str, tried))}); {INSTALL_HINT}")
