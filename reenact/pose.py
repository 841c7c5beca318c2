"""Pose stage: per-frame head rotation, translation and scale from the landmarks.

A robust similarity fit (Umeyama, then two Cauchy-reweighted refits) of the canonical face's rigid
points to the tracked 3D landmarks; see `reenact.geometry` for the frames. Vectorised over frames.

FaceMesh's landmarks of a turned head are not its frontal landmarks rotated: the tracker leans toward a
frontal face, most of all in pitch (fitting the plain shape reads 0.82 of an orthographic pitch on ICT-FaceKit
renders at known angles, `bench/pose_accuracy.py`). That view-dependent bias was calibrated once against such
renders (`reenact.data.build_ict_correspondence`, shipped in `data/ict_correspondence.npz`: no model file is
needed at run time); the fit includes it, re-evaluated at the previous round's rotations.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from reenact.canonical import load_canonical
from reenact.geometry import head_angles, similarity_fit
from reenact.structures import HeadPose, Tracks

CORRESPONDENCE = Path(__file__).with_name("data") / "ict_correspondence.npz"
REWEIGHT_STEPS = 2
BIAS_ROUNDS = 8  # refits with the view bias at the last rotations (each divides the error by ~2.5: 0.005 deg at 30 deg)
VIEW_FEATURES = 5  # see `view_features`


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


def estimate_pose(tracks: Tracks) -> HeadPose:
    """HeadPose [T] with landmarks ~ scale * rotation @ (canonical + view bias) + translation on the rigid points."""
    face = load_canonical()
    canonical = face.shape[face.rigid].double()
    dst = tracks.landmarks[:, face.rigid].double()
    src = canonical.expand(len(dst), -1, -1)
    weights = torch.ones(dst.shape[:2], dtype=torch.float64)
    for _ in range(BIAS_ROUNDS + 1):
        for _ in range(REWEIGHT_STEPS + 1):
            scale, rot, trans = similarity_fit(src, dst, weights)
            fitted = scale[:, None, None] * src @ rot.transpose(1, 2) + trans[:, None]
            residual = (fitted - dst).norm(dim=-1)
            sigma = 1.5 * residual.median(dim=1, keepdim=True).values.clamp_min(1e-6)
            weights = 1 / (1 + (residual / sigma) ** 2)
        src = canonical + view_bias(rot)[:, face.rigid]
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
