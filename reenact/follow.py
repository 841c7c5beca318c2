"""Following one driver through a video: which of the faces in a frame is the driver, and what each frame shows.

Per frame the tracker gets every face FaceMesh finds. The driver is the face chosen at the start (the largest,
or `driver_face`: an index counted from the left, or a box), then the face at its last place (centre within half
a face, size within 1.5x) while the shot goes on, and after a cut or a gap the face whose appearance matches the
driver's: a 24 x 24 colour patch of the face (its landmarks' box, upright by the eyes), whose mean absolute
difference to the driver's running patch is below `identity`. Landmark shape does not tell people apart (its
frame-to-frame spread in one clip is as large as the difference between people); this patch does, by skin, brow,
eye and lip colour (between the media's talking clips: 0.11 and more; within one: 0.08 at most). It leaves the
background and clothes out, which change with the camera.

Also per frame, for `reenact.screen`: a 16 x 16 grey thumbnail (shot cuts) and the colours at the face's mouth
ring, eye rings and rigid skin points (occlusions), sampled at the landmarks.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from reenact.canonical import EYE_CORNERS, LIPS, load_canonical
from reenact.errors import InputError

PATCH, PATCH_SPAN = 24, 1.0  # identity patch side (px) and the span it covers (landmark box sides)
THUMB = 16
CONTINUITY = (0.5, 1.5)  # the driver's next place: centre within this many face sizes, size within this ratio


@lru_cache(maxsize=1)
def sample_points() -> tuple[np.ndarray, dict[str, slice]]:
    """Landmark indices whose colours are kept per frame, and the slice of each region among them: the skin ring
    around the lips (`mouth`), around each eye (`eye_r`, `eye_l`: lids and brows), and rigid skin (`skin`, the
    reference the others are compared with). Rings lie between 1.2 and 2 lip (eye) half-sizes from the centre."""
    face = load_canonical()
    s, idx = face.shape[:468], torch.arange(468)

    def ring(centre, a, b, inner, outer, exclude):
        e = (((s[:, 0] - centre[0]) / a) ** 2 + ((s[:, 1] - centre[1]) / b) ** 2).sqrt()
        return idx[~torch.isin(idx, exclude) & (e > inner) & (e < outer)]

    lips = torch.tensor(LIPS)
    mouth = ring(s[lips, :2].mean(0), (s[61, 0] - s[291, 0]).abs() / 2, (s[0, 1] - s[17, 1]).abs() / 2, 1.2, 2.0,
                 lips)
    eye_loops = torch.cat(list(face.eye_loops))
    eyes = []
    for i, j in EYE_CORNERS:
        half = (s[i, 0] - s[j, 0]).abs() / 2
        eyes.append(ring((s[i, :2] + s[j, :2]) / 2, half, half / 2, 1.3, 2.2, eye_loops))
    skin = face.rigid[::3]
    parts = {"mouth": mouth, "eye_r": eyes[0], "eye_l": eyes[1], "skin": skin}
    bounds, start = {}, 0
    for name, part in parts.items():
        bounds[name] = slice(start, start + len(part))
        start += len(part)
    return torch.cat(list(parts.values())).numpy(), bounds


def _bilinear(rgb: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Colours [..., 3] float32 of an RGB uint8 image at float pixel positions (clamped to the image)."""
    h, w = rgb.shape[:2]
    x, y = np.clip(x, 0, w - 1.001), np.clip(y, 0, h - 1.001)
    x0, y0 = x.astype(np.int64), y.astype(np.int64)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    img = rgb.astype(np.float32)
    top = img[y0, x0] * (1 - fx) + img[y0, x0 + 1] * fx
    bottom = img[y0 + 1, x0] * (1 - fx) + img[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def face_box(face: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre [2] and size (the longer side of the landmarks' box, px) of one face [478, 3]."""
    lo, hi = face[:, :2].min(0), face[:, :2].max(0)
    return (lo + hi) / 2, float((hi - lo).max())


def identity_patch(rgb: np.ndarray, face: np.ndarray) -> np.ndarray:
    """The head's PATCH x PATCH colour patch [PATCH * PATCH * 3] in [0, 1], upright by the eye line."""
    centre, size = face_box(face)
    eye = face[EYE_CORNERS[1][1], :2] - face[EYE_CORNERS[0][0], :2]
    angle = np.arctan2(eye[1], eye[0])
    step = size * PATCH_SPAN / PATCH
    u = (np.arange(PATCH) - (PATCH - 1) / 2) * step
    gx, gy = np.meshgrid(u, u)
    x = centre[0] + gx * np.cos(angle) - gy * np.sin(angle)
    y = centre[1] + gx * np.sin(angle) + gy * np.cos(angle)
    return (_bilinear(rgb, x, y) / 255).reshape(-1)


def grey_blocks(rgb: np.ndarray, x0: float, y0: float, width: float, height: float, n: int) -> np.ndarray:
    """n x n grey uint8 block means of a 4x denser point sample of the box (x0, y0, width, height) px of the frame;
    beyond the frame the border pixels repeat."""
    h, w = rgb.shape[:2]
    at = np.arange(4 * n) + 0.5
    rows = np.clip((y0 + at * height / (4 * n)).astype(int), 0, h - 1)
    cols = np.clip((x0 + at * width / (4 * n)).astype(int), 0, w - 1)
    grey = rgb[rows][:, cols].mean(-1)
    return grey.reshape(n, 4, n, 4).mean((1, 3)).round().astype(np.uint8)


def thumbnail(rgb: np.ndarray) -> np.ndarray:
    """THUMB x THUMB grey uint8 block means of the whole frame."""
    return grey_blocks(rgb, 0, 0, rgb.shape[1], rgb.shape[0], THUMB)


def thumb_change(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two thumbnails, in [0, 1]."""
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean() / 255)


def sampled_colours(rgb: np.ndarray, face: np.ndarray) -> np.ndarray:
    """Colours uint8 [K, 3] of the frame at the face's `sample_points()`."""
    points, _ = sample_points()
    return _bilinear(rgb, face[points, 0], face[points, 1]).round().astype(np.uint8)


def parse_driver_face(spec: str) -> int | tuple[float, float, float, float] | None:
    """`driver_face` as None (the largest), an index (faces counted from the left) or a box (x, y, w, h) px."""
    if not spec.strip():
        return None
    parts = spec.split(",")
    try:
        if len(parts) == 1:
            return int(parts[0])
        if len(parts) == 4:
            return tuple(float(p) for p in parts)
    except ValueError:
        pass
    raise InputError(f"--track.driver-face {spec!r}: give a face index (0 = leftmost) or a box x,y,w,h in pixels")


def initial_face(faces: list[np.ndarray], spec: str) -> int:
    """Index of the driver among the first frame's faces, as `driver_face` asks."""
    choice = parse_driver_face(spec)
    if choice is None:
        return max(range(len(faces)), key=lambda i: face_box(faces[i])[1])
    if isinstance(choice, int):
        order = sorted(range(len(faces)), key=lambda i: face_box(faces[i])[0][0])
        if not -len(order) <= choice < len(order):
            raise InputError(f"--track.driver-face {choice}: the first frame with faces has {len(order)}")
        return order[choice]
    x, y, w, h = choice
    centre = np.array([x + w / 2, y + h / 2])
    return min(range(len(faces)), key=lambda i: float(np.linalg.norm(face_box(faces[i])[0] - centre)))


@dataclass
class Driver:
    """What is known of the driver while following it: its running appearance patch and last place."""

    patch: np.ndarray
    centre: np.ndarray | None = None
    size: float = 0.0


class Follower:
    """Picks the driver among each frame's faces (see the module's docstring); one per tracked part of a video."""

    def __init__(self, driver: Driver | None, spec: str = "", identity: float = 0.1, learn: float = 0.05):
        self.driver, self.spec, self.identity, self.learn = driver, spec, identity, learn

    def choose(self, rgb: np.ndarray, faces: list[np.ndarray], cut: bool) -> int | None:
        """Index of the driver in `faces` (landmarks in `rgb`'s pixels), or None when it is not among them."""
        if not faces:
            if self.driver is not None:
                self.driver.centre = None
            return None
        patches = [identity_patch(rgb, f) for f in faces]
        if self.driver is None:
            pick = initial_face(faces, self.spec)
            self.driver = Driver(patches[pick])
        else:
            distance = [float(np.abs(p - self.driver.patch).mean()) for p in patches]
            pick = self._continued(faces, distance) if self.driver.centre is not None and not cut else None
            if pick is None:
                best = int(np.argmin(distance))
                pick = best if distance[best] < self.identity else None
            if pick is None:
                self.driver.centre = None
                return None
            if distance[pick] < self.identity:  # learn slow changes of light, never an occluder's look
                self.driver.patch = (1 - self.learn) * self.driver.patch + self.learn * patches[pick]
        self.driver.centre, self.driver.size = face_box(faces[pick])
        return pick

    def _continued(self, faces: list[np.ndarray], distance: list[float]) -> int | None:
        """The face at the driver's last place, unless it looks like someone else and another face is the driver."""
        near = []
        for i, face in enumerate(faces):
            centre, size = face_box(face)
            ratio = size / max(self.driver.size, 1e-6)
            if (np.linalg.norm(centre - self.driver.centre) < CONTINUITY[0] * self.driver.size
                    and 1 / CONTINUITY[1] < ratio < CONTINUITY[1]):
                near.append((float(np.linalg.norm(centre - self.driver.centre)), i))
        if not near:
            return None
        pick = min(near)[1]
        best = int(np.argmin(distance))
        if best != pick and distance[best] < self.identity <= distance[pick]:
            return best
        return pick
