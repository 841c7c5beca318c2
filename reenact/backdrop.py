"""The source picture the warp reads from, with its person mask, in one canvas (the source crop or the full frame).

The mask decides what moves: the person moves with the head, the background stays (see `reenact.warp.resample`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from reenact.crop import warp_affine
from reenact.structures import Crop, Record


@dataclass(frozen=True)
class Backdrop(Record):
    """A source picture: image [3, H, W] in [0, 1] and its soft person mask [1, H, W]."""

    image: torch.Tensor
    person: torch.Tensor

    def to(self, device) -> "Backdrop":
        return Backdrop(self.image.to(device), self.person.to(device))

    def cropped(self, crop: Crop) -> "Backdrop":
        """The same picture seen through a crop (image px -> crop px)."""
        inv = crop.image_from_crop[None].to(self.image.device)
        return Backdrop(*(warp_affine(x[None], inv, (crop.size, crop.size))[0] for x in (self.image, self.person)))
