"""The dense ICT-FaceKit face surface that the warp renderer maps through with the ICT model.

The 478 tracked landmarks give a coarse mesh (852 triangles); the ICT model's skin gives the same face as about ten
thousand triangles whose motion under the 53 blend shapes is modelled (lips that part and stretch, lids that
close, a nose that hides the far cheek). `DenseBasis` is that surface: the upstream "narrow face" (vertices
0-6705: skin, eyelids and lips; no eyeballs or mouth interior), quads split into triangles, clipped to the tracked
face outline, less the triangles a frontal view does not show (the insides of nostrils, lids and lips: a source
photo holds no texture for them; the holes this leaves in the nostrils are capped), in the canonical head frame
through the same similarity as the landmark basis, and cached beside it (5 MB instead of the 16 MB model).

`subject_face` dresses it as one subject: the 100 identity weights solved (Gaussian prior) from the source's
landmark shape, plus what the model cannot explain carried onto every vertex by a smooth spline, so that at the
source's expression the surface passes through the tracked landmarks.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from reenact.canonical import load_canonical
from reenact.errors import InputError, MissingAssetError
from reenact.ict import MODEL, IctModel, landmark_weights
from reenact.ict_basis import at_landmarks, cached_basis, correspondence, ict_to_head, locate_model
from reenact.raster import rasterize
from reenact.structures import Motion, Record

NARROW_FACE = 6706  # upstream vertex ranges: 0-6705 is the narrow face (skin, eyelids, lips)
SURFACE_LANDMARKS = 468  # landmarks on the skin; the last 10 (irises) lie on the eyeballs
DENSE_VERSION = 2
SPLINE_SMOOTHING = 1e-4  # regularises the residual spline where landmarks nearly meet (closed lips)
VISIBILITY_PX = 1024  # resolution of the frontal depth buffer that finds the hidden triangles
HIDDEN_DEPTH = 0.03  # head units (eye-corner distances) behind the front surface that count as hidden
OPENING_RADIUS = 0.15  # head units: a hole whose centre is this near an eye's or the mouth's stays open


def _inside(points: torch.Tensor, polygon: torch.Tensor) -> torch.Tensor:
    """Whether 2D points [N, 2] lie inside a closed polygon [K, 2] (even-odd rule), [N] bool."""
    a, b = polygon[None], polygon.roll(-1, 0)[None]
    p = points[:, None]
    straddles = (a[..., 1] > p[..., 1]) != (b[..., 1] > p[..., 1])
    t = (p[..., 1] - a[..., 1]) / torch.where(straddles, b[..., 1] - a[..., 1], torch.ones(()))
    crosses = straddles & (p[..., 0] < a[..., 0] + t * (b[..., 0] - a[..., 0]))
    return crosses.sum(1) % 2 == 1


def _front_visible(verts: torch.Tensor, tris: torch.Tensor) -> torch.Tensor:
    """Triangles [F] bool that the neutral face shows from the front: no more than HIDDEN_DEPTH behind the nearest
    surface at their centre (not the insides of nostrils, lids and lips, which the source photo does not show)."""
    xy = verts[:, :2]
    lo, hi = xy.amin(0), xy.amax(0)
    k = VISIBILITY_PX / float((hi - lo).max())
    pixels = torch.stack([(xy[:, 0] - lo[0]) * k, (hi[1] - xy[:, 1]) * k, -verts[:, 2]], -1)  # smaller z: nearer
    zbuf = rasterize(pixels[None], tris, VISIBILITY_PX + 1, VISIBILITY_PX + 1).zbuf[0]
    centre = pixels[tris].mean(1)
    col, row = centre[:, :2].long().clamp(0, VISIBILITY_PX).unbind(-1)
    return centre[:, 2] <= zbuf[row, col] + HIDDEN_DEPTH


def _caps(verts: torch.Tensor, tris: torch.Tensor, openings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Fans closing the holes of a triangle mesh other than its outline (the longest border) and the openings
    whose centres [K, 3] are given (eyes, mouth): cap triangles [C, 3] whose centre vertices are numbered after
    `verts`, and the centres as averages of their rims, [n_caps, V]."""
    edges = torch.cat([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]])
    _, inverse, counts = torch.unique(edges.sort(1).values, dim=0, return_inverse=True, return_counts=True)
    border = edges[counts[inverse] == 1]
    label = torch.arange(len(verts))
    while True:  # connected rims: propagate the smallest vertex index along border edges
        low = torch.minimum(label[border[:, 0]], label[border[:, 1]])
        new = label.scatter_reduce(0, border.flatten(), low.repeat_interleave(2), "amin")
        if torch.equal(new, label):
            break
        label = new
    rims, rim_of_edge = torch.unique(label[border[:, 0]], return_inverse=True)
    size = torch.bincount(rim_of_edge)
    centre = torch.zeros(len(rims), 3).index_add_(0, rim_of_edge, verts[border[:, 0]]) / size[:, None]
    keep_open = torch.cdist(centre[:, :2], openings[:, :2]).amin(1) < OPENING_RADIUS
    keep_open[size.argmax()] = True
    closed = ~keep_open[rim_of_edge]
    cap_of_edge = (torch.cumsum(~keep_open, 0) - 1)[rim_of_edge[closed]]
    caps = torch.stack([border[closed, 1], border[closed, 0], len(verts) + cap_of_edge], 1)
    members = torch.zeros(int((~keep_open).sum()), len(verts))
    members.index_put_((cap_of_edge, border[closed, 0]), torch.ones(()), accumulate=True)
    return caps, members / members.sum(1, keepdim=True)


def _combine(weights: torch.Tensor, modes: torch.Tensor) -> torch.Tensor:
    """Weights [..., K] times modes [K, V, 3] -> [..., V, 3]."""
    return (weights @ modes.flatten(1)).unflatten(-1, modes.shape[1:])


@dataclass(frozen=True)
class DenseBasis(Record):
    """The model's face surface in the canonical head frame, with its landmarks' places on it."""

    faces: torch.Tensor  # [F, 3] int64 triangles over the V kept vertices
    neutral: torch.Tensor  # [V, 3]
    identity: torch.Tensor  # [I, V, 3] float16 (a cache of half the size) per unit (standard-normal) identity weight
    expression: torch.Tensor  # [E, V, 3] float16 per unit blend-shape weight
    names: list  # E ARKit names
    landmark_vertices: torch.Tensor  # [468, 3] int64: the surface landmarks' triangle corners ...
    landmark_bary: torch.Tensor  # [468, 3] ... and barycentric weights (geometry only, no tracker bias)

    @classmethod
    def from_model(cls, model: dict, table: dict | None = None) -> "DenseBasis":
        """The visible narrow face of a full model, clipped to the landmark face outline (seen from the front)."""
        table = table or correspondence()
        scale, rot, trans = ict_to_head(model, table)
        neutral = (torch.from_numpy(model["neutral"]).double() @ (scale * rot).T + trans).float()
        polys = torch.from_numpy(np.asarray(model["polygons"])).long()
        polys = polys[(polys < NARROW_FACE).all(1) & (polys[:, 3] >= 0)]
        tris = torch.cat([polys[:, [0, 1, 2]], polys[:, [0, 2, 3]]])
        landmarks = (at_landmarks(model["neutral"], table).double() @ (scale * rot).T + trans).float()
        face = load_canonical()
        tris = tris[_inside(neutral[tris].mean(1)[:, :2], landmarks[face.outer_loop, :2])]
        tris = tris[_front_visible(neutral, tris)]
        openings = torch.stack([landmarks[loop].mean(0) for loop in (*face.eye_loops, face.mouth_loop)])
        caps, members = _caps(neutral, tris, openings)
        lm_vertices = table["vertices"][:SURFACE_LANDMARKS]
        used = torch.unique(torch.cat([tris.flatten(), lm_vertices.flatten()]))
        if int(used.max()) >= NARROW_FACE:
            raise MissingAssetError("the ICT-FaceKit correspondence puts a face landmark off the narrow face")
        remap = torch.full((len(neutral) + len(members),), -1, dtype=torch.long)
        remap[used] = torch.arange(len(used))
        remap[len(neutral):] = torch.arange(len(members)) + len(used)
        linear = (scale * rot).float()

        def rows(points: torch.Tensor) -> torch.Tensor:
            """Points [..., N_model, 3] at the kept vertices, then the caps' centres (means of their rims)."""
            return torch.cat([points[..., used, :], members @ points], -2)

        identity = rows(torch.from_numpy(model["identity_modes"])).float() @ linear.T
        expression = rows(torch.from_numpy(model["expression_modes"])).float() @ linear.T
        return cls(remap[torch.cat([tris, caps])], rows(neutral), identity.half(), expression.half(),
                   list(model["expression_names"]),
                   remap[lm_vertices], table["bary"][:SURFACE_LANDMARKS].float())

    def at_landmarks(self, verts: torch.Tensor) -> torch.Tensor:
        """The 468 surface landmarks [..., 468, 3] of dense vertices [..., V, 3]."""
        return (verts[..., self.landmark_vertices, :] * self.landmark_bary[..., None]).sum(-2)


def dense_basis(path: str | Path | None = None) -> DenseBasis:
    """The dense face of the model found at `path` (as `reenact.ict_basis.locate_model` finds it: a missing model raises
    MissingAssetError), from the cache or built from the full model and cached."""
    return cached_basis("ict-dense", DENSE_VERSION, DenseBasis, locate_model(path))


def fit_identity(model: IctModel, source: Motion) -> torch.Tensor:
    """Identity weights [I] of the source's tracked landmarks: weighted least squares against the model as the
    tracker reports it (at the source's expression and head angle), with the fit's landmark weights and Gaussian
    prior; the irises (gaze, not identity) do not count."""
    cfg, basis = model.cfg, model.basis
    coeffs, rotation = source.expression.coeffs[:1], source.pose.rotation[:1]
    tracked = source.shape + _combine(coeffs[0], basis.expression)
    rest = tracked - model.identity_mesh(torch.zeros(len(basis.identity)), coeffs, rotation)[0]
    w = landmark_weights(cfg)[:, None] * torch.tensor([1.0, 1.0, cfg.depth_weight])
    w[SURFACE_LANDMARKS:] = 0
    modes = basis.identity.flatten(1)
    weighted = modes * w.flatten()
    hess = weighted @ modes.T + cfg.identity_prior * torch.eye(len(modes))
    return torch.linalg.solve(hess, weighted @ rest.flatten())


def carry_residual(points: torch.Tensor, residual: torch.Tensor, query: torch.Tensor,
                   smoothing: float = SPLINE_SMOOTHING) -> torch.Tensor:
    """A smooth 3D field through `residual` [K, 3] at `points` [K, 3], evaluated at `query` [V, 3].

    Biharmonic spline (kernel |x - y|, minimal bending) plus an affine part, lightly regularised; the kernel is
    conditionally negative definite, so the smoothing term is subtracted from its diagonal.
    """
    p, q = points.double(), query.double()
    k = len(p)
    system = torch.zeros(k + 4, k + 4, dtype=torch.float64)
    system[:k, :k] = torch.cdist(p, p) - smoothing * torch.eye(k, dtype=torch.float64)
    system[:k, k:] = torch.cat([p, torch.ones(k, 1, dtype=torch.float64)], 1)
    system[k:, :k] = system[:k, k:].T
    rhs = torch.cat([residual.double(), torch.zeros(4, 3, dtype=torch.float64)])
    coef = torch.linalg.solve(system, rhs)
    field = torch.cdist(q, p) @ coef[:k] + q @ coef[k:k + 3] + coef[k + 3]
    return field.float()


@dataclass(frozen=True)
class DenseFace:
    """One subject's dense face and its 478 landmarks in the canonical head frame: rest shapes plus blend shapes.

    The landmarks are the surface's own points (the irises, not on it, sit at their tracked place relative to
    their eye's opening), so the landmark mesh that the renderer keeps behind the surface (openings, outline, the
    field beyond) has its shape and moves by the same blend-shape geometry, not by the tracker's view of it."""

    faces: torch.Tensor  # [F, 3] int64
    rest: torch.Tensor  # [V, 3] identity + carried residual, at zero expression
    expression: torch.Tensor  # [E, V, 3] per unit blend-shape weight
    landmark_rest: torch.Tensor  # [478, 3] the landmarks at zero expression ...
    landmark_expression: torch.Tensor  # [E, 478, 3] ... and per unit blend-shape weight

    def vertices(self, coeffs: torch.Tensor) -> torch.Tensor:
        """Head-frame vertices [T, V, 3] wearing ARKit coefficients [T, E]."""
        return self.rest + _combine(coeffs, self.expression)

    def landmarks(self, coeffs: torch.Tensor) -> torch.Tensor:
        """Head-frame landmarks [T, 478, 3] wearing ARKit coefficients [T, E]."""
        return self.landmark_rest + _combine(coeffs, self.landmark_expression)


def subject_face(basis: DenseBasis, model: IctModel, source: Motion) -> DenseFace:
    """The source subject's dense face, through its tracked landmarks at its own expression.

    Identity weights are fitted to the source's landmarks; what they leave unexplained is carried onto the
    surface by a smooth spline from where the landmarks lie on it. In the source image's plane that residual is
    tracked minus model, so the surface passes through the tracked landmarks; along the source's line of sight
    the model as the tracker reports it is compared instead (the tracker's depth is a learned guess, a quarter of
    an eye-corner distance off at the nostrils), and the irises move with their eyes' depth.
    """
    if source.expression.model != MODEL:
        raise InputError(f"the dense face needs {MODEL} expressions, not {source.expression.model!r}")
    landmarks, coeffs = model.basis, source.expression.coeffs[0]
    tracked = source.shape + _combine(coeffs, landmarks.expression)
    weights = fit_identity(model, source)
    expression = basis.expression.float()
    identity = basis.neutral + _combine(weights, basis.identity.float())
    posed = identity + _combine(coeffs, expression)
    on_mesh = basis.at_landmarks(posed)
    reported = model.identity_mesh(weights, coeffs[None], source.pose.rotation[:1])[0]
    view = source.pose.rotation[0, 2]  # the source camera's depth axis in the head frame
    depth_bias = ((reported[:SURFACE_LANDMARKS] - on_mesh) @ view)[:, None] * view
    residual = tracked[:SURFACE_LANDMARKS] - on_mesh - depth_bias
    rest = identity + carry_residual(on_mesh, residual, posed)
    irises = tracked[SURFACE_LANDMARKS:] - _combine(coeffs, landmarks.expression[:, SURFACE_LANDMARKS:])
    eye_depth = torch.stack([depth_bias[loop].mean(0) for loop in load_canonical().eye_loops])  # right, left
    irises = irises - eye_depth.repeat_interleave(len(irises) // 2, 0)
    moves = torch.cat([basis.at_landmarks(expression), landmarks.expression[:, SURFACE_LANDMARKS:]], 1)
    return DenseFace(basis.faces, rest, expression, torch.cat([basis.at_landmarks(rest), irises]), moves)
