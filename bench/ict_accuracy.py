"""Accuracy of the ICT-FaceKit fit against ground truth: render, track with mediapipe, fit, compare.

    python bench/ict_accuracy.py [MODEL.npz] [--seed 0 7 13] [--subjects 6] [--frames 8] [--set eye_weight=6]

Per seed, each subject gets a random identity (0.7 x standard normal) and each frame random sparse expressions:
jawOpen, eyeBlink and mouthSmile often, a conjugate gaze often (both eyes turned the same way, up to 0.7 of
eyeLookIn/Out and 0.6 of eyeLookUp/Down, eyeballs turned by `reenact.ict.with_gaze`), three other non-gaze shapes
at random; and a random head pose (yaw +-25, pitch +-12, roll +-8 degrees). Renders are 512 px, shaded skin
(`reenact.data.ict_render`), tracked with the project's tracker frame by frame (static mode), then each subject's
frames are fitted together (identity shared; no temporal prior, the frames being independent). Prints one row
per seed and a pooled row: coefficient MAE, correlation of fitted and true gaze, head-angle errors (also the
pitch error less each subject's mean, which relative transfer cancels), landmark reprojection error of `mesh()`;
a row with the MAE of guessing 0 for scale; then the fit speed on a 300-frame clip (default settings, temporal
prior on).

Protocol: `--set` (FitConfig fields) is for tuning on calibration seeds only (100-102); figures are reported on
seeds never used to choose settings. The correspondence calibration (`reenact.data.build_ict_correspondence`)
uses seed 1001. `--cache DIR` keeps each seed's tracked renders there, so a tuning loop tracks them once.
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from reenact.data.ict_render import opaque_triangles, render, vertex_colours
from reenact.geometry import angles_to_matrix, head_angles
from reenact.ict import FitConfig, IctModel
from reenact.ict_basis import correspondence, ict_to_head, locate_model, read_model, with_gaze
from reenact.pose import estimate_pose, to_image
from reenact.structures import Tracks
from reenact.track import track_image

SIZE, PX_PER_CM = 512, 15.0
SAMPLING = 2  # version of the sampling below, part of a cached file's name
COLUMNS = ("jawOpen", "eyeBlink_L", "eyeBlink_R", "mouthSmile_L", "mouthSmile_R")
GAZE = ("eyeLookDown", "eyeLookIn", "eyeLookOut", "eyeLookUp")
SPEED_FRAMES = 300


def sample_coeffs(names: list[str], n: int, g: torch.Generator) -> torch.Tensor:
    coeffs = torch.zeros(n, len(names))
    for name, p, hi in (("jawOpen", 0.5, 0.7), ("eyeBlink_L", 0.4, 1.0), ("mouthSmile_L", 0.4, 0.8)):
        on = torch.rand(n, generator=g) < p
        value = torch.rand(n, generator=g) * hi * on
        coeffs[:, names.index(name)] = value
        twin = name.replace("_L", "_R")
        if twin != name:  # mostly symmetric, sometimes one-sided
            coeffs[:, names.index(twin)] = value * (torch.rand(n, generator=g) < 0.8)
    on = (torch.rand(n, 1, generator=g) < 0.6).float()
    side, up = ((torch.rand(n, 2, generator=g) * 2 - 1) * torch.tensor([0.7, 0.6]) * on).unbind(-1)
    for shapes, amount in ((("eyeLookOut_L", "eyeLookIn_R"), side), (("eyeLookIn_L", "eyeLookOut_R"), -side),
                           (("eyeLookUp_L", "eyeLookUp_R"), up), (("eyeLookDown_L", "eyeLookDown_R"), -up)):
        coeffs[:, [names.index(s) for s in shapes]] = amount.clamp_min(0)[:, None]
    pool = torch.tensor([i for i, name in enumerate(names) if not name.startswith("eyeLook")])
    others = pool[torch.randint(0, len(pool), (n, 3), generator=g)]
    coeffs.scatter_(1, others, torch.rand(n, 3, generator=g) * 0.5)
    return coeffs


def simulate(full: dict, seed: int, subjects: int, frames: int) -> dict:
    """Tracked renders of one seed: landmarks [N, 478, 3], true coeffs [N, E], angles [N, 3], subject [N], lost."""
    names = full["expression_names"]
    neutral = torch.from_numpy(full["neutral"])
    id_modes, ex_modes = torch.from_numpy(full["identity_modes"]), torch.from_numpy(full["expression_modes"])
    tris, colours = opaque_triangles(torch.from_numpy(full["polygons"])), vertex_colours(neutral)
    _, head_from_ict, _ = ict_to_head(full, correspondence())  # to state the true head-frame pose
    g = torch.Generator().manual_seed(seed)
    out = {k: [] for k in ("landmarks", "coeffs", "angles", "subject")}
    lost = 0
    for s in range(subjects):
        identity = torch.randn(len(id_modes), generator=g) * 0.7
        coeffs = sample_coeffs(names, frames, g)
        angles = (torch.rand(frames, 3, generator=g) * 2 - 1) * torch.tensor([25.0, 12.0, 8.0])
        rot = angles_to_matrix(angles)  # image from head
        verts = neutral + torch.einsum("i,ivc->vc", identity, id_modes) + torch.einsum("te,evc->tvc", coeffs, ex_modes)
        verts = with_gaze(verts, coeffs, names)
        image_from_ict = rot @ head_from_ict.float()
        img_verts = PX_PER_CM * verts @ image_from_ict.transpose(1, 2) + torch.tensor([SIZE / 2, SIZE / 2 + 20, 0.0])
        images, _ = render(img_verts, tris, colours, SIZE, SIZE)
        for i, image in enumerate(images):
            try:
                out["landmarks"].append(track_image(image).landmarks[0])
            except Exception:  # noqa: BLE001 - a frame the tracker misses is counted, not fatal
                lost += 1
                continue
            out["coeffs"].append(coeffs[i])
            out["angles"].append(angles[i])
            out["subject"].append(torch.tensor(s))
    return {**{k: torch.stack(v) for k, v in out.items()}, "lost": lost}


def load_or_simulate(full: dict, seed: int, subjects: int, frames: int, cache: Path | None) -> dict:
    path = cache and cache / f"ict-bench-v{SAMPLING}-seed{seed}-{subjects}x{frames}.npz"
    if path and path.is_file():
        with np.load(path) as d:
            return {k: torch.from_numpy(d[k]) if k != "lost" else int(d[k]) for k in d.files}
    data = simulate(full, seed, subjects, frames)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **{k: np.asarray(v) for k, v in data.items()})
    return data


def tracks_of(landmarks: torch.Tensor) -> Tracks:
    return Tracks(landmarks, torch.ones(len(landmarks), dtype=torch.bool), SIZE, SIZE, 30.0)


def evaluate(fitter: IctModel, data: dict) -> dict:
    """Fitted and true coefficients [N, E], absolute head-angle errors [N, 3] (also less each subject's mean error,
    as in relative motion transfer) and reprojection errors [N] of fitting each subject's frames together."""
    fit, ang, rel, rep = [], [], [], []
    for s in data["subject"].unique():
        keep = data["subject"] == s
        tracks = tracks_of(data["landmarks"][keep])
        pose, shape, expression = fitter.fit(tracks, estimate_pose(tracks), 0)
        fit.append(expression.coeffs)
        err = head_angles(pose.rotation) - data["angles"][keep]
        ang.append(err.abs())
        rel.append((err - err.mean(0)).abs())
        fitted = to_image(fitter.mesh(shape, expression), pose)
        rep.append((fitted - tracks.landmarks)[..., :2].norm(dim=-1).mean(1) / pose.scale)
    return dict(fit=torch.cat(fit), truth=data["coeffs"], ang=torch.cat(ang), rel=torch.cat(rel), rep=torch.cat(rep))


def gaze_correlation(code: torch.Tensor, truth: torch.Tensor, names: list[str]) -> str:
    """Pearson r of fitted and true horizontal (Out - In) and vertical (Up - Down) gaze, both eyes pooled."""
    def axis(x, a, b):
        return torch.cat([x[:, names.index(f"eyeLook{a}_{side}")] - x[:, names.index(f"eyeLook{b}_{side}")]
                          for side in "LR"])
    return "/".join(f"{torch.corrcoef(torch.stack([axis(code, a, b), axis(truth, a, b)]))[0, 1]:.2f}"
                    for a, b in (("Out", "In"), ("Up", "Down")))


def coefficient_cells(err: torch.Tensor, names: list[str]) -> list[str]:
    """MAE of all coefficients, of the COLUMNS and of the eight eyeLook*, from absolute errors [N, E]."""
    gaze = [names.index(f"{k}_{side}") for k in GAZE for side in "LR"]
    return ([f"{err.mean():5.3f}"] + [f"{err[:, names.index(c)].mean():5.3f}" for c in COLUMNS]
            + [f"{err[:, gaze].mean():5.3f}"])


def row(label: str, r: dict, names: list[str]) -> str:
    ang = r["ang"]
    cells = coefficient_cells((r["fit"] - r["truth"]).abs(), names) + [gaze_correlation(r["fit"], r["truth"], names)]
    cells += [f"{ang[:, i].median():4.2f}/{ang[:, i].max():4.1f}" for i in range(3)]
    cells += [f"{r['rel'][:, 1].median():4.2f}", f"{r['rep'].mean():.4f}"]
    return f"{label:>7s} {len(ang):4d}  " + "  ".join(cells)


def zero_row(truth: torch.Tensor, names: list[str]) -> str:
    """The coefficient errors of guessing 0 for everything, for scale."""
    return f"{'zeros':>7s} {len(truth):4d}  " + "  ".join(coefficient_cells(truth.abs(), names))


def fit_speed(cfg: FitConfig, basis, landmarks: torch.Tensor) -> float:
    """Frames/s of one fit of a SPEED_FRAMES clip (tracked frames repeated) with the temporal prior on."""
    clip = tracks_of(landmarks[torch.arange(SPEED_FRAMES) % len(landmarks)])
    fitter = IctModel(basis, cfg)
    pose = estimate_pose(clip)
    start = time.perf_counter()
    fitter.fit(clip, pose, 0)
    return SPEED_FRAMES / (time.perf_counter() - start)


def parse_settings(text: str | None) -> dict:
    """'eye_weight=6,temporal=0.02' -> FitConfig field values of the fields' types."""
    types = {f.name: f.type for f in dataclasses.fields(FitConfig)}
    pairs = [item.split("=") for item in text.split(",")] if text else []
    return {k: (int if types[k] in ("int", int) else float)(v) for k, v in pairs}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model", nargs="?")
    p.add_argument("--seed", type=int, nargs="+", default=[0], help="sampling seeds (the calibration uses 1001)")
    p.add_argument("--subjects", type=int, default=6)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--set", help="FitConfig overrides, e.g. eye_weight=6,expression_prior=0.02 (tuning only)")
    p.add_argument("--cache", type=Path, help="folder keeping each seed's tracked renders for later runs")
    args = p.parse_args()
    path = locate_model(args.model)
    full = read_model(path)
    names = list(full["expression_names"])
    basis = IctModel.load(path).basis
    cfg = dataclasses.replace(FitConfig(), **parse_settings(args.set))
    fitter = IctModel(basis, dataclasses.replace(cfg, temporal=0.0))
    print("   seed    n  all53    jaw  blnkL  blnkR  smilL  smilR  eyeLk  gaze r    yaw med/max pitch     roll"
          "      p.rel  reproj")
    results, lost = [], 0
    for seed in args.seed:
        data = load_or_simulate(full, seed, args.subjects, args.frames, args.cache)
        lost += data["lost"]
        results.append(evaluate(fitter, data))
        print(row(str(seed), results[-1], names), flush=True)
    pooled = {k: torch.cat([r[k] for r in results]) for k in results[0]}
    if len(results) > 1:
        print(row("pooled", pooled, names))
    print(zero_row(pooled["truth"], names))
    print(f"columns: MAE of all 53 coefficients, of {', '.join(COLUMNS)}, of the 8 eyeLook*; correlation of fitted "
          f"and true gaze (horizontal/vertical); head angle error (deg, median/max); median pitch error less each "
          f"subject's mean (what relative transfer sees); reprojection error of mesh() "
          f"(eye-corner distances). 'zeros': the MAE of guessing 0. {lost} renders not tracked.")
    print(f"fit speed: {fit_speed(cfg, basis, data['landmarks']):.0f} frames/s ({SPEED_FRAMES}-frame clip)")


if __name__ == "__main__":
    main()
