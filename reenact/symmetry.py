"""SPI's facial symmetry prior for the projection: the mirrored source as a pseudo view at the mirrored camera.

A turned source shows one side of the face well and the other barely; its mirror image at the mirrored camera
supervises the hidden side (face region only: hair, clothes and background are not symmetric), weighted by how far
the source is turned, and dropped where the source disagrees with its own mirror image where both sides are seen.
"""
from __future__ import annotations

import math

import kornia.filters as kf
import torch
import torch.nn.functional as F

from reenact.eg3d import mirror_label
from reenact.eg3d.volume import sample_rays

SPI_MIN_YAW = 0.2  # SPI: the mirrored pseudo view is used only for sources turned at least this far (rad)
SPI_DEPTH_TOL = 0.05  # SPI's occlusion test: a point is seen if its ray distance is this close to the render's
SPI_ASYMMETRY = 0.1  # mean |RGB| difference (0-1, blurred) of source and mirror above which a region is asymmetric


def spi_weight(yaw: float) -> float:
    """SPI's weight of the mirrored pseudo view for a source at `yaw` (rad): (1 - N(|yaw|; 0, 0.29) / 2.7) / 2,
    0.30 at 0.2 rad rising to 0.5; 0 below 0.2 rad, where the pseudo view would nearly repeat the source."""
    if abs(yaw) < SPI_MIN_YAW:
        return 0.0
    pdf = math.exp(-0.5 * (yaw / 0.29) ** 2) / (0.29 * math.sqrt(2 * math.pi))
    return (1 - pdf / 2.7) / 2


def mirrored_views(target: torch.Tensor, mask: torch.Tensor, camera: torch.Tensor):
    """SPI pseudo view: the source and its mirror image at the mirrored camera. Hair, background and clothes
    are asymmetric in general, so the mirror view supervises only the (masked) face region."""
    return (torch.cat([target, target.flip(-1)]), torch.cat([mask, mask.flip(-1)]),
            torch.cat([camera, mirror_label(camera)]))


@torch.no_grad()
def mirror_points(camera: torch.Tensor, depth: torch.Tensor, size: int,
                  tol: float = SPI_DEPTH_TOL) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each source pixel's mirrored surface point lands in the source view, and whether it is seen there.

    Each pixel of the source camera [1,25] is lifted to its surface point X by the rendered ray depth [1,1,r,r]
    (bilinear to `size`), mirrored to M X (x -> -x, the head's symmetry plane) and projected back into the
    source camera: grid [1,S,S,2] (grid_sample coordinates). M X is seen if its ray distance is within `tol` of
    the rendered depth where it lands (SPI's occlusion test): visible [1,1,S,S] bool.
    """
    c2w, k = camera[:, :16].view(-1, 4, 4), camera[:, 16:].view(-1, 3, 3)
    dist = F.interpolate(depth, size=(size, size), mode="bilinear", align_corners=False)
    origins, dirs = sample_rays(c2w, k, size)
    mirror = (origins + dist.reshape(1, -1, 1) * dirs) * torch.tensor([-1.0, 1.0, 1.0], device=depth.device)
    rel = mirror - c2w[:, None, :3, 3]
    uv = (rel @ c2w[:, :3, :3]) @ k.transpose(1, 2)
    grid = (uv[..., :2] / uv[..., 2:].clamp_min(1e-6) * 2 - 1).view(1, size, size, 2)
    seen = F.grid_sample(dist, grid, mode="bilinear", padding_mode="border", align_corners=False)
    near = (rel.norm(dim=-1).view(1, 1, size, size) - seen).abs() < tol
    return grid, near & (grid.abs() <= 1).all(-1)[:, None]


@torch.no_grad()
def symmetry_filter(target: torch.Tensor, camera: torch.Tensor, depth: torch.Tensor,
                    threshold: float = SPI_ASYMMETRY) -> torch.Tensor:
    """Weight [1,1,S,S] of SPI's pseudo view (its pixels, i.e. flipped): 0 where it would copy an asymmetric region.

    The pseudo view asserts that the surface point X seen at a source pixel looks like its mirror M X. Where the
    source [1,3,S,S] sees M X too (`mirror_points` with the current render's depth), both sides are observed: if
    their blurred colours differ by more than `threshold` (a parting, a mole, one-sided light), the assertion is
    false and both pixels get no weight. Where M X is hidden, the pseudo view is the only evidence of that side
    and keeps its weight. The dropped region is grown by 8 px and feathered (at 512 px).
    """
    s = target.shape[-1]
    grid, visible = mirror_points(camera, depth, s)
    ks, sigma = max(3, round(15 * s / 512)) | 1, 4.0 * s / 512
    smooth = kf.gaussian_blur2d(target, (ks, ks), (sigma, sigma))
    differ = (smooth - F.grid_sample(smooth, grid, mode="bilinear", padding_mode="border", align_corners=False)
              ).abs().mean(1, keepdim=True)
    r = max(1, round(8 * s / 512))
    drop = F.max_pool2d((visible & (differ > threshold)).float(), 2 * r + 1, 1, r)
    return 1 - kf.gaussian_blur2d(drop, (ks, ks), (sigma, sigma)).flip(-1)


def filtered_masks(target: torch.Tensor, masks: torch.Tensor, camera: torch.Tensor):
    """`project`'s mask_fn for SPI's two views of `mirrored_views`: the pseudo view's mask times the
    `symmetry_filter` of the current geometry (the source view's rendered depth)."""
    return lambda depth: torch.cat([masks[:1], masks[1:] * symmetry_filter(target, camera, depth[:1])])
