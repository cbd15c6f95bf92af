"""Writing a file whole or not at all."""

import os
import tempfile
from pathlib import Path


def write_atomic(path, data):
    """Write `data` (bytes or str) to `path` through a temporary file beside it and a rename, so a concurrent
    reader sees the old file or the new one, never half of it, and a failed write leaves the old one. The file is
    readable by everyone (0644), as a shipped model or a shared cache must be: mkstemp's file, like safetensors'
    save_file, is private (0600). Makes the folder if needed; OSError (a read-only or full disk) is the caller's."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if isinstance(data, (bytes, bytearray, memoryview)) else "w") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
