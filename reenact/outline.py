"""The head's outline as the frames show it: a second, image-based observation of the head pose.

The tracker's landmarks move with the face's expression: fitted to them, a still head that talks and frowns turns by
1-2 deg (std; d19.mp4), enough to move its hair outline by 10 px and more. The outline itself (hair against the
background, temples, ears) does not move with the expression. So per frame the tracker also keeps a small grey crop
around the head (`head_crop`), and the pose stage reads each crop on the head frame's plane at OUTLINE_DEPTH through
that frame's pose (`outline_samples`). Where the pose is right, the outline lands at the same plane points in every
frame; `align_outlines` measures where it lands instead: a similarity per frame that brings the frame's samples onto
their median over the clip (inverse-compositional Lucas-Kanade, coarse to fine, robust), over a band that leaves
out the face itself (it moves with the expression) and the neck (it does not turn with a nod), and fades out beyond
the head (HEAD).

The median is taken of the samples at the landmark fit's poses: background that stays still while the head moves
is blurred in it and varies from frame to frame on the plane, so it is weighed down (TEMPORAL_SPREAD) and cannot
pull the alignment away from the head; where the head is still it agrees with the outline anyway. A frame whose
alignment lands far from its pose (PLAUSIBLE) or fits badly is trusted less: a background that changed behind the
head, a hand.
"""
from __future__ import annotations

from functools import lru_cache

import kornia.filters as kf
import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial import Delaunay

from reenact.canonical import EYE_CORNERS, load_canonical
from reenact.follow import grey_blocks
from reenact.geometry import plane_affine

CROP = 80  # px: side of the grey head crop kept per frame
CROP_SPAN = 4.4  # eye-corner distances the crop spans: the plane band of a head turned 30 deg stays inside
CROP_UP = 0.8  # eye-corner distances from the eyes' midpoint up to the crop's centre (the band lies above the eyes)
OUTLINE_DEPTH = -1.0  # head-frame depth of the plane the outline is read on (eye-corner distances; nose tip +0.49)
BAND = ((-1.5, 1.5, 40), (-0.4, 2.0, 32))  # plane u (right) and v (up) ranges and sample counts, eye-corner distances
HEAD = (1.0, 1.35, 0.15)  # the band's window: an ellipse this half-wide and this high above the eyes (a skull's with
# hair: the top of the head lies about 1.3 eye-corner distances above the eyes), fading out over this fraction beyond
# it, so that the background far from the head (which a moving camera moves) does not outweigh its outline
FACE_DILATE = 1.12  # the face's landmark hull, grown by this about its centre, is left out of the band
LEVELS = (4, 2, 1)  # coarse to fine: the crops averaged over blocks of this many px
STEPS = 8  # Gauss-Newton steps per level
TEMPORAL_SPREAD = 0.04  # grey spread over the clip (median absolute deviation) at which a band pixel weighs half
ROBUST = 2.0  # Cauchy scale of a pixel's residual, in the frame's median absolute residuals
PLAUSIBLE = (0.06, 0.06, 0.25, 0.25)  # how far (scale, rotation in radians, shift in eye-corner distances) the
# landmark fit can miss the outline: a frame's weight falls as exp(-|warp / PLAUSIBLE|^2 / 2). Further is a failed
# alignment (a background that changed behind the head, a hand), not the landmarks' error


def head_crop(rgb: np.ndarray, face: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grey uint8 [CROP, CROP] block means over the square around one face's head (landmarks [478, 3] px) and the
    square's box [3] (x0, y0, side px). Beyond the frame the border pixels repeat."""
    (r, l) = EYE_CORNERS[0][0], EYE_CORNERS[1][1]
    eyes = face[[r, l]]
    unit = float(np.linalg.norm(eyes[0] - eyes[1]))  # 3D: the same at any head turn
    up = face[10, :2] - face[152, :2]  # chin to forehead
    up = up / max(float(np.linalg.norm(up)), 1e-6)
    centre = eyes[:, :2].mean(0) + CROP_UP * unit * up
    side = max(CROP_SPAN * unit, 4.0)
    x0, y0 = centre - side / 2
    return grey_blocks(rgb, x0, y0, side, side, CROP), np.array([x0, y0, side], np.float32)


@lru_cache(maxsize=1)
def band() -> tuple[torch.Tensor, torch.Tensor]:
    """The plane's sample points [V, U, 2] (u, v; rows from the top) and the band's weights [V, U]: off the face,
    inside the head's window."""
    (u0, u1, nu), (v0, v1, nv) = BAND
    v, u = torch.meshgrid(torch.linspace(v1, v0, nv), torch.linspace(u0, u1, nu), indexing="ij")
    points = torch.stack([u, v], -1)
    face = load_canonical().shape[:468, :2].numpy()
    centre = face.mean(0)
    off_face = Delaunay(centre + FACE_DILATE * (face - centre)).find_simplex(points.reshape(-1, 2).numpy()) < 0
    width, height, fade = HEAD
    r = ((u / width) ** 2 + (v / height) ** 2).sqrt()
    window = 1 - ((r - 1) / fade).clamp(0, 1)
    return points, torch.from_numpy(off_face).reshape(nv, nu).float() * window


def plane_to_image(rotation, translation, scale, warps: torch.Tensor, plane: torch.Tensor) -> torch.Tensor:
    """Image points [T, N, 3] of template plane points [N, 2] (u, v at OUTLINE_DEPTH) through each frame's warp
    [T, 2, 3] and pose [T] (as in `reenact.structures.HeadPose`)."""
    moved = plane @ warps[:, :, :2].transpose(1, 2) + warps[:, None, :, 2]
    p = torch.cat([moved, torch.full_like(moved[..., :1], OUTLINE_DEPTH)], -1)
    return scale[:, None, None] * p @ rotation.transpose(1, 2) + translation[:, None]


def _crop_affine(boxes: torch.Tensor, rotation, translation, scale, warps: torch.Tensor) -> torch.Tensor:
    """Affines [T, 2, 3] from template plane points (u, v, 1) to each crop's grid_sample coordinates: the warp,
    then the pose's projection of the plane at OUTLINE_DEPTH, then the crop's box."""
    lin, offset = plane_affine(rotation, translation, scale, OUTLINE_DEPTH)
    to_image = torch.cat([lin @ warps[:, :, :2], lin @ warps[:, :, 2:] + offset[..., None]], -1)
    return torch.cat([to_image[:, :, :2], to_image[:, :, 2:] - boxes[:, :2, None]], -1) * (2 / boxes[:, 2:, None]) \
        - torch.tensor([0.0, 0.0, 1.0], dtype=warps.dtype)


def outline_samples(crops: torch.Tensor, boxes: torch.Tensor, rotation, translation, scale,
                    warps: torch.Tensor) -> torch.Tensor:
    """Grey values [T, V, U] of the crops [T, 1, c, c] (float, any c) at the band's points moved by the warps."""
    points, _ = band()
    affine = _crop_affine(boxes, rotation, translation, scale, warps)
    homogeneous = torch.cat([points, torch.ones_like(points[..., :1])], -1).to(affine)  # [V, U, 3]
    grid = torch.einsum("vuk,tjk->tvuj", homogeneous, affine)
    return F.grid_sample(crops, grid, mode="bilinear", padding_mode="border", align_corners=False)[:, 0]


def _steepest_descent(template: torch.Tensor) -> torch.Tensor:
    """Template gradients times the similarity's Jacobian at identity, [V, U, 4] (params a, b, tx, ty)."""
    points, _ = band()
    (u0, u1, nu), (v0, v1, nv) = BAND
    g = kf.spatial_gradient(template[None, None], mode="diff", normalized=True)[0, 0]  # [2, V, U]: d/dcol, d/drow
    gu = g[0] / ((u1 - u0) / (nu - 1))
    gv = -g[1] / ((v1 - v0) / (nv - 1))  # rows run down, v up
    u, v = points[..., 0].to(template), points[..., 1].to(template)
    return torch.stack([gu * u + gv * v, -gu * v + gv * u, gu, gv], -1)


def _similarity(p: torch.Tensor) -> torch.Tensor:
    """2 x 3 warps [T, 2, 3] of similarity parameters [T, 4]: x -> [[1 + a, -b], [b, 1 + a]] x + (tx, ty)."""
    a, b, tx, ty = p.unbind(-1)
    return torch.stack([torch.stack([1 + a, -b, tx], -1), torch.stack([b, 1 + a, ty], -1)], -2)


def _parameters(w: torch.Tensor) -> torch.Tensor:
    """Similarity parameters [T, 4] of warps [T, 2, 3] (inverse of `_similarity`)."""
    return torch.stack([w[:, 0, 0] - 1, w[:, 1, 0], w[:, 0, 2], w[:, 1, 2]], -1)


def _compose(w: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """w after v: (w o v)(x) = w(v(x)), warps [T, 2, 3]."""
    lin = w[:, :, :2] @ v[:, :, :2]
    return torch.cat([lin, (w[:, :, :2] @ v[:, :, 2:]) + w[:, :, 2:]], -1)


def _invert(w: torch.Tensor) -> torch.Tensor:
    """The inverse warps [T, 2, 3]."""
    lin = torch.linalg.inv(w[:, :, :2])
    return torch.cat([lin, -lin @ w[:, :, 2:]], -1)


def align_outlines(crops: torch.Tensor, boxes: torch.Tensor, usable: torch.Tensor, rotation: torch.Tensor,
                   translation: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per frame, where the outline lies on the plane of its pose: warps [T, 2, 3] (template plane point -> that
    frame's plane point; their median is the identity) and a confidence [T] in [0, 1] (0 where not `usable`).

    crops [T, C, C] uint8 and boxes [T, 3] from `head_crop`; poses as in `reenact.structures.HeadPose`."""
    dtype = torch.float32
    rotation, translation, scale = rotation.to(dtype), translation.to(dtype), scale.to(dtype)
    boxes = boxes.to(dtype)
    _, off_face = band()
    grey = crops.to(dtype)[:, None] / 255
    n = len(grey)
    still = warps = _similarity(torch.zeros(n, 4, dtype=dtype))
    use = usable.to(dtype)
    for block in LEVELS:
        level = F.avg_pool2d(grey, block) if block > 1 else grey
        posed = outline_samples(level, boxes, rotation, translation, scale, still)[usable]
        template = posed.median(0).values
        spread = (posed - template).abs().median(0).values
        weight = off_face / (1 + (spread / TEMPORAL_SPREAD) ** 2)
        samples = outline_samples(level, boxes, rotation, translation, scale, warps)
        sd = _steepest_descent(template).flatten(0, 1)  # [P, 4]
        outer = (sd[:, :, None] * sd[:, None]).flatten(1)  # [P, 16]
        for _ in range(STEPS):
            error = (samples - template).flatten(1)  # [T, P]
            mad = error.abs() @ weight.flatten() / weight.sum() + 1e-4
            w = weight.flatten() / (1 + (error / (ROBUST * mad[:, None])) ** 2)  # [T, P]
            hessian = (w @ outer).view(n, 4, 4) + 1e-6 * torch.eye(4, dtype=dtype)
            step = torch.linalg.solve(hessian, (w * error) @ sd)
            warps = _compose(warps, _invert(_similarity(step)))
            samples = outline_samples(level, boxes, rotation, translation, scale, warps)
        residual = (((samples - template).abs() * weight).flatten(1).sum(1) / weight.sum())
    centre = warps[usable].median(0).values
    warps = _compose(warps, _invert(_similarity(_parameters(centre[None]))))
    typical = residual[usable].median().clamp_min(1e-4)
    plausible = torch.exp(-(_parameters(warps) / torch.tensor(PLAUSIBLE, dtype=dtype)).square().sum(-1) / 2)
    confidence = use * plausible / (1 + (residual / (2 * typical)) ** 2)
    return warps, confidence
