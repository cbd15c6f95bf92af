"""Uploaded model weights (compress_engine.read_weights and the sidebar uploader): every sample model
round-trips through .safetensors and .pt; hostile or broken files (pickled code, truncations,
random bytes, lying safetensors headers, NaN weights, wrong shapes, names or dtypes, ...) raise
ModelError with a message, never another exception, and a pickle never runs its code."""

import io
import os
import pickle
import re
import struct
import warnings
import zipfile

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save as st_save
from streamlit.testing.v1 import AppTest
from test_app import ROOT, TIMEOUT, app

import compress_engine as ce
from compress_engine.playground import zoo as models
from compress_engine.playground.zoo import read_weights
from conftest import plots

SAMPLES = list(models.SAMPLES)  # read_weights infers each one's architecture (MLP, LeNet-5, ResNet) from its names
MLP_SMALL = {"arch": "mlp", "sizes": [784, 32, 10]}
RESNET_SMALL = {"arch": "resnet", "widths": [4, 8], "inner": [3, 8], "batchnorm": True, "in_channels": 1, "classes": 10}


def pt(obj, **kw):
    """torch.save(obj) as bytes (zip format)."""
    buf = io.BytesIO()
    torch.save(obj, buf, **kw)
    return buf.getvalue()


def small_state(spec=None, seed=0):
    torch.manual_seed(seed)
    return models.build(spec or MLP_SMALL).state_dict()


def same_weights(model, state):
    got = model.state_dict()
    return list(got) == list(state) and all(torch.equal(got[k], state[k].float()) for k in state)


# ----------------------------------------------------------------------------- good files

@pytest.fixture(scope="module")
def sample_states():
    return {name: ce.load_model(name).state_dict() for name in SAMPLES}


@pytest.mark.parametrize("fmt", ["safetensors", "pt", "pth"])
@pytest.mark.parametrize("name", SAMPLES)
def test_sample_models_round_trip(sample_states, name, fmt):
    state = sample_states[name]
    data = st_save(state) if fmt == "safetensors" else pt(state)
    model = read_weights(data, f"{name}.{fmt}")
    spec = models.SAMPLES[name][0]
    assert models.spec_of(model) == {k: v for k, v in spec.items() if k != "dropout"}
    assert same_weights(model, state) and not model.training
    x = torch.rand(4, 1, 28, 28)
    reference = models.from_state_dict(spec, state)
    assert torch.equal(model(x), reference(x))


@pytest.mark.parametrize("wrap", ["state_dict", "model", "checkpoint", "module.", "ordered", "lightning", "net.",
                                  "module.model."])
@pytest.mark.parametrize("spec", [MLP_SMALL, RESNET_SMALL, {"arch": "lenet5", "widths": [6, 16, 120]}])
def test_checkpoint_wrappers(wrap, spec):
    """A training checkpoint's state dict under "state_dict" / "model", an OrderedDict, and any prefix its training
    code put before every name: DataParallel's module., Lightning's model. (in its checkpoint's "state_dict"), net.,
    several of them."""
    state = small_state(spec)
    obj = {"state_dict": state, "model": state,
           "checkpoint": {"model": state, "epoch": 3, "optimizer": {"lr": 0.1}, "note": "hi"},
           "module.": {f"module.{k}": v for k, v in state.items()},
           "ordered": type(state)(state),
           "lightning": {"state_dict": {f"model.{k}": v for k, v in state.items()}, "epoch": 1},
           "net.": {f"net.{k}": v for k, v in state.items()},
           "module.model.": {f"module.model.{k}": v for k, v in state.items()}}[wrap]
    model = read_weights(pt(obj), "ckpt.pt")
    assert models.spec_of(model) == spec and same_weights(model, state)


def test_a_prefix_is_kept_when_the_names_fit_without_stripping():
    """A one-layer MLP's names all start with 'layers.': they fit as they are, and are not stripped to '0.weight'."""
    state = small_state({"arch": "mlp", "sizes": [784, 10]})
    assert models.spec_of(read_weights(pt(state), "one.pt")) == {"arch": "mlp", "sizes": [784, 10]}


def renamed_as_told(message, state):
    """`state` renamed as a refusal's "rename a.* to b.*, c.* to d.* and upload it again" says."""
    pairs = re.findall(r"(\S+)\.\* to (\S+)\.\*", re.search(r"rename (.*?) and upload it again", message).group(1))
    assert pairs, message
    out = {}
    for k, v in state.items():
        old = next(a for a, _ in pairs if k.startswith(a + "."))
        out[k.replace(old + ".", dict(pairs)[old] + ".", 1)] = v
    return out


@pytest.mark.parametrize("first", [0, 1])
def test_a_sequential_mlp_is_refused_with_the_renaming_that_makes_it_one(first):
    """nn.Sequential(Flatten, Linear, ReLU, Linear, ...) saves 1.weight, 3.weight, ... (0., 2., ... without the
    Flatten): the weights cannot say a ReLU is between the layers, so the refusal says so and how to rename them;
    renamed as it says, the file loads as that MLP."""
    torch.manual_seed(0)
    seq = torch.nn.Sequential(*[torch.nn.Flatten()][:first], torch.nn.Linear(784, 32), torch.nn.ReLU(),
                              torch.nn.Linear(32, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    state = seq.state_dict()
    with pytest.raises(ce.ModelError, match="do not fit") as e:
        read_weights(pt(state), "seq.pt")
    message = str(e.value)
    assert "MLP 784-32-16-10" in message and "ReLU" in message and "conv1" not in message.split("The sidebar")[0]
    model = read_weights(pt(renamed_as_told(message, state)), "seq.pt")
    x = torch.rand(5, 1, 28, 28)
    assert models.spec_of(model) == {"arch": "mlp", "sizes": [784, 32, 16, 10]}
    assert torch.equal(model(x), seq(x.flatten(1)))


def test_a_renamed_lenet_is_refused_with_the_renaming_that_makes_it_one():
    torch.manual_seed(0)
    spec = {"arch": "lenet5", "widths": [6, 16, 120]}
    lenet = models.build(spec)
    names = {"conv1": "features.0", "conv2": "features.3", "fc1": "classifier.1", "fc2": "classifier.3"}
    state = {names[k.split(".")[0]] + "." + k.split(".")[1]: v for k, v in lenet.state_dict().items()}
    with pytest.raises(ce.ModelError, match="shapes are those of a LeNet-5") as e:
        read_weights(pt(state), "cnn.pt")
    model = read_weights(pt(renamed_as_told(str(e.value), state)), "cnn.pt")
    assert models.spec_of(model) == spec and same_weights(model, lenet.state_dict())


def test_a_file_that_does_not_fit_its_spec_is_worded_as_every_other_mismatch():
    """from_state_dict (an upload's or an artifact's spec) names missing, unexpected and mis-shaped tensors as
    state_mismatch does for a user's module: one wording, with the counts, the names and both shapes."""
    state = dict(small_state())
    state["layers.0.weight"] = torch.zeros(31, 784)
    del state["layers.1.bias"]
    state["extra.weight"] = torch.zeros(2)
    with pytest.raises(ce.ModelError) as e:
        models.from_state_dict(MLP_SMALL, state)
    message = str(e.value)
    assert ": " + models.state_mismatch(models.build(MLP_SMALL), state) + "; " in message, message  # then the fix
    assert ("1 missing (layers.1.bias); 1 unexpected (extra.weight); 1 of the wrong shape (layers.0.weight is "
            "[31, 784], expected [32, 784])") in message, message


def lenet_under_other_names(**shapes):
    """A LeNet-5 6-16-120 saved as nn.Sequential features / classifier, with some tensors of other shapes."""
    torch.manual_seed(0)
    state = {**models.build({"arch": "lenet5", "widths": [6, 16, 120]}).state_dict(),
             **{k.replace("_", "."): torch.zeros(s) for k, s in shapes.items()}}
    names = {"conv1": "features.0", "conv2": "features.3", "fc1": "classifier.1", "fc2": "classifier.3"}
    return {names[k.split(".")[0]] + "." + k.split(".")[1]: v for k, v in state.items()}


@pytest.mark.parametrize("state, why", [
    (torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.ReLU(), torch.nn.Linear(64, 3)).state_dict(),
     r"an MLP 20-64-3 .*, which the sidebar cannot take under any names: an MLP of sizes \[20, 64, 3\] cannot run "
     r"here: .* must be \[784, \.\.\., 10\]"),
    (lenet_under_other_names(conv1_weight=(6, 3, 5, 5)),
     r"a LeNet-5 .*, which the sidebar cannot take under any names: a LeNet-5 with 3 input channel\(s\)"),
    (lenet_under_other_names(fc2_weight=(3, 120), fc2_bias=(3,)), r"cannot take under any names: .* 3 outputs"),
    (lenet_under_other_names(conv1_weight=(6, 1, 3, 3), conv2_weight=(16, 6, 3, 3), fc1_weight=(120, 400)),
     r"cannot take under any names: its tensors would not fit \(3 of the wrong shape \(conv1.weight is "
     r"\[6, 1, 3, 3\], expected \[6, 1, 5, 5\]")])
def test_renaming_is_suggested_only_when_the_renamed_file_would_load(state, why):
    """A 20-64-3 tabular MLP, or a LeNet-5 for RGB images, 3 classes or 3x3 kernels, under other names: renamed, the
    sidebar would refuse it too, so the refusal says why and points to the command line and its --data instead."""
    with pytest.raises(ce.ModelError) as e:
        read_weights(pt(state), "mine.pt")
    message = str(e.value)
    assert re.search(why, message), message
    assert "rename" not in message and "--data" in message, message
    assert "python -m compress_engine run --model your_model.py:make_model --weights 'mine.pt'" in message, message


def test_a_safetensors_file_is_read_in_its_own_order():
    """safetensors' load returns a hash map's order, another at each call: the names come in the file's order, so a
    refusal lists them the same way each time (the command line's --weights reads files here too)."""
    data = st_save(small_state(RESNET_SMALL))
    orders = {tuple(models.read_state(data, "'w.safetensors'", ".safetensors")) for _ in range(20)}
    assert len(orders) == 1 and set(next(iter(orders))) == set(small_state(RESNET_SMALL)), orders


class DepthwiseGroupNorm(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), torch.nn.GroupNorm(2, 8), torch.nn.ReLU(),
                                            torch.nn.Conv2d(8, 8, 3, groups=8), torch.nn.Conv2d(8, 16, 1))
        self.classifier = torch.nn.Linear(16, 10)


class RowLSTM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm, self.fc = torch.nn.LSTM(28, 16), torch.nn.Linear(16, 10)


class BatchNormCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                                            torch.nn.Conv2d(8, 16, 3), torch.nn.BatchNorm2d(16), torch.nn.ReLU())
        self.fc = torch.nn.Linear(16, 10)


class ShortcutBlock(torch.nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1, self.bn1 = torch.nn.Conv2d(cin, cout, 3, 2, 1, bias=False), torch.nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = torch.nn.Conv2d(cout, cout, 3, 1, 1, bias=False), torch.nn.BatchNorm2d(cout)
        self.downsample = torch.nn.Sequential(torch.nn.Conv2d(cin, cout, 1, 2, bias=False), torch.nn.BatchNorm2d(cout))


class ShortcutResNet(torch.nn.Module):
    """torchvision's BasicBlock layout: the 1x1 downsample takes the block's input (8 channels), not conv2's 16.
    The stem is registered last: a file's order need not be the forward's."""

    def __init__(self):
        super().__init__()
        self.layer1 = torch.nn.Sequential(ShortcutBlock(8, 16), ShortcutBlock(16, 32))
        self.first, self.bn = torch.nn.Conv2d(1, 8, 3, 1, 1, bias=False), torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(32, 10)


@pytest.mark.parametrize("module", [BatchNormCNN, ShortcutResNet])
@pytest.mark.parametrize("counters", [True, False])
def test_a_batchnorm_cnn_or_resnet_under_other_names_is_told_the_resnet_comes_closest(module, counters):
    """A BatchNorm saved the usual way has a 0-D num_batches_tracked, and a ResNet's 1x1 downsample takes its block's
    input: neither is an odd layer (a '0-D tensor', 'grouped convolutions'), so the refusal names the ResNet."""
    state = {k: v for k, v in module().state_dict().items() if counters or not k.endswith("num_batches_tracked")}
    with pytest.raises(ce.ModelError) as e:
        read_weights(pt(state), "cnn.pt")
    message = str(e.value).split(". The sidebar")[0]
    assert "(convolutions with BatchNorm) come closest to the ResNet here" in message, message
    assert "0-D" not in message and "grouped" not in message, message


class TorchvisionNames(ShortcutResNet):
    """torchvision's ResNet names: conv1, bn1, layer1, ..., fc; conv1.weight is also a LeNet-5 name."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = self.first, self.bn
        del self.first, self.bn


def test_a_file_sharing_a_name_with_lenet5_is_not_compared_with_its_names():
    """A torchvision-style ResNet has conv1.weight: the refusal says what its shapes come closest to, not that it
    misses LeNet-5's conv1.bias, conv2.weight, ...; a near LeNet-5 (a bias missing, a layer more) is still compared
    with LeNet-5's names, which says what to change."""
    with pytest.raises(ce.ModelError) as e:
        read_weights(pt(TorchvisionNames().state_dict()), "resnet18.pt")
    message = str(e.value).split(". The sidebar")[0]
    assert "come closest to the ResNet here" in message, message
    assert "missing" not in message and "conv1.bias" not in message and "conv2" not in message, message
    lenet = small_state({"arch": "lenet5", "widths": [6, 16, 120]})
    for state, words in (({k: v for k, v in lenet.items() if k != "fc2.bias"}, "missing ['fc2.bias']"),
                         ({**lenet, "fc3.weight": torch.zeros(10, 10)}, "unexpected ['fc3.weight']")):
        with pytest.raises(ce.ModelError, match=re.escape(words)):
            read_weights(pt(state), "lenet.pt")


@pytest.mark.parametrize("module, why", [(RowLSTM, r"recurrent layers \(lstm.weight_ih_l0\)"),
                                         (DepthwiseGroupNorm, r"depthwise or grouped convolutions \(features.3.weight "
                                                              r"\[8, 1, 3, 3\]\), norms without running statistics")])
def test_a_model_the_sidebar_cannot_take_points_to_the_command_line(tmp_path, module, why):
    """An LSTM or depthwise convolutions with GroupNorm: the refusal says the shapes fit none of the architectures
    (not LeNet-5's missing names) and gives the command line that compresses any model, which its parser takes."""
    import shlex

    from compress_engine.playground import cli
    with pytest.raises(ce.ModelError, match="do not fit a known architecture, and its shapes come closest to none "
                                            f"of them: it has {why}") as e:
        read_weights(pt(module().state_dict()), "mine.pt")
    message = str(e.value)
    assert "missing" not in message and "'conv1" not in message
    command = re.search(r"python -m compress_engine (run --model \S+ --weights '[^']+')", message).group(1)
    (tmp_path / "your_model.py").write_text("")
    argv = [a.replace("your_model.py", str(tmp_path / "your_model.py")) for a in shlex.split(command)]
    args = cli.parser().parse_args(argv)
    assert args.cmd == "run" and str(args.weights) == "mine.pt" and cli.model_ref(args.model)[0] == "file"


@pytest.mark.parametrize("spec", [{"arch": "mlp", "sizes": [784, 10]}, {"arch": "mlp", "sizes": [784, 7, 5, 3, 10]},
                                  {"arch": "lenet5", "widths": [6, 16, 120]}, {"arch": "lenet5", "widths": [1, 1, 1]},
                                  RESNET_SMALL, {**RESNET_SMALL, "batchnorm": False},
                                  {**RESNET_SMALL, "widths": [2], "inner": [5]},
                                  {**RESNET_SMALL, "widths": [2, 3, 4, 5, 6, 7], "inner": [1, 1, 1, 1, 1, 1]}])
def test_any_sizes_and_widths(spec):
    """Any MLP and LeNet-5, and any ResNet: 1 to 6 blocks, inner widths of structured pruning, BatchNorm folded."""
    state = small_state(spec)
    for data, fname in ((st_save(state), "m.safetensors"), (pt(state), "M.PTH")):
        model = read_weights(data, fname)
        assert models.spec_of(model) == spec and same_weights(model, state)
        x = torch.rand(2, 1, 28, 28)
        assert torch.equal(model(x), models.from_state_dict(spec, state).eval()(x))


def test_arch_text_names_each_architecture():
    assert ce.arch_text(MLP_SMALL) == "MLP 784-32-10"
    assert ce.arch_text({"arch": "lenet5", "widths": [6, 16, 120]}) == "LeNet-5 with widths 6-16-120"
    assert ce.arch_text({**RESNET_SMALL, "inner": [4, 8], "batchnorm": False}) == "ResNet with widths 4-8, folded"


def test_resnet_batchnorm_counters():
    """BatchNorm's num_batches_tracked (int64, never read in evaluation) is kept; a file saved without it, or with
    it turned float by .half(), still loads; anything but one whole number >= 0 there is refused."""
    state = small_state(RESNET_SMALL)
    state["bn.num_batches_tracked"] += 7
    model = read_weights(st_save(state), "r.safetensors")
    assert model.bn.num_batches_tracked.dtype == torch.int64 and int(model.bn.num_batches_tracked) == 7
    no_counters = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    model = read_weights(st_save(no_counters), "r.safetensors")
    got = model.state_dict()
    assert all(torch.equal(got[k], v) for k, v in no_counters.items())
    assert int(model.blocks[1].shortcut[1].num_batches_tracked) == 0
    halved = {k: v.half() for k, v in state.items()}
    assert int(read_weights(pt(halved), "r.pt").bn.num_batches_tracked) == 7
    for bad in (torch.tensor(-1), torch.tensor(2.5), torch.tensor([1, 2]), torch.tensor(True), torch.tensor(float("nan"))):
        with pytest.raises(ce.ModelError, match="'bn.num_batches_tracked' must be one non-negative whole number"):
            read_weights(pt({**state, "bn.num_batches_tracked": bad}), "r.pt")
    with pytest.raises(ce.ModelError, match="dtype torch.int64"):  # only a BatchNorm's counter may be an integer
        read_weights(pt({**state, "bn.running_mean": state["bn.running_mean"].long()}), "r.pt")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_float_dtypes_become_float32(dtype):
    state = {k: v.to(dtype) for k, v in small_state().items()}
    for data, fname in ((st_save(state), "h.safetensors"), (pt(state), "h.pt")):
        model = read_weights(data, fname)
        assert all(p.dtype == torch.float32 for p in model.parameters()) and same_weights(model, state)


# ----------------------------------------------------------------------------- code in a pickle

class Evil:
    """Unpickling this would run a shell command that creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class EvilExec:
    """Unpickling this would run Python code that creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('pwned')",)


MALICIOUS = {
    "os.system value in a state dict (zip)": lambda m: pt({**small_state(), "x": Evil(m)}),
    "exec as the whole object (zip)": lambda m: pt(EvilExec(m)),
    "os.system under 'state_dict' (zip)": lambda m: pt({"state_dict": {"layers.0.weight": Evil(m)}}),
    "os.system as a bare pickle": lambda m: pickle.dumps({"w": Evil(m)}),
    "exec as a bare pickle, protocol 2": lambda m: pickle.dumps(EvilExec(m), protocol=2),
    "legacy torch.save with os.system": lambda m: pt({"w": Evil(m)}, _use_new_zipfile_serialization=False),
    "a whole nn.Module (zip)": lambda m: pt(models.build(MLP_SMALL)),
    "a TorchScript archive": lambda m: torchscript_bytes(),
}


def torchscript_bytes():
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(models.build(MLP_SMALL)), buf)
    return buf.getvalue()


def test_evil_pickles_really_run_code_when_unpickled(tmp_path):
    """Control: the payloads are real; plain pickle.loads does run them (not in read_weights)."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(Evil(marker)))
    assert marker.exists()
    marker.unlink()
    pickle.loads(pickle.dumps(EvilExec(marker)))
    assert marker.read_text() == "pwned"


@pytest.mark.parametrize("name", MALICIOUS)
@pytest.mark.parametrize("suffix", [".pt", ".pth"])
def test_pickled_code_is_refused_and_never_runs(tmp_path, name, suffix):
    marker = tmp_path / "pwned"
    data = MALICIOUS[name](marker)
    with pytest.raises(ce.ModelError, match="refused|TorchScript") as e:
        read_weights(data, f"evil{suffix}")
    assert not marker.exists()
    assert "torch.save(model.state_dict()" in str(e.value)


def test_code_refusal_names_what_it_found(tmp_path):
    with pytest.raises(ce.ModelError, match=r"refused: 'evil.pt' contains code/objects other than tensors "
                                            r"\(posix\.system\)"):
        read_weights(pt({"w": Evil(tmp_path / "x")}), "evil.pt")
    with pytest.raises(ce.ModelError, match=r"contains code/objects.*MLP"):
        read_weights(pt(models.build(MLP_SMALL)), "module.pt")


@pytest.mark.parametrize("name", [n for n in MALICIOUS if "(zip)" in n or "TorchScript" in n])
def test_pickled_code_named_safetensors_is_refused_and_never_runs(tmp_path, name):
    """A torch.save zip named .safetensors is read as the zip it is: still by torch.load(weights_only=True)."""
    marker = tmp_path / "pwned"
    with pytest.raises(ce.ModelError, match="refused|TorchScript"):
        read_weights(MALICIOUS[name](marker), "evil.safetensors")
    assert not marker.exists()


@pytest.mark.parametrize("spec", [MLP_SMALL, RESNET_SMALL])
def test_a_file_named_for_the_other_format_is_read_by_its_content(spec):
    """A safetensors file saved as .pt / .pth, and a torch.save zip saved as .safetensors, load as they are."""
    state = small_state(spec)
    for data, fname in ((st_save(state), "w.pt"), (st_save(state), "w.PTH"), (pt(state), "w.safetensors")):
        model = read_weights(data, fname)
        assert models.spec_of(model) == spec and same_weights(model, state), fname
    cut = st_save(state)[:-9]  # a truncated safetensors file named .pt is reported as one
    with pytest.raises(ce.ModelError, match="'w.pt' is not a readable safetensors file"):
        read_weights(cut, "w.pt")


# ----------------------------------------------------------------------------- broken and hostile files

def st_with_header(header, body=b""):
    """A safetensors file from a raw header (bytes) and body."""
    return struct.pack("<Q", len(header)) + header + body


def rezip(data, compression):
    """The same zip checkpoint rewritten with another compression."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as z:
        for info in src.infolist():
            z.writestr(info.filename, src.read(info.filename))
    return out.getvalue()


def with_value(key, value):
    state = dict(small_state())
    state[key] = value
    return state


def expanded_mlp():
    """Shapes that chain badly and claim a 20000 x 20000 layer, built from one-element storages."""
    one = torch.zeros(1)
    return {"layers.0.weight": one.expand(20000, 784), "layers.0.bias": torch.zeros(20000),
            "layers.1.weight": one.expand(20000, 1), "layers.1.bias": torch.zeros(20000),
            "layers.2.weight": one.expand(10, 1), "layers.2.bias": torch.zeros(10)}


def wide_lenet():
    """LeNet-5 state dict with 200,000 conv1 filters (10 M weights, from one-element storages)."""
    one, c1 = torch.zeros(1), 200_000
    return {"conv1.weight": one.expand(c1, 1, 5, 5), "conv1.bias": one.expand(c1),
            "conv2.weight": one.expand(1, c1, 5, 5), "conv2.bias": one, "fc1.weight": one.expand(1, 16),
            "fc1.bias": one, "fc2.weight": one.expand(10, 1), "fc2.bias": one.expand(10)}


def qint8(t):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quantized tensors are deprecated; users may still have such files
        return torch.quantize_per_tensor(t, 0.1, 0, torch.qint8)


def nan_state(value):
    state = small_state()
    state["layers.1.weight"][3, 4] = value
    return state


GOOD_ST = st_save(small_state())
GOOD_PT = pt(small_state())

# id -> (file name, bytes factory, expected message part). Every one must raise ModelError.
BAD = {
    # size
    "empty .safetensors": ("w.safetensors", lambda: b"", "empty"),
    "empty .pt": ("w.pt", lambda: b"", "empty"),
    "over the size limit": ("w.safetensors", lambda: GOOD_ST, "limited to"),
    # names and types of the upload itself
    "wrong suffix .bin": ("w.bin", lambda: GOOD_PT, "must end in"),
    "no suffix": ("weights", lambda: GOOD_ST, "must end in"),
    "a .safetensors.txt": ("w.safetensors.txt", lambda: GOOD_ST, "must end in"),
    # safetensors framing
    "safetensors: 3 bytes": ("w.safetensors", lambda: b"abc", "too short"),
    "safetensors: header claims 2**63 bytes": ("w.safetensors", lambda: struct.pack("<Q", 2 ** 63) + b"{}",
                                               "claims"),
    "safetensors: header claims 1 byte past the end": (
        "w.safetensors", lambda: struct.pack("<Q", len(GOOD_ST) - 7) + GOOD_ST[8:], "claims"),
    "safetensors: header of 2 MB": ("w.safetensors", lambda: st_with_header(b" " * (2 << 20)), "header is"),
    "safetensors: header not JSON": ("w.safetensors", lambda: st_with_header(b"{not json"), "not a readable"),
    "safetensors: header a JSON list": ("w.safetensors", lambda: st_with_header(b"[1, 2]"), "not a readable"),
    "safetensors: offsets past the data": ("w.safetensors", lambda: st_with_header(
        b'{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}', b"\0" * 8), "not a readable"),
    "safetensors: shape disagrees with offsets": ("w.safetensors", lambda: st_with_header(
        b'{"w": {"dtype": "F32", "shape": [1000000, 1000000], "data_offsets": [0, 16]}}', b"\0" * 16),
        "not a readable"),
    "safetensors: unknown dtype": ("w.safetensors", lambda: st_with_header(
        b'{"w": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]}}', b"\0" * 16), "not a readable"),
    "safetensors: 300 tensors": ("w.safetensors", lambda: st_save({f"t{i}": torch.zeros(1) for i in range(300)}),
                                 "holds 300 tensors; .* at most 256"),
    "safetensors: random bytes": ("w.safetensors", lambda: bytes(range(256)) * 4, "safetensors"),
    # another kind of file, renamed: named for what it is, not for its first bytes read as a header length
    "a PNG renamed .safetensors": ("w.safetensors", lambda: b"\x89PNG\r\n\x1a\n" + bytes(100),
                                   "is a PNG image, not a weight file, though its name ends in .safetensors"),
    "a JPEG renamed .pt": ("w.pt", lambda: b"\xff\xd8\xff\xe0" + bytes(100), "is a JPEG image, not a weight file"),
    "an artifact renamed .pt": ("w.pt", lambda: b"CPG1" + bytes(100),
                                "is a compressed artifact \\(.cpg: the Export page opens those\\)"),
    # torch framing
    "pt: random bytes": ("w.pt", lambda: bytes((i * 7 + 3) % 256 for i in range(1024)), "not a PyTorch checkpoint"),
    "pt: zip magic then junk": ("w.pt", lambda: b"PK\x03\x04" + b"\x01" * 500, "corrupt zip"),
    "pt: zip of a text file": ("w.pt", lambda: zip_of({"hello.txt": b"hi"}), "not a readable"),
    "pt: bare pickle of a real state dict": ("w.pt", lambda: pickle.dumps(small_state()), "bare pickle"),
    "pt: legacy torch.save of a state dict": ("w.pt", lambda: pt(small_state(), _use_new_zipfile_serialization=False),
                                              "bare pickle or a pre-1.6"),
    "pt: deflate-compressed entries": ("w.pt", lambda: rezip(GOOD_PT, zipfile.ZIP_DEFLATED), "compressed"),
    "pt: corrupt pickle opcodes": ("w.pt", lambda: replace_pickle(GOOD_PT, b"\x80\x02\xff\xfe\xfd."), "corrupt pickle"),
    "pt: pickle of 2 MB": ("w.pt", lambda: replace_pickle(GOOD_PT, pickle.dumps("x" * (2 << 20), protocol=2)),
                           "bytes of pickle"),
    "pt: numel larger than its storage": ("w.pt", lambda: lying_numel(), "not a readable"),
    # content: not a state dict
    "pt: a bare tensor": ("w.pt", lambda: pt(torch.zeros(3)), "not a state dict"),
    "pt: a list of tensors": ("w.pt", lambda: pt(list(small_state().values())), "not a state dict"),
    "pt: None": ("w.pt", lambda: pt(None), "not a state dict"),
    "pt: empty dict": ("w.pt", lambda: pt({}), "empty state dict"),
    "safetensors: no tensors": ("w.safetensors", lambda: st_save({}), "empty state dict"),
    "pt: int value": ("w.pt", lambda: pt(with_value("epoch", 3)), "'epoch' is a int"),
    "pt: str value": ("w.pt", lambda: pt(with_value("name", "mlp")), "not a tensor"),
    "pt: list value": ("w.pt", lambda: pt(with_value("layers.0.bias", [0.0] * 32)), "not a tensor"),
    "pt: dict value": ("w.pt", lambda: pt(with_value("extra", {"a": torch.zeros(1)})), "not a tensor"),
    "pt: int keys": ("w.pt", lambda: pt({i: v for i, v in enumerate(small_state().values())}), "names are strings"),
    "pt: nested three levels deep": ("w.pt", lambda: pt({"a": {"model": {"state_dict": small_state()}}}),
                                     "not a tensor"),
    # content: dtypes and values
    "int64 weights": ("w.safetensors", lambda: st_save({k: v.long() for k, v in small_state().items()}), "dtype"),
    "bool weights": ("w.safetensors", lambda: st_save({k: v > 0 for k, v in small_state().items()}), "dtype"),
    "uint8 weights": ("w.pt", lambda: pt({k: (v * 0).to(torch.uint8) for k, v in small_state().items()}), "dtype"),
    "complex weights": ("w.pt", lambda: pt({k: v.to(torch.complex64) for k, v in small_state().items()}), "dtype"),
    "quantized weights": ("w.pt", lambda: pt(with_value("layers.0.bias", qint8(torch.zeros(32)))), "quantized"),
    "sparse weights": ("w.pt", lambda: pt(with_value("layers.0.bias", torch.zeros(32).to_sparse())), "sparse"),
    "a NaN weight (.safetensors)": ("w.safetensors", lambda: st_save(nan_state(float("nan"))), "NaN or infinite"),
    "a NaN weight (.pt)": ("w.pt", lambda: pt(nan_state(float("nan"))), "NaN or infinite"),
    "an inf weight": ("w.safetensors", lambda: st_save(nan_state(float("-inf"))), "NaN or infinite"),
    "float64 overflowing float32": ("w.pt", lambda: pt({k: v.double() * (1e300 if k.endswith("bias") else 1)
                                                         for k, v in small_state().items()}), "after conversion"),
    # content: names and shapes
    "unknown names": ("w.safetensors", lambda: st_save({"conv.weight": torch.zeros(3, 3)}), "do not fit"),
    "extra key": ("w.safetensors", lambda: st_save(with_value("layers.9.weight", torch.zeros(2, 2))), "missing"),
    "missing bias": ("w.safetensors", lambda: st_save({k: v for k, v in small_state().items()
                                                       if k != "layers.1.bias"}), "missing"),
    "gap in layer numbers": ("w.pt", lambda: pt({k.replace("layers.1", "layers.2"): v
                                                for k, v in small_state().items()}), "missing"),
    "LeNet-5 with an extra key": ("w.pt", lambda: pt({**small_state({"arch": "lenet5", "widths": [6, 16, 120]}),
                                                      "fc3.weight": torch.zeros(1)}), "do not fit"),
    "transposed weight": ("w.safetensors", lambda: st_save(with_value("layers.1.weight", torch.zeros(32, 10))),
                          "sizes must be"),
    "weights that do not chain": ("w.safetensors", lambda: st_save(with_value("layers.1.weight", torch.zeros(10, 33))),
                                  "do not fit"),
    "bias of the wrong length": ("w.pt", lambda: pt(with_value("layers.0.bias", torch.zeros(31))), "do not fit"),
    "1-D weight": ("w.pt", lambda: pt(with_value("layers.0.weight", torch.zeros(784))), "expected 2"),
    "zero-width layer": ("w.pt", lambda: pt({**with_value("layers.0.weight", torch.zeros(0, 784)),
                                              "layers.0.bias": torch.zeros(0)}), "non-zero"),
    "100 inputs, not 784": ("w.safetensors", lambda: st_save(small_state({"arch": "mlp", "sizes": [100, 32, 10]})),
                            "784 inputs"),
    "5 classes, not 10": ("w.safetensors", lambda: st_save(small_state({"arch": "mlp", "sizes": [784, 32, 5]})),
                          "10 classes"),
    "LeNet-5 with 3x3 kernels": ("w.pt", lambda: pt(with_lenet("conv1.weight", torch.zeros(6, 1, 3, 3))),
                                 "do not fit"),
    "LeNet-5 with 3 input channels": ("w.pt", lambda: pt(with_lenet("conv1.weight", torch.zeros(6, 3, 5, 5))),
                                      r"3 input channel\(s\) .* cannot run here: .* greyscale images \(1 channel\)"),
    "LeNet-5 for 32x32 images": ("w.pt", lambda: pt(with_lenet("fc1.weight", torch.zeros(120, 400))),
                                 r"fc1 takes 400 inputs cannot run here: it was built for 32x32 images .* 28x28 "
                                 r"images .* fc1.weight must be \[.., 256\]"),
    "LeNet-5 with 3 classes": ("w.pt", lambda: pt({**with_lenet("fc2.weight", torch.zeros(3, 120)),
                                                   "fc2.bias": torch.zeros(3)}), "3 outputs cannot run here: .* in 10 "
                                                                                 "classes"),
    "LeNet-5 with conv2 of the wrong depth": ("w.pt", lambda: pt(with_lenet("conv2.weight", torch.zeros(16, 8, 5, 5))),
                                              r"as \(LeNet-5 with widths 6-16-120\): "
                                              r".*conv2.weight is \[16, 8, 5, 5\]"),
    "LeNet-5 conv weight 2-D": ("w.pt", lambda: pt(with_lenet("conv2.weight", torch.zeros(16, 150))), "expected 4"),
    "claims a 1.6 GB model from tiny storages": ("w.pt", lambda: pt(expanded_mlp()), "do not fit"),
    "claims 10**10 weights by stride 0": ("w.pt", lambda: pt({"layers.0.weight": torch.zeros(1).expand(10**5, 10**5),
                                                              "layers.0.bias": torch.zeros(1)}), "limited to"),
    "a LeNet-5 wider than any spec allows": ("w.pt", lambda: pt(wide_lenet()), "1..100000"),
    "ResNet with 3 input channels": ("w.pt", lambda: pt(with_resnet("stem.weight", torch.zeros(4, 3, 3, 3))),
                                     "1 channel"),
    "ResNet with 5 classes": ("w.pt", lambda: pt({**with_resnet("fc.weight", torch.zeros(5, 8)),
                                                  "fc.bias": torch.zeros(5)}), "in 10 classes"),
    "ResNet with a gap in its blocks": ("w.pt", lambda: pt({k.replace("blocks.1", "blocks.3"): v
                                                            for k, v in small_state(RESNET_SMALL).items()}),
                                        "numbered from 0"),
    "ResNet with 7 blocks": ("w.pt", lambda: pt(seven_blocks()), "1 to 6"),
    "ResNet missing a conv": ("w.pt", lambda: pt({k: v for k, v in small_state(RESNET_SMALL).items()
                                                  if k != "blocks.1.conv2.weight"}), "is missing"),
    "ResNet missing its shortcut": ("w.pt", lambda: pt({k: v for k, v in small_state(RESNET_SMALL).items()
                                                        if not k.startswith("blocks.1.shortcut")}), "missing"),
    "ResNet with a BatchNorm of the wrong width": ("w.pt", lambda: pt(with_resnet("bn.running_var", torch.ones(5))),
                                                   r"bn.running_var is \[5\], expected \[4\]"),
    "ResNet stem weight 2-D": ("w.pt", lambda: pt(with_resnet("stem.weight", torch.zeros(4, 9))), "expected 4"),
}
N_HOSTILE = len(BAD) + 2 * len(MALICIOUS)  # the count reported for issue 6 (plus the hypothesis examples below)


def zip_of(files):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return out.getvalue()


def replace_pickle(data, new_pickle):
    """A zip checkpoint with its data.pkl replaced."""
    src = zipfile.ZipFile(io.BytesIO(data))
    return zip_of({i.filename: new_pickle if i.filename.endswith("data.pkl") else src.read(i.filename)
                   for i in src.infolist()})


def lying_numel():
    """A checkpoint whose pickle claims 1,000,000 elements for a 16-byte storage record."""
    data = pt({"w": torch.ones(4)})
    pkl = zipfile.ZipFile(io.BytesIO(data)).read("archive/data.pkl")
    big = b"J" + struct.pack("<i", 1_000_000)
    pkl = pkl.replace(b"X\x03\x00\x00\x00cpuq\x06K\x04", b"X\x03\x00\x00\x00cpuq\x06" + big)
    return replace_pickle(data, pkl.replace(b"K\x00K\x04\x85", b"K\x00" + big + b"\x85"))


def seven_blocks():
    """A 6-block ResNet's state dict with its last block copied as a 7th (no ResNet here has 7)."""
    state = small_state({**RESNET_SMALL, "widths": [1] * 6, "inner": [1] * 6})
    return {**state, **{k.replace("blocks.5.", "blocks.6."): v for k, v in state.items() if k.startswith("blocks.5.")}}


def with_resnet(key, value):
    return {**small_state(RESNET_SMALL), key: value}


def with_lenet(key, value):
    state = dict(small_state({"arch": "lenet5", "widths": [6, 16, 120]}))
    state[key] = value
    return state


@pytest.mark.parametrize("case", BAD)
def test_bad_upload_is_refused_with_a_message(case):
    filename, make, match = BAD[case]
    limit = 1000 if case == "over the size limit" else models.MAX_UPLOAD_BYTES
    with pytest.raises(ce.ModelError, match=match) as e:
        read_weights(make(), filename, max_bytes=limit)
    assert repr(filename) in str(e.value) and "{'arch'" not in str(e.value)  # a spec in words, not a Python dict


@pytest.mark.parametrize("bad", [None, 3, b"x.pt", ""])
def test_bad_file_names(bad):
    with pytest.raises(ce.ModelError, match="file name"):
        read_weights(GOOD_PT, bad)


@pytest.mark.parametrize("bad", ["text", None, [1, 2]])
def test_data_must_be_bytes(bad):
    with pytest.raises(ce.ModelError, match="must be bytes"):
        read_weights(bad, "w.pt")


@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
def test_every_truncation_is_refused(fmt):
    """Each proper prefix of a small file (every byte for safetensors' header, then strides) is refused."""
    data = GOOD_ST if fmt == "safetensors" else GOOD_PT
    cuts = sorted(set(range(0, 200)) | set(range(200, len(data), 97)))
    for cut in cuts:
        with pytest.raises(ce.ModelError):
            read_weights(data[:cut], f"w.{fmt}")


def test_valid_file_with_large_metadata_under_the_limit():
    state = small_state()
    data = st_save(state, metadata={"note": "x" * 100_000})
    assert same_weights(read_weights(data, "w.safetensors"), state)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000), st.sampled_from(["w.safetensors", "w.pt", "w.pth"]),
       st.sampled_from([b"", b"PK\x03\x04", b"\x80\x02", struct.pack("<Q", 60)]))
def test_random_bytes(data, filename, prefix):
    """Arbitrary bytes (with a zip, pickle or safetensors-looking start): a model or ModelError, nothing else."""
    try:
        read_weights(prefix + data, filename)
    except ce.ModelError:
        pass


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_byte_changes(data):
    """A real small file with a few bytes changed: a model (weights bits may change; neither format has a
    checksum over them) or ModelError, never another exception."""
    blob = bytearray(data.draw(st.sampled_from([GOOD_ST, GOOD_PT])))
    for _ in range(data.draw(st.integers(1, 4))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    try:
        read_weights(bytes(blob), "w.safetensors" if blob[:2] != b"PK" else "w.pt")
    except ce.ModelError:
        pass


# ----------------------------------------------------------------------------- the dashboard's uploader

SIDEBAR_ONLY = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
import streamlit as st
from pages import common
common.sidebar()
st.write("model:", common.model_name())
st.write("card:", common.card()["name"], common.card()["test_accuracy"])
"""


def sidebar_app():
    """The sidebar alone. (Within app.py, AppTest runs only the first run through app.py: later runs execute
    the page script directly, without the sidebar, because the repo has a pages/ folder.)"""
    return AppTest.from_string(SIDEBAR_ONLY, default_timeout=TIMEOUT).run()


def upload(at, name, data):
    return at.sidebar.file_uploader(key="weights_upload").upload(name, data).run()


def test_sidebar_upload_adds_and_selects_the_model(fmnist, lenet300):
    at = upload(sidebar_app(), "my le net!.pt", pt(lenet300.state_dict()))
    assert not at.exception and not at.sidebar.error
    name = at.session_state["model"]
    assert name.startswith("upload-my-le-net-") and at.sidebar.selectbox(key="model").value == name
    assert at.sidebar.selectbox(key="model").options[-1] == name
    assert "test accuracy 90.13 %" in at.sidebar.success[0].value  # scored by the engine on all 10k images
    assert any(m.value.startswith(f"card: {name} `0.901") for m in at.markdown)
    at.run()  # said once: "it is selected above" would not stay true once another model is chosen
    assert not at.exception and not at.sidebar.success and at.session_state["model"] == name


@pytest.mark.parametrize("filename, data, match", [
    ("evil.pt", lambda m: pt({"w": Evil(m)}), "refused: 'evil.pt' contains code"),
    ("junk.safetensors", lambda m: b"\x00" * 100, "not a readable safetensors"),
    ("nan.safetensors", lambda m: st_save(nan_state(float("nan"))), "NaN"),
    ("shape.pt", lambda m: pt(with_value("layers.0.bias", torch.zeros(31))), "do not fit"),
    ("big.pt", lambda m: b"\0" * ((50 << 20) + 1), "limited to 50 MB"),
])
def test_sidebar_bad_upload_shows_the_error(fmnist, tmp_path, filename, data, match):
    marker = tmp_path / "pwned"
    at = upload(sidebar_app(), filename, data(marker))
    assert not at.exception and not marker.exists()
    errors = [re.sub(r"\\(.)", r"\1", e.value) for e in at.sidebar.error]  # as read: Markdown's escapes undone
    assert len(errors) == 1 and match in errors[0]
    options = at.sidebar.selectbox(key="model").options
    assert at.session_state["model"] == "lenet-300-100" and not any(o.startswith("upload-") for o in options)
    at = at.sidebar.file_uploader(key="weights_upload").clear().run()  # removing the file clears the message
    assert not at.exception and not at.sidebar.error


def test_sidebar_forgets_an_upload_of_another_session(fmnist):
    at = AppTest.from_string(SIDEBAR_ONLY, default_timeout=TIMEOUT)
    at.session_state["model"] = "upload-gone-12345678"
    at.run()
    assert not at.exception and at.session_state["model"] == "lenet-300-100"


def test_uploaded_model_works_on_the_pages(fmnist):
    """Home shows the upload's card (its dense accuracy measured by the engine); Pruning and Quantization
    compress the uploaded model, not a sample: their dense reference has its 50,890 parameters."""
    from compress_engine.core.pipeline import reference

    spec = {"arch": "mlp", "sizes": [784, 64, 10]}
    state = small_state(spec, seed=3)
    acc = reference(models.from_state_dict(spec, state), fmnist)[1]
    at = upload(app().run(), "my mlp.safetensors", st_save(state))
    assert not at.exception, at.exception
    name = at.session_state["model"]
    assert at.header[0].value == name and name.startswith("upload-my-mlp-")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Parameters"] == "50,890" and metrics["Test accuracy"] == f"{100 * acc:.2f} %"
    # the command line for uploaded weights: the user's module and this file (quoted: its name has a space)
    assert any("run --model your_model.py:make_model --weights 'my mlp.safetensors' " in m.value for m in at.markdown)
    for page in ("pruning", "quantization"):
        # After its first run AppTest runs the page script alone (no sidebar widget keeps "model"),
        # so preset the choice as test_app.page() does; the upload itself stays in session_state.
        at.session_state["model"] = name
        at = at.switch_page(f"pages/{page}.py").run()
        assert not at.exception and not at.error, (page, at.exception)
        nz = next(m for m in at.metric if m.label == "Non-zero parameters")
        assert int(nz.value.replace(",", "")) - int(nz.delta.replace(",", "")) == 50_890, page


def test_uploaded_resnet_works_on_the_pages(tiny):
    """A ResNet upload (BatchNorm, a structured-pruned inner width): Home describes it; Pruning, Clustering and
    Export compress it with BatchNorm folded, and Pruning and Export open on a ResNet's start (40 % per layer), as
    the sample ResNet-8 does, not on the LeNets' 80 % global that empties a ResNet's layers."""
    from pages import common

    state = small_state(RESNET_SMALL, seed=2)
    at = upload(app().run(), "my resnet.pt", pt(state))
    assert not at.exception and not at.sidebar.error, (at.exception, at.sidebar.error)
    name = at.session_state["model"]
    assert name.startswith("upload-my-resnet-")
    assert any("ResNet with widths 4-8 (inner 3-8), BatchNorm" in m.value for m in at.markdown)
    n_params = models.param_count(models.from_state_dict(RESNET_SMALL, state))
    # with BatchNorm, trained as such and folded to deploy: the count is the training one, and Home says so
    assert {m.label: m.value for m in at.metric}["Parameters (while training)"] == f"{n_params:,}"
    start = common.ARCH_STARTS["resnet"]
    for page in ("pruning", "clustering", "export"):
        at.session_state["model"] = name
        at = at.switch_page(f"pages/{page}.py").run()
        assert not at.exception and not at.error, (page, at.exception)
        if page != "clustering":
            prefix = "prune" if page == "pruning" else "export"
            assert at.slider(key=f"{prefix}_sparsity").value == round(100 * start[page]["sparsity"])
            assert at.radio(key=f"{prefix}_scope").value == start[page]["prune_scope"] == "layer"


def test_uploaded_weights_can_teach_on_the_distillation_page(fmnist, lenet300, monkeypatch):
    """Distillation takes an upload as teacher: its answers are computed from the uploaded weights (the
    page's test errors are theirs), two students train against them, and the upload is on the size chart.
    The measured grid belongs to the sample teachers, and the page says so."""
    import threading

    from compress_engine.playground import zoo
    real, computed = zoo.all_logits, []

    def counting(*a, **kw):  # where and how the teacher's answers are computed
        computed.append((threading.current_thread().name, torch.get_num_threads()))
        return real(*a, **kw)
    monkeypatch.setattr(zoo, "all_logits", counting)
    page_threads = ce.jobs.process_threads()
    at = upload(app().run(), "my teacher.pt", pt(lenet300.state_dict()))
    name = at.session_state["model"]
    at = at.switch_page("pages/distillation.py").run()
    assert not at.exception and name in at.selectbox(key="distill_teacher").options
    at.selectbox(key="distill_teacher").set_value(name)
    at.select_slider(key="distill_width").set_value(10)
    at.slider(key="distill_epochs").set_value(1).run()
    assert not at.exception and not at.error, (at.exception, at.error)
    metrics = {m.label: m.value for m in at.metric}
    errors = int((ce.logits(lenet300, fmnist.x("test")).argmax(1) != fmnist.y("test")).sum())
    assert metrics["Teacher parameters"] == "266,610" and metrics["Teacher test errors (of 10,000)"] == f"{errors:,}"
    assert any("No measured grid for your uploaded teacher" in i.value for i in at.info)
    # computed once, in the training pool at the page's threads (leaving the page does not stop it); the bar gone
    assert computed == [(computed[0][0], page_threads)] and computed[0][0].startswith("train-worker")
    assert not at.get("progress")
    at.button(key="distill_train").click().run()
    assert not at.exception and not at.error, (at.exception, at.error)
    assert sorted(k[0] for k in at.session_state["trained"] if k[0] != "teacher logits") == [name, name]
    assert len([m for m in at.metric if m.label == "Test accuracy"]) == 2 and len(computed) == 1
    sizes = " ".join(c for c in plots(at))
    assert f'"{name}"' in sizes and '"lenet-5"' in sizes  # the teacher, and the other models beside it


SIDEBAR_AND_DISTILLATION = SIDEBAR_ONLY + f"""
import runpy
if st.session_state.get("test_page") == "distillation":  # as app.py runs a page: after the sidebar, in its frame
    with common.frame():
        runpy.run_path({str(ROOT / "pages" / "distillation.py")!r}, run_name="__main__")
"""


def test_a_dropped_upload_is_named_and_a_teacher_it_was_goes_back_to_the_default_saying_so(fmnist):
    """A session keeps common.MAX_UPLOADS uploads: another drops the oldest, and the sidebar says which. The
    Distillation teacher stays what was chosen while it is still there, and when the dropped upload was the
    teacher, the page says the teacher went back to the default."""
    from pages import common

    at = AppTest.from_string(SIDEBAR_AND_DISTILLATION, default_timeout=TIMEOUT).run()
    names = []

    def add(seed):
        nonlocal at
        at = upload(at, f"m{seed}.pt", pt(small_state({"arch": "mlp", "sizes": [784, 8, 10]}, seed=seed)))
        assert not at.exception and not at.sidebar.error, (at.exception, at.sidebar.error)
        names.append(at.session_state["model"])
        return at.sidebar.success[0].value

    for seed in range(common.MAX_UPLOADS):
        assert "Dropped" not in add(seed)
    at.session_state["test_page"] = "distillation"
    at.run()
    at.selectbox(key="distill_teacher").set_value(names[1]).run()
    assert not at.exception and at.selectbox(key="distill_teacher").value == names[1]
    said = add(common.MAX_UPLOADS)  # drops names[0]; the teacher, names[1], stays
    assert f"Dropped **{names[0]}**, the oldest: a session keeps at most {common.MAX_UPLOADS} uploads" in said
    assert names[0] not in at.sidebar.selectbox(key="model").options
    assert at.selectbox(key="distill_teacher").value == names[1] and not at.warning
    said = add(common.MAX_UPLOADS + 1)  # drops names[1], the teacher
    assert f"Dropped **{names[1]}**" in said and not at.exception
    assert at.selectbox(key="distill_teacher").value == "resnet-8"
    warned = [w.value for w in at.warning]
    assert len(warned) == 1 and "The teacher went back to the default, resnet-8" in warned[0]
    assert "dropped it, the oldest upload" in warned[0]
    at.run()  # said once: the teacher is now resnet-8, as chosen
    assert not at.warning and at.selectbox(key="distill_teacher").value == "resnet-8"
    kept = [n for n in at.sidebar.selectbox(key="model").options if n.startswith("upload-")]
    said = add(0)  # names[0] uploaded again: it comes back and pushes out the oldest kept one, saying which
    assert at.session_state["model"] == names[0] and kept[0] not in at.sidebar.selectbox(key="model").options
    assert f"Dropped **{kept[0]}**, the oldest" in said, said


def test_sidebar_refusals_show_names_literally_and_the_picker_is_not_only_for_samples(fmnist, monkeypatch):
    """A whole pickled model is refused naming __main__.MyMLP: shown as typed, not as Markdown's bold 'main'. The
    picker lists uploads too, so it is labelled Model, not Sample model."""
    import sys
    main = type("MyMLP", (torch.nn.Module,), {"__module__": "__main__"})  # a class of the user's training script
    monkeypatch.setattr(sys.modules["__main__"], "MyMLP", main, raising=False)
    data = pt(main())
    at = upload(sidebar_app(), "whole.pt", data)
    errors = [e.value for e in at.sidebar.error]
    assert len(errors) == 1 and "__main__" not in errors[0] and r"\_\_main\_\_\.MyMLP" in errors[0]
    assert at.sidebar.selectbox(key="model").label == "Model"


def test_a_checkpoint_with_a_flipped_byte_is_refused_as_damaged():
    """torch.load reads no checksum: one byte flipped inside a tensor's data loaded as a wrong weight, silently.
    The zip's CRC-32 of every entry is checked first (the reference: zipfile's own testzip names the entry)."""
    state = small_state()
    data = bytearray(pt(state))
    entry = next(i for i in zipfile.ZipFile(io.BytesIO(bytes(data))).infolist() if i.filename.endswith("data/0"))
    start = entry.header_offset + 30 + len(entry.filename) + len(entry.extra)  # the local header, then the data
    data[start + entry.file_size // 2] ^= 0x40
    assert zipfile.ZipFile(io.BytesIO(bytes(data))).testzip() == entry.filename
    with pytest.raises(ce.ModelError, match=rf"'?w.pt'? is damaged: its zip entry {re.escape(entry.filename)} fails its "
                                            r"CRC-32 check.*download it again"):
        read_weights(bytes(data), "w.pt")
    read_weights(pt(state), "w.pt")  # the undamaged file still loads


def test_a_torchscript_archive_is_refused_with_how_to_get_its_state_dict():
    with pytest.raises(ce.ModelError, match=r"TorchScript archive.*torch\.jit\.load\(path\).*torch\.save\(model\."
                                            r"state_dict\(\), path\)"):
        read_weights(torchscript_bytes(), "scripted.pt")
