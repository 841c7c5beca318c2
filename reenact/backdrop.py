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
from scipy.ndimage import distance_transform_edt

from reenact.crop import warp_affine
from reenact.structures import Crop, Record


FRINGE = 0.25  # person-mask value from which a pixel fully counts as person where it is uncovered ...
FRINGE_GROW = 0.006  # ... and the reach beyond the mask, as a fraction of the picture's larger side
GRAIN_SIGMA = 2  # px: detail finer than this blur counts as the background's grain (see `strands`)
TEXTURE_SIGMA = 4  # px: the background's detail finer than this blur, mirrored across the hole's edge, is the
# fill's texture; what is left, carried across the hole row by row, its tone
FILL_SMOOTH = 3  # px: the row-by-row fill is smoothed down the rows this much
MIRROR_CLIP = 2.5  # mirrored detail at most this many times the RMS of the detail around
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
        from the background beyond it (`behind`)."""
        reach = max(1, round(FRINGE_GROW * max(image.shape[-2:])))
        fringe = grow((person / FRINGE).clamp(0, 1), reach)
        fringe = torch.maximum(fringe, grow(strands(fine_detail(image, GRAIN_SIGMA), fringe), 1))
        return cls(image, person, fringe, behind(image, 1 - grow(fringe, reach)))

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


def blur(image: torch.Tensor, sigma: float, weight: torch.Tensor | None = None) -> torch.Tensor:
    """A Gaussian blur [C, H, W] of `sigma` px of an image [C, H, W]; with a `weight` [1, H, W], of the weighted
    pixels only (normalized: what lies outside the weight does not bleed in)."""
    k = 2 * round(3 * sigma) + 1

    def run(x):
        return kf.gaussian_blur2d(x[None], (k, k), (sigma, sigma))[0]

    return run(image) if weight is None else run(image * weight) / run(weight).clamp_min(1e-6)


def fine_detail(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """What [C, H, W] a blur of `sigma` px takes out of an image [C, H, W]."""
    return image - blur(image, sigma)


def behind(image: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """The image [3, H, W] with what `known` [1, H, W] (in [0, 1]) leaves out filled as background: the tone of the
    background at either side of the hole, row by row (`across`), with the texture of the background around it
    (`mirrored`; a smooth fill over canvas, foliage or film grain shows as a flat blot)."""
    sure = (known >= 1).float()
    smooth = blur(image, TEXTURE_SIGMA, sure)
    texture = (image - smooth) * sure
    return torch.lerp(across(smooth, sure) + mirrored(texture, sure), image, known)


def across(image: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """The unknown pixels of an image [C, H, W] (`known` [1, H, W], 0 or 1) filled along their row between the
    nearest known pixels to the left and right (linearly), or from the one side a row has; rows without any known
    pixel from the known ones around (`fill_in`). Behind a head a horizon, a shelf or a wall's light runs on
    sideways: an average over a wide neighbourhood mixes the sky above a head into the hills beside it, a pale
    head-shaped blot where the head moves away. Smoothed down the rows (FILL_SMOOTH) so that no row stands out."""
    c, h, w = image.shape
    sure = known[0] >= 1
    cols = torch.arange(w, device=image.device).expand(h, w)
    left = torch.where(sure, cols, -1).cummax(1).values
    right = torch.where(sure, cols, w).flip(1).cummin(1).values.flip(1)
    near_left = (left >= 0) / (cols - left).clamp_min(1)  # inverse distances: linear between the two sides
    near_right = (right < w) / (right - cols).clamp_min(1)
    total = near_left + near_right
    sides = (image.gather(2, left.clamp(0, w - 1).expand(c, h, w)) * near_left
             + image.gather(2, right.clamp(0, w - 1).expand(c, h, w)) * near_right) / total.clamp_min(1e-9)
    filled = sides if bool((total > 0).all()) else torch.where(total > 0, sides, fill_in(image, known))
    k = 2 * FILL_SMOOTH * 3 + 1
    filled = kf.gaussian_blur2d(filled[None], (k, 1), (FILL_SMOOTH, 1e-3))[0]
    return torch.where(sure, image, filled)


def mirrored(detail: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """The detail [C, H, W] of the known pixels (`known` [1, H, W], 0 or 1) carried into the others mirrored across
    the nearest edge of the known region, so it runs on continuously (a mirror back and forth across a narrow band
    instead streaks and echoes the outline), at most MIRROR_CLIP times as strong (RMS) as the detail around: an
    edge further out (a door frame beside the head) comes in as a faint line, not a second frame. Where the mirror
    lands off the picture or on an unknown pixel, seeded noise as strong as the detail around (the same plate every
    run)."""
    h, w = known.shape[-2:]
    hole = (known[0] < 1).cpu().numpy()
    if not hole.any() or hole.all():
        return torch.zeros_like(detail)
    nearest = torch.from_numpy(distance_transform_edt(hole, return_indices=True)[1]).to(detail.device)
    at = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")).to(detail.device)
    y, x = 2 * nearest - at
    fits = (y >= 0) & (y < h) & (x >= 0) & (x < w)
    y, x = y.clamp(0, h - 1), x.clamp(0, w - 1)
    fits &= known[0, y, x] >= 1
    noise = torch.randn(detail.shape, generator=torch.Generator().manual_seed(0)).to(detail.device)
    rms = fill_in(detail.square(), known).clamp_min(0).sqrt()
    copied = torch.minimum(detail[:, y, x].abs(), MIRROR_CLIP * rms).copysign(detail[:, y, x])
    return torch.where(fits, copied, rms * noise) * (1 - known)
