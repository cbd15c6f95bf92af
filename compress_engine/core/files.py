"""Writing a file whole or not at all."""

import os
import tempfile
import time
from pathlib import Path

STALE_S = 15 * 60  # a temporary file of write_atomic's untouched this long was left by a killed writer (a live one
# writes and renames it within a second)


def _temporary(name):
    """mkstemp's prefix and suffix of write_atomic's temporary file for a file called `name` (a glob pattern too)."""
    return f".{name}.", ".tmp"


def write_atomic(path, data):
    """Write `data` (bytes or str) to `path` through a temporary file beside it and a rename, so a concurrent
    reader sees the old file or the new one, never half of it, and a failed write leaves the old one. The file is
    readable by everyone (0644), as a shipped model or a shared cache must be: mkstemp's file, like safetensors'
    save_file, is private (0600). Makes the folder if needed; OSError (a read-only or full disk) is the caller's."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix, suffix = _temporary(path.name)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=suffix)
    try:
        with os.fdopen(fd, "wb" if isinstance(data, (bytes, bytearray, memoryview)) else "w") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(folder, name="*", older_than=STALE_S):
    """Delete the temporary files write_atomic left in `folder`, for files named `name` (a glob pattern), when its
    process was killed between writing and renaming: those unmodified for `older_than` seconds, not one a writer
    is writing now. They count against no size limit and nothing else removes them. Returns how many went; a file
    that cannot be removed (gone already, a read-only folder) is skipped."""
    prefix, suffix = _temporary(name)
    now, removed = time.time(), 0
    for p in Path(folder).glob(f"{prefix}*{suffix}"):
        try:
            if now - p.stat().st_mtime > older_than:
                p.unlink()
                removed += 1
        except OSError:
            pass
    return removed
