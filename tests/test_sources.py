"""playground.sources: Fashion-MNIST, IDX folders, scikit-learn's digits, .npz files and image folders, each a
Dataset, and every broken file refused with what is wrong and how to fix it."""

import gzip
import io
import struct
import sys
import zipfile
import zlib

import numpy as np
import pytest
import torch

from compress_engine import Dataset, DatasetError, load_dataset
from compress_engine.playground.sources import FILES, read_idx


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


def make_folder(tmp_path, n_train=50, n_test=20, gz=True, classes=3, side=(28, 28)):
    rng = np.random.default_rng(0)
    write_idx(tmp_path / FILES["train_x"], rng.integers(0, 256, (n_train, *side)), gz)
    write_idx(tmp_path / FILES["train_y"], rng.integers(0, classes, n_train), gz)
    write_idx(tmp_path / FILES["test_x"], rng.integers(0, 256, (n_test, *side)), gz)
    write_idx(tmp_path / FILES["test_y"], rng.integers(0, classes, n_test), gz)
    return tmp_path


def refusal(name, words, path):
    """load_dataset(name)'s DatasetError: one line naming `path` and holding `words` (printed, for -s runs)."""
    with pytest.raises(DatasetError) as e:
        load_dataset(name)
    msg = str(e.value)
    print(f"{name}: {msg}")
    assert words in msg and str(path) in msg and "\n" not in msg, msg
    return msg


@pytest.fixture(autouse=True)
def fresh_cache():
    load_dataset.cache_clear()
    yield
    load_dataset.cache_clear()


def test_racing_first_loads_decode_once_and_share_it(tmp_path, monkeypatch):
    """The server's warm-up thread and new sessions may ask for the dataset at once: one load, the same object."""
    import threading
    import time

    from compress_engine.playground import sources
    folder, calls = make_folder(tmp_path), []
    real = sources._idx_folder
    monkeypatch.setattr(sources, "_idx_folder", lambda name: calls.append(name) or time.sleep(0.2) or real(name))
    got = []
    threads = [threading.Thread(target=lambda: got.append(load_dataset(f"idx:{folder}"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(got) == 4 and all(d is got[0] for d in got)


# --- IDX folders ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [True, False])
def test_any_idx_folder_loads(tmp_path, gz):
    ds = load_dataset(f"idx:{make_folder(tmp_path, gz=gz)}")
    assert ds.x("train").shape == (50, 1, 28, 28) and ds.y("test").shape == (20,)
    assert ds.x("test").shape == (20, 1, 28, 28) and float(ds.x("test").max()) <= 1.0
    assert len(ds.classes) == 3 and ds.input_shape == (1, 28, 28) and ds.source == str(tmp_path)


def test_idx_round_trip_any_image_size_and_class_count(tmp_path):
    rng = np.random.default_rng(1)
    pixels = {s: rng.integers(0, 256, (n, 16, 12), dtype=np.uint8) for s, n in (("train", 30), ("test", 9))}
    labels = {"train": np.arange(30) % 37, "test": np.full(9, 36)}
    for split, (xk, yk) in {"train": ("train_x", "train_y"), "test": ("test_x", "test_y")}.items():
        write_idx(tmp_path / FILES[xk], pixels[split])
        write_idx(tmp_path / FILES[yk], labels[split])
    ds = load_dataset(f"idx:{tmp_path}")
    assert ds.input_shape == (1, 16, 12) and ds.n_classes == 37 and ds.name == f"idx:{tmp_path}"
    for split in ("train", "test"):
        ref = pixels[split].astype(np.float32) / np.float32(255)  # numpy's x / 255: the floats torch's must equal
        assert torch.equal(ds.x(split), torch.from_numpy(ref).unsqueeze(1)) and ds.x(split).dtype == torch.float32
        assert ds.y(split).tolist() == labels[split].tolist()
    with pytest.raises(DatasetError, match="inputs are 1×16×12; the model takes 1×28×28"):
        ds.require((1, 28, 28), 10)


def test_idx_train_and_test_sizes_must_agree(tmp_path):
    make_folder(tmp_path)
    write_idx(tmp_path / FILES["test_x"], np.zeros((20, 32, 32)))
    with pytest.raises(DatasetError, match="train images are 28×28 pixels but test images are 32×32"):
        load_dataset(f"idx:{tmp_path}")


def test_tiny_idx_folder_holds_exactly_the_real_pixels(fmnist, tiny_idx):
    ds = load_dataset(tiny_idx)
    assert torch.equal(ds.x("train"), fmnist.x("train")[:512]) and torch.equal(ds.y("test"), fmnist.y("test")[:500])


def test_env_folder_is_searched_first(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESS_DATA_DIR", str(make_folder(tmp_path, n_train=30)))
    ds = load_dataset("fashion-mnist")
    assert len(ds.y("train")) == 30 and ds.classes[0] == "T-shirt/top" and ds.n_classes == 10


@pytest.mark.parametrize("change, words", [
    (lambda d: write_idx(d / FILES["train_y"], np.r_[np.zeros(49), 10]), "label 10 is out of range"),
    (lambda d: (write_idx(d / FILES["train_x"], np.zeros((50, 32, 32))),
                write_idx(d / FILES["test_x"], np.zeros((20, 32, 32)))), "images are 32×32 pixels; fashion-mnist"),
], ids=["label 10", "32x32"])
def test_fashion_mnist_is_ten_classes_of_28x28(tmp_path, monkeypatch, change, words):
    change(make_folder(tmp_path))
    monkeypatch.setenv("COMPRESS_DATA_DIR", str(tmp_path))
    with pytest.raises(DatasetError) as e:
        load_dataset("fashion-mnist")
    assert words in str(e.value) and str(e.value).startswith("COMPRESS_DATA_DIR:")


def test_missing_dataset_names_paths_and_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("COMPRESS_DATA_DIR", raising=False)
    monkeypatch.setattr("compress_engine.playground.sources.search_dirs", lambda: [tmp_path / "nowhere"])
    with pytest.raises(DatasetError) as e:
        load_dataset("fashion-mnist")
    assert "nowhere" in str(e.value) and "apt-get install dataset-fashion-mnist" in str(e.value)


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
    with pytest.raises(DatasetError, match="the test split has 20 images but 7 labels"):
        load_dataset(f"idx:{tmp_path}")


def test_full_fashion_mnist(fmnist):
    assert fmnist.x("train").shape == (60000, 1, 28, 28) and fmnist.x("test").shape == (10000, 1, 28, 28)
    assert fmnist.classes[0] == "T-shirt/top" and len(fmnist.classes) == 10 and fmnist.input_shape == (1, 28, 28)
    assert float(fmnist.x("train").min()) == 0.0 and float(fmnist.x("train").max()) == 1.0
    # balanced classes: 6,000 / 1,000 images each
    assert fmnist.y("train").bincount().tolist() == [6000] * 10
    assert fmnist.y("test").bincount().tolist() == [1000] * 10


# --- hostile folders: every way an IDX folder can be broken, each refused with what and how to fix ------

def _gz(tmp_path, key):
    return tmp_path / (FILES[key] + ".gz")


def _rewrite(path, fn):
    path.write_bytes(fn(path.read_bytes()))


def _header(shape, magic=None):
    ndim = len(shape)
    return struct.pack(">I", magic if magic is not None else 0x0800 | ndim) + struct.pack(f">{ndim}I", *shape)


def _loop(path):
    a, b = path.with_name("loop-a"), path.with_name("loop-b")
    a.symlink_to(b)
    b.symlink_to(a)
    path.unlink()
    path.symlink_to(a)


def _empty(folder):
    for p in folder.iterdir():
        p.unlink()
    return folder


def _corrupt_deflate(raw):
    """A valid gzip header, then a deflate block of the reserved type 3: zlib.error, not a gzip error."""
    return raw[:10] + b"\xff" + raw[11:]


BREAK = {  # name -> (how to break a good folder of gzipped IDX files, words the error must contain)
    "folder missing": (lambda d: _empty(d).rmdir(), "does not exist"),
    "folder empty": (_empty, "lacks train-images-idx3-ubyte(.gz)"),
    "folder is a file": (lambda d: _empty(d).rmdir() or d.write_bytes(b"not a folder"), "is a file, not a folder"),
    "folder is a symlink loop": (lambda d: _empty(d).rmdir() or d.symlink_to(d), "symlink loop"),
    "one file missing": (lambda d: _gz(d, "train_y").unlink(), "lacks train-labels-idx1-ubyte(.gz)"),
    "file is a folder": (lambda d: (_gz(d, "test_x").unlink(), _gz(d, "test_x").mkdir()), "is a folder"),
    "broken symlink": (lambda d: (_gz(d, "test_y").unlink(), _gz(d, "test_y").symlink_to(d / "gone")),
                       "broken symlink or a symlink loop"),
    "symlink loop": (lambda d: _loop(_gz(d, "train_x")), "symlink loop"),
    "empty file": (lambda d: _gz(d, "train_x").write_bytes(b""), "bad magic number none"),
    "truncated gzip": (lambda d: _rewrite(_gz(d, "train_x"), lambda r: r[:len(r) // 2]), "cannot read"),
    "corrupt deflate stream": (lambda d: _rewrite(_gz(d, "train_x"), _corrupt_deflate), "invalid block type"),
    "not gzip, not IDX": (lambda d: _gz(d, "train_y").write_bytes(b"<html>404 not found</html>"), "bad magic"),
    "float IDX (0x0D)": (lambda d: _gz(d, "train_y").write_bytes(gzip.compress(_header((50,), 0x0D01) + bytes(200))),
                         "bad magic"),
    "0-dim header": (lambda d: _gz(d, "train_y").write_bytes(gzip.compress(_header((), 0x0800))), "bad magic"),
    "5-dim header": (lambda d: _gz(d, "train_y").write_bytes(gzip.compress(_header((1,) * 5))), "bad magic"),
    "header cut short": (lambda d: _gz(d, "train_x").write_bytes(gzip.compress(_header((50, 28, 28))[:9])),
                         "truncated inside its header"),
    "body truncated": (lambda d: _rewrite(_gz(d, "test_x"), lambda r: gzip.compress(gzip.decompress(r)[:-1])),
                       "truncated"),
    "body oversized": (lambda d: _rewrite(_gz(d, "test_x"), lambda r: gzip.compress(gzip.decompress(r) + bytes(784))),
                       "oversized"),
    "claims 10^9 images": (lambda d: _gz(d, "train_x").write_bytes(
        gzip.compress(_header((10**9, 28, 28)) + bytes(784))), "784,000,000,000 bytes"),
    "claims 2^32-1 per dim": (lambda d: _gz(d, "train_x").write_bytes(
        gzip.compress(_header((2**32 - 1,) * 4) + bytes(16))), "truncated"),
    "labels shorter than images": (lambda d: write_idx(d / FILES["test_y"], np.zeros(7)), "has 20 images but 7 labels"),
    "images 2-D": (lambda d: write_idx(d / FILES["train_x"], np.zeros((50, 784))),
                   "2-dimensional array (50, 784), not N×H×W images"),
    "no images": (lambda d: (write_idx(d / FILES["test_x"], np.zeros((0, 28, 28))),
                             write_idx(d / FILES["test_y"], np.zeros(0))), "the test split is empty"),
    "train and test sizes differ": (lambda d: write_idx(d / FILES["test_x"], np.zeros((20, 32, 32))),
                                    "same size"),
}


@pytest.mark.parametrize("case", list(BREAK))
def test_broken_idx_folder_says_what_and_how_to_fix(tmp_path, case):
    folder = tmp_path / "data"
    folder.mkdir()
    make_folder(folder)
    BREAK[case][0](folder)
    msg = refusal(f"idx:{folder}", BREAK[case][1], folder)
    assert "apt-get" not in msg, msg  # the user's own folder: installing Fashion-MNIST would not fix it


@pytest.mark.parametrize("side", [(32, 32), (8, 8)])
def test_idx_images_of_any_size_load_and_labels_beyond_9_are_classes(tmp_path, side):
    """Formerly refused (the models here take 28×28 in 10 classes): now data; a model's fit is `require`'s job."""
    make_folder(tmp_path, side=side)
    write_idx(tmp_path / FILES["train_y"], np.r_[np.zeros(49), 10])
    write_idx(tmp_path / FILES["test_y"], np.full(20, 255))
    with pytest.warns(UserWarning, match="the labels take 3 values up to 255, so the data has 256 classes"):
        ds = load_dataset(f"idx:{tmp_path}")
    assert ds.input_shape == (1, *side) and ds.n_classes == 256
    with pytest.raises(DatasetError, match="label 10 is out of range: the model has 10 outputs, so labels must be "
                                           "classes 0-9"):
        ds.require(n_outputs=10)


def test_a_claim_of_a_billion_images_allocates_nothing_big(tmp_path):
    import tracemalloc
    p = tmp_path / "huge-idx3-ubyte"
    p.write_bytes(_header((10**9, 28, 28)) + bytes(784 * 3))
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError, match="784,000,000,000 bytes of data but the file holds 2,352"):
            read_idx(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_size_limits_on_disk_and_unzipped(tmp_path, monkeypatch):
    monkeypatch.setattr("compress_engine.playground.sources.MAX_DATA_BYTES", 10_000)
    big = tmp_path / "big-idx1-ubyte"
    big.write_bytes(_header((20_000,)) + bytes(20_000))
    with pytest.raises(DatasetError, match=r"is 20,008 bytes \(limit 10,000\): too big to load here"):
        read_idx(big)
    bomb = tmp_path / "bomb-idx1-ubyte.gz"
    bomb.write_bytes(gzip.compress(_header((20_000,)) + bytes(20_000)))  # 20 KB unzipped from ~50 bytes
    assert bomb.stat().st_size < 10_000
    with pytest.raises(DatasetError, match="unzips to more than 10,000 bytes"):
        read_idx(bomb)


BAD_NAMES = {
    "None": None, "int": 3, "float nan": float("nan"), "bytes": b"fashion-mnist",
    "list (unhashable)": ["fashion-mnist"], "dict (unhashable)": {"idx": "/tmp"}, "empty": "", "blank": "   ",
    "unknown": "mnist", "NUL in name": "fashion\0mnist",
    "NUL in idx path": "idx:/tmp/a\0b", "idx: without folder": "idx:", "idx: blank folder": "idx:   ",
    "missing folder": "idx:/no/such/folder", "10k-char name": "idx:/" + "a" * 10_000,
    "npz: without file": "npz:", "missing npz": "npz:/no/such/file.npz", "npz is a folder": "npz:/tmp",
    "images: without folder": "images:", "missing image folder": "images:/no/such/folder",
}


@pytest.mark.parametrize("name", list(BAD_NAMES.values()), ids=list(BAD_NAMES))
def test_bad_names_are_refused_clearly(name):
    with pytest.raises(DatasetError) as e:
        load_dataset(name)
    msg = str(e.value)
    assert ("fashion-mnist" in msg or "idx:" in msg or "npz:" in msg or "images:" in msg) and len(msg) < 1000 \
        and "\0" not in msg


def test_data_dir_setting_is_used_or_refused_never_skipped(tmp_path, monkeypatch):
    """COMPRESS_DATA_DIR set to an empty (or missing) folder is an error naming it, not a silent fallback."""
    monkeypatch.setenv("COMPRESS_DATA_DIR", str(tmp_path))
    with pytest.raises(DatasetError) as e:
        load_dataset("fashion-mnist")
    assert "COMPRESS_DATA_DIR" in str(e.value) and str(tmp_path) in str(e.value)
    assert "apt-get install dataset-fashion-mnist" in str(e.value)
    monkeypatch.setenv("COMPRESS_DATA_DIR", str(tmp_path / "nope"))
    with pytest.raises(DatasetError, match="COMPRESS_DATA_DIR=.*is not a folder"):
        load_dataset("fashion-mnist")


def test_loaded_datasets_are_cached_per_name(tmp_path):
    name = f"idx:{make_folder(tmp_path)}"
    assert load_dataset(name) is load_dataset(name)
    first = load_dataset(name)
    load_dataset.cache_clear()
    assert load_dataset(name) is not first


# --- scikit-learn's digits -------------------------------------------------------------------------------

def test_digits_is_small_real_data():
    pytest.importorskip("sklearn")
    ds = load_dataset("digits")
    assert len(ds.y("train")) + len(ds.y("test")) == 1797 and ds.n_classes == 10 and ds.input_shape == (1, 8, 8)
    assert ds.classes == tuple("0123456789") and ds.name == "digits"
    for split in ("train", "test"):
        assert float(ds.x(split).min()) == 0.0 and float(ds.x(split).max()) == 1.0
    assert ds.y("test").bincount().min() >= 35  # every class in the 20 % test split
    load_dataset.cache_clear()
    again = load_dataset("digits")  # a fixed seeded split: the same every time
    assert again is not ds and torch.equal(again.y("test"), ds.y("test")) and torch.equal(again.x("train"), ds.x("train"))
    from sklearn.datasets import load_digits
    d = load_digits()
    pool = {tuple(r) for r in d.images.reshape(len(d.images), -1).tolist()}
    assert tuple((ds.x("test")[0].flatten() * 16).round().tolist()) in pool


def test_digits_without_scikit_learn_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # import fails as if not installed
    with pytest.raises(DatasetError, match="scikit-learn, which is not installed here: `pip install scikit-learn`"):
        load_dataset("digits")


# --- .npz files -------------------------------------------------------------------------------------------

def npz(tmp_path, name="d.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def arrays(shape=(3, 5, 7), n=(12, 5), classes=4):
    rng = np.random.default_rng(2)
    return dict(train_x=rng.random((n[0], *shape), np.float32), train_y=np.arange(n[0]) % classes,
                test_x=rng.random((n[1], *shape), np.float32), test_y=np.arange(n[1]) % classes)


@pytest.mark.parametrize("shape", [(3, 5, 7), (20,), (1, 16)])
def test_npz_round_trip(tmp_path, shape):
    a = arrays(shape)
    path = npz(tmp_path, **a, classes=np.array(["ant", "bee", "cat", "dog"]))
    ds = load_dataset(f"npz:{path}")
    assert ds.input_shape == shape and ds.classes == ("ant", "bee", "cat", "dog") and ds.source == str(path)
    assert ds.name == f"npz:{path}"
    for k in ("train", "test"):
        assert np.array_equal(ds.x(k).numpy(), a[f"{k}_x"]) and np.array_equal(ds.y(k).numpy(), a[f"{k}_y"])


def test_npz_without_classes_numbers_them_and_float64_converts(tmp_path):
    a = arrays((2, 2), classes=37, n=(40, 3))
    a["train_x"] = a["train_x"].astype(np.float64)
    ds = load_dataset(f"npz:{npz(tmp_path, **a)}")
    assert ds.n_classes == 37 and ds.classes[-1] == "36" and ds.x("train").dtype == torch.float32


def test_npz_of_token_ids_keeps_them_integers(tmp_path):
    """Token ids (int32 in the file) stay integers, as int64: what an nn.Embedding model takes."""
    a = arrays((12,))
    ids = {k: (a[k] * 1000).astype(np.int32) for k in ("train_x", "test_x")}
    ds = load_dataset(f"npz:{npz(tmp_path, **{**a, **ids})}")
    assert ds.integer_inputs and ds.x("train").dtype == torch.int64
    assert np.array_equal(ds.x("test").numpy(), ids["test_x"])


def _zip_member(path, member, data):
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(member, data)


def _npy(arr):
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _write(path, data):
    path.write_bytes(data)
    return path


def _flip_late_byte(raw):
    """Change one byte of the last array's data (stored uncompressed): its CRC no longer matches."""
    i = raw.rfind(b"test_y.npy") - 200
    return raw[:i] + bytes([raw[i] ^ 0xFF]) + raw[i + 1:]


def _lying_npz(tmp_path):
    path = npz(tmp_path, **{k: v for k, v in arrays().items() if k != "train_x"})
    buf = io.BytesIO()  # a .npy header that claims 4 GB, and none of the data (nothing that size is ever made)
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 1000)})
    header = buf.getvalue()
    _zip_member(path, "train_x.npy", header)
    return path


BAD_NPZ = {  # name -> (how to make the file, words the error must contain)
    "missing array": (lambda d: npz(d, **{k: v for k, v in arrays().items() if k != "test_y"}), "lacks test_y"),
    "not a zip": (lambda d: _write(d / "d.npz", b"just text, no zip here" * 10), "cannot read"),
    "a plain .npy": (lambda d: _write(d / "d.npz", _npy(np.zeros(3))), "cannot read"),
    "truncated": (lambda d: _write(d / "d.npz", npz(d, **arrays()).read_bytes()[:300]), "cannot read"),
    "corrupt member": (lambda d: _write(d / "d.npz", _flip_late_byte(npz(d, **arrays()).read_bytes())), "cannot read"),
    "object array (pickle)": (lambda d: npz(d, **arrays(), classes=np.array(["a", 1, None, 2.0], dtype=object)),
                              "refused"),
    "header lies about size": (_lying_npz, "header says (1000000, 1000)"),
    "integer train, float test": (lambda d: npz(d, **dict(arrays(), train_x=np.zeros((12, 3, 5, 7), np.uint8))),
                                  "train_x is integer (uint8) but test_x is floating point"),
    "labels out of classes": (lambda d: npz(d, **arrays(classes=4), classes=np.array(["a", "b"])),
                              "label 3 is out of range: 2 class names"),
    "2-D classes": (lambda d: npz(d, **arrays(), classes=np.array([["a", "b"], ["c", "d"]])),
                    "classes must be a 1-D array"),
    "NaN in test": (lambda d: npz(d, **dict(arrays(), test_x=np.full((5, 3, 5, 7), np.nan, np.float32))),
                    "test_x[0] holds NaN"),
}


@pytest.mark.parametrize("case", list(BAD_NPZ))
def test_broken_npz_says_what_and_how_to_fix(tmp_path, case):
    path = BAD_NPZ[case][0](tmp_path)
    refusal(f"npz:{path}", BAD_NPZ[case][1], path)


def test_npz_size_limit(tmp_path, monkeypatch):
    monkeypatch.setattr("compress_engine.playground.sources.MAX_DATA_BYTES", 1000)
    with pytest.raises(DatasetError, match=r"unzips to [\d,]+ bytes \(limit 1,000\)"):
        load_dataset(f"npz:{npz(tmp_path, **arrays())}")


def test_every_source_gives_a_core_dataset(tmp_path):
    (tmp_path / "idx").mkdir()
    for name in (f"idx:{make_folder(tmp_path / 'idx')}", f"npz:{npz(tmp_path, **arrays())}",
                 f"images:{image_folder(tmp_path / 'images')[0]}"):
        assert isinstance(load_dataset(name), Dataset)


# --- image folders (torchvision's ImageFolder layout, per split) ------------------------------------------

Image = pytest.importorskip("PIL.Image", reason="Pillow reads image folders")
CLASSES = ("cat", "dog", "zebra")


def image_folder(root, n=(9, 6), side=(5, 7), mode="L", ext=".png", rng_seed=0):
    """root/train/<class>/*.png and root/test/<class>/*.png of random pixels; returns (root, {split: (x, y)}),
    x the uint8 pixels N×H×W(×3) in the order the loader reads them (class folders sorted, then file names)."""
    rng = np.random.default_rng(rng_seed)
    out = {}
    for split, count in zip(("train", "test"), n):
        xs, ys = [], []
        for c, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                a = rng.integers(0, 256, (side[1], side[0], 3) if mode == "RGB" else (side[1], side[0]), np.uint8)
                Image.fromarray(a, mode).save(folder / f"{i:03d}{ext}")
                xs.append(a)
                ys.append(c)
        out[split] = (np.stack(xs), np.array(ys))
    return root, out


def test_an_image_folder_holds_exactly_its_pixels_and_its_folders_are_the_classes(tmp_path):
    root, arrays_ = image_folder(tmp_path)
    (root / "train" / "cat" / "notes.txt").write_text("not an image")  # skipped, as torchvision skips it
    (root / "train" / "cat" / ".DS_Store").write_bytes(b"\0\1")
    ds = load_dataset(f"images:{root}")
    assert ds.classes == CLASSES and ds.input_shape == (1, 7, 5)
    for split, (x, y) in arrays_.items():
        assert torch.equal(ds.x(split), torch.from_numpy(x).float().div(255).unsqueeze(1))
        assert torch.equal(ds.y(split), torch.from_numpy(y))


def test_colour_and_16_bit_images(tmp_path):
    root, arrays_ = image_folder(tmp_path / "rgb", mode="RGB")
    ds = load_dataset(f"images:{root}")
    assert ds.input_shape == (3, 7, 5)
    assert torch.equal(ds.x("test"), torch.from_numpy(arrays_["test"][0]).permute(0, 3, 1, 2).float().div(255))
    # one greyscale image among colour ones is read as RGB (its value in all three channels)
    grey = np.full((7, 5), 77, np.uint8)
    Image.fromarray(grey, "L").save(root / "test" / "dog" / "zz-grey.png")
    load_dataset.cache_clear()
    last = load_dataset(f"images:{root}").x("test")[2 * 6]  # the last of dog/ (classes and files sorted)
    assert torch.equal(last, torch.full((3, 7, 5), 77 / 255))
    # 16-bit greyscale PNGs keep their precision: value / 65,535
    deep = tmp_path / "deep"
    for split in ("train", "test"):
        (deep / split / "a").mkdir(parents=True)
        Image.fromarray(np.array([[0, 1000], [40000, 65535]], np.uint16)).save(deep / split / "a" / "x.png")
    x = load_dataset(f"images:{deep}").x("train")
    assert torch.equal(x, torch.tensor([[[[0, 1000], [40000, 65535]]]]) / 65535.0)


def _png_claiming(path, width, height):
    """A 1×1 PNG whose header (IHDR, CRC fixed) claims width × height pixels."""
    buf = io.BytesIO()
    Image.fromarray(np.zeros((1, 1), np.uint8), "L").save(buf, "PNG")
    raw = bytearray(buf.getvalue())
    at = raw.index(b"IHDR")
    raw[at + 4:at + 12] = struct.pack(">II", width, height)
    raw[at + 17:at + 21] = struct.pack(">I", zlib.crc32(bytes(raw[at:at + 17])))
    path.write_bytes(bytes(raw))


BAD_IMAGES = {
    "no train folder": (lambda r: __import__("shutil").rmtree(r / "train"), "has no train/ folder"),
    "no class folders": (lambda r: [__import__("shutil").rmtree(d) for d in (r / "test").iterdir()],
                         "test has no class folders"),
    "an empty class": (lambda r: (r / "train" / "emu").mkdir(), "class folder emu holds no image"),
    "a class only in test": (lambda r: (r / "test" / "emu").mkdir(), "test has class folders that train/ lacks (emu)"),
    "text named .png": (lambda r: (r / "train" / "dog" / "000.png").write_text("hello"), "cannot read image"),
    "truncated png": (lambda r: (r / "test" / "cat" / "001.png").write_bytes((r / "test" / "cat" / "001.png")
                                                                          .read_bytes()[:60]), "cannot read image"),
    "two sizes": (lambda r: Image.fromarray(np.zeros((9, 9), np.uint8), "L").save(r / "test" / "dog" / "big.png"),
                  "not all one size (5×7"),
    "two sizes, the fix": (lambda r: Image.fromarray(np.zeros((9, 9), np.uint8), "L").save(
        r / "test" / "dog" / "b.png"), "?size=5' (each scaled to cover 5×5"),
    "a bomb's header": (lambda r: _png_claiming(r / "train" / "cat" / "bomb.png", 5_000, 5_000),
                        "says it is 5,000×5,000 pixels"),
    "16-bit among colour": (lambda r: [Image.fromarray(np.zeros((7, 5), np.uint16)).save(r / "test" / "dog" / "w.png"),
                                       Image.fromarray(np.zeros((7, 5, 3), np.uint8), "RGB").save(
                                           r / "test" / "dog" / "c.png")], "mixes 16-bit greyscale"),
}


@pytest.mark.parametrize("case", list(BAD_IMAGES))
def test_a_broken_image_folder_says_what_and_how_to_fix(tmp_path, case):
    root, _ = image_folder(tmp_path)
    BAD_IMAGES[case][0](root)
    refusal(f"images:{root}", BAD_IMAGES[case][1], root)


def test_an_image_folder_without_pillow_says_how_to_install_it(tmp_path, monkeypatch):
    root, _ = image_folder(tmp_path)
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(DatasetError, match=r"needs Pillow.*pip install pillow"):
        load_dataset(f"images:{root}")


# --- the first test images, read without torch (Home's first paint) -------------------------------------

def test_first_test_images_are_the_loaded_datasets_exactly(fmnist):
    from compress_engine import first_test_images
    head = first_test_images("fashion-mnist", 40)
    assert head["x"].dtype == np.float32 and head["x"].shape == (40, 1, 28, 28)
    assert np.array_equal(head["x"], fmnist.x("test")[:40].numpy())  # bit for bit, as images_to_float makes them
    assert np.array_equal(head["y"], fmnist.y("test")[:40].numpy()) and head["classes"] == list(fmnist.classes)


def test_first_test_images_read_no_torch(tmp_path):
    """In a fresh interpreter: the head of a Fashion-MNIST folder, with torch never imported."""
    import json
    import os
    import subprocess
    make_folder(tmp_path, n_train=5, n_test=20, classes=10)
    code = ("import json, sys; from compress_engine import first_test_images as f; h = f('fashion-mnist', 12); "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "print(json.dumps([h['x'].tolist(), h['y'].tolist()]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "COMPRESS_DATA_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    x, y = json.loads(out.stdout)
    want = load_dataset(f"idx:{tmp_path}")
    assert np.array_equal(np.array(x, np.float32), want.x("test")[:12].numpy()) and y == want.y("test")[:12].tolist()


@pytest.mark.parametrize("case, words", [
    ("truncated", "truncated"), ("too few", "has 5 images but 20 labels"), ("bad magic", "not a 3-dimensional unsigned-byte IDX"),
    ("corrupt gzip", "cannot read")])
def test_first_test_images_of_broken_files_say_what_and_how(tmp_path, monkeypatch, case, words):
    from compress_engine import first_test_images
    make_folder(tmp_path, n_test=20, classes=10, gz=case == "corrupt gzip")
    images = next(tmp_path.glob(FILES["test_x"] + "*"))
    if case == "truncated":
        images.write_bytes(images.read_bytes()[:16 + 784 * 3])
    elif case == "too few":
        write_idx(images.with_name(FILES["test_x"]), np.zeros((5, 28, 28)), gz=False)
    elif case == "bad magic":
        write_idx(images.with_name(FILES["test_x"]), np.zeros((20, 28, 28)), gz=False, magic=0x0802)
    else:
        images.write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    monkeypatch.setenv("COMPRESS_DATA_DIR", str(tmp_path))
    with pytest.raises(DatasetError) as e:
        first_test_images("fashion-mnist", 12)
    assert words in str(e.value) and str(e.value).startswith("COMPRESS_DATA_DIR:"), str(e.value)
    assert "apt-get install dataset-fashion-mnist" in str(e.value)


def test_first_test_images_defer_odd_files_and_other_sources_to_the_full_load(tmp_path, monkeypatch):
    from compress_engine import first_test_images
    make_folder(tmp_path, n_test=20, classes=10)
    write_idx(tmp_path / FILES["test_y"], np.r_[10, np.zeros(19)])  # label 10: the full load names the file
    monkeypatch.setenv("COMPRESS_DATA_DIR", str(tmp_path))
    with pytest.raises(DatasetError, match="label 10 is out of range"):
        first_test_images("fashion-mnist", 12)
    head = first_test_images("digits", 5)
    digits = load_dataset("digits")
    assert np.array_equal(head["x"], digits.x("test")[:5].numpy()) and head["classes"] == list(digits.classes)


# --- image folders of many sizes, loaded at one ('?size=') -----------------------------------------------

def _resized_reference(a, h, w):
    """torchvision's Resize + CenterCrop of one H×W(×C) image, from torch alone: F.interpolate (bilinear,
    antialiased, which is made to match Pillow's) to cover h × w with the aspect kept, then the centre h × w."""
    x = torch.from_numpy(a.astype(np.float64))
    x = x[None, None] if x.dim() == 2 else x.permute(2, 0, 1)[None]
    H, W = x.shape[-2:]
    scale = max(h / H, w / W)
    nh, nw = max(h, round(H * scale)), max(w, round(W * scale))
    x = torch.nn.functional.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    top, left = int(round((nh - h) / 2.0)), int(round((nw - w) / 2.0))
    return x[0, :, top:top + h, left:left + w]


@pytest.mark.parametrize("mode, depth", [("L", 255), ("RGB", 255), ("I;16", 65535)])
def test_images_of_many_sizes_load_at_one_as_torchvisions_resize_and_centre_crop(tmp_path, mode, depth):
    rng = np.random.default_rng(1)
    shapes = [(30, 50), (64, 48), (12, 12), (7, 5), (12, 40)]  # (H, W): wide, tall, the size itself, smaller, crop
    written = {}
    for split in ("train", "test"):
        for c, cls in enumerate(("a", "b")):
            (tmp_path / split / cls).mkdir(parents=True)
            for i, (H, W) in enumerate(shapes):
                shape = (H, W, 3) if mode == "RGB" else (H, W)
                a = rng.integers(0, depth + 1, shape).astype(np.uint16 if depth > 255 else np.uint8)
                Image.fromarray(a).save(tmp_path / split / cls / f"{i}.png")
                written[split, c, i] = a
    ds = load_dataset(f"images:{tmp_path}?size=12")
    channels = 3 if mode == "RGB" else 1
    assert ds.input_shape == (channels, 12, 12) and ds.classes == ("a", "b")
    x = ds.x("test")
    for (split, c, i), a in written.items():
        if split == "test":
            got = x[c * len(shapes) + i].double() * depth
            ref = _resized_reference(a, 12, 12)
            assert (got - ref).abs().max() <= 1.0 + 1e-6, (shapes[i], float((got - ref).abs().max()))
    assert torch.equal(x[2], torch.from_numpy(written["test", 0, 2].astype(np.float32)).reshape(-1, 12, 12)
                       .div(depth) if mode != "RGB" else
                       torch.from_numpy(written["test", 0, 2]).permute(2, 0, 1).float().div(255))  # kept as it is
    assert torch.equal(load_dataset(f"images:{tmp_path}?size=12x12").x("train"), ds.x("train"))


def test_a_size_of_height_by_width_crops_the_centre_and_keeps_the_aspect(tmp_path):
    a = np.zeros((10, 30), np.uint8)
    a[:, :10], a[:, 10:20], a[:, 20:] = 50, np.arange(10)[:, None] * 20 + np.arange(10), 200
    for split in ("train", "test"):
        (tmp_path / split / "only").mkdir(parents=True)
        Image.fromarray(a).save(tmp_path / split / "only" / "wide.png")
    square = load_dataset(f"images:{tmp_path}?size=10").x("test")[0, 0]
    assert torch.equal(square, torch.from_numpy(a[:, 10:20]).float() / 255)  # no scaling needed: the middle third
    flat = load_dataset(f"images:{tmp_path}?size=5x30").x("test")[0, 0]    # 5 high: the middle rows, full width
    assert torch.equal(flat, torch.from_numpy(a[2:7]).float() / 255)


def test_big_jpeg_photos_decode_at_a_reduced_size_and_match_the_full_decode(tmp_path):
    yy, xx = np.mgrid[0:600, 0:800]
    photo = np.stack([xx * 255 // 799, yy * 255 // 599, (xx + yy) * 255 // 1398], -1).astype(np.uint8)
    for split in ("train", "test"):
        (tmp_path / "jpg" / split / "sky").mkdir(parents=True)
        (tmp_path / "png" / split / "sky").mkdir(parents=True)
        Image.fromarray(photo).save(tmp_path / "jpg" / split / "sky" / "a.jpg", quality=95)
        Image.open(tmp_path / "jpg" / split / "sky" / "a.jpg").save(tmp_path / "png" / split / "sky" / "a.png")
    jpg = load_dataset(f"images:{tmp_path / 'jpg'}?size=24x32").x("test")  # decoded at 1/8 size by draft()
    png = load_dataset(f"images:{tmp_path / 'png'}?size=24x32").x("test")  # the same pixels decoded in full
    assert jpg.shape == png.shape == (1, 3, 24, 32)
    assert float((jpg - png).abs().mean()) * 255 < 2.0


def test_a_folder_whose_name_holds_size_is_read_as_that_folder(tmp_path):
    root, _ = image_folder(tmp_path / "odd?size=3")
    assert load_dataset(f"images:{root}").input_shape == (1, 7, 5)


BAD_SIZES = {"?size=0": "out of range", "?size=4097": "out of range", "?size=12x0": "out of range",
             "?size=abc": "is not a size", "?size=3x4x5": "is not a size", "?size=": "is not a size",
             "?size=-3": "is not a size"}


@pytest.mark.parametrize("suffix", list(BAD_SIZES))
def test_a_bad_size_says_what_sizes_are(tmp_path, suffix):
    root, _ = image_folder(tmp_path)
    refusal(f"images:{root}{suffix}", BAD_SIZES[suffix], root)


def test_a_resized_load_still_refuses_a_bombs_header(tmp_path):
    root, _ = image_folder(tmp_path)
    _png_claiming(root / "train" / "cat" / "bomb.png", 10_000, 10_000)
    refusal(f"images:{root}?size=8", "says it is 10,000×10,000 pixels (limit 89,478,485", root)


# --- a folder of class folders, no train/ and test/: a test share held out by a hash of each path -----------

def class_folders(root, counts, side=6, seed=0):
    """root/<class>/<i>.png of random 8-bit pixels, `counts` images per class (classes c0, c1, ...); returns
    {pixel bytes: (class index, relative path)}, each image's pixels unique."""
    rng = np.random.default_rng(seed)
    written = {}
    for c, n in enumerate(counts):
        (root / f"c{c}").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            a = rng.integers(0, 256, (side, side), np.uint8)
            Image.fromarray(a).save(root / f"c{c}" / f"{i:03d}.png")
            written[a.tobytes()] = (c, f"c{c}/{i:03d}.png")
    return written


def split_of(name):
    """{split: {relative path}} of a loaded image folder, each image found by its pixels; checks every label."""
    ds, found = load_dataset(name), {}
    for split in ("train", "test"):
        x, y = ds.x(split), ds.y(split)
        found[split] = {}
        for img, label in zip((x * 255).round().to(torch.uint8).numpy(), y.tolist()):
            found[split][img[0].tobytes()] = label
    return ds, found


def test_a_folder_of_class_folders_holds_out_a_fifth_of_each_class_the_same_way_everywhere(tmp_path):
    written = class_folders(tmp_path / "a", (60, 60, 60))
    ds, found = split_of(f"images:{tmp_path / 'a'}")
    assert ds.classes == ("c0", "c1", "c2")
    assert found["train"].keys() | found["test"].keys() == written.keys()       # every image, once
    assert not found["train"].keys() & found["test"].keys()
    assert all(written[k][0] == label for part in found.values() for k, label in part.items())
    for c in range(3):  # a fifth of each class, 12 of 60: some, and within 4 binomial standard deviations (3.1)
        assert 1 <= sum(written[k][0] == c for k in found["test"]) <= 12 + 12
    # the split depends on the paths inside the folder, not where it is: a copy elsewhere splits the same
    __import__("shutil").copytree(tmp_path / "a", tmp_path / "elsewhere" / "b")
    assert split_of(f"images:{tmp_path / 'elsewhere' / 'b'}")[1] == found
    # adding images moves none of the others between train and test
    __import__("shutil").copytree(tmp_path / "a", tmp_path / "c")
    rng, paths = np.random.default_rng(7), dict(written)
    for i in range(60, 70):
        a = rng.integers(0, 256, (6, 6), np.uint8)
        Image.fromarray(a).save(tmp_path / "c" / "c0" / f"{i:03d}.png")
        paths[a.tobytes()] = (0, f"c0/{i:03d}.png")
    _, again = split_of(f"images:{tmp_path / 'c'}")
    before = {written[k][1]: split for split in found for k in found[split]}
    after = {paths[k][1]: split for split in again for k in again[split]}
    assert len(after) == 190 and {p: after[p] for p in before} == before
    # a larger share holds out a superset: the same hash, a higher threshold
    _, half = split_of(f"images:{tmp_path / 'a'}?test=0.5")
    _, fifth = split_of(f"images:{tmp_path / 'a'}?test=0.2")
    assert fifth["test"].keys() < half["test"].keys()


def test_a_class_too_small_to_hold_out_keeps_its_image_for_training(tmp_path):
    written = class_folders(tmp_path, (40, 1))
    for share in ("0.2", "0.9"):
        load_dataset.cache_clear()
        ds, found = split_of(f"images:{tmp_path}?test={share}")
        lone = next(k for k, (c, _) in written.items() if c == 1)
        assert lone in found["train"] and ds.classes == ("c0", "c1")


def test_class_folders_of_many_sizes_load_with_both_options(tmp_path):
    for c in ("cat", "dog"):
        (tmp_path / c).mkdir()
        for i in range(10):
            Image.fromarray(np.full((10 + i, 20 - i), 9 * i, np.uint8)).save(tmp_path / c / f"{i}.png")
    ds = load_dataset(f"images:{tmp_path}?size=8&test=0.5")
    assert ds.input_shape == (1, 8, 8) and len(ds.y("train")) + len(ds.y("test")) == 20
    assert torch.equal(load_dataset(f"images:{tmp_path}?test=0.5&size=8").x("test"), ds.x("test"))


BAD_OPTIONS = {"?test=0": "must be a number between 0 and 1", "?test=1": "must be a number between 0 and 1",
               "?test=nan": "must be a number between 0 and 1", "?test=a fifth": "must be a number between 0 and 1",
               "?colour=rgb": "'colour=rgb' is not an option of an image folder",
               "?size": "'size' is not an option", "?size=4&size=5": "'size=' is given twice"}


@pytest.mark.parametrize("suffix", list(BAD_OPTIONS))
def test_a_bad_option_says_which_options_there_are(tmp_path, suffix):
    class_folders(tmp_path, (5, 5))
    refusal(f"images:{tmp_path}{suffix}", BAD_OPTIONS[suffix], tmp_path)


def test_a_test_share_of_a_folder_with_its_own_test_folder_or_too_few_images_is_refused(tmp_path):
    root, _ = image_folder(tmp_path / "split")
    refusal(f"images:{root}?test=0.2", "has its own test/ folder, so there is nothing to hold out", root)
    class_folders(tmp_path / "few", (2, 2))
    names = [f"{c}/{i:03d}.png" for c in ("c0", "c1") for i in range(2)]
    share = next(s for s in ("0.01", "0.02", "0.05") if not any(
        int.from_bytes(__import__("hashlib").sha256(n.encode()).digest()[:8], "big") < float(s) * 2 ** 64
        for n in names))  # a share at which none of the four images is held out
    refusal(f"images:{tmp_path / 'few'}?test={share}", "no image fell in the held-out test share", tmp_path / "few")


# --- CSV tables ------------------------------------------------------------------------------------------

def iris_csv(path, delimiter=",", extra=""):
    """scikit-learn's bundled iris (150 flowers, 4 measurements) as a CSV with an id column and the species by name;
    returns (x float32 150×4, species names, target_names)."""
    from sklearn.datasets import load_iris
    d = load_iris()
    names = [d.target_names[t] for t in d.target]
    lines = [delimiter.join(["id", *d.feature_names, "species"])]
    lines += [delimiter.join([str(i), *(repr(float(v)) for v in row), sp]) for i, (row, sp) in
              enumerate(zip(d.data, names))]
    path.write_text(extra + "\n".join(lines) + "\n", encoding="utf-8")
    return d.data.astype(np.float32), names, tuple(d.target_names)


def rows_of(ds, split):
    return [(tuple(r), ds.classes[c]) for r, c in zip(ds.x(split).tolist(), ds.y(split).tolist())]


def test_a_csv_table_loads_every_row_once_with_a_fifth_of_each_class_held_out(tmp_path):
    x, names, target_names = iris_csv(tmp_path / "iris.csv")
    ds = load_dataset(f"csv:{tmp_path / 'iris.csv'}?drop=id")
    assert ds.classes == target_names and ds.input_shape == (4,)      # species sorted: scikit-learn's order too
    train, test = rows_of(ds, "train"), rows_of(ds, "test")
    expected = [(tuple(r), sp) for r, sp in zip(x.tolist(), names)]
    assert sorted(train + test) == sorted(expected)                    # every row once, with its own label
    assert [r for r in expected if r in test] == test                  # file order kept within a split
    for sp in target_names:  # a fifth of each class, 10 of 50: some, within 4 binomial standard deviations (2.8)
        assert 1 <= sum(s == sp for _, s in test) <= 10 + 11
    # the same with semicolons, a byte-order mark and blank lines: the same dataset
    iris_csv(tmp_path / "semi.csv", ";", extra="\ufeff\n")
    again = load_dataset(f"csv:{tmp_path / 'semi.csv'}?drop=id")
    assert rows_of(again, "test") == test and rows_of(again, "train") == train
    # a larger share holds out a superset
    half = rows_of(load_dataset(f"csv:{tmp_path / 'iris.csv'}?drop=id&test=0.5"), "test")
    assert set(test) < set(half)


def test_equal_rows_are_never_split_between_train_and_test(tmp_path):
    lines = ["a,b,label"] + [f"{i % 7},{i % 5},{i % 2}" for i in range(300)]  # 35 distinct rows, each many times
    (tmp_path / "dups.csv").write_text("\n".join(lines))
    ds = load_dataset(f"csv:{tmp_path / 'dups.csv'}")
    assert ds.classes == ("0", "1") and len(ds.y("train")) + len(ds.y("test")) == 300
    assert not set(rows_of(ds, "train")) & set(rows_of(ds, "test")) and rows_of(ds, "test")


def test_a_folder_of_train_and_test_csv_keeps_numeric_labels_as_class_indices(tmp_path):
    rng = np.random.default_rng(0)
    data = {}
    for split, n in (("train", 40), ("test", 15)):
        x = rng.normal(size=(n, 3)).astype(np.float32)
        y = rng.choice([0, 1, 2, 3, 5], n)  # class 4 never appears: 5 stays class 5
        lines = ["f1,f2,f3,target"] + [",".join([*(repr(float(v)) for v in row), f"{c}.0" if c == 3 else str(c)])
                                       for row, c in zip(x, y)]
        (tmp_path / f"{split}.csv").write_text("\n".join(lines))
        data[split] = x, y
    ds = load_dataset(f"csv:{tmp_path}")
    assert ds.classes == tuple("012345")
    for split, (x, y) in data.items():
        assert torch.equal(ds.x(split), torch.from_numpy(x)) and torch.equal(ds.y(split), torch.from_numpy(y))


def test_a_csv_dataset_trains_compresses_and_decodes_exactly(tmp_path):
    import compress_engine as ce
    from compress_engine.core.train import accuracy, fit
    iris_csv(tmp_path / "iris.csv")
    ds = load_dataset(f"csv:{tmp_path / 'iris.csv'}?drop=id&label=species")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    fit(model, ds, epochs=20, lr=1e-2, batch_size=16)
    res = ce.compress(model, ce.Recipe(sparsity=0.5, clusters=4, huffman=True), ds)
    fresh = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    decoded, _ = ce.decode_model(res.artifact, module=fresh)
    assert all(torch.equal(a, b) for a, b in zip(decoded.state_dict().values(), res.model.state_dict().values()))
    assert all(float((layer.weight == 0).float().mean()) >= 0.49 for layer in (decoded[0], decoded[2]))
    assert accuracy(decoded, ds.x("test"), ds.y("test")) == res.metrics["accuracy"]  # what the artifact scores


BAD_CSV = {
    "no header": ("1,2,3\n4,5,6\n", "", "the first row holds numbers (1, 2, 3), not column names"),
    "header only": ("a,b,label\n", "", "holds a header row only"),
    "a ragged row": ("a,b,label\n1,2,0\n3,0\n", "", "row 3 has 2 fields but the header has 3"),
    "an empty cell": ("a,b,label\n1,2,0\n3,,1\n", "", "row 3, column 'b' is empty"),
    "a word among numbers": ("a,colour,label\n1,red,0\n", "", "column 'colour' holds 'red', not a finite number"),
    "a column twice": ("a,a,label\n1,2,0\n", "", "names column 'a' twice"),
    "an unknown label": ("a,b,label\n1,2,0\n", "?label=kind", "has no column 'kind' (its columns: a, b, label)"),
    "the label dropped": ("a,b,label\n1,2,0\n", "?drop=label", "is both a label and dropped"),
    "a label named twice": ("a,b,label\n1,2,0\n", "?label=b,b", "names a column twice"),
    "a word among tags": ("a,b,c\n1,0,1\n2,1,maybe\n", "?label=b,c", "row 3, column 'c' holds 'maybe': several "
                          "label columns are multi-label tags, each 0 or 1"),
    "several columns as classes": ("a,b,c\n1,0,1\n", "?label=b,c&task=classes", "takes one label column"),
    "a continuous target as classes": ("a,b,target\n1,2,0.5\n3,4,1.5\n", "?task=classes",
                                       "label '0.5' is not a class"),
    "a word as a regression target": ("a,b,target\n1,2,0.5\n3,4,cat\n", "?task=regression",
                                      "row 3's label 'cat' is not a finite number"),
    "an unknown task": ("a,b,target\n1,2,0\n", "?task=maybe", "task 'maybe' is not one"),
    "an empty label": ("a,b,label\n1,2,cat\n3,4,\n", "", "a label is empty (row 3)"),
    "latin-1 bytes": (b"a,b,label\n1,2,caf\xe9\n", "", "is not UTF-8 text"),
    "no features left": ("a,label\n1,0\n", "?drop=a", "no feature column is left"),
    "a bad share": ("a,label\n1,0\n", "?test=2", "must be a number between 0 and 1"),
}


@pytest.mark.parametrize("case", list(BAD_CSV))
def test_a_broken_csv_says_what_and_how_to_fix(tmp_path, case):
    text, options, words = BAD_CSV[case]
    path = tmp_path / "t.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    refusal(f"csv:{path}{options}", words, path)


def test_a_broken_csv_folder_says_what_and_how_to_fix(tmp_path):
    (tmp_path / "train.csv").write_text("a,b,label\n1,2,0\n")
    refusal(f"csv:{tmp_path}", "has no test.csv", tmp_path)
    (tmp_path / "test.csv").write_text("a,c,label\n1,2,0\n")
    refusal(f"csv:{tmp_path}", "feature columns (a, b) and test.csv's (a, c) differ", tmp_path)
    (tmp_path / "test.csv").write_text("a,b,label\n1,2,0\n")
    refusal(f"csv:{tmp_path}?test=0.2", "has its own test.csv, so there is nothing to hold out", tmp_path)
    refusal(f"csv:{tmp_path / 'none.csv'}", "does not exist", tmp_path / "none.csv")


def test_several_label_columns_of_yes_and_no_are_multi_label_tags(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 3)).round(3)
    tags = rng.random((200, 2)) < 0.4
    words = {True: ("1", "yes", "True"), False: ("0", "no", "false")}
    lines = ["f1,f2,f3,indoor,people"] + [",".join([*map(str, r), words[bool(a)][i % 3], words[bool(b)][i % 3]])
                                          for i, (r, (a, b)) in enumerate(zip(x, tags))]
    (tmp_path / "t.csv").write_text("\n".join(lines))
    ds = load_dataset(f"csv:{tmp_path / 't.csv'}?label=indoor,people")
    assert ds.multilabel and ds.classes == ("indoor", "people") and ds.input_shape == (3,)
    got = {tuple(np.float32(r).tolist()): tuple(t) for split in ("train", "test")
           for r, t in zip(ds.x(split).numpy(), ds.y(split).tolist())}
    assert got == {tuple(np.float32(r).tolist()): tuple(map(bool, t)) for r, t in zip(x, tags)}
    # numbers beyond 0 and 1 in several columns are regression targets, one per column
    lines = ["f1,lat,lon"] + [f"{i},{i / 7:.4f},{-i / 3:.4f}" for i in range(50)]
    (tmp_path / "geo.csv").write_text("\n".join(lines))
    geo = load_dataset(f"csv:{tmp_path / 'geo.csv'}?label=lat,lon")
    assert geo.regression and geo.label_shape == (2,)


# --- image folders whose labels are in a CSV manifest ('?labels=labels.csv') ----------------------------------

def manifest_folder(root, n=40, side=6, seed=0):
    """root/img/<i>.png of random pixels and root/labels.csv: file, age (a float), indoor and people (yes/no tags)
    and kind (a word); returns {pixel bytes: (age, indoor, people, kind)}."""
    rng = np.random.default_rng(seed)
    (root / "img").mkdir(parents=True)
    lines, written = ["file,age,indoor,people,kind"], {}
    for i in range(n):
        a = rng.integers(0, 256, (side, side), np.uint8)
        Image.fromarray(a).save(root / "img" / f"{i:03d}.png")
        row = (round(float(rng.uniform(1, 90)), 2), bool(rng.random() < 0.5), bool(rng.random() < 0.3),
               ("cat", "dog")[i % 2])
        lines.append(f"img/{i:03d}.png,{row[0]},{'yes' if row[1] else 'no'},{'yes' if row[2] else 'no'},{row[3]}")
        written[a.tobytes()] = row
    (root / "labels.csv").write_text("\n".join(lines))
    return written


def pixels_and_labels(ds):
    return [((x * 255).round().to(torch.uint8).numpy()[0].tobytes(), y) for split in ("train", "test")
            for x, y in zip(ds.x(split), ds.y(split).tolist())]


def test_an_image_folder_with_a_labels_csv_holds_regression_targets_tags_or_classes(tmp_path):
    written = manifest_folder(tmp_path)
    ages = load_dataset(f"images:{tmp_path}?labels=labels.csv&label=age")
    assert ages.regression and ages.input_shape == (1, 6, 6)
    got = pixels_and_labels(ages)
    assert len(got) == 40 and all(y == pytest.approx(written[k][0], abs=1e-5) for k, y in got)
    tags = load_dataset(f"images:{tmp_path}?labels=labels.csv&label=indoor,people")
    assert tags.multilabel and tags.classes == ("indoor", "people")
    assert all(tuple(y) == written[k][1:3] for k, y in pixels_and_labels(tags))
    kinds = load_dataset(f"images:{tmp_path}?labels={tmp_path / 'labels.csv'}&label=kind&size=4")
    assert kinds.classes == ("cat", "dog") and kinds.input_shape == (1, 4, 4)
    # the held-out images are chosen by their paths: the same whichever columns are the labels
    assert len(ages.y("test")) == len(tags.y("test")) and 0 < len(ages.y("test")) < 40


@pytest.mark.parametrize("edit, options, words", [
    (lambda r: (r / "labels.csv").write_text("file,age\n../outside.png,3\n"), "", "which is outside"),
    (lambda r: (r / "labels.csv").write_text("file,age\nimg/none.png,3\n"), "", "does not exist: fix the path"),
    (lambda r: (r / "labels.csv").write_text("file\nimg/000.png\n"), "", "has only the column 'file'"),
    (lambda r: None, "&label=height", "has no label column 'height'"),
    (lambda r: None, "&label=file", "has no label column 'file'"),
    (lambda r: (r / "labels.csv").unlink(), "", "the manifest"),
])
def test_a_broken_labels_csv_says_what_and_how_to_fix(tmp_path, edit, options, words):
    manifest_folder(tmp_path)
    edit(tmp_path)
    refusal(f"images:{tmp_path}?labels=labels.csv{options}", words, tmp_path)


def test_a_label_column_without_a_labels_csv_is_refused(tmp_path):
    root, _ = image_folder(tmp_path)
    refusal(f"images:{root}?label=age", "'?label=' picks a column of a labels CSV, and none is given", root)


def test_a_bare_folder_is_pointed_to_its_prefix(tmp_path):
    """`--data /path/to/folder` said only "unknown dataset": the folder exists, and holds IDX files or images, so
    the refusal names the prefix that reads it."""
    idx = tmp_path / "idx"
    idx.mkdir()
    (idx / "train-images-idx3-ubyte.gz").write_bytes(b"")
    with pytest.raises(DatasetError, match=rf"did you mean 'idx:{idx}'\?\)"):
        load_dataset(str(idx))
    pics = tmp_path / "pics" / "train" / "cat"
    pics.mkdir(parents=True)
    (pics / "1.png").write_bytes(b"")
    with pytest.raises(DatasetError, match=f"did you mean 'images:{tmp_path / 'pics'}'"):
        load_dataset(str(tmp_path / "pics"))
    many = tmp_path / "many"  # 600 class folders before the one image: folders are not counted
    for i in range(600):
        (many / f"c{i:03d}").mkdir(parents=True)
    (many / "c599" / "1.png").write_bytes(b"")
    with pytest.raises(DatasetError, match=f"did you mean 'images:{many}'"):
        load_dataset(str(many))
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "a.csv").write_text("x,y\n")
    for plain in (tmp_path / "absent", tmp_path / "tables"):  # nothing to tell from: no guess
        with pytest.raises(DatasetError, match="unknown dataset") as e:
            load_dataset(str(plain))
        assert "did you mean" not in str(e.value)
