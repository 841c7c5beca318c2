"""Image reconstruction metrics for inversion and rendering: PSNR, SSIM and (optionally) LPIPS.

Images are float tensors [N, 3, H, W] in [0, 1]; every metric returns one value per image [N].
LPIPS (`third_party_wrappers.lpips_net`) needs the `lpips` package and its linear-layer weights by path.
"""
from __future__ import annotations

import kornia.metrics
import torch

from reenact.errors import InputError

SSIM_WINDOW = 11


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape or a.ndim != 4:
        raise InputError(f"images to compare must share one [N, C, H, W] shape; got {tuple(a.shape)}, {tuple(b.shape)}")


def psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Peak signal-to-noise ratio (dB, peak 1) per image [N]; `mask` [N, 1, H, W] in [0, 1] weights pixels."""
    _check_pair(a, b)
    err = (a.float() - b.float()).pow(2)
    if mask is None:
        return -10 * torch.log10(err.mean((1, 2, 3)))  # identical images: +inf
    weight = mask.float().expand_as(err[:, :1])
    mse = (err * weight).sum((1, 2, 3)) / (weight.sum((1, 2, 3)) * a.shape[1]).clamp_min(1e-12)
    return -10 * torch.log10(mse)


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Structural similarity (11-px Gaussian window, kornia) per image [N]; 1 for identical images."""
    _check_pair(a, b)
    return kornia.metrics.ssim(a.float(), b.float(), SSIM_WINDOW).mean((1, 2, 3))
