"""Errors that the command-line front ends turn into one stderr line and exit code 2.

Library code raises these; only `reenact.run`, `pipelines/still.py` and the other entry points catch them.
"""


class ReenactError(Exception):
    """Base class: a problem the user can fix (bad input, missing asset); never a bug."""


class InputError(ReenactError):
    """An input file is missing, unreadable or unusable (no face, truncated video, ...)."""


class MissingAssetError(ReenactError):
    """A model file (GAN checkpoint, face model) is absent; the message names it and where to get it."""


class CheckpointError(ReenactError):
    """A checkpoint exists but is truncated, of another architecture, or carries code."""


class CacheError(ReenactError):
    """A cached intermediate is unreadable or of another schema version: recompute it."""
