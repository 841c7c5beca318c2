"""Rigid geometry shared by the stages: similarity fits, rotation conversions, head angles.

Conventions: the head frame is the canonical face's (+x to the image right of a frontal view, +y up,
+z toward the camera). Tracked landmarks live in an orthographic OpenCV-like image frame (x right,
y down, z away from the camera, pixels). A pose maps head to image: p = s * R @ x + t, so a frontal
head has R = diag(1, -1, -1). Radians inside; degrees only for reports and the command line.
"""
from __future__ import annotations

import kornia.geometry.conversions as kc
import numpy as np
import torch

FRONTAL = torch.diag(torch.tensor([1.0, -1.0, -1.0]))


def similarity_fit(src, dst, weights=None):
    """Least-squares s, R, t with dst ~ s R src + t (Umeyama), batched over leading dims.

    src, dst: [..., N, 3]; weights: [..., N] or None. Returns s [...], R [..., 3, 3], t [..., 3]; numpy in, numpy out.
    """
    as_numpy = isinstance(src, np.ndarray)
    src_t, dst_t = (torch.as_tensor(np.asarray(a), dtype=torch.float64) if as_numpy else a for a in (src, dst))
    w = torch.ones(src_t.shape[-2], dtype=src_t.dtype, device=src_t.device) if weights is None else torch.as_tensor(
        weights, dtype=src_t.dtype, device=src_t.device)
    w = (w / w.sum(-1, keepdim=True))[..., None]
    mu_s, mu_d = (w * src_t).sum(-2), (w * dst_t).sum(-2)
    xs, xd = src_t - mu_s[..., None, :], dst_t - mu_d[..., None, :]
    cov = (w * xd).transpose(-1, -2) @ xs
    u, sig, vh = torch.linalg.svd(cov)
    d = torch.ones_like(sig)
    d[..., -1] = torch.sign(torch.linalg.det(u @ vh))
    rot = u @ torch.diag_embed(d) @ vh
    scale = (sig * d).sum(-1) / (w * xs.pow(2)).sum((-1, -2))
    trans = mu_d - scale[..., None] * (rot @ mu_s[..., None])[..., 0]
    out = scale, rot, trans
    return tuple(o.numpy() for o in out) if as_numpy else out


def rotvec_to_matrix(rotvec: torch.Tensor) -> torch.Tensor:
    """Axis-angle [..., 3] to rotation matrices [..., 3, 3]."""
    return kc.axis_angle_to_rotation_matrix(rotvec.reshape(-1, 3)).reshape(*rotvec.shape[:-1], 3, 3)


def matrix_to_rotvec(rot: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [..., 3, 3] to axis-angle [..., 3] (angle in [0, pi])."""
    quat = kc.rotation_matrix_to_quaternion(rot.reshape(-1, 3, 3).contiguous())
    return kc.quaternion_to_axis_angle(quat).reshape(*rot.shape[:-2], 3)


def head_angles(rot: torch.Tensor) -> torch.Tensor:
    """Yaw, pitch, roll in degrees [..., 3] of head rotations R (image from head), for reports only.

    Yaw > 0 turns the face toward the image right, pitch > 0 tips the face down, roll > 0 tilts the
    head counter-clockwise in the image. Zero for a frontal head; rel = Rz(roll) Ry(yaw) Rx(pitch).
    """
    rel = FRONTAL.to(rot) @ rot  # head rotation in the head frame's own axes (y up, z to camera)
    yaw = torch.asin((-rel[..., 2, 0]).clamp(-1, 1))
    pitch = torch.atan2(rel[..., 2, 1], rel[..., 2, 2])
    roll = torch.atan2(rel[..., 1, 0], rel[..., 0, 0])
    return torch.rad2deg(torch.stack([yaw, pitch, roll], -1))


def angles_to_matrix(yaw_pitch_roll_deg: torch.Tensor) -> torch.Tensor:
    """Inverse of `head_angles`: [..., 3] degrees to image-from-head rotations [..., 3, 3]."""
    y, p, r = torch.deg2rad(yaw_pitch_roll_deg).unbind(-1)
    zero, one = torch.zeros_like(y), torch.ones_like(y)
    ry = torch.stack([torch.cos(y), zero, torch.sin(y), zero, one, zero, -torch.sin(y), zero, torch.cos(y)], -1)
    rx = torch.stack([one, zero, zero, zero, torch.cos(p), -torch.sin(p), zero, torch.sin(p), torch.cos(p)], -1)
    rz = torch.stack([torch.cos(r), -torch.sin(r), zero, torch.sin(r), torch.cos(r), zero, zero, zero, one], -1)
    shape = (*y.shape, 3, 3)
    return FRONTAL.to(ry) @ (rz.reshape(shape) @ ry.reshape(shape) @ rx.reshape(shape))


def plane_affine(rotation: torch.Tensor, translation: torch.Tensor, scale: torch.Tensor,
                 depth: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Image xy of the head frame's plane z = depth under poses [T] (p = s * R @ x + t): linear part [T, 2, 2] and
    offset [T, 2], so that image xy = lin @ (x, y) + offset."""
    lin = scale[:, None, None] * rotation[:, :2, :2]
    return lin, scale[:, None] * rotation[:, :2, 2] * depth + translation[:, :2]
