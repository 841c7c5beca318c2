"""The source picture the warp reads from, with its person mask, in one canvas (the source crop or the full frame).

The mask decides what moves: the person moves with the head, the background stays (see `reenact.warp.resample`).
Where the head uncovers background, a wider mask (`fringe`) says what was person: segmentation fades out over
the outermost hair, and those pixels, left in place, would trace the old head outline.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from reenact.crop import warp_affine
from reenact.structures import Crop, Record


FRINGE = 0.25  # person-mask value from which a pixel fully counts as person where it is uncovered ...
FRINGE_GROW = 0.006  # ... and the reach beyond the mask, as a fraction of the picture's larger side


@dataclass(frozen=True)
class Backdrop(Record):
    """A source picture: image [3, H, W] in [0, 1], its soft person mask [1, H, W] and the fringe [1, H, W]."""

    image: torch.Tensor
    person: torch.Tensor
    fringe: torch.Tensor

    @classmethod
    def of(cls, image: torch.Tensor, person: torch.Tensor) -> "Backdrop":
        """The backdrop of an image and its person mask; the fringe is the mask over FRINGE, grown by FRINGE_GROW."""
        k = 2 * max(1, round(FRINGE_GROW * max(image.shape[-2:]))) + 1
        fringe = F.max_pool2d((person / FRINGE).clamp(0, 1)[None], k, stride=1, padding=k // 2)[0]
        return cls(image, person, fringe)

    def to(self, device) -> "Backdrop":
        return Backdrop(*(x.to(device) for x in (self.image, self.person, self.fringe)))

    def cropped(self, crop: Crop) -> "Backdrop":
        """The same picture seen through a crop (image px -> crop px)."""
        inv = crop.image_from_crop[None].to(self.image.device)
        return Backdrop(*(warp_affine(x[None], inv, (crop.size, crop.size))[0]
                          for x in (self.image, self.person, self.fringe)))
