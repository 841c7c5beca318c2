"""Work folder: cached stage records keyed by a digest of their inputs and settings.

A key hashes the stage name, the record schema version, the settings (dataclass reprs) and the
content of input files, so it changes exactly when something the stage depends on changes. Records
are written atomically (see `reenact.structures`); an unreadable or mismatched entry is logged,
deleted and recomputed, never used.
"""
from __future__ import annotations

import hashlib
import logging
import tempfile
from pathlib import Path
from typing import Callable, TypeVar

from reenact.errors import CacheError
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
    """Digest of a stage name and its dependencies; existing paths contribute their content."""
    h = hashlib.sha256(f"{name}:{SCHEMA_VERSION}".encode())
    for part in parts:
        if isinstance(part, Path) or (isinstance(part, str) and Path(part).exists()):
            h.update(file_digest(Path(part)).encode())
        else:
            h.update(repr(part).encode())
    return h.hexdigest()[:16]


class WorkDir:
    """A folder of cached records; `enabled=False` computes everything afresh and stores nothing."""

    def __init__(self, root: Path, enabled: bool = True):
        self.root = Path(root)
        self.enabled = enabled

    @classmethod
    def temporary(cls) -> "WorkDir":
        return cls(Path(tempfile.mkdtemp(prefix="reenact-")), enabled=False)

    def path(self, name: str, parts, suffix: str = ".npz") -> Path:
        return self.root / f"{name}-{key_of(name, parts)}{suffix}"

    def cached(self, name: str, record_type: type[R], parts, compute: Callable[[], R]) -> R:
        """Load the record for (name, parts) if a valid one exists, else compute and store it."""
        path = self.path(name, parts)
        if self.enabled and path.exists():
            try:
                return record_type.load(path)
            except CacheError as exc:
                log.warning("discarding a corrupt cache entry: %s", exc)
                path.unlink(missing_ok=True)
        record = compute()
        if self.enabled:
            record.save(path)
        return record
