"""LPIPS (the `lpips` package, which needs torchvision): a learned perceptual distance, loaded from its weights file.
"""
from __future__ import annotations

from pathlib import Path

import torch

from reenact.errors import MissingAssetError

LPIPS_UNAVAILABLE = "LPIPS: unavailable (install lpips + torchvision and pass --lpips weights.pth)"


class Lpips:
    """Learned perceptual distance (AlexNet LPIPS v0.1) per image [N]; lower is closer."""

    def __init__(self, weights: Path):
        try:
            import lpips
        except ImportError:
            raise MissingAssetError(LPIPS_UNAVAILABLE) from None
        if not Path(weights).is_file():
            raise MissingAssetError(f"{weights}: no such LPIPS weights file")
        self.net = lpips.LPIPS(net="alex", model_path=str(weights), verbose=False).eval()

    @torch.no_grad()
    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.net(a * 2 - 1, b * 2 - 1).flatten()
