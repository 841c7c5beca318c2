"""Named expression presets (smile, open mouth, blink, surprise) for driving a still without a driver.

Each preset is given twice: as ARKit blend-shape weights, for a face model with named coefficients
(ICT-FaceKit), and as a head-frame displacement of the 478 landmarks for the default mesh-offset model,
built from smooth falloffs around the mouth corners, jaw, eyelids and brows of the canonical face
(units: outer eye-corner distance).
"""
from __future__ import annotations

import torch

from reenact.canonical import IRIS_CENTRES, LIP_GAP, load_canonical
from reenact.errors import InputError

ARKIT = {
    "smile": {"mouthSmile_L": 0.8, "mouthSmile_R": 0.8, "cheekSquint_L": 0.3, "cheekSquint_R": 0.3, "jawOpen": 0.1},
    "open_mouth": {"jawOpen": 0.6},
    "blink": {"eyeBlink_L": 1.0, "eyeBlink_R": 1.0},
    "surprise": {"browInnerUp": 0.8, "browOuterUp_L": 0.7, "browOuterUp_R": 0.7, "eyeWide_L": 0.6,
                 "eyeWide_R": 0.6, "jawOpen": 0.3},
}
MOUTH_CORNERS = (61, 291)
EXPRESSION_REGION = 0.35  # eye-corner distances: mouth, eyes and brows take a driving photo's shape within this


def _gauss(points: torch.Tensor, centre: torch.Tensor, radius: float) -> torch.Tensor:
    return torch.exp(-((points - centre) ** 2).sum(-1) / (2 * radius**2))


def _jaw(x: torch.Tensor, amount: float) -> torch.Tensor:
    """Lower lip, chin and jaw drop; the upper lip stays."""
    below = ((x[LIP_GAP[0], 1] - 0.02 - x[:, 1]) / 0.1).clamp(0, 1)
    lateral = torch.exp(-(x[:, 0] / 0.9) ** 2)
    d = torch.zeros_like(x)
    d[:, 1] = -amount * below * lateral
    return d


def _lids(x: torch.Tensor, amount: float) -> torch.Tensor:
    """Upper eyelids toward (amount > 0, a blink) or away from (< 0) the eye's centre line."""
    d = torch.zeros_like(x)
    for centre in x[list(IRIS_CENTRES)]:
        near = _gauss(x[:, :2], centre[:2], 0.16)
        above = (x[:, 1] - centre[1]).clamp_min(0)
        d[:, 1] -= amount * near * above * 1.8
    return d


def mesh_offsets(name: str, strength: float = 1.0) -> torch.Tensor:
    """Head-frame displacement [478, 3] of a preset for the mesh-offset model."""
    x = load_canonical().shape
    d = torch.zeros_like(x)
    if name == "smile":
        for idx, side in zip(MOUTH_CORNERS, (-1.0, 1.0)):
            w = _gauss(x, x[idx], 0.22)[:, None]
            d += w * torch.tensor([0.09 * side, 0.10, -0.02])
        d += _jaw(x, 0.06)
    elif name == "open_mouth":
        d += _jaw(x, 0.35)
    elif name == "blink":
        d += _lids(x, 1.0)
    elif name == "surprise":
        brows = ((x[:, 1] > 0.12) & (x[:, 1] < 0.5)).float() * torch.exp(-(x[:, 0] / 0.9) ** 2)
        d[:, 1] += 0.12 * brows
        d += _lids(x, -0.3) + _jaw(x, 0.18)
    else:
        raise InputError(f"unknown expression preset {name!r}; choose from {', '.join(ARKIT)}")
    return strength * d


def expressive_region(shape: torch.Tensor) -> torch.Tensor:
    """Weight [478, 1] of the expressive parts (mouth, eyes, brows) of a head-frame shape: where a still takes a
    driving photo's face shape (the rest of the shape is the subject's own)."""
    centres = torch.cat([shape[list(IRIS_CENTRES)], shape[list(LIP_GAP)].mean(0, keepdim=True)])
    centres = torch.cat([centres, shape[list(IRIS_CENTRES)] + torch.tensor([0.0, 0.2, 0.0])])  # brows
    d = (shape[:, None, :2] - centres[None, :, :2]).norm(dim=-1).min(1).values
    return (1 - ((d - EXPRESSION_REGION) / 0.2).clamp(0, 1))[:, None]
