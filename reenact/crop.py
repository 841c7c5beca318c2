"""Crop stage: the FFHQ-style aligned square crop of the source, EG3D's crop, and affine image resampling.

The crop is a similarity transform from landmarks (eye centres, mouth corners) following the FFHQ
alignment recipe: the square is centred a little below the eyes, its side ~4x the eye distance, its
x axis along the eye line. The 3D GAN sees EG3D's own crop (`eg3d_crop`), framed differently: higher
and a little tighter. Pixel centres sit at (j + 0.5, i + 0.5) everywhere in reenact.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from reenact.structures import Crop

EYE_RIGHT, EYE_LEFT = 468, 473  # iris centres: subject's right (image left), subject's left
MOUTH_CORNERS = (61, 291)
NOSE_TIP = 1
# Deep3DFaceRecon's 5-point BFM template that EG3D's FFHQ preprocessing aligns to: image-left eye, image-right
# eye, nose tip, image-left and image-right mouth corner (x to the image right, y up, z toward the camera)
BFM_FIVE = ((-0.31148657, 0.29036078, 0.13377953), (0.30979887, 0.28972036, 0.13179526),
            (0.0032535, -0.04617932, 0.55244243), (-0.25216928, -0.38133916, 0.22405732),
            (0.2484662, -0.38128236, 0.22235769))
EG3D_RESCALE, EG3D_CENTRE_CROP = 300.0, 700.0  # align at 300 px per template unit, keep the centre 700 px


@dataclass(frozen=True)
class CropConfig:
    size: int = 512  # crop side in pixels (EG3D renders 512)
    scale: float = 1.6  # crop side relative to the FFHQ recipe's (1.6 leaves room for the head to move)


def ffhq_crop(landmarks: torch.Tensor, cfg: CropConfig = CropConfig()) -> Crop:
    """Crop from one face's landmarks [478, 3] (image pixels); `cfg.scale` 1 is the FFHQ recipe's own side."""
    pts = landmarks[:, :2].double()
    eye_l, eye_r = pts[EYE_RIGHT], pts[EYE_LEFT]  # image-left, image-right eye
    eye_avg, eye_to_eye = (eye_l + eye_r) / 2, eye_r - eye_l
    eye_to_mouth = pts[list(MOUTH_CORNERS)].mean(0) - eye_avg
    x = eye_to_eye - torch.stack([-eye_to_mouth[1], eye_to_mouth[0]])
    half = max(eye_to_eye.norm() * 2.0, eye_to_mouth.norm() * 1.8) * cfg.scale
    u = x / x.norm()
    v = torch.stack([-u[1], u[0]])
    centre = eye_avg + eye_to_mouth * 0.1
    k = cfg.size / (2 * half)
    linear = k * torch.stack([u, v])
    offset = cfg.size / 2 - linear @ centre
    return Crop(torch.cat([linear, offset[:, None]], 1).float(), cfg.size)


def eg3d_crop(landmarks: torch.Tensor, size: int = 512) -> Crop:
    """EG3D's FFHQ crop from one face's landmarks [478, 3] (image px): what its generators were trained on.

    EG3D's preprocessing (dataset_preprocessing/ffhq, Deep3DFaceRecon `align_img` at rescale 300, target 1024,
    then the centre 700 px resized to 512) fits the 5-point template by least squares (POS: a 2x3 affine plus a
    shift) to the eye centres, nose tip and mouth corners, and crops an axis-aligned square, EG3D_CENTRE_CROP /
    EG3D_RESCALE template units wide at the fit's scale, centred where the template's origin projects. The head's
    roll stays in the image (its camera label carries it). Against the FFHQ recipe this puts the eyes ~38 % from
    the top instead of ~47 %.
    """
    pts = landmarks[[EYE_RIGHT, EYE_LEFT, NOSE_TIP, *MOUTH_CORNERS], :2].double()
    template = torch.tensor(BFM_FIVE, dtype=torch.float64) * torch.tensor([1.0, -1.0, 1.0])  # y down, as the image
    design = torch.cat([template, torch.ones(5, 1, dtype=torch.float64)], 1)
    fit = torch.linalg.lstsq(design, pts).solution  # [4, 2]: pts ~ template @ fit[:3] + fit[3]
    scale = fit[:3].norm(dim=0).mean()
    k = size * EG3D_RESCALE / (EG3D_CENTRE_CROP * scale)
    linear = k * torch.eye(2, dtype=torch.float64)
    offset = size / 2 - linear @ fit[3]
    return Crop(torch.cat([linear, offset[:, None]], 1).float(), size)


def affine_grid(dst_to_src: torch.Tensor, size: tuple[int, int], src_size: tuple[int, int]) -> torch.Tensor:
    """grid_sample grid [B, H, W, 2] that reads, for each destination pixel, source pixel A @ [x, y, 1]."""
    h, w = size
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32) + 0.5, torch.arange(w, dtype=torch.float32) + 0.5,
                            indexing="ij")
    pix = torch.stack([xs, ys, torch.ones_like(xs)], -1).to(dst_to_src)
    src = torch.einsum("bij,hwj->bhwi", dst_to_src, pix)
    return pixels_to_grid(src, src_size)


def pixels_to_grid(points: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Pixel coordinates [..., 2] (x, y) to grid_sample's [-1, 1] (align_corners=False)."""
    scale = torch.tensor([2.0 / size[1], 2.0 / size[0]], device=points.device, dtype=points.dtype)
    return points * scale - 1


def warp_affine(image: torch.Tensor, dst_to_src: torch.Tensor, size: tuple[int, int],
                padding: str = "border") -> torch.Tensor:
    """Resample image [B, C, H, W] onto a `size` canvas through the 2x3 maps `dst_to_src` [B, 2, 3]."""
    grid = affine_grid(dst_to_src, size, image.shape[-2:])
    return F.grid_sample(image, grid, mode="bilinear", padding_mode=padding, align_corners=False)


def apply_affine(matrix: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """2x3 affine of the (x, y) of points [..., N, 2+]; a z column is scaled by the transform's scale."""
    xy = points[..., :2] @ matrix[:, :2].T + matrix[:, 2]
    if points.shape[-1] == 2:
        return xy
    scale = matrix[:, :2].det().abs().sqrt()
    return torch.cat([xy, points[..., 2:] * scale], -1)
