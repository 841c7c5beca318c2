"""The pose stage against ground truth: ICT-FaceKit heads rendered at known yaw and pitch, tracked, fitted; and
against the independent observer on real clips.

    python bench/pose_accuracy.py [MODEL.npz] [--subjects 2] [--distance 0 40 80] [--ict]
    python bench/pose_accuracy.py --clips vs18 vs20 vs29 vs32 d3 d19 [--frames 120]

Each subject (random identity, 0.7 x standard normal, neutral expression) is rendered at yaw -30..30 and pitch
-20..20 degrees (a 5 x 5 grid, 512 px, `reenact.data.ict_render`), orthographically (distance 0) and through a
pinhole camera at the given distances in cm (a phone held at 40 cm; a webcam at 80). Each render is tracked like
a video frame and posed by `reenact.pose.estimate_pose` (the default path) and, with `--ict`, by the ICT fit's
refinement. Printed per camera and axis: the slope of the estimated change since the frontal render against the
true change (1 is right; 0.8 means a fifth of the motion is lost) and the mean absolute error in degrees.
`--clips`: the first frames of real clips of ../shared/media, posed by `estimate_pose` and observed by dlib
(`reenact.observe`, a perspective fit of other landmarks to another face model); per axis the std of the
pipeline's angles over the observer's and their correlation (no ground truth: agreement of two instruments).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from reenact.data.ict_render import render_head
from reenact.geometry import head_angles
from reenact.ict import IctModel
from reenact.ict_basis import locate_model, read_model
from reenact.observe import load_observer, observe_video
from reenact.pose import estimate_pose
from reenact.structures import Tracks
from reenact.track import track_image, track_video
from third_party_wrappers.video import open_video

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"

SIZE, PX_PER_CM = 512, 15.0
GRID = torch.tensor([(yaw, pitch, 0.0) for yaw in (-30, -15, 0, 15, 30) for pitch in (-20, -10, 0, 10, 20)])
FRONTAL_INDEX = 12


def report(name: str, estimated: torch.Tensor) -> str:
    change = estimated - estimated[:, FRONTAL_INDEX:FRONTAL_INDEX + 1]
    cells = []
    for axis, label in ((0, "yaw"), (1, "pitch")):
        truth, got = GRID[:, axis].repeat(len(change)).numpy(), change[..., axis].flatten().numpy()
        cells.append(f"{label} slope {np.polyfit(truth, got, 1)[0]:.3f}, MAE {np.abs(got - truth).mean():4.1f}")
    return f"{name:<22} " + " | ".join(cells)


def clip_agreement(clips: list[str], frames: int) -> None:
    """Per clip and axis: std of estimate_pose's angles / std of the observer's, and their correlation."""
    faces = load_observer()
    for clip in clips:
        with open_video(MEDIA / f"{clip}.mp4") as reader:
            n = min(frames, reader.info.n_frames)
            rgb, fps = reader.read(range(n)), reader.info.fps
        observed = observe_video(rgb, every=10 ** 6, faces=faces).angles
        tracks = track_video(MEDIA / f"{clip}.mp4", n, fps, progress=False)
        ours = head_angles(estimate_pose(tracks).rotation)
        ok = observed.isfinite().all(1) & tracks.found
        a, b = ours[ok].numpy(), observed[ok].numpy()
        cells = [f"{label} {a[:, i].std() / b[:, i].std():.2f} (r {np.corrcoef(a[:, i], b[:, i])[0, 1]:.2f}, "
                 f"observer std {b[:, i].std():.1f})" for i, label in enumerate(("yaw", "pitch", "roll"))]
        print(f"{clip:<6} {int(ok.sum()):4d} frames  " + " | ".join(cells))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", nargs="?", help="ICT-FaceKit model (default: where reenact looks for it)")
    p.add_argument("--subjects", type=int, default=2)
    p.add_argument("--distance", type=float, nargs="+", default=[0.0, 40.0, 80.0])
    p.add_argument("--ict", action="store_true", help="also the ICT fit's refined pose")
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--clips", nargs="+", help="real clips of ../shared/media against the dlib observer instead")
    p.add_argument("--frames", type=int, default=120)
    args = p.parse_args(argv)
    if args.clips:
        clip_agreement(args.clips, args.frames)
        return 0
    path = locate_model(args.model)
    full, fitter = read_model(path), IctModel.load(path) if args.ict else None
    g = torch.Generator().manual_seed(args.seed)
    identities = [torch.randn(len(full["identity_modes"]), generator=g) * 0.7 for _ in range(args.subjects)]
    for distance in args.distance:
        found = {"estimate_pose": [], "ict fit": []}
        for identity in identities:
            images = render_head(full, identity, GRID, distance, SIZE, PX_PER_CM)
            landmarks = torch.stack([track_image(im).landmarks[0] for im in images])
            tracks = Tracks(landmarks, torch.ones(len(landmarks), dtype=torch.bool), SIZE, SIZE, 30.0)
            pose = estimate_pose(tracks)
            found["estimate_pose"].append(head_angles(pose.rotation))
            if fitter:
                found["ict fit"].append(head_angles(fitter.fit(tracks, pose, FRONTAL_INDEX)[0].rotation))
        camera = "orthographic" if not distance else f"pinhole at {distance:.0f} cm"
        for name, rows in found.items():
            if rows:
                print(report(f"{camera}, {name}", torch.stack(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
