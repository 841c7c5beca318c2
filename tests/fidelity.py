"""Motion-fidelity measures shared by the tests and the benches: track a video, compare series."""
from __future__ import annotations

import torch

from reenact.canonical import LIP_GAP
from reenact.expression import MeshOffsetModel, extract_motion
from reenact.pose import to_head_frame
from reenact.track import track_frames
from third_party_wrappers.video import open_video


def motion_series(video) -> dict[str, torch.Tensor]:
    """Yaw, pitch (deg), mouth opening and head-frame mean shape of the face tracked in a video."""
    with open_video(video) as reader:
        tracks = track_frames(reader.chunks(32), reader.info.n_frames, reader.info.fps, progress=False)
    motion = extract_motion(tracks, MeshOffsetModel(), ref=0)
    angles = motion.pose.angles()
    meshes = to_head_frame(tracks.landmarks, motion.pose)
    mouth = (meshes[:, LIP_GAP[0]] - meshes[:, LIP_GAP[1]]).norm(dim=-1)
    return {"yaw": angles[:, 0], "pitch": angles[:, 1], "mouth": mouth, "shape": meshes.median(0).values}


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double() - a.double().mean(), b.double() - b.double().mean()
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-12))


def shape_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """RMS distance of two head-frame shapes [478, 3] after removing their means."""
    a, b = a - a.mean(0), b - b.mean(0)
    return float((a - b).pow(2).sum(-1).mean().sqrt())
