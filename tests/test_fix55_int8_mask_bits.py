"""The int8 file's palette mask is packed bits (format version 2): with 256 clusters and zeros besides (a 257th value),
a bool per weight made the file half the float one; a bit per weight makes it 0.28 of it. Version 1 files, with the
bool mask, still read back bit for bit, and a damaged mask is refused in words."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load as st_load

import compress_engine as ce
from compress_engine.core import deploy

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def c256(fmnist, lenet300):
    """LeNet-300-100 pruned 50 % and clustered to 256 centroids a layer: 257 values with the zeros."""
    return ce.compress(lenet300, ce.Recipe(sparsity=0.5, clusters=256), fmnist, warn_collapse=False).artifact


def remade(data, version, change):
    """The int8 file `data` with its metadata's version set and change(tensors, layout) applied, saved again as
    int8_safetensors saves (a fresh data_crc32)."""
    meta = {k: v for k, v in deploy._metadata(data).items() if k != "data_crc32"}
    tensors, layout = dict(st_load(data)), json.loads(meta["layout"])
    change(tensors, layout)
    meta.update(version=version, layout=json.dumps(layout))
    return deploy._save({k: v.contiguous() for k, v in tensors.items()}, meta)


def test_the_mask_is_a_bit_per_weight_and_the_file_a_byte_and_an_eighth(c256):
    dec, i8 = ce.decode(c256), ce.int8_safetensors(c256)
    raw, layout = st_load(i8), json.loads(deploy._metadata(i8)["layout"])
    masked = [k for k, e in layout.items() if e.get("mask")]
    assert masked == ["layers.0.weight", "layers.1.weight", "layers.2.weight"]
    for k in masked:
        n = dec[k].numel()
        assert raw[k.replace(".weight", ".weight.mask")].shape == (-(-n // 8),)
        kept = np.unpackbits(raw[f"{k}.mask"].numpy(), bitorder="little")[:n].reshape(dec[k].shape)
        assert np.array_equal(kept.astype(bool), dec[k].numpy() != 0)  # 1 exactly where the weight is not +0.0
    weights = sum(dec[k].numel() for k in masked)
    assert len(i8) < weights * 1.125 + 40_000  # codes + bits + codebooks, biases and the header
    assert len(i8) < 0.3 * len(ce.weights_safetensors(c256))
    back = ce.read_int8(i8)
    assert all(torch.equal(back[k].view(torch.int32), dec[k].view(torch.int32)) for k in dec)


def test_a_version_1_file_with_its_bool_mask_still_reads_bit_for_bit(c256):
    dec, i8 = ce.decode(c256), ce.int8_safetensors(c256)

    def to_bools(tensors, layout):
        for k, e in layout.items():
            if e.get("mask"):
                tensors[f"{k}.mask"] = deploy.unpack_mask(tensors[f"{k}.mask"], dec[k].shape)
    old = remade(i8, "1", to_bools)
    assert len(old) > len(i8) + 0.8 * sum(dec[k].numel() for k in dec if k.endswith("weight"))
    back = ce.read_int8(old)
    assert all(torch.equal(back[k].view(torch.int32), dec[k].view(torch.int32)) for k in dec)
    with pytest.raises(ce.ArtifactError, match="the mask of 'layers.0.weight' is torch.bool, version 2 stores "
                                               "torch.uint8"):
        ce.read_int8(remade(old, "2", lambda t, l: None))


@pytest.mark.parametrize("damage, said", [
    (lambda m: m[:-1], "a packed mask of 235200 elements is 29400 bytes"),
    (lambda m: torch.cat([m, torch.zeros(1, dtype=torch.uint8)]), "a packed mask of 235200 elements is 29400 bytes"),
])
def test_a_mask_of_the_wrong_length_is_refused_in_words(c256, damage, said):
    def cut(tensors, layout):
        tensors["layers.0.weight.mask"] = damage(tensors["layers.0.weight.mask"])
    with pytest.raises(ce.ArtifactError, match=f"tensor 'layers.0.weight' cannot be read back.*{said}"):
        ce.read_int8(remade(ce.int8_safetensors(c256), "2", cut))


def test_padding_bits_after_the_last_element_must_be_zero():
    mask = torch.tensor([[True, False, True]])
    packed = deploy.pack_mask(mask)
    assert packed.tolist() == [0b101] and torch.equal(deploy.unpack_mask(packed, (1, 3)), mask)
    with pytest.raises(ValueError, match="padding bits"):
        deploy.unpack_mask(torch.tensor([0b1101], dtype=torch.uint8), (1, 3))


def test_another_version_is_refused(c256):
    with pytest.raises(ce.ArtifactError, match="version 1 or 2 .*version '3'"):
        ce.read_int8(remade(ce.int8_safetensors(c256), "3", lambda t, l: None))
