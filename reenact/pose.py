"""Pose stage: per-frame head rotation, translation and scale from the landmarks.

A robust similarity fit (Umeyama, then two Cauchy-reweighted refits) of the canonical face's rigid
points to the tracked 3D landmarks; see `reenact.geometry` for the frames. Vectorised over frames.

FaceMesh's landmarks of a turned head are not its frontal landmarks rotated: the tracker leans toward a
frontal face, most of all in pitch (fitting the plain shape reads 0.82 of an orthographic pitch on ICT-FaceKit
renders at known angles, `bench/pose_accuracy.py`). That view-dependent bias was calibrated once against such
renders (`reenact.data.build_ict_correspondence`, shipped in `data/ict_correspondence.npz`: no model file is
needed at run time); the fit includes it, re-evaluated at the previous round's rotations.

The landmarks also move with the expression, the outline of the head does not: where the tracks carry head crops
(video tracks), the fit also holds points of the outline's plane to where `reenact.outline` sees the outline in the
frames, with OUTLINE_WEIGHT times the landmarks' weight.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from reenact.canonical import load_canonical
from reenact.geometry import head_angles, similarity_fit
from reenact.outline import OUTLINE_DEPTH, align_outlines, plane_to_image
from reenact.structures import HeadPose, Tracks

CORRESPONDENCE = Path(__file__).with_name("data") / "ict_correspondence.npz"
REWEIGHT_STEPS = 2
BIAS_ROUNDS = 8  # refits with the view bias at the last rotations (each divides the error by ~2.5: 0.005 deg at 30 deg)
VIEW_FEATURES = 5  # see `view_features`
OUTLINE_WEIGHT = 1.0  # the outline's points weigh this many times all the rigid landmarks together
OUTLINE_ROUNDS = 2  # outline alignments, each followed by a refit
OUTLINE_ANCHORS = ((-1.6, 0.4), (1.6, 0.4), (-1.0, 2.2), (1.0, 2.2), (0.0, 2.6))  # plane points (u, v) held
MIN_OUTLINE_FRAMES = 8  # fewer usable frames than this leave the landmark fit as it is
OUTLINE_VIEW = 3.0  # deg: the outline's weight falls as exp(-d^2 / 2 OUTLINE_VIEW^2) with the frame's yaw-pitch
# distance d from the clip's median view: a head is not a plane, so its outline read on one looks another way when it
# turns far from the view most frames show (and the template is their median)


def view_features(rotation: torch.Tensor) -> torch.Tensor:
    """What the tracker's view-dependent bias is regressed on, per head rotation [..., 3, 3]: yaw, pitch, roll
    (radians) and the squares of yaw and pitch -> [..., VIEW_FEATURES]."""
    angles = torch.deg2rad(head_angles(rotation))
    return torch.cat([angles, angles[..., :2].square()], -1)


@lru_cache(maxsize=1)
def _view_modes() -> torch.Tensor:
    with np.load(CORRESPONDENCE) as d:
        return torch.from_numpy(d["offset_view"]).double()


def view_bias(rotation: torch.Tensor) -> torch.Tensor:
    """The tracker's landmark bias [..., 478, 3] (head frame) at head rotations [..., 3, 3]: tracked minus true."""
    modes = _view_modes()
    return (view_features(rotation.double()) @ modes.flatten(1)).unflatten(-1, modes.shape[1:]).to(rotation.dtype)


def _fit(src: torch.Tensor, dst: torch.Tensor, weights: torch.Tensor, fixed: torch.Tensor | None = None):
    """Similarity fit of src [T, N, 3] to dst, starting from the landmarks' weights [T, N] and reweighting them
    (Cauchy); `fixed` [T, K]: weights of K more points appended to src and dst, in units of the landmarks' sum (not
    reweighted). Returns scale, rotation, translation and the landmarks' last weights."""
    n = weights.shape[1]
    for _ in range(REWEIGHT_STEPS + 1):
        all_weights = weights if fixed is None else torch.cat([weights, fixed * weights.sum(1, keepdim=True)], 1)
        scale, rot, trans = similarity_fit(src, dst, all_weights)
        fitted = scale[:, None, None] * src[:, :n] @ rot.transpose(1, 2) + trans[:, None]
        residual = (fitted - dst[:, :n]).norm(dim=-1)
        sigma = 1.5 * residual.median(dim=1, keepdim=True).values.clamp_min(1e-6)
        weights = 1 / (1 + (residual / sigma) ** 2)
    return scale, rot, trans, weights


def estimate_pose(tracks: Tracks) -> HeadPose:
    """HeadPose [T] with landmarks ~ scale * rotation @ (canonical + view bias) + translation on the rigid points,
    and the outline's plane where the frames show it (tracks with head crops)."""
    face = load_canonical()
    canonical = face.shape[face.rigid].double()
    dst = tracks.landmarks[:, face.rigid].double()
    src = canonical.expand(len(dst), -1, -1)
    weights = torch.ones(dst.shape[:2], dtype=torch.float64)
    for _ in range(BIAS_ROUNDS + 1):
        scale, rot, trans, weights = _fit(src, dst, weights)
        src = canonical + view_bias(rot)[:, face.rigid]
    if tracks.heads is not None and int(tracks.found.sum()) >= MIN_OUTLINE_FRAMES:
        anchors = torch.tensor(OUTLINE_ANCHORS, dtype=torch.float64)
        held = torch.cat([anchors, torch.full_like(anchors[:, :1], OUTLINE_DEPTH)], 1).expand(len(dst), -1, -1)
        view = head_angles(rot)[:, :2]
        off_view = (view - view[tracks.found].median(0).values).norm(dim=-1) / OUTLINE_VIEW
        for _ in range(OUTLINE_ROUNDS):
            warps, confidence = align_outlines(tracks.heads, tracks.head_boxes, tracks.found, rot, trans, scale)
            confidence = confidence * torch.exp(-off_view.square() / 2)
            seen = plane_to_image(rot, trans, scale, warps.double(), anchors)
            fixed = (OUTLINE_WEIGHT / len(anchors)) * confidence.double()[:, None].expand(-1, len(anchors))
            scale, rot, trans, weights = _fit(torch.cat([src, held], 1), torch.cat([dst, seen], 1), weights, fixed)
    return HeadPose(rot.float(), trans.float(), scale.float())


def to_head_frame(points: torch.Tensor, pose: HeadPose) -> torch.Tensor:
    """Image-frame points [T, N, 3] to the canonical head frame (pose and scale removed)."""
    return ((points - pose.translation[:, None]) @ pose.rotation) / pose.scale[:, None, None]


def head_meshes(landmarks: torch.Tensor, pose: HeadPose) -> torch.Tensor:
    """Tracked landmarks [T, 478, 3] in the head frame with the tracker's view bias taken out: the face's own
    shape and expression, comparable across head angles."""
    return to_head_frame(landmarks, pose) - view_bias(pose.rotation)


def to_image(points: torch.Tensor, pose: HeadPose) -> torch.Tensor:
    """Head-frame points [T, N, 3] (or [N, 3]) to the image frame of each pose."""
    return pose.scale[:, None, None] * points @ pose.rotation.transpose(1, 2) + pose.translation[:, None]
