"""Screen stage: which driving frames can be trusted, where the shots cut, and what is hidden.

From the driving tracks and poses, per frame:
- usable: the driver's face was found (`reenact.follow`), at least `min_face` px, turned less than `max_yaw` /
  `max_pitch` from the camera (beyond, FaceMesh's landmarks are guesses);
- shot: a new shot starts where the frame content jumps (thumbnail change above the tracker's `cut_change`) or
  the driver's face jumps (by `jump` face sizes or a 1.5x size change from one found frame to the next);
- occluded mouth / eyes: the colours at a region's skin ring, relative to the frame's own rigid skin (so light
  changes cancel), differ from their usual values (the median over the usable frames) at more than `occluded`
  of the ring's points: a microphone, a hand, hair. Beards and glasses are there all the time, so they are usual.
`reenact.repair` turns this into a driving motion that never follows a guess.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from scipy.ndimage import median_filter

from reenact.errors import InputError
from reenact.follow import CONTINUITY, sample_points, thumb_change
from reenact.spans import describe, listing, spans
from reenact.structures import HeadPose, Record, Tracks

REGIONS = ("mouth", "eye_r", "eye_l")
REASONS = ("usable", "no driver's face", "face too small", "head turned away")


@dataclass(frozen=True)
class ScreenConfig:
    min_face: float = 40.0  # px, smaller driving faces are unusable (their landmarks are guesses)
    max_yaw: float = 50.0  # deg from the camera beyond which a driving frame is unusable
    max_pitch: float = 35.0  # deg, the same up or down
    jump: float = 0.5  # face sizes the driver's face moves in one frame that start a new shot
    occluded: float = 0.3  # fraction of a region's ring points of unusual colour that marks it occluded
    foreign: float = 0.8  # log colour change (against the frame's rigid skin) that makes a ring point unusual
    hold_s: float = 0.5  # unusable gaps up to this long are bridged; longer ones ease to the rest pose and back
    ease_s: float = 0.4  # seconds to ease into and out of the rest pose, and from one shot's motion to the next's
    cuts: Literal["rereference", "hold"] = "rereference"  # a new shot moves from its own reference, or continues


@dataclass(frozen=True)
class Screening(Record):
    """What the screen stage decided for each driving frame."""

    reason: torch.Tensor  # [T] int64 index into REASONS (0: usable)
    shot: torch.Tensor  # [T] int64 shot number, from 0
    occluded: torch.Tensor  # [T, 3] bool, REGIONS hidden in the frame
    fps: float

    @property
    def usable(self) -> torch.Tensor:
        return self.reason == 0

    def report(self, cfg: ScreenConfig) -> list[str]:
        """One line per finding: the cuts, the unusable spans by reason, the occluded spans by region."""
        lines = []
        cuts = (torch.nonzero(self.shot[1:] != self.shot[:-1]).flatten() + 1).tolist()
        if cuts:
            how = "moves from its own reference frame" if cfg.cuts == "rereference" else "continues the last one's pose"
            lines.append(f"{len(cuts)} shot cut{'s' * (len(cuts) > 1)} at frame{'s' * (len(cuts) > 1)} "
                         f"{listing(cuts)}: each shot {how}, eased across the cut")
        for code, why in enumerate(REASONS[1:], 1):
            runs = spans(self.reason == code)
            if runs:
                lines.append(f"{why}: {describe(runs)}, held or eased to rest")
        for i, region in enumerate(REGIONS):
            runs = spans(self.occluded[:, i] & self.usable)
            if runs:
                lines.append(f"{region.replace('_r', ' (right)').replace('_l', ' (left)')} occluded: "
                             f"{describe(runs)}, its expression held")
        return lines


def _occlusions(colours: torch.Tensor, usable: torch.Tensor, cfg: ScreenConfig) -> torch.Tensor:
    """[T, 3] REGIONS whose skin ring looks unusual against the frame's own rigid skin."""
    _, part = sample_points()
    c = colours.float() + 8
    log_ratio = (c / c[:, part["skin"]].median(dim=1, keepdim=True).values).log()  # [T, K, 3]
    base = log_ratio[usable].median(dim=0).values if usable.any() else log_ratio.median(dim=0).values
    unusual = (log_ratio - base).abs().amax(-1) > cfg.foreign  # [T, K]
    hidden = torch.stack([unusual[:, part[r]].float().mean(1) > cfg.occluded for r in REGIONS], 1)
    return torch.from_numpy(median_filter(hidden.numpy(), size=(3, 1), mode="nearest"))


def screen_frames(tracks: Tracks, pose: HeadPose, cfg: ScreenConfig, cut_change: float) -> Screening:
    """The screening of a driving video's frames from its tracks and (unsmoothed) poses."""
    n, found = len(tracks.found), tracks.found
    lo, hi = tracks.landmarks[..., :2].amin(1), tracks.landmarks[..., :2].amax(1)
    centre, size = (lo + hi) / 2, (hi - lo).amax(-1)
    angles = pose.angles()
    reason = torch.zeros(n, dtype=torch.int64)
    reason[(angles[:, 0].abs() > cfg.max_yaw) | (angles[:, 1].abs() > cfg.max_pitch)] = 3
    reason[size < cfg.min_face] = 2
    reason[~found] = 1
    cut = torch.zeros(n, dtype=torch.bool)
    if tracks.thumbs is not None:
        thumbs = tracks.thumbs.numpy()
        cut[1:] = torch.tensor([thumb_change(a, b) > cut_change for a, b in zip(thumbs[:-1], thumbs[1:])])
    seen = torch.nonzero(found).flatten()
    if len(seen) > 1:  # the face jumps between consecutive sightings
        a, b = seen[:-1], seen[1:]
        moved = (centre[b] - centre[a]).norm(dim=-1) > cfg.jump * size[a]
        ratio = size[b] / size[a].clamp_min(1e-6)
        jumped = moved | (ratio > CONTINUITY[1]) | (ratio < 1 / CONTINUITY[1])
        cut[b[jumped]] = True
    occluded = torch.zeros(n, len(REGIONS), dtype=torch.bool)
    if tracks.colours is not None:
        occluded = _occlusions(tracks.colours, reason == 0, cfg)
    return Screening(reason, cut.long().cumsum(0), occluded, tracks.fps)


def require_usable(screening: Screening, fraction: float, name: str) -> None:
    """InputError naming the unusable spans when fewer than `fraction` of the frames are usable."""
    usable = screening.usable
    if usable.float().mean() < fraction:
        runs = spans(~usable)
        raise InputError(f"{name}: only {int(usable.sum())} of {len(usable)} frames show the driver's face usably "
                         f"(at least {fraction:.0%} needed); unusable: {describe(runs)}")
