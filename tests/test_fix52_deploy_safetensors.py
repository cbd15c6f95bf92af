"""Export's deployment files: ce.weights_safetensors (every decoded tensor, float, for plain PyTorch) and
ce.int8_safetensors / ce.read_int8 (int8 / uint8 codes with scale and zero point, uint8 palettes with codebooks).

Before: Export offered only the .cpg (which needs this package) and the recipe; no file a runtime loads. Checked
against independent references: safetensors' own loader into a fresh module, decode_model's weights bit for bit and
its accuracy, and torch's quantizer (quantize_per_tensor / quantize_per_channel with the stored grid gives the same
integer codes, torch.dequantize the decoded weights)."""

import json
import re
import struct

import numpy as np
import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import load_file
from torch import nn

import compress_engine as ce

torch.set_num_threads(1)
# torch's quantized tensors (the reference here) warn that they are deprecated; they still compute the reference
pytestmark = pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")

QUANT = {  # pruned + quantized: 4 and 8 bits, per tensor and per channel, symmetric and affine
    "q4-affine-tensor": ce.Recipe(sparsity=0.8, bits=4),
    "q4-sym-channel": ce.Recipe(sparsity=0.8, bits=4, symmetric=True, per_channel=True),
    "q8-sym-tensor": ce.Recipe(sparsity=0.5, bits=8, symmetric=True),
    "q8-affine-channel": ce.Recipe(sparsity=0.5, bits=8, per_channel=True, bias_bits=8),
}
CLUSTER = {"c16": ce.Recipe(sparsity=0.9, clusters=16, huffman=True), "c256": ce.Recipe(sparsity=0.5, clusters=256)}
PLAIN = {"plain": ce.Recipe(sparsity=0.6)}
RECIPES = {**QUANT, **CLUSTER, **PLAIN}


class SmallCNN(nn.Module):
    """Our own CNN (not a sample model): two convs, a pooling, a linear head."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 12, 3, padding=1)
        self.fc = nn.Linear(12 * 7 * 7, 10)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.c1(x)), 2)
        x = torch.max_pool2d(torch.relu(self.c2(x)), 2)
        return self.fc(x.flatten(1))


@pytest.fixture(scope="module")
def cnn(small):
    """SmallCNN trained one quick epoch on the small slice (so accuracy is a real figure)."""
    torch.manual_seed(0)
    net = SmallCNN()
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    x, y = small.x("train"), small.y("train")
    for i in range(0, len(x), 128):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x[i:i + 128]), y[i:i + 128]).backward()
        opt.step()
    return net.eval()


@pytest.fixture(scope="module")
def made(fmnist, small, lenet300, cnn):
    """{(model, recipe key): (artifact, data, fresh-module factory)} for LeNet-300-100 and SmallCNN."""
    out = {}
    for key, r in RECIPES.items():
        out["lenet300", key] = (ce.compress(lenet300, r, fmnist, warn_collapse=False).artifact, fmnist,
                                lambda: ce.load_model("lenet-300-100"))
        out["cnn", key] = (ce.compress(cnn, r, small, warn_collapse=False).artifact, small, SmallCNN)
    return out


CASES = [(m, k) for m in ("lenet300", "cnn") for k in RECIPES]
QCASES = [(m, k) for m in ("lenet300", "cnn") for k in QUANT]
CCASES = [(m, k) for m in ("lenet300", "cnn") for k in CLUSTER]


def bits_equal(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(a.view(torch.int32), b.view(torch.int32))


def accuracy(model, data):
    return float((ce.predictions(model, data.x("test")) == data.y("test")).float().mean())


def header_meta(data):
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n])["__metadata__"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(c))
def test_float_file_loads_into_a_fresh_module_bit_for_bit(made, case, tmp_path):
    art, data, fresh = made[case]
    decoded, _ = ce.decode_model(art, module=fresh())
    f = tmp_path / "w.safetensors"
    f.write_bytes(ce.weights_safetensors(art))
    module = fresh()
    module.load_state_dict(load_file(str(f)), strict=True)  # safetensors' own loader, no compress_engine
    module.eval()
    want = decoded.state_dict()
    got = module.state_dict()
    assert list(got) == list(want)
    assert all(got[k].dtype == want[k].dtype and torch.equal(got[k], want[k]) for k in want)
    assert all(bits_equal(got[k], want[k]) for k in want if want[k].dtype == torch.float32)
    assert accuracy(module, data) == accuracy(decoded, data)


@pytest.mark.parametrize("case", QCASES + CCASES, ids=lambda c: "-".join(c))
def test_int8_file_reads_back_bit_for_bit_and_is_smaller(made, case):
    art, _, _ = made[case]
    dec = ce.decode(art)
    i8 = ce.int8_safetensors(art)
    back = ce.read_int8(i8)
    assert list(back) == list(dec)
    assert all(bits_equal(back[k], dec[k]) for k in dec)
    assert len(i8) < len(ce.weights_safetensors(art))
    assert ce.deploy_files(art) == (ce.weights_safetensors(art), i8, None)  # Export's one-decode call: the same
    meta = header_meta(i8)
    assert meta["scheme"] == "compress_engine.int8" and meta["version"] == "2"
    layout = json.loads(meta["layout"])
    raw = st_load(i8)
    weights = [k for k in dec if k.endswith("weight")]
    kind = "affine" if case[1] in QUANT else "palette"
    assert all(layout[k]["kind"] == kind for k in weights), layout
    for k in weights:
        assert raw[k].dtype in (torch.int8, torch.uint8) and raw[k].shape == dec[k].shape
        pruned = dec[k].view(torch.int32) == 0
        assert pruned.any() and bool((back[k][pruned].view(torch.int32) == 0).all())  # pruned zeros stay zeros


@pytest.mark.parametrize("case", QCASES, ids=lambda c: "-".join(c))
def test_int8_codes_are_torchs_own_quantizers(made, case):
    """Independent reference: torch.quantize_per_tensor / quantize_per_channel with the stored scale and zero point
    give the stored integer codes, and torch.dequantize of them gives the decoded weights bit for bit."""
    art, _, _ = made[case]
    r = RECIPES[case[1]]
    dec = ce.decode(art)
    raw = st_load(ce.int8_safetensors(art))
    layout = json.loads(header_meta(ce.int8_safetensors(art))["layout"])
    names = [k for k in dec if k.endswith("weight") or (r.bias_bits and k.endswith("bias"))]
    for k in names:
        codes, scale, zp = raw[k], raw[f"{k}.scale"], raw[f"{k}.zero_point"]
        assert codes.dtype == (torch.int8 if r.symmetric else torch.uint8) == zp.dtype
        qdt = torch.qint8 if codes.dtype == torch.int8 else torch.quint8
        per_channel = r.per_channel and k.endswith("weight")
        assert scale.dtype == torch.float32 and scale.numel() == (dec[k].shape[0] if per_channel else 1)
        if per_channel:
            assert layout[k]["axis"] == 0
            q = torch.quantize_per_channel(dec[k], scale.double(), zp.long(), 0, qdt)
        else:
            q = torch.quantize_per_tensor(dec[k], float(scale), int(zp), qdt)
        assert torch.equal(q.int_repr(), codes), k
        assert bits_equal(torch.dequantize(q), dec[k]), k
        bits, symmetric = (r.bits, r.symmetric) if k.endswith("weight") else (r.bias_bits, False)
        lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if symmetric else (0, 2 ** bits - 1)  # the recipe's grid
        assert lo <= int(codes.min()) and int(codes.max()) <= hi


@pytest.mark.parametrize("case", CCASES, ids=lambda c: "-".join(c))
def test_clustered_tensors_are_uint8_palettes(made, case):
    art, _, _ = made[case]
    dec = ce.decode(art)
    raw = st_load(ce.int8_safetensors(art))
    for k in (k for k in dec if k.endswith("weight")):
        idx, book = raw[k], raw[f"{k}.codebook"]
        assert idx.dtype == torch.uint8 and book.dtype == torch.float32 and book.numel() <= 256
        nonzero = np.unique(dec[k].numpy()[dec[k].numpy() != 0])  # the centroids, found independently
        assert set(nonzero.tolist()) <= set(book.tolist())
        w = book[idx.long()]
        mask = raw.get(f"{k}.mask")
        if mask is not None:  # 256 centroids and the pruned zeros: 257 values; a bit per element, 8 to a byte
            n = dec[k].numel()
            assert mask.dtype == torch.uint8 and mask.shape == (-(-n // 8),) and nonzero.size == 256
            bits = [(int(mask[i // 8]) >> (i % 8)) & 1 for i in range(n)]  # the first element in the lowest bit
            w = torch.where(torch.tensor(bits, dtype=torch.bool).reshape(dec[k].shape), w, 0.0)
        assert bits_equal(w, dec[k])


@pytest.mark.parametrize("model", ["lenet300", "cnn"])
def test_int8_of_a_recipe_without_grids_is_refused_in_words(made, model):
    art, _, _ = made[model, "plain"]
    with pytest.raises(ce.CompressError, match=r"no tensor to store as int8.*weights_safetensors.*bits") as e:
        ce.int8_safetensors(art)
    assert ce.deploy_files(art) == (ce.weights_safetensors(art), None, str(e.value))


def test_sixteen_bits_are_refused_and_bad_bytes_named(made, lenet300, fmnist):
    art = ce.compress(lenet300, ce.Recipe(bits=16), fmnist, warn_collapse=False).artifact
    with pytest.raises(ce.CompressError, match="more than 8 bits"):
        ce.int8_safetensors(art)
    with pytest.raises(ce.ArtifactError, match="not an int8 file"):
        ce.read_int8(ce.weights_safetensors(made["lenet300", "c16"][0]))
    with pytest.raises(ce.ArtifactError, match="bytes"):
        ce.read_int8("model-int8.safetensors")


# --- the Export page -------------------------------------------------------------------------------------------------

def spy(monkeypatch):
    from streamlit.delta_generator import DeltaGenerator
    sent = {}
    real = DeltaGenerator.download_button

    def fake(self, label, data, *args, **kwargs):
        sent[label] = data
        return real(self, label, data, *args, **kwargs)
    monkeypatch.setattr(DeltaGenerator, "download_button", fake)
    return sent


def export():
    from test_app import app
    return app().run().switch_page("pages/export.py").run()


def test_export_page_offers_both_files_with_their_sizes(fmnist, tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESS_STORE", str(tmp_path / "runs.sqlite"))
    sent = spy(monkeypatch)
    at = export()  # its default recipe: 50 % pruned, 16 clusters
    assert not at.exception and not at.error
    labels = [b.label for b in at.get("download_button")]
    assert labels[0].startswith("Download artifact") and labels[1] == "Download recipe (.json)"
    art = sent[labels[0]]
    for label, expect in ((labels[2], ce.weights_safetensors(art)), (labels[3], ce.int8_safetensors(art))):
        size = int(re.search(r"([\d,]+) bytes\)", label).group(1).replace(",", ""))
        assert size == len(sent[label]) and sent[label] == expect
    assert labels[2].startswith("Weights (.safetensors") and labels[3].startswith("int8 weights (.safetensors")
    # the captions' lines load the files as named, the float one without compress_engine
    captions = [c.value for c in at.caption if "```python" in c.value]
    assert len(captions) == 2
    model, _ = ce.decode_model(art)
    monkeypatch.chdir(tmp_path)
    for caption, label in zip(captions, labels[2:]):
        code = re.search(r"```python\n(.*?)```", caption, re.S).group(1)
        assert len(code.strip().splitlines()) == 3
        name = re.search(r"'([^']+\.safetensors)'", code).group(1)
        (tmp_path / name).write_bytes(sent[label])
        fresh = ce.load_model("lenet-300-100")
        scope = {"model": fresh}
        exec(code, scope)
        if "read_int8" not in code:
            assert "compress_engine" not in code
        assert all(bits_equal(fresh.state_dict()[k], v) for k, v in model.state_dict().items())
    # uniform bits: still both; no sharing at all: the float file only, and why not int8
    at = at.radio(key="export_sharing").set_value("uniform bits").run()
    assert not at.exception and len(at.get("download_button")) == 4
    at = at.radio(key="export_sharing").set_value("none").run()
    assert not at.exception
    labels = [b.label for b in at.get("download_button")]
    assert len(labels) == 3 and labels[2].startswith("Weights (.safetensors")
    assert any("No int8 weights" in c.value and "neither quantizes" in c.value for c in at.caption)


def test_the_same_artifact_gives_the_same_bytes(made):
    """safetensors writes its metadata in a hash map's order, different in each process: the files are made the same
    every time (the dashboard shows hashes; same recipe, same bytes), checked in fresh interpreters."""
    import subprocess
    import sys
    art = made["cnn", "q8-affine-channel"][0]
    script = ("import sys, hashlib, compress_engine as ce; a = sys.stdin.buffer.read(); "
              "print(hashlib.sha256(ce.weights_safetensors(a) + ce.int8_safetensors(a)).hexdigest())")
    runs = {subprocess.run([sys.executable, "-c", script], input=art, capture_output=True, check=True).stdout
            for _ in range(2)}
    assert len(runs) == 1


def test_a_tensor_the_formula_cannot_give_back_stays_float_and_is_named():
    """(q - zp) * scale never makes -0.0: a grid tensor holding one is stored as float, named in kept_float with the
    reason, and the file still reads back bit for bit; its neighbour on a grid is stored as codes. Tensor names
    that would collide with the layout's own are refused."""
    from compress_engine.core.encode import Affine
    grid = Affine(np.array([0.5], np.float32), np.array([8]), 0, 15)
    a = torch.tensor([[-0.0, 1.5], [-4.0, 0.0]])
    b = torch.tensor([[0.5, 0.0], [-1.0, 3.5]])
    art = ce.encode({"a": a, "b": b}, {"a": grid, "b": grid})
    i8 = ce.int8_safetensors(art)
    meta = header_meta(i8)
    assert list(json.loads(meta["kept_float"])) == ["a"] and "-0.0" in json.loads(meta["kept_float"])["a"]
    raw = st_load(i8)
    assert raw["a"].dtype == torch.float32 and raw["b"].dtype == torch.uint8
    assert raw["b"].tolist() == [[9, 8], [6, 15]] and int(raw["b.zero_point"]) == 8
    back = ce.read_int8(i8)
    assert bits_equal(back["a"], a) and bits_equal(back["b"], b)
    clash = ce.encode({"b": b, "b.scale": torch.ones(1)}, {"b": grid})
    with pytest.raises(ce.CompressError, match=r"b\.scale"):
        ce.int8_safetensors(clash)
