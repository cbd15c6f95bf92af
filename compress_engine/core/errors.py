"""The engine's own error types.

Every bad input the engine sees (a recipe field out of range, a missing data file, a broken
artifact) raises one of these, with a message that names what was wrong and how to fix it.
They subclass ValueError so callers that only know Python's built-ins still catch them.
"""


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
