"""Expression stage: a per-frame expression code behind one small face-model interface.

The embedded default, `MeshOffsetModel`, needs no files: the tracked mesh in the canonical head frame
(pose and scale removed, see `reenact.pose`), and the code is its offset from the subject's reference
frame. Another model (the ICT-FaceKit 3DMM) plugs in by implementing `fit` and `mesh`.
"""
from __future__ import annotations

from typing import Protocol

import torch

from reenact.pose import estimate_pose, to_head_frame
from reenact.transfer import choose_reference
from reenact.structures import Expression, Motion, Tracks


class FaceModel(Protocol):
    name: str

    def fit(self, meshes: torch.Tensor, ref: int) -> tuple[torch.Tensor, Expression]:
        """Head-frame meshes [T, 478, 3] -> (the subject's reference shape [478, 3], expression codes)."""

    def mesh(self, shape: torch.Tensor, expression: Expression) -> torch.Tensor:
        """The head-frame meshes [T, 478, 3] of a shape wearing these expressions."""


class MeshOffsetModel:
    """Expression = head-frame mesh minus the reference frame's mesh, flattened to 1434 numbers."""

    name = "mesh-offset"

    def fit(self, meshes: torch.Tensor, ref: int) -> tuple[torch.Tensor, Expression]:
        shape = meshes[ref]
        return shape, Expression((meshes - shape).reshape(len(meshes), -1), self.name, [])

    def mesh(self, shape: torch.Tensor, expression: Expression) -> torch.Tensor:
        return shape + expression.coeffs.reshape(len(expression.coeffs), -1, 3)


def extract_motion(tracks: Tracks, model: FaceModel, ref: int | None = None) -> Motion:
    """Pose and expression of every frame; `ref` None picks the most frontal, most neutral frame."""
    pose = estimate_pose(tracks)
    meshes = to_head_frame(tracks.landmarks, pose)
    if ref is None:
        ref = choose_reference(meshes, pose, tracks.found)
    shape, expression = model.fit(meshes, ref)
    return Motion(pose, expression, shape, tracks.found, tracks.fps, ref)
