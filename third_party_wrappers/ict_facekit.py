"""Readers for the ICT-FaceKit light face model (MIT, USC ICT): the upstream folder or the packed npz -> arrays.

Upstream layout (the ICT-VGL/ICT-FaceKit repository): `FaceXModel/generic_neutral_mesh.obj`, one OBJ per
identity mode (`identity000.obj` ...) and per expression (`jawOpen.obj` ...), all sharing one topology, and
`vertex_indices.json` whose "expressions" list orders the 53 ARKit blend shapes. The packed npz (see
../shared/facemodels/ict-facekit/README.md) holds the same numbers as mode offsets from the neutral mesh.
Both readers return the same dict: neutral [V, 3], identity_modes [I, V, 3], expression_modes [E, V, 3]
(float32 offsets, centimetres, y up, +z toward the viewer), expression_names [E], polygons [P, 4] int64
(-1 as the 4th index of a triangle).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

NEUTRAL = "generic_neutral_mesh.obj"
INDICES = "vertex_indices.json"


def model_folder(path: Path) -> Path:
    """The folder holding the OBJs: `path` itself or its `FaceXModel/` subfolder."""
    path = Path(path)
    return path / "FaceXModel" if (path / "FaceXModel" / NEUTRAL).is_file() else path


def read_obj(path: Path, faces: bool = False) -> np.ndarray:
    """Vertex positions [V, 3] float32 of an OBJ file, or with `faces` its polygons [P, 4] int64 (0-based)."""
    text = Path(path).read_text()
    if not faces:
        rows = [line[2:] for line in text.splitlines() if line.startswith("v ")]
        return np.array(" ".join(rows).split(), np.float32).reshape(-1, 3)
    polys = [[int(tok.split("/")[0]) - 1 for tok in line.split()[1:]] for line in text.splitlines()
             if line.startswith("f ")]
    if any(len(p) not in (3, 4) for p in polys):
        raise ValueError(f"{path}: only triangles and quads are supported")
    return np.array([p + [-1] * (4 - len(p)) for p in polys], np.int64)


def expression_names(folder: Path) -> list[str]:
    """The ARKit blend-shape names in upstream order, from `vertex_indices.json`."""
    return list(json.loads((model_folder(folder) / INDICES).read_text())["expressions"])


def read_upstream(folder: Path, n_identities: int = 100, expressions: list[str] | None = None) -> dict:
    """The model from the upstream OBJ folder; `expressions` None reads all those `vertex_indices.json` lists."""
    folder = model_folder(folder)
    names = expression_names(folder) if expressions is None else list(expressions)
    neutral = read_obj(folder / NEUTRAL)
    identity = [read_obj(folder / f"identity{i:03d}.obj") - neutral for i in range(n_identities)]
    expression = [read_obj(folder / f"{name}.obj") - neutral for name in names]
    return dict(neutral=neutral, identity_modes=np.stack(identity) if identity else np.zeros((0, *neutral.shape), np.float32),
                expression_modes=np.stack(expression), expression_names=names,
                polygons=read_obj(folder / NEUTRAL, faces=True))


def read_packed(path: Path) -> dict:
    """The model from the packed `ict_face_model.npz`."""
    with np.load(path, allow_pickle=False) as d:
        return dict(neutral=d["neutral"].astype(np.float32), identity_modes=d["identity_modes"].astype(np.float32),
                    expression_modes=d["expression_modes"].astype(np.float32),
                    expression_names=[str(n) for n in d["expression_names"]],
                    polygons=d["polygons"].astype(np.int64))
