"""Deployment files: an artifact's weights as safetensors, as float tensors or as int8 codes, for runtimes that
cannot read a .cpg (plain PyTorch without this package, a device's runtime, Core ML / ExecuTorch style palettes).

- `weights_safetensors(artifact)`: every tensor of the decoded state dict, in its own dtype, exactly the values
  `decode` gives (safetensors stores raw bytes): `safetensors.torch.load_file(path)` into a fresh module.
- `int8_safetensors(artifact)`: the same state dict with every tensor the recipe put on a uniform grid of at most 8
  bits stored as its integer codes (int8 or uint8) plus the grid's scale and zero point, and every weight-shared
  (clustered) tensor of at most 256 distinct values as uint8 indices into its codebook (palettized). Everything else
  is stored as it is. The names (SCHEME, docs/FORMAT.md section 10):
      "<name>"             codes: int8 / uint8 (affine), uint8 (palette), or the tensor itself (float)
      "<name>.scale"       float32 (C,): one per tensor (C = 1) or per slice of dim 0 (C = shape[0])
      "<name>.zero_point"  (C,), the codes' dtype
      "<name>.codebook"    float32 (k,), k <= 256
      "<name>.mask"        uint8 (ceil(numel / 8),): a bit per element, 1 where it is not +0.0, packed 8 to a byte, the
                           first element in a byte's lowest bit (numpy.packbits(mask.ravel(), bitorder="little"));
                           only when its zeros would be a 257th value (256 clusters). Version 1 files stored a bool
                           mask of the tensor's shape, 8 times larger; read_int8 reads both
  and the file's metadata {"scheme": SCHEME, "version": VERSION, "layout": JSON {name: {"kind", "axis", "dtype"}},
  "kept_float": JSON {name: why}, "recipe", "spec", "model_class", "data_crc32"} (the last three
  in the float file too: _described, _save). Its "format" is "pt" as safetensors files have it, but its tensors are
  codes: read it with read_int8, never load_state_dict.
- `deploy_files(artifact)`: both, from one decode (Export's two downloads).
- `read_int8(data)`: the float state dict back, by the formula
      affine:  w = (float32(q) - float32(zero_point)) * scale     (float32; scale broadcast along dim 0)
      palette: w = codebook[index], and +0.0 where a mask is stored and its bit is 0
  which gives back the decoded weights bit for bit: it is the quantizer's own arithmetic (quantize.fake_quantize_with
  subtracts the zero point from the float32 integer, then multiplies by the float32 scale, and every integer here is
  exact in float32). int8_safetensors checks it per tensor before it stores codes; a tensor the formula would not give
  back exactly (a -0.0 among its zeros, which (q - zp) * scale cannot produce) is stored as float and named in
  "kept_float" with the reason.

The codes are the same integers torch's own quantizer gives with the stored grid (torch.quantize_per_tensor /
quantize_per_channel with axis 0), and torch.dequantize of those equals the decoded weights (tests/test_fix52_deploy_*).
"""

import json
import math
import struct
import zlib

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from compress_engine.core import encode, quantize
from compress_engine.core.errors import ArtifactError, CompressError

SCHEME = "compress_engine.int8"
VERSION = "2"  # 2: the palette mask is packed bits (1: a bool per element); read_int8 reads both
READS = ("1", "2")
SUFFIXES = ("scale", "zero_point", "codebook", "mask")  # the names beside a tensor's codes: "<name>.<suffix>"
FORMULA = ("affine: w = (float32(q) - float32(zero_point)) * scale along dim 0; "
           "palette: w = codebook[index], 0 where the element's mask bit is 0 (mask: packbits, bitorder little)")
MAX_PALETTE = 256  # uint8 indices
# the one warning line for the int8 file (Export's caption can show it; docs/FORMAT.md section 10 says the same)
INT8_WARNING = ("the int8 file holds raw codes under a \"pt\" format tag: read it with ce.read_int8 (or the formula), "
                "never safetensors load_file + load_state_dict, which would load the codes as weights")
_INT = {"int8": (torch.int8, -128, 127), "uint8": (torch.uint8, 0, 255)}


def _crc(data):
    """The CRC-32 (zlib.crc32, as the .cpg's) of the tensor data, as 8 lowercase hex digits."""
    return f"{zlib.crc32(data) & 0xFFFFFFFF:08x}"


def _save(tensors, metadata):
    """safetensors bytes of `tensors` with `metadata` plus "data_crc32" (_crc of the tensor data: every byte after
    the header), the same bytes every time: safetensors writes its metadata in a hash map's order, which changes from
    one process to the next, so its header is written again here with the metadata's keys sorted (the tensors'
    offsets are relative to the data, which is kept as written)."""
    blob = st_save(tensors, metadata=metadata)
    (n,) = struct.unpack("<Q", blob[:8])
    head = json.loads(blob[8:8 + n])
    meta = {**head.pop("__metadata__"), "data_crc32": _crc(blob[8 + n:])}
    head = {"__metadata__": dict(sorted(meta.items())), **dict(sorted(head.items()))}
    text = json.dumps(head, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned, as safetensors pads it
    return struct.pack("<Q", len(text)) + text + blob[8 + n:]


def _described(meta):
    """What both files' metadata say of the model, from the artifact's header (docs/FORMAT.md section 7); safetensors
    metadata values are strings: "recipe" and "spec" as JSON ("null" when the artifact has none: a user's own model
    class has no spec), "model_class" the class name as the header has it ("" if none). Whether BatchNorms were folded
    the state dict's names say (a folded one has no tensors left; docs/FORMAT.md section 10): the header does not
    record it, so that the zoo ResNet's artifacts, and the runs shipped for them, stay the same bytes."""
    return {"recipe": json.dumps(meta.get("recipe"), sort_keys=True),
            "spec": json.dumps(meta.get("spec"), sort_keys=True),
            "model_class": str(meta.get("model_class") or "")}


def weights_safetensors(artifact):
    """The artifact's decoded state dict as safetensors bytes: every tensor, its own dtype, bit for bit.

    Load it without this package: `model.load_state_dict(safetensors.torch.load_file("model.safetensors"))`, with
    `model` a fresh instance of the compressed architecture (decode_model's: BatchNorms folded and pruned units
    removed where the recipe did so). Bad bytes raise ArtifactError."""
    return _weights(*encode.decode_with_meta(artifact))


def _weights(state, meta):
    return _save(state, {"format": "pt", "producer": "compress_engine", **_described(meta)})


def _grids(artifact):
    """{tensor name: (kind, scale float32 (C,), zero point int64 (C,))} from the artifact's records: the uniform grid
    ("affine") each quantized tensor was stored on, or ("codebook", None, None) for a weight-shared one."""
    _, recs, off, blob = encode._parse(artifact)
    out = {}
    for rec in recs:
        lengths = rec["sections"]
        first = blob[off:off + lengths[0]]  # the "codebook" section: an affine grid's scales then zero points
        off += sum(lengths)
        if rec["kind"] == "codebook":
            out[rec["name"]] = ("codebook", None, None)
        elif rec["kind"] == "affine" and rec["q_levels"]:  # q_levels 0: every element a zero, no grid stored
            nch = rec["channels"]
            scale = np.frombuffer(first[:4 * nch], "<f4").astype(np.float32)
            zp = np.frombuffer(first[4 * nch:8 * nch], "<i4").astype(np.int64)
            out[rec["name"]] = ("affine", scale, zp)
    return out


def _along0(t, w):
    """A (C,) tensor shaped to broadcast along w's dim 0."""
    return t.reshape(t.shape + (1,) * max(w.dim() - 1, 0)) if t.numel() > 1 else t.reshape(())


def dequantize(codes, scale, zero_point):
    """The affine formula: (float32(codes) - float32(zero_point)) * scale, scale and zero point along dim 0."""
    return (codes.to(torch.float32) - _along0(zero_point.to(torch.float32), codes)) * _along0(scale, codes)


def _same_bits(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(a.view(torch.int32), b.view(torch.int32))


def _affine_codes(w, scale, zp):
    """(codes, zero point, dtype name) of a float32 tensor on the grid (scale, zp), or (None, reason) when it cannot
    be stored in 8 bits exactly."""
    s = torch.from_numpy(scale)
    z = torch.from_numpy(zp)
    if s.numel() > 1 and (w.dim() == 0 or w.shape[0] != s.numel()):
        return None, f"its grid has {s.numel()} channels for shape {tuple(w.shape)}"
    q = quantize.quantize_codes(w, s, z, -2 ** 31, 2 ** 31 - 1).reshape(w.shape)  # the quantizer's own, unclamped
    lo, hi = min(float(q.min()), float(z.min())), max(float(q.max()), float(z.max()))
    dtype = "uint8" if lo >= 0 and hi <= 255 else "int8" if lo >= -128 and hi <= 127 else None
    if dtype is None:
        return None, f"its codes span {lo:.0f}..{hi:.0f}, more than 8 bits"
    tdt = _INT[dtype][0]
    codes, zero = q.to(tdt), z.to(tdt)
    if not _same_bits(dequantize(codes, s, zero), w):
        return None, ("(q - zero_point) * scale would not give back its values bit for bit (a -0.0 among its zeros, "
                      "say)")
    return (codes, zero, s), dtype


def _palette(w):
    """(uint8 indices, float32 codebook, bool mask or None) of a float32 tensor of at most 256 distinct values (by
    bit pattern, so -0.0 and 0.0 are two), or (None, reason). When the zeros pruning left are a 257th value (256
    clusters beside them), the codebook holds the 256 others and the mask says which elements are not zero (+0.0)."""
    bits = w.reshape(-1).view(torch.int32)
    values, index = torch.unique(bits, sorted=True, return_inverse=True)
    mask = None
    if values.numel() > MAX_PALETTE and bool((values == 0).any()):
        mask = bits != 0
        values = values[values != 0]
        index = torch.searchsorted(values, bits).clamp_(max=values.numel() - 1)
        index[~mask] = 0
        mask = mask.reshape(w.shape)
    if values.numel() > MAX_PALETTE:
        return None, f"it holds {values.numel()} distinct non-zero values, more than {MAX_PALETTE}"
    return (index.to(torch.uint8).reshape(w.shape), values.view(torch.float32), mask), "palette"


def unpalette(index, codebook, mask=None):
    """The palette formula: codebook[index], and +0.0 where mask (if given) is False."""
    w = codebook[index.to(torch.int64)]
    return w if mask is None else torch.where(mask, w, torch.zeros((), dtype=w.dtype))


def pack_mask(mask):
    """A bool tensor -> uint8 (ceil(numel / 8),): its elements in order, 8 bits to a byte, the first in the lowest."""
    return torch.from_numpy(np.packbits(mask.reshape(-1).numpy(), bitorder="little"))


def unpack_mask(packed, shape):
    """pack_mask's bytes -> the bool tensor of `shape`; ValueError unless they hold exactly that many bits (and
    nothing but zeros after them)."""
    n = math.prod(shape)
    if packed.ndim != 1 or packed.numel() != -(-n // 8):
        raise ValueError(f"a packed mask of {n} elements is {-(-n // 8)} bytes, got shape {tuple(packed.shape)}")
    bits = np.unpackbits(packed.numpy(), bitorder="little")
    if bits[n:].any():
        raise ValueError("a packed mask's padding bits after its last element are not 0")
    return torch.from_numpy(bits[:n].astype(bool)).reshape(shape)


def int8_safetensors(artifact):
    """The artifact's state dict as safetensors bytes with int8 / uint8 codes (see the module's docstring for the
    names, metadata and formula); read it back with read_int8. Bad bytes raise ArtifactError; an artifact with
    nothing quantized to <= 8 bits or clustered to <= 256 values raises CompressError saying what to use instead."""
    return _int8(*encode.decode_with_meta(artifact), _grids(artifact))


def deploy_files(artifact):
    """Both files from one decode (decoding is most of the time): (weights_safetensors bytes, int8_safetensors bytes
    or None, the reason there is no int8 file or None)."""
    state, meta = encode.decode_with_meta(artifact)
    weights = _weights(state, meta)
    try:
        return weights, _int8(state, meta, _grids(artifact)), None
    except CompressError as e:
        return weights, None, str(e)


def _int8(state, meta, grids):
    out, layout, kept = {}, {}, {}
    for name, w in state.items():
        kind, scale, zp = grids.get(name, (None, None, None))
        entry = {"kind": "float", "axis": None, "dtype": encode.DTYPE_NAMES[w.dtype]}
        made, how = None, None
        if kind == "affine":
            made, how = _affine_codes(w, scale, zp)
        elif kind == "codebook":
            made, how = _palette(w)
        if made is None:
            if how is not None:
                kept[name] = how
            out[name] = w
        elif how == "palette":
            out[name], out[f"{name}.codebook"], mask = made
            if mask is not None:
                out[f"{name}.mask"] = pack_mask(mask)
            entry.update(kind="palette", codes="uint8", mask=mask is not None)
        else:
            out[name], out[f"{name}.zero_point"], out[f"{name}.scale"] = made
            entry.update(kind="affine", codes=how, axis=0 if made[2].numel() > 1 else None)
        layout[name] = entry
    quantized = [n for n, e in layout.items() if e["kind"] != "float"]
    if not quantized:
        recipe = meta.get("recipe") or {}
        said = ", ".join(f"{k}={recipe.get(k)}" for k in ("bits", "clusters") if recipe.get(k) is not None)
        why = (f"; kept as float: {'; '.join(f'{n}: {r}' for n, r in list(kept.items())[:3])}" if kept else "")
        raise CompressError(
            f"this artifact has no tensor to store as int8: its recipe ({said or 'no bits, no clusters'}) neither "
            f"quantizes to 8 bits or fewer nor clusters to at most {MAX_PALETTE} values{why}. Use its float weights "
            "(weights_safetensors), or compress with bits between 1 and 8 (or clusters up to 256) for int8 codes")
    clash = sorted(set(state) & {f"{n}.{suffix}" for n in quantized for suffix in SUFFIXES})
    if clash:
        raise CompressError(f"tensor name(s) {', '.join(clash[:3])} are also the int8 layout's names for another "
                            "tensor's scale / zero point / codebook: rename them in the model, or use "
                            "weights_safetensors")
    metadata = {"format": "pt", "scheme": SCHEME, "version": VERSION, "formula": FORMULA,
                "layout": json.dumps(layout), "kept_float": json.dumps(kept), **_described(meta)}
    return _save({k: v.contiguous() for k, v in out.items()}, metadata)


def _metadata(data):
    """The __metadata__ of safetensors bytes (the header is an 8-byte little-endian length, then JSON)."""
    try:
        (n,) = struct.unpack("<Q", bytes(data[:8]))
        head = json.loads(bytes(data[8:8 + n]).decode("utf-8"))
        return head.get("__metadata__") or {}
    except (struct.error, ValueError, UnicodeDecodeError, AttributeError) as e:
        raise ArtifactError(f"not a safetensors file ({type(e).__name__}): give the bytes int8_safetensors "
                            "made") from None


def read_int8(data):
    """int8_safetensors' bytes -> {name: tensor}: the float state dict by the documented formula, in the artifact's
    order, bit for bit what decode(artifact) gives. Anything else raises ArtifactError naming what is wrong."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ArtifactError(f"read_int8 takes the file's bytes, got {type(data).__name__}: e.g. "
                            "read_int8(pathlib.Path('model-int8.safetensors').read_bytes())")
    if len(data) == 0:
        raise ArtifactError("the int8 file is empty (0 bytes): give the bytes int8_safetensors made, e.g. "
                            "read_int8(pathlib.Path('model-int8.safetensors').read_bytes())")
    if bytes(data[:len(encode.MAGIC)]) == encode.MAGIC:
        raise ArtifactError("this is an artifact (.cpg), not an int8 file: make the int8 file with "
                            "ce.int8_safetensors(artifact) first, then read_int8 that (or ce.decode(artifact) for its "
                            "float weights)")
    meta = _metadata(data)
    if meta.get("scheme") != SCHEME or meta.get("version") not in READS:
        raise ArtifactError(f"not an int8 file of scheme {SCHEME} version {' or '.join(READS)} (its metadata says "
                            f"{meta.get('scheme')!r} version {meta.get('version')!r}): a float weights file loads "
                            "with safetensors.torch.load as it is")
    try:
        tensors = st_load(bytes(data))
        layout = json.loads(meta["layout"])
    except Exception as e:  # safetensors' own errors, bad JSON
        raise ArtifactError(f"int8 file is damaged ({type(e).__name__}: {str(e)[:120]})") from None
    (n,) = struct.unpack("<Q", bytes(data[:8]))
    if (crc := _crc(bytes(data[8 + n:]))) != meta.get("data_crc32"):
        raise ArtifactError(f"int8 file is damaged: its tensor data's CRC-32 is {crc}, its metadata says "
                            f"{meta.get('data_crc32')!r}; make it again from the artifact (int8_safetensors)")
    if not isinstance(layout, dict) or not all(isinstance(e, dict) for e in layout.values()):
        raise ArtifactError("int8 file is damaged: its layout is not {name: entry}")
    expected = set(layout)
    for name, entry in layout.items():
        kind = entry.get("kind")
        expected |= {f"{name}.scale", f"{name}.zero_point"} if kind == "affine" else set()
        expected |= {f"{name}.codebook"} | ({f"{name}.mask"} if entry.get("mask") else set()) \
            if kind == "palette" else set()
    if set(tensors) != expected:
        missing, extra = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
        raise ArtifactError("int8 file does not match its layout: "
                            + "; ".join(f"{what} {', '.join(map(repr, names[:3]))}" for what, names in
                                        (("missing", missing), ("not in the layout", extra)) if names))
    out = {}
    for name, entry in layout.items():
        try:
            t = tensors[name]
            codes = entry.get("codes")
            if entry["kind"] in ("affine", "palette") and encode.DTYPE_NAMES.get(t.dtype) != codes:
                raise ArtifactError(f"int8 file: tensor {name!r} holds {t.dtype} codes, its layout says {codes!r}")
            if entry["kind"] == "affine":
                out[name] = dequantize(t, tensors[f"{name}.scale"], tensors[f"{name}.zero_point"])
            elif entry["kind"] == "palette":
                mask = tensors[f"{name}.mask"] if entry.get("mask") else None
                if mask is not None:
                    packed = meta["version"] != "1"  # bits since version 2, a bool per element before
                    want = torch.uint8 if packed else torch.bool
                    if mask.dtype != want:
                        raise ArtifactError(f"int8 file: the mask of {name!r} is {mask.dtype}, version "
                                            f"{meta['version']} stores {want}")
                    if packed:
                        mask = unpack_mask(mask, t.shape)
                out[name] = unpalette(t, tensors[f"{name}.codebook"], mask)
            elif entry["kind"] == "float":
                out[name] = t
            else:
                raise ArtifactError(f"int8 file: tensor {name!r} has kind {entry['kind']!r}, not affine, palette "
                                    "or float")
        except (KeyError, IndexError, RuntimeError, TypeError, ValueError) as e:
            raise ArtifactError(f"int8 file: tensor {name!r} cannot be read back ({type(e).__name__}: "
                                f"{str(e)[:120]})") from None
    return out
