"""`python -m reenact.evaluate --source S --driving D --output O`: how well an output follows its driver.

The driving and output videos are tracked independently (the same FaceMesh tracking as the pipeline)
and compared frame by frame:

- APD: mean absolute difference of head yaw, pitch and roll (degrees), as tracked and as the change
  since the first frame (the latter ignores the source's own resting head angle).
- AED: mean absolute difference of the expression change since the driver's reference frame, in the
  code of the face model in use (mesh-offset: landmark coordinates in eye-corner units; ICT: ARKit weights).
- Pearson correlations of yaw, pitch, roll, mouth opening and eye openness (undefined for a still series).
- Jitter: mean second difference of the landmarks over time (eye-corner units per frame²), output and driver.
- Face-detection rate on the output; canonical-shape distance of the output to the source and to the
  driver (a model-free identity proxy: lower to the source is better); identity similarity when a
  face-recognition network is installed (`reenact.identity`); PSNR / SSIM / LPIPS against `--reference`.
- Observer (dlib): pose error relative to the driver's motion, std ratios and correlations of pose and
  expression, identity distances, all measured by an observer that shares no model with the pipeline
  (`reenact.observe`: dlib landmarks, perspective pose, 2D expression measures, dlib face descriptors), so
  that the output is not judged only by the tracker that made it; unavailable without `reenact[eval]`.
Bad input: one line on stderr, exit code 2.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from reenact.canonical import LIP_GAP, lid_gaps, load_canonical
from reenact.errors import InputError, MissingAssetError, ReenactError
from reenact.expression import FaceModel, FaceModelConfig, extract_motion, load_face_model
from reenact.geometry import FRONTAL, head_angles
from reenact.identity import UNAVAILABLE, cosine_similarity, load_embedder
from reenact.inputs import frames_to_tensor, load_source
from reenact.observe import compare_observations, load_observer, observe_video, report_lines
from reenact.pose import head_meshes, to_head_frame
from reenact.quality import psnr, ssim
from reenact.structures import Tracks
from reenact.track import TrackConfig, track_image, track_video
from third_party_wrappers.lpips_net import LPIPS_UNAVAILABLE, Lpips
from third_party_wrappers.video import open_video

MIN_FOUND = 0.01  # a video with a face in fewer frames than this cannot be evaluated
SERIES = ("yaw", "pitch", "roll", "mouth", "eyes")
# Below these standard deviations a series is still (above what tracking a video of one still frame gave
# on d3.mp4: up to 0.22 deg, 0.0005 and 0.0018 units) and its correlation is undefined, not one of noise.
STILL_STD = (0.3, 0.3, 0.3, 0.001, 0.004)


@dataclass(frozen=True)
class FaceSeries:
    """Per-frame measures of the face tracked in one video (canonical units: outer eye-corner distance)."""

    angles: torch.Tensor  # [T, 3] yaw, pitch, roll (deg)
    relative_angles: torch.Tensor  # [T, 3] the head rotation since the first frame as yaw, pitch, roll (deg)
    mouth: torch.Tensor  # [T] inner-lip gap
    eyes: torch.Tensor  # [T] mean upper-to-lower eyelid gap of both eyes
    expression: torch.Tensor  # [T, D] expression code minus the reference frame's
    landmarks: torch.Tensor  # [T, 478, 2] image landmarks divided by the head scale
    shape: torch.Tensor  # [478, 3] median head-frame shape
    found: torch.Tensor  # [T] bool
    ref: int  # the expression reference frame

    def series(self, name: str) -> torch.Tensor:
        return self.angles[:, SERIES.index(name)] if name in SERIES[:3] else getattr(self, name)


def face_series(tracks: Tracks, model: FaceModel, ref: int | None = None) -> FaceSeries:
    """Measures of tracked landmarks; `ref` None picks the most frontal, most neutral frame."""
    motion = extract_motion(tracks, model, ref)
    rot = motion.pose.rotation
    meshes = head_meshes(tracks.landmarks, motion.pose)
    gap = lambda pair: (meshes[:, pair[0]] - meshes[:, pair[1]]).norm(dim=-1)  # noqa: E731
    coeffs = motion.expression.coeffs
    return FaceSeries(
        angles=head_angles(rot),
        relative_angles=head_angles(rot @ rot[0].T @ FRONTAL),
        mouth=gap(LIP_GAP),
        eyes=lid_gaps(meshes).mean(-1),
        expression=coeffs - coeffs[motion.ref],
        landmarks=tracks.landmarks[..., :2] / motion.pose.scale[:, None, None],
        shape=meshes[tracks.found].median(0).values,
        found=tracks.found,
        ref=motion.ref,
    )


def track_file(path: Path, progress: bool = False) -> Tracks:
    """Landmarks of a whole video, tolerating frames without a face (they are interpolated and flagged)."""
    with open_video(path) as reader:
        n, fps = reader.info.n_frames, reader.info.fps
    return track_video(path, n, fps, TrackConfig(min_found=MIN_FOUND), progress=progress)


def pearson(a: torch.Tensor, b: torch.Tensor, still: float = 1e-9) -> float | None:
    """Pearson correlation of two series [T]; None when either's standard deviation is below `still`."""
    a, b = a.double() - a.double().mean(), b.double() - b.double().mean()
    n = len(a)
    if n < 2 or min(a.norm(), b.norm()) / math.sqrt(n) < still:
        return None
    return float((a * b).sum() / (a.norm() * b.norm()))


def shape_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """RMS distance of two head-frame shapes [478, 3] on the rigid points (nose, cheeks, forehead: identity
    without expression), after removing their means."""
    rigid = load_canonical().rigid
    a, b = a[rigid] - a[rigid].mean(0), b[rigid] - b[rigid].mean(0)
    return float((a - b).pow(2).sum(-1).mean().sqrt())


def jitter(landmarks: torch.Tensor) -> float | None:
    """Mean norm of the second time difference of landmarks [T, N, 2 or 3]: high-frequency shake; None below
    three frames."""
    if len(landmarks) < 3:
        return None
    return float((landmarks[2:] - 2 * landmarks[1:-1] + landmarks[:-2]).norm(dim=-1).mean())


@dataclass(frozen=True)
class Correlations:
    """Pearson correlation of output and driving series (None: a series is still)."""

    yaw: float | None
    pitch: float | None
    roll: float | None
    mouth: float | None
    eyes: float | None


@dataclass(frozen=True)
class Reconstruction:
    """Frame-by-frame fidelity to a reference video (means over frames)."""

    psnr: float  # dB; inf for identical videos
    ssim: float
    lpips: float | None  # None: LPIPS unavailable


@dataclass(frozen=True)
class Report:
    frames: int
    face_model: str
    apd: list  # mean |yaw|, |pitch|, |roll| difference (deg)
    apd_relative: list  # the same for the rotation since the first frame
    aed: float  # mean |expression change difference| per code entry
    correlation: Correlations
    jitter_output: float | None
    jitter_driving: float | None
    detection_rate: float  # output frames with a tracked face
    shape_to_source: float
    shape_to_driving: float
    identity_net: str | None  # None: no identity network installed
    identity_output: float | None  # cosine similarity of output frames to the source
    identity_driving: float | None  # the same for driving frames (a stranger's baseline)
    reconstruction: Reconstruction | None = None
    observer: dict | None = None  # `observer_section`; None: not asked for

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def lines(self) -> list[str]:
        """The report as printed by the command line."""
        f = lambda v, spec=".3f": "undefined" if v is None else format(v, spec)  # noqa: E731
        deg = lambda v: " / ".join(f"{x:.2f}" for x in v)  # noqa: E731
        c = self.correlation
        out = [
            f"frames: {self.frames}   face model: {self.face_model}",
            f"APD yaw / pitch / roll (deg): absolute {deg(self.apd)}; "
            f"relative to the first frame {deg(self.apd_relative)}",
            f"AED ({self.face_model} code, relative change): {self.aed:.4f}",
            "correlation output~driving: " + ", ".join(f"{n} {f(getattr(c, n))}" for n in SERIES),
            f"jitter (eye-corner units / frame^2): output {f(self.jitter_output, '.4f')}, "
            f"driving {f(self.jitter_driving, '.4f')}",
            f"face detection rate on the output: {self.detection_rate:.1%}",
            f"canonical-shape distance of the output: to the source {self.shape_to_source:.4f}, "
            f"to the driver {self.shape_to_driving:.4f}",
            UNAVAILABLE if self.identity_net is None else
            f"identity similarity ({self.identity_net}): output~source {f(self.identity_output)}, "
            f"driving~source {f(self.identity_driving)}",
        ]
        if self.reconstruction is not None:
            r = self.reconstruction
            out.append(f"reconstruction vs reference: PSNR {r.psnr:.2f} dB, SSIM {r.ssim:.4f}, "
                       + (LPIPS_UNAVAILABLE if r.lpips is None else f"LPIPS {r.lpips:.4f}"))
        if self.observer is not None:
            out += report_lines(self.observer)
        return out


@dataclass(frozen=True)
class EvalConfig:
    face: FaceModelConfig = field(default_factory=FaceModelConfig)
    arcface: Path | None = None  # ArcFace ONNX file for identity similarity (else dlib's network if installed)
    reference: Path | None = None  # video to compare the output with frame by frame (PSNR, SSIM, LPIPS)
    lpips: Path | None = None  # LPIPS linear-layer weights (AlexNet, v0.1)
    identity_frames: int = 8  # frames sampled per video for identity similarity
    observer: bool = True  # also judge with the independent dlib observer (when installed)
    observer_every: int = 5  # the observer's face descriptors on every k-th frame


@dataclass(frozen=True)
class Evaluation:
    report: Report
    driving: FaceSeries
    output: FaceSeries


def compare(driving: FaceSeries, output: FaceSeries) -> tuple[list, list, float, Correlations]:
    """APD (absolute, relative), AED and correlations of two series of equal length."""
    apd = (output.angles - driving.angles).abs().mean(0).tolist()
    apd_rel = (output.relative_angles - driving.relative_angles).abs().mean(0).tolist()
    aed = float((output.expression - driving.expression).abs().mean())
    corr = Correlations(*(pearson(output.series(n), driving.series(n), f) for n, f in zip(SERIES, STILL_STD)))
    return apd, apd_rel, aed, corr


def _identity(embedder, source_rgb: np.ndarray, source: Tracks, videos: list[tuple[Path, Tracks]], n: int) -> list:
    ref = embedder(source_rgb[None], source.landmarks)[0]
    scores = []
    for path, tracks in videos:
        found = torch.nonzero(tracks.found).flatten()
        picks = found[torch.linspace(0, len(found) - 1, min(n, len(found))).round().long()]
        with open_video(path) as reader:
            frames = reader.read(picks.tolist())
        scores.append(cosine_similarity(ref, embedder(frames, tracks.landmarks[picks])))
    return scores


def reconstruction(output: Path, reference: Path, lpips_weights: Path | None = None) -> Reconstruction:
    """Mean PSNR, SSIM (and LPIPS with weights) of the output's frames against a reference video's."""
    metric = Lpips(lpips_weights) if lpips_weights else None
    values: tuple[list, list, list] = ([], [], [])
    with open_video(output) as out, open_video(reference) as ref:
        if (out.info.n_frames, out.info.height, out.info.width) != (ref.info.n_frames, ref.info.height, ref.info.width):
            raise InputError(f"{reference}: the reference must have the output's frame count and size")
        for (_, a), (_, b) in zip(out.chunks(16), ref.chunks(16)):
            a, b = frames_to_tensor(a), frames_to_tensor(b)
            for store, fn in zip(values, (psnr, ssim, metric)):
                if fn is not None:
                    store.append(fn(a, b))
    p, s, lp = (torch.cat(v).mean().item() if v else None for v in values)
    return Reconstruction(p, s, lp)


def observer_section(source_rgb: np.ndarray, driving: Path, output: Path, ref: int, every: int = 5) -> dict:
    """The dlib observer's comparison of output, driver and source (`ObserverComparison.to_dict()` with
    `available` True), or `available` False and the reason with the install hint."""
    try:
        faces = load_observer()
    except MissingAssetError as exc:
        return {"available": False, "reason": str(exc)}
    seen = [observe_video(video, every, faces=faces) for video in (output, driving, source_rgb[None])]
    return {"available": True, **compare_observations(*seen, ref).to_dict()}


def evaluate(source: Path, driving: Path, output: Path, cfg: EvalConfig = EvalConfig()) -> Evaluation:
    """All measures of an output video against its source portrait and driving video."""
    model = load_face_model(cfg.face)
    drv_tracks, out_tracks = track_file(driving), track_file(output)
    if len(drv_tracks.found) != len(out_tracks.found):
        raise InputError(f"{output}: {len(out_tracks.found)} frames, but the driving video has {len(drv_tracks.found)}")
    source_rgb = load_source(source)
    src_tracks = track_image(source_rgb, name=str(source))
    drv = face_series(drv_tracks, model)
    out = face_series(out_tracks, model, drv.ref)
    src_shape = to_head_frame(src_tracks.landmarks, extract_motion(src_tracks, model, 0).pose)[0]
    apd, apd_rel, aed, corr = compare(drv, out)
    loaded = load_embedder(cfg.arcface)
    identity = [None, None] if loaded is None else _identity(
        loaded[1], source_rgb, src_tracks, [(output, out_tracks), (driving, drv_tracks)], cfg.identity_frames)
    report = Report(
        frames=len(out.found), face_model=model.name, apd=apd, apd_relative=apd_rel, aed=aed, correlation=corr,
        jitter_output=jitter(out.landmarks), jitter_driving=jitter(drv.landmarks),
        detection_rate=float(out.found.float().mean()),
        shape_to_source=shape_distance(out.shape, src_shape), shape_to_driving=shape_distance(out.shape, drv.shape),
        identity_net=None if loaded is None else loaded[0], identity_output=identity[0], identity_driving=identity[1],
        reconstruction=reconstruction(output, cfg.reference, cfg.lpips) if cfg.reference else None,
        observer=observer_section(source_rgb, driving, output, drv.ref, cfg.observer_every) if cfg.observer else None)
    return Evaluation(report, drv, out)


def plot(evaluation: Evaluation, path: Path) -> None:
    """PNG of the driving and output head angles (change since the first frame) and mouth opening over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drv, out = evaluation.driving, evaluation.output
    rows = [(f"{n} change (deg)", drv.relative_angles[:, i], out.relative_angles[:, i])
            for i, n in enumerate(SERIES[:3])] + [("mouth opening (eye-corner units)", drv.mouth, out.mouth)]
    fig, axes = plt.subplots(len(rows), 1, figsize=(10, 2.2 * len(rows)), sharex=True)
    for ax, (label, a, b) in zip(axes, rows):
        ax.plot(a.numpy(), label="driving", color="tab:blue")
        ax.plot(b.numpy(), label="output", color="tab:orange")
        ax.set_ylabel(label, fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper right")
    axes[-1].set_xlabel("frame")
    mouth = evaluation.report.correlation.mouth
    fig.suptitle(f"driving vs output: APD relative {' / '.join(f'{x:.1f}' for x in evaluation.report.apd_relative)}"
                 f" deg (yaw / pitch / roll), mouth correlation {'undefined' if mouth is None else f'{mouth:.2f}'}")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m reenact.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--source", type=Path, required=True, help="the portrait the output animates")
    p.add_argument("--driving", type=Path, required=True, help="the driving video")
    p.add_argument("--output", type=Path, required=True, help="the reenacted video to evaluate")
    p.add_argument("--json", type=Path, help="also write the report as JSON here")
    p.add_argument("--plot", type=Path, help="also draw driving vs output head angles and mouth opening to this PNG")
    p.add_argument("--reference", type=Path, help="video of the output's length to compare frame by frame (PSNR, SSIM)")
    p.add_argument("--arcface", type=Path, help="ArcFace ONNX model for identity similarity (needs onnxruntime)")
    p.add_argument("--lpips", type=Path, help="LPIPS AlexNet linear-layer weights (needs lpips + torchvision)")
    p.add_argument("--face-model", choices=["auto", "mesh-offset", "ict"], default="auto",
                   help="expression space for AED (auto: ICT-FaceKit ARKit coefficients when present)")
    p.add_argument("--no-observer", action="store_true",
                   help="skip the independent dlib observer (reported as unavailable without reenact[eval])")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        for given in (args.source, args.driving, args.output, args.reference):
            if given is not None and not given.exists():
                raise InputError(f"{given}: no such file")
        cfg = EvalConfig(FaceModelConfig(model=args.face_model), args.arcface, args.reference, args.lpips,
                         observer=not args.no_observer)
        evaluation = evaluate(args.source, args.driving, args.output, cfg)
    except ReenactError as exc:
        print(f"reenact: {exc}", file=sys.stderr)
        return 2
    print("\n".join(evaluation.report.lines()))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(evaluation.report.to_json())
    if args.plot:
        plot(evaluation, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
