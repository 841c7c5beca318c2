"""Track stage: 478 face landmarks per frame with mediapipe FaceMesh, one face followed over time.

Policy lives here, the library call in `third_party_wrappers.facemesh`: of several faces, the driver is
followed as `reenact.follow` decides (chosen at the start, kept by place, re-found by appearance after a cut);
frames without the driver are flagged and filled by linear interpolation (`reenact.screen` then decides what
they become); too few faces is an error. Per frame the tracker also keeps a thumbnail (shot cuts) and colours
at the face's landmarks (occlusions) and a grey crop around the head (`reenact.outline`: the pose stage reads
the head's outline in it). Images larger than `max_side` are tracked downscaled and the landmarks
scaled back.
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
from reenact.follow import THUMB, Driver, Follower, face_box, identity_patch, initial_face, sample_points, \
    sampled_colours, thumb_change, thumbnail
from reenact.outline import CROP, head_crop
from reenact.spans import describe, spans
from reenact.structures import Tracks
from third_party_wrappers.facemesh import FaceMesh, face_detection_scores
from third_party_wrappers.video import open_video

TRACK_CHUNK = 16  # frames decoded at once per tracking part: each part holds three such chunks (read ahead)
TRACKS_VERSION = 3  # part of the cached tracks' key: bump when tracking changes its output


@dataclass(frozen=True)
class TrackConfig:
    max_faces: int = 4  # faces FaceMesh may return per frame (more costs speed); we follow one
    driver_face: str = ""  # the driver among the first faces: "" the largest, an index from the left, or x,y,w,h px
    identity: float = 0.1  # appearance distance (reenact.follow) below which a face after a cut is the driver
    cut_change: float = 0.1  # mean grey change (0-1) between frames that is a shot cut
    max_side: int = 1280  # larger images are tracked downscaled
    min_found: float = 0.5  # fewer frames with a face than this fraction is an error
    human_short_range: float = 0.85  # BlazeFace short-range score that accepts a source face ...
    human_full_range: float = 0.5  # ... or full-range score (a dog's face fools FaceMesh but not both)
    workers: int = 2  # parts of a video file tracked at once, each following the driver found first


def track_image(rgb: np.ndarray, cfg: TrackConfig = TrackConfig(), name: str = "image") -> Tracks:
    """Landmarks of the largest human face in one image (static mode). Raises InputError without one."""
    small, factor = fit_max_side(rgb, cfg.max_side)
    short, full = face_detection_scores(small)
    with FaceMesh(static=True, max_faces=cfg.max_faces) as mesh:
        faces = mesh(small)
    if not faces or (short < cfg.human_short_range and full < cfg.human_full_range):
        raise InputError(f"{name}: no human face found")
    face = faces[initial_face(faces, "")] * np.float32(factor)  # the largest
    return Tracks(torch.from_numpy(face[None]), torch.ones(1, dtype=torch.bool), rgb.shape[0], rgb.shape[1], 0.0)


class _Buffers:
    """Per-frame results of tracking a video, filled in place by its parts."""

    def __init__(self, n: int):
        self.landmarks, self.found = np.zeros((n, 478, 3), np.float32), np.zeros(n, bool)
        self.thumbs = np.zeros((n, THUMB, THUMB), np.uint8)
        self.colours = np.zeros((n, len(sample_points()[0]), 3), np.uint8)
        self.heads, self.head_boxes = np.zeros((n, CROP, CROP), np.uint8), np.zeros((n, 3), np.float32)


def _track_stream(chunks: Iterable[tuple[int, np.ndarray]], out: _Buffers, follower: Follower, cfg: TrackConfig,
                  bar) -> tuple[int, int]:
    """Track (start, frames) chunks in video mode into `out` (in place); returns the frame size."""
    size, previous = (0, 0), None
    with FaceMesh(static=False, max_faces=cfg.max_faces) as mesh:
        for start, frames in chunks:
            size = frames.shape[1:3]
            for i, frame in enumerate(frames):
                small, factor = fit_max_side(frame, cfg.max_side)
                thumb = out.thumbs[start + i] = thumbnail(small)
                cut = previous is not None and thumb_change(previous, thumb) > cfg.cut_change
                previous = thumb
                faces = mesh(small)
                pick = follower.choose(small, faces, cut)
                if pick is not None:
                    out.colours[start + i] = sampled_colours(small, faces[pick])
                    out.heads[start + i], box = head_crop(small, faces[pick])
                    out.head_boxes[start + i] = box * np.float32(factor)
                    out.landmarks[start + i], out.found[start + i] = faces[pick] * np.float32(factor), True
            bar.update(len(frames))
    return size


def _finish(out: _Buffers, size, fps: float, cfg: TrackConfig, name: str) -> Tracks:
    found = out.found
    if found.mean() < cfg.min_found:
        raise InputError(f"{name}: a face was found in only {found.sum()} of {len(found)} frames "
                         f"(at least {cfg.min_found:.0%} needed); none in {describe(spans(~found))}")
    return Tracks(torch.from_numpy(fill_gaps(out.landmarks, found)), torch.from_numpy(found), size[0], size[1], fps,
                  torch.from_numpy(out.thumbs), torch.from_numpy(out.colours), torch.from_numpy(out.heads),
                  torch.from_numpy(fill_gaps(out.head_boxes, found)))


def track_frames(chunks: Iterable[tuple[int, np.ndarray]], n_frames: int, fps: float, cfg: TrackConfig = TrackConfig(),
                 name: str = "video", progress: bool = True) -> Tracks:
    """Track a stream of (start, frames [N, H, W, 3]) chunks in video mode; fill frames without a face."""
    out = _Buffers(n_frames)
    with tqdm(total=n_frames, desc="track", unit="frame", disable=not progress) as bar:
        size = _track_stream(chunks, out, Follower(None, cfg.driver_face, cfg.identity), cfg, bar)
    return _finish(out, size, fps, cfg, name)


def _first_driver(path, start: int, n_frames: int, cfg: TrackConfig, allow_truncated: bool) -> Driver | None:
    """The driver as the first frames with faces show it (every 4th frame looked at, at most the first 1000)."""
    with open_video(path, allow_truncated=allow_truncated) as reader, \
            FaceMesh(static=True, max_faces=cfg.max_faces) as mesh:
        for _, frames in reader.chunks(16, start, start + min(n_frames, 1000)):
            for frame in frames[::4]:
                small, _ = fit_max_side(frame, cfg.max_side)
                faces = mesh(small)
                if faces:
                    face = faces[initial_face(faces, cfg.driver_face)]
                    return Driver(identity_patch(small, face), *face_box(face))
    return None


def track_video(path, n_frames: int, fps: float, cfg: TrackConfig = TrackConfig(), name: str | None = None,
                progress: bool = True, allow_truncated: bool = False, start: int = 0) -> Tracks:
    """Track frames [start, start + n_frames) of a video file in `cfg.workers` contiguous parts at once, each
    with its own decoder and FaceMesh (mediapipe runs one graph per core), then fill frames without a face.

    The driver is found first (`_first_driver`), and every part follows that driver by its appearance, so
    parts agree on whom they follow in a video with several people.
    """
    out = _Buffers(n_frames)
    bounds = np.linspace(0, n_frames, max(1, min(cfg.workers, n_frames // 32)) + 1).round().astype(int)
    driver = _first_driver(path, start, n_frames, cfg, allow_truncated)

    def part(first: int, end: int):
        follower = Follower(None if driver is None else Driver(driver.patch.copy()), cfg.driver_face, cfg.identity)
        if first == 0 and driver is not None:
            follower.driver.centre, follower.driver.size = driver.centre, driver.size
        with open_video(path, allow_truncated=allow_truncated) as reader:
            chunks = ((i - start, frames) for i, frames in reader.chunks(TRACK_CHUNK, first + start, end + start))
            return _track_stream(prefetch(chunks), out, follower, cfg, bar)

    with tqdm(total=n_frames, desc="track", unit="frame", disable=not progress) as bar, \
            ThreadPoolExecutor(len(bounds) - 1) as pool:
        sizes = list(pool.map(part, bounds[:-1], bounds[1:]))
    return _finish(out, sizes[0], fps, cfg, name or str(path))


def fill_gaps(values: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Linear interpolation over time of the frames where `found` is False (nearest at the ends)."""
    if found.all():
        return values
    t = np.arange(len(values))
    flat = values.reshape(len(values), -1)
    filled = np.stack([np.interp(t, t[found], col) for col in flat[found].T], 1)
    return filled.reshape(values.shape).astype(values.dtype)
