"""Accuracy of the ICT-FaceKit fit against ground truth: render, track with mediapipe, fit, compare.

    python bench/ict_accuracy.py [--subjects 6] [--frames 8] [MODEL.npz]

Each subject gets a random identity (0.7 x standard normal); each frame random sparse expressions (jawOpen,
eyeBlink, mouthSmile often, three other shapes at random) and a random head pose (yaw +-25, pitch +-12,
roll +-8 degrees). Renders are 512 px, shaded skin (`reenact.data.ict_render`), tracked with the project's
tracker frame by frame (static mode), then each subject's frames are fitted together (identity shared;
no temporal prior, the frames being independent). Reports coefficient MAE, head-angle errors and the
landmark reprojection error. The seeds differ from those of the correspondence calibration
(`reenact.data.build_ict_correspondence`).
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from reenact.data.ict_render import opaque_triangles, render, vertex_colours
from reenact.geometry import angles_to_matrix, head_angles
from reenact.ict import IctModel, correspondence, ict_to_head, locate_model, read_model
from reenact.pose import estimate_pose, to_image
from reenact.structures import Tracks
from reenact.track import track_image

SIZE, PX_PER_CM = 512, 15.0
REPORTED = ("jawOpen", "eyeBlink_L", "eyeBlink_R", "mouthSmile_L", "mouthSmile_R")
GAZE = ("eyeLookDown", "eyeLookIn", "eyeLookOut", "eyeLookUp")


def sample_coeffs(names: list[str], n: int, g: torch.Generator) -> torch.Tensor:
    coeffs = torch.zeros(n, len(names))
    for name, p, hi in (("jawOpen", 0.5, 0.7), ("eyeBlink_L", 0.4, 1.0), ("mouthSmile_L", 0.4, 0.8)):
        on = torch.rand(n, generator=g) < p
        value = torch.rand(n, generator=g) * hi * on
        coeffs[:, names.index(name)] = value
        twin = name.replace("_L", "_R")
        if twin != name:  # mostly symmetric, sometimes one-sided
            coeffs[:, names.index(twin)] = value * (torch.rand(n, generator=g) < 0.8)
    others = torch.randint(0, len(names), (n, 3), generator=g)
    coeffs.scatter_(1, others, torch.rand(n, 3, generator=g) * 0.5)
    return coeffs


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model", nargs="?")
    p.add_argument("--subjects", type=int, default=6)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--seed", type=int, default=0, help="sampling seed (the calibration uses 1001)")
    args = p.parse_args()
    path = locate_model(args.model)
    full = read_model(path)
    fitter = IctModel.load(path)
    fitter = IctModel(fitter.basis, replace(fitter.cfg, temporal=0.0))
    names = full["expression_names"]
    neutral = torch.from_numpy(full["neutral"])
    id_modes, ex_modes = torch.from_numpy(full["identity_modes"]), torch.from_numpy(full["expression_modes"])
    tris, colours = opaque_triangles(torch.from_numpy(full["polygons"])), vertex_colours(neutral)
    _, head_from_ict, _ = ict_to_head(full, correspondence())  # to state the true head-frame pose
    g = torch.Generator().manual_seed(args.seed)
    coeff_err, angle_err, reproj, fit_time, lost = [], [], [], 0.0, 0
    for _ in range(args.subjects):
        identity = torch.randn(len(id_modes), generator=g) * 0.7
        coeffs = sample_coeffs(names, args.frames, g)
        angles = (torch.rand(args.frames, 3, generator=g) * 2 - 1) * torch.tensor([25.0, 12.0, 8.0])
        rot = angles_to_matrix(angles)  # image from head
        verts = neutral + torch.einsum("i,ivc->vc", identity, id_modes) + torch.einsum("te,evc->tvc", coeffs, ex_modes)
        image_from_ict = rot @ head_from_ict.float()
        img_verts = PX_PER_CM * verts @ image_from_ict.transpose(1, 2) + torch.tensor([SIZE / 2, SIZE / 2 + 20, 0.0])
        images, _ = render(img_verts, tris, colours, SIZE, SIZE)
        tracked, keep = [], []
        for i, image in enumerate(images):
            try:
                tracked.append(track_image(image).landmarks[0])
                keep.append(i)
            except Exception:  # noqa: BLE001 - a frame the tracker misses is counted, not fatal
                lost += 1
        tracks = Tracks(torch.stack(tracked), torch.ones(len(keep), dtype=torch.bool), SIZE, SIZE, 30.0)
        start = time.perf_counter()
        pose, shape, expression = fitter.fit(tracks, estimate_pose(tracks), 0)
        fit_time += time.perf_counter() - start
        coeff_err.append((expression.coeffs - coeffs[keep]).abs())
        angle_err.append((head_angles(pose.rotation) - angles[keep]).abs())
        fitted = to_image(fitter.mesh(shape, expression), pose)
        reproj.append(((fitted - tracks.landmarks)[..., :2].norm(dim=-1).mean(1) / pose.scale))
    err, ang, rep = torch.cat(coeff_err), torch.cat(angle_err), torch.cat(reproj)
    n = len(err)
    print(f"frames fitted: {n} ({lost} not tracked), {args.subjects} subjects; fit {n / fit_time:.0f} frames/s")
    print(f"expression MAE, all 53: {err.mean():.3f}")
    for name in REPORTED:
        print(f"  {name:13s} MAE {err[:, names.index(name)].mean():.3f}")
    gaze = [names.index(f"{k}_{side}") for k in GAZE for side in "LR"]
    print(f"  eyeLook* (8)  MAE {err[:, gaze].mean():.3f}")
    print("head angle error, deg (median / mean / max): " + "; ".join(
        f"{k} {ang[:, i].median():.2f} / {ang[:, i].mean():.2f} / {ang[:, i].max():.2f}"
        for i, k in enumerate(("yaw", "pitch", "roll"))))
    print(f"landmark reprojection error (image plane, eye-corner distances): mean {rep.mean():.4f}")


if __name__ == "__main__":
    main()
