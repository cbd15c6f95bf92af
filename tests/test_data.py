"""core.data: Dataset.from_tensors takes any input shape and any class count, and refuses bad data clearly."""

import warnings

import numpy as np
import pytest
import torch

from compress_engine import Dataset, DatasetError


def make(shape=(20,), classes=3, n_train=40, n_test=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand((n_train, *shape), generator=g), torch.arange(n_train) % classes,
            torch.rand((n_test, *shape), generator=g), torch.arange(n_test) % classes)


@pytest.mark.parametrize("shape", [(3, 5, 7), (20,), (1, 16), (1, 28, 28)], ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("classes", [2, 3, 37])
def test_any_input_shape_and_class_count(shape, classes):
    tx, ty, vx, vy = make(shape, classes, n_train=80)
    ds = Dataset.from_tensors(tx, ty, vx, vy)
    assert ds.input_shape == shape and ds.n_classes == min(classes, 80) == len(ds.classes)
    assert ds.classes == tuple(str(i) for i in range(classes))
    for split, x, y in (("train", tx, ty), ("test", vx, vy)):
        assert ds.x(split).dtype == torch.float32 and ds.x(split).is_contiguous() and torch.equal(ds.x(split), x)
        assert ds.y(split).dtype == torch.int64 and torch.equal(ds.y(split), y)
    assert ds.x() is ds.x("test") and ds.name == "tensors" and ds.source == "in-memory tensors"


def test_float32_tensors_are_used_as_they_are_not_copied():
    tx, ty, vx, vy = make((1, 28, 28))
    ds = Dataset.from_tensors(tx, ty, vx, vy)
    assert ds.x("train").data_ptr() == tx.data_ptr() and ds.x("test").data_ptr() == vx.data_ptr()
    a = tx.numpy()
    assert Dataset.from_tensors(a, ty, vx, vy).x("train").data_ptr() == tx.data_ptr()  # numpy float32: shared too


def test_numpy_and_other_dtypes_are_converted():
    tx, ty, vx, vy = make((4, 5))
    ds = Dataset.from_tensors(tx.double().numpy(), ty.numpy().astype(np.uint8), vx.half(), vy.int(),
                              classes=["a", "b", "c"], name="mine")
    assert ds.x("train").dtype == ds.x("test").dtype == torch.float32
    assert ds.y("train").dtype == ds.y("test").dtype == torch.int64
    assert torch.equal(ds.x("train"), tx) and torch.equal(ds.y("train"), ty)
    assert ds.classes == ("a", "b", "c") and ds.name == "mine"
    nc = Dataset.from_tensors(tx.transpose(1, 2), ty, vx.transpose(1, 2), vy)  # non-contiguous in, contiguous out
    assert nc.x("train").is_contiguous() and nc.input_shape == (5, 4)
    big_endian = Dataset.from_tensors(tx.numpy().astype(">f4"), ty, vx, vy)
    assert torch.equal(big_endian.x("train"), tx)
    ro = tx.numpy().copy()
    ro.flags.writeable = False
    assert torch.equal(Dataset.from_tensors(ro, ty, vx, vy).x("train"), tx)


def test_classes_may_name_more_classes_than_the_labels_use():
    tx, ty, vx, vy = make(classes=2)
    ds = Dataset.from_tensors(tx, ty, vx, vy, classes=("cat", "dog", "bird"))
    assert ds.n_classes == 3 and ds.classes == ("cat", "dog", "bird")
    assert Dataset.from_tensors(tx, ty, vx, vy, classes=np.array([b"x", b"y"])).classes == ("x", "y")


def _bad(**change):
    args = dict(zip(("train_x", "train_y", "test_x", "test_y"), make((1, 6, 6))))
    args.update(change)
    return args


BAD = {  # name -> (arguments, words the error must contain)
    "x is a list": (_bad(train_x=[[0.0]] * 40), "train_x is a list: give a torch.Tensor or a numpy array"),
    "y is None": (_bad(test_y=None), "test_y is a NoneType"),
    "integer test, float train": (_bad(test_x=np.zeros((10, 1, 6, 6), np.int64)),
                                  "train_x is floating point (torch.float32) but test_x is integer (int64)"),
    "bool inputs": (_bad(train_x=torch.zeros(40, 3, dtype=torch.bool)),
                    "inputs must be floating point (images, features) or integer (token ids"),
    "complex inputs": (_bad(test_x=torch.zeros(10, 1, 6, 6, dtype=torch.complex64)), "test_x has dtype torch.complex64"),
    "1-D inputs": (_bad(train_x=torch.zeros(40)), "inputs must be (N, *input_shape)"),
    "0-D inputs": (_bad(test_x=torch.tensor(1.0)), "test_x has shape ()"),
    "2-D labels in one split": (_bad(train_y=torch.zeros(40, 1, dtype=torch.long)),
                                "train_y is (40, 1), a label per position but test_y is (10,), one label per sample"),
    "0-D labels": (_bad(test_y=torch.tensor(1)), "test_y is a scalar"),
    "per-position labels of two shapes": (_bad(train_y=torch.zeros(40, 5, dtype=torch.long),
                                               test_y=torch.zeros(10, 6, dtype=torch.long)),
                                          "both splits must have the same label shape"),
    "every label ignored": (_bad(test_y=torch.full((10, 4), -100), train_y=torch.zeros(40, 4, dtype=torch.long)),
                            "test_y: every label is -100 (ignored, not scored)"),
    "negative label besides -100": (_bad(train_y=torch.tensor([-100, -3] + [0] * 38)),
                                    "label -3 is out of range: labels must be class indices 0..C-1, or -100"),
    "one-hot labels": (_bad(test_y=torch.eye(10, dtype=torch.long)),
                       "if those are one-hot labels, give Dataset.from_tensors y.argmax(1)"),
    "float labels in one split": (_bad(train_y=torch.zeros(40)),
                                  "train_y holds regression targets (floats) but test_y holds class indices"),
    "bool labels in one split": (_bad(train_y=torch.zeros(40, dtype=torch.bool)),
                                 "train_y holds multi-label tags (booleans) but test_y holds class indices"),
    "complex labels": (_bad(train_y=torch.zeros(40, dtype=torch.complex64)), "labels must be integer class indices"),
    "fewer labels than inputs": (_bad(train_y=torch.zeros(39, dtype=torch.long)),
                                 "train_x has 40 samples but train_y has 39 labels"),
    "more labels than inputs": (_bad(test_y=np.zeros(11, np.int64)), "test_x has 10 samples but test_y has 11"),
    "empty train split": (_bad(train_x=torch.zeros(0, 1, 6, 6), train_y=torch.zeros(0, dtype=torch.long)),
                          "train_x is empty"),
    "empty test split": (_bad(test_x=np.zeros((0, 1, 6, 6), np.float32), test_y=np.zeros(0, np.int64)),
                         "test_x is empty"),
    "test shape differs": (_bad(test_x=torch.zeros(10, 1, 6, 7)), "train inputs are 1×6×6 but test inputs are 1×6×7"),
    "no values per sample": (_bad(train_x=torch.zeros(40, 0), test_x=torch.zeros(10, 0)), "hold no values"),
    "negative label": (_bad(train_y=torch.full((40,), -1)), "label -1 is out of range"),
    "label beyond classes": (_bad(classes=["a", "b"]), "label 2 is out of range: 2 class names were given"),
    "label an id": (_bad(test_y=torch.full((10,), 10**9)), "implies 1,000,000,001 classes"),
    "huge uint64 label": (_bad(test_y=np.full(10, 2**64 - 1, np.uint64)), "18,446,744,073,709,551,615"),
    "classes a string": (_bad(classes="abc"), "classes must be a list of class names"),
    "classes empty": (_bad(classes=[]), "classes is empty"),
    "classes repeat": (_bad(classes=["a", "b", "a"]), "'a' appears twice"),
    "name not a string": (_bad(name=3), "name must be a string"),
    "NaN input": (_bad(train_x=torch.rand(40, 1, 6, 6).index_put_((torch.tensor([17]),), torch.tensor(float("nan")))),
                  "train_x[17] holds NaN"),
    "inf input": (_bad(test_x=torch.rand(10, 1, 6, 6).index_put_((torch.tensor([3]),), torch.tensor(float("-inf")))),
                  "test_x[3] holds ±inf"),
    "float64 overflow": (_bad(train_x=np.full((40, 1, 6, 6), 1e300)), "overflow float32"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_data_is_refused_naming_what_and_how(case):
    args, words = BAD[case]
    with pytest.raises(DatasetError) as e:
        Dataset.from_tensors(**args)
    msg = str(e.value)
    print(f"{case}: {msg}")
    assert words in msg and "\n" not in msg and len(msg) < 400, msg


def test_nan_is_found_past_the_first_chunk():
    tx, ty, vx, vy = make((3,), n_train=20_000)
    tx[19_999, 2] = float("nan")
    with pytest.raises(DatasetError, match=r"train_x\[19999\] holds NaN"):
        Dataset.from_tensors(tx, ty, vx, vy)


def test_large_finite_values_whose_sum_overflows_are_fine():
    tx, ty, vx, vy = make((4,))
    ds = Dataset.from_tensors(tx + 3e38, ty, vx, vy)
    assert torch.isinf(ds.x("train").sum()) and ds.n_classes == 3


def test_split_must_be_train_or_test():
    ds = Dataset.from_tensors(*make())
    with pytest.raises(DatasetError, match="split must be 'train' or 'test'"):
        ds.x("val")
    with pytest.raises(DatasetError, match="split must be"):
        ds.y(["train"])


def test_subset_is_a_view_of_the_first_samples():
    ds = Dataset.from_tensors(*make((2, 3)), classes=list("abcd"), name="d")
    sub = ds.subset(5, 4)
    assert sub.x("train").shape == (5, 2, 3) and sub.y("test").shape == (4,) and sub.classes == ds.classes
    assert sub.x("train").data_ptr() == ds.x("train").data_ptr() and sub.name == "d[:5/4]"
    assert ds.subset(10_000, 1, "all").x("train").shape[0] == 40
    with pytest.raises(DatasetError, match="n_test must be a whole number >= 1"):
        ds.subset(5, 0)


def test_require_refuses_data_a_model_cannot_take():
    ds = Dataset.from_tensors(*make((1, 6, 6), classes=12), name="idx:/x")
    assert ds.require((1, 6, 6), 12) is ds and ds.require() is ds
    with pytest.raises(DatasetError, match=r"idx:/x: inputs are 1×6×6; the model takes 1×28×28"):
        ds.require(input_shape=(1, 28, 28))
    with pytest.raises(DatasetError, match="train label 11 is out of range: the model has 10 outputs, so labels "
                                           "must be classes 0-9"):
        ds.require(n_outputs=10)


def test_repr_says_what_it_holds():
    assert repr(Dataset.from_tensors(*make((1, 16)), name="seq")) == \
        "Dataset('seq': 40 train + 10 test, inputs 1×16, 3 classes)"


def test_fingerprint_covers_name_classes_and_every_tensor_and_is_computed_once(monkeypatch):
    import hashlib
    import json

    import compress_engine.core.data as data_mod
    tx, ty, vx, vy = make((1, 4, 4), classes=3)
    ds = Dataset.from_tensors(tx, ty, vx, vy, name="d")
    h = hashlib.sha256(json.dumps(["d", ["0", "1", "2"]]).encode())  # the formula run store keys were made with
    for t in (tx, ty, vx, vy):
        h.update(f"|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy())
    assert ds.fingerprint() == h.hexdigest()[:16]
    monkeypatch.setattr(data_mod, "feed_digest", lambda *a: pytest.fail("hashed the same Dataset twice"))
    assert ds.fingerprint() == h.hexdigest()[:16]
    monkeypatch.undo()
    vx2 = vx.clone()
    vx2[0, 0, 0, 0] += 1e-3  # one test input differs: another fingerprint
    assert Dataset.from_tensors(tx, ty, vx2, vy, name="d").fingerprint() != ds.fingerprint()
    assert Dataset.from_tensors(tx, ty, vx, vy, name="e").fingerprint() != ds.fingerprint()


def test_labels_that_are_likely_a_mistake_are_warned_of():
    """Accepted as documented, but said: float one-hot labels are regression targets (scored by R², not accuracy),
    and codes such as 0, 20, ..., 180 make 181 classes, 171 of them never seen."""
    y = torch.arange(50) % 10
    one_hot = torch.nn.functional.one_hot(y, 10).float()
    with pytest.warns(UserWarning, match=r"train_y looks one-hot \(10 columns .* for classes give y.argmax\(1\)"):
        data = Dataset.from_tensors(torch.randn(50, 4), one_hot, torch.randn(50, 4), one_hot)
    assert data.regression
    with pytest.warns(UserWarning, match=r"the labels take 10 values up to 180, so the data has 181 classes, 171 of "
                                         r"them never seen"):
        assert Dataset.from_tensors(torch.randn(50, 4), y * 20, torch.randn(50, 4), y * 20).n_classes == 181
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Dataset.from_tensors(torch.randn(50, 4), y, torch.randn(50, 4), y)  # 0..9: nothing to say
        Dataset.from_tensors(torch.randn(50, 4), one_hot * 0.5, torch.randn(50, 4), one_hot)  # real targets
