"""Stages as a library: track a driving video once, exaggerate its smile, render with the edited motion.

    python pipelines/edit_tracks.py SOURCE.jpg DRIVING.mp4 OUT.mp4 [--smile 1.8]

The README's library example; a test runs it.
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch

from reenact import MOUTH_CORNERS, Motion, RunConfig, driving_motion, load_face_model, open_video, reenact_video, \
    track_frames


def exaggerate_smile(motion: Motion, factor: float) -> Motion:
    """Scale the smile: the mouthSmile coefficients (named models) or the motion around the mouth corners."""
    coeffs = motion.expression.coeffs.clone()
    names = motion.expression.names
    if names:
        for name in ("mouthSmile_L", "mouthSmile_R"):
            coeffs[:, names.index(name)] *= factor
        coeffs = coeffs.clamp(0, 1)
    else:
        corners = motion.shape[list(MOUTH_CORNERS)]
        dist = (motion.shape[:, None] - corners[None]).norm(dim=-1).min(1).values
        weight = 1 + (factor - 1) * torch.exp(-(dist / 0.25) ** 2)  # 1 far from the mouth corners
        coeffs = (coeffs.view(len(coeffs), -1, 3) * weight[None, :, None]).reshape(coeffs.shape)
    return replace(motion, expression=replace(motion.expression, coeffs=coeffs))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", type=Path)
    p.add_argument("driving", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--smile", type=float, default=1.8, help="smile exaggeration factor")
    args = p.parse_args(argv)
    cfg = RunConfig(progress=False)
    model = load_face_model(cfg.face)

    with open_video(args.driving) as video:  # 1. track once, keep the record
        tracks = track_frames(video.chunks(64), video.info.n_frames, video.info.fps, progress=False)
    tracks.save(args.out.with_suffix(".tracks.npz"))
    motion, _ = driving_motion(tracks, model, None, cfg.track, cfg.screen, cfg.smooth)  # 2. pose + expression
    edited = exaggerate_smile(motion, args.smile)  # 3. edit the expression curves
    reenact_video(args.source, args.driving, args.out, cfg, driving=edited)  # 4. render with them


if __name__ == "__main__":
    main()
