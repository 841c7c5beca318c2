"""The ICT-FaceKit model's files and its compact landmark basis, cached.

The full model (26719 vertices; neutral + 100 identity modes + 53 expression blend shapes) is found at
`--face.path`, $REENACT_FACE_MODEL or the cache (`python -m reenact.assets download ict` puts it there), read once
and reduced to a compact landmark basis: the 478 mediapipe points on its surface (`data/ict_correspondence.npz`),
mapped into the canonical head frame by a fixed similarity, plus the tracker's bias calibrated on renders of the
model (per landmark: at rest, per unit blend-shape weight, per unit of head angle; and response curves of the
blinks, which the tracker follows late). That basis is cached beside it, so later runs read a few hundred
kilobytes.

Gaze: ICT's eyeLook blend shapes move only the eyelids. Here the eyeLook weights also turn the eyeballs
(`with_gaze`, GAZE_DEGREES at weight 1).
"""
from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from reenact.cache import WorkDir
from reenact.canonical import load_canonical
from reenact.errors import MissingAssetError
from reenact.geometry import rotvec_to_matrix, similarity_fit
from reenact.pose import CORRESPONDENCE, VIEW_FEATURES
from reenact.structures import Record
from third_party_wrappers import ict_facekit

PACKED = "ict_face_model.npz"
DOWNLOAD_HINT = "python -m reenact.assets download ict"
BASIS_VERSION = 4
EYEBALLS = (slice(21451, 23021), slice(23021, 24591))  # vertices of the subject's left (+x) and right eyeball
GAZE_DEGREES = 30.0  # eyeball turn at full eyeLook weight: this project's convention (ARKit states none)


def cache_dir() -> Path:
    """Where downloaded models and derived files live: $REENACT_CACHE, else ~/.cache/reenact."""
    return Path(os.environ.get("REENACT_CACHE") or Path.home() / ".cache" / "reenact")


def default_location() -> Path:
    """Where `python -m reenact.assets download ict` installs the model."""
    return cache_dir() / "ict-facekit"


def _usable(path: Path) -> Path | None:
    if path.is_file() and path.suffix == ".npz":
        return path
    if path.is_dir():
        if (path / PACKED).is_file():
            return path / PACKED
        if (ict_facekit.model_folder(path) / ict_facekit.NEUTRAL).is_file():
            return path
    return None


def find_model(path: str | Path | None = None) -> Path | None:
    """The model file or folder: `path`, else $REENACT_FACE_MODEL, else the cache; None when absent."""
    for candidate in (path, os.environ.get("REENACT_FACE_MODEL"), default_location()):
        if candidate:
            return _usable(Path(candidate).expanduser())
    return None


def locate_model(path: str | Path | None = None) -> Path:
    """Like `find_model`, but a missing model raises MissingAssetError saying how to get it."""
    found = find_model(path)
    if found is None:
        where = path or os.environ.get("REENACT_FACE_MODEL") or default_location()
        raise MissingAssetError(f"the ICT-FaceKit face model was not found at {where} (an {PACKED} or the "
                                f"upstream FaceXModel folder); get it with: {DOWNLOAD_HINT}")
    return found


def read_model(path: Path) -> dict:
    """The full model's arrays from the packed npz or the upstream folder."""
    try:
        return ict_facekit.read_packed(path) if Path(path).is_file() else ict_facekit.read_upstream(path)
    except (OSError, ValueError, KeyError) as exc:
        raise MissingAssetError(f"{path}: not a readable ICT-FaceKit model ({exc}); re-run {DOWNLOAD_HINT}") from None


def correspondence() -> dict:
    """The packaged table: landmark -> (vertices [478, 3], barycentrics [478, 3]) on the mesh, and the tracker's
    calibrated bias in the head frame, `offset_neutral` [478, 3] plus `offset_expression` [E, 478, 3] per unit
    blend-shape weight (see `reenact.data.build_ict_correspondence`)."""
    with np.load(CORRESPONDENCE) as d:
        table = {k: torch.from_numpy(d[k]) for k in d.files}
    table["vertices"] = table["vertices"].long()
    return table


def at_landmarks(points: np.ndarray, table: dict) -> torch.Tensor:
    """Mesh points [..., V, 3] (numpy) at the table's landmarks -> [..., 478, 3]."""
    return (torch.from_numpy(points)[..., table["vertices"], :] * table["bary"][..., None]).sum(-2)


def ict_to_head(model: dict, table: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The similarity (scale, rotation, translation; float64) from ICT model coordinates (cm) to the canonical
    head frame: the neutral mesh's landmarks onto the canonical face's rigid points."""
    if int(table["n_vertices"]) != len(model["neutral"]):
        raise MissingAssetError(f"the ICT-FaceKit model has {len(model['neutral'])} vertices, "
                                f"the correspondence table expects {int(table['n_vertices'])}")
    face = load_canonical()
    neutral = at_landmarks(model["neutral"], table).double()
    return similarity_fit(neutral[face.rigid], face.shape[face.rigid].double())


def eyeball_rotations(coeffs: torch.Tensor, names: list) -> torch.Tensor:
    """Rotations [..., 2, 3, 3] (ICT axes) of the left and right eyeball for coefficients [..., E]: eyeLookIn/Out
    turn an eye about the vertical axis, eyeLookUp/Down about the horizontal one, GAZE_DEGREES at weight 1."""
    def c(name):
        return coeffs[..., names.index(name)]
    to_x = torch.stack([c("eyeLookOut_L") - c("eyeLookIn_L"), c("eyeLookIn_R") - c("eyeLookOut_R")], -1)
    up = torch.stack([c("eyeLookUp_L") - c("eyeLookDown_L"), c("eyeLookUp_R") - c("eyeLookDown_R")], -1)
    return rotvec_to_matrix(torch.stack([-up, to_x, torch.zeros_like(up)], -1) * math.radians(GAZE_DEGREES))


def with_gaze(verts: torch.Tensor, coeffs: torch.Tensor, names: list) -> torch.Tensor:
    """Model meshes [..., V, 3] (ICT axes) with the eyeballs turned by the eyeLook coefficients [..., E]: ICT's
    eyeLook blend shapes move only the eyelids. Each eyeball turns about the centre of a sphere fitted to it."""
    out = verts.clone()
    for ball, rot in zip(EYEBALLS, eyeball_rotations(coeffs, names).unbind(-3)):
        points = verts[..., ball, :]
        rows = torch.cat([2 * points, torch.ones_like(points[..., :1])], -1)  # |p|^2 = 2 p.c + (r^2 - |c|^2)
        centre = torch.linalg.lstsq(rows, points.square().sum(-1, keepdim=True)).solution[..., :3, :].transpose(-1, -2)
        out[..., ball, :] = (points - centre) @ rot.transpose(-1, -2) + centre
    return out


@dataclass(frozen=True)
class LandmarkBasis(Record):
    """The model at mediapipe's 478 landmarks, in the canonical head frame, with the tracker's calibrated bias.

    `response` [E, K + 1] is how far the tracker follows each blend shape at weights 0, 1/K .. 1, in units of its
    motion at weight 1 (`expression`): the fit solves for that tracked motion and maps it back to a weight.
    """

    neutral: torch.Tensor  # [478, 3]
    identity: torch.Tensor  # [I, 478, 3] per unit (standard-normal) identity weight
    expression: torch.Tensor  # [E, 478, 3] per unit blend-shape weight
    names: list  # E ARKit names
    view: torch.Tensor | None = None  # [VIEW_FEATURES, 478, 3] tracker bias per unit of `view_features`; None: 0
    response: torch.Tensor | None = None  # [E, K + 1] (see above); None: linear

    def __post_init__(self):
        if self.view is None:
            object.__setattr__(self, "view", torch.zeros(VIEW_FEATURES, *self.neutral.shape))
        if self.response is None:
            object.__setattr__(self, "response", torch.tensor([[0.0, 1.0]]).repeat(len(self.names), 1))

    @classmethod
    def from_model(cls, model: dict, table: dict | None = None) -> "LandmarkBasis":
        """The basis of a full model through a correspondence table (default: the packaged one)."""
        table = table or correspondence()
        scale, rot, trans = ict_to_head(model, table)
        neutral = (at_landmarks(model["neutral"], table).double() @ (scale * rot).T + trans).float()
        linear = (scale * rot).float()
        names = list(model["expression_names"])
        mesh = torch.from_numpy(model["neutral"])
        gaze = (with_gaze(mesh.expand(len(names), -1, -1), torch.eye(len(names)), names) - mesh).numpy()
        expression = at_landmarks(model["expression_modes"], table) + at_landmarks(gaze, table)
        return cls(neutral + table["offset_neutral"], at_landmarks(model["identity_modes"], table) @ linear.T,
                   expression @ linear.T + table["offset_expression"], names, table.get("offset_view"),
                   table.get("response"))


def _model_key(path: Path) -> str:
    """Digest of the model (a file's bytes; a folder's file names, sizes and times) and the correspondence table."""
    h = hashlib.sha256(CORRESPONDENCE.read_bytes())
    if path.is_file():
        h.update(path.read_bytes())
    else:
        for f in sorted(ict_facekit.model_folder(path).iterdir()):
            h.update(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def cached_basis(name: str, version: int, kind, path: Path):
    """A basis record derived from the model at `path` (`kind` has from_model), read from the cache folder, or built
    from the full model and cached there; an unreadable entry is rebuilt."""
    return WorkDir(cache_dir()).cached(name, version, (_model_key(path),), lambda: kind.from_model(read_model(path)),
                                       kind.load)


def landmark_basis(path: Path) -> LandmarkBasis:
    """The compact basis of the model at `path`, from the cache or built (and cached) from the full model."""
    return cached_basis("ict-landmarks", BASIS_VERSION, LandmarkBasis, path)
