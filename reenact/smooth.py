"""Smooth stage: temporal filtering of head pose and expression.

Rotations are filtered on SO(3): as rotation vectors in the tangent space at the clip's mean rotation
(never as Euler angles), then mapped back. Translations are filtered in units of the head's size, the
scale in log space, expression codes as they are. Two filters:
- one-euro (Casiez et al. 2012; causal, low lag): the cutoff rises with speed, so a blink or a fast turn
  passes while slow jitter is removed. The default.
- zero-phase offline: Savitzky-Golay (`savgol`) or Gaussian, for clips that are processed whole.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

from reenact.geometry import matrix_to_rotvec, rotvec_to_matrix
from reenact.structures import HeadPose, Motion


@dataclass(frozen=True)
class SmoothConfig:
    method: Literal["one_euro", "savgol", "gaussian", "none"] = "one_euro"
    pose_min_cutoff: float = 1.5  # Hz, one-euro cutoff of a still head
    pose_beta: float = 5.0  # cutoff growth per unit of speed (radians or head sizes per second)
    expression_min_cutoff: float = 3.0  # Hz; expressions move faster than the head
    expression_beta: float = 20.0  # (d3.mp4: jitter / 2.3 at 2.7 px mean lag)
    d_cutoff: float = 1.0  # Hz, cutoff of the speed estimate
    window_s: float = 0.2  # savgol window / 4 gaussian sigmas, in seconds
    savgol_order: int = 2


def one_euro(x: np.ndarray, fps: float, min_cutoff: float, beta: float, d_cutoff: float) -> np.ndarray:
    """Causal one-euro filter of x [T, C], each channel on its own (a loop over time; vectorised over C)."""
    def alpha(cutoff):
        return 1.0 / (1.0 + fps / (2 * math.pi * cutoff))

    out = np.empty_like(x)
    out[0], dx = x[0], np.zeros_like(x[0])
    a_d = alpha(d_cutoff)
    for t in range(1, len(x)):
        dx = dx + a_d * ((x[t] - out[t - 1]) * fps - dx)
        a = alpha(min_cutoff + beta * np.abs(dx))
        out[t] = out[t - 1] + a * (x[t] - out[t - 1])
    return out


def _filter(x: np.ndarray, fps: float, cfg: SmoothConfig, min_cutoff: float, beta: float) -> np.ndarray:
    if cfg.method == "none" or len(x) < 3:
        return x
    if cfg.method == "one_euro":
        return one_euro(x, fps, min_cutoff, beta, cfg.d_cutoff)
    if cfg.method == "gaussian":
        return gaussian_filter1d(x, sigma=max(cfg.window_s * fps / 4, 1e-3), axis=0, mode="nearest")
    window = min(max(int(round(cfg.window_s * fps)) | 1, cfg.savgol_order + 2 | 1), len(x) - (1 - len(x) % 2))
    if window <= cfg.savgol_order:
        return x
    from scipy.signal import savgol_filter  # here: importing scipy.signal costs 0.6 s of every run's start

    return savgol_filter(x, window, cfg.savgol_order, axis=0, mode="interp")


def mean_rotation(rot: torch.Tensor) -> torch.Tensor:
    """Chordal L2 mean of rotations [T, 3, 3]: the nearest rotation to their average matrix."""
    u, _, vh = torch.linalg.svd(rot.double().mean(0))
    d = torch.ones(3, dtype=torch.float64)
    d[-1] = torch.sign(torch.linalg.det(u @ vh))
    return (u @ torch.diag(d) @ vh).to(rot)


def smooth_pose(pose: HeadPose, fps: float, cfg: SmoothConfig) -> HeadPose:
    """Filter rotations in the tangent space at their mean, translations in head sizes, scale in log space."""
    base = mean_rotation(pose.rotation)
    size = float(pose.scale.median())
    x = torch.cat([matrix_to_rotvec(base.T @ pose.rotation), pose.translation / size, pose.scale.log()[:, None]], 1)
    y = torch.from_numpy(_filter(x.double().numpy(), fps, cfg, cfg.pose_min_cutoff, cfg.pose_beta)).float()
    return HeadPose(base @ rotvec_to_matrix(y[:, :3]), y[:, 3:6] * size, y[:, 6].exp())


def smooth_motion(motion: Motion, cfg: SmoothConfig = SmoothConfig()) -> Motion:
    """The motion with filtered pose and expression (same frames, same reference)."""
    if cfg.method == "none":
        return motion
    coeffs = motion.expression.coeffs.double().numpy()
    filtered = _filter(coeffs, motion.fps, cfg, cfg.expression_min_cutoff, cfg.expression_beta)
    expression = replace(motion.expression, coeffs=torch.from_numpy(filtered).float())
    return replace(motion, pose=smooth_pose(motion.pose, motion.fps, cfg), expression=expression)

