"""A fine-tune that could not be kept on disk (a read-only or full folder) was shown as if saved: TrainedCache.put
returned False and said nothing more. put() still returns False, and last_error now says what was not written,
why and the fix, for the page to show "Trained, but the result " + last_error."""

import errno

import compress_engine as ce
from compress_engine.playground import trained
from compress_engine.playground.trained import TrainedCache

KEY = TrainedCache.key("m", ce.Recipe(sparsity=0.5, finetune_epochs=1), "d")


def fake():
    return {"recipe": ce.Recipe(sparsity=0.5, finetune_epochs=1).to_json(), "artifact": b"\x07" * 10,
            "metrics": {"artifact_bytes": 10, "accuracy": 0.9}, "history": {}, "timings": {}}


def failing(err):
    def write_atomic(path, data):
        raise OSError(err, {errno.EACCES: "Permission denied", errno.ENOSPC: "No space left on device",
                            errno.EROFS: "Read-only file system"}[err], str(path))
    return write_atomic


def test_a_folder_that_cannot_be_made_says_why(tmp_path):
    (tmp_path / "file").write_text("x")
    cache = TrainedCache(tmp_path / "file" / "trained")  # under a file: no folder can be made there
    assert cache.put(KEY, "lenet-300-100", fake()) is False and cache.get(KEY) is None
    assert cache.last_error.startswith("could not be kept on disk: writing ") and str(cache.folder) in cache.last_error


def test_a_read_only_folder_names_it_and_the_fix(tmp_path, monkeypatch):
    for err in (errno.EACCES, errno.EROFS):
        monkeypatch.setattr(trained, "write_atomic", failing(err))
        cache = TrainedCache(tmp_path)
        assert cache.put(KEY, "lenet-300-100", fake()) is False
        assert cache.last_error.startswith(f"could not be kept on disk: {tmp_path} is not writable (")
        assert "make it writable" in cache.last_error
    monkeypatch.delenv("COMPRESS_TRAINED", raising=False)
    default = TrainedCache()
    assert default.put(KEY, "lenet-300-100", fake()) is False and "set COMPRESS_TRAINED to another folder" in \
        default.last_error


def test_a_full_disk_says_so_and_a_later_put_clears_it(tmp_path, monkeypatch):
    cache = TrainedCache(tmp_path)
    monkeypatch.setattr(trained, "write_atomic", failing(errno.ENOSPC))
    assert cache.put(KEY, "lenet-300-100", fake()) is False
    assert f"the disk of {tmp_path} is full (No space left on device); free some space" in cache.last_error
    monkeypatch.undo()
    assert cache.put(KEY, "lenet-300-100", fake()) is True and cache.last_error is None and cache.get(KEY)
