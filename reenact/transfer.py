"""Transfer stage: the driving motion re-targeted onto the source subject.

Relative (default): source pose/expression + (driving(t) - driving(ref)), so the driver's own head
angle and resting face at the reference frame do not leak into the result. The reference is picked
automatically as the most frontal, most neutral frame (`choose_reference`), the eyes changing from the driver's
median eyes instead (`eyes_at_rest`), unless given.
Absolute: the driver's head rotation and expression code as they are, at the source's position and size.
Turns beyond `max_yaw` / `max_pitch` from the source's and zooms beyond `max_zoom` are bent softly (`soft_limit`)
toward those limits: the warp renderer tears past them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import torch

from reenact.canonical import IRIS_CENTRES, LIP_GAP, lid_gaps, load_canonical
from reenact.errors import InputError
from reenact.geometry import angles_to_matrix, head_angles
from reenact.structures import Expression, HeadPose, Motion

FRONTAL_DEG = 10.0  # head angle (deg) that costs as much as ...
NEUTRAL_RMS = 0.05  # ... this RMS head-frame deviation from the median face, or ...
MOUTH_GAP = 0.1  # ... this inner-lip gap (canonical units: outer eye-corner distance), or ...
EYE_GAP = 0.06  # ... this change of the mean lid gap from the clip's median (a blink, a squint, wide eyes)
MESH_OFFSET = "mesh-offset"  # the default model's code: head-frame landmark offsets, 478 x 3 per frame
KNEE = 0.75  # fraction of a turn limit up to which turns pass unchanged
LID_REACH = (0.3, 0.5)  # eye-region radius (outer eye-corner distances) where lid offsets scale fully, then fade


@dataclass(frozen=True)
class TransferConfig:
    mode: Literal["relative", "absolute"] = "relative"
    ref_frame: int | None = None  # driving reference frame; None chooses the most frontal, most neutral one
    expression_scale: float = 1.0  # multiplies the transferred expression change
    coefficient_scales: str = ""  # per named coefficient, e.g. "jawOpen=1.2,mouthSmile_L=0.5" (ARKit codes)
    max_yaw: float = 40.0  # deg the output head may turn from the source's; larger turns are limited softly
    max_pitch: float = 30.0  # deg, the same up or down (a 2D warp tears beyond these)
    max_zoom: float = 1.3  # factor the output head may grow or shrink from the source's; beyond, limited softly
    pose: bool = True  # follow the driver's head pose (False: expression only)
    expression: bool = True  # follow the driver's expression (False: pose only)


def choose_reference(meshes: torch.Tensor, pose: HeadPose, found: torch.Tensor) -> int:
    """Index of the frame with the smallest head angle + expression deviation + mouth opening + eye-openness
    change. The eye term matters: a blink moves few vertices (a small RMS deviation), but as the reference it
    would make every open-eyed frame read as eyes opening wide and every blink as barely closing."""
    angle = pose.angles().norm(dim=-1) / FRONTAL_DEG
    median = meshes[found].median(dim=0).values
    deviation = (meshes - median).pow(2).sum(-1).mean(-1).sqrt() / NEUTRAL_RMS
    gap = (meshes[:, LIP_GAP[0]] - meshes[:, LIP_GAP[1]]).norm(dim=-1) / MOUTH_GAP
    eyes = lid_gaps(meshes).mean(-1)
    eyes = (eyes - eyes[found].median()).abs() / EYE_GAP
    cost = angle + deviation + gap + eyes
    cost[~found] = float("inf")
    return int(cost.argmin())


def coefficient_scales(spec: str, expression: Expression) -> torch.Tensor:
    """Factors [D] from "name=factor,..." over the expression's named coefficients (1 where not named)."""
    scales = torch.ones(expression.coeffs.shape[1])
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, value = item.partition("=")
        if name.strip() not in expression.names:
            known = "; known: " + ", ".join(expression.names) if expression.names else \
                " (only the ICT-FaceKit model has named coefficients: --face.model ict)"
            raise InputError(f"--transfer.coefficient-scales: no coefficient {name.strip()!r}{known}")
        try:
            scales[expression.names.index(name.strip())] = float(value)
        except ValueError:
            raise InputError(f"--transfer.coefficient-scales: {item!r} is not name=number") from None
    return scales


def eye_region() -> torch.Tensor:
    """Weights [478, 2] of the landmarks around each eye: 1 within LID_REACH[0] outer eye-corner distances of its
    iris centre, fading to 0 at LID_REACH[1]."""
    face = load_canonical()
    centres = face.shape[list(IRIS_CENTRES), :2]
    distance = (face.shape[:, None, :2] - centres[None]).norm(dim=-1)  # [478, 2]
    return 1 - ((distance - LID_REACH[0]) / (LID_REACH[1] - LID_REACH[0])).clamp(0, 1)


def lid_scales(source_shape: torch.Tensor, driving_shape: torch.Tensor) -> torch.Tensor:
    """Factors [478 * 3] on mesh-offset codes that retarget the driver's lid motion to the source's eyes: around
    each eye, the driver's offsets scaled by the ratio of the source's lid gap to the driver's at the reference
    frame (within 0.5-2), so a driver's blink closes eyes larger than the driver's and does not cross the lids of
    smaller ones; 1 away from the eyes."""
    ratio = (lid_gaps(source_shape) / lid_gaps(driving_shape).clamp_min(1e-3)).clamp(0.5, 2.0)  # [2] per eye
    factor = 1 + (eye_region() * (ratio - 1)).sum(-1)
    return factor[:, None].expand(-1, 3).reshape(-1)


def eye_codes(expression: Expression) -> torch.Tensor:
    """Weights [D] of the expression coefficients that move the eyes: the offsets of the landmarks around them
    (mesh-offset model, `eye_region`), the ARKit eye shapes (blink, squint, wide, look), none otherwise."""
    if expression.model == MESH_OFFSET:
        return eye_region().amax(-1)[:, None].expand(-1, 3).reshape(-1)
    names = expression.names or [""] * expression.coeffs.shape[1]
    return torch.tensor([float(name.startswith("eye")) for name in names])


def eyes_at_rest(driving: Motion) -> torch.Tensor:
    """The driving code [D] the transfer measures change from: the reference frame's, but the eyes' from the
    driver's median over the found frames. The automatic reference is picked for a frontal head and a neutral
    mouth too; a driver who smiles through the clip may only offer one with narrowed eyes, which would open the
    portrait's eyes wide in every other frame (vs29: 1.47 / 1.24 times the portrait's lid gaps, median over the
    clip). A reference the user names (`ref_frame`) holds for the eyes too: in self-reenactment frame 0's eyes are
    the truth's."""
    coeffs = driving.expression.coeffs
    found = driving.found if bool(driving.found.any()) else torch.ones_like(driving.found)
    return torch.lerp(coeffs[driving.ref], coeffs[found].median(0).values, eye_codes(driving.expression).to(coeffs))


def soft_limit(x: torch.Tensor, limit: float, knee: float = KNEE) -> torch.Tensor:
    """x unchanged up to `knee * limit` in size, then bent smoothly (tanh) toward +-limit, never past it."""
    start = knee * limit
    over = (x.abs() - start).clamp_min(0)
    return torch.where(x.abs() <= start, x, x.sign() * (start + (limit - start) * torch.tanh(over / (limit - start))))


def limit_turn(rotation: torch.Tensor, source: torch.Tensor, max_yaw: float, max_pitch: float) -> torch.Tensor:
    """Rotations [T, 3, 3] whose yaw and pitch away from the `source` rotation [3, 3] are soft-limited; frames
    within the knee keep their rotation exactly."""
    angles, base = head_angles(rotation), head_angles(source[None])[0]
    turn = angles[:, :2] - base[:2]
    limited = torch.stack([soft_limit(turn[:, 0], max_yaw), soft_limit(turn[:, 1], max_pitch)], 1)
    bent = (limited != turn).any(-1)
    if not bent.any():
        return rotation
    out = rotation.clone()
    out[bent] = angles_to_matrix(torch.cat([base[:2] + limited[bent], angles[bent, 2:]], 1))
    return out


def transfer(source: Motion, driving: Motion, cfg: TransferConfig = TransferConfig()) -> Motion:
    """A Motion with the driving video's frames, the source subject's shape and re-targeted pose/expression."""
    n, ref = len(driving), driving.ref
    src, drv = source.pose, driving.pose
    if not cfg.pose:
        pose = src.repeat_first(n)
    elif cfg.mode == "relative":
        delta = drv.rotation @ drv.rotation[ref].T
        ratio = src.scale[0] / drv.scale[ref]
        pose = HeadPose(limit_turn(delta @ src.rotation[0], src.rotation[0], cfg.max_yaw, cfg.max_pitch),
                        src.translation[0] + (drv.translation - drv.translation[ref]) * ratio,
                        src.scale[0] * soft_limit((drv.scale / drv.scale[ref]).log(), math.log(cfg.max_zoom)).exp())
    else:
        pose = HeadPose(limit_turn(drv.rotation.clone(), src.rotation[0], cfg.max_yaw, cfg.max_pitch),
                        src.translation[:1].expand(n, -1).clone(), src.scale[:1].expand(n).clone())
    base = source.expression.coeffs[:1].expand(n, -1)
    scale = cfg.expression_scale * coefficient_scales(cfg.coefficient_scales, driving.expression)
    if cfg.mode == "relative" and driving.expression.model == MESH_OFFSET:
        scale = scale * lid_scales(source.shape, driving.shape)
    if not cfg.expression:
        coeffs = base
    elif cfg.mode == "relative":
        rest = eyes_at_rest(driving) if cfg.ref_frame is None else driving.expression.coeffs[ref]
        coeffs = base + scale * (driving.expression.coeffs - rest)
    else:
        coeffs = scale * driving.expression.coeffs
    if driving.expression.names:  # named codes are blend-shape weights in [0, 1]
        coeffs = coeffs.clamp(0, 1)
    expression = replace(source.expression, coeffs=coeffs.contiguous())
    return Motion(pose, expression, source.shape, driving.found, driving.fps, ref)
