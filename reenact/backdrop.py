"""The source picture the warp reads from, with its person mask, in one canvas (the source crop or the full frame).

The mask decides what moves: the person moves with the head, the background stays (see `reenact.warp.resample`).
Where the head uncovers background, a wider mask (`fringe`) says what was person: segmentation fades out over
the outermost hair and misses loose strands (`strands` finds them), and those pixels, left in place, would trace
the old head outline. What shows there is the
`plate`: the picture with the person filled in from the background around it (once per run), at its own place, so
the uncovered background continues the lines around it instead of showing a displaced copy.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import kornia.filters as kf
import torch.nn.functional as F

from reenact.crop import warp_affine
from reenact.structures import Crop, Record


FRINGE = 0.25  # person-mask value from which a pixel fully counts as person where it is uncovered ...
FRINGE_GROW = 0.006  # ... and the reach beyond the mask, as a fraction of the picture's larger side
GRAIN_SIGMA = 2  # px: detail finer than this blur counts as the background's grain (see `grain`)
STRAND_REACH = 0.05  # how far beyond the fringe loose hair is looked for, as a fraction of the larger side ...
STRAND_CONTRAST = (3.0, 0.015)  # ... where a pixel stands out from the background there by this many times the
# background's own grain, and at least this much (0-1 levels)
STRAND_STEP = 1  # cells of 2 px: gaps in a strand up to this wide do not break it


@dataclass(frozen=True)
class Backdrop(Record):
    """A source picture: image [3, H, W] in [0, 1], its soft person mask [1, H, W], the fringe [1, H, W] and the
    background plate [3, H, W]."""

    image: torch.Tensor
    person: torch.Tensor
    fringe: torch.Tensor
    plate: torch.Tensor

    @classmethod
    def of(cls, image: torch.Tensor, person: torch.Tensor) -> "Backdrop":
        """The backdrop of an image and its person mask; the fringe is the mask over FRINGE, grown by FRINGE_GROW,
        with the loose hair around it (`strands`); the plate fills the fringe grown once more (hair the mask missed)
        from the background beyond it."""
        reach = max(1, round(FRINGE_GROW * max(image.shape[-2:])))
        detail = fine_detail(image)
        fringe = grow((person / FRINGE).clamp(0, 1), reach)
        fringe = torch.maximum(fringe, grow(strands(detail, fringe), 1))
        known = 1 - grow(fringe, reach)
        return cls(image, person, fringe, fill_in(image, known) + (1 - known) * grain(detail, known))

    @functools.cached_property
    def layers(self) -> torch.Tensor:
        """Image and person mask as one [4, H, W] tensor, what the warp samples: stacked once, not per chunk (a
        16 MB copy per call at 1137 x 910)."""
        return torch.cat([self.image, self.person])

    def to(self, device) -> "Backdrop":
        return Backdrop(*(x.to(device) for x in (self.image, self.person, self.fringe, self.plate)))

    def cropped(self, crop: Crop) -> "Backdrop":
        """The same picture seen through a crop (image px -> crop px)."""
        inv = crop.image_from_crop[None].to(self.image.device)
        return Backdrop(*(warp_affine(x[None], inv, (crop.size, crop.size))[0]
                          for x in (self.image, self.person, self.fringe, self.plate)))


def grow(mask: torch.Tensor, reach: int) -> torch.Tensor:
    """The mask [1, H, W] grown by `reach` px (a square max filter, as two 1D passes)."""
    k = 2 * reach + 1
    rows = F.max_pool2d(mask[None], (1, k), stride=1, padding=(0, reach))
    return F.max_pool2d(rows, (k, 1), stride=1, padding=(reach, 0))[0]


def fill_in(image: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """The image [C, H, W] with the pixels that `known` [1, H, W] (in [0, 1]) leaves out filled from the known
    ones around them (push-pull: weighted averages down a pyramid, read back up where a level knows too little),
    so a fill continues the colours of its border smoothly; known pixels keep their own colour."""
    levels = [(image * known, known)]
    while min(levels[-1][1].shape[-2:]) > 1:
        levels.append(tuple(F.avg_pool2d(x[None], 2, ceil_mode=True)[0] for x in levels[-1]))
    total, weight = levels[-1]
    filled = total / weight.clamp_min(1e-8)
    for total, weight in reversed(levels[:-1]):
        coarse = F.interpolate(filled[None], size=total.shape[-2:], mode="bilinear", align_corners=False)[0]
        sure = weight.clamp(0, 1e-3) * 1e3  # a level's own average wherever it saw any known pixel
        filled = torch.lerp(coarse, total / weight.clamp_min(1e-8), sure)
    return filled


def strands(detail: torch.Tensor, fringe: torch.Tensor) -> torch.Tensor:
    """Loose hair [1, H, W] (0 or 1) beyond the fringe [1, H, W] of an image whose `fine_detail` is `detail`
    [C, H, W]: detail that stands out (STRAND_CONTRAST) from the grain of the background beyond STRAND_REACH, in
    lines that reach out from the fringe (no further than STRAND_REACH). Segmentation misses flyaway strands; left
    as background they stay in place as a ghost outline when the head moves away."""
    h, w = detail.shape[-2:]
    reach = max(1, round(STRAND_REACH * max(h, w)))

    def coarse(mask):  # the search runs on a grid of 2 x 2 px cells, 8x cheaper; a 1-px line survives the max
        return F.max_pool2d(mask[None], 2, ceil_mode=True)[0]

    def fine(mask):
        return mask.repeat_interleave(2, -2).repeat_interleave(2, -1)[..., :h, :w]

    held = coarse((fringe >= 1).float())
    beyond = 1 - fine(grow(held, -(-reach // 2)))
    ratio, floor = STRAND_CONTRAST
    detail = detail.abs().amax(0, keepdim=True)
    grain = fill_in(detail.square(), 1 - fine(grow(held, reach))).clamp_min(0).sqrt()  # twice as far: no strands
    candidate = ((detail > torch.clamp(ratio * grain, min=floor)) & (beyond < 1)).float()
    reached, cells = held, coarse(candidate)
    for _ in range(0, reach, 2 * STRAND_STEP):  # grown from the fringe through candidates only: lines off the hair
        reached = grow(reached, STRAND_STEP) * torch.maximum(cells, held)
    return fine(reached) * candidate * (fringe < 1)


def fine_detail(image: torch.Tensor) -> torch.Tensor:
    """What [C, H, W] a blur of GRAIN_SIGMA px takes out of an image [C, H, W]."""
    k = 2 * GRAIN_SIGMA * 3 + 1
    return image - kf.gaussian_blur2d(image[None], (k, k), (GRAIN_SIGMA, GRAIN_SIGMA))[0]


def grain(detail: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Fixed noise [C, H, W] as strong (RMS) as the fine detail [C, H, W] (`fine_detail`) of the known pixels around
    each place: a smooth fill over a textured background (canvas, foliage, film grain) would show as a flat blot.
    Seeded: the same plate every run."""
    noise = torch.randn(detail.shape, generator=torch.Generator().manual_seed(0)).to(detail.device)
    return fill_in(detail.square(), known).clamp_min(0).sqrt() * noise
