"""The default face model: mediapipe's 478-point topology with a mean, symmetric head-frame shape.

Loaded from the packaged `data/canonical_face.npz` (made by `python -m reenact.data.build_canonical`).
Head frame as in `reenact.geometry`; unit = outer eye-corner distance; origin between the eyes.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

DATA = Path(__file__).with_name("data") / "canonical_face.npz"
IRIS_CENTRES = (468, 473)  # subject's right, left
LIP_GAP = (13, 14)  # inner upper / lower lip midpoints
EYELIDS = ((159, 145), (386, 374))  # (upper, lower) lid midpoints, subject's right then left eye
EYE_CORNERS = ((33, 133), (362, 263))
# the subject's right upper lid, outer to inner corner: its margin, the ring above it (over the lashes) and the next
# (the crease); the left lid's are their mirrors
UPPER_LID_RINGS = ((246, 161, 160, 159, 158, 157, 173), (247, 30, 29, 27, 28, 56, 190),
                   (113, 225, 224, 223, 222, 221, 189))
LIPS = (0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181, 185, 191, 267, 269, 270,
        291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375, 402, 405, 409, 415)  # mediapipe FACEMESH_LIPS points


def lid_gaps(points: torch.Tensor) -> torch.Tensor:
    """Each eye's lid gap [..., 2] (subject's right, left eye): the distance between its EYELIDS midpoints, over
    every coordinate of landmarks [..., 478+, D]."""
    lids = torch.tensor(EYELIDS, device=points.device)
    return (points[..., lids[:, 0], :] - points[..., lids[:, 1], :]).norm(dim=-1)


@dataclass(frozen=True)
class CanonicalFace:
    shape: torch.Tensor  # [478, 3] head frame
    triangles: torch.Tensor  # [852, 3] int64 over the first 468 points; holes at the mouth and eyes
    mirror: torch.Tensor  # [478] left/right counterpart of each point
    outer_loop: torch.Tensor  # face oval, ordered
    mouth_loop: torch.Tensor  # inner lip contour, ordered
    eye_loops: tuple  # (subject's right, left) eye openings, ordered
    rigid: torch.Tensor  # [K] points that move little with expression, for pose fitting

    def hole_fans(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Triangles closing the eye holes (fans from the iris centres) and the mouth hole (fan from a new
        centre vertex, index 478, the mean of the inner lip contour). Returns (eye fans, mouth fan)."""
        eyes = torch.cat([_fan(loop, c) for loop, c in zip(self.eye_loops, IRIS_CENTRES)])
        return eyes, _fan(self.mouth_loop, 478)


def _fan(loop: torch.Tensor, centre: int) -> torch.Tensor:
    return torch.stack([torch.full_like(loop, centre), loop, loop.roll(-1)], 1)


@lru_cache(maxsize=1)
def load_canonical() -> CanonicalFace:
    with np.load(DATA) as d:
        arr = {k: torch.from_numpy(d[k]) for k in d.files if k != "sources"}
    shape = arr["shape"]
    # Rigid points: nose and cheeks between the upper lip and the eyes, and the forehead above the brows.
    eye_centres = shape[list(IRIS_CENTRES)]
    far_from_eyes = (shape[:, None, :2] - eye_centres[None, :, :2]).norm(dim=-1).min(1).values > 0.32
    band = ((shape[:, 1] < 0.12) & (shape[:, 1] > shape[LIP_GAP[0], 1] + 0.25)) | (shape[:, 1] > 0.5)
    rigid = torch.nonzero(far_from_eyes & band & (torch.arange(478) < 468)).flatten()
    return CanonicalFace(
        shape=shape,
        triangles=arr["triangles"],
        mirror=arr["mirror"],
        outer_loop=arr["outer_loop"],
        mouth_loop=arr["mouth_loop"],
        eye_loops=(arr["right_eye_loop"], arr["left_eye_loop"]),
        rigid=rigid,
    )
