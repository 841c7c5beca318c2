"""Image losses for GAN inversion and tuning: masked pixel L2, SSIM, and a VGG16 perceptual distance.

The paper uses VGG16-LPIPS for projection and L2 + LPIPS(alex) for tuning (paper_pipeline.md §1.4-1.5).
LPIPS weights cannot be downloaded here, so L2 + SSIM (kornia) are the default and the perceptual term
joins only when a torchvision-layout VGG16 state dict is given; a missing file is a warning, never an error.

Masking multiplies both images by the mask before any term, so pixels outside it get exactly zero
gradient (the paper masks the same way). Images are [N, 3, H, W] in [0, 1]; masks [N, 1, H, W].
"""
from __future__ import annotations

import logging
from pathlib import Path

import kornia.metrics
import torch
import torch.nn.functional as F

log = logging.getLogger("reenact")

VGG16_CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)  # torchvision `features.N` conv indices
VGG16_POOL_AFTER = (2, 7, 14, 21)  # a 2x2 max-pool follows these convs
VGG16_TAPS = (2, 7, 14, 21, 28)  # relu1_2 .. relu5_3, the LPIPS layers
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG16Features(torch.nn.Module):
    """The VGG16 conv stack (torchvision layout, so its `features.*` state dict loads) returning LPIPS taps."""

    def __init__(self):
        super().__init__()
        chans = [3, 64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
        self.convs = torch.nn.ModuleDict({str(i): torch.nn.Conv2d(chans[k], chans[k + 1], 3, padding=1)
                                          for k, i in enumerate(VGG16_CONVS)})
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    @classmethod
    def from_state_dict(cls, state: dict) -> "VGG16Features":
        net = cls()
        net.convs.load_state_dict({k[len("features."):]: v for k, v in state.items() if k.startswith("features.")})
        return net.eval().requires_grad_(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - self.mean) / self.std
        taps = []
        for i in VGG16_CONVS:
            x = F.relu(self.convs[str(i)](x))
            if i in VGG16_TAPS:
                taps.append(x)
            if i in VGG16_POOL_AFTER:
                x = F.max_pool2d(x, 2)
        return taps


def load_vgg16(path: str | Path | None) -> VGG16Features | None:
    """The perceptual network from a VGG16 state dict, or None (with a warning) when it is absent or unusable."""
    if path is None:
        return None
    try:
        return VGG16Features.from_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except (OSError, RuntimeError, KeyError, AttributeError) as exc:
        log.warning("perceptual loss off: %s is not a usable VGG16 state dict (%s)", path, type(exc).__name__)
        return None


class ImageLoss(torch.nn.Module):
    """Per-image masked loss [N] = pixel * L2 + ssim * (1 - SSIM) / 2 + perceptual * VGG16 distance."""

    def __init__(self, pixel: float = 1.0, ssim: float = 1.0, perceptual: float = 1.0,
                 vgg: VGG16Features | None = None, perceptual_size: int = 256):
        super().__init__()
        self.pixel, self.ssim, self.perceptual = pixel, ssim, perceptual if vgg is not None else 0.0
        self.vgg, self.perceptual_size = vgg, perceptual_size
        terms = [name for name, w in (("L2", self.pixel), ("SSIM", self.ssim), ("VGG16 perceptual", self.perceptual))
                 if w > 0]
        log.info("GAN losses: %s", " + ".join(terms) or "none")

    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is not None:
            pred, target = pred * mask, target * mask
        area = (mask.sum((1, 2, 3)) * 3 if mask is not None else torch.full((len(pred),), pred[0].numel(),
                                                                             device=pred.device)).clamp_min(1)
        loss = self.pixel * (pred - target).square().sum((1, 2, 3)) / area
        if self.ssim > 0:
            dissim = (1 - kornia.metrics.ssim(pred, target, 11)) / 2
            loss = loss + self.ssim * (dissim * (mask if mask is not None else 1)).sum((1, 2, 3)) / area
        if self.perceptual > 0:
            loss = loss + self.perceptual * self._perceptual(pred, target)
        return loss

    def _perceptual(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """LPIPS without learned weights: unit-normalised VGG features, squared distance, spatial mean, layer sum."""
        if pred.shape[-1] > self.perceptual_size:
            size = (self.perceptual_size, self.perceptual_size)
            pred, target = F.interpolate(pred, size, mode="area"), F.interpolate(target, size, mode="area")
        total = 0
        for a, b in zip(self.vgg(pred), self.vgg(target)):
            a = a / (a.square().sum(1, keepdim=True).sqrt() + 1e-10)
            b = b / (b.square().sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + (a - b).square().sum(1).mean((1, 2))
        return total
