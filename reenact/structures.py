"""Records passed between stages: frozen dataclasses of CPU tensors with atomic npz + JSON save/load.

Every tensor field has a leading frame axis T unless noted. A record file is one `.npz` holding the
arrays plus a `__meta__` JSON string (schema name, version, scalar fields); a file of another schema or
version raises `CacheError`, which callers treat as "recompute".
"""
from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from reenact.errors import CacheError

SCHEMA_VERSION = 1


def atomic_write(path: Path, write) -> None:
    """Call `write(tmp_path)` then rename onto `path`, so an existing file is always complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class Record:
    """Save/load for dataclass records: tensors and arrays to npz entries, the rest to JSON meta."""

    def save(self, path: Path) -> None:
        arrays, meta = {}, {"schema": type(self).__name__, "version": SCHEMA_VERSION}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Record):
                for k, v in value._flatten().items():
                    arrays[f"{f.name}.{k}"] = v
                meta[f.name] = {"record": type(value).__name__, **value._scalars()}
            elif isinstance(value, torch.Tensor):
                arrays[f.name] = value.detach().cpu().numpy()
            elif isinstance(value, np.ndarray):
                arrays[f.name] = value
            else:
                meta[f.name] = value
        arrays["__meta__"] = np.array(json.dumps(meta))

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)

        atomic_write(path, write)

    def _flatten(self) -> dict:
        return {f.name: getattr(self, f.name).detach().cpu().numpy() if isinstance(getattr(self, f.name), torch.Tensor)
                else getattr(self, f.name) for f in dataclasses.fields(self)
                if isinstance(getattr(self, f.name), (torch.Tensor, np.ndarray))}

    def _scalars(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if not isinstance(getattr(self, f.name), (torch.Tensor, np.ndarray))}

    @classmethod
    def load(cls, path: Path):
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
            meta = json.loads(str(arrays.pop("__meta__")))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
            raise CacheError(f"{path}: unreadable record ({exc})") from None
        if meta.pop("schema") != cls.__name__ or meta.pop("version") != SCHEMA_VERSION:
            raise CacheError(f"{path}: not a {cls.__name__} record of version {SCHEMA_VERSION}")
        return cls._build(arrays, meta)

    @classmethod
    def _build(cls, arrays: dict, meta: dict):
        kwargs = {}
        for f in dataclasses.fields(cls):
            if isinstance(meta.get(f.name), dict) and "record" in meta[f.name]:
                sub = dict(meta[f.name])
                sub_cls = RECORDS[sub.pop("record")]
                prefix = f"{f.name}."
                kwargs[f.name] = sub_cls._build({k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}, sub)
            elif f.name in arrays:
                kwargs[f.name] = torch.from_numpy(arrays[f.name])
            elif f.name in meta:
                kwargs[f.name] = meta[f.name]
            else:
                raise CacheError(f"{cls.__name__} record lacks field {f.name!r}")
        return cls(**kwargs)


@dataclass(frozen=True)
class Tracks(Record):
    """Face landmarks per frame, from `reenact.track`."""

    landmarks: torch.Tensor  # [T, 478, 3] float32 px: x right, y down, z away from camera scaled like x
    found: torch.Tensor  # [T] bool: a face was tracked (others are interpolated)
    height: int
    width: int
    fps: float
    thumbs: torch.Tensor | None = None  # [T, 16, 16] uint8 grey thumbnails of the frames (video tracks)
    colours: torch.Tensor | None = None  # [T, K, 3] uint8 colours at `reenact.follow.sample_points()` (video tracks)
    heads: torch.Tensor | None = None  # [T, C, C] uint8 grey crops around the head, `reenact.outline` (video tracks)
    head_boxes: torch.Tensor | None = None  # [T, 3] float32 px: each crop's x0, y0 and side in the frame


@dataclass(frozen=True)
class HeadPose(Record):
    """Per-frame head pose: image point = scale * rotation @ head point + translation (see reenact.geometry)."""

    rotation: torch.Tensor  # [T, 3, 3] image-from-head
    translation: torch.Tensor  # [T, 3] px
    scale: torch.Tensor  # [T] px per canonical unit (outer eye-corner distance)

    def angles(self) -> torch.Tensor:
        """Yaw, pitch, roll in degrees [T, 3]."""
        from reenact.geometry import head_angles

        return head_angles(self.rotation)

    def camera_labels(self) -> torch.Tensor:
        """EG3D 25-float camera labels [T, 25] for these head rotations (FFHQ convention)."""
        from reenact.eg3d.camera import label_from_rotation

        return label_from_rotation(self.rotation)

    def repeat_first(self, n: int, device: torch.device | str = "cpu") -> "HeadPose":
        """The first pose, n times, on `device`."""
        return HeadPose(*(x[:1].expand(n, *x.shape[1:]).to(device) for x in (self.rotation, self.translation,
                                                                             self.scale)))

    def select(self, frames, device: torch.device | str | None = None) -> "HeadPose":
        """The poses of `frames` (a slice or indices), on `device` (default: where they are)."""
        return HeadPose(*(x[frames].to(device or x.device) for x in (self.rotation, self.translation, self.scale)))

    def __len__(self) -> int:
        return self.rotation.shape[0]


@dataclass(frozen=True)
class Expression(Record):
    """Per-frame expression code of one face model, relative to the subject's reference shape."""

    coeffs: torch.Tensor  # [T, D]
    model: str  # "mesh-offset" (default model) or "ict-arkit53"
    names: list  # D coefficient names (ARKit names for the ICT model; empty for mesh offsets)


@dataclass(frozen=True)
class Motion(Record):
    """What smoothing, transfer, export and still images all speak: pose + expression per frame."""

    pose: HeadPose
    expression: Expression
    shape: torch.Tensor  # [478, 3] the subject's reference shape in the canonical head frame
    found: torch.Tensor  # [T] bool
    fps: float
    ref: int  # the reference frame: its expression code is zero

    def __len__(self) -> int:
        return len(self.pose)

    @property
    def placed(self) -> bool:
        """Whether the poses put the face at its place in the video's pixels (tracked), not at the neutral
        placement (the origin, unit scale) of tracks imported from a format without positions (CSV, JSON)."""
        return not bool((self.pose.scale == 1).all() and (self.pose.translation == 0).all())


@dataclass(frozen=True)
class Crop(Record):
    """Similarity crop of the source image: crop pixel = crop_from_image @ [x, y, 1]."""

    crop_from_image: torch.Tensor  # [2, 3]
    size: int

    @property
    def image_from_crop(self) -> torch.Tensor:
        """Inverse 2x3 transform, for paste-back."""
        full = torch.cat([self.crop_from_image, torch.tensor([[0.0, 0.0, 1.0]])], 0)
        return torch.linalg.inv(full.double()).float()[:2]


@dataclass(frozen=True)
class Rendered(Record):
    """One chunk of rendered crops and their masks."""

    start: int
    image: torch.Tensor  # [N, 3, S, S] float in [0, 1]
    face: torch.Tensor  # [N, 1, S, S] face region of the target
    valid: torch.Tensor  # [N, 1, S, S] pixels that come from the source
    mouth: torch.Tensor | None = None  # [N, 1, S, S] mouth interior painted by the renderer (None: it paints none)


@dataclass(frozen=True)
class Latents(Record):
    """EG3D latents of projected frames (reenact.invert); a partial record holds the frames done so far."""

    w: torch.Tensor  # [T, num_ws, w_dim]
    frames: torch.Tensor  # [T] int64 frame indices
    loss: torch.Tensor  # [T] final masked projection loss


RECORDS = {c.__name__: c for c in (Tracks, HeadPose, Expression, Motion, Crop, Rendered, Latents)}
