"""Expression stage: a per-frame expression code behind one small face-model interface.

The embedded default, `MeshOffsetModel`, needs no files: the tracked mesh in the canonical head frame
(pose and scale removed, see `reenact.pose`), and the code is its offset from the subject's reference
frame. Another model (the ICT-FaceKit 3DMM) plugs in by implementing `fit` and `mesh`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import torch

from reenact.ict import IctModel
from reenact.ict_basis import find_model
from reenact.pose import estimate_pose, head_meshes, view_bias
from reenact.structures import Expression, HeadPose, Motion, Tracks
from reenact.transfer import MESH_OFFSET, choose_reference


class FaceModel(Protocol):
    name: str
    code: str  # the `Expression.model` its fit produces and its mesh takes

    def fit(self, tracks: Tracks, pose: HeadPose, ref: int) -> tuple[HeadPose, torch.Tensor, Expression]:
        """Landmarks [T, 478, 3] and their rigid poses -> (refined poses, the subject's reference shape
        [478, 3] in the head frame, expression codes [T, D])."""

    def mesh(self, shape: torch.Tensor, expression: Expression) -> torch.Tensor:
        """The head-frame landmarks [T, 478, 3] of a shape wearing these expressions."""


@dataclass(frozen=True)
class FaceModelConfig:
    model: Literal["auto", "mesh-offset", "ict"] = "auto"  # auto: the ICT-FaceKit 3DMM when present, else mesh-offset
    path: str | None = None  # ICT-FaceKit model file or folder (else $REENACT_FACE_MODEL, then the cache)


def load_face_model(cfg: FaceModelConfig = FaceModelConfig()) -> FaceModel:
    """The face model the settings ask for; 'auto' takes the ICT-FaceKit model when it is found, else mesh-offset."""
    if cfg.model == "mesh-offset":
        return MeshOffsetModel()
    if cfg.model == "auto" and not cfg.path and find_model() is None:
        return MeshOffsetModel()
    return IctModel.load(cfg.path)


class MeshOffsetModel:
    """Expression = head-frame mesh minus the reference frame's mesh, flattened to 1434 numbers. The tracker's view
    bias (`reenact.pose.view_bias`) is taken out of the offsets, so a head turn is not read as an expression; the
    shape is the reference frame as tracked, so a still source maps onto itself."""

    name = code = MESH_OFFSET

    def fit(self, tracks: Tracks, pose: HeadPose, ref: int) -> tuple[HeadPose, torch.Tensor, Expression]:
        meshes = head_meshes(tracks.landmarks, pose)
        shape = meshes[ref] + view_bias(pose.rotation[ref])  # as tracked
        return pose, shape, Expression((meshes - meshes[ref]).reshape(len(meshes), -1), self.code, [])

    def mesh(self, shape: torch.Tensor, expression: Expression) -> torch.Tensor:
        return shape + expression.coeffs.reshape(len(expression.coeffs), -1, 3)


def extract_motion(tracks: Tracks, model: FaceModel, ref: int | None = None, pose: HeadPose | None = None) -> Motion:
    """Pose and expression of every frame; `ref` None picks the most frontal, most neutral frame; `pose`: the
    tracks' `estimate_pose`, when the caller has it already."""
    pose = estimate_pose(tracks) if pose is None else pose
    if ref is None:
        ref = choose_reference(head_meshes(tracks.landmarks, pose), pose, tracks.found)
    pose, shape, expression = model.fit(tracks, pose, ref)
    return Motion(pose, expression, shape, tracks.found, tracks.fps, ref)
