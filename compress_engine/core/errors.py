"""The engine's own error types.

Every bad input the engine sees (a recipe field out of range, a missing data file, a broken
artifact) raises one of these, with a message that names what was wrong and how to fix it.
They subclass ValueError so callers that only know Python's built-ins still catch them. warn() is the one way the
engine warns its user: at the user's own line.
"""

import os
import sys
import warnings


class CompressError(ValueError):
    """Base class: bad input to the compression engine."""


class RecipeError(CompressError):
    """A Recipe field, or a command-line flag or argument, is missing, unknown or outside its allowed range."""


class DatasetError(CompressError):
    """A dataset is missing, unreadable or corrupt."""


class ArtifactError(CompressError):
    """Artifact bytes are truncated, tampered with or not an artifact at all."""


class ModelError(CompressError):
    """A model name, checkpoint or uploaded weight file is unknown or invalid."""


class StoreError(CompressError):
    """The run store's file is unusable, or a run given to it is invalid."""


def warn(message, category=UserWarning):
    """warnings.warn(message, category) at the first frame outside the compress_engine package: the user's line that
    called into the engine, however many engine functions and wrappers (renamed(), fit_flops calling compress, a
    torch.no_grad decorator between them) lie in between. Every warning meant for the user goes through here, so no
    stacklevel is counted by hand (Python 3.11 has no skip_file_prefixes; this walks the frames instead)."""
    frame, level = sys._getframe(1), 2  # level 1 is this function, 2 its caller
    while frame is not None and _engine_frame(frame):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level if frame is not None else 1)


def _engine_frame(frame):
    """Whether a frame belongs to the engine (a file under the compress_engine package) or to a decorator's wrapper
    (contextlib, functools, torch's no_grad) that an engine function was wrapped in."""
    filename = os.path.normcase(os.path.abspath(frame.f_code.co_filename))
    if filename.startswith(_PACKAGE):
        return True
    return (filename.endswith((os.sep + "contextlib.py", os.sep + "functools.py"))
            or filename.endswith(os.path.join("torch", "utils", "_contextlib.py"))) and frame.f_back is not None \
        and _engine_frame(frame.f_back)


def _package_dir():
    return os.path.normcase(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))) + os.sep


_PACKAGE = _package_dir()
