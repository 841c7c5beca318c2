"""Runs of frames: the spans where a per-frame mask holds, and how a message names them."""
from __future__ import annotations

import numpy as np
import torch


def spans(mask: torch.Tensor | np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs [start, end) where `mask` [T] is True."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    edges = np.flatnonzero(m[1:] != m[:-1])
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def listing(items: list, most: int = 12) -> str:
    """Items joined by commas, at most `most` of them and a count of the rest."""
    text = ", ".join(str(i) for i in items[:most])
    return text + (f" and {len(items) - most} more" if len(items) > most else "")


def describe(runs: list[tuple[int, int]]) -> str:
    """e.g. "12 frames (3-9, 20-24)"."""
    count = sum(b - a for a, b in runs)
    return f"{count} frame{'s' * (count != 1)} ({listing([f'{a}-{b - 1}' if b - a > 1 else str(a) for a, b in runs])})"
