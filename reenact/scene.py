"""The scene: everything the renderers need of one run, built once from the source and the transferred motion.

The source picture and its aligned crop (with person masks: `reenact.backdrop`), the crop's geometry, the source,
driving and target motions, the target meshes and poses in crop pixels, and the source's dense face when the warp
maps through it. The crop grows with how far the target head travels, so that the warp never tears at its edge.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import torch

from reenact.backdrop import Backdrop
from reenact.compose import feather_mask
from reenact.crop import CropConfig, apply_affine, ffhq_crop, warp_affine
from reenact.dense_face import DenseFace, dense_basis, subject_face
from reenact.errors import InputError, MissingAssetError
from reenact.expression import FaceModel, FaceModelConfig
from reenact.ict import IctModel
from reenact.inputs import frames_to_tensor, tensor_to_frames
from reenact.pose import to_image
from reenact.structures import Crop, HeadPose, Motion, Tracks
from reenact.warp import BORDER
from third_party_wrappers.facemesh import segment_person

log = logging.getLogger("reenact")
MAX_CROP_SCALE = 3.0  # the crop grows with the head's travel up to this scale


@dataclass(frozen=True)
class Scene:
    """Everything the renderers need, prepared once per run (in memory, not a record)."""

    frame: Backdrop  # the source image [3, H, W] in [0, 1] and its person mask
    cropped: Backdrop  # the same in its aligned crop [3, S, S]
    crop: Crop
    source_verts: torch.Tensor  # [478, 3] source landmarks, crop px
    inside: torch.Tensor  # [1, S, S] crop pixels that lie inside the source image
    source: Motion  # T = 1
    driving: Motion  # smoothed, T frames
    target: Motion  # transferred, T frames
    target_verts: torch.Tensor  # [T, 478, 3] target landmarks, crop px
    target_pose: HeadPose  # [T] target poses in crop px
    driving_verts: torch.Tensor | None  # [T, 478, 3] smoothed driving landmarks, driving px (None: not placed)
    model_name: str  # the face model's name (what the "auto" setting came to)
    dense: DenseFace | None = None  # the source's dense ICT face (head frame) for the warp's mesh map, or None
    readable: torch.Tensor | None = None  # [T] bool: the driving frame shows the driver's mouth (None: all do)

    @property
    def source_full(self) -> torch.Tensor:
        return self.frame.image

    @cached_property
    def frame_rgb(self) -> np.ndarray:
        """The source frame in uint8 [H, W, 3], the part of every output frame the motion does not reach."""
        return tensor_to_frames(self.frame.image[None])[0]

    @property
    def source_crop(self) -> torch.Tensor:
        return self.cropped.image

    def dense_meshes(self, motion: Motion, frames, at: HeadPose | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The dense face's landmarks [n, 478, 3] and vertices [n, V, 3] in crop px, wearing a motion's expressions
        at its poses (or at the image-px poses `at`), for `frames` of it (a slice or indices)."""
        pose = at if at is not None else motion.pose.select(frames)
        coeffs = motion.expression.coeffs[frames]
        return tuple(apply_affine(self.crop.crop_from_image, to_image(x, pose))
                     for x in (self.dense.landmarks(coeffs), self.dense.vertices(coeffs)))

    def source_meshes(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The source's landmarks [478, 3] and dense vertices [V, 3] (None without a dense face) in crop px. The
        dense face's landmarks differ from the tracked ones by its spline's error (below 2 px)."""
        if self.dense is None:
            return self.source_verts, None
        landmarks, verts = self.dense_meshes(self.source, slice(0, 1))
        return landmarks[0], verts[0]

    def target_meshes(self, frames, at: HeadPose | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The target landmarks [n, 478, 3] and dense vertices [n, V, 3] (None without a dense face) in crop px of
        `frames` (a slice or indices), at the target poses or at the image-px poses `at` (the head frame's shapes
        re-posed). With a dense face, its landmarks stand in for the tracked model's (both move by its geometry)."""
        if self.dense is not None:
            return self.dense_meshes(self.target, frames, at)
        if at is None:
            return self.target_verts[frames], None
        pose = self.target_pose.select(frames)
        head = (self.target_verts[frames] - pose.translation[:, None]) @ pose.rotation / pose.scale[:, None, None]
        return apply_affine(self.crop.crop_from_image, to_image(head, at)), None


def pose_in_crop(pose: HeadPose, crop: Crop) -> HeadPose:
    """The same head poses expressed in crop pixels (rotation composed with the crop's in-plane turn)."""
    a = crop.crop_from_image
    k = a[:, :2].det().abs().sqrt()
    turn = torch.eye(3)
    turn[:2, :2] = a[:, :2] / k
    return HeadPose(turn @ pose.rotation, apply_affine(a, pose.translation[:, None])[:, 0], pose.scale * k)


def build_scene(source_rgb: np.ndarray, src_tracks: Tracks, source: Motion, driving: Motion, target: Motion,
                model: FaceModel, crop_cfg: CropConfig = CropConfig(), mesh: str = "auto",
                face: FaceModelConfig = FaceModelConfig()) -> Scene:
    """The aligned crop of the source, its person and in-image masks, and the target meshes in crop pixels; the
    dense face as `mesh` (`WarpConfig.mesh`) asks, from the model file `face` points to."""
    crop_cfg = replace(crop_cfg, scale=_crop_scale(src_tracks, source.pose, target.pose, crop_cfg))
    crop_cfg = replace(crop_cfg, size=_crop_size(src_tracks, crop_cfg, source_rgb.shape))
    crop = ffhq_crop(src_tracks.landmarks[0], crop_cfg)
    source_full = frames_to_tensor(source_rgb[None])[0]
    inv = crop.image_from_crop[None]
    source_crop = warp_affine(source_full[None], inv, (crop.size, crop.size))[0]
    inside = warp_affine(torch.ones(1, 1, *source_full.shape[-2:]), inv, (crop.size, crop.size), padding="zeros")[0]
    person = _person_mask(source_rgb, torch.from_numpy(segment_person(tensor_to_frames(source_crop[None])[0]))[None],
                          crop)
    frame = Backdrop.of(source_full, person)
    target_verts = to_image(model.mesh(target.shape, target.expression), target.pose)
    return Scene(frame, frame.cropped(crop), crop, apply_affine(crop.crop_from_image, src_tracks.landmarks[0]),
                 inside, source, driving, target, apply_affine(crop.crop_from_image, target_verts),
                 pose_in_crop(target.pose, crop), _driving_verts(driving, model), model.name,
                 dense_face(model, source, mesh, face))


def _driving_verts(driving: Motion, model: FaceModel) -> torch.Tensor | None:
    """The driving landmarks in driving px, which place the mouth fill in the driving frames; None for a motion
    without positions (imported CSV or JSON tracks), whose mouth is then shaded from the source's lips instead
    of read from a wrong place of the frame."""
    if not driving.placed:
        return None
    return to_image(model.mesh(driving.shape, driving.expression), driving.pose)


def _person_mask(source_rgb: np.ndarray, person_crop: torch.Tensor, crop: Crop) -> torch.Tensor:
    """The source's person mask [1, H, W]: the segmentation of the crop (the finer one, at the crop's resolution)
    where the crop reaches, feathered into the segmentation of the whole image beyond it."""
    whole = torch.from_numpy(segment_person(source_rgb))[None]
    h, w = whole.shape[-2:]
    feather = feather_mask(crop.size)[0]
    pasted = warp_affine(torch.cat([person_crop * feather, feather])[None], crop.crop_from_image[None], (h, w),
                         padding="zeros")[0]
    return whole * (1 - pasted[1:]) + pasted[:1]


def dense_face(model: FaceModel, source: Motion, mesh: str, face: FaceModelConfig) -> DenseFace | None:
    """The source's dense face when the warp maps through it: `--warp.mesh dense`, or auto with the ICT model (the
    model file is looked for as `face` says; auto falls back to the landmark mesh, with a warning, without it)."""
    ict = isinstance(model, IctModel)
    if mesh == "landmarks" or (mesh == "auto" and not ict):
        return None
    if not ict:
        raise InputError("--warp.mesh dense needs the ICT-FaceKit face model (--face.model ict)")
    try:
        return subject_face(dense_basis(face.path), model, source)
    except MissingAssetError as exc:
        if mesh == "dense":
            raise
        log.warning("warp mesh: the landmark mesh, since %s", exc)
        return None


def _crop_scale(tracks: Tracks, source: HeadPose, target: HeadPose, cfg: CropConfig) -> float:
    """`cfg.scale` grown by how far the target head travels from the source's place (its largest shift along
    either crop axis, over the recipe crop's half side, beyond the faded border), at most MAX_CROP_SCALE. The warp
    moves nothing beyond the crop, so a head that travels further than the crop's margin tore at its edge."""
    unit = ffhq_crop(tracks.landmarks[0], replace(cfg, scale=1.0))
    at = apply_affine(unit.crop_from_image, torch.cat([source.translation[:1], target.translation])[:, None, :2])[:, 0]
    travel = float((at[1:] - at[:1]).abs().amax()) if len(at) > 1 else 0.0
    return min(cfg.scale + travel / (unit.size / 2) / (1 - 2 * BORDER), max(cfg.scale, MAX_CROP_SCALE))


def _crop_size(tracks: Tracks, cfg: CropConfig, shape) -> int:
    """Render at about the source's own resolution of the crop, within [256, cfg.size * 2], a multiple of 16."""
    crop = ffhq_crop(tracks.landmarks[0], cfg)
    side = float(cfg.size / crop.crop_from_image[:, :2].det().abs().sqrt())
    side = min(side, max(shape[:2]), 2 * cfg.size)
    return int(max(256, round(side / 16) * 16))
