"""The ICT-FaceKit linear face model (MIT, USC ICT) behind the `FaceModel` interface: 53 ARKit coefficients.

The model is reduced to a compact landmark basis (`reenact.ict_basis`). Gaze: ICT's eyeLook blend shapes move only
the eyelids; here the eyeLook weights also turn the eyeballs, so the basis moves the iris landmarks and the fit
reads gaze from them.

Fitting (`IctModel.fit`) is batched over frames: Gauss-Newton steps on each frame's rigid pose, a
box-constrained least-squares solve of the 53 coefficients in [0, 1] (projected coordinate descent with an L1
sparsity term and a temporal prior), and a Gaussian-prior solve of the 100 identity weights shared by the clip.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from reenact.canonical import LIPS, load_canonical
from reenact.errors import InputError
from reenact.geometry import rotvec_to_matrix
from reenact.ict_basis import LandmarkBasis, landmark_basis, locate_model
from reenact.pose import to_head_frame, view_features
from reenact.structures import Expression, HeadPose, Tracks

MODEL = "ict-arkit53"
IRIS = slice(468, 478)  # mediapipe's iris points (refined tracker)


@dataclass(frozen=True)
class FitConfig:
    """Fit settings. The weights and priors were chosen on the accuracy bench's calibration seeds (100-102), see
    `bench/ict_accuracy.py`."""

    iterations: int = 6  # alternations of pose, expression and identity solves
    sweeps: int = 6  # coordinate-descent sweeps over the 53 coefficients per iteration
    pose_steps: int = 2  # Gauss-Newton steps on the rigid pose per iteration
    depth_weight: float = 0.3  # tracked depth is a learned guess: trusted less than x, y
    lip_weight: float = 3.0  # landmark weights: lips and eyelids are what expressions are read from ...
    eye_weight: float = 20.0  # eyelids: a blink moves few points a short way
    iris_weight: float = 16.0  # irises: gaze (eyeLook*) is read from them
    contour_weight: float = 0.3  # ... the face outline slides along the silhouette
    identity_prior: float = 0.02  # Gaussian prior on the identity weights (per unit weight squared)
    expression_prior: float = 0.02  # pulls coefficients the landmarks barely see (cheekPuff, ...) to 0
    sparsity: float = 0.02  # L1 weight on the coefficients: few blend shapes are active at once
    temporal: float = 0.01  # smoothness of coefficients between neighbouring frames
    identity_frames: int = 200  # frames the identity is fitted from (evenly spaced)


def landmark_weights(cfg: FitConfig) -> torch.Tensor:
    face = load_canonical()
    w = torch.ones(478)
    w[face.outer_loop] = cfg.contour_weight
    w[list(LIPS)] = cfg.lip_weight
    w[torch.cat(face.eye_loops)] = cfg.eye_weight
    w[IRIS] = cfg.iris_weight
    return w


def _pose_step(points: torch.Tensor, target: torch.Tensor, pose: HeadPose, w: torch.Tensor, axis: torch.Tensor):
    """One damped Gauss-Newton step on (rotation, translation, log scale) of every frame: head points [T, N, 3]."""
    t, n = points.shape[:2]
    s = pose.scale[:, None, None]
    rx = points @ pose.rotation.transpose(1, 2)  # [T, N, 3]
    residual = (target - s * rx - pose.translation[:, None]) / s
    x, y, z = rx.unbind(-1)
    jac = torch.zeros(t, n, 3, 7)  # d(prediction / s) / d(rotation vector, translation, log scale)
    jac[..., 0, 1], jac[..., 0, 2], jac[..., 1, 0], jac[..., 1, 2], jac[..., 2, 0], jac[..., 2, 1] = z, -y, -z, x, y, -x
    jac[..., [0, 1, 2], [3, 4, 5]] = (1 / s).expand(-1, n, 3)
    jac[..., 6] = rx
    jac, weighted = jac.reshape(t, -1, 7), (jac * (w[None, :, None] * axis)[..., None]).reshape(t, -1, 7)
    jtj = weighted.transpose(1, 2) @ jac + 1e-6 * torch.eye(7)
    step = torch.linalg.solve(jtj, (weighted.transpose(1, 2) @ residual.reshape(t, -1, 1))[..., 0])
    return HeadPose(rotvec_to_matrix(step[:, :3]) @ pose.rotation, pose.translation + step[:, 3:6],
                    pose.scale * step[:, 6].exp())


def _box_qp(hess: torch.Tensor, grad: torch.Tensor, x: torch.Tensor, prior: float, temporal: float, sweeps: int):
    """min_x 1/2 x'Hx - g'x + prior/2 |x|^2 + temporal/2 sum_t |x_t - x_t-1|^2 over 0 <= x <= 1, per frame [T, K].

    Projected coordinate descent: Gauss-Seidel over coefficients, vectorized over frames (Jacobi in time).
    """
    x = x.clone()
    n_nbr = torch.full((len(x), 1), 2.0)
    n_nbr[[0, -1]] -= 1
    diag = hess.diagonal(dim1=1, dim2=2)
    for _ in range(sweeps):
        for k in range(x.shape[1]):
            col = x[:, k]
            nbr = torch.zeros_like(col)
            nbr[1:] += col[:-1]
            nbr[:-1] += col[1:]
            num = grad[:, k] - (hess[:, k] * x).sum(-1) + diag[:, k] * col + temporal * nbr
            x[:, k] = (num / (diag[:, k] + prior + temporal * n_nbr[:, 0])).clamp(0, 1)
    return x


def _combine(weights: torch.Tensor, modes: torch.Tensor) -> torch.Tensor:
    """Weights [..., K] times modes [K, N, 3] -> [..., N, 3]."""
    return (weights @ modes.flatten(1)).unflatten(-1, modes.shape[1:])


def _project(points: torch.Tensor, modes: torch.Tensor) -> torch.Tensor:
    """Points [T, N, 3] dotted with each mode [K, N, 3] -> [T, K]."""
    return points.flatten(1) @ modes.flatten(1).T


def _response(weights: torch.Tensor, curves: torch.Tensor) -> torch.Tensor:
    """Tracked motion [T, E] of blend-shape weights [T, E] through piecewise-linear response curves [E, K + 1]."""
    k = curves.shape[1] - 1
    x = weights.T.clamp(0, 1) * k
    piece = x.floor().long().clamp(max=k - 1)
    lo, hi = curves.gather(1, piece), curves.gather(1, piece + 1)
    return (lo + (x - piece) * (hi - lo)).T


def _from_response(tracked: torch.Tensor, curves: torch.Tensor) -> torch.Tensor:
    """Blend-shape weights [T, E] whose tracked motion is `tracked` [T, E], inverting increasing piecewise-linear
    response curves [E, K + 1] (values at weights 0, 1/K .. 1)."""
    k = curves.shape[1] - 1
    u = tracked.T.contiguous()
    piece = torch.searchsorted(curves.contiguous(), u, right=True).clamp(1, k)
    lo, hi = curves.gather(1, piece - 1), curves.gather(1, piece)
    return ((piece - 1 + ((u - lo) / (hi - lo).clamp_min(1e-6)).clamp(0, 1)) / k).T


class IctModel:
    """ARKit blend-shape coefficients of the ICT-FaceKit model (implements `reenact.expression.FaceModel`)."""

    name, code = "ict-facekit", MODEL

    def __init__(self, basis: LandmarkBasis, cfg: FitConfig = FitConfig()):
        self.basis, self.cfg = basis, cfg
        self.weights = landmark_weights(cfg)
        self.axis = torch.tensor([1.0, 1.0, cfg.depth_weight])
        self.gram_e, self.gram_i = self._gram(basis.expression), self._gram(basis.identity)

    @classmethod
    def load(cls, path: str | Path | None = None) -> "IctModel":
        return cls(landmark_basis(locate_model(path)))

    def _gram(self, modes: torch.Tensor) -> torch.Tensor:
        """sum_n w_n B[:, n, a] B[:, n, b]' as [3, 3, K, K], so a frame's normal matrix is einsum(M, gram)."""
        return torch.einsum("n,ina,jnb->abij", self.weights, modes, modes)

    def fit(self, tracks: Tracks, pose: HeadPose, ref: int) -> tuple[HeadPose, torch.Tensor, Expression]:
        # Many small tensor operations: one thread is several times faster than two contending ones.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self._fit(tracks, pose, ref)
        finally:
            torch.set_num_threads(threads)

    def _fit(self, tracks: Tracks, pose: HeadPose, ref: int) -> tuple[HeadPose, torch.Tensor, Expression]:
        cfg, b = self.cfg, self.basis
        target = tracks.landmarks.float()
        n = len(target)
        coeffs = torch.zeros(n, len(b.names))
        identity = torch.zeros(len(b.identity))
        gram_e, gram_i = self.gram_e, self.gram_i
        wa = self.weights[None, :, None] * self.axis  # [1, N, 3]
        sample = torch.linspace(0, n - 1, min(n, cfg.identity_frames)).round().long()
        for _ in range(cfg.iterations):
            bias = _combine(view_features(pose.rotation), b.view)  # the tracker's, at the current poses
            shape = b.neutral + _combine(identity, b.identity) + bias
            for _ in range(cfg.pose_steps):
                pose = _pose_step(shape + _combine(coeffs, b.expression), target, pose,
                                  self.weights, self.axis)
            # Expression: targets in head units, image orientation; metric M = R' D R per frame.
            z = (target - pose.translation[:, None]) / pose.scale[:, None, None]
            metric = pose.rotation.transpose(1, 2) @ torch.diag(self.axis) @ pose.rotation
            back = ((z - shape @ pose.rotation.transpose(1, 2)) * wa) @ pose.rotation  # R' D W (Z - R S)
            coeffs = _box_qp(torch.einsum("tab,abij->tij", metric, gram_e),
                             _project(back, b.expression) - cfg.sparsity, coeffs,
                             cfg.expression_prior, cfg.temporal, cfg.sweeps)
            # Identity, shared: mean normal equations over sampled frames plus the Gaussian prior.
            expressed = b.neutral + bias[sample] + _combine(coeffs[sample], b.expression)
            rest = ((z[sample] - expressed @ pose.rotation[sample].transpose(1, 2)) * wa) @ pose.rotation[sample]
            hess = torch.einsum("ab,abij->ij", metric[sample].mean(0), gram_i)
            grad = _project(rest, b.identity).sum(0) / len(sample)
            identity = torch.linalg.solve(hess + cfg.identity_prior * torch.eye(len(identity)), grad)
        coeffs = _from_response(coeffs, b.response)  # tracked motion -> blend-shape weight
        # The subject's shape: its tracked reference frame with the fitted expression taken out, so that
        # mesh(shape, code of ref) is exactly what was tracked and codes only move it by blend-shape offsets.
        ref_pose = pose.select(slice(ref, ref + 1))
        shape = to_head_frame(target[ref:ref + 1], ref_pose)[0] - _combine(coeffs[ref], b.expression)
        return pose, shape, Expression(coeffs, MODEL, list(b.names))

    def mesh(self, shape: torch.Tensor, expression: Expression) -> torch.Tensor:
        if expression.model != MODEL:
            raise InputError(f"an expression of model {expression.model!r} cannot drive the {MODEL} face model")
        return shape + _combine(expression.coeffs, self.basis.expression)

    def identity_mesh(self, identity: torch.Tensor, coeffs: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
        """Landmarks [T, 478, 3] (head frame) as the tracker would report them (response curves, view bias) for
        identity weights [I] wearing coefficients [T, E], seen at head rotations [T, 3, 3]."""
        b = self.basis
        return (b.neutral + _combine(identity, b.identity) + _combine(_response(coeffs, b.response), b.expression)
                + _combine(view_features(rotation), b.view))
