"""Repair stage: a driving motion that never follows a guess, from the screening of its frames.

Works on the motion relative to its reference frame (rotation vector of rot @ rot_ref^T, translation over the
reference scale, log scale ratio, expression code minus the reference's), where the rest pose, the reference
itself, is zero. Then:
1. every shot is re-referenced to its own most frontal, most neutral frame (`cuts="rereference"`), since a
   camera change moves the face in the frame without the head moving; `"hold"` re-references it to its first
   usable frame and continues the last shot's pose from there;
2. unusable frames are filled: gaps up to `hold_s` interpolated between their ends (held at a clip's ends),
   longer ones eased to rest over `ease_s`, held there, and eased back; an occluded region's expression codes
   are filled the same way over its own gaps, the rest of the face keeps moving;
3. across every cut the motion eases from the last shot's value to the new shot's over `ease_s`, longer for a
   large turn (at most MAX_TURN_SPEED); in "hold" mode the offset stays. A cut never becomes a jump of the head.
"""
from __future__ import annotations

import math
from dataclasses import replace

import torch

from reenact.canonical import IRIS_CENTRES, LIP_GAP, load_canonical
from reenact.geometry import matrix_to_rotvec, rotvec_to_matrix
from reenact.screen import REGIONS, ScreenConfig, Screening
from reenact.structures import Expression, HeadPose, Motion
from reenact.transfer import choose_reference

MAX_TURN_SPEED = 30.0  # deg/s: the fastest an eased cut turns the head (slower than a talker's brisk turns, ~45)
EYE_REACH = 0.6  # canonical units (outer eye-corner distances) around an eye's centre that its lids and brow span


def expression_regions(expression: Expression) -> torch.Tensor:
    """[3, D] bool: the expression codes that move each of REGIONS (mouth and jaw; each eye with its brow)."""
    if expression.names:
        def side(name, tag):
            return name.endswith(tag) and name.startswith(("eye", "brow", "cheekSquint"))

        masks = [[n.startswith(("jaw", "mouth", "cheekPuff")) for n in expression.names],
                 [side(n, "_R") for n in expression.names], [side(n, "_L") for n in expression.names]]
        return torch.tensor(masks)
    shape = load_canonical().shape
    below_nose = shape[:, 1] < (shape[LIP_GAP[0], 1] + shape[2, 1]) / 2
    eyes = [(shape[:, :2] - shape[c, :2]).norm(dim=-1) < EYE_REACH for c in IRIS_CENTRES]
    per_vertex = torch.stack([below_nose, *eyes])  # IRIS_CENTRES are the subject's right, then left eye
    return per_vertex[:, :, None].expand(-1, -1, 3).reshape(3, -1)


def _smoothstep(t: torch.Tensor) -> torch.Tensor:
    t = t.clamp(0, 1)
    return t * t * (3 - 2 * t)


def fill(x: torch.Tensor, valid: torch.Tensor, hold: int, ease: int, shot: torch.Tensor,
         hold_cuts: bool = False) -> torch.Tensor:
    """x [T, C] with its invalid frames replaced: gaps up to `hold` frames interpolated between their ends (or
    held at the one end a clip's edge leaves), longer gaps eased to zero (rest) over `ease` frames and back. A
    short gap across a shot cut moves to rest instead of to the other shot's value (`hold_cuts`: stays where it
    was); the cut's easing moves on from there."""
    out, n = x.clone(), len(x)
    edges = torch.diff(torch.cat([torch.tensor([1]), valid.long(), torch.tensor([1])]))
    starts, ends = torch.nonzero(edges == -1).flatten(), torch.nonzero(edges == 1).flatten()
    for a, b in zip(starts.tolist(), ends.tolist()):
        left = x[a - 1] if a > 0 else None
        right = x[b] if b < n else None
        if b - a <= hold and left is not None and right is not None and shot[a - 1] != shot[b]:
            right = left if hold_cuts else torch.zeros_like(left)
        t = torch.arange(a, b, dtype=x.dtype)
        if b - a <= hold:
            if left is not None and right is not None:
                w = ((t - (a - 1)) / (b - a + 1))[:, None]
                out[a:b] = left * (1 - w) + right * w
            else:
                out[a:b] = left if left is not None else right if right is not None else 0
            continue
        m = max(1, min(ease, (b - a) // 2))
        out[a:b] = 0
        if left is not None:
            out[a:a + m] = left * (1 - _smoothstep((t[:m] - a + 1) / m))[:, None]
        if right is not None:
            out[b - m:b] = right * _smoothstep((t[-m:] - (b - m)) / m)[:, None]
    return out


def _relative(motion: Motion) -> tuple[torch.Tensor, torch.Tensor]:
    """Pose [T, 7] and expression [T, D] of a motion relative to its reference frame (rest = 0)."""
    pose, ref = motion.pose, motion.ref
    rot = matrix_to_rotvec(pose.rotation @ pose.rotation[ref].T)
    trans = (pose.translation - pose.translation[ref]) / pose.scale[ref]
    scale = (pose.scale / pose.scale[ref]).log()[:, None]
    coeffs = motion.expression.coeffs
    return torch.cat([rot, trans, scale], 1).double(), (coeffs - coeffs[ref]).double()


def _absolute(motion: Motion, pose: torch.Tensor, codes: torch.Tensor) -> Motion:
    """The inverse of `_relative`, about the same reference frame."""
    p, ref = motion.pose, motion.ref
    pose = pose.float()
    head = HeadPose(rotvec_to_matrix(pose[:, :3]) @ p.rotation[ref], p.translation[ref] + pose[:, 3:6] * p.scale[ref],
                    p.scale[ref] * pose[:, 6].exp())
    coeffs = (codes.float() + motion.expression.coeffs[motion.ref]).contiguous()
    return replace(motion, pose=head, expression=replace(motion.expression, coeffs=coeffs))


def _rereference(pose: torch.Tensor, codes: torch.Tensor, frames: torch.Tensor, at: int) -> None:
    """Re-express `frames` (in place) relative to frame `at` instead of the motion's reference."""
    rot, shift, log_scale, code = rotvec_to_matrix(pose[at, :3]), pose[at, 3:6].clone(), pose[at, 6].clone(), \
        codes[at].clone()
    pose[frames, :3] = matrix_to_rotvec(rotvec_to_matrix(pose[frames, :3]) @ rot.T)
    pose[frames, 3:6] = (pose[frames, 3:6] - shift) * (-log_scale).exp()
    pose[frames, 6] = pose[frames, 6] - log_scale
    codes[frames] = codes[frames] - code


def _cut_starts(shot: torch.Tensor) -> list[int]:
    return torch.nonzero(torch.diff(shot, prepend=shot[:1] - 1)).flatten().tolist()


def reference_frames(screening: Screening, cfg: ScreenConfig) -> torch.Tensor:
    """[T] bool: the frames the repair leaves as they are, among which the reference frame must lie (the rest pose
    every other frame is measured from): usable, nothing occluded, and outside the easing after a cut (in "hold"
    mode: in the first shot with usable frames, since every later one carries an offset)."""
    keep = screening.usable & ~screening.occluded.any(-1)
    if not keep.any():
        return screening.usable
    shot = screening.shot
    if cfg.cuts == "hold":
        return keep & (shot == shot[keep][0])
    ease = max(1, round(cfg.ease_s * screening.fps))
    eased = torch.zeros_like(keep)
    for start in _cut_starts(shot)[1:]:
        eased[start:start + ease] = True
    return keep & ~eased if (keep & ~eased).any() else keep


def repair_motion(motion: Motion, screening: Screening, meshes: torch.Tensor, cfg: ScreenConfig) -> Motion:
    """The driving motion with every shot re-referenced, unusable frames and occluded regions filled, and cuts
    eased (see the module's docstring). `meshes`: the driving landmarks in the head frame [T, 478, 3], which pick
    each shot's reference."""
    usable, shot = screening.usable, screening.shot
    if usable.all() and not shot.any() and not screening.occluded.any():
        return motion
    pose, codes = _relative(motion)
    starts = _cut_starts(shot)
    for k, start in enumerate(starts):
        in_shot = (shot == shot[start]) & usable
        frames = torch.nonzero(in_shot).flatten()
        keep = shot[motion.ref] == shot[start] if cfg.cuts == "rereference" else k == 0
        if len(frames) and not keep:
            at = choose_reference(meshes, motion.pose, in_shot) if cfg.cuts == "rereference" else int(frames[0])
            _rereference(pose, codes, frames, at)
    hold, ease = round(cfg.hold_s * screening.fps), max(1, round(cfg.ease_s * screening.fps))
    hold_cuts = cfg.cuts == "hold"
    pose = fill(pose, usable, hold, ease, shot, hold_cuts)
    regions = expression_regions(motion.expression)
    codes = fill(codes, usable, hold, ease, shot, hold_cuts)
    for i in range(len(REGIONS)):
        hidden = screening.occluded[:, i] & usable
        if hidden.any():
            codes[:, regions[i]] = fill(codes[:, regions[i]], ~hidden, hold, ease, shot, hold_cuts)
    for start in starts[1:]:  # ease each cut: the last shot's value, fading into the new shot's motion
        end = next((s for s in starts if s > start), len(shot))
        offset = torch.cat([pose[start - 1] - pose[start], codes[start - 1] - codes[start]])
        span = torch.arange(end - start, dtype=pose.dtype)
        turn = float(offset[:3].norm()) * 180 / math.pi  # a smoothstep's peak speed is 1.5 x its mean
        frames = max(ease, 1.5 * turn * screening.fps / MAX_TURN_SPEED)
        fade = 1 - _smoothstep(span / frames) if cfg.cuts == "rereference" else torch.ones_like(span)
        pose[start:end] += fade[:, None] * offset[:7]
        codes[start:end] += fade[:, None] * offset[7:]
    return replace(_absolute(motion, pose, codes), found=usable)
