"""Work folder: cached stage records keyed by a digest of their inputs and settings.

A key hashes the stage name and version, the record schema version, the settings (dataclass reprs) and the
content of input files (given as `Path`), so it changes exactly when something the stage depends on changes.
Entries are written atomically (see `reenact.structures`); an unreadable or mismatched entry is logged,
deleted and recomputed, never used.
"""
from __future__ import annotations

import hashlib
import logging
import tempfile
from pathlib import Path
from typing import Callable, TypeVar

from reenact.errors import ReenactError
from reenact.structures import SCHEMA_VERSION

log = logging.getLogger("reenact")
R = TypeVar("R")


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes (a folder: of its files' names and digests)."""
    path = Path(path)
    h = hashlib.sha256()
    if path.is_dir():
        for child in sorted(path.iterdir()):
            if child.is_file():
                h.update(child.name.encode() + file_digest(child).encode())
        return h.hexdigest()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def key_of(name: str, parts) -> str:
    """Digest of a stage name and its dependencies: a `Path` contributes its file's (or folder's) content (a missing
    one its name), anything else its repr (a string stays a string, even where a file of that name exists)."""
    h = hashlib.sha256(f"{name}:{SCHEMA_VERSION}".encode())
    for part in parts:
        h.update(file_digest(part).encode() if isinstance(part, Path) and part.exists() else repr(part).encode())
    return h.hexdigest()[:16]


class WorkDir:
    """A folder of cached entries; `enabled=False` computes everything afresh and stores nothing.

    An entry is named by its stage, that stage's version (bumped when the stage's output changes) and a digest of
    what it depends on (inputs, that stage's config section)."""

    def __init__(self, root: Path, enabled: bool = True):
        self.root = Path(root)
        self.enabled = enabled

    @classmethod
    def temporary(cls) -> "WorkDir":
        return cls(Path(tempfile.mkdtemp(prefix="reenact-")), enabled=False)

    def path(self, name: str, version: int, parts, suffix: str = ".npz") -> Path:
        return self.root / f"{name}-{key_of(f'{name}/{version}', parts)}{suffix}"

    def load(self, path: Path, load: Callable[[Path], R]) -> R | None:
        """The entry at `path` read by `load`, or None when caching is off or there is none; an unreadable entry is
        logged, deleted and taken as none."""
        if not (self.enabled and path.exists()):
            return None
        try:
            return load(path)
        except ReenactError as exc:
            log.warning("discarding a corrupt cache entry: %s", exc)
            path.unlink(missing_ok=True)
            return None

    def cached(self, name: str, version: int, parts, compute: Callable[[], R], load: Callable[[Path], R],
               save: Callable[[R, Path], None] | None = None, suffix: str = ".npz") -> R:
        """The entry for (name, version, parts) if a valid one exists, else `compute()`, stored by `save(value, path)`
        (default: the record's own `save`)."""
        path = self.path(name, version, parts, suffix)
        value = self.load(path, load)
        if value is None:
            value = compute()
            if self.enabled:
                (save or type(value).save)(value, path)
        return value
