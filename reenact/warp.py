"""Render stage (default, no weights): a mesh-driven dense warp of the source crop.

For each target frame we build a backward map (target pixel -> where to read in the source crop):
1. Inside the face mesh: barycentric rasterization of the target mesh (nearest triangle wins, so a
   turning head occludes itself correctly); each pixel reads the same barycentric point of the source
   mesh. The eye holes are closed by fans from the iris centres, so gaze follows the driver. Given a
   `DenseMesh` (the ICT model's face surface, `reenact.dense_face`), that surface is rasterized in front of
   the landmark mesh: it decides wherever it covers, and the landmark mesh with its eye and mouth fans shows
   through its eye and mouth openings and fills the rest of the face outline.
2. Outside: a smooth field extrapolated from the mesh (normalised Gaussian splatting of the vertex
   displacements, falling back to the head's 2D affine motion far away), applied inside an ellipse
   around the head that covers hair, ears and neck and fades to zero beyond it and at the crop border,
   and only where the source person segmentation says person, so the background stays still.
3. The mouth hole (a fan from the inner-lip centre) reads the driving frame's mouth, colour-matched to
   the source lips, weighted by how much wider the target mouth opens than the source's.
Maps are built at `raster_scale` of the crop size and upsampled; the image is sampled at full size.
Masks out: face region, mouth interior filled from the driver, valid (read from inside the source).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import kornia.filters as kf
import torch
import torch.nn.functional as F

from reenact.canonical import LIPS, load_canonical
from reenact.crop import pixels_to_grid
from reenact.raster import interpolate, rasterize
from reenact.structures import HeadPose, Rendered

MOUTH_CENTRE = 478  # extra vertex: centre of the inner-lip contour


@dataclass(frozen=True)
class WarpConfig:
    raster_scale: float = 0.5  # maps are computed at this fraction of the crop size, then upsampled
    head_width: float = 1.7  # head ellipse half-width, in outer eye-corner distances
    head_up: float = 2.2  # ... its extent above the eyes (hair)
    head_down: float = 1.9  # ... and below the eyes (chin and upper neck)
    falloff: float = 0.5  # relative ellipse radius over which the motion fades to zero
    field_sigma: float = 0.35  # Gaussian splatting radius of the extrapolated field, in eye-corner distances
    mouth_fill: bool = True  # fill a newly opened mouth from the driving frame
    mesh: Literal["auto", "landmarks", "dense"] = "auto"  # mesh map surface; auto: dense with the ICT face model


@dataclass(frozen=True)
class DenseMesh:
    """A finer face surface for the mesh map: triangles over its own vertices, and where they lie in the source."""

    faces: torch.Tensor  # [F, 3] int64
    source: torch.Tensor  # [V, 3] crop px, at the source's pose and expression


def _smoothstep(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0, 1)
    return x * x * (3 - 2 * x)


def _with_mouth_centre(verts: torch.Tensor) -> torch.Tensor:
    loop = load_canonical().mouth_loop
    return torch.cat([verts[..., :478, :], verts[..., loop, :].mean(-2, keepdim=True)], -2)


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
    ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    return (torch.stack([xs, ys], -1).float() + 0.5) / scale


def _splat_field(points: torch.Tensor, values: torch.Tensor, fallback: torch.Tensor, size: int, scale: float,
                 sigma: float) -> torch.Tensor:
    """Normalised Gaussian splatting of values [B, N, 2] at crop points [B, N, 2] onto a size^2 grid.

    Where no point is near, the field tends to `fallback` [B, size, size, 2].
    """
    b, n = points.shape[:2]
    g = points * scale - 0.5  # grid coordinates, pixel centres at integers
    base = g.floor()
    frac = g - base
    num = torch.zeros(b, 3, size * size, device=points.device)
    for dx in (0, 1):
        for dy in (0, 1):
            wgt = (frac[..., 0] if dx else 1 - frac[..., 0]) * (frac[..., 1] if dy else 1 - frac[..., 1])
            ix, iy = base[..., 0].long() + dx, base[..., 1].long() + dy
            inside = (ix >= 0) & (ix < size) & (iy >= 0) & (iy < size)
            idx = (iy.clamp(0, size - 1) * size + ix.clamp(0, size - 1)).unsqueeze(1).expand(-1, 3, -1)
            contrib = torch.cat([values, torch.ones_like(values[..., :1])], -1) * (wgt * inside)[..., None]
            num.scatter_add_(2, idx, contrib.transpose(1, 2))
    num = num.view(b, 3, size, size)
    radius = int(3 * sigma) + 1
    num = kf.gaussian_blur2d(num, (2 * radius + 1, 2 * radius + 1), (sigma, sigma), border_type="constant")
    eps = 1e-3 * num[:, 2:].amax((2, 3), keepdim=True).clamp_min(1e-12)
    field = (num[:, :2] + eps * fallback.permute(0, 3, 1, 2)) / (num[:, 2:] + eps)
    return field.permute(0, 2, 3, 1)


class WarpRenderer:
    """Warps one source crop to many target meshes; see the module docstring for the method."""

    def __init__(self, source: torch.Tensor, source_verts: torch.Tensor, person: torch.Tensor, inside: torch.Tensor,
                 cfg: WarpConfig = WarpConfig(), dense: DenseMesh | None = None):
        """source [3, S, S] in [0, 1]; source_verts [478, 3] crop px; person, inside [1, S, S] masks
        (person segmentation; crop pixels that lie inside the source image); `dense`: a surface for the mesh map."""
        face = load_canonical()
        eyes, mouth = face.hole_fans()
        self.faces = torch.cat([face.triangles, eyes, mouth]).to(source.device)
        self.mouth_faces = torch.arange(len(self.faces), device=source.device) >= len(self.faces) - len(mouth)
        self.size = source.shape[-1]
        self.source = source
        self.person = person
        self.inside = inside
        self.src_verts = _with_mouth_centre(source_verts.to(source.device))
        self.cfg = cfg
        self.dense = dense
        if dense is not None:
            self.dense = DenseMesh(dense.faces.to(source.device), dense.source.to(source.device))
            # the winding of the dense triangles that face the camera (most of them, in the source)
            self.front = torch.sign(_signed_areas(self.dense.source[None], self.dense.faces).sum())
            # one mesh: the dense triangles over unshared corners (so that each frame can drop its own), then the
            # landmark mesh; the corners' source positions
            corners = torch.arange(3 * len(dense.faces), device=source.device).view(-1, 3)
            self.dense_faces = torch.cat([corners, self.faces + corners.numel()])
            self.dense_mouth = torch.cat([torch.zeros(len(corners), dtype=torch.bool, device=source.device),
                                          self.mouth_faces])
            self.corner_src = self.dense.source[self.dense.faces.flatten(), :2]
        self.skin = face.rigid.to(source.device)
        self.skin_mean = self._sample_at(source[None], self.src_verts[None, self.skin, :2], source.shape[-2:]).mean(-1)
        self.lip_mean = self._sample_at(source[None], self.src_verts[None, list(LIPS), :2], source.shape[-2:])[0].mean(-1)
        self._grid_cache: dict = {}
        self.src_mouth_area = _polygon_area(self.src_verts[face.mouth_loop, :2])
        eye_dist = (self.src_verts[33, :2] - self.src_verts[263, :2]).norm()
        # how closed the source mouth is (1: closed lips; 0: open, its own interior is warped instead of painted)
        self.src_closed = float(((0.04 - self.src_mouth_area / eye_dist**2) / 0.03).clamp(0, 1))

    @staticmethod
    def _sample_at(images: torch.Tensor, pts: torch.Tensor, size) -> torch.Tensor:
        """Bilinear colours [B, C, N] of images [B, C, H, W] at pixel points [B, N, 2]."""
        grid = pixels_to_grid(pts, size)[:, None]
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)[:, :, 0]

    def _head_alpha(self, pts: torch.Tensor, pose: HeadPose) -> torch.Tensor:
        """Weight [B, h, w] of the head motion: 1 inside the head ellipse, fading to 0 outside."""
        cfg = self.cfg
        rel = pts[None] - pose.translation[:, None, None, :2]
        ux = F.normalize(pose.rotation[:, :2, 0], dim=-1)
        uy = torch.stack([ux[:, 1], -ux[:, 0]], -1)  # head up in the image, perpendicular to the eye line
        a = (rel * ux[:, None, None]).sum(-1) / (pose.scale[:, None, None] * cfg.head_width)
        b = (rel * uy[:, None, None]).sum(-1) / pose.scale[:, None, None]
        b = torch.where(b > 0, b / cfg.head_up, b / cfg.head_down)
        r = (a * a + b * b).sqrt()
        alpha = 1 - _smoothstep((r - 1) / cfg.falloff)
        border = pts / self.size
        edge = torch.minimum(border, 1 - border).amin(-1)
        return alpha * _smoothstep(edge / 0.06)[None]

    def render(self, start: int, target_verts: torch.Tensor, target_pose: HeadPose,
               driving: torch.Tensor | None = None, driving_verts: torch.Tensor | None = None,
               dense_verts: torch.Tensor | None = None) -> Rendered:
        """Warp to target meshes [N, 478, 3] (crop px) whose poses (crop px) are `target_pose`.

        driving [N, 3, Hd, Wd] in [0, 1] and driving_verts [N, 478, 3] (driving px) feed the mouth fill;
        dense_verts [N, V, 3] (crop px) are the target dense surface, needed when the renderer has one.
        """
        if (self.dense is None) != (dense_verts is None):
            raise ValueError("dense_verts are needed exactly when the renderer was given a dense mesh")
        cfg, s = self.cfg, self.size
        n = len(target_verts)
        r = max(8, int(round(s * cfg.raster_scale)))
        scale = r / s
        tgt = _with_mouth_centre(target_verts)
        src = self.src_verts[None].expand(n, -1, -1)

        # 1. mesh map at raster resolution
        drv = _with_mouth_centre(driving_verts) if driving_verts is not None else tgt
        attrs = torch.cat([src[..., :2], drv[..., :2]], -1)
        faces, mouth_faces, verts = self.faces, self.mouth_faces, tgt
        if self.dense is not None:
            verts, attrs = self._dense_in_front(tgt, dense_verts, attrs)
            faces, mouth_faces = self.dense_faces, self.dense_mouth
        frags = rasterize(verts * scale, faces, r, r)
        covered = (frags.pix_to_face >= 0).float()
        in_mouth = mouth_faces[frags.pix_to_face.clamp_min(0)] & (frags.pix_to_face >= 0)
        mesh_map = interpolate(frags, attrs)

        # 2. extrapolated field (on a coarse grid), head mask and person mask
        g = max(8, r // 4)
        coarse = _pixel_centres(g, g, g / s, tgt.device)
        affine = _affine_fit(tgt[..., :2], src[..., :2])
        rigid = _apply(affine, coarse[None].expand(n, -1, -1, -1))
        sigma = cfg.field_sigma * float(target_pose.scale.mean()) * g / s
        field = _splat_field(tgt[..., :2], src[..., :2] - tgt[..., :2], rigid - coarse, g, g / s, sigma)
        field = F.interpolate(field.permute(0, 3, 1, 2), size=(r, r), mode="bilinear",
                              align_corners=False).permute(0, 2, 3, 1)
        pts = self._centres(r)
        moved = pts + field
        person = torch.maximum(self._person_r(r), self._sample_map(self.person, moved))
        alpha = (self._head_alpha(pts, target_pose) * person)[..., None]
        outside_map = pts + alpha * field
        blur = kf.gaussian_blur2d(covered[:, None], (7, 7), (1.5, 1.5))[:, 0]
        m = _smoothstep(2 * blur - 1)[..., None] * covered[..., None]
        src_map = m * mesh_map[..., :2] + (1 - m) * outside_map

        # 3. mouth: the driver's mouth through the fan (an affine of the lip contour around it), or,
        # without a driving image, a dark mouth interior shaded from the source's lip colour
        fill_mouth = cfg.mouth_fill
        if fill_mouth:
            loop = load_canonical().mouth_loop
            tgt_area = _polygon_area(tgt[:, loop, :2])
            reveal = (2 * (tgt_area - self.src_mouth_area) / tgt_area.clamp_min(1e-6)).clamp(0, 1)
            mouth_w = in_mouth.float() * reveal[:, None, None]
            fill_mouth = bool(mouth_w.any())

        # upsample the sampling grids and masks to the crop size, then sample the images
        def up(x):
            return F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False)

        grid = up(pixels_to_grid(src_map, (s, s)).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        layers = torch.cat([self.source, self.inside])[None].expand(n, -1, -1, -1)
        sampled = F.grid_sample(layers, grid, mode="bilinear", padding_mode="border", align_corners=False)
        image, valid = sampled[:, :3], sampled[:, 3:]
        mouth_s = torch.zeros_like(valid)
        if fill_mouth:
            mouth_s = up(mouth_w[:, None])
            if driving is not None and driving_verts is not None:
                lip_affine = _affine_fit(tgt[:, loop, :2], driving_verts[:, loop, :2])
                drv_map = torch.where(in_mouth[..., None], mesh_map[..., 2:],
                                      _apply(lip_affine, pts[None].expand(n, -1, -1, -1)))
                drv_grid = up(pixels_to_grid(drv_map, driving.shape[-2:]).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
                fill = F.grid_sample(driving, drv_grid, mode="bilinear", padding_mode="border", align_corners=False)
                fill = self._match_skin(fill, driving, driving_verts)
            else:
                depth = up(kf.gaussian_blur2d(in_mouth[:, None].float(), (9, 9), (2.0, 2.0)))  # 1 deep inside
                fill = self.lip_mean[None, :, None, None] * (0.6 - 0.3 * depth)
                mouth_s = mouth_s * self.src_closed
            image = image * (1 - mouth_s) + fill * mouth_s
        return Rendered(start, image.clamp(0, 1), up(covered[:, None]), mouth_s, valid * (1 - mouth_s))

    def _dense_in_front(self, tgt: torch.Tensor, dense_verts: torch.Tensor, attrs: torch.Tensor):
        """Vertices and attributes of `self.dense_faces`: the dense surface and, pushed behind all of it in depth,
        the landmark mesh. A frame's dense triangles that face away from the camera (the far side of the nose, a
        lid's fold) are dropped (non-finite corners, which the rasterizer skips): the surface's front hides them,
        except at a fold, where they would show the texture of the wrong side. The dense corners' driving
        attribute is unused (no mouth fan there)."""
        away = _signed_areas(dense_verts, self.dense.faces) * self.front <= 0
        corners = dense_verts[:, self.dense.faces.flatten()].masked_fill(away.repeat_interleave(3, 1)[..., None],
                                                                          float("nan"))
        behind = (dense_verts[..., 2].amax(1) - tgt[..., 2].amin(1)).clamp_min(0) + 1
        verts = torch.cat([corners, tgt + F.pad(behind[:, None, None], (2, 0))], 1)
        src = self.corner_src[None].expand(len(tgt), -1, -1)
        return verts, torch.cat([torch.cat([src, src], -1), attrs], 1)

    def _centres(self, r: int) -> torch.Tensor:
        if self._grid_cache.get("r") != r:
            pts = _pixel_centres(r, r, r / self.size, self.source.device)
            self._grid_cache = {"r": r, "pts": pts, "person": self._sample_map(self.person, pts[None])}
        return self._grid_cache["pts"]

    def _person_r(self, r: int) -> torch.Tensor:
        self._centres(r)
        return self._grid_cache["person"]

    def _sample_map(self, mask: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
        """Mask [1, S, S] read at crop points [B, h, w, 2] -> [B, h, w]."""
        grid = pixels_to_grid(pts, (self.size, self.size))
        return F.grid_sample(mask[None].expand(len(pts), -1, -1, -1), grid, mode="bilinear", padding_mode="zeros",
                             align_corners=False)[:, 0]

    def _match_skin(self, fill: torch.Tensor, driving: torch.Tensor, driving_verts: torch.Tensor) -> torch.Tensor:
        """Brightness-match the driver's mouth to the source: one gain from the ratio of their skin brightness
        (nose and cheeks), so teeth keep their own colour instead of taking on a skin-tone tint."""
        skin = self._sample_at(driving, driving_verts[:, self.skin, :2], driving.shape[-2:]).mean(-1)
        gain = (self.skin_mean.mean() / skin.mean(-1).clamp_min(1e-3)).clamp(0.6, 1.6)
        return (fill * gain[:, None, None, None]).clamp(0, 1)
