"""The deployment files say which architecture they fit (model_class as the .cpg header has it, and the
architecture spec where the artifact has one) and the int8 file carries a CRC-32 of its tensor data that
read_int8 checks; read_int8 refuses a tensor missing from / extra to its layout, codes of another dtype than the
layout says, a .cpg artifact (saying how to make the int8 file) and an empty file."""

import json
import struct
import zlib

import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

import compress_engine as ce
from compress_engine.core import encode
from compress_engine.playground import zoo
from small_nets import images_12


def header_meta(data):
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n])["__metadata__"]


@pytest.fixture(scope="module")
def data():
    return images_12()


class ConvBN(nn.Module):
    fold_batchnorm = True  # folded at compression time, as the zoo's ResNet

    def __init__(self, bn=True):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, bias=False)
        self.bn = nn.BatchNorm2d(4) if bn else nn.Identity()
        self.fc = nn.Linear(4 * 10 * 10, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))


@pytest.fixture(scope="module")
def spec_artifact(data):
    torch.manual_seed(0)
    model = zoo.build({"arch": "mlp", "sizes": [144, 16, 10]})
    return ce.compress(model, ce.Recipe(sparsity=0.5, bits=8), data).artifact


@pytest.fixture(scope="module")
def folded_artifact(data):
    torch.manual_seed(0)
    return ce.compress(ConvBN(), ce.Recipe(bits=8), data).artifact


def test_both_files_say_the_model_class_and_spec_as_the_header_does(spec_artifact, folded_artifact):
    for art in (spec_artifact, folded_artifact):
        head = encode.read_meta(art)
        assert "folded" not in head  # not recorded: the zoo ResNet's artifacts (and its shipped runs) stay the same
        for blob in ce.deploy_files(art)[:2]:
            meta = header_meta(blob)
            assert meta["model_class"] == head["model_class"]
            assert json.loads(meta["spec"]) == head["spec"]
    assert json.loads(header_meta(ce.weights_safetensors(spec_artifact))["spec"])["sizes"] == [144, 16, 10]
    assert header_meta(ce.weights_safetensors(folded_artifact))["model_class"] == "ConvBN"
    assert header_meta(ce.weights_safetensors(folded_artifact))["spec"] == "null"  # a user's own class


def test_a_folded_file_loads_into_the_class_with_identity_for_its_batchnorm(folded_artifact):
    state = st_load(ce.weights_safetensors(folded_artifact))
    fresh = ConvBN(bn=False)
    fresh.conv.bias = nn.Parameter(torch.zeros(4))  # the conv gained a bias: the folded BatchNorm's shift
    fresh.load_state_dict(state, strict=True)  # nothing of the BatchNorm is left
    assert set(state) == {"conv.weight", "conv.bias", "fc.weight", "fc.bias"}


def test_the_int8_files_checksum_is_the_crc32_of_its_data_and_is_checked(spec_artifact):
    blob = ce.int8_safetensors(spec_artifact)
    (n,) = struct.unpack("<Q", blob[:8])
    assert header_meta(blob)["data_crc32"] == f"{zlib.crc32(blob[8 + n:]):08x}"  # independently: zlib over the data
    bad = bytearray(blob)
    bad[-1] ^= 0x01  # one bit of the last tensor's data
    with pytest.raises(ce.ArtifactError, match="CRC-32"):
        ce.read_int8(bytes(bad))


def resaved(blob, change):
    """The int8 file with its tensors changed by change(dict), and a CRC-32 recomputed to match (so only the change
    under test is wrong)."""
    tensors, meta = st_load(blob), header_meta(blob)
    change(tensors)
    first = st_save(tensors, metadata=meta)
    (n,) = struct.unpack("<Q", first[:8])
    return st_save(tensors, metadata={**meta, "data_crc32": f"{zlib.crc32(first[8 + n:]):08x}"})


def test_read_int8_refuses_tensors_that_disagree_with_the_layout(spec_artifact):
    blob = ce.int8_safetensors(spec_artifact)
    layout = json.loads(header_meta(blob)["layout"])
    name = next(n for n, e in layout.items() if e["kind"] == "affine")
    assert ce.read_int8(resaved(blob, lambda t: None)) is not None  # the re-saving itself is fine
    with pytest.raises(ce.ArtifactError, match=r"missing .*\.scale"):
        ce.read_int8(resaved(blob, lambda t: t.pop(f"{name}.scale")))
    with pytest.raises(ce.ArtifactError, match="not in the layout 'stray'"):
        ce.read_int8(resaved(blob, lambda t: t.update(stray=torch.zeros(2))))
    with pytest.raises(ce.ArtifactError, match=rf"{name}.*torch.int16.*{layout[name]['codes']}"):
        ce.read_int8(resaved(blob, lambda t: t.update({name: t[name].to(torch.int16)})))


def test_read_int8_names_an_artifact_and_an_empty_file(spec_artifact):
    with pytest.raises(ce.ArtifactError, match=r"this is an artifact.*ce\.int8_safetensors\(artifact\) first"):
        ce.read_int8(spec_artifact)
    with pytest.raises(ce.ArtifactError, match="empty"):
        ce.read_int8(b"")
