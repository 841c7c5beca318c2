"""A hostile driving clip built from real talking videos, for the robustness bench and tests.

Real footage is cut between cameras, shows other people, tiny or turned-away faces and things in front of the
mouth. This builds such a clip from a driver's talking video and other people's, segment by segment (each
`seconds` long, on a square canvas), and returns what every frame shows, so a check knows which frames hold the
driver and where the cuts are:

    driver    the driver, framed like the source video
    zoomed    a cut to another camera: the driver's later frames, closer and off centre
    audience  a cut-away: a 3 x 3 grid of other people's faces, no driver
    tiny      the driver scaled down to a ~24 px face in a corner
    intruder  the driver smaller on the left, a larger face of someone else sliding in from the right
    covered   a dark bar (a microphone) over the driver's mouth
    black     black frames
    turned    the driver's head turned away about the vertical axis (a cylinder warp, up to 70 degrees and back)

Each kind is a function of (frame index in the segment, segment length) to an RGB canvas.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from reenact.crop import warp_affine
from reenact.inputs import frames_to_tensor, tensor_to_frames
from third_party_wrappers.facemesh import FaceMesh
from third_party_wrappers.video import VideoWriter, open_video

KINDS = ("driver", "zoomed", "audience", "tiny", "intruder", "covered", "black", "turned", "driver")
DRIVER_KINDS = {"driver", "zoomed", "intruder", "covered", "turned"}  # the driver's face is there and usable-sized


@dataclass(frozen=True)
class Segment:
    kind: str
    start: int  # first frame of the clip
    end: int  # one past the last


def _read(path: Path, n: int, start: int = 0) -> np.ndarray:
    with open_video(path) as reader:
        n = min(n, reader.info.n_frames - start)
        return reader.read(list(range(start, start + n)))


def _fit(frame: np.ndarray, side: int, zoom: float = 1.0, centre=(0.5, 0.4)) -> np.ndarray:
    """The frame scaled to cover a side x side canvas (times `zoom`), the point `centre` (fractions) centred."""
    h, w = frame.shape[:2]
    k = side / min(h, w) * zoom
    cx, cy = centre[0] * w, centre[1] * h
    affine = torch.tensor([[k, 0, side / 2 - k * cx], [0, k, side / 2 - k * cy]], dtype=torch.float32)
    return _warp(frame, affine, side)


def _warp(frame: np.ndarray, crop_from_image: torch.Tensor, side: int, fill: float = 0.0) -> np.ndarray:
    inv = torch.cat([crop_from_image, torch.tensor([[0.0, 0, 1]])]).inverse()[:2]
    image = frames_to_tensor(frame[None])
    out = warp_affine(torch.cat([image, torch.ones_like(image[:, :1])], 1), inv[None], (side, side), padding="zeros")
    return tensor_to_frames(out[:, :3] + (1 - out[:, 3:]) * fill)[0]


def _head_columns(frame: np.ndarray) -> tuple[float, float]:
    """Centre column and cylinder radius (0.75 face widths, the hair too) of the face FaceMesh finds in a frame;
    the frame's middle and a quarter of its width without one."""
    with FaceMesh(static=True, max_faces=1) as mesh:
        faces = mesh(frame)
    if not faces:
        return frame.shape[1] / 2, frame.shape[1] / 4
    lo, hi = faces[0][:, 0].min(), faces[0][:, 0].max()
    return float(lo + hi) / 2, 0.75 * float(hi - lo)


def _turn(frame: np.ndarray, centre_x: float, radius: float, degrees: float) -> np.ndarray:
    """The frame with the head, taken as a vertical cylinder of `radius` px around column `centre_x`, turned by
    `degrees` about its axis: the nose slides toward the silhouette's edge, the near cheek widens, the far one
    narrows (what FaceMesh reads as a turn, unlike a turned plane, which it reads as a squeezed frontal face).
    Columns outside the cylinder stay; the back of the head shows the silhouette's edge."""
    side = frame.shape[1]
    d = (np.arange(side) - centre_x) / radius
    inside = np.abs(d) < 1
    angle = np.maximum(np.arcsin(np.clip(d, -1, 1)) - np.radians(degrees), -np.pi / 2)
    x = np.where(inside, centre_x + radius * np.sin(angle), np.arange(side)).astype(np.float32)
    h = frame.shape[0]
    gx = torch.from_numpy((x + 0.5) / side * 2 - 1)[None, :].expand(h, side)
    gy = torch.from_numpy(((np.arange(h, dtype=np.float32) + 0.5) / h * 2 - 1))[:, None].expand(h, side)
    image = frames_to_tensor(frame[None])
    out = torch.nn.functional.grid_sample(image, torch.stack([gx, gy], -1)[None], align_corners=False)
    return tensor_to_frames(out)[0]


def build(driver: Path, others: list[Path], out: Path, seconds: float = 1.0, side: int = 512, fps: float = 25.0,
          kinds: tuple[str, ...] = KINDS) -> list[Segment]:
    """Write the hostile clip (H.264 mp4) and return its segments. `others`: videos of other people (>= 1)."""
    n = max(2, round(seconds * fps))
    count = sum(1 for k in kinds if k != "audience") * n
    drv = _read(driver, count + 2 * n)
    people = [_read(p, n) for p in others]
    next_drv = 0
    head = [side / 2, side / 4]  # the turned segment's head (`_head_columns`)

    def driver_frame(i):
        return drv[min(next_drv + i, len(drv) - 1)]

    def person(j, i):
        clip = people[j % len(people)]
        return clip[i % len(clip)]

    def audience(i):
        cell = side // 3
        canvas = np.full((side, side, 3), 40, np.uint8)
        for j in range(9):
            y, x = divmod(j, 3)
            canvas[y * cell:(y + 1) * cell, x * cell:(x + 1) * cell] = _fit(person(j, i + 3 * j), cell, 1.3)
        return canvas

    def tiny(i):
        canvas = np.full((side, side, 3), 60, np.uint8)
        small = _fit(driver_frame(i), side // 8, 1.0)
        canvas[side // 16:side // 16 + len(small), -side // 16 - len(small):-side // 16] = small
        return canvas

    def intruder(i):
        canvas = _fit(driver_frame(i), side, 0.6, (0.5, 0.4))
        canvas = np.roll(canvas, -side // 5, axis=1)
        other = _fit(person(0, i), side, 1.1)
        reach = int(side * 0.55 * min(1.0, 2 * (i + 1) / n))  # slides in over the first half
        canvas[:, side - reach:] = other[:, :reach]
        return canvas

    def covered(i):
        canvas = _fit(driver_frame(i), side)
        y0, x0, h = int(side * 0.36), int(side * 0.36), side // 9  # the mouth of a face framed by _fit
        canvas[y0:y0 + h, x0:side - x0] = (25, 25, 30)
        canvas[y0 + h:, side // 2 - side // 40:side // 2 + side // 40] = (15, 15, 15)
        return canvas

    def turned(i):
        frame = _fit(driver_frame(i), side)
        if i == 0:
            head[:] = _head_columns(frame)
        return _turn(frame, *head, 70 * np.sin(np.pi * i / max(1, n - 1)))

    makers = {
        "driver": lambda i: _fit(driver_frame(i), side),
        "zoomed": lambda i: _fit(driver_frame(i), side, 1.5, (0.56, 0.36)),
        "audience": audience, "tiny": tiny, "intruder": intruder, "covered": covered,
        "black": lambda i: np.zeros((side, side, 3), np.uint8), "turned": turned,
    }
    segments = []
    with VideoWriter(out, fps, side, side) as writer:
        for kind in kinds:
            start = len(segments) and segments[-1].end
            writer.write(np.stack([makers[kind](i) for i in range(n)]))
            segments.append(Segment(kind, start, start + n))
            if kind != "audience":
                next_drv += n
    return segments
