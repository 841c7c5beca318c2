"""Compose stage: paste animated crops back into the full source frame, and side-by-side panels; the output's
settings.

The crop is resampled through its inverse transform and blended with a feathered seam (a mask that
fades over `feather` of the crop size at its border, times the pixels the renderer filled: read from
the source or the mouth fill), so the
output keeps the source's framing.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from reenact.crop import warp_affine
from reenact.structures import Crop, Rendered


@dataclass(frozen=True)
class OutputConfig:
    compare: bool = False  # write driving | source | result side by side
    crop_only: bool = False  # write the animated crop instead of pasting it back into the source frame
    max_side: int = 1280  # the source is downscaled to this size before anything else
    chunk: int = 8  # frames rendered at once up to 1280 x 720 px (fewer for larger frames; bounds memory)
    segment: int = 64  # frames per encoded segment: the unit of resume after an interruption
    crf: int = 18  # H.264 quality (lower is better)


def feather_mask(size: int, feather: float = 0.08) -> torch.Tensor:
    """[1, 1, S, S] mask: 1 inside, a smooth ramp to 0 over `feather * S` pixels at the border."""
    x = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    ramp = (torch.minimum(x, 1 - x) / feather).clamp(0, 1)
    ramp = ramp * ramp * (3 - 2 * ramp)
    return (ramp[:, None] * ramp[None, :])[None, None]


def paste_back(background: torch.Tensor, rendered: Rendered, crop: Crop, feather: float = 0.08) -> torch.Tensor:
    """Frames [N, 3, H, W]: `background` [3, H, W] with the rendered crops blended in."""
    n, h, w = len(rendered.image), background.shape[-2], background.shape[-1]
    filled = rendered.valid if rendered.mouth is None else (rendered.valid + rendered.mouth).clamp(0, 1)
    alpha = feather_mask(crop.size, feather).to(rendered.image) * filled
    layers = torch.cat([rendered.image, alpha], 1)
    full = warp_affine(layers, crop.crop_from_image[None].expand(n, -1, -1), (h, w), padding="zeros")
    a = full[:, 3:]
    return background[None] * (1 - a) + full[:, :3] * a


def side_by_side(*panels: torch.Tensor) -> torch.Tensor:
    """Concatenate [N, 3, H_i, W_i] panels horizontally, each resized to the first panel's height."""
    h = panels[0].shape[-2]
    resized = [p if p.shape[-2] == h else F.interpolate(
        p, size=(h, max(2, round(p.shape[-1] * h / p.shape[-2]))), mode="bilinear", antialias=True,
        align_corners=False) for p in panels]
    return torch.cat(resized, -1)


def landmark_panel(points: torch.Tensor, size: int, dot: int = 1) -> torch.Tensor:
    """Panels [N, 3, S, S]: face landmarks [N, K, 2+] (px of an S x S square) as light dots `dot` px in radius on
    dark grey, the driving panel of a motion without a driving video."""
    n = len(points)
    xy = points[..., :2].round().long()
    inside = ((xy >= 0) & (xy < size)).all(-1)
    flat = torch.zeros(n, size * size)
    index = (xy[..., 1] * size + xy[..., 0]).clamp(0, size * size - 1)
    flat.scatter_(1, index, inside.float())
    dots = F.max_pool2d(flat.view(n, 1, size, size), 2 * dot + 1, stride=1, padding=dot)
    return (0.12 + 0.8 * dots).expand(-1, 3, -1, -1)
