"""One byte changed in a kept fine-tune's JSON header (its "accuracy": 0.9207 made 0.9907) was shown by the Pruning
page as a real 99.07 % after a restart: TrainedCache checked only the file's shape. Its header and artifact now carry
CRC-32s that get() and metrics() check; a damaged file, or one of the layout before them, is a miss (trained again)."""

import struct

import compress_engine as ce
from compress_engine.playground.trained import TrainedCache


def fake(size=300, acc=0.9207):
    return {"recipe": ce.Recipe(sparsity=0.5, finetune_epochs=1).to_json(), "artifact": bytes(range(256)) * 2,
            "metrics": {"artifact_bytes": 512, "accuracy": acc, "layers": []}, "history": {"finetune": [0.5, 0.25]},
            "timings": {"total": 1.5}}


def _kept(tmp_path):
    cache = TrainedCache(tmp_path)
    key = TrainedCache.key("m", ce.Recipe(sparsity=0.5, finetune_epochs=1), "d")
    assert cache.put(key, "lenet-300-100", fake())
    return cache, key, tmp_path / f"{key}.cpgt"


def test_an_untouched_file_is_a_hit(tmp_path):
    cache, key, _ = _kept(tmp_path)
    assert cache.metrics(key)["accuracy"] == 0.9207 and cache.get(key)["artifact"] == fake()["artifact"]


def test_the_reviewers_edit_of_the_accuracy_is_a_miss(tmp_path):
    cache, key, path = _kept(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data.replace(b'"accuracy": 0.9207', b'"accuracy": 0.9907', 1))
    assert path.read_bytes() != data and cache.metrics(key) is None and cache.get(key) is None


def test_one_byte_flipped_anywhere_is_a_miss(tmp_path):
    cache, key, path = _kept(tmp_path)
    data = path.read_bytes()
    head_end = len(data) - 512  # preamble + JSON, then the 512-byte artifact
    for i in range(len(data)):
        for flip in (0x01, 0x80):
            bad = bytearray(data)
            bad[i] ^= flip
            path.write_bytes(bytes(bad))
            if i < head_end:
                assert cache.metrics(key) is None, (i, flip)
            assert cache.get(key) is None, (i, flip)
    path.write_bytes(data)
    assert cache.get(key) is not None


def test_a_file_of_the_old_layout_is_a_miss(tmp_path):
    """The layout before the checksums: an 8-byte JSON length, the JSON, the artifact; nothing checks its JSON."""
    cache, key, path = _kept(tmp_path)
    head = cache.get(key)
    import json
    meta = {"key": key, "model": "lenet-300-100", "recipe": head["recipe"], "metrics": head["metrics"],
            "history": head["history"], "timings": head["timings"], "made": head["made"], "extra": None}
    j = json.dumps(meta).encode()
    path.write_bytes(struct.pack("<Q", len(j)) + j + head["artifact"])
    assert cache.metrics(key) is None and cache.get(key) is None
    assert cache.put(key, "lenet-300-100", fake()) and cache.metrics(key)["accuracy"] == 0.9207  # rewritten in place
