"""Trained results on disk: a fine-tune, a fine-tuned curve's points, a distillation — keyed by model + recipe + data.

Training is the one slow thing the dashboard does (seconds to minutes; everything post-training
answers live). So a trained result is written here once, and every later page run reads it at
once: a reload, a second tab, another student on the same server, the next server start. A
teacher prepares a demo by running it once beforehand.

    from compress_engine.playground.sweeps import data_fingerprint, model_fingerprint
    from compress_engine.playground.trained import TrainedCache
    cache = TrainedCache()                            # beside the run store: <its folder>/trained/
    key = cache.key(model_fingerprint(model), recipe, data_fingerprint(ds))
    cache.put(key, "lenet-300-100", result)           # a compress() Result
    cache.get(key)       # None, or {"model", "recipe", "metrics", "artifact", "history", "timings", "made", "extra"}
    cache.metrics(key)   # just the metrics dict (reads a few KB, not the artifact)

Why it is built this way:
- The key hashes the model's weights (not just its name: a retrained checkpoint or an upload with
  the same name is another model), the recipe's JSON and the data's tensors (the fingerprints the
  sweeps' run-store keys use), plus FORMAT, which is bumped when training changes what a recipe produces.
- One file per result, <key>.cpgt: a 20-byte preamble (MAGIC, the JSON's length, the artifact's CRC-32 and the
  CRC-32 of the preamble's first 16 bytes and the JSON), the JSON (metrics, loss history, timings), then the
  artifact. A byte changed anywhere (a disk error, a hand edit) fails a checksum and the result is trained again:
  the JSON's accuracy is shown as measured, and metrics() checks it with a CRC of a few KB, not the artifact.
  Files of the layout before MAGIC (an 8-byte length, no checksum) are misses too: their JSON cannot be checked,
  so each is trained once more and rewritten under its key. It is written to a temporary name and renamed into place, so
  a reader sees a whole result or none, and of concurrent writers of one key (two students pressing
  the same button) the last rename wins with a whole file. Curves read just the JSON part. Weights
  are not stored: decode(artifact) gives them exactly.
- A result that does not read back (a damaged or foreign file) is a miss, never an error.
- The folder is bounded (MAX_BYTES); the least recently written results go first, and a temporary file left by a
  writer killed before its rename goes once it is core.files.STALE_S old.
"""

import errno
import hashlib
import json
import os
import struct
import time
import zlib
from pathlib import Path

from ..core.files import remove_stale_temporaries, write_atomic
from ..core.recipe import Recipe
from . import store

FORMAT = 3  # bump when the same recipe would train to different numbers (a changed optimizer, schedule, ...);
# 2: structured pruning fine-tunes through the BatchNorms of a model that folds them; 3: and recalibrates their
# statistics first
MAX_BYTES = 2 * 1000**3  # the whole folder; a fine-tune of a sample model is 20-200 KB, a wide student a few MB
MAX_JSON = 4 * 1000**2  # one result's metrics and loss history
SUFFIX = ".cpgt"  # "compression playground, trained"
MAGIC = b"CPGT"  # a file's first bytes (those before it began with the JSON's length)
PREAMBLE = struct.Struct("<4sQII")  # MAGIC, JSON length, artifact CRC-32, CRC-32 of the 16 bytes before it + the JSON


def default_folder():
    """$COMPRESS_TRAINED, else a folder `trained` beside the run store ($COMPRESS_STORE's folder or its default)."""
    env = os.environ.get("COMPRESS_TRAINED")
    return Path(env).expanduser() if env else store.default_path().parent / "trained"


def trains(recipe):
    """Does this recipe train (fine-tuning or distillation: Recipe.trains), i.e. is its result worth keeping on disk?"""
    return recipe.trains()


class TrainedCache:
    """A folder of trained results. Cheap to create: make one wherever you need it, on any thread."""

    def __init__(self, folder=None):
        self.folder = Path(folder).expanduser() if folder is not None else default_folder()
        self._fix = "set COMPRESS_TRAINED to" if folder is None else "keep them in"  # + " another folder"
        self.last_error = None  # why this instance's last put() did not keep its result (None: it did)

    @staticmethod
    def key(model_id, recipe, data_id):
        """The file name stem of a result: sha256 of FORMAT, the model's and data's keys and the recipe JSON. A
        trained result that no one Recipe asks for (a size budget's fit: budget.fit_budget) passes a dict naming
        the request instead, e.g. {"fit_budget": {"bytes": 20000, "epochs": 1}}: it is hashed as JSON."""
        if isinstance(recipe, dict):
            what = {"request": recipe}
        else:
            what = {"recipe": (Recipe.from_json(recipe) if isinstance(recipe, str) else recipe).to_json()}
        text = json.dumps({"format": FORMAT, "model": str(model_id), **what, "data": str(data_id)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def _path(self, key):
        if not (isinstance(key, str) and len(key) == 64 and all(c in "0123456789abcdef" for c in key)):
            raise ValueError(f"a trained-result key is 64 hex digits (TrainedCache.key), got {key!r:.80}")
        return self.folder / f"{key}{SUFFIX}"

    def _read(self, key, with_artifact):
        """(meta dict, artifact bytes or None) of a whole, matching file, else None."""
        path = self._path(key)  # a bad key is the caller's bug: ValueError
        try:
            with open(path, "rb") as f:
                pre = f.read(PREAMBLE.size)
                if len(pre) != PREAMBLE.size:
                    return None
                magic, n, artifact_crc, head_crc = PREAMBLE.unpack(pre)
                if magic != MAGIC or n > MAX_JSON:
                    return None
                head = f.read(n)
                if zlib.crc32(head, zlib.crc32(pre[:16])) != head_crc:
                    return None
                artifact = f.read() if with_artifact else None
            if artifact is not None and zlib.crc32(artifact) != artifact_crc:
                return None
            meta = json.loads(head.decode("utf-8"))
        except (OSError, ValueError, UnicodeDecodeError, RecursionError):
            return None
        ok = (isinstance(meta, dict) and meta.get("key") == key and isinstance(meta.get("metrics"), dict)
              and isinstance(meta["metrics"].get("artifact_bytes"), int) and isinstance(meta.get("recipe"), str)
              and (artifact is None or len(artifact) == meta["metrics"]["artifact_bytes"]))
        return (meta, artifact) if ok else None

    def metrics(self, key):
        """The stored result's metrics dict, or None (reads only the file's JSON part)."""
        hit = self._read(key, with_artifact=False)
        return None if hit is None else hit[0]["metrics"]

    def get(self, key):
        """The stored result as a dict (model, recipe JSON, metrics, artifact bytes, history, timings, made),
        or None if there is none or it does not read back whole."""
        hit = self._read(key, with_artifact=True)
        if hit is None:
            return None
        meta, artifact = hit
        return {"model": meta.get("model"), "recipe": meta["recipe"], "metrics": meta["metrics"], "artifact": artifact,
                "history": meta.get("history") or {}, "timings": meta.get("timings") or {}, "made": meta.get("made"),
                "extra": meta.get("extra")}

    def put(self, key, model_name, result, extra=None):
        """Keep a compress() Result (or a dict with recipe, metrics, artifact, history, timings) under `key`, with
        `extra`: anything else JSON the result comes with (a fit's plan), given back as get()["extra"].

        Returns True if written. A full disk or a read-only folder is not an error for the caller (the
        result is still shown; it is only not kept): it returns False, and last_error says why, for a page to show
        after "Trained, but the result ": "could not be kept on disk: /srv/trained is not writable (Permission
        denied); ...". last_error is this instance's last put()'s: give each thread its own (they are cheap)."""
        if isinstance(result, dict):
            recipe, metrics, artifact = result["recipe"], result["metrics"], result["artifact"]
            history, timings = result.get("history") or {}, result.get("timings") or {}
        else:
            recipe, metrics, artifact = result.recipe, result.metrics, result.artifact
            history, timings = result.history, result.timings
        recipe = recipe if isinstance(recipe, str) else recipe.to_json()
        meta = {"key": key, "model": model_name, "recipe": recipe, "metrics": metrics, "history": history,
                "timings": timings, "made": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "extra": extra}
        path = self._path(key)
        try:
            head, artifact = json.dumps(meta, default=store._json_default, allow_nan=False).encode("utf-8"), bytes(artifact)
            pre = PREAMBLE.pack(MAGIC, len(head), zlib.crc32(artifact), 0)[:16]
            write_atomic(path, pre + struct.pack("<I", zlib.crc32(head, zlib.crc32(pre))) + head + artifact)
        except (OSError, TypeError, ValueError) as e:
            self.last_error = self._not_kept(path, e)
            return False
        self.last_error = None
        self._trim()
        return True

    def keep(self, key, model_name, result, extra=None):
        """put(), saying how it went: None when the result is kept, else why not (last_error's text), what a page
        shows after "Trained, but the result "."""
        return None if self.put(key, model_name, result, extra=extra) else self.last_error

    def _not_kept(self, path, e):
        """last_error's text: what could not be written, why (the OS's words) and the fix."""
        if not isinstance(e, OSError):  # metrics or history that are not JSON: the caller's bug
            return f"could not be kept on disk: its metrics or history are not JSON ({e})"
        why = e.strerror or str(e)
        if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return (f"could not be kept on disk: {self.folder} is not writable ({why}); make it writable or "
                    f"{self._fix} another folder")
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            return (f"could not be kept on disk: the disk of {self.folder} is full ({why}); free some space or "
                    f"{self._fix} another folder")
        return f"could not be kept on disk: writing {path} failed ({why}); {self._fix} another folder"

    def _trim(self):
        """Delete the oldest results while the folder holds more than MAX_BYTES, and the temporary files of writers
        killed before their rename (core.files.remove_stale_temporaries)."""
        remove_stale_temporaries(self.folder, f"*{SUFFIX}")
        try:
            files = sorted((st.st_mtime, st.st_size, p) for p in self.folder.glob(f"*{SUFFIX}") for st in [p.stat()])
            total = sum(size for _, size, _ in files)
            for _, size, p in files:
                if total <= MAX_BYTES:
                    break
                p.unlink(missing_ok=True)
                total -= size
        except OSError:
            pass
