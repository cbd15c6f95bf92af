"""Datasets: any labelled data as tensors (classes, regression targets or multi-label tags), validated once at the door.

A `Dataset` holds a train and a test split: inputs of any shape (N, *input_shape), float32 (images,
features) or int64 (token ids or category indices, for models that start with an nn.Embedding), and int64
labels 0..C-1, plus C class names. Labels are one per sample (N,), or one per position (N, *label_shape):
a class per token (tagging) or per pixel (segmentation), for a model that returns (N, C, *label_shape)
logits, as torch's cross_entropy takes them. A label of IGNORE (-100, cross_entropy's ignore_index) is not
scored: padding tokens, void pixels. Floating-point labels are regression targets instead (one value per
sample (N,), or several (N, *target_shape)): no classes, a model that returns one output per target value,
trained on mean squared error and scored by R² (`Dataset.regression`). Boolean labels (N, C) are multi-label:
C tags, each present or not in each sample, for a model that returns (N, C) logits, trained on binary
cross-entropy and scored per tag (`Dataset.multilabel`).
`Dataset.from_tensors` is the one way to build one; it checks
everything the engine later relies on (matching lengths, one input shape, integer labels in range,
finite inputs) and says what is wrong and how to fix it before any work is done. Where the data
comes from (Fashion-MNIST, IDX folders, .npz files) is the playground's business: see
`compress_engine.playground.sources`.
"""

import hashlib
import json
import math
import os
import weakref
from dataclasses import dataclass

import numpy as np
import torch

from .errors import DatasetError, warn

SPLITS = ("train", "test")
MAX_CLASSES = 100_000  # labels that imply more classes than this are ids, not class indices
IGNORE = -100          # a label that is not scored (torch's cross_entropy ignore_index): padding, void pixels
_CHUNK = 8192          # rows checked for NaN/inf at a time, so the check allocates little


_FINGERPRINTS = weakref.WeakKeyDictionary()  # Dataset -> its fingerprint: its tensors are never changed in place


def feed_digest(h, tensor):
    """Feed a tensor's dtype, shape and bytes to the hash `h` (the one way fingerprints read a tensor)."""
    t = tensor.detach().cpu().contiguous().reshape(-1)
    h.update(f"|{t.dtype}|{tuple(tensor.shape)}|".encode())
    h.update(t.view(torch.uint8).numpy())


def _labels(shape):
    """How a label array's shape reads in a message: '(N,), one label per sample' or '(N, 20), a label per position'."""
    shape = tuple(shape)
    if len(shape) == 1:
        return f"({shape[0]:,},), one label per sample"
    return f"{shape}, a label per position"


def column(shape):
    """Whether labels of `shape` (N, *rest) have only size-1 dimensions after N, as a column of labels (pandas'
    df[["label"]].values) has."""
    return len(shape) >= 2 and all(d == 1 for d in tuple(shape)[1:])


def labels_hint(shape):
    """How to give labels of `shape` (N, *rest) that a message refuses as they probably are meant: a column of labels
    (column(shape)) is one label per sample, to reshape 1-D (argmax(1) would make every label 0); other labels may be
    one-hot, for argmax(1). The one text of both hints (from_tensors, check_model)."""
    if column(shape):
        return ("if they hold one label per sample in a column (e.g. pandas' df[['label']].values), give "
                "Dataset.from_tensors y.reshape(-1) (in a .npz file, save the labels 1-D: y.reshape(-1))")
    return "if those are one-hot labels, give Dataset.from_tensors y.argmax(1)"


def _fmt(shape):
    return "×".join(map(str, shape)) if shape else "scalar"


def memory_bytes():
    """This machine's physical memory in bytes (os.sysconf), or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _check_array(v, what):
    if not isinstance(v, (torch.Tensor, np.ndarray)):
        raise DatasetError(f"{what} is a {type(v).__name__}: give a torch.Tensor or a numpy array "
                           f"(e.g. torch.as_tensor({what}))")
    if isinstance(v, torch.Tensor) and v.is_meta:
        raise DatasetError(f"{what} is on the meta device, which holds shapes but no values: give a tensor holding "
                           f"the data (on the CPU)")
    # what the engine keeps: float32, int64 (ids, class indices) or booleans, every value stored (an expanded view,
    # stride 0, holds one row for them all)
    width = 4 if _is_float(v) else 8 if _is_int(v) else 1
    need, memory = math.prod(v.shape) * width, memory_bytes()
    if memory is not None and need > memory:
        view = (" (an expanded view stores few of them, but the engine keeps each)"
                if 0 in (v.stride() if isinstance(v, torch.Tensor) else v.strides) else "")
        raise DatasetError(f"{what} of shape {tuple(v.shape)} holds {math.prod(v.shape):,} values, "
                           f"{need / 1e9:,.1f} GB as the engine keeps them{view}, more than this machine's "
                           f"{memory / 1e9:,.1f} GB of memory: give fewer or smaller samples")
    return v


def _is_float(v):
    return v.is_floating_point() if isinstance(v, torch.Tensor) else v.dtype.kind == "f"


def _is_bool(v):
    return v.dtype == torch.bool if isinstance(v, torch.Tensor) else v.dtype.kind == "b"


def _is_int(v):
    if isinstance(v, torch.Tensor):
        return not (v.is_floating_point() or v.is_complex() or v.dtype == torch.bool)
    return v.dtype.kind in "iu"


def _float32(v):
    """A contiguous float32 CPU tensor; the same memory when `v` already is one (no copy)."""
    if isinstance(v, torch.Tensor):
        return v.detach().to("cpu", torch.float32).contiguous()
    if v.dtype != np.float32 or not v.dtype.isnative or not v.flags.c_contiguous or not v.flags.writeable:
        with np.errstate(over="ignore"):  # values beyond float32 become inf, which the NaN/inf check reports
            v = np.array(v, dtype=np.float32, order="C")  # one copy: float64 / float16 / big-endian / read-only
    return torch.from_numpy(v)


def _inputs(v):
    """Inputs as the engine keeps them: float32, or int64 for integer inputs (what nn.Embedding takes)."""
    return _int64(v) if _is_int(v) else _float32(v)


def as_inputs(v, what="x"):
    """Inputs (a torch tensor or numpy array) converted as a Dataset keeps them: float32 (from float64, float16, ...)
    or int64 for integer inputs, contiguous on the CPU; DatasetError for anything else. The one converter of
    from_tensors and of logits() / predictions() on a caller's inputs."""
    return _inputs(_check_array(v, what))


IDS_HINT = ("integer inputs are taken as ids (int64), which only a model that starts with an nn.Embedding takes: if "
            "they are images or features, make them floats, e.g. x.float() / 255")


def _int64(v):
    if isinstance(v, torch.Tensor):
        return v.detach().to("cpu", torch.int64).contiguous()
    return torch.from_numpy(np.array(v, dtype=np.int64, order="C"))


def _label_range(v):
    """(min, max) of an integer label array as Python ints (exact for every integer dtype), leaving out the
    IGNORE labels; (None, None) if every label is IGNORE."""
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu()
        if v.dtype not in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64):
            v = v.to(torch.int64)
    lo = int(v.min())
    if lo == IGNORE:  # uncommon: only then is a copy without the ignored labels made
        v = v[v != IGNORE]
        if len(v) == 0:  # boolean indexing gives 1-D
            return None, None
        lo = int(v.min())
    return lo, int(v.max())


def _checked_inputs(arrays, split):
    """The split's inputs as the engine keeps them (_inputs); DatasetError naming the first sample that holds NaN or
    ±inf."""
    x = _inputs(arrays[f"{split}_x"])
    bad = None if not x.is_floating_point() else _first_bad_row(x)
    if bad:
        was32 = str(arrays[f"{split}_x"].dtype) in ("float32", "torch.float32")
        overflow = " (values beyond ±3.4e38 overflow float32)" if bad[1] == "±inf" and not was32 else ""
        raise DatasetError(f"{split}_x[{bad[0]}] holds {bad[1]}{overflow}: inputs must be finite; replace "
                           f"such values (e.g. torch.nan_to_num) or drop those samples")
    return x


def _first_bad_row(x):
    """Index of the first sample holding NaN or ±inf, and which, or None; checked in chunks of rows.

    A NaN or inf anywhere makes the sum non-finite, so one reduction (no allocation) clears clean data.
    """
    if torch.isfinite(x.sum()):
        return None
    for start in range(0, len(x), _CHUNK):
        chunk = x[start:start + _CHUNK]
        if not torch.isfinite(chunk).all():
            bad = ~torch.isfinite(chunk.reshape(len(chunk), -1))
            row = int(bad.any(1).nonzero()[0])
            return start + row, "NaN" if torch.isnan(chunk[row]).any() else "±inf"
    return None


def _class_names(classes):
    if isinstance(classes, (str, bytes)) or not hasattr(classes, "__len__"):
        raise DatasetError(f"classes must be a list of class names, one per class, got {classes!r:.100}")
    if len(classes) > MAX_CLASSES:
        raise DatasetError(f"classes lists {len(classes):,} names (limit {MAX_CLASSES:,})")
    names = tuple(c.decode("utf-8", "replace") if isinstance(c, bytes) else str(c) for c in classes)
    if not names:
        raise DatasetError("classes is empty: give one name per class, or classes=None to number them")
    seen = set()
    for c in names:
        if c in seen:
            raise DatasetError(f"class name {c!r:.100} appears twice in classes: names must be distinct")
        seen.add(c)
    return names


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """Train/test inputs (float32 or int64, N×input_shape, contiguous) and labels (int64, 0..C-1), plus C class names;
    or float32 regression targets (no classes), or boolean multi-label tags (N, C) with C tag names.

    Build one with `Dataset.from_tensors(...)` (or a playground source, `load_dataset("fashion-mnist")`).
    `x(split)` and `y(split)` give the tensors for "train" or "test"; `input_shape` is one sample's shape
    (e.g. (1, 28, 28)), `n_classes` the number of classes. The tensors are shared, never copied: do
    not modify them in place. `inputs_fix`: how to turn integer inputs into floats where they came from, said when a
    model that takes no ids refuses them (a file source's loader sets it: what to change in the file); None: the
    caller's own tensors (make them floats before Dataset.from_tensors).
    """
    name: str
    classes: tuple
    source: str
    _x: dict
    _y: dict
    inputs_fix: str = None

    @classmethod
    def from_tensors(cls, train_x, train_y, test_x, test_y, classes=None, name=None, *, source=None):
        """Check and wrap train/test inputs and labels (torch tensors or numpy arrays).

        Inputs: shape (N, *input_shape) with the same input shape and kind in both splits; floating point and
        finite, or integer. float16 / float64 are converted to float32 (float32 contiguous CPU tensors are used
        as they are, sharing memory). Integer inputs (token ids, category indices) are kept as int64, for models
        that start with an nn.Embedding; integer images must be scaled first, e.g. `x.float() / 255`.
        Labels: integer, in 0..C-1 where C = len(classes) if given, else max label + 1, or IGNORE (-100, not
        scored); one per input (N,), or one per position (N, *label_shape) for tagging and segmentation, the same
        label shape in both splits.
        Raises DatasetError naming the problem and the fix before doing any work.
        """
        if name is None:
            name = "tensors"
        if not isinstance(name, str):
            raise DatasetError(f"name must be a string, got {type(name).__name__}")
        arrays = {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y}
        for what, v in arrays.items():
            _check_array(v, what)
        for split in SPLITS:
            x, y, xn, yn = arrays[f"{split}_x"], arrays[f"{split}_y"], f"{split}_x", f"{split}_y"
            if not (_is_float(x) or _is_int(x)):
                raise DatasetError(f"{xn} has dtype {x.dtype}: inputs must be floating point (images, features) "
                                   f"or integer (token ids for an nn.Embedding); convert with {xn}.float()")
            if x.ndim < 2:
                raise DatasetError(f"{xn} has shape {tuple(x.shape)}: inputs must be (N, *input_shape), e.g. "
                                   f"N×1×28×28 images or N×20 features; for one feature per sample use "
                                   f"{xn}.reshape(-1, 1)")
            if y.ndim == 0:
                raise DatasetError(f"{yn} is a scalar: labels must be (N,), one class index per sample, or "
                                   f"(N, *positions), one per token or pixel")
            if not (_is_int(y) or _is_float(y) or _is_bool(y)):
                raise DatasetError(f"{yn} has dtype {y.dtype}: labels must be integer class indices 0..C-1 "
                                   f"(convert with {yn}.long(); map other labels with "
                                   f"np.unique({yn}, return_inverse=True)), floats for regression targets, or "
                                   f"booleans (N, C) for multi-label tags")
            if len(x) != len(y):
                raise DatasetError(f"{xn} has {len(x):,} samples but {yn} has {len(y):,} labels: "
                                   f"they must match, one label per input")
            if len(x) == 0:
                raise DatasetError(f"{xn} is empty: each split needs at least one sample")
        if _is_int(train_x) != _is_int(test_x):
            kinds = {True: "integer", False: "floating point"}
            raise DatasetError(f"train_x is {kinds[_is_int(train_x)]} ({train_x.dtype}) but test_x is "
                               f"{kinds[_is_int(test_x)]} ({test_x.dtype}): both splits must be the same kind of input")
        shape = tuple(train_x.shape[1:])
        if tuple(test_x.shape[1:]) != shape:
            raise DatasetError(f"train inputs are {_fmt(shape)} but test inputs are {_fmt(tuple(test_x.shape[1:]))}: "
                               f"both splits must have the same input shape")
        if tuple(test_y.shape[1:]) != tuple(train_y.shape[1:]):
            hint = next((labels_hint(s) for s in (train_y.shape, test_y.shape) if len(s) == 2 or column(s)), "")
            raise DatasetError(f"train_y is {_labels(train_y.shape)} but test_y is {_labels(test_y.shape)}: both "
                               f"splits must have the same label shape" + (f" ({hint})" if hint else ""))
        if 0 in shape:
            raise DatasetError(f"inputs of shape (N, {', '.join(map(str, shape))}) hold no values: each sample "
                               f"needs at least one")
        kinds = {split: "regression targets (floats)" if _is_float(y) else "multi-label tags (booleans)"
                 if _is_bool(y) else "class indices (integers)" for split, y in (("train", train_y), ("test", test_y))}
        if kinds["train"] != kinds["test"]:
            raise DatasetError(f"train_y holds {kinds['train']} but test_y holds {kinds['test']}: both splits must be "
                               f"class indices (integers), both regression targets (floats) or both multi-label tags "
                               f"(booleans)")
        if _is_float(train_y):
            return cls._regression(arrays, name, classes, source)
        if _is_bool(train_y):
            return cls._multilabel(arrays, name, classes, source)

        if column(train_y.shape):
            logits = ", ".join(["N", "C", *map(str, train_y.shape[1:])])
            warn(f"train_y of shape {tuple(train_y.shape)} is read as a label per position, for a model that "
                 f"returns ({logits}) logits; {labels_hint(train_y.shape)}", UserWarning)
        names = None if classes is None else _class_names(classes)
        lo_hi = {split: _label_range(arrays[f"{split}_y"]) for split in SPLITS}
        for split, (lo, hi) in lo_hi.items():
            if hi is None:
                raise DatasetError(f"{split}_y: every label is {IGNORE} (ignored, not scored): each split needs "
                                   f"at least one label 0..C-1")
            if lo < 0:
                raise DatasetError(f"{split}_y: label {lo} is out of range: labels must be class indices 0..C-1, "
                                   f"or {IGNORE} for one that is not scored (map other labels with "
                                   f"np.unique(y, return_inverse=True))")
            if names is not None and hi >= len(names):
                raise DatasetError(f"{split}_y: label {hi} is out of range: {len(names)} class names were given, "
                                   f"so labels must be classes 0-{len(names) - 1}; give one name per class, "
                                   f"or classes=None to number them")
        if names is None:
            top = max(hi for _, hi in lo_hi.values())
            if top >= MAX_CLASSES:
                raise DatasetError(f"label {top:,} implies {top + 1:,} classes (limit {MAX_CLASSES:,}): labels must "
                                   f"be class indices 0..C-1 (map other labels with np.unique(y, return_inverse=True))")
            names = tuple(str(i) for i in range(top + 1))
            seen = () if top < 10 else np.unique(np.concatenate(  # 0..9 (Fashion-MNIST): nothing to count
                [np.asarray(_int64(arrays[f"{s}_y"])).ravel() for s in SPLITS]))
            seen = [v for v in seen if v != IGNORE]
            if top >= 10 and len(seen) <= (top + 1) // 2:
                warn(f"the labels take {len(seen):,} values up to {top:,}, so the data has {top + 1:,} "
                     f"classes, {top + 1 - len(seen):,} of them never seen and each a model output: if "
                     f"the labels are codes rather than 0..C-1, map them with np.unique(y, "
                     f"return_inverse=True)", UserWarning)

        return cls._built(arrays, name, names, source, lambda split: _int64(arrays[f"{split}_y"]))

    @classmethod
    def _built(cls, arrays, name, names, source, labels):
        """The Dataset of both splits' inputs (_checked_inputs) and labels(split), as from_tensors keeps them."""
        xs = {split: _checked_inputs(arrays, split) for split in SPLITS}
        ys = {split: labels(split) for split in SPLITS}
        return cls(name, names, "in-memory tensors" if source is None else str(source), xs, ys)

    @classmethod
    def _regression(cls, arrays, name, classes, source):
        """from_tensors for float labels: regression targets, float32 and finite, no classes."""
        if classes is not None:
            raise DatasetError("classes were given but the labels are floats, which are regression targets: give "
                               "integer class indices (y.long()) for classes, or classes=None for regression")
        if 0 in tuple(arrays["train_y"].shape[1:]):
            raise DatasetError(f"targets of shape {tuple(arrays['train_y'].shape)} hold no values: each sample "
                               f"needs at least one")
        def targets(split):
            y = _float32(arrays[f"{split}_y"])
            bad = _first_bad_row(y.reshape(len(y), -1))
            if bad:
                raise DatasetError(f"{split}_y[{bad[0]}] holds {bad[1]}: regression targets must be finite; replace "
                                   f"such values (e.g. torch.nan_to_num) or drop those samples")
            return y
        out = cls._built(arrays, name, (), source, targets)
        y = out.y("train")
        if y.dim() == 2 and y.shape[1] > 1 and bool(((y == 0) | (y == 1)).all()) and bool((y.sum(1) == 1).all()):
            warn(f"train_y looks one-hot ({y.shape[1]} columns of 0 and 1, one 1 a row), but as floats it is "
                 f"{y.shape[1]} regression targets a sample, scored by R²: for classes give y.argmax(1)",
                 UserWarning)
        return out

    @classmethod
    def _multilabel(cls, arrays, name, classes, source):
        """from_tensors for boolean labels: (N, C) tags, C names (given, or '0'..'C-1')."""
        c = tuple(arrays["train_y"].shape[1:])
        if len(c) != 1 or c[0] == 0:
            raise DatasetError(f"train_y is {_labels(arrays['train_y'].shape)} of booleans: multi-label tags must be "
                               f"(N, C), a column per tag (True where the sample has it)")
        names = tuple(str(i) for i in range(c[0])) if classes is None else _class_names(classes)
        if len(names) != c[0]:
            raise DatasetError(f"classes names {len(names)} tags but the labels have {c[0]} columns: give one name "
                               f"per column, or classes=None to number them")
        def tags(split):
            y = arrays[f"{split}_y"]
            y = y.detach().cpu() if isinstance(y, torch.Tensor) else torch.from_numpy(np.array(y, dtype=bool))
            return y.contiguous()
        return cls._built(arrays, name, names, source, tags)

    def x(self, split="test"):
        """Inputs of "train" or "test": float32 (or int64 for integer inputs), N×input_shape, contiguous."""
        return self._x[_split(split)]

    def y(self, split="test"):
        """Labels of "train" or "test": int64, 0..n_classes-1 or IGNORE, (N,) or (N, *label_shape); for regression
        data, float32 targets."""
        return self._y[_split(split)]

    def fingerprint(self):
        """sha256 (16 hex digits) of the name, the class names and every input and label tensor: what a run store
        key, a trained result or a cached teacher answer is tied to. Computed once per Dataset (about 0.15 s for
        Fashion-MNIST's 220 MB of inputs)."""
        fp = _FINGERPRINTS.get(self)
        if fp is None:
            h = hashlib.sha256(json.dumps([self.name, list(self.classes)]).encode())
            for split in SPLITS:
                feed_digest(h, self.x(split))
                feed_digest(h, self.y(split))
            fp = _FINGERPRINTS[self] = h.hexdigest()[:16]
        return fp

    @property
    def input_shape(self):
        """One sample's shape, e.g. (1, 28, 28) for Fashion-MNIST or (20,) for 20 tabular features."""
        return tuple(self._x["train"].shape[1:])

    @property
    def label_shape(self):
        """() for one label per sample; e.g. (20,) for a label per token of 20, (28, 28) for one per pixel."""
        return tuple(self._y["train"].shape[1:])

    @property
    def integer_inputs(self):
        """True when the inputs are integers (int64 token ids or category indices), False for float32."""
        return not self._x["train"].is_floating_point()

    @property
    def n_classes(self):
        """How many classes; 0 for regression data."""
        return len(self.classes)

    @property
    def regression(self):
        """True when the labels are float regression targets, False for class labels or multi-label tags."""
        return self._y["train"].is_floating_point()

    @property
    def multilabel(self):
        """True when the labels are boolean multi-label tags (N, C), False otherwise."""
        return self._y["train"].dtype == torch.bool

    def subset(self, n_train, n_test, name=None):
        """The first n_train training and n_test test samples (views, no copy): small data for quick runs."""
        for what, n in (("n_train", n_train), ("n_test", n_test)):
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise DatasetError(f"{what} must be a whole number >= 1, got {n!r:.50}")
        return Dataset(name or f"{self.name}[:{n_train}/{n_test}]", self.classes, self.source,
                       {"train": self._x["train"][:n_train], "test": self._x["test"][:n_test]},
                       {"train": self._y["train"][:n_train], "test": self._y["test"][:n_test]}, self.inputs_fix)

    def require(self, input_shape=None, n_outputs=None):
        """Refuse data a model cannot take: another input shape, or labels its outputs cannot predict.

        Returns the dataset, so `load_dataset(name).require((1, 28, 28), 10)` reads naturally.
        """
        if input_shape is not None and tuple(input_shape) != self.input_shape:
            raise DatasetError(f"{self.name}: inputs are {_fmt(self.input_shape)}; the model takes "
                               f"{_fmt(tuple(input_shape))}: use a model made for these inputs")
        if n_outputs is not None and (self.regression or self.multilabel):
            what = "regression targets (floats)" if self.regression else "multi-label tags (booleans)"
            raise DatasetError(f"{self.name}: the labels are {what}, but the model is a classifier of {n_outputs} "
                               f"classes, which cannot be scored on them: use a model made for these labels (or "
                               f"give integer class labels if they are classes)")
        if n_outputs is not None:
            for split in SPLITS:
                top = int(self._y[split].max())
                if top >= n_outputs:
                    raise DatasetError(f"{self.name}: {split} label {top} is out of range: the model has "
                                       f"{n_outputs} outputs, so labels must be classes 0-{n_outputs - 1}")
        return self

    def __repr__(self):
        if self.multilabel:
            return (f"Dataset({self.name!r}: {len(self._y['train']):,} train + {len(self._y['test']):,} test, "
                    f"inputs {_fmt(self.input_shape)}, {self.n_classes} multi-label tags)")
        if self.regression:
            targets = _fmt(self.label_shape) if self.label_shape else "1"
            return (f"Dataset({self.name!r}: {len(self._y['train']):,} train + {len(self._y['test']):,} test, "
                    f"inputs {_fmt(self.input_shape)}, regression targets {targets} per sample)")
        return (f"Dataset({self.name!r}: {len(self._y['train']):,} train + {len(self._y['test']):,} test, "
                f"inputs {_fmt(self.input_shape)}, {self.n_classes} classes"
                + (f", labels {_fmt(self.label_shape)} per sample)" if self.label_shape else ")"))


def check_dataset(data):
    """Refuse, with what to give instead, data that is not a Dataset (one that lacks a Dataset's x, y, input_shape and
    n_classes: a tuple of tensors, a Recipe in its place): the engine's functions that take data check it so."""
    for need in ("x", "y", "input_shape", "n_classes"):
        if not hasattr(data, need):
            raise DatasetError(f"data must be a compress_engine.Dataset (Dataset.from_tensors(...) or "
                               f"load_dataset(...)), got {type(data).__name__}")


def _split(split):
    if split not in SPLITS:
        raise DatasetError(f"split must be 'train' or 'test', got {split!r:.50}")
    return split
