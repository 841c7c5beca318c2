"""Track stage: 478 face landmarks per frame with mediapipe FaceMesh, one face followed over time.

Policy lives here, the library call in `third_party_wrappers.facemesh`: several faces -> the largest in
the first frame, then the one nearest the previous frame's; frames without a face are flagged and
filled by linear interpolation; too few faces is an error. Images larger than `max_side` are tracked
downscaled and the landmarks scaled back.
"""
from __future__ import annotations

from dataclasses import dataclass
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable

import numpy as np
import torch
from tqdm import tqdm

from reenact.errors import InputError
from reenact.inputs import fit_max_side, prefetch
from reenact.structures import Tracks
from third_party_wrappers.facemesh import FaceMesh, face_detection_scores
from third_party_wrappers.video import open_video


@dataclass(frozen=True)
class TrackConfig:
    max_faces: int = 2  # faces FaceMesh may return per frame (more costs speed); we follow one
    max_side: int = 1280  # larger images are tracked downscaled
    min_found: float = 0.5  # fewer frames with a face than this fraction is an error
    human_short_range: float = 0.85  # BlazeFace short-range score that accepts a source face ...
    human_full_range: float = 0.5  # ... or full-range score (a dog's face fools FaceMesh but not both)
    workers: int = 2  # parts of a video file tracked at once (1 keeps one face across the whole video)


def _bbox_area(face: np.ndarray) -> float:
    span = face[:, :2].max(0) - face[:, :2].min(0)
    return float(span[0] * span[1])


def _choose(faces: list[np.ndarray], previous: np.ndarray | None) -> np.ndarray:
    """Largest face, or the one whose centre is nearest the previous frame's face."""
    if previous is None or len(faces) == 1:
        return max(faces, key=_bbox_area)
    centre = previous[:, :2].mean(0)
    return min(faces, key=lambda f: np.linalg.norm(f[:, :2].mean(0) - centre))


def track_image(rgb: np.ndarray, cfg: TrackConfig = TrackConfig(), name: str = "image") -> Tracks:
    """Landmarks of the largest human face in one image (static mode). Raises InputError without one."""
    small, factor = fit_max_side(rgb, cfg.max_side)
    short, full = face_detection_scores(small)
    with FaceMesh(static=True, max_faces=cfg.max_faces) as mesh:
        faces = mesh(small)
    if not faces or (short < cfg.human_short_range and full < cfg.human_full_range):
        raise InputError(f"{name}: no human face found")
    face = _choose(faces, None) * np.float32(factor)
    return Tracks(torch.from_numpy(face[None]), torch.ones(1, dtype=torch.bool), rgb.shape[0], rgb.shape[1], 0.0)


def _track_stream(chunks: Iterable[tuple[int, np.ndarray]], landmarks: np.ndarray, found: np.ndarray,
                  cfg: TrackConfig, bar) -> tuple[int, int]:
    """Track (start, frames) chunks in video mode into `landmarks`/`found` (in place); returns the frame size."""
    previous, size = None, (0, 0)
    with FaceMesh(static=False, max_faces=cfg.max_faces) as mesh:
        for start, frames in chunks:
            size = frames.shape[1:3]
            for i, frame in enumerate(frames):
                small, factor = fit_max_side(frame, cfg.max_side)
                faces = mesh(small)
                if faces:
                    previous = _choose(faces, previous) * np.float32(factor)
                    landmarks[start + i], found[start + i] = previous, True
            bar.update(len(frames))
    return size


def _finish(landmarks: np.ndarray, found: np.ndarray, size, fps: float, cfg: TrackConfig, name: str) -> Tracks:
    if found.mean() < cfg.min_found:
        raise InputError(f"{name}: a face was found in only {found.sum()} of {len(found)} frames "
                         f"(at least {cfg.min_found:.0%} needed)")
    return Tracks(torch.from_numpy(fill_gaps(landmarks, found)), torch.from_numpy(found), size[0], size[1], fps)


def track_frames(chunks: Iterable[tuple[int, np.ndarray]], n_frames: int, fps: float, cfg: TrackConfig = TrackConfig(),
                 name: str = "video", progress: bool = True) -> Tracks:
    """Track a stream of (start, frames [N, H, W, 3]) chunks in video mode; fill frames without a face."""
    landmarks, found = np.zeros((n_frames, 478, 3), np.float32), np.zeros(n_frames, bool)
    with tqdm(total=n_frames, desc="track", unit="frame", disable=not progress) as bar:
        size = _track_stream(chunks, landmarks, found, cfg, bar)
    return _finish(landmarks, found, size, fps, cfg, name)


def track_video(path, n_frames: int, fps: float, cfg: TrackConfig = TrackConfig(), name: str | None = None,
                progress: bool = True, allow_truncated: bool = False, start: int = 0) -> Tracks:
    """Track frames [start, start + n_frames) of a video file in `cfg.workers` contiguous parts at once, each
    with its own decoder and FaceMesh (mediapipe runs one graph per core), then fill frames without a face.

    Each part starts with a fresh detection (the largest face), so a video with several people can switch
    faces at a part boundary; use `workers=1` there.
    """
    landmarks, found = np.zeros((n_frames, 478, 3), np.float32), np.zeros(n_frames, bool)
    bounds = np.linspace(0, n_frames, max(1, min(cfg.workers, n_frames // 32)) + 1).round().astype(int)

    def part(first: int, end: int):
        with open_video(path, allow_truncated=allow_truncated) as reader:
            chunks = ((i - start, frames) for i, frames in reader.chunks(64, first + start, end + start))
            return _track_stream(prefetch(chunks), landmarks, found, cfg, bar)

    with tqdm(total=n_frames, desc="track", unit="frame", disable=not progress) as bar, \
            ThreadPoolExecutor(len(bounds) - 1) as pool:
        sizes = list(pool.map(part, bounds[:-1], bounds[1:]))
    return _finish(landmarks, found, sizes[0], fps, cfg, name or str(path))


def fill_gaps(values: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Linear interpolation over time of the frames where `found` is False (nearest at the ends)."""
    if found.all():
        return values
    t = np.arange(len(values))
    flat = values.reshape(len(values), -1)
    filled = np.stack([np.interp(t, t[found], col) for col in flat[found].T], 1)
    return filled.reshape(values.shape).astype(values.dtype)



if __name__ == "__main__":
    import sys

    from reenact.tracks_io import main

    sys.exit(main())
