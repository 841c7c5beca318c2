"""Pose stage: per-frame head rotation, translation and scale from the landmarks.

A robust similarity fit (Umeyama, then two Cauchy-reweighted refits) of the canonical face's rigid
points to the tracked 3D landmarks; see `reenact.geometry` for the frames. Vectorised over frames.
"""
from __future__ import annotations

import torch

from reenact.canonical import load_canonical
from reenact.geometry import similarity_fit
from reenact.structures import HeadPose, Tracks

REWEIGHT_STEPS = 2


def estimate_pose(tracks: Tracks) -> HeadPose:
    """HeadPose [T] with landmarks ~ scale * rotation @ canonical + translation on the rigid points."""
    face = load_canonical()
    src = face.shape[face.rigid].double().expand(len(tracks.landmarks), -1, -1)
    dst = tracks.landmarks[:, face.rigid].double()
    weights = torch.ones(dst.shape[:2], dtype=torch.float64)
    for _ in range(REWEIGHT_STEPS + 1):
        scale, rot, trans = similarity_fit(src, dst, weights)
        fitted = scale[:, None, None] * src @ rot.transpose(1, 2) + trans[:, None]
        residual = (fitted - dst).norm(dim=-1)
        sigma = 1.5 * residual.median(dim=1, keepdim=True).values.clamp_min(1e-6)
        weights = 1 / (1 + (residual / sigma) ** 2)
    return HeadPose(rot.float(), trans.float(), scale.float())


def to_head_frame(points: torch.Tensor, pose: HeadPose) -> torch.Tensor:
    """Image-frame points [T, N, 3] to the canonical head frame (pose and scale removed)."""
    return ((points - pose.translation[:, None]) @ pose.rotation) / pose.scale[:, None, None]


def to_image(points: torch.Tensor, pose: HeadPose) -> torch.Tensor:
    """Head-frame points [T, N, 3] (or [N, 3]) to the image frame of each pose."""
    return pose.scale[:, None, None] * points @ pose.rotation.transpose(1, 2) + pose.translation[:, None]
