"""An independent observer of faces in videos, and comparisons of what it sees in an output and its inputs.

The pipeline tracks with mediapipe FaceMesh and measures pose and expression with its own face models; judging
an output with that same tracker rewards whatever the tracker likes to see. This observer shares none of it:
dlib's HOG detector and 68-landmark predictor (`third_party_wrappers.dlib_face`), a perspective head pose fitted
to the rigid nose and eye-corner points of the ICT-FaceKit mesh (`data/ict_landmarks68.npz`, centimetres), 2D
expression measures in inter-ocular units (outer eye corners 36-45) along the face's own in-plane axes, and
dlib's 128-d face descriptors (same person below a distance of 0.6).

Angles follow `reenact.geometry.head_angles` (yaw > 0 turns the face toward the image right, pitch > 0 tips
it down, roll > 0 tilts it counter-clockwise in the image). The camera has a focal length of the larger image
side and its principal point at the image centre. The rotation is taken relative to the ray from the camera to
the face (`ray_relative`): what the face's appearance shows, as the pipeline's orthographic fit measures it,
so a face off the image centre, or framed differently in output and driver, is not read as turned. The
absolute pitch carries a constant offset (how dlib's nose points sit on a face compared with ICT's), which
relative measures cancel. The assumed focal length scales the angles a little: on d3.mp4 (a tight crop of a
face) a 100 times longer one reads 20 % more yaw motion.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from reenact.errors import MissingAssetError
from reenact.geometry import head_angles, rotvec_to_matrix
from reenact.structures import Record
from third_party_wrappers.dlib_face import DlibFaces
from third_party_wrappers.video import open_video

LANDMARKS_3D = Path(__file__).with_name("data") / "ict_landmarks68.npz"
RIGID = (27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45)  # nose bridge, nose base, eye corners
EYE_OUTER = (36, 45)  # subject's right, left
EYE_CORNERS = (36, 39, 42, 45)
INNER_LIPS = ((61, 62, 63), (67, 66, 65))  # upper, lower
LIDS = ((37, 38, 43, 44), (41, 40, 47, 46))  # upper, lower
MOUTH_CORNERS = (48, 54)
BROWS = tuple(range(17, 27))
EXPRESSIONS = ("mouth_open", "mouth_width", "eyes_open", "brows")
ANGLES = ("yaw", "pitch", "roll")
SAME_PERSON = 0.6  # dlib's descriptor distance below which two faces are the same person
# Standard deviations below which a series is still and its correlation undefined: above what observing a
# re-encoded video of one frame of d3.mp4 gives (up to 0.37 deg and 0.0065 units at 256 or 512 px).
STILL_ANGLE = 0.5  # deg
STILL_EXPRESSION = 0.01  # inter-ocular units


@dataclass(frozen=True)
class Observation(Record):
    """What the dlib observer sees in each frame of one video (NaN where it sees no face)."""

    landmarks: torch.Tensor  # [T, 68, 2] float32 px, x right, y down (Multi-PIE order)
    found: torch.Tensor  # [T] bool: landmarks predicted (a detection, or the previous box carried over)
    detected: torch.Tensor  # [T] bool: the frontal face detector fired
    angles: torch.Tensor  # [T, 3] ANGLES (deg)
    expression: torch.Tensor  # [T, 4] EXPRESSIONS, inter-ocular units
    descriptors: torch.Tensor  # [T, 128] float32; NaN also on frames skipped by `every`
    height: int
    width: int
    every: int  # descriptors were computed on every `every`-th frame

    def __len__(self) -> int:
        return len(self.found)


@lru_cache(maxsize=1)
def landmarks_3d() -> torch.Tensor:
    """[68, 3] float64 positions of the 68 landmarks on the ICT-FaceKit neutral mesh (cm, head frame)."""
    with np.load(LANDMARKS_3D) as d:
        return torch.from_numpy(d["points"]).double()


def solve_pnp(points: torch.Tensor, model: torch.Tensor, focal: float, centre: tuple[float, float],
              iterations: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Perspective pose of a rigid model [N, 3] seen at image points [F, N, 2]: camera = R @ model + t.

    Batched over frames: a scaled-orthographic start (least-squares 2x3 map, its rows orthonormalised), then
    damped Gauss-Newton on the reprojection error. Returns R [F, 3, 3] (image-from-head, as in
    `reenact.geometry`) and t [F, 3] in model units.
    """
    pts, model = points.double(), model.double()
    c = torch.tensor(centre, dtype=torch.float64)
    x0, m0 = pts - pts.mean(1, keepdim=True), model - model.mean(0)
    affine = torch.linalg.lstsq(m0.expand(len(pts), -1, -1), x0).solution.transpose(1, 2)  # [F, 2, 3]
    u, s, vh = torch.linalg.svd(affine, full_matrices=False)
    rows = u @ vh
    rot = torch.cat([rows, torch.linalg.cross(rows[:, 0], rows[:, 1])[:, None]], 1)
    depth = focal / s.mean(-1)
    centroid = torch.cat([(pts.mean(1) - c) * depth[:, None] / focal, depth[:, None]], -1)
    trans = centroid - rot @ model.mean(0)
    for _ in range(iterations):
        arm = model @ rot.transpose(1, 2)  # [F, N, 3] R @ X
        cam = arm + trans[:, None]
        z = cam[..., 2:]
        residual = (focal * cam[..., :2] / z + c - pts).flatten(1)  # [F, 2N]
        zero = torch.zeros_like(z[..., 0])
        dproj = torch.stack([torch.stack([1 / z[..., 0], zero, -cam[..., 0] / z[..., 0] ** 2], -1),
                             torch.stack([zero, 1 / z[..., 0], -cam[..., 1] / z[..., 0] ** 2], -1)], -2) * focal
        ax, ay, az = arm.unbind(-1)
        neg_skew = torch.stack([torch.stack([zero, az, -ay], -1), torch.stack([-az, zero, ax], -1),
                                torch.stack([ay, -ax, zero], -1)], -2)  # d(exp(w) R X)/dw = -[R X]x
        eye = torch.eye(3, dtype=torch.float64).expand_as(neg_skew)
        jac = (dproj @ torch.cat([neg_skew, eye], -1)).flatten(1, 2)  # [F, 2N, 6]
        hess = jac.transpose(1, 2) @ jac
        hess = hess + 1e-6 * torch.diag_embed(hess.diagonal(dim1=1, dim2=2))
        step = -torch.linalg.solve(hess, (jac.transpose(1, 2) @ residual[..., None]))[..., 0]
        rot = rotvec_to_matrix(step[:, :3]) @ rot
        trans = trans + step[:, 3:]
    return rot, trans


def ray_relative(rot: torch.Tensor, point: torch.Tensor) -> torch.Tensor:
    """Rotations [F, 3, 3] re-expressed in a camera turned (the shortest way) to look along the ray to `point`
    [F, 3]: the rotation an orthographic view of the face shows, whatever its place in the frame."""
    ray = point / point.norm(dim=-1, keepdim=True)
    axis = torch.linalg.cross(torch.tensor([0.0, 0.0, 1.0], dtype=ray.dtype).expand_as(ray), ray)
    sin = axis.norm(dim=-1, keepdim=True)
    turn = rotvec_to_matrix(axis / sin.clamp_min(1e-12) * torch.atan2(sin, ray[:, 2:]))
    return turn.transpose(1, 2) @ rot


def expression_measures(landmarks: torch.Tensor) -> torch.Tensor:
    """EXPRESSIONS [T, 4] of landmarks [T, 68, 2], in inter-ocular units along the face's in-plane axes.

    Mouth opening: mean inner-lip gap; mouth width: corner to corner; eye openness: mean lid gap of both
    eyes; brows: mean height of the ten brow points above the mean eye corner.
    """
    across = landmarks[:, EYE_OUTER[1]] - landmarks[:, EYE_OUTER[0]]
    iod = across.norm(dim=-1)
    right = across / iod[:, None]
    up = torch.stack([right[:, 1], -right[:, 0]], -1)  # image y points down

    def height(upper, lower) -> torch.Tensor:
        return ((landmarks[:, list(upper)] - lower) * up[:, None]).sum(-1).mean(1)

    eye_level = landmarks[:, list(EYE_CORNERS)].mean(1, keepdim=True)
    mouth_width = ((landmarks[:, MOUTH_CORNERS[1]] - landmarks[:, MOUTH_CORNERS[0]]) * right).sum(-1)
    measures = torch.stack([height(INNER_LIPS[0], landmarks[:, list(INNER_LIPS[1])]), mouth_width,
                            height(LIDS[0], landmarks[:, list(LIDS[1])]), height(BROWS, eye_level)], -1)
    return measures / iod[:, None]


def _frames(video: str | Path | np.ndarray) -> tuple[Iterator[np.ndarray], int, int, int]:
    if isinstance(video, np.ndarray):
        return iter(video), len(video), *video.shape[1:3]
    reader = open_video(video)

    def frames():
        with reader:
            for _, chunk in reader.chunks(32):
                yield from chunk

    return frames(), reader.info.n_frames, reader.info.height, reader.info.width


def load_observer() -> DlibFaces:
    """dlib's face models (loading takes ~1.5 s), or MissingAssetError with the install hint."""
    try:
        return DlibFaces()
    except ImportError as exc:
        raise MissingAssetError(str(exc)) from None


def observe_video(video: str | Path | np.ndarray, every: int = 1, max_carry: int = 30,
                  faces: DlibFaces | None = None) -> Observation:
    """Observe the face in a video file (or folder of images) or in RGB uint8 frames [T, H, W, 3].

    `every`: descriptors on every k-th frame only (the network takes ~0.1 s a face on a CPU, 30x the
    landmarks); `max_carry`: frames in a row that a turned head keeps the last detection's box; `faces`:
    the models of an earlier `load_observer()`, to load them once for several videos.
    """
    faces = faces or load_observer()
    frames, n, height, width = _frames(video)
    landmarks = torch.full((n, 68, 2), math.nan)
    descriptors = torch.full((n, 128), math.nan)
    detected = torch.zeros(n, dtype=torch.bool)
    for i, (hit, points, descriptor) in enumerate(faces.track(frames, every, max_carry)):
        detected[i] = hit
        if points is not None:
            landmarks[i] = torch.from_numpy(points)
        if descriptor is not None:
            descriptors[i] = torch.from_numpy(descriptor)
    found = ~landmarks[:, 0, 0].isnan()
    angles = torch.full((n, 3), math.nan)
    if found.any():
        model = landmarks_3d()[list(RIGID)]
        rot, trans = solve_pnp(landmarks[found][:, list(RIGID)], model, float(max(height, width)),
                               ((width - 1) / 2, (height - 1) / 2))
        angles[found] = head_angles(ray_relative(rot, rot @ model.mean(0) + trans)).float()
    return Observation(landmarks=landmarks, found=found, detected=detected, angles=angles,
                       expression=expression_measures(landmarks), descriptors=descriptors,
                       height=height, width=width, every=every)


def _num(x) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def _column_stats(a: torch.Tensor, b: torch.Tensor, still: float) -> tuple[list, list]:
    """Per column of [F, D] series: Pearson correlation of a and b (None when either is still) and the ratio of
    their standard deviations a / b (None when b is still)."""
    a, b = a.double() - a.double().mean(0), b.double() - b.double().mean(0)
    sa, sb = a.pow(2).mean(0).sqrt(), b.pow(2).mean(0).sqrt()
    corr = ((a * b).mean(0) / (sa * sb)).where((sa >= still) & (sb >= still), math.nan)
    return [_num(r) for r in corr], [_num(r) for r in (sa / sb).where(sb >= still, math.nan)]


def _distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Euclidean distances of descriptor rows [N, 128] to b (broadcast), where both exist."""
    d = (a - b).norm(dim=-1)
    return d[~d.isnan()]


@dataclass(frozen=True)
class ObserverComparison:
    """An output's observed motion and identity against its driving video and source portrait.

    Motion is the change since frame `ref`, over the frames where both videos show a face (correlations and
    standard deviations are the same for a series and its change). Pose lists hold yaw, pitch, roll, then all
    axes together (sums). None: undefined (no face, or a still driver or output).
    """

    frames: int  # frames with a face in both output and driver
    output_found: float  # fraction of output frames with landmarks
    output_detected: float  # fraction where the frontal detector fired
    ref: int
    pose_error: list  # mean |change(output) - change(driver)| (deg)
    driver_motion: list  # mean |change(driver)| (deg)
    pose_error_ratio: list  # pose_error / driver_motion: 0 follows exactly, 1 misses as much as a still head would
    pose_std_ratio: list  # std(output) / std(driver) per axis
    pose_correlation: list  # Pearson correlation per axis
    expression_correlation: dict  # EXPRESSIONS -> Pearson correlation
    expression_std_ratio: dict  # EXPRESSIONS -> std(output) / std(driver)
    identity_to_source: float | None  # mean descriptor distance of output frames to the source
    identity_to_driver: float | None  # ... to the driving frame at the same time
    driver_to_source: float | None  # the driver's own distance to the source (a stranger's baseline)
    same_person_rate: float | None  # output frames within SAME_PERSON of the source

    def to_dict(self) -> dict:
        return asdict(self)


def compare_observations(output: Observation, driving: Observation, source: Observation,
                         ref: int = 0) -> ObserverComparison:
    """Observed output vs driver motion (change since `ref`, or the frame nearest it with a face in both) and
    output identity vs the first face observed in the source."""
    if len(output) != len(driving):
        raise ValueError(f"{len(output)} output frames, {len(driving)} driving frames")
    both = output.found & driving.found
    common = torch.nonzero(both).flatten()
    ref = int(common[(common - ref).abs().argmin()]) if len(common) else ref
    change_out, change_drv = output.angles[both] - output.angles[ref], driving.angles[both] - driving.angles[ref]
    error, motion = (change_out - change_drv).abs().mean(0), change_drv.abs().mean(0)
    error, motion = torch.cat([error, error.sum()[None]]), torch.cat([motion, motion.sum()[None]])
    pose_corr, pose_ratio = _column_stats(output.angles[both], driving.angles[both], STILL_ANGLE)
    expr_corr, expr_ratio = _column_stats(output.expression[both], driving.expression[both], STILL_EXPRESSION)
    faces = source.descriptors[~source.descriptors[:, 0].isnan()]
    src = faces[0] if len(faces) else torch.full((128,), math.nan)
    to_source = _distances(output.descriptors, src)
    return ObserverComparison(
        frames=len(common), output_found=float(output.found.float().mean()),
        output_detected=float(output.detected.float().mean()), ref=ref,
        pose_error=[_num(e) for e in error], driver_motion=[_num(m) for m in motion],
        pose_error_ratio=[_num(e / m) if m >= STILL_ANGLE else None for e, m in zip(error, motion)],
        pose_std_ratio=pose_ratio, pose_correlation=pose_corr,
        expression_correlation=dict(zip(EXPRESSIONS, expr_corr)),
        expression_std_ratio=dict(zip(EXPRESSIONS, expr_ratio)),
        identity_to_source=_num(to_source.mean()),
        identity_to_driver=_num(_distances(output.descriptors, driving.descriptors).mean()),
        driver_to_source=_num(_distances(driving.descriptors, src).mean()),
        same_person_rate=_num((to_source < SAME_PERSON).float().mean()))


def report_lines(section: dict) -> list[str]:
    """The "observer (dlib)" section of `python -m reenact.evaluate`: an ObserverComparison's `to_dict()` with
    `available` True, or `available` False and the `reason`."""
    if not section["available"]:
        return [f"observer (dlib): unavailable: {section['reason']}"]
    f = lambda v, spec=".3f": "undefined" if v is None else format(v, spec)  # noqa: E731
    axes = lambda v: " / ".join(f(x, ".2f") for x in v)  # noqa: E731
    named = lambda d: ", ".join(f"{k} {f(v, '.2f')}" for k, v in d.items())  # noqa: E731
    s = section
    return [
        f"observer (dlib): output face in {s['output_found']:.1%} of frames (detected in {s['output_detected']:.1%}); "
        f"{s['frames']} frames with a face in both; motion as the change since frame {s['ref']}",
        f"  pose error yaw / pitch / roll / all (deg): {axes(s['pose_error'])}; driver motion "
        f"{axes(s['driver_motion'])}; ratio {axes(s['pose_error_ratio'])}",
        f"  pose output/driver: std ratio {axes(s['pose_std_ratio'])}; correlation {axes(s['pose_correlation'])}",
        f"  expression correlation: {named(s['expression_correlation'])}",
        f"  expression std ratio: {named(s['expression_std_ratio'])}",
        f"  identity distance (same person < {SAME_PERSON}): output~source {f(s['identity_to_source'])}, "
        f"output~driver {f(s['identity_to_driver'])}, driver~source {f(s['driver_to_source'])}; "
        f"output frames of the source's person {f(s['same_person_rate'], '.1%')}",
    ]
