"""Model architectures, the sample-model registry and safe checkpoint loading.

Every model is described by a small JSON-able `spec` ({"arch": "mlp", "sizes": [...]} or
{"arch": "lenet5", "widths": [...]}) so an artifact can carry it and be rebuilt anywhere, even
after structured pruning has changed the widths.

read_weights() takes a user's uploaded weight file: .safetensors, or a zip-format torch.save
checkpoint read with weights_only=True, so an uploaded file never runs code; the architecture is
inferred from the tensor names and shapes.
"""

import io
import json
import pickle
import platform
import re
import struct
import time
import warnings
import zipfile
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.encode import decode, read_meta
from ..core.errors import ModelError
from ..core.model import MLP, arch_spec, param_count
from ..core.train import accuracy, fit, flush_subnormals_, has_conv

# Installed: compress_engine/sample_models (package data). A checkout or `pip install -e .`: the repo's sample_models/.
_PKG = Path(__file__).resolve().parents[1]
SAMPLE_DIR = next((d for d in (_PKG / "sample_models", _PKG.parent / "sample_models") if d.is_dir()),
                  _PKG.parent / "sample_models")
MAX_UNITS = 100_000  # no layer in a spec may be wider than this (uploaded specs are untrusted)


class LeNet5(nn.Module):
    """Caffe's LeNet-5: conv 20@5x5, pool, conv 50@5x5, pool, fc 500, fc 10 (ReLU after each hidden layer)."""

    def __init__(self, widths=(20, 50, 500), n_classes=10):
        super().__init__()
        c1, c2, f1 = widths
        self.conv1 = nn.Conv2d(1, c1, 5)
        self.conv2 = nn.Conv2d(c1, c2, 5)
        self.fc1 = nn.Linear(c2 * 4 * 4, f1)
        self.fc2 = nn.Linear(f1, n_classes)

    @property
    def widths(self):
        """[conv1 filters, conv2 filters, fc1 units], read from the layers (so it follows structured pruning)."""
        return [self.conv1.out_channels, self.conv2.out_channels, self.fc1.out_features]

    def spec(self):
        return {"arch": "lenet5", "widths": self.widths}

    def forward(self, x):
        # pool before ReLU: the same function (ReLU is monotonic, so it commutes with max) with 4x less
        # ReLU work on the largest activations; measured 15-20 % faster evaluation (bench/speed.py)
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def build(spec):
    """A freshly initialised model from its spec; a clear ModelError for anything malformed."""
    if not isinstance(spec, dict) or spec.get("arch") not in ("mlp", "lenet5"):
        raise ModelError(f"model spec must be {{'arch': 'mlp'|'lenet5', ...}}, got {spec!r:.200}")
    key, n = ("sizes", None) if spec["arch"] == "mlp" else ("widths", 3)
    dims = spec.get(key)
    ok = (isinstance(dims, list) and (len(dims) == n if n else len(dims) >= 2)
          and all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= MAX_UNITS for d in dims))
    if not ok:
        raise ModelError(f"model spec {key} must be a list of {n or '2 or more'} integers in 1..{MAX_UNITS}, "
                         f"got {dims!r:.200}")
    if spec["arch"] == "mlp":
        return MLP(dims, spec.get("dropout", 0.0))
    return LeNet5(dims)


def spec_of(model):
    """The spec that rebuilds `model` (its current widths); ModelError for a model the zoo cannot rebuild."""
    spec = arch_spec(model)
    if spec is None:
        raise ModelError(f"no spec for {type(model).__name__}: the zoo rebuilds MLP and LeNet5 models")
    return spec


def from_state_dict(spec, state_dict):
    """Build `spec`'s model and load `state_dict` into it, refusing any mismatch with a clear message.

    The shapes are compared on the meta device first, so an untrusted spec claiming huge layers
    (an artifact's or an upload's) allocates nothing unless the given tensors really have that size.
    """
    with torch.device("meta"):
        want = {k: tuple(v.shape) for k, v in build(spec).state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state_dict.items()}
    if want != got:
        diff = sorted(set(want.items()) ^ set(got.items()))[:4]
        raise ModelError(f"weights do not fit the {spec['arch']} architecture {spec}: mismatched tensors {diff}")
    model = build(spec)
    model.load_state_dict(state_dict)
    return model.eval()


# --- sample models -------------------------------------------------------------------------

# name -> (spec, training recipe). `python -m compress_engine train NAME` reproduces the checkpoint.
SAMPLES = {
    "lenet-300-100": ({"arch": "mlp", "sizes": [784, 300, 100, 10]},
                      {"epochs": 30, "lr": 2e-3, "batch_size": 128, "weight_decay": 1e-4, "seed": 0}),
    "lenet-5": ({"arch": "lenet5", "widths": [20, 50, 500]},
                {"epochs": 20, "lr": 2e-3, "batch_size": 128, "weight_decay": 1e-4, "seed": 0}),
    "teacher-1200-1200": ({"arch": "mlp", "sizes": [784, 1200, 1200, 10], "dropout": 0.3},
                          {"epochs": 30, "lr": 1e-3, "batch_size": 128, "weight_decay": 1e-4, "seed": 0}),
}
DESCRIPTIONS = {
    "lenet-300-100": "LeNet-300-100: a 784-300-100-10 ReLU MLP (LeCun et al. 1998; Deep Compression's first model).",
    "lenet-5": "LeNet-5, Caffe variant: conv 20@5x5, max-pool, conv 50@5x5, max-pool, fc 500, fc 10.",
    "teacher-1200-1200": "Distillation teacher: 784-1200-1200-10 MLP with dropout, as in Hinton et al. 2015.",
}


def list_models():
    """Cards of the shipped sample models (architecture, parameters, accuracy, training recipe)."""
    cards = []
    for name in SAMPLES:
        path = SAMPLE_DIR / f"{name}.json"
        if path.is_file():
            cards.append(json.loads(path.read_text()))
    return cards


def model_card(name):
    path = SAMPLE_DIR / f"{name}.json"
    if name not in SAMPLES:
        raise ModelError(f"unknown model {name!r}: choose one of {', '.join(SAMPLES)}")
    if not path.is_file():
        raise ModelError(f"{path} is missing: rebuild it with `python -m compress_engine train {name}`")
    return json.loads(path.read_text())


def load_model(name):
    """The trained sample model `name`, in eval mode (weights read with safetensors: no code runs)."""
    from safetensors.torch import load_file
    card = model_card(name)
    path = SAMPLE_DIR / f"{name}.safetensors"
    try:
        state = load_file(path)
    except Exception as e:  # missing or corrupt file: say which and how to rebuild it
        raise ModelError(f"cannot read {path} ({e}); rebuild it with `python -m compress_engine train {name}`") from None
    flush_subnormals_(state.values())  # none in the shipped files; a checkpoint rebuilt elsewhere may have them
    return from_state_dict(card["spec"], state)


def decode_model(artifact, module=None):
    """The compressed model an artifact holds, and its meta: (model, meta). Bad bytes raise ArtifactError.

    A sample-zoo architecture (the artifact's spec) is rebuilt without user code. Any other model
    is decoded into `module`, a fresh instance of the caller's own class (strict load_state_dict);
    without one, ModelError says so.
    """
    state = decode(artifact)
    meta = read_meta(artifact)
    spec = meta.get("spec")
    if module is not None:
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise ModelError(f"the artifact's tensors do not fit the given {type(module).__name__} module "
                             f"({str(e).splitlines()[0][:200]}...); pass a fresh instance of the class that was "
                             "compressed, built with the same sizes") from None
        return module.eval(), meta
    if spec is None:
        raise ModelError(f"this artifact holds a {meta.get('model_class', 'user-defined')} model, whose architecture "
                         "only its own code knows: pass a fresh instance of that class, e.g. "
                         "decode_model(artifact, module=MyNet()), or load ce.decode(artifact) into it")
    return from_state_dict(spec, state), meta


def evaluate_artifact(artifact, data, module=None):
    """Decode an artifact (into `module` when it is not a zoo architecture) and score it on data's test set."""
    from ..core.train import fast_eval_copy, logits
    model, meta = decode_model(artifact, module)
    pred = logits(fast_eval_copy(model), data.x("test")).argmax(1)
    return {"accuracy": (pred == data.y("test")).float().mean().item(), "artifact_bytes": len(artifact),
            "params": param_count(model), "nonzero_params": sum(int(torch.count_nonzero(p)) for p in model.parameters()),
            "meta": meta, "model": model}


# --- uploaded weights: read without running code, architecture inferred -------------------------

MAX_UPLOAD_BYTES = 50 << 20     # file size; the largest sample model (the teacher) is 9.4 MB
MAX_UPLOAD_PARAMS = 20_000_000  # elements over all tensors, checked before any tensor is touched
MAX_UPLOAD_TENSORS = 256
MAX_UPLOAD_INDEX = 1 << 20      # a safetensors JSON header / a checkpoint's pickle (a state dict's is KBs)
INPUTS, CLASSES = 784, 10       # Fashion-MNIST: 28x28 images, 10 classes
LENET5_KEYS = {f"{layer}.{p}" for layer in ("conv1", "conv2", "fc1", "fc2") for p in ("weight", "bias")}
MLP_KEY = re.compile(r"layers\.(\d{1,4})\.(weight|bias)")
SAVE_HINT = "save it with torch.save(model.state_dict(), path) or safetensors.torch.save_file(model.state_dict(), path)"
ARCH_HINT = ("an MLP state dict (layers.0.weight, layers.0.bias, layers.1.weight, ...: 784 inputs, 10 outputs) "
             "or a LeNet-5 one (conv1, conv2, fc1, fc2: .weight and .bias each), as compress_engine's MLP / "
             "LeNet5 name them")


def read_weights(data, filename, max_bytes=MAX_UPLOAD_BYTES):
    """An uploaded weight file -> the model it holds (eval mode); no byte of it can run code.

    `.safetensors` is read with safetensors; `.pt` / `.pth` must be torch.save's zip format and is
    read with torch.load(weights_only=True), which refuses pickled code and objects. The content must
    be a state dict (possibly under "state_dict" or "model") of an MLP of any sizes or a LeNet-5 of
    any widths; the architecture is inferred from the names and shapes. Anything else (too big,
    empty, corrupt, code, non-tensors, unknown names, wrong shapes or dtypes, NaN/inf) raises
    ModelError naming the file, the problem and how to fix it.
    """
    name = _file_label(filename)
    suffix = Path(filename).suffix.lower()
    if suffix not in (".safetensors", ".pt", ".pth"):
        raise ModelError(f"{name}: weight files must end in .safetensors, .pt or .pth; {SAVE_HINT}")
    _check_upload_size(data, name, max_bytes)
    data = bytes(data)
    loaded = _load_safetensors(data, name) if suffix == ".safetensors" else _load_torch(data, name)
    state = _as_state_dict(_unwrap(loaded), name)
    spec = infer_spec(state, name)
    flush_subnormals_(state.values())  # they would make every evaluation of the upload several times slower
    try:
        return from_state_dict(spec, state)
    except ModelError as e:
        raise ModelError(f"{name}: {e}") from None


def _file_label(filename):
    """The upload's name for messages (a str, shortened), refusing a non-str name."""
    if not isinstance(filename, str) or not filename:
        raise ModelError(f"an uploaded weight file needs a file name ending in .safetensors, .pt or .pth, "
                         f"got {filename!r:.80}")
    return repr(filename[:80])


def _check_upload_size(data, name, max_bytes):
    """Bytes, not empty, at most max_bytes."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ModelError(f"{name}: weight data must be bytes, got {type(data).__name__}")
    if len(data) == 0:
        raise ModelError(f"{name} is empty (0 bytes); {SAVE_HINT}")
    if len(data) > max_bytes:
        raise ModelError(f"{name} is {_size(len(data))}; weight uploads are limited to {_size(max_bytes)} here "
                         "(the largest sample model is 9.4 MB)")


def _size(n):
    return f"{n / 2**20:,.1f} MB" if n >= 2**17 else f"{n:,} bytes"


def _load_safetensors(data, name):
    """{name: tensor} from safetensors bytes, after checking the header length it claims."""
    from safetensors.torch import load
    if len(data) < 8:
        raise ModelError(f"{name} is {len(data)} bytes: too short for a safetensors file (8-byte header length)")
    (hlen,) = struct.unpack("<Q", data[:8])
    if hlen > len(data) - 8:
        raise ModelError(f"{name}: its safetensors header claims {hlen:,} bytes but only {len(data) - 8:,} follow "
                         "(truncated, or not a safetensors file)")
    if hlen > MAX_UPLOAD_INDEX:
        raise ModelError(f"{name}: its safetensors header is {hlen:,} bytes; more than {MAX_UPLOAD_INDEX:,} bytes "
                         "of tensor names and metadata is refused")
    try:
        header = json.loads(data[8:8 + hlen])
    except (ValueError, TypeError, RecursionError):
        header = {}  # safetensors itself explains what is wrong with the header, below
    entries = sum(k != "__metadata__" for k in header) if isinstance(header, dict) else 0
    if entries > MAX_UPLOAD_TENSORS:
        raise ModelError(f"{name} holds {entries:,} tensors; the architectures here have at most "
                         f"{MAX_UPLOAD_TENSORS}")
    try:
        return load(data)
    except Exception as e:  # safetensors raises its own SafetensorError (and others) for any corruption
        raise ModelError(f"{name} is not a readable safetensors file ({str(e)[:160]}); {SAVE_HINT}") from None


def _load_torch(data, name):
    """torch.load(weights_only=True) of a zip-format checkpoint whose zip entries were checked first."""
    if data[:1] == b"\x80":  # pickle protocol 2+: a bare pickle, or torch.save's pre-1.6 format
        raise ModelError(f"refused: {name} is a bare pickle or a pre-1.6 PyTorch checkpoint; only torch.save's "
                         f"zip format is read (with weights_only=True, so no code can run): {SAVE_HINT}")
    if data[:4] != b"PK\x03\x04":
        raise ModelError(f"{name} is not a PyTorch checkpoint (torch.save writes a zip file; this one starts "
                         f"with {data[:4]!r}); {SAVE_HINT}")
    _check_zip(data, name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "pickle protocol 4", TorchScript notices: the errors say it
            return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as e:  # weights_only's unpickler met something it will not build
        found = re.search(r"GLOBAL ([\w.]+)|got (<class '[\w.]+'>)", str(e))
        if found or "Can only" in str(e):
            what = f" ({found.group(1) or found.group(2)})" if found else ""
            raise ModelError(f"refused: {name} contains code/objects other than tensors{what}; {SAVE_HINT}") from None
        detail = re.search(r"Unsupported operand \d+|String is too long|[^\n]*persistent[^\n]*", str(e))
        raise ModelError(f"{name} is not a readable PyTorch checkpoint (corrupt pickle data: "
                         f"{detail.group(0)[:80] if detail else 'unreadable'}); {SAVE_HINT}") from None
    except Exception as e:  # corrupt zip records, TorchScript archives, truncated data, ...
        kind = "a TorchScript archive (code)" if "TorchScript" in str(e) else "corrupt or truncated"
        raise ModelError(f"{name} is not a readable state-dict checkpoint: {kind} ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:120] if str(e) else 'no detail'}); {SAVE_HINT}") from None


def _check_zip(data, name):
    """Bound what torch.load may allocate, before it reads anything: torch.save writes uncompressed
    entries (a compressed one could claim gigabytes), one per tensor storage, and a small pickle."""
    try:
        entries = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as e:
        raise ModelError(f"{name} is not a readable PyTorch checkpoint (corrupt zip: {e}); {SAVE_HINT}") from None
    if any(i.compress_type != zipfile.ZIP_STORED for i in entries) or sum(i.file_size for i in entries) > len(data):
        raise ModelError(f"refused: {name} has compressed or oversized zip entries, which torch.save never "
                         f"writes; {SAVE_HINT}")
    pickles = [i.file_size for i in entries if i.filename.endswith(".pkl")]
    if len(entries) > 4 * MAX_UPLOAD_TENSORS or sum(pickles) > MAX_UPLOAD_INDEX:
        raise ModelError(f"refused: {name} has {len(entries):,} zip entries and {sum(pickles):,} bytes of pickle; "
                         f"a state dict of at most {MAX_UPLOAD_TENSORS} tensors needs far fewer; {SAVE_HINT}")


def _unwrap(obj):
    """A training checkpoint's state dict: obj["state_dict"] or obj["model"] (up to two levels)."""
    for _ in range(2):
        if isinstance(obj, dict) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
            inner = [obj[k] for k in ("state_dict", "model") if isinstance(obj.get(k), dict)]
            if inner:
                obj = inner[0]
                continue
        break
    return obj


def _as_state_dict(obj, name):
    """Validate a loaded object as {str: finite floating tensor} -> {name: contiguous float32 tensor}."""
    if not isinstance(obj, dict):
        raise ModelError(f"{name} holds a {type(obj).__name__}, not a state dict (tensor names -> tensors); "
                         f"{SAVE_HINT}")
    if not obj:
        raise ModelError(f"{name} holds an empty state dict: no tensors to load; {SAVE_HINT}")
    if len(obj) > MAX_UPLOAD_TENSORS:
        raise ModelError(f"{name} holds {len(obj):,} entries; the architectures here have at most {MAX_UPLOAD_TENSORS}")
    for k, v in obj.items():
        if not isinstance(k, str):
            raise ModelError(f"{name}: entry name {k!r:.60} is a {type(k).__name__}; a state dict's names are "
                             f"strings such as 'layers.0.weight' ({SAVE_HINT})")
        if not isinstance(v, torch.Tensor):
            raise ModelError(f"{name}: entry {k[:60]!r} is a {type(v).__name__}, not a tensor; a state dict holds "
                             f"only tensors ({SAVE_HINT})")
    if all(k.startswith("module.") for k in obj):  # saved from a DataParallel wrapper
        obj = {k[len("module."):]: v for k, v in obj.items()}
    total = sum(v.numel() for v in obj.values())
    if total > MAX_UPLOAD_PARAMS:
        raise ModelError(f"{name} claims {total:,} weights; uploads are limited to {MAX_UPLOAD_PARAMS:,}")
    return {k: _float_tensor(k, v, name) for k, v in obj.items()}


def _float_tensor(key, t, name):
    """One uploaded tensor as a dense float32 copy, refusing integer/bool/complex dtypes and NaN/inf."""
    kind = ("a quantized" if t.is_quantized else f"a {t.layout}" if t.layout != torch.strided
            else f"a {t.device.type}" if t.device.type != "cpu" else None)
    if kind:
        raise ModelError(f"{name}: tensor {key!r} is {kind} tensor; store plain dense float tensors "
                         f"({SAVE_HINT})")
    if not t.is_floating_point():
        raise ModelError(f"{name}: tensor {key!r} has dtype {t.dtype}; weights must be floating point "
                         "(float32, float16, bfloat16 or float64)")
    f = t.detach().to(torch.float32).contiguous()
    bad = f.numel() - int(torch.isfinite(f).sum())
    if bad:
        raise ModelError(f"{name}: tensor {key!r} has {bad:,} NaN or infinite value(s) (after conversion to "
                         "float32); such a model cannot be evaluated or compressed: fix the training run")
    return f


def infer_spec(state, name="weights"):
    """The spec of an MLP or LeNet-5 state dict from its tensor names and shapes; ModelError otherwise.

    Only names and dimensions are read here; from_state_dict then checks every shape against the spec.
    """
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    if set(shapes) == LENET5_KEYS:
        _need_ndim(shapes, name, {"conv1.weight": 4, "conv2.weight": 4, "fc1.weight": 2})
        return {"arch": "lenet5", "widths": [shapes["conv1.weight"][0], shapes["conv2.weight"][0],
                                             shapes["fc1.weight"][0]]}
    layers = sorted({int(m.group(1)) for m in map(MLP_KEY.fullmatch, shapes) if m})
    expect = {f"layers.{i}.{p}" for i in range(len(layers)) for p in ("weight", "bias")}
    if not layers or set(shapes) != expect:
        near = expect if layers else LENET5_KEYS
        extra, missing = sorted(set(shapes) - near)[:4], sorted(near - set(shapes))[:4]
        raise ModelError(f"{name}: tensor names do not fit a known architecture (unexpected {extra}, missing "
                         f"{missing}); expected {ARCH_HINT}")
    _need_ndim(shapes, name, {f"layers.{i}.weight": 2 for i in layers})
    sizes = [shapes["layers.0.weight"][1]] + [shapes[f"layers.{i}.weight"][0] for i in layers]
    if sizes[0] != INPUTS or sizes[-1] != CLASSES:
        raise ModelError(f"{name}: an MLP of sizes {sizes} cannot run here: the data are 28x28 images "
                         f"({INPUTS} inputs) in {CLASSES} classes, so the sizes must be [{INPUTS}, ..., {CLASSES}]")
    return {"arch": "mlp", "sizes": sizes}


def _need_ndim(shapes, name, ndims):
    """Each named weight must have the given number of dimensions (and none of them 0) before its
    dimensions are read as layer widths."""
    for key, nd in ndims.items():
        if len(shapes[key]) != nd or 0 in shapes[key]:
            raise ModelError(f"{name}: tensor {key!r} has shape {list(shapes[key])}, expected {nd} non-zero "
                             f"dimensions; expected {ARCH_HINT}")


# --- training the sample models -------------------------------------------------------------

def train_sample(name, data, progress=None, out_dir=None):
    """Train sample model `name` from scratch with its recorded recipe; write its checkpoint and card.

    Seeded, so the same machine reproduces the same weights. Returns the card (a dict).
    """

    from safetensors.torch import save_file
    spec, recipe = SAMPLES[name]
    torch.manual_seed(recipe["seed"])
    model = build(spec)
    if has_conv(model):
        model = model.to(memory_format=torch.channels_last)
    t0 = time.perf_counter()
    fit(model, data, epochs=recipe["epochs"], lr=recipe["lr"], batch_size=recipe["batch_size"],
        weight_decay=recipe["weight_decay"], seed=recipe["seed"], progress=progress)
    seconds = time.perf_counter() - t0
    model = model.to(memory_format=torch.contiguous_format)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    flush_subnormals_(state.values())  # fit() flushes after each step; this keeps the saved file clean whatever trained it
    acc = accuracy(model, data.x("test"), data.y("test"))
    out_dir = out_dir or SAMPLE_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(state, out_dir / f"{name}.safetensors")
    card = {
        "name": name,
        "description": DESCRIPTIONS[name],
        "spec": spec,
        "parameters": param_count(model),
        "dense_bytes": 4 * param_count(model),
        "test_accuracy": round(acc, 4),
        "test_set": f"{data.name}, all {len(data.y('test')):,} test images",
        "training": dict(recipe, optimizer="Adam, linear warm-up then cosine decay", loss="cross-entropy",
                         train_images=len(data.y("train")), seconds=round(seconds, 1),
                         torch=torch.__version__, machine=platform.machine()),
        "reproduce": f"python -m compress_engine train {name}",
    }
    (out_dir / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n")
    return card
