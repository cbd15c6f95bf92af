"""Dataset sources: where the playground's data comes from, each read into a core `Dataset`.

    load_dataset("fashion-mnist")          # searched in search_dirs(); COMPRESS_DATA_DIR, when set, only there
    load_dataset("idx:/folder")            # any MNIST-format IDX folder (any image size, any class count)
    load_dataset("digits")                 # scikit-learn's bundled 8×8 digits, a fixed seeded train/test split
    load_dataset("npz:/path/file.npz")     # arrays train_x, train_y, test_x, test_y (and optional classes),
                                           # or Keras's names x_train, y_train, x_test, y_test
                                           # (uint8 N×H×W train_x and test_x: pixels, read as an IDX folder's)
    load_dataset("images:/folder")         # train/<class>/*.png and test/<class>/*.png (PNG, JPEG, ...; Pillow)
    load_dataset("images:/folder?size=64") # the same, images of any sizes, each scaled and centre-cropped to 64×64
    load_dataset("images:/folder")         # or <class>/*.png with no train/ and test/: a fifth held out ('?test=0.2')
    load_dataset("csv:/file.csv")          # a table: numeric feature columns and a label column; a fifth held out

Images become float32 N×1×H×W in [0, 1] (N×3×H×W for colour image folders). Every file is untrusted:
the IDX format is four big-endian u32s of header (magic, then one size per dimension) followed by raw
uint8 pixels or labels; we read it with numpy (gzip or plain), check every size against the bytes
actually there, and fail with a message that names the file and the fix. An .npz is read without
pickles, after its headers are checked against its sizes the same way; an image folder's headers
(sizes, modes) are all read before any image is decoded.
"""

import dataclasses
import gzip
import hashlib
import itertools
import math
import operator
import os
import threading
import warnings
import zipfile
import zlib
from collections import Counter
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..core.errors import DatasetError
from .cards import DEFAULT_DATA, HEAD

# torch (1-2 s to import) and the Dataset built on it are imported by the functions that build one, so
# first_test_images() can hand a dashboard's first page its images without them.

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
FASHION_SHAPE = (28, 28)
INSTALL_COMMAND = "`sudo apt-get install dataset-fashion-mnist`"
INSTALL_HINT = (f"install it with {INSTALL_COMMAND} (Debian), or point "
                "COMPRESS_DATA_DIR at a folder holding train-images-idx3-ubyte.gz, "
                "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz")
# While COMPRESS_DATA_DIR is set it is the only place looked in, so installing the package mends nothing by itself
DATA_DIR_HINT = ("mend the files in COMPRESS_DATA_DIR's folder (the only place looked in while it is set), or unset "
                 f"COMPRESS_DATA_DIR to use the installed copy ({INSTALL_COMMAND})")
FILES = {"train_x": "train-images-idx3-ubyte", "train_y": "train-labels-idx1-ubyte",
         "test_x": "t10k-images-idx3-ubyte", "test_y": "t10k-labels-idx1-ubyte"}
MAX_DATA_BYTES = 2_000_000_000  # the most bytes one source brings into memory: an IDX file (on disk and unzipped), the
# arrays of an .npz (unzipped), a CSV file, an image folder's float32 pixels
MAX_NAME = 4096              # characters in a dataset name / path
USAGE = ("use 'fashion-mnist', 'digits', 'idx:/path/to/folder', 'npz:/path/to/file.npz', 'images:/path/to/folder' "
         "or 'csv:/path/to/file.csv'")
DIGITS_TEST_FRACTION, DIGITS_SEED = 0.2, 0


def search_dirs():
    """Where Fashion-MNIST is looked for, in order. COMPRESS_DATA_DIR, when set, is the only place."""
    env = os.environ.get("COMPRESS_DATA_DIR")
    if env:
        return [Path(env).expanduser()]
    home = Path.home()
    dirs = ["/usr/share/datasets/fashion-mnist",
            home / ".keras/datasets/fashion-mnist",
            home / ".cache/torchvision/FashionMNIST/raw",
            home / "data/FashionMNIST/raw",
            Path("data/FashionMNIST/raw")]
    return [Path(d) for d in dirs]


def denied(path):
    """The DatasetError for a file or folder this user may not read (a PermissionError): no copy mends that."""
    return DatasetError(f"cannot read {path}: permission denied: change its permissions (chmod) or run as a user "
                        f"that can read it")


# --- IDX folders (Fashion-MNIST and any MNIST-format folder) -----------------------------------------

def read_idx(path, item_bytes=1, limit=None):
    """Read one IDX file (gzip or plain) into a numpy uint8 array, checking its header against its bytes.

    Nothing is allocated from what the header claims: a file that says it holds 10^9 images is
    refused by comparing that claim with the bytes actually there (at most MAX_DATA_BYTES are read).
    `item_bytes` is what each value takes once loaded (4 for float32 pixels, 8 for int64 labels): a file whose
    values would take more than `limit` bytes so (MAX_DATA_BYTES by default) is refused from its header, before
    its data is read or unzipped. A gzip's array is writable (read into memory of its own), a plain file's not.
    """
    path, limit = Path(path), MAX_DATA_BYTES if limit is None else limit
    try:
        size = path.stat().st_size
        if size > MAX_DATA_BYTES:
            raise DatasetError(f"{path} is {size:,} bytes (limit {MAX_DATA_BYTES:,}): too big to load here")
        with open(path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as f:
            shape, start = _idx_header(path, f)
            n = math.prod(shape)  # Python ints: a crafted header cannot overflow into a matching size
            if not gz:
                _check_body(path, shape, size - start)
            elif n > MAX_DATA_BYTES:  # a gzip's claim: count what is there (in chunks, at most the limit's bytes)
                got = _count(f, MAX_DATA_BYTES + 1)
                if got > MAX_DATA_BYTES:
                    raise DatasetError(f"{path} unzips to more than {MAX_DATA_BYTES:,} bytes (limit "
                                       f"{MAX_DATA_BYTES:,}): too big to load here")
                _check_body(path, shape, got)
            if n * item_bytes > limit:
                raise DatasetError(f"{path}: its header says {shape} = {n:,} values, {n * item_bytes:,} bytes once "
                                   f"loaded ({item_bytes} each), over the {limit:,} bytes left of the "
                                   f"{MAX_DATA_BYTES:,} one dataset may take in memory: too big to load here")
            if gz:
                raw = bytearray(n + 1)  # one byte more: a longer gzip is seen
                got, view = 0, memoryview(raw)
                while got < len(raw) and (k := f.readinto(view[got:])):
                    got += k
                _check_body(path, shape, got, exact=False)
        if not gz:
            raw = path.read_bytes()
    except PermissionError:
        raise denied(path) from None
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise DatasetError(f"cannot read {path}: {e}: copy the file again") from None
    return np.frombuffer(raw, np.uint8, count=n, offset=0 if gz else start).reshape(shape)


def _idx_header(path, f):
    """(shape, header bytes) of the IDX file open as `f`, at its start; DatasetError for a bad magic number or a
    header cut short."""
    head = f.read(4)
    if len(head) < 4 or head[:3] != b"\0\0\x08" or not 1 <= head[3] <= 4:
        raise DatasetError(f"{path} is not an unsigned-byte IDX file (bad magic number {head[:4].hex() or 'none'}, "
                           f"need 000008 then 01-04): replace it with a good copy")
    dims = f.read(4 * head[3])
    if len(dims) < 4 * head[3]:
        raise DatasetError(f"{path} is truncated inside its header: replace it with a good copy")
    return tuple(int(d) for d in np.frombuffer(dims, ">u4")), 4 + len(dims)


def _count(f, most, chunk=1 << 24):
    """The bytes left in `f`, counted up to `most`, in chunks: none of them kept."""
    got = 0
    while got < most and (k := len(f.read(min(chunk, most - got)))):
        got += k
    return got


def _check_body(path, shape, body, exact=True):
    """DatasetError unless an IDX file's data holds the bytes its header's shape claims; `body` is its data's bytes
    (exact=False: counted up to one byte more than claimed, as a gzip's are read)."""
    n = math.prod(shape)
    if body != n:
        held = f"more than {n:,}" if body > n and not exact else f"{body:,}"
        raise DatasetError(f"{path} header says {shape} = {n:,} bytes of data but the file holds {held}: the file is "
                           f"{'truncated' if body < n else 'oversized'} or corrupt: replace it with a good copy")


def _candidates(folder, stem):
    return [Path(folder) / (name + suffix) for name in (stem, stem.replace("-idx", ".idx")) for suffix in (".gz", "")]


def find_file(folder, stem):
    """The IDX file for `stem` in `folder`: .gz or plain, with '-idx' or '.idx' spelling."""
    for p in _candidates(folder, stem):
        try:
            if p.is_file():
                return p
        except PermissionError:  # a folder this user may not search
            raise denied(folder) from None
    return None


def _not_a_file(folder, stem):
    """A candidate path for `stem` that exists but is no readable file (folder, broken link, link loop), or None."""
    for p in _candidates(folder, stem):
        if os.path.lexists(p) and not p.is_file():
            kind = ("a folder" if p.is_dir() else "a broken symlink or a symlink loop" if p.is_symlink()
                    else "not a regular file")
            return f"{p.name} is {kind}"
    return None


LOADED_BYTES = {"x": 4, "y": 8}  # bytes per value a loaded IDX folder holds: float32 pixels, int64 labels


def images_to_float(images):
    """uint8 N×H×W pixels -> float32 N×1×H×W in [0, 1] (one float copy, divided in place).

    Converted by torch, not numpy's astype: 0.08 s instead of 0.5-0.7 s for Fashion-MNIST's 60,000 training
    images on 2 cores, the same floats (x / 255 either way), and a dashboard's first page waits for it."""
    import torch
    with warnings.catch_warnings():  # a read-only array (a plain IDX file's bytes) is only read: no copy for torch
        warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        pixels = torch.from_numpy(np.asarray(images, np.uint8))
    return pixels.to(torch.float32).div_(255.0).unsqueeze(1)  # a new float tensor: the pixels are not changed


def read_folder(folder, name, classes=None, image_shape=None):
    """Load the four IDX files of an MNIST-format folder into a Dataset, checking they agree.

    With `classes`, labels must lie in 0..len(classes)-1; with `image_shape`, images must be that size.
    """
    folder = Path(folder)
    paths = {k: find_file(folder, stem) for k, stem in FILES.items()}
    missing = [FILES[k] + "(.gz)" for k, p in paths.items() if p is None]
    if missing:
        odd = [why for k, p in paths.items() if p is None for why in [_not_a_file(folder, FILES[k])] if why]
        raise DatasetError(f"{folder} lacks {', '.join(missing)}" + (f" ({'; '.join(odd)})" if odd else "")
                           + " (each gzipped or not)")
    arr, left = {}, MAX_DATA_BYTES  # what the dataset takes in memory: float32 pixels, int64 labels
    for k, p in paths.items():
        arr[k] = read_idx(p, LOADED_BYTES[k[-1]], left)
        left -= arr[k].size * LOADED_BYTES[k[-1]]
    for split in ("train", "test"):
        x, y = arr[f"{split}_x"], arr[f"{split}_y"]
        if x.ndim != 3:
            colour = "; colour images can be read as an 'images:' folder instead" if x.ndim == 4 else ""
            raise DatasetError(f"{paths[f'{split}_x']} holds a {x.ndim}-dimensional array {x.shape}, not N×H×W images: "
                               f"an IDX image file holds grayscale images in 3 dimensions (count, height, width); "
                               f"save them so, e.g. x.reshape(N, H, W){colour}")
        if y.ndim != 1:
            raise DatasetError(f"{paths[f'{split}_y']} holds a {y.ndim}-dimensional array {y.shape}, not N labels: an "
                               f"IDX label file holds one class index per image in 1 dimension; save them so, e.g. "
                               f"y.reshape(-1) for a column of labels")
        if len(x) != len(y):
            raise DatasetError(f"{folder}: the {split} split has {len(x):,} images but {len(y):,} labels: they must "
                               f"match, one label per image")
        if len(x) == 0:
            raise DatasetError(f"{folder}: the {split} split is empty (0 images and labels): each split needs at "
                               f"least one image")
        if image_shape is not None and x.shape[1:] != tuple(image_shape):
            raise DatasetError(f"{folder}: {split} images are {x.shape[1]}×{x.shape[2]} pixels; {name} images "
                               f"are {image_shape[0]}×{image_shape[1]}")
        top = int(y.max())
        if classes is not None and top >= len(classes):
            raise DatasetError(f"{paths[f'{split}_y']}: label {top} is out of range: labels must be classes "
                               f"0-{len(classes) - 1}")
    if arr["train_x"].shape[1:] != arr["test_x"].shape[1:]:
        (h, w), (th, tw) = arr["train_x"].shape[1:], arr["test_x"].shape[1:]
        raise DatasetError(f"{folder}: train images are {h}×{w} pixels but test images are {th}×{tw}: both "
                           f"splits must have the same size")
    from ..core.data import Dataset
    train_x, test_x = images_to_float(arr.pop("train_x")), images_to_float(arr.pop("test_x"))
    return Dataset.from_tensors(train_x, arr["train_y"].astype(np.int64), test_x, arr["test_y"].astype(np.int64),
                                classes=classes, name=name, source=str(folder))


def fashion_folder():
    """The folder Fashion-MNIST is read from, and the prefix its errors get: (folder, prefix)."""
    env = os.environ.get("COMPRESS_DATA_DIR")
    if env:  # set on purpose: use it or say what is wrong with it, never silently fall back elsewhere
        folder = Path(env).expanduser()
        if not folder.is_dir():
            raise DatasetError(f"COMPRESS_DATA_DIR={env!r:.300} is not a folder; point it at a folder holding "
                               f"the four Fashion-MNIST IDX files, or unset it to use the installed copy "
                               f"({INSTALL_COMMAND})")
        return folder, "COMPRESS_DATA_DIR: "
    tried = search_dirs()
    for d in tried:
        if d.is_dir() and all(find_file(d, stem) for stem in FILES.values()):
            return d, ""
    raise DatasetError(f"Fashion-MNIST not found (looked in {', '.join(map(str, tried))}); {INSTALL_HINT}")


def _fashion_mnist(name):
    folder, prefix = fashion_folder()
    try:
        return read_folder(folder, name, FASHION_CLASSES, FASHION_SHAPE)
    except DatasetError as e:
        raise DatasetError(f"{prefix}{e}; {DATA_DIR_HINT if prefix else INSTALL_HINT}") from None


def _folder_named(name, prefix, example, needs):
    """The folder a dataset name gives after its prefix ('idx:', 'images:'); DatasetError if there is none, saying
    what the folder `needs`."""
    if not name[len(prefix):].strip():
        raise DatasetError(f"'{prefix}' needs a folder after it, e.g. '{prefix}{example}', {needs}")
    folder = Path(name[len(prefix):]).expanduser()
    if not folder.is_dir():
        why = ("is a file, not a folder" if folder.exists() else
               "is a broken symlink or a symlink loop" if os.path.lexists(folder) else "does not exist")
        raise DatasetError(f"dataset folder {folder} {why}; give '{prefix}' a folder {needs}")
    return folder


def _idx_folder(name):
    return read_folder(_folder_named(name, "idx:", "/data/fashion-mnist", "holding the four MNIST-format IDX "
                                     f"files ({', '.join(v + '(.gz)' for v in FILES.values())})"), name)


# --- scikit-learn's 8×8 digits ------------------------------------------------------------------------

def read_digits(name="digits"):
    """scikit-learn's bundled 1,797 8×8 digits as N×1×8×8 in [0, 1], split per class: 20 % test, seed 0.

    The split is drawn here with numpy's seeded generator, so it is the same on every machine.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DatasetError("the 'digits' dataset ships with scikit-learn, which is not installed here: "
                           "`pip install scikit-learn`, "
                           f"or {USAGE}") from None
    import torch

    from ..core.data import Dataset
    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32)).div_(16.0).unsqueeze(1)  # pixel values are 0..16
    y = np.asarray(d.target, np.int64)
    rng = np.random.default_rng(DIGITS_SEED)
    test = np.zeros(len(y), bool)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        test[rng.permutation(idx)[:round(len(idx) * DIGITS_TEST_FRACTION)]] = True
    tr, te = torch.from_numpy(np.flatnonzero(~test)), torch.from_numpy(np.flatnonzero(test))
    return Dataset.from_tensors(x[tr], y[~test], x[te], y[test], classes=[str(c) for c in d.target_names],
                                name=name, source="scikit-learn load_digits (UCI optical digits, 8×8)")


# --- .npz files ---------------------------------------------------------------------------------------

NPZ_ARRAYS = ("train_x", "train_y", "test_x", "test_y")
# Keras's spelling of the same four arrays (keras.datasets' mnist.npz, fashion_mnist): read as the same layout
KERAS_NAMES = {"train_x": "x_train", "train_y": "y_train", "test_x": "x_test", "test_y": "y_test"}
NPZ_HINT = ("save one with np.savez(path, train_x=..., train_y=..., test_x=..., test_y=..., classes=[...]) "
            "(classes optional; Keras's names x_train, y_train, x_test, y_test are read as the same arrays)")


def _npz_keys(path, names):
    """{array: its name in the file} for the four arrays (README's spelling or Keras's) and the optional classes;
    DatasetError naming the arrays that are missing, or stored under both spellings (which one is meant?)."""
    both = [f"{k} and {KERAS_NAMES[k]}" for k in NPZ_ARRAYS if k + ".npy" in names and KERAS_NAMES[k] + ".npy" in names]
    if both:
        raise DatasetError(f"{path} holds {'; '.join(both)}: the same array under both spellings (README's train_x "
                           "..., Keras's x_train ...), so which one to read is unclear; keep one of each pair")
    keys = {k: k if k + ".npy" in names else KERAS_NAMES[k] for k in NPZ_ARRAYS}
    missing = [f"{k} (or {KERAS_NAMES[k]})" for k in NPZ_ARRAYS if keys[k] + ".npy" not in names]
    if missing:
        raise DatasetError(f"{path} lacks {', '.join(missing)} (it holds {', '.join(sorted(names))[:300] or 'nothing'}); "
                           f"{NPZ_HINT}")
    if "classes.npy" in names:
        keys["classes"] = "classes"
    return keys


def _npz_headers(path, zf):
    """Check each array's .npy header against its stored size, before numpy allocates anything from it; returns
    {array: its name in the file} (_npz_keys)."""
    keys = _npz_keys(path, set(zf.namelist()))
    total = sum(zf.getinfo(k + ".npy").file_size for k in keys.values())
    if total > MAX_DATA_BYTES:
        raise DatasetError(f"{path} unzips to {total:,} bytes (limit {MAX_DATA_BYTES:,}): too big to load here")
    for k in keys.values():
        info = zf.getinfo(k + ".npy")
        with zf.open(info) as f:
            try:
                version = np.lib.format.read_magic(f)
                shape, _, dtype = (np.lib.format.read_array_header_1_0(f) if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0(f))
            except ValueError as e:
                raise DatasetError(f"{path}: {k} is not a valid .npy array ({e}); {NPZ_HINT}") from None
            if dtype.hasobject:
                raise DatasetError(f"{path}: {k} holds Python objects (dtype {dtype}), which would need pickle "
                                   f"to read and are refused; store numbers (and class names as strings)")
            need = math.prod(shape) * dtype.itemsize
            have = info.file_size - f.tell()
        if need != have:
            raise DatasetError(f"{path}: {k} header says {shape} of {dtype} = {need:,} bytes but {have:,} are "
                               f"stored: the file is truncated or corrupt")
    return keys


def read_npz(path, name):
    """Load train_x, train_y, test_x, test_y (or Keras's x_train, y_train, x_test, y_test; and optional classes) from
    an .npz, without pickles."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            keys = _npz_headers(path, zf)
        with np.load(path, allow_pickle=False) as z:
            arr = {k: z[stored] for k, stored in keys.items()}
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError, NotImplementedError) as e:
        if isinstance(e, DatasetError):
            raise
        if isinstance(e, PermissionError):
            raise denied(path) from None
        raise DatasetError(f"cannot read {path} as an .npz file: {e}; {NPZ_HINT}") from None
    from ..core.data import Dataset
    classes = arr.pop("classes", None)
    if classes is not None and (classes.ndim != 1 or classes.dtype.kind not in "USiu"):
        raise DatasetError(f"{path}: classes must be a 1-D array of class names, got shape {classes.shape} "
                           f"of {classes.dtype}")
    if all(arr[k].dtype == np.uint8 and arr[k].ndim == 3 for k in ("train_x", "test_x")):
        # N×H×W uint8: grayscale pixels, as in an IDX folder (and Keras's mnist.npz): the same floats, N×1×H×W in
        # [0, 1], so a model that takes the IDX folder takes its npz too (they were refused as token ids)
        arr["train_x"], arr["test_x"] = images_to_float(arr["train_x"]), images_to_float(arr["test_x"])
    try:
        ds = Dataset.from_tensors(arr["train_x"], arr["train_y"], arr["test_x"], arr["test_y"],
                                  classes=None if classes is None else classes.tolist(), name=name, source=str(path))
    except DatasetError as e:
        raise DatasetError(f"{path}: {e}") from None
    if ds.integer_inputs:  # said if the model takes no ids: what to change in the file, not a from_tensors call
        x, tx = keys["train_x"], keys["test_x"]
        ds = dataclasses.replace(ds, inputs_fix=(
            f"save {x} and {tx} in {path} as float32 (e.g. {x}.astype(np.float32) / 255 for pixels), or grayscale "
            f"images as uint8 N×H×W, which load as pixels (float N×1×H×W in [0, 1])"))
    return ds


def _npz_file(name):
    if not name[4:].strip():
        raise DatasetError(f"'npz:' needs a file after it, e.g. 'npz:/data/mine.npz'; {NPZ_HINT}")
    path = Path(name[4:]).expanduser()
    if not path.is_file():
        why = ("is a folder, not a file" if path.is_dir() else
               "is a broken symlink or a symlink loop" if os.path.lexists(path) else
               "does not exist" if not path.exists() else "is not a regular file")
        raise DatasetError(f"dataset file {path} {why}; give 'npz:' an .npz file: {NPZ_HINT}")
    return read_npz(path, name)


# --- image folders: <folder>/train/<class>/<images>, <folder>/test/<class>/<images> --------------------

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".pnm"}
MAX_IMAGES = 1_000_000           # files in one image folder
MAX_IMAGE_PIXELS = 4096 * 4096   # one image: its header is read first, and a larger one is never decoded
MAX_RESIZED_PIXELS = 89_478_485  # the same for an image that is scaled down as it loads ('?size='): Pillow's own
# decompression-bomb threshold (a 48-megapixel phone photo is under it); each is decoded alone, then scaled
MAX_IMAGE_SIDE = 4096            # either side of a '?size=' asked for
GRAY = {"1", "L", "LA", "La"}    # 8-bit modes with one channel (and alpha, dropped)
GRAY16 = {"I;16", "I;16B", "I;16L", "I;16N"}  # 16-bit greyscale (PNG, TIFF): scaled by 65,535
IMAGES_HINT = ("lay it out as <folder>/train/<class name>/<images> and <folder>/test/<class name>/<images>, or "
               "<folder>/<class name>/<images> to hold out a test share (PNG, JPEG, BMP, GIF, WebP, TIFF or "
               "PGM/PPM), all of one size or loaded at one with '?size=64'")
TEST_SHARE = 0.2                 # of each class's images held out for testing when a folder has no train/ and test/
SIZE_HINT = ("'?size=64' (64×64) or '?size=48x64' (48 high, 64 wide) after the folder: each image is scaled to "
             "cover that size and its centre cropped, as torchvision's Resize + CenterCrop")


def _image_files(root):
    """{class name: [image paths, sorted]} of a folder of class folders: its sub-folders, sorted, are the classes (as
    torchvision's ImageFolder); files whose extension is no image's, and hidden files and folders, are left out."""
    out = {}
    for d in sorted(root.iterdir()):
        if d.name.startswith(".") or not d.is_dir():
            continue
        files = []
        for top, dirs, names in os.walk(d):  # symlinked folders are not followed: no loops
            dirs[:] = sorted(n for n in dirs if not n.startswith("."))
            files += [Path(top, n) for n in sorted(names)
                      if not n.startswith(".") and Path(n).suffix.lower() in IMAGE_EXTENSIONS]
            if len(files) > MAX_IMAGES:
                raise DatasetError(f"{root} holds more than {MAX_IMAGES:,} images: too many to load here")
        out[d.name] = files
    if not out:
        raise DatasetError(f"{root} has no class folders; {IMAGES_HINT}")
    return out


def _image_error(path, e):
    if isinstance(e, PermissionError):
        return denied(path)
    return DatasetError(f"cannot read image {path} ({type(e).__name__}: {str(e)[:200]}): replace or remove the file")


def _fit(im, h, w):
    """`im` scaled (bilinear, antialiased when shrinking) so that it covers h × w, then its centre h × w:
    torchvision's Resize + CenterCrop, with the shorter side's scale applied to both (aspect kept) and its rounding
    of the crop."""
    W, H = im.size
    scale = max(h / H, w / W)
    nw, nh = max(w, round(W * scale)), max(h, round(H * scale))
    if (nw, nh) != (W, H):
        im = im.resize((nw, nh), resample=2)  # 2 = Image.Resampling.BILINEAR
    left, top = int(round((nw - w) / 2.0)), int(round((nh - h) / 2.0))
    return im.crop((left, top, left + w, top + h)) if (nw, nh) != (w, h) else im


def _pixels(im, h, w, gray, wide):
    """One image's pixels as an h × w × channels array: uint8, or uint16 when the folder holds 16-bit greyscale
    (8-bit images among them scaled by 257); scaled and cropped to h × w if it is another size."""
    if im.size != (w, h):
        scale = max(h / im.height, w / im.width)  # a JPEG decodes straight at the smallest 1/2^k size that still
        im.draft("L" if gray else "RGB", (math.ceil(im.width * scale), math.ceil(im.height * scale)))  # covers it
    deep = im.mode in GRAY16
    im = im.convert("I" if deep else "L" if gray else "RGB")  # I;16 -> I (int32) is exact, and scales
    if im.size != (w, h):
        im = _fit(im, h, w)
    a = np.asarray(im)
    if deep:
        a = a.clip(0, 65535).astype(np.uint16)
    elif wide:
        a = a.astype(np.uint16) * 257
    return a.reshape(h, w, -1)


def _held_out_key(key, share):
    """Whether the sample whose key (bytes: an image's path, a table row's text) is `key` belongs to the held-out
    test share: the first 8 bytes of its SHA-256 below share × 2^64. The split is the same on every machine, adding
    or removing samples moves no other between train and test, and a larger share holds out a superset."""
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") < share * 2 ** 64


def _image_splits(folder, test_share):
    """{"train": {class: [paths]}, "test": {class: [paths]}} of an image folder: its train/ and test/ folders, or, when
    it has neither, its class folders with `test_share` (default TEST_SHARE) of each class's images held out for
    testing (_hold_out; a class too small to keep any for training keeps them all)."""
    has = {split: (folder / split).is_dir() for split in ("train", "test")}
    if has["train"] or has["test"]:
        missing = [split for split, there in has.items() if not there]
        if missing:
            raise DatasetError(f"{folder} has no {missing[0]}/ folder; {IMAGES_HINT}")
        if test_share is not None:
            raise DatasetError(f"{folder} has its own test/ folder, so there is nothing to hold out: drop '?test=' "
                               f"from the name, or lay the images out as <folder>/<class name>/<images>")
        return {split: _image_files(folder / split) for split in has}
    by_class = _image_files(folder)
    splits = {split: {c: [] for c in by_class} for split in ("train", "test")}
    flat = [(p, c) for c, files in by_class.items() for p in files]
    if flat:  # (class folders that are all empty are refused by the caller, naming them)
        index = {c: i for i, c in enumerate(by_class)}
        y = np.array([index[c] for _, c in flat])
        held = _hold_out([Path(p).relative_to(folder).as_posix().encode() for p, _ in flat], y, by_class,
                         test_share, folder, "image", "lay them out as train/ and test/ folders")
        for (p, c), h in zip(flat, held):
            splits["test" if h else "train"][c].append(p)
    return splits


def _need_pillow():
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        raise DatasetError("reading an image folder needs Pillow, which is not installed here: `pip install pillow` "
                           f"(or the images extra: `pip install -e '.[images]'` in the project's checkout), or {USAGE}") from None


def read_image_folder(folder, name, size=None, test_share=None):
    """Load an image folder (torchvision's ImageFolder layout, per split) into a Dataset: float32 in [0, 1],
    N×1×H×W when every image is greyscale (8 or 16 bits), else N×3×H×W (RGB; alpha dropped). Classes are train/'s
    sub-folders, sorted; test/ may lack some but may not add any. A folder of class folders with no train/ and test/
    holds out test_share (default TEST_SHARE) of each class's images for testing, chosen by a hash of each image's
    path (_hold_out). size=(h, w) loads images of any sizes at h × w,
    each scaled to cover it and centre-cropped (_fit); without it they must all be one size. Every file is
    untrusted: sizes and modes come from the headers first, and nothing is decoded until every image is known to
    be small enough (and, without `size`, one size)."""
    _need_pillow()
    from ..core.data import Dataset
    folder = Path(folder)
    splits = _image_splits(folder, test_share)
    classes = list(splits["train"])
    empty = [c for c, files in splits["train"].items() if not files]
    if empty:
        raise DatasetError(f"{folder}/train: class folder{'s' * (len(empty) > 1)} {', '.join(empty)[:300]} "
                           f"hold{'s' * (len(empty) == 1)} no image; add images or remove the folder")
    extra = [c for c in splits["test"] if c not in splits["train"]]
    if extra:
        raise DatasetError(f"{folder}/test has class folders that train/ lacks ({', '.join(extra)[:300]}): a model "
                           f"cannot learn a class it never sees; add them to train/ or remove them from test/")
    label = {c: i for i, c in enumerate(classes)}
    items = {split: [(p, label[c]) for c, files in by_class.items() for p in files]
             for split, by_class in splits.items()}
    if not items["test"]:  # (a held-out share that holds nothing is refused by _hold_out)
        raise DatasetError(f"{folder}/test holds no image; {IMAGES_HINT}")
    x = _decode_images(folder, name, {split: [p for p, _ in pairs] for split, pairs in items.items()}, size)
    y = {split: np.array([c for _, c in pairs], np.int64) for split, pairs in items.items()}
    return Dataset.from_tensors(x["train"], y["train"], x["test"], y["test"], classes=classes, name=name,
                                source=str(folder))


def _decode_images(folder, name, paths, size):
    """{split: float32 N×C×H×W in [0, 1]} of the image files `paths` ({split: [path]}) of an image folder: every
    header first (sizes, modes, limits), then each image decoded (and, with size=(h, w), scaled and cropped)."""
    from PIL import Image, UnidentifiedImageError
    import torch
    if sum(map(len, paths.values())) > MAX_IMAGES:
        raise DatasetError(f"{folder} holds more than {MAX_IMAGES:,} images: too many to load here")
    limit = MAX_IMAGE_PIXELS if size is None else MAX_RESIZED_PIXELS
    sizes, modes = {}, Counter()
    for p in (p for ps in paths.values() for p in ps):
        try:
            with warnings.catch_warnings():  # Pillow's bomb warning: the limit below is the one that applies
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(p) as im:  # reads the header only
                    dims, mode = im.size, im.mode
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise _image_error(p, e) from None
        if dims[0] * dims[1] > limit or 0 in dims:
            shrink = f", or load it scaled down with {SIZE_HINT}" if size is None and dims[0] * dims[1] else ""
            raise DatasetError(f"image {p} says it is {dims[0]:,}×{dims[1]:,} pixels (limit {limit:,} "
                               f"pixels): too big to be one sample; replace or remove the file{shrink}")
        sizes.setdefault(dims, p)
        modes[mode] += 1
    if size is None and len(sizes) > 1:
        seen = "; ".join(f"{w}×{h} (e.g. {p})" for (w, h), p in list(sizes.items())[:4])
        side = min(224, min(min(dims) for dims in sizes))
        raise DatasetError(f"{folder}: the images are not all one size ({seen}): load them at one size with "
                           f"'{name}?size={side}' (each scaled to cover {side}×{side} and its centre cropped, as "
                           f"torchvision's Resize + CenterCrop; '?size=48x64' is 48 high, 64 wide), or resize them "
                           f"yourself")
    h, w = size if size is not None else next(iter(sizes))[::-1]
    gray = set(modes) <= GRAY | GRAY16
    wide = set(modes) & GRAY16
    channels = 1 if gray else 3
    n = sum(map(len, paths.values()))
    if n * channels * h * w * 4 > MAX_DATA_BYTES:
        raise DatasetError(f"{folder}: {n:,} images of {channels}×{h}×{w} are {n * channels * h * w * 4:,} bytes as "
                           f"float32 (limit {MAX_DATA_BYTES:,}): too big to load here; load them smaller with "
                           f"{SIZE_HINT}")
    if wide and not gray:
        raise DatasetError(f"{folder} mixes 16-bit greyscale images with colour ones: save them all as 8-bit")
    out = {}
    for split, ps in paths.items():
        x = np.empty((len(ps), h, w, channels), np.uint16 if wide else np.uint8)
        for i, p in enumerate(ps):
            try:
                with Image.open(p) as im:
                    x[i] = _pixels(im, h, w, gray, wide)
            except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
                raise _image_error(p, e) from None
        scale = 65535.0 if wide else 255.0
        out[split] = torch.from_numpy(x).permute(0, 3, 1, 2).to(torch.float32).div_(scale).contiguous()
    return out


FILE_NAMES = ("file", "filename", "image", "path")  # a manifest column so named holds the image files (else the first)


def read_image_manifest(folder, name, manifest, size=None, test_share=None, label=None, task=None):
    """Load the images of `folder` listed in the CSV `manifest` (a path inside `folder`, or absolute) with their
    labels: one row per image, a column of image paths relative to the folder (named as FILE_NAMES, else the first)
    and label columns read as a CSV table's (?label=, ?task=: classes, regression targets or multi-label tags;
    _csv_labels); other columns are left out. test_share of the images (default TEST_SHARE) are held out for
    testing by a hash of each path (_hold_out). Every path must stay inside the folder and name an image."""
    _need_pillow()
    from ..core.data import Dataset
    folder = Path(folder)
    path = Path(manifest).expanduser()
    path = path if path.is_absolute() else folder / path
    if not path.is_file():
        raise DatasetError(f"{folder}: the manifest {path} {'is not a file' if path.exists() else 'does not exist'}: "
                           f"give '?labels=' a CSV inside the folder, one row per image (its path and its labels)")
    header, rows = _csv_rows(path)
    named = [c for c in header if c.lower() in FILE_NAMES]
    files = named[0] if named else header[0]
    if label is None:
        label = _default_label([c for c in header if c != files])
    for c in label:
        if c not in header or c == files:
            raise DatasetError(f"{path} has no label column {c!r:.100} (its columns: {', '.join(header)[:300]}; "
                               f"{files!r:.100} holds the files): name one of the others with '?label='")
    if not label:
        raise DatasetError(f"{path} has only the column {files!r:.100}: add a label column")
    root = folder.resolve()
    images, labels = [], []
    for i, row in enumerate(rows, 2):
        rel = row[header.index(files)]
        p = (folder / rel).resolve()
        if not rel or not p.is_relative_to(root):
            raise DatasetError(f"{path}: row {i:,} names {rel!r:.100}, which is {'empty' if not rel else 'outside'} "
                               f"{folder}: give each image's path relative to the folder")
        if not p.is_file():
            why = "is not a file" if p.exists() else "does not exist"
            raise DatasetError(f"{path}: row {i:,} names {rel!r:.100}, but {p} {why}: fix the path or remove the row")
        images.append(p)
        labels.append(tuple(row[header.index(c)] for c in label))
    y, classes = _csv_labels(labels, label, path, task)
    keys = [p.relative_to(root).as_posix().encode() for p in images]
    held = _hold_out(keys, y, classes, test_share, path, "image", "give a folder of train/ and test/ class folders")
    x = _decode_images(folder, name, {"train": [p for p, h in zip(images, held) if not h],
                                      "test": [p for p, h in zip(images, held) if h]}, size)
    try:
        return Dataset.from_tensors(x["train"], y[~held], x["test"], y[held], classes=classes, name=name,
                                    source=str(path))
    except DatasetError as e:
        raise DatasetError(f"{path}: {e}") from None


def _image_size(text, name):
    """(height, width) of a '?size=' value: '64' is 64×64, '48x64' 48 high and 64 wide; DatasetError otherwise."""
    parts = text.strip().lower().replace("×", "x").split("x")
    if not (1 <= len(parts) <= 2 and all(q.strip().isdigit() for q in parts)):
        raise DatasetError(f"{name!r:.300}: size {text!r:.50} is not a size; give {SIZE_HINT}")
    h, w = (int(parts[0]),) * 2 if len(parts) == 1 else map(int, parts)
    if not (1 <= h <= MAX_IMAGE_SIDE and 1 <= w <= MAX_IMAGE_SIDE):
        raise DatasetError(f"{name!r:.300}: size {text!r:.50} is out of range: each side must be 1 to "
                           f"{MAX_IMAGE_SIDE:,} pixels")
    return h, w


def _test_share(text, name):
    """The share of a '?test=' value: a number strictly between 0 and 1 ('0.2': a fifth of each class's images)."""
    try:
        share = float(text)
    except ValueError:
        share = math.nan
    if not 0 < share < 1:  # NaN too
        raise DatasetError(f"{name!r:.300}: test share {text!r:.50} must be a number between 0 and 1, e.g. "
                           f"'?test=0.2' to hold out a fifth of each class's samples for testing")
    return share


def _options(name, prefix, parsers, usage):
    """(the name without its options, {option: parsed value}) of a dataset name that may end in '?' and options
    joined by '&' ('images:/pets?size=64&test=0.2'); parsers maps each allowed option to a function(text, name)
    that parses its value or raises DatasetError. A path that exists with its '?' is read as that path."""
    options = {}
    if "?" not in name or Path(name[len(prefix):]).expanduser().exists():
        return name, options
    path, _, query = name.rpartition("?")
    for item in query.split("&"):
        key, eq, value = item.partition("=")
        if key not in parsers or not eq:
            raise DatasetError(f"{name!r:.300}: {item!r:.50} is not an option of {usage}")
        if key in options:
            raise DatasetError(f"{name!r:.300}: '{key}=' is given twice; give it once")
        options[key] = parsers[key](value, name)
    return path, options


def _image_folder(name):
    """read_image_folder of an 'images:' name: the folder, then optionally '?' and options (IMAGE_OPTIONS)."""
    path, options = _options(name, "images:", IMAGE_OPTIONS, "an image folder; after the folder give '?size=64' to "
                             "load images at one size, '?test=0.2' to hold out a test share, '?labels=labels.csv' "
                             "to read the labels from a CSV (with '?label=' and '?task=' as for a CSV table), "
                             "joined by '&'")
    folder = _folder_named(path, "images:", "/data/pets", f"of images: {IMAGES_HINT}")
    if "labels" in options:
        return read_image_manifest(folder, name, options["labels"], options.get("size"), options.get("test"),
                                   options.get("label"), options.get("task"))
    needs = [k for k in ("label", "task") if k in options]
    if needs:
        raise DatasetError(f"{name!r:.300}: '?{needs[0]}=' picks a column of a labels CSV, and none is given: add "
                           f"'?labels=labels.csv', or drop '?{needs[0]}=' (class folders are the labels)")
    return read_image_folder(folder, name, options.get("size"), options.get("test"))


# --- CSV tables: one row per sample, numeric feature columns and a label column -----------------------------

CSV_HINT = ("give a CSV file with a header row, one row per sample, numbers in every feature column and a label "
            "column (named label, class, target or y, else the last one; '?label=species' picks another, "
            "'?label=a,b' several), or a folder holding train.csv and test.csv")
LABEL_NAMES = ("label", "labels", "class", "target", "y")  # a column so named is the label column by default


def _default_label(columns):
    """[the label column] of a table's `columns` when '?label=' names none: the one named as LABEL_NAMES, else the
    last; [] if there are no columns."""
    named = [c for c in columns if c.lower() in LABEL_NAMES]
    return [named[0] if len(named) == 1 else columns[-1]] if columns else []


def _column_names(text, name):
    names = [c.strip() for c in text.split(",")]
    if not all(names):
        raise DatasetError(f"{name!r:.300}: {text!r:.100} is not a list of column names: give them joined by "
                           f"commas, e.g. '?drop=id,name'")
    return names


TASKS = ("classes", "regression")  # what a CSV's label column holds ('?task='); by default, regression targets when
# its values are numbers that are not all class indices 0, 1, 2, ..., else classes
AUTO_CLASSES = 50  # more different whole numbers than this, and a label column must say ('?task=') what they are: a
# score or a count (regression) as often as classes


def _task(text, name):
    if text not in TASKS:
        raise DatasetError(f"{name!r:.300}: task {text!r:.50} is not one: give '?task=classes' (the labels are "
                           f"classes) or '?task=regression' (they are numbers to predict)")
    return text


def _manifest_name(text, name):
    if not text.strip():
        raise DatasetError(f"{name!r:.300}: '?labels=' needs a CSV file, e.g. '?labels=labels.csv'")
    return text.strip()


# what may follow an image folder's name: ?size=64&test=0.2; ?labels=labels.csv&label=age&task=regression
IMAGE_OPTIONS = {"size": _image_size, "test": _test_share, "labels": _manifest_name, "label": _column_names,
                 "task": _task}


CSV_OPTIONS = {"label": _column_names, "drop": _column_names, "test": _test_share, "task": _task}


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _csv_rows(path):
    """(header, rows) of a CSV file, every field a stripped string; the delimiter (comma, semicolon, tab or bar) is
    sniffed from the start. DatasetError for a file too big, not text, empty, ragged or with repeated columns."""
    header, rows = _csv_stream(path)
    return header, [row for _, row in rows]


def _csv_stream(path):
    """(header, the rows as they are read: (line number, fields) each) of a CSV file, as _csv_rows checks them; no
    row is kept, so a caller that stores less than the strings (a table's floats) needs less memory."""
    import csv
    size = path.stat().st_size
    if size > MAX_DATA_BYTES:
        raise DatasetError(f"{path} is {size:,} bytes (limit {MAX_DATA_BYTES:,}): too big to load here")

    def read():
        try:
            with open(path, newline="", encoding="utf-8-sig") as f:
                head = f.read(65536)
                try:
                    dialect = csv.Sniffer().sniff(head, delimiters=",;\t|")
                except csv.Error:
                    dialect = csv.excel
                f.seek(0)
                for row in csv.reader(f, dialect):
                    row = [v.strip() for v in row]
                    if any(row):
                        yield row
        except UnicodeDecodeError as e:
            raise DatasetError(f"{path} is not UTF-8 text (byte {e.start:,}): save it as UTF-8 CSV") from None
        except csv.Error as e:
            raise DatasetError(f"cannot read {path} as CSV ({e}); {CSV_HINT}") from None

    rows = read()
    header = next(rows, None)
    first = next(rows, None)
    if first is None:
        raise DatasetError(f"{path} holds {'no rows' if header is None else 'a header row only'}: {CSV_HINT}")
    if all(_is_number(c) for c in header):
        raise DatasetError(f"{path}: the first row holds numbers ({', '.join(header)[:100]}), not column names: add a "
                           f"header row naming each column")
    seen = set()
    for c in header:
        if c in seen or not c:
            what = f"names column {c!r:.100} twice" if c else "has a column without a name"
            raise DatasetError(f"{path}: the header row {what}: every column needs its own name")
        seen.add(c)

    def checked():
        for i, row in enumerate(itertools.chain([first], rows), 2):
            if len(row) != len(header):
                raise DatasetError(f"{path}: row {i:,} has {len(row)} fields but the header has {len(header)}: fix or "
                                   f"remove that row")
            yield i, row
    return header, checked()


def _lines(path, chunk=1 << 20):
    """How many lines `path` has, ended as the csv module ends them (\\n, \\r\\n or a lone \\r, as Excel for Mac's
    "CSV (Macintosh)" writes), and one more for a last line without an end: at least its CSV rows."""
    n, last = 0, b"\n"
    with open(path, "rb") as f:
        while block := f.read(chunk):
            n += block.count(b"\n") + block.count(b"\r") - block.count(b"\r\n")
            n -= last == b"\r" and block[:1] == b"\n"  # a CR LF split between two blocks is one line end
            last = block[-1:]
    return n + (last not in (b"\n", b"\r"))


def _csv_table(path, labels, drop):
    """(features float32 N×F, label strings per row: one per label column, feature names, label names) of a CSV;
    `labels` the label columns' names (None: the one named as LABEL_NAMES, else the last column). The features'
    bytes (at most a row per line) are checked against MAX_DATA_BYTES before any is read, and each row's fields
    become float32 as it is read: no string of the file is kept but the labels'."""
    header, rows = _csv_stream(path)
    labels = _default_label(header) if labels is None else labels
    for c in [*labels, *drop]:
        if c not in header:
            raise DatasetError(f"{path} has no column {c!r:.100} (its columns: {', '.join(header)[:300]}): name one "
                               f"of those")
    both = [c for c in labels if c in drop]
    if both:
        raise DatasetError(f"{path}: column {both[0]!r:.100} is both a label and dropped: drop another")
    if len(set(labels)) < len(labels):
        raise DatasetError(f"{path}: '?label=' names a column twice: name each label column once")
    at = [header.index(c) for c in labels]
    features = [j for j, c in enumerate(header) if j not in at and c not in drop]
    if not features:
        raise DatasetError(f"{path}: no feature column is left besides the label {', '.join(labels)[:100]}: "
                           f"{CSV_HINT}")
    most = _lines(path) - 1  # rows after the header, at most
    if most * len(features) * 4 > MAX_DATA_BYTES:
        raise DatasetError(f"{path} has up to {most:,} rows of {len(features):,} feature columns: "
                           f"{most * len(features) * 4:,} bytes as float32 (limit {MAX_DATA_BYTES:,}): too big to load "
                           "here; drop columns with '?drop=' or load fewer rows")
    x = np.empty((most, len(features)), np.float32)
    pick, label_of, kept = operator.itemgetter(*features, 0), operator.itemgetter(*at, 0), []
    n = 0
    for i, row in rows:
        if n == len(x):  # more rows than line ends counted (none should be): room for as many again
            x = np.concatenate([x, np.empty((max(n, 1), len(features)), np.float32)])
        try:
            x[n] = pick(row)[:-1]  # numpy parses the strings (the 0 makes one feature a tuple too)
            ok = np.isfinite(x[n]).all()
        except ValueError:
            ok = False
        if not ok:
            x[n] = _csv_row_floats(path, header, features, i, row)
        kept.append(label_of(row)[:-1])
        n += 1
    x = x[:n] if n == most else x[:n].copy()
    return x, kept, [header[j] for j in features], labels


def _csv_row_floats(path, header, features, i, row):
    """A CSV row's (line `i`) feature fields as float() reads them, one by one, as float32; a DatasetError naming the
    first that is empty or not a finite number."""
    out = np.empty(len(features), np.float32)
    for k, j in enumerate(features):
        v = row[j]
        try:
            out[k] = float(v)
        except ValueError:
            out[k] = np.nan
        if not math.isfinite(out[k]):
            what = "is empty" if not v else f"holds {v!r:.40}, not a finite number"
            raise DatasetError(f"{path}: row {i:,}, column {header[j]!r:.100} {what}: fill or remove such "
                               f"rows, encode the column as numbers, or drop it with '?drop={header[j]}'")
    return out


TAG_WORDS = {"1": True, "0": False, "1.0": True, "0.0": False, "true": True, "false": False, "yes": True,
             "no": False}  # what a multi-label tag column may hold (any case)


def _csv_labels(rows, names, where, task=None):
    """(y, class names) of the label strings of a CSV's rows (a tuple per row, one per label column `names`): one
    column, _label_values; several, multi-label tags (every value 0/1, true/false or yes/no: boolean (N, C), the
    columns' names as the tags) or, for numbers that are not all 0 and 1 or with task "regression", regression
    targets (N, C)."""
    if len(names) == 1:
        return _label_values([r[0] for r in rows], where, task)
    if task == "classes":
        raise DatasetError(f"{where}: '?task=classes' takes one label column of classes, and {len(names)} are named "
                           f"({', '.join(names)[:100]}): several columns are tags (0/1) or regression targets")
    flat = [v for r in rows for v in r]
    numbers = all(map(_is_number, flat))
    if task == "regression" or (numbers and any(v.lower() not in TAG_WORDS for v in flat)):
        at = next((i for i, v in enumerate(flat) if not (_is_number(v) and math.isfinite(float(v)))), None)
        if at is not None:
            raise DatasetError(f"{where}: row {at // len(names) + 2:,}, column {names[at % len(names)]!r:.100} holds "
                               f"{flat[at]!r:.40}, not a finite number, which a regression target must be: fix or "
                               f"remove such rows")
        return np.array([[float(v) for v in r] for r in rows], np.float32), None
    at = next((i for i, v in enumerate(flat) if v.lower() not in TAG_WORDS), None)
    if at is not None:
        raise DatasetError(f"{where}: row {at // len(names) + 2:,}, column {names[at % len(names)]!r:.100} holds "
                           f"{flat[at]!r:.40}: several label columns are multi-label tags, each 0 or 1 (true/false, "
                           f"yes/no), or numbers to predict with '?task=regression'")
    return np.array([[TAG_WORDS[v.lower()] for v in r] for r in rows], bool), list(names)


def _label_values(labels, where, task=None):
    """(y, class names) of a label column's strings: class indices and names (_class_indices), or float32
    regression targets and None. task None: regression if every label is a number and some are not whole numbers
    0, 1, 2, ... (a price, a temperature), classes if they are, and a DatasetError asking which if they are more than
    AUTO_CLASSES different whole numbers."""
    numeric = all(map(_is_number, labels))
    index_like = numeric and all(float(v) >= 0 and float(v).is_integer() for v in labels)
    values = {float(v) for v in labels} if index_like else ()
    if task is None and len(values) > AUTO_CLASSES:
        raise DatasetError(f"{where}: the label column holds {len(values):,} different whole numbers, "
                           f"{min(values):.0f} to {max(values):.0f}: say what they are, '?task=regression' (numbers to "
                           f"predict) or '?task=classes' (class indices)")
    if task == "regression" or (task is None and numeric and not index_like):
        at = next((i for i, v in enumerate(labels) if not (_is_number(v) and math.isfinite(float(v)))), None)
        if at is not None:
            raise DatasetError(f"{where}: row {at + 2:,}'s label {labels[at]!r:.40} is not a finite number, which a "
                               f"regression target must be: fix or remove such rows, or give '?task=classes'")
        return np.array([float(v) for v in labels], np.float32), None
    return _class_indices(labels, where, index_like)


def _class_indices(labels, where, index_like):
    """(class index per label, class names) of label strings: whole numbers 0, 1, 2, ... (index_like) are the class
    indices themselves (classes '0'..'max', so a class missing from the data keeps the others' indices); any other
    labels are names, sorted, unless they are all numbers (then '?task=classes' was asked of a continuous column)."""
    if index_like:
        idx = np.array([float(v) for v in labels], np.int64)
        return idx, [str(i) for i in range(int(idx.max()) + 1)]
    if all(map(_is_number, labels)):
        odd = next(v for v in labels if not (float(v) >= 0 and float(v).is_integer()))
        raise DatasetError(f"{where}: label {odd!r:.40} is not a class: numeric class labels must be class indices "
                           f"0, 1, 2, ...; drop '?task=classes' to load the column as regression targets")
    if any(not v for v in labels):
        raise DatasetError(f"{where}: a label is empty (row {labels.index('') + 2:,}): every row needs one")
    names = sorted(set(labels))
    at = {c: i for i, c in enumerate(names)}
    return np.array([at[v] for v in labels], np.int64), names


def _hold_out(keys, y, classes, test_share, where, what, other):
    """Which samples are held out for testing (a boolean array), each by _held_out_key of its key (bytes), at
    test_share (default TEST_SHARE); a class (single-label classes only) that would keep none for training keeps all
    of its samples. DatasetError if none are left to train on or none are held out (naming `what` a sample is,
    'row' or 'image', and `other`, the way to give a test split instead)."""
    share = TEST_SHARE if test_share is None else test_share
    held = np.array([_held_out_key(k, share) for k in keys])
    for c in np.unique(y) if classes is not None and y.ndim == 1 else ():
        if held[y == c].all():
            held[y == c] = False
    if held.all() or not held.any():
        distinct = len(set(keys))
        why = ("" if distinct == len(keys) else
               f" its {len(keys):,} {what}s are only {distinct:,} different one{'s' if distinct > 1 else ''}, and the "
               f"split hashes each {what}'s content, so equal {what}s always fall on the same side;")
        if held.all():
            raise DatasetError(f"{where}: every {what} fell in the held-out test share, leaving none to train on:"
                               + (f"{why} add different {what}s, or {other}" if why else
                                  f" lower the share ('?test=0.2') or add {what}s"))
        if why:
            raise DatasetError(f"{where}: no {what} fell in the held-out test share:{why} add different {what}s, or "
                               f"{other}")
        raise DatasetError(f"{where}: no {what} fell in the held-out test share: it holds too few {what}s; add "
                           f"{what}s, raise the share ('?test=0.5'), or {other}")
    return held


def read_csv(path, name, label=None, drop=(), test_share=None, task=None):
    """Load a CSV table (one row per sample) or a folder holding train.csv and test.csv into a Dataset: the feature
    columns (every column but the label and `drop`) as float32 N×F, the label column as classes or as regression
    targets (_label_values; task "classes" or "regression" decides, else its values do); several label columns
    (`label` a list) as multi-label tags or regression targets (_csv_labels).
    A single file holds out test_share (default TEST_SHARE) of each class's rows (of all rows, for regression)
    for testing, chosen by a hash of
    each row's text, so the split is the same everywhere, adding rows moves no other row, and equal rows are never
    split between train and test. The delimiter is sniffed; nothing in the file is run or evaluated."""
    from ..core.data import Dataset
    path = Path(path)
    if path.is_dir():
        files = {split: path / f"{split}.csv" for split in ("train", "test")}
        missing = [f.name for f in files.values() if not f.is_file()]
        if missing:
            raise DatasetError(f"{path} has no {' or '.join(missing)}; {CSV_HINT}")
        if test_share is not None:
            raise DatasetError(f"{path} has its own test.csv, so there is nothing to hold out: drop '?test=' from "
                               f"the name, or give a single CSV file")
        tables = {split: _csv_table(f, label, drop) for split, f in files.items()}
        if tables["train"][2] != tables["test"][2]:
            raise DatasetError(f"{path}: train.csv's feature columns ({', '.join(tables['train'][2])[:200]}) and "
                               f"test.csv's ({', '.join(tables['test'][2])[:200]}) differ: give both the same columns")
        y, classes = _csv_labels(tables["train"][1] + tables["test"][1], tables["train"][3], path, task)
        n = len(tables["train"][1])
        split = {"train": (tables["train"][0], y[:n]), "test": (tables["test"][0], y[n:])}
    else:
        table = _csv_table(path, label, drop)
        x, labels = table[0], table[1]
        y, classes = _csv_labels(labels, table[3], path, task)
        keys = ["\x1f".join([lab, *map(str, row.tolist())]).encode()  # row by row: no Python float of all x at once
                for lab, row in zip(("\x1e".join(t) for t in labels), x)]
        held = _hold_out(keys, y, classes, test_share, path, "row",
                         "give a folder holding train.csv and test.csv")
        split = {"train": (x[~held], y[~held]), "test": (x[held], y[held])}
    try:
        return Dataset.from_tensors(*split["train"], *split["test"], classes=classes, name=name, source=str(path))
    except DatasetError as e:
        raise DatasetError(f"{path}: {e}") from None


def _csv_file(name):
    path, options = _options(name, "csv:", CSV_OPTIONS, "a CSV table; after the file give '?label=species' to pick "
                             "the label column, '?drop=id,name' to leave columns out, '?test=0.2' to hold out a "
                             "test share, '?task=regression' or '?task=classes' to say what the labels are, joined "
                             "by '&'")
    if not path[4:].strip():
        raise DatasetError(f"'csv:' needs a file after it, e.g. 'csv:/data/iris.csv'; {CSV_HINT}")
    target = Path(path[4:]).expanduser()
    if not (target.is_file() or target.is_dir()):
        why = ("is a broken symlink or a symlink loop" if os.path.lexists(target) else
               "does not exist" if not target.exists() else "is not a regular file")
        raise DatasetError(f"dataset file {target} {why}; {CSV_HINT}")
    return read_csv(target, name, options.get("label"), options.get("drop", ()), options.get("test"),
                    options.get("task"))


# --- by name ------------------------------------------------------------------------------------------

def load_dataset(name=DEFAULT_DATA):
    """Load a dataset by name: "fashion-mnist", "digits", "idx:/path/to/folder", "npz:/path/to/file.npz",
    "images:/path/to/folder" (with "?size=64" or "?size=48x64" after it, images of any sizes load at that size; with
    "?test=0.2", a folder of class folders holds out that share of each class for testing; "?size=64&test=0.2") or
    "csv:/path/to/file.csv" (a table, a row per sample; "?label=species", "?drop=id", "?test=0.2").

    Loaded datasets are kept (per name); `load_dataset.cache_clear()` forgets them.
    """
    if not isinstance(name, str) or not name.strip():
        raise DatasetError(f"dataset must be a name: {USAGE}; got {name!r:.100}")
    if len(name) > MAX_NAME:
        raise DatasetError(f"dataset name is {len(name):,} characters long (limit {MAX_NAME}): {USAGE}")
    if "\0" in name:
        raise DatasetError(f"dataset name {name!r:.200} contains a NUL byte: no file path can; {USAGE}")
    with _loading:  # callers racing for a first load (the server's warm-up, many new sessions) wait for one
        return _load(name)


_loading = threading.RLock()


@lru_cache(maxsize=4)
def _load(name):
    if name.startswith("idx:"):
        return _idx_folder(name)
    if name.startswith("npz:"):
        return _npz_file(name)
    if name.startswith("images:"):
        return _image_folder(name)
    if name.startswith("csv:"):
        return _csv_file(name)
    if name == "digits":
        return read_digits(name)
    if name == "fashion-mnist":
        return _fashion_mnist(name)
    try:
        folder = Path(name).expanduser()
        is_dir = folder.is_dir()
    except (OSError, ValueError, RuntimeError):  # a NUL byte, a name too long, ~user unknown
        is_dir = False
    if is_dir:  # a bare folder: say which prefix reads what is in it, when its files say
        try:
            files = [f for f in itertools.islice(folder.rglob("*"), 2000) if f.is_file()]
        except OSError:  # an unreadable folder inside: no guess
            files = []
        kind = ("idx" if any("ubyte" in f.name for f in files) else
                "images" if any(f.suffix.lower() in IMAGE_EXTENSIONS for f in files) else None)
        guess = f" (did you mean '{kind}:{name:.200}'?)" if kind else ""
        raise DatasetError(f"unknown dataset {name!r:.200}: a folder is read with a prefix naming its format{guess}; "
                           f"{USAGE}")
    raise DatasetError(f"unknown dataset {name!r:.200}: {USAGE}")


load_dataset.cache_clear = _load.cache_clear


# --- the first test images, without torch ---------------------------------------------------------

def read_idx_head(path, n, ndim):
    """The first n items of an `ndim`-dimensional unsigned-byte IDX file (gzip or plain), reading only those bytes;
    all of them if it holds fewer. The header is checked as read_idx checks it."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as f:
            top = f.read(4 + 4 * ndim)
            if len(top) < 4 + 4 * ndim or top[:3] != b"\0\0\x08" or top[3] != ndim:
                raise DatasetError(f"{path} is not a {ndim}-dimensional unsigned-byte IDX file (header "
                                   f"{top[:4].hex() or 'empty'})")
            shape = tuple(int(d) for d in np.frombuffer(top, ">u4", count=ndim, offset=4))
            item = math.prod(shape[1:])
            n = min(n, shape[0])
            if item * n > MAX_DATA_BYTES:
                raise DatasetError(f"{path} holds {shape[0]:,} items of {item:,} bytes; {n:,} were asked for")
            body = f.read(item * n)
    except PermissionError:
        raise denied(path) from None
    except (OSError, EOFError, zlib.error) as e:
        raise DatasetError(f"cannot read {path}: {e}: copy the file again") from None
    if len(body) != item * n:
        raise DatasetError(f"{path} is truncated: its header says {shape} but it ends early")
    return np.frombuffer(body, np.uint8).reshape((n, *shape[1:]))


def first_test_images(name=DEFAULT_DATA, n=HEAD):
    """Dataset `name`'s first n test images and labels (all of them if it has fewer), as numpy: {"x": float32
    n×1×H×W in [0, 1], "y": int64 n, "classes": [...]}: the same values load_dataset(name) holds.

    Fashion-MNIST is read without torch, and only those images' bytes (a few milliseconds, where the whole
    dataset takes 0.5 s); any other source is loaded whole."""
    if name != "fashion-mnist":
        return _loaded_head(name, n)
    folder, prefix = fashion_folder()
    paths = [find_file(folder, FILES[k]) for k in ("test_x", "test_y")]
    if None in paths:
        return _loaded_head(name, n)  # the full load says what is missing, and how to fix it
    try:
        pixels, labels = read_idx_head(paths[0], n, 3), read_idx_head(paths[1], n, 1)
    except DatasetError as e:
        raise DatasetError(f"{prefix}{e}; {DATA_DIR_HINT if prefix else INSTALL_HINT}") from None
    if (pixels.shape[1:] != FASHION_SHAPE or not len(pixels) or len(pixels) != len(labels)
            or int(labels.max()) >= len(FASHION_CLASSES)):
        return _loaded_head(name, n)  # the full load names what is wrong with the files (its errors say the fix)
    x = (pixels.astype(np.float32) / np.float32(255.0))[:, None]  # as images_to_float: x / 255 in float32
    return {"x": x, "y": labels.astype(np.int64), "classes": list(FASHION_CLASSES)}


def _loaded_head(name, n):
    data = load_dataset(name)
    return {"x": data.x("test")[:n].numpy(), "y": data.y("test")[:n].numpy(), "classes": list(data.classes)}
