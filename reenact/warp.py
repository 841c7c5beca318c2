"""Render stage (default, no weights): a mesh-driven dense warp of the source crop.

For each target frame we build a backward map (target pixel -> where to read in the source crop):
1. Inside the face mesh: barycentric rasterization of the target mesh (nearest triangle wins, so a
   turning head occludes itself correctly); each pixel reads the same barycentric point of the source
   mesh. The eye holes are closed by fans from the iris centres, so gaze follows the driver; an upper lid that
   closes further than the source's reads further up the source's lid (the skin its fold hides), not its lashes
   stretched. This mesh map is a component (`LandmarkMeshMap`); `DenseMeshMap` rasterizes a finer surface (the
   ICT model's face, `reenact.dense_face`) in front of the landmark mesh: it decides wherever it covers, and the
   landmark mesh with its eye and mouth fans shows through its eye and mouth openings and fills the rest of the
   face outline.
2. Outside: the head's motion at the depth of its outline (hair, ears), plus the face's own motion beyond it
   where the mesh ends (read at the mesh's visible edge, so the two meet without a seam), carried out and faded
   over a band at least as wide as that difference needs never to fold; applied inside an ellipse around the head
   that covers hair, ears and neck and fades to zero beyond it and at the crop border (the body below the neck
   stays, as it would on a turning neck).
3. Background (person segmentation): a pixel that was background stays the source's own unless its read lands
   on the person (the head moved over it), so straight lines behind a turning head stay straight; a pixel the
   head uncovers shows the background plate (the source with the person filled in from the background around
   it), not a smear of hair or a displaced copy of the background. Pixels read from less than `STILL` away stay
   the source's.
4. The mouth hole (a fan from the inner-lip centre) reads the driving frame's mouth, colour-matched to
   the source lips, weighted by how much wider the target mouth opens than the source's: an opening up to
   `STRETCH[0]` times the source's shows the source's own interior stretched (an open source mouth keeps its own
   teeth), the fill fades in up to `STRETCH[1]`.
Maps are built at `raster_scale` of the crop size and upsampled. The render holds the crop and its map;
`paste_frames` resamples the full source frame once through that map (no crop-and-paste double resampling).
Masks out: face region, mouth interior filled from the driver, valid (read from inside the source).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import kornia.filters as kf
import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import distance_transform_edt

from reenact.backdrop import Backdrop
from reenact.canonical import (EYE_CORNERS, EYELIDS, IRIS_CENTRES, LIPS, UPPER_LID_RINGS, lid_gaps,
                               load_canonical)
from reenact.crop import apply_affine, pixels_to_grid
from reenact.geometry import plane_affine
from reenact.inputs import frames_to_tensor, tensor_to_frames
from reenact.raster import face_mask, interpolate, rasterize
from reenact.structures import Crop, HeadPose, Record, Rendered

MOUTH_MARGIN = 2  # map pixels around the mouth holes (and closing lids): bilinear upsampling spreads a fill by one
LID_UNFOLD = (1.0, 0.75)  # a closing upper lid reads its unfolded skin in proportion to this times the share of
# the source's gap that closes (x2, saturating from half closed on, showed partial blinks as whole ones to the dlib
# observer: eye correlation 0.59 instead of 0.69 on obama + d3, 0.37 instead of 0.76 on s9 + vs32), and its margin
# then reads this far up toward the next ring (the rest of the lash band stays, as the closed lid's lash line)
LID_SKIN = 0.65  # a closed upper lid's brightness, of the face's skin (nose, cheeks, forehead): 0.6-0.7 on d3
SLIT = (0.5, 0.8)  # lid closure (`_lid_closure`) over which what still shows of the eyeball turns to lashes
LID_MARGIN = 0.2  # an eye fan's centre (the iris centre) stays this fraction of the lid gap inside the lids
STRETCH = (1.25, 2.0)  # target / source mouth-hole area over which the driver's mouth fill fades in
CLOSED_MOUTH = (0.04, 0.01)  # source mouth-hole area (eye-corner distances squared) below which its lips count
# as closed (fully at the second), so a newly opened mouth is painted (not stretched from a closed line)
SHADE = (0.6, 0.3)  # a painted mouth's brightness, of the lips': at its rim, and darker by this much deep inside
MOUTH_DEPTH_BLUR = (9, 2.0)  # map px (kernel, sigma): how far inside the mouth hole the shade deepens
FACE_EDGE_BLUR = (7, 1.5)  # map px (kernel, sigma): the face map blends into the field over this rim
MIN_MAP = 8  # px: the smallest map and field grids
TEETH_GAIN = (0.8, 1.25)  # brightness gain range of the driver's mouth (more saturates yellowish teeth)


@dataclass(frozen=True)
class WarpConfig:
    raster_scale: float = 0.5  # maps are computed at this fraction of the crop size, then upsampled
    head_width: float = 1.6  # head ellipse half-width, in outer eye-corner distances
    head_up: float = 2.2  # ... its extent above the eyes (hair)
    head_down: float = 1.5  # ... and below the eyes (chin 1.3, then the neck; the body below it stays) ...
    head_down_still: float = 1.2  # ... while the head stays near the source's place (see NECK_TRAVEL): the collar stays
    falloff: float = 0.4  # relative ellipse radius over which the motion fades to zero
    field_sigma: float = 0.2  # Gaussian radius over which the face rim's motion is averaged, in eye-corner distances
    rim_fade: float = 0.5  # eye-corner distances beyond the face rim over which its own motion hands over to the
    # head's (wider where the two differ more, see STRETCH_BAND)
    outline_depth: float = -1.0  # head-frame depth of hair, ears and neck (eye-corner distances; nose tip +0.49):
    # a head's outline turns with the skull's centre, about one eye-corner distance behind the eyes
    mouth_fill: bool = True  # fill a newly opened mouth from the driving frame
    mesh: Literal["auto", "landmarks", "dense"] = "auto"  # mesh map surface; auto: dense with the ICT face model


def _smoothstep(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0, 1)
    return x * x * (3 - 2 * x)


def _with_mouth_centre(verts: torch.Tensor) -> torch.Tensor:
    """Landmarks [..., 479, 3]: the iris centres held between the lids (`_iris_between_lids`) and the inner-lip
    centre appended, the hole fans' centres."""
    loop = load_canonical().mouth_loop
    verts = _iris_between_lids(verts[..., :478, :])
    return torch.cat([verts, verts[..., loop, :].mean(-2, keepdim=True)], -2)


def _iris_between_lids(verts: torch.Tensor) -> torch.Tensor:
    """Landmarks [..., 478, 3] with each iris centre moved, across the eye, to lie between its lids (at most
    LID_MARGIN of their gap from either). The eye fans open from the iris centre, so a centre left at the pupil
    while the lids close would hold the fan, and the source's open eye, open: a blink would not show."""
    iris, lids, corners = (torch.tensor(x, device=verts.device) for x in (IRIS_CENTRES, EYELIDS, EYE_CORNERS))
    along = verts[..., corners[:, 1], :2] - verts[..., corners[:, 0], :2]
    across = F.normalize(torch.stack([-along[..., 1], along[..., 0]], -1), dim=-1)
    mid = verts[..., corners, :2].mean(-2)

    def height(points):
        return ((points - mid) * across).sum(-1)

    upper, lower = height(verts[..., lids[:, 0], :2]), height(verts[..., lids[:, 1], :2])
    centre = height(verts[..., iris, :2])
    lo, hi = torch.minimum(upper, lower), torch.maximum(upper, lower)
    margin = LID_MARGIN * (hi - lo)
    held = torch.minimum(torch.maximum(centre, lo + margin), hi - margin)
    moved = verts[..., iris, :2] + (held - centre)[..., None] * across
    out = verts.clone()
    out[..., iris, :2] = moved
    return out


def _lid_gaps(verts: torch.Tensor) -> torch.Tensor:
    """Each eye's image-plane lid gap [..., 2] over its corner distance, of landmarks [..., 478+, 2+]."""
    corners = torch.tensor(EYE_CORNERS, device=verts.device)
    width = (verts[..., corners[:, 0], :2] - verts[..., corners[:, 1], :2]).norm(dim=-1)
    return lid_gaps(verts[..., :2]) / width.clamp_min(1e-6)


@lru_cache(maxsize=1)
def _upper_lid_rings() -> torch.Tensor:
    """[2 eyes, 3 rings, 7] landmark indices of the upper lids' margin, the ring above it and the next."""
    right = torch.tensor(UPPER_LID_RINGS)
    return torch.stack([right, load_canonical().mirror[right]])


def _lid_unfolding(src: torch.Tensor) -> torch.Tensor:
    """How far each source landmark [479, 2+] moves [2 eyes, 479, 2] when that eye's upper lid is fully unfolded
    (see `_lid_closure`): its margin LID_UNFOLD[1] of the way to the ring above it, that ring half as far toward the
    crease."""
    rings = _upper_lid_rings().to(src.device)
    margin, above, crease = (src[rings[:, k], :2] for k in range(3))  # [2, 7, 2]
    eye = torch.arange(2, device=src.device)[:, None]
    shift = torch.zeros(2, len(src), 2, device=src.device)
    shift[eye, rings[:, 0]] = LID_UNFOLD[1] * (above - margin)
    shift[eye, rings[:, 1]] = LID_UNFOLD[1] / 2 * (crease - above)
    return shift


def _carried(points: torch.Tensor, verts: torch.Tensor, faces: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Values [E, V, C] of a mesh's vertices verts [V, 2+] (triangles faces [F, 3]) at points [P, 2]: [E, P, C],
    barycentric within the triangle that holds a point, 0 outside the triangles where any value is non-zero."""
    faces = faces[values.abs().amax((0, 2))[faces].any(1)]
    a, b, c = (verts[faces[:, k], :2] for k in range(3))  # [F, 2]
    u, v, w = b - a, c - a, points[:, None, :2] - a  # w [P, F, 2]
    det = u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]
    l1 = (w[..., 0] * v[:, 1] - w[..., 1] * v[:, 0]) / det
    l2 = (u[:, 0] * w[..., 1] - u[:, 1] * w[..., 0]) / det
    bary = torch.stack([1 - l1 - l2, l1, l2], -1)  # [P, F, 3]
    inside = (bary >= -1e-6).all(-1)
    first = inside.float().argmax(1)  # [P]: the first triangle that holds each point
    held = inside.any(1)[:, None]
    weights = bary[torch.arange(len(points), device=points.device), first] * held  # [P, 3]
    corners = values[:, faces[first]]  # [E, P, 3, C]
    return (corners * weights[None, ..., None]).sum(2)


def _lid_closure(src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    """How far [N, 2] each target eye's upper lid (meshes [N, 479, 2+]) reads up its source lid (landmarks
    [479, 2+]), 0 to 1, growing with the share of the source's lid gap that closes (LID_UNFOLD[0] times it). A
    closing lid unfolds skin that the source's open eye hides in its fold; read as it is, the lashes and the crease
    over them stretch into a dark smear where the skin of the closed lid should be."""
    return (LID_UNFOLD[0] * (1 - _lid_gaps(tgt) / _lid_gaps(src))).clamp(0, 1)


def _polygon_area(pts: torch.Tensor) -> torch.Tensor:
    x, y = pts[..., 0], pts[..., 1]
    return 0.5 * (x * y.roll(-1, -1) - x.roll(-1, -1) * y).sum(-1).abs()


def _signed_areas(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Twice the signed image-plane areas [B, F] of triangles faces [F, 3] over vertices [B, V, 2+]."""
    a, b, c = (verts[:, faces[:, k], :2] for k in range(3))
    u, v = b - a, c - a
    return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]


def _affine_fit(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Least-squares 2D affine [B, 3, 2] with [x, y, 1] @ A ~ dst, from points [B, N, 2]."""
    ones = torch.ones_like(src[..., :1])
    return torch.linalg.lstsq(torch.cat([src, ones], -1).double(), dst.double()).solution.to(src)


def _apply(affine: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
    """Affines [B, 3, 2] applied to points [B, ..., 2]."""
    homog = torch.cat([pts, torch.ones_like(pts[..., :1])], -1)
    return (homog.reshape(len(pts), -1, 3) @ affine).reshape(pts.shape)


def _pixel_centres(h: int, w: int, scale: float, device) -> torch.Tensor:
    """Crop-pixel coordinates [h, w, 2] of the centres of an h x w grid covering the crop."""
    return pixel_grid(h, w, device).permute(1, 2, 0) / scale


def _rim_field(values: torch.Tensor, weight: torch.Tensor, sigma: torch.Tensor, reach: float) -> torch.Tensor:
    """Normalised Gaussian smoothing of values [B, g, g, 2] weighted by weight [B, g, g] (0 where unknown): their
    weighted average around each grid pixel (radius sigma [B] grid px) up to `reach` grid px from the known ones, 0
    beyond (within float range to about 6 sigma)."""
    num = torch.cat([values * weight[..., None], weight[..., None]], -1).permute(0, 3, 1, 2)
    radius = int(reach) + 1
    num = kf.gaussian_blur2d(num, (2 * radius + 1, 2 * radius + 1), sigma[:, None].expand(-1, 2),
                             border_type="constant")
    return (num[:, :2] / num[:, 2:].clamp_min(1e-12)).permute(0, 2, 3, 1)


def _rim(covered: torch.Tensor, mesh_src: torch.Tensor, head: torch.Tensor, g: int,
         size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The face's own motion beyond the head's where the mesh ends, per pixel of a g x g grid over the crop: the
    mean residual [N, g, g, 2] (where the mesh reads the source, mesh_src [N, r, r, 2], minus where the head's
    motion `head` [N, 3, 2] reads it), the mean crop position [N, g, g, 2] of the edge pixels in each grid pixel and
    their count [N, g, g] (0: none). The edge: map pixels the mesh covers (covered [N, r, r]) beside one it does not
    (4-neighbours; the crop's border is no edge). Only the edge pixels are read, a few thousand per chunk."""
    n, r = covered.shape[:2]
    cov = covered > 0
    p = torch.ones(n, r + 2, r + 2, dtype=torch.bool, device=covered.device)
    p[:, 1:-1, 1:-1] = cov
    b, y, x = torch.nonzero(cov & ~(p[:, 1:-1, :-2] & p[:, 1:-1, 2:] & p[:, :-2, 1:-1] & p[:, 2:, 1:-1]), as_tuple=True)
    pos = (torch.stack([x, y], -1).float() + 0.5) * (size / r)
    moved = _apply(head[b], pos[:, None])[:, 0]  # each edge pixel through its own frame's affine
    cell = (b * g + y * g // r) * g + x * g // r
    values = torch.cat([mesh_src[b, y, x] - moved, pos, torch.ones_like(pos[:, :1])], -1)
    acc = torch.zeros(n * g * g, 5, device=covered.device).index_add_(0, cell, values).view(n, g, g, 5)
    count = acc[..., 4]
    mean = acc[..., :4] / count[..., None].clamp_min(1)
    return mean[..., :2], mean[..., 2:], count


def _distance_to_known(centres: torch.Tensor, known: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
    """Distance [B, g, g] from each grid pixel's centre (centres [g, g, 2]) to the point `at` [B, g, g, 2] of the
    nearest grid pixel where known [B, g, g] (inf in a frame with none). The nearest one by an exact Euclidean
    distance transform of each frame's grid (scipy, on the CPU: O(g^2), where distances to every known point
    would take O(g^3) memory)."""
    b, g = known.shape[:2]
    flat = torch.arange(b * g * g, device=known.device).view(b, g, g)  # itself, where a frame knows nothing
    for i, frame in enumerate(known.cpu().numpy()):
        if frame.any():
            y, x = distance_transform_edt(~frame, return_distances=False, return_indices=True)
            flat[i] = torch.from_numpy((i * g + y) * g + x).to(known.device)
    d = centres[None] - at.reshape(-1, 2)[flat.flatten()].view(b, g, g, 2)
    return torch.hypot(d[..., 0], d[..., 1]).masked_fill(~known.flatten(1).any(1)[:, None, None], float("inf"))


STILL = 1.0  # px: a pixel read from less than this far blends toward the unmoved source, so static pixels stay exact
STRETCH_BAND = 0.6  # the head motion's fade is at least the rim's travel / this wide (see _head_alpha)
BORDER = 0.06  # fraction of the crop size over which the motion fades to zero at the crop's edge
NECK_TRAVEL = 0.3  # eye-corner distances the head's rim travels by which its motion reaches down `head_down` (from
# `head_down_still`): a head that barely moves leaves the collar in place, one that travels far stretches the neck


def pixel_grid(h: int, w: int, device, origin: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Pixel-centre coordinates [2, h, w] (x, y) of an h x w window whose top-left pixel is `origin` (y, x)."""
    ys, xs = torch.meshgrid(torch.arange(h, device=device) + origin[0] + 0.5,
                            torch.arange(w, device=device) + origin[1] + 0.5, indexing="ij")
    return torch.stack([xs, ys]).float()


def resample(backdrop: Backdrop, shift: torch.Tensor, origin: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Images [N, 3, h, w] of a window (top-left pixel `origin`) of the backdrop's grid whose pixels read the
    source `shift` [N, 2, h, w] px away. Where the read lands on the person, it shows (the head moved there);
    elsewhere a pixel that was background stays the source's own (the background never bends), and one that was
    person (now uncovered) shows the backdrop's plate, the background behind it."""
    n, _, h, w = shift.shape
    y0, x0 = origin
    size = backdrop.image.shape[-2:]
    at = pixels_to_grid(pixel_grid(h, w, shift.device, origin).permute(1, 2, 0), size)
    scale = pixels_to_grid(torch.ones(2, device=shift.device), size) + 1
    grid = torch.addcmul(at, shift.permute(0, 2, 3, 1), scale)  # one pass: the read's grid_sample coordinates
    sampled = F.grid_sample(backdrop.layers[None].expand(n, -1, -1, -1), grid, mode="bilinear",
                            padding_mode="border", align_corners=False)
    moved, person = sampled[:, :3], sampled[:, 3:]
    base = backdrop.image[None, :, y0:y0 + h, x0:x0 + w]
    was_person = backdrop.fringe[None, :, y0:y0 + h, x0:x0 + w]
    behind = torch.lerp(base, backdrop.plate[None, :, y0:y0 + h, x0:x0 + w], was_person)
    still = torch.hypot(shift[:, 0], shift[:, 1])[:, None]  # 50x faster on CPU than norm over the channel dim
    still = still.div_(-STILL).add_(1).clamp_(0, 1)  # 1 where the read does not move, 0 from STILL px on
    # the moved pixel where the read lands on the person, else what lies behind (the plate where the pixel was
    # person, the source's own elsewhere); the source's own where the read barely moves. In place on the fresh
    # sample, broadcasting the backdrop: 5-10x faster than lerps of expanded tensors into new ones
    return moved.lerp_(behind, 1 - person).lerp_(base, still)


@dataclass(frozen=True)
class WarpMap(Record):
    """One chunk of warp maps: where each crop pixel reads the source, the mouth fill and the lid shade.

    The fill lives in a window of the crop (`mouth_origin`, y x crop px) around the chunk's mouth holes, so the
    rest of the crop costs nothing; `mouth` is None where no frame of the chunk fills its mouth. The same for the
    shade of closing lids (`lids`, in a window at `lids_origin` around the eyes)."""

    start: int
    read: torch.Tensor  # [N, r, r, 2] where each map pixel reads the source crop (crop px)
    covered: torch.Tensor  # [N, r, r] float: the target face mesh covers the map pixel
    mouth: torch.Tensor | None = None  # [N, 1, h, w] weight of the mouth fill in the window
    fill: torch.Tensor | None = None  # [N, 3, h, w] its colours in [0, 1]
    mouth_origin: tuple[int, int] = (0, 0)
    lids: torch.Tensor | None = None  # [N, 3, h, w] colour added to the closing lids' pixels in their window
    lids_origin: tuple[int, int] = (0, 0)

    def __len__(self) -> int:
        return len(self.read)


def _sample_window(maps: torch.Tensor, size: int, origin: tuple[int, int], shape: tuple[int, int]) -> torch.Tensor:
    """Maps [N, C, r, r] over the whole size^2 crop, bilinearly at the pixels of a crop window [N, C, h, w]
    (equal to upsampling them to the crop and cutting the window out)."""
    grid = pixels_to_grid(pixel_grid(*shape, maps.device, origin).permute(1, 2, 0), (size, size))
    return F.grid_sample(maps, grid[None].expand(len(maps), -1, -1, -1), mode="bilinear", padding_mode="border",
                         align_corners=False)


def _shift(m: WarpMap, size: int) -> torch.Tensor:
    """The map's read offsets [N, 2, r, r] (crop px)."""
    r = m.read.shape[1]
    return m.read.permute(0, 3, 1, 2) - pixel_grid(r, r, m.read.device) * (size / r)


def crop_images(backdrop: Backdrop, inside: torch.Tensor, m: WarpMap) -> Rendered:
    """The rendered crops of warp maps: the source crop `backdrop` resampled through them, the mouth fill blended
    in; `inside` [1, S, S]: crop pixels that lie inside the source image."""
    s = backdrop.image.shape[-1]

    def up(x):
        return F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False)

    image = resample(backdrop, up(_shift(m, s)))
    grid = pixels_to_grid(up(m.read.permute(0, 3, 1, 2)).permute(0, 2, 3, 1), (s, s))
    valid = F.grid_sample(inside[None].expand(len(m), -1, -1, -1), grid, mode="bilinear", padding_mode="border",
                          align_corners=False)
    mouth = torch.zeros_like(valid)
    if m.lids is not None:
        (y0, x0), (h, w) = m.lids_origin, m.lids.shape[-2:]
        image[..., y0:y0 + h, x0:x0 + w] += m.lids
    if m.mouth is not None:
        (y0, x0), (h, w) = m.mouth_origin, m.mouth.shape[-2:]
        mouth[..., y0:y0 + h, x0:x0 + w] = m.mouth
        image[..., y0:y0 + h, x0:x0 + w] = torch.lerp(image[..., y0:y0 + h, x0:x0 + w], m.fill, m.mouth)
    return Rendered(m.start, image.clamp(0, 1), up(m.covered[:, None]), valid * (1 - mouth), mouth)


def _footprint(crop: Crop, box: tuple[float, float, float, float], shape) -> tuple[int, int, int, int]:
    """Image pixel bounds (x0, y0, x1, y1), clipped to the image `shape` (h, w), of a crop px box (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    corners = torch.tensor([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], dtype=torch.float32)
    foot = apply_affine(crop.image_from_crop, corners)
    x0, y0 = (int(v) for v in foot.min(0).values.floor().clamp_min(0).tolist())
    return x0, y0, int(foot[:, 0].max().ceil().clamp_max(shape[1])), int(foot[:, 1].max().ceil().clamp_max(shape[0]))


def _crop_points(crop: Crop, bounds: tuple[int, int, int, int], device) -> torch.Tensor:
    """Crop px [2, h, w] of the image pixels within bounds (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = bounds
    a = crop.crop_from_image.to(device)
    return torch.einsum("ij,jhw->ihw", a[:, :2], pixel_grid(y1 - y0, x1 - x0, device, (y0, x0))) + a[:, 2, None, None]


def _moving_box(m: WarpMap, size: int) -> tuple[int, int, int, int] | None:
    """Crop px box (x0, y0, x1, y1) outside which no map of the chunk moves a pixel (None: none moves anywhere)."""
    r = m.read.shape[1]
    moving = _shift(m, size).abs().amax((0, 1)) > 0  # [r, r]; exactly 0 beyond the head ellipse's falloff
    if not bool(moving.any()):
        return None
    rows, cols = (torch.nonzero(moving.any(k)).flatten() for k in (1, 0))
    k = size / r  # one map pixel more on each side: upsampling spreads the shift that far
    return (max(0, int((int(cols[0]) - 1) * k)), max(0, int((int(rows[0]) - 1) * k)),
            min(size, math.ceil((int(cols[-1]) + 2) * k)), min(size, math.ceil((int(rows[-1]) + 2) * k)))


def _window_in_frame(crop: Crop, origin: tuple[int, int], maps: torch.Tensor, shape) -> tuple:
    """Maps [N, C, h, w] over a crop window (top-left crop px `origin`, y x) resampled at the image pixels of its
    footprint: the footprint's bounds (x0, y0, x1, y1) in an image of `shape` (h, w) and the maps there [N, C, ...],
    None where the window lies outside the image."""
    (my, mx), (mh, mw) = origin, maps.shape[-2:]
    box = u0, v0, u1, v1 = _footprint(crop, (mx, my, mx + mw, my + mh), shape)
    if u1 <= u0 or v1 <= v0:
        return box, None
    at = _crop_points(crop, box, maps.device) - torch.tensor([mx, my], device=maps.device)[:, None, None]
    grid = pixels_to_grid(at.permute(1, 2, 0), (mh, mw))[None].expand(len(maps), -1, -1, -1)
    return box, F.grid_sample(maps, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def paste_frames(backdrop: Backdrop, m: WarpMap, crop: Crop, rgb: np.ndarray | None = None) -> np.ndarray:
    """Output frames (uint8 RGB [N, H, W, 3]) of warp maps: the source frame resampled once through them (no
    crop-and-paste double resampling), the lid shade and mouth fill pasted from their windows. Only the image box
    where a map moves anything is resampled (outside it the frame is the source's own, bit for bit), and the rest
    of the frame stays in uint8; `rgb`: the backdrop's image in uint8 [H, W, 3], when the caller keeps it."""
    n, size = len(m), crop.size
    h, w = backdrop.image.shape[-2:]
    device = m.read.device
    frames = np.repeat((tensor_to_frames(backdrop.image[None])[0] if rgb is None else rgb)[None], n, 0)
    box = _moving_box(m, size)
    x0, y0, x1, y1 = bounds = (0, 0, 0, 0) if box is None else _footprint(crop, box, (h, w))
    if x1 > x0 and y1 > y0:
        inside = _crop_points(crop, bounds, device)
        grid = pixels_to_grid(inside.permute(1, 2, 0), (size, size))[None].expand(n, -1, -1, -1)
        shift = F.grid_sample(_shift(m, size), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        edge = torch.minimum(inside, size - inside).amin(0) / size
        shift = shift * _smoothstep(edge / BORDER)
        shift = torch.einsum("ij,njhw->nihw", crop.image_from_crop[:, :2].to(device), shift)  # crop px -> image px
        frames[:, y0:y1, x0:x1] = tensor_to_frames(resample(backdrop, shift, (y0, x0)))
    if m.lids is not None:
        box, lift = _window_in_frame(crop, m.lids_origin, m.lids, (h, w))
        if lift is not None:
            u0, v0, u1, v1 = box
            frames[:, v0:v1, u0:u1] = tensor_to_frames(frames_to_tensor(frames[:, v0:v1, u0:u1]).to(device) + lift)
    if m.mouth is not None:
        box, mouth = _window_in_frame(crop, m.mouth_origin, torch.cat([m.fill, m.mouth], 1), (h, w))
        if mouth is not None:
            u0, v0, u1, v1 = box
            region = frames_to_tensor(frames[:, v0:v1, u0:u1]).to(device)
            frames[:, v0:v1, u0:u1] = tensor_to_frames(torch.lerp(region, mouth[:, :3], mouth[:, 3:] ** 2))
    return frames


class LandmarkMeshMap:
    """Step 1 over the landmark mesh, its eye and mouth holes closed by fans: at raster size r, the target mesh's
    coverage, its mouth fan, and per pixel the same surface point in the source crop and the driving frame."""

    def __init__(self, source_verts: torch.Tensor):
        """source_verts [478, 3]: the source's landmarks, crop px."""
        face = load_canonical()
        eyes, mouth = face.hole_fans()
        device = source_verts.device
        self.faces = torch.cat([face.triangles, eyes, mouth]).to(device)
        self.mouth_faces = torch.arange(len(self.faces), device=device) >= len(self.faces) - len(mouth)
        self.src_verts = _with_mouth_centre(source_verts)
        self.unfolding = _lid_unfolding(self.src_verts)

    def _source_points(self, closure: torch.Tensor) -> torch.Tensor:
        """Where target meshes read the source [N, 479, 2]: the source's landmarks, each eye's upper lid further up
        the lid by its closure [N, 2] (`_lid_closure`)."""
        return self.src_verts[None, :, :2] + torch.einsum("ne,evc->nvc", closure, self.unfolding)

    def __call__(self, tgt: torch.Tensor, drv: torch.Tensor, dense_verts: torch.Tensor | None, r: int, size: int):
        """Coverage [N, r, r] of target meshes tgt [N, 479, 3] (crop px, with the mouth centre) over a size^2 crop,
        their mouth fans [N, r, r] (bool), and per pixel the source and driving points [N, r, r, 4] (crop px,
        driving px, from the driving meshes drv) of the same surface point; `dense_verts`: the dense surface's
        target vertices [N, V, 3] exactly when this map has one."""
        if dense_verts is not None:
            raise ValueError("a landmark mesh map takes no dense_verts")
        attrs = torch.cat([self._source_points(_lid_closure(self.src_verts, tgt)), drv[..., :2]], -1)
        return self._raster(tgt, self.faces, self.mouth_faces, attrs, r, size)

    @staticmethod
    def _raster(verts, faces, mouth_faces, attrs, r: int, size: int):
        frags = rasterize(verts * (r / size), faces, r, r)
        return (frags.pix_to_face >= 0).float(), face_mask(frags, mouth_faces), interpolate(frags, attrs)


class DenseMeshMap(LandmarkMeshMap):
    """Step 1 through a finer face surface (the ICT model's, `reenact.dense_face`) rasterized in front of the
    landmark mesh: it decides wherever it covers, and the landmark mesh with its fans shows through its eye and
    mouth openings and fills the rest of the face outline."""

    def __init__(self, source_verts: torch.Tensor, faces: torch.Tensor, source: torch.Tensor):
        """source_verts [478, 3]: the surface's landmarks; faces [F, 3] int64 over its vertices, source [V, 3]:
        where they lie in the source (crop px)."""
        super().__init__(source_verts)
        self.dense_faces, self.source = faces.to(source.device), source
        # the winding of the dense triangles that face the camera (most of them, in the source)
        self.front = torch.sign(_signed_areas(source[None], self.dense_faces).sum())
        # one mesh: the dense triangles over unshared corners (so that each frame can drop its own), then the
        # landmark mesh; the corners' source positions
        corners = torch.arange(3 * len(faces), device=source.device).view(-1, 3)
        self.all_faces = torch.cat([corners, self.faces + corners.numel()])
        self.all_mouth = torch.cat([torch.zeros(len(corners), dtype=torch.bool, device=source.device),
                                    self.mouth_faces])
        self.corner_src = source[self.dense_faces.flatten(), :2]
        self.corner_unfolding = _carried(source, self.src_verts, self.faces,
                                         self.unfolding)[:, self.dense_faces.flatten()]  # [2, 3F, 2]

    def __call__(self, tgt: torch.Tensor, drv: torch.Tensor, dense_verts: torch.Tensor | None, r: int, size: int):
        """As the landmark map's, the dense surface's target vertices given. A frame's dense triangles that face
        away from the camera (the far side of the nose, a lid's fold) are dropped (non-finite corners, which the
        rasterizer skips): the surface's front hides them, except at a fold, where they would show the texture of
        the wrong side. The landmark mesh is pushed behind all of the surface in depth; the dense corners' driving
        attribute is unused (no mouth fan there)."""
        if dense_verts is None:
            raise ValueError("a dense mesh map needs the surface's target vertices (dense_verts)")
        away = _signed_areas(dense_verts, self.dense_faces) * self.front <= 0
        corners = dense_verts[:, self.dense_faces.flatten()].masked_fill(away.repeat_interleave(3, 1)[..., None],
                                                                          float("nan"))
        behind = (dense_verts[..., 2].amax(1) - tgt[..., 2].amin(1)).clamp_min(0) + 1
        verts = torch.cat([corners, tgt + F.pad(behind[:, None, None], (2, 0))], 1)
        closure = _lid_closure(self.src_verts, tgt)
        src = self.corner_src + torch.einsum("ne,epc->npc", closure, self.corner_unfolding)
        landmarks = torch.cat([self._source_points(closure), drv[..., :2]], -1)
        attrs = torch.cat([torch.cat([src, src], -1), landmarks], 1)
        return self._raster(verts, self.all_faces, self.all_mouth, attrs, r, size)


class WarpRenderer:
    """Warps one source crop to many target meshes; see the module docstring for the method."""

    def __init__(self, backdrop: Backdrop, mesh_map: LandmarkMeshMap, source_pose: HeadPose, inside: torch.Tensor,
                 cfg: WarpConfig = WarpConfig()):
        """backdrop: the source crop [3, S, S] in [0, 1] with its person mask; `mesh_map`: step 1 over the landmark
        mesh or a dense surface (on the backdrop's device); source_pose [1]: crop px; inside [1, S, S]: crop pixels
        that lie inside the source image."""
        source = backdrop.image
        face = load_canonical()
        self.size = source.shape[-1]
        self.backdrop = backdrop
        self.inside = inside
        self.mesh_map = mesh_map
        self.src_verts = mesh_map.src_verts
        self.source_pose = source_pose.select(slice(None), source.device)
        self.cfg = cfg
        self.skin = face.rigid.to(source.device)
        self.skin_mean = self._sample_at(source[None], self.src_verts[None, self.skin, :2], source.shape[-2:]).mean(-1)
        self.lip_mean = self._sample_at(source[None], self.src_verts[None, list(LIPS), :2],
                                        source.shape[-2:])[0].mean(-1)
        self.src_mouth_area = _polygon_area(self.src_verts[face.mouth_loop, :2])
        eye_dist = (self.src_verts[33, :2] - self.src_verts[263, :2]).norm()
        # how closed the source mouth is (1: closed lips; 0: open, its own interior is warped instead of painted)
        ajar, shut = CLOSED_MOUTH
        self.src_closed = float(((ajar - self.src_mouth_area / eye_dist**2) / (ajar - shut)).clamp(0, 1))
        self._grid: tuple = (None, None)
        self.eye_fans = face.hole_fans()[0].to(source.device).view(2, -1, 3)  # [2 eyes, K, 3]
        self.eye_points = torch.cat([_upper_lid_rings().to(source.device).flatten(), self.eye_fans.flatten()])
        self.lids = self._lid_zones(source, max(MIN_MAP, int(round(self.size * cfg.raster_scale))))
        margins = self.src_verts[None, _upper_lid_rings()[:, 0].flatten().to(source.device), :2]
        self.lash_colour = self._sample_at(source[None], margins, source.shape[-2:])[0].mean(-1)  # [3]

    def _lid_zones(self, source: torch.Tensor, r: int) -> torch.Tensor:
        """On the source crop's r x r map grid [7, r, r]: each eye's upper-lid skin (1 from the margin to the ring
        above it, fading to 0 at the crease ring: what a closing lid unfolds), each eye's opening (the eyeball the
        lids show) and the source's colours."""
        rings, fans = _upper_lid_rings().to(source.device), self.eye_fans  # [2 eyes, 3 rings, 7], [2 eyes, K, 3]
        i = torch.arange(rings.shape[-1] - 1, device=source.device)
        pts = self._centres(r).reshape(-1, 2)
        zones = torch.zeros(4, r * r, device=source.device)
        for eye, (margin, above, crease) in enumerate(rings):
            strip = torch.cat([torch.stack(corners, 1) for lo, hi in ((margin, above), (above, crease))
                               for corners in ((lo[i], lo[i + 1], hi[i]), (lo[i + 1], hi[i + 1], hi[i]))])
            lid = torch.zeros(1, len(self.src_verts), 1, device=source.device)
            lid[0, torch.cat([margin, above])] = 1
            box = self.src_verts[torch.cat([rings[eye].flatten(), fans[eye].flatten()]), :2]
            near = ((pts >= box.amin(0)) & (pts <= box.amax(0))).all(-1)  # the eye's box only: P x F stays small
            zones[eye, near] = _carried(pts[near], self.src_verts, strip, lid)[0, :, 0]
            zones[2 + eye, near] = _carried(pts[near], self.src_verts, fans[eye], torch.ones_like(lid))[0, :, 0]
        return torch.cat([zones.reshape(4, r, r), F.interpolate(source[None], size=(r, r), mode="area")[0]])

    @staticmethod
    def _sample_at(images: torch.Tensor, pts: torch.Tensor, size) -> torch.Tensor:
        """Bilinear colours [B, C, N] of images [B, C, H, W] at pixel points [B, N, 2]."""
        grid = pixels_to_grid(pts, size)[:, None]
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)[:, :, 0]

    def _head_alpha(self, pts: torch.Tensor, pose: HeadPose, head: torch.Tensor) -> torch.Tensor:
        """Weight [B, h, w] of the head motion: 1 inside the head ellipse, fading to 0 outside and at the crop edge.
        Below the eyes it reaches from `cfg.head_down_still` to `cfg.head_down` as the head travels (NECK_TRAVEL).
        The fade is at least `cfg.falloff` of the ellipse wide, and wider where the head's motion `head` (affines
        [B, 3, 2]) moves the ellipse's rim further, so that the motion changes by at most 1.5 * STRETCH_BAND px per
        px across it: the read never folds back, which would mirror what lies there (long hair, a shoulder) into a
        streak dragged after the head."""
        cfg = self.cfg
        ux = F.normalize(pose.rotation[:, :2, 0], dim=-1)
        uy = torch.stack([ux[:, 1], -ux[:, 0]], -1)  # head up in the image, perpendicular to the eye line
        turn = torch.linspace(0, 2 * math.pi, 17, device=pts.device)[:-1]
        half = torch.stack([cfg.head_width * turn.cos(), torch.where(turn.sin() > 0, cfg.head_up, cfg.head_down)
                            * turn.sin()], -1) * pose.scale[:, None, None]  # [B, 16, 2] rim, head-frame px
        rim = pose.translation[:, None, :2] + half[..., :1] * ux[:, None] + half[..., 1:] * uy[:, None]
        reach = (_apply(head, rim) - rim).norm(dim=-1).amax(-1)  # [B] px the rim moves
        band = torch.maximum(torch.full_like(reach, cfg.falloff),
                             reach / (STRETCH_BAND * pose.scale * min(cfg.head_width, cfg.head_up, cfg.head_down)))
        rel = pts[None] - pose.translation[:, None, None, :2]
        a = (rel * ux[:, None, None]).sum(-1) / (pose.scale[:, None, None] * cfg.head_width)
        b = (rel * uy[:, None, None]).sum(-1) / pose.scale[:, None, None]
        down = torch.lerp(torch.full_like(reach, cfg.head_down_still), torch.full_like(reach, cfg.head_down),
                          _smoothstep(reach / (NECK_TRAVEL * pose.scale)))
        b = torch.where(b > 0, b / cfg.head_up, b / down[:, None, None])
        r = (a * a + b * b).sqrt()
        alpha = 1 - _smoothstep((r - 1) / band[:, None, None])
        border = pts / self.size
        edge = torch.minimum(border, 1 - border).amin(-1)
        return alpha * _smoothstep(edge / BORDER)[None]

    def render(self, start: int, target_verts: torch.Tensor, target_pose: HeadPose,
               driving: torch.Tensor | None = None, driving_verts: torch.Tensor | None = None,
               dense_verts: torch.Tensor | None = None, readable: torch.Tensor | None = None) -> Rendered:
        """The rendered crops of `warp_map` (same arguments)."""
        return crop_images(self.backdrop, self.inside, self.warp_map(start, target_verts, target_pose, driving,
                                                                     driving_verts, dense_verts, readable))

    def warp_map(self, start: int, target_verts: torch.Tensor, target_pose: HeadPose,
                 driving: torch.Tensor | None = None, driving_verts: torch.Tensor | None = None,
                 dense_verts: torch.Tensor | None = None, readable: torch.Tensor | None = None) -> WarpMap:
        """Warp maps to target meshes [N, 478, 3] (crop px) whose poses (crop px) are `target_pose`.

        driving [N, 3, Hd, Wd] in [0, 1] and driving_verts [N, 478, 3] (driving px) feed the mouth fill, in the
        frames where `readable` [N] (default: all) says the driving frame shows the driver's mouth there (else it
        is shaded from the source's lips, like a motion without video); dense_verts [N, V, 3] (crop px) are the
        target dense surface, needed when the renderer has one.
        """
        r = max(MIN_MAP, int(round(self.size * self.cfg.raster_scale)))
        tgt = _with_mouth_centre(target_verts)
        drv = _with_mouth_centre(driving_verts) if driving_verts is not None else tgt
        covered, in_mouth, mesh_map = self.mesh_map(tgt, drv, dense_verts, r, self.size)
        read = self._read_map(tgt, target_pose, covered, mesh_map[..., :2], r)
        lids, lids_origin = self._lid_shade(tgt, read)
        weight = self._mouth_weight(tgt, in_mouth)
        if weight is None:
            return WarpMap(start, read, covered, lids=lids, lids_origin=lids_origin)
        origin, shape = self._mouth_window(in_mouth)

        def window(x):
            return _sample_window(x, self.size, origin, shape)

        mouth = window(weight[:, None])
        k, sigma = MOUTH_DEPTH_BLUR
        depth = window(kf.gaussian_blur2d(in_mouth[:, None].float(), (k, k), (sigma, sigma)))  # 1 deep inside
        fill, shaded = self.lip_mean[None, :, None, None] * (SHADE[0] - SHADE[1] * depth), mouth * self.src_closed
        if driving is not None and driving_verts is not None:
            read_it = (torch.ones(len(tgt), dtype=torch.bool, device=tgt.device) if readable is None
                       else readable.to(tgt.device))[:, None, None, None]
            if bool(read_it.any()):
                drv_fill = self._driver_mouth(tgt, driving, driving_verts, in_mouth, mesh_map[..., 2:], window)
                fill = torch.where(read_it, drv_fill, fill)
            shaded = torch.where(read_it, mouth, shaded)
        return WarpMap(start, read, covered, shaded, fill.expand(-1, 3, -1, -1).contiguous(), origin, lids, lids_origin)

    def _lid_shade(self, tgt: torch.Tensor, read: torch.Tensor) -> tuple[torch.Tensor | None, tuple[int, int]]:
        """Colour [N, 3, h, w] added to the crop pixels of a window around the eyes (top-left crop px (y, x)) that
        read a closing lid (`_lid_zones`), in proportion to how far it closes (`_lid_closure`); None where no lid
        of the chunk closes enough to change. Its skin: what takes the mean colour it shows to LID_SKIN of the
        face's skin colour, where darker (a lid in shadow, a deep-set eye or light from above, would close as a dark
        smear). The slit of eyeball a nearly closed eye still shows (the tracker leaves a closed eye's lids a few
        pixels apart, on the lashes; the read between them interpolates across the eye): what takes its mean colour
        to the source's lash line's (SLIT), so it reads as lashes, not a pale line. At the crop's resolution, since
        the slit is thinner than a map pixel. Added, not multiplied: a gain on shadowed skin saturates it to
        orange."""
        closure = _lid_closure(self.src_verts, tgt)  # [N, 2]
        if float(closure.max()) < 1e-3:
            return None, (0, 0)
        corners = tgt[:, self.eye_points, :2].flatten(0, 1)
        margin = MOUTH_MARGIN * self.size / self.lids.shape[-1]  # the zones are bilinear on the map grid
        lo = (corners.amin(0) - margin).floor().clamp(0, self.size - 1)
        hi = (corners.amax(0) + margin).ceil().clamp(1, self.size)
        (x0, y0), (x1, y1) = lo.int().tolist(), hi.int().tolist()
        if x1 <= x0 or y1 <= y0:
            return None, (0, 0)
        at = _sample_window(read.permute(0, 3, 1, 2), self.size, (y0, x0), (y1 - y0, x1 - x0))  # [N, 2, h, w]
        grid = pixels_to_grid(at.permute(0, 2, 3, 1), (self.size, self.size))
        read_lids = F.grid_sample(self.lids[None].expand(len(tgt), -1, -1, -1), grid, mode="bilinear",
                                  padding_mode="zeros", align_corners=False)
        zones, colour = read_lids[:, :4], read_lids[:, 4:]
        shown = torch.einsum("nzhw,nchw->nzc", zones, colour) / zones.sum((2, 3))[..., None].clamp_min(1e-6)
        lift = LID_SKIN * self.skin_mean[0] - shown[:, :2]  # [N, 2 eyes, 3]
        lift = closure[..., None] * lift * (lift.mean(-1, keepdim=True) > 0)  # brighten only
        slit = _smoothstep((closure - SLIT[0]) / (SLIT[1] - SLIT[0]))[..., None] * (self.lash_colour - shown[:, 2:])
        change = torch.cat([lift, slit], 1)  # [N, 4 zones, 3]
        if float(change.abs().max()) < 1e-3:
            return None, (0, 0)
        return torch.einsum("nzhw,nzc->nchw", zones, change), (y0, x0)

    def _mouth_window(self, in_mouth: torch.Tensor) -> tuple[tuple[int, int], tuple[int, int]]:
        """Origin (y, x) and shape (h, w) of the crop window that holds a chunk's mouth holes [N, r, r] with a
        margin of MOUTH_MARGIN map pixels."""
        r = in_mouth.shape[-1]
        rows, cols = (torch.nonzero(in_mouth.any(0).any(k)).flatten() for k in (1, 0))
        k = self.size / r
        y0, x0 = (max(0, int((int(v[0]) - MOUTH_MARGIN) * k)) for v in (rows, cols))
        y1, x1 = (min(self.size, int(math.ceil((int(v[-1]) + 1 + MOUTH_MARGIN) * k))) for v in (rows, cols))
        return (y0, x0), (y1 - y0, x1 - x0)

    def _read_map(self, tgt: torch.Tensor, pose: HeadPose, covered: torch.Tensor, mesh_src: torch.Tensor,
                  r: int) -> torch.Tensor:
        """Step 2: where each crop pixel reads the source crop [N, r, r, 2]: the mesh map on the face, blended into
        the extrapolated field (on a coarse grid, weighted by the head ellipse) around it."""
        cfg, s, n = self.cfg, self.size, len(tgt)
        g = max(MIN_MAP, r // 4)  # the field is smooth: a quarter of the map's resolution
        coarse = _pixel_centres(g, g, g / s, tgt.device)
        head = self._head_motion(pose)
        # the face's own motion beyond the head's, where the mesh ends (its visible edge: a turned cheek's silhouette
        # is not its outline's vertices), averaged per coarse pixel, then carried out and faded to the head's
        residual, at, weight = _rim(covered, mesh_src, head, g, s)
        known = weight > 0
        biggest = (torch.hypot(residual[..., 0], residual[..., 1]) * known).flatten(1).amax(-1)
        width = torch.maximum(cfg.rim_fade * pose.scale, biggest / STRETCH_BAND)  # [N] px
        sigma = torch.maximum(cfg.field_sigma * pose.scale, width / 6) * g / s
        near = _rim_field(residual, weight, sigma, max(3 * float(sigma.max()), float(width.max()) * g / s))
        dist = _distance_to_known(coarse, known, at)
        fade = torch.maximum(1 - _smoothstep(dist / width[:, None, None]),
                             F.interpolate(covered[:, None], size=(g, g), mode="area")[:, 0])
        grid = coarse[None].expand(n, -1, -1, -1)
        field = _apply(head, grid) - grid + near * fade[..., None]
        field = field * self._head_alpha(coarse, pose, head)[..., None]  # smooth: on the coarse grid, 16x cheaper
        field = F.interpolate(field.permute(0, 3, 1, 2).contiguous(), size=(r, r), mode="bilinear",  # 3x faster
                              align_corners=False).permute(0, 2, 3, 1)
        outside = self._centres(r) + field
        k, sigma = FACE_EDGE_BLUR
        blur = kf.gaussian_blur2d(covered[:, None], (k, k), (sigma, sigma))[:, 0]
        m = (_smoothstep(2 * blur - 1) * covered)[..., None]
        return m * mesh_src + (1 - m) * outside

    def _head_motion(self, pose: HeadPose) -> torch.Tensor:
        """Affines [N, 3, 2] target crop px -> source crop px of the head beyond the face: the points of the head
        frame's plane at depth `cfg.outline_depth`, moved from each target pose to the source pose. A turning head's
        outline (hair, ears) lies near that plane and moves far less than its face does."""
        def plane(p: HeadPose):
            return plane_affine(p.rotation, p.translation, p.scale, self.cfg.outline_depth)

        (ls, bs), (lt, bt) = plane(self.source_pose), plane(pose)
        lin = ls @ torch.linalg.inv(lt)
        offset = bs - (lin @ bt[..., None])[..., 0]
        return torch.cat([lin.transpose(1, 2), offset[:, None]], 1)

    def _mouth_weight(self, tgt: torch.Tensor, in_mouth: torch.Tensor) -> torch.Tensor | None:
        """Step 3: weight [N, r, r] of the mouth fill, by how many times the source's mouth hole the target's is (see
        STRETCH): a fill over a source mouth that is already open would lay the driver's teeth in a wall across
        the source's own (None: no fill anywhere)."""
        if not self.cfg.mouth_fill:
            return None
        stretch = _polygon_area(tgt[:, load_canonical().mouth_loop, :2]) / self.src_mouth_area.clamp_min(1e-6)
        reveal = _smoothstep((stretch - STRETCH[0]) / (STRETCH[1] - STRETCH[0]))
        weight = in_mouth.float() * reveal[:, None, None]
        return weight if bool(weight.any()) else None

    def _driver_mouth(self, tgt, driving, driving_verts, in_mouth, mesh_drv, window) -> torch.Tensor:
        """The driver's mouth [N, 3, h, w] in the mouth window (`window` samples maps there) through the fan (an
        affine of the lip contour around it), its brightness matched to the source."""
        loop = load_canonical().mouth_loop
        lip_affine = _affine_fit(tgt[:, loop, :2], driving_verts[:, loop, :2])
        pts = self._centres(mesh_drv.shape[1])
        drv_map = torch.where(in_mouth[..., None], mesh_drv, _apply(lip_affine, pts[None].expand(len(tgt), -1, -1, -1)))
        drv_grid = window(pixels_to_grid(drv_map, driving.shape[-2:]).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        fill = F.grid_sample(driving, drv_grid, mode="bilinear", padding_mode="border", align_corners=False)
        return self._match_skin(fill, driving, driving_verts)

    def _centres(self, r: int) -> torch.Tensor:
        """Crop-pixel coordinates [r, r, 2] of the centres of the r x r map grid (cached)."""
        if self._grid[0] != r:
            self._grid = (r, _pixel_centres(r, r, r / self.size, self.backdrop.image.device))
        return self._grid[1]

    def _match_skin(self, fill: torch.Tensor, driving: torch.Tensor, driving_verts: torch.Tensor) -> torch.Tensor:
        """Brightness-match the driver's mouth to the source: one gain from the ratio of their skin brightness
        (nose and cheeks), so teeth keep their own colour instead of taking on a skin-tone tint; within TEETH_GAIN,
        since a larger gain clips yellowish teeth to saturated yellow."""
        skin = self._sample_at(driving, driving_verts[:, self.skin, :2], driving.shape[-2:]).mean(-1)
        gain = (self.skin_mean.mean() / skin.mean(-1).clamp_min(1e-3)).clamp(*TEETH_GAIN)
        return (fill * gain[:, None, None, None]).clamp(0, 1)
