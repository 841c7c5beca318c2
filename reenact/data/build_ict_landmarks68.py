"""Builds `ict_landmarks68.npz`, the 68 Multi-PIE landmarks' 3D positions for `reenact.observe` (developer script).

    python -m reenact.data.build_ict_landmarks68 [ICT_MODEL]   # ict_face_model.npz or the upstream folder

`points` [68, 3] float32 are the ICT-FaceKit neutral mesh (MIT) at its `landmarks68` vertices, in the model's
own head frame and unit: centimetres, +x to the image right of a frontal face, +y up, +z toward the viewer (the
head frame of `reenact.geometry`). `vertices` [68] keeps the indices. Only the rigid nose and eye-corner points
serve the pose fit, but all 68 are kept for drawing and checks. The script prints the mesh's left/right
asymmetry at these points (the neutral mesh is mirror-symmetric, which keeps the observer's yaw and roll odd
under a horizontal flip).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from third_party_wrappers.ict_facekit import model_folder, read_obj

OUT = Path(__file__).with_name("ict_landmarks68.npz")
DEFAULT = Path(__file__).resolve().parents[3] / "shared" / "facemodels" / "ict-facekit" / "ict_face_model.npz"
# The upstream README's 68 landmark vertices (the packed npz carries the same list as `landmarks68`).
VERTICES = (1225, 1888, 1052, 367, 1719, 1722, 2199, 1447, 966, 3661, 4390, 3927, 3924, 2608, 3272, 4088,
                     3443, 268, 493, 1914, 2044, 1401, 3615, 4240, 4114, 2734, 2509, 978, 4527, 4942, 4857, 1140,
                     2075, 1147, 4269, 3360, 1507, 1542, 1537, 1528, 1518, 1511, 3742, 3751, 3756, 3721, 3725, 3732,
                     5708, 5695, 2081, 0, 4275, 6200, 6213, 6346, 6461, 5518, 5957, 5841, 5702, 5711, 5533, 6216,
                     6207, 6470, 5517, 5966)
# Multi-PIE left/right counterparts: jaw, brows, nose (bridge on the midline), eyes, outer and inner lips.
MIRROR = np.array([*range(16, -1, -1), *range(26, 16, -1), 27, 28, 29, 30, *range(35, 30, -1),
                   45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,
                   54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65])


def read_landmarks(model: Path) -> tuple[np.ndarray, np.ndarray]:
    """(points [68, 3] float32 cm, vertex indices [68]) from the packed npz or the upstream OBJ folder."""
    vertices = np.array(VERTICES, np.int64)
    if model.suffix == ".npz":
        with np.load(model, allow_pickle=False) as d:
            if not np.array_equal(d["landmarks68"], vertices):
                raise ValueError(f"{model}: its landmarks68 differ from the upstream README's")
            neutral = d["neutral"]
    else:
        neutral = read_obj(model_folder(model) / "generic_neutral_mesh.obj")
    return neutral[vertices].astype(np.float32), vertices


def main(argv: list[str]) -> None:
    points, vertices = read_landmarks(Path(argv[0]) if argv else DEFAULT)
    mirrored = points[MIRROR] * np.array([-1, 1, 1], np.float32)
    print(f"left/right asymmetry: max {np.abs(points - mirrored).max():.4f} cm")
    np.savez(OUT, points=points, vertices=vertices, unit=np.array("cm"))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main(sys.argv[1:])
