"""Builds `canonical_face.npz`, the default face model's topology and mean shape (developer script).

    python -m reenact.data.build_canonical PORTRAIT.jpg [PORTRAIT.jpg ...]

Triangles are recovered from mediapipe's tessellation edges (3-cliques, minus the two 'separating'
cliques whose three edges each border three cliques), the hole loops (mouth, eyes) from the edges that
border one triangle. The mean shape is the similarity-aligned average of the portraits' tracked meshes,
made left/right symmetric, in the canonical head frame: +x to the image right of a frontal view, +y up,
+z toward the camera, unit = distance between the outer eye corners, origin between the eyes.
"""
from __future__ import annotations

import sys
from collections import Counter
from itertools import combinations
from pathlib import Path

import numpy as np

from reenact.geometry import similarity_fit
from third_party_wrappers.facemesh import FaceMesh, tessellation_edges
from third_party_wrappers.image import read_image

OUT = Path(__file__).with_name("canonical_face.npz")
EYE_OUTER = (33, 263)
IRIS_CENTRES = (468, 473)


def triangles_from_edges(edges: np.ndarray) -> np.ndarray:
    neighbours = [set() for _ in range(edges.max() + 1)]
    for a, b in edges:
        neighbours[a].add(b)
        neighbours[b].add(a)
    tris = {tuple(sorted((a, b, c))) for a, b in edges for c in neighbours[a] & neighbours[b]}
    use = Counter(e for t in tris for e in combinations(t, 2))
    tris = [t for t in tris if not all(use[e] == 3 for e in combinations(t, 2))]
    return np.array(sorted(tris), np.int64)


def boundary_loops(tris: np.ndarray) -> list[np.ndarray]:
    use = Counter(tuple(sorted(e)) for t in tris for e in combinations(t, 2))
    nxt: dict[int, list[int]] = {}
    for (a, b), n in use.items():
        if n == 1:
            nxt.setdefault(a, []).append(b)
            nxt.setdefault(b, []).append(a)
    loops, seen = [], set()
    for start in sorted(nxt):
        if start in seen:
            continue
        loop, prev, cur = [start], None, start
        while True:
            seen.add(cur)
            step = [v for v in nxt[cur] if v != prev][0]
            if step == start:
                break
            loop.append(step)
            prev, cur = cur, step
        loops.append(np.array(loop, np.int64))
    return loops


def mirror_index(shape: np.ndarray) -> np.ndarray:
    flipped = shape * np.array([-1.0, 1.0, 1.0])
    return np.linalg.norm(shape[:, None] - flipped[None], axis=-1).argmin(1)


def main(paths: list[str]) -> None:
    meshes = []
    with FaceMesh(static=True, max_faces=1) as mesh:
        for p in paths:
            faces = mesh(read_image(p))
            if not faces:
                raise SystemExit(f"{p}: no face")
            meshes.append(faces[0].astype(np.float64) * np.array([1.0, -1.0, -1.0]))  # image -> y up, z to camera
    ref = meshes[0]
    aligned = [s * x @ r.T + t for x in meshes for s, r, t in [similarity_fit(x[:468], ref[:468])]]
    shape = np.mean(aligned, 0)
    shape = (shape - shape[list(EYE_OUTER)].mean(0)) / np.linalg.norm(shape[EYE_OUTER[0]] - shape[EYE_OUTER[1]])
    for _ in range(3):  # rotate the symmetry plane onto x = 0, then symmetrize
        mirror = mirror_index(shape)
        d = shape - shape[mirror]
        normal = np.linalg.eigh(d.T @ d)[1][:, -1]
        normal *= np.sign(normal[0])
        v = np.cross(normal, [1.0, 0.0, 0.0])
        c, s = normal[0], np.linalg.norm(v)
        k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]]) / max(s, 1e-12)
        rot = np.eye(3) + s * k + (1 - c) * k @ k
        shape = shape @ rot.T
        shape[:, 0] -= shape[:, 0].mean()
        mirror = mirror_index(shape)
        shape = 0.5 * (shape + shape[mirror] * np.array([-1.0, 1.0, 1.0]))
    shape -= shape[list(EYE_OUTER)].mean(0)
    shape /= np.linalg.norm(shape[EYE_OUTER[0]] - shape[EYE_OUTER[1]])

    tris = triangles_from_edges(tessellation_edges())
    loops = sorted(boundary_loops(tris), key=len)
    outer = loops[-1]
    mouth = next(lp for lp in loops if 13 in lp)
    right_eye = next(lp for lp in loops if 33 in lp)  # subject's right eye, image left
    left_eye = next(lp for lp in loops if 263 in lp)
    assert len(loops) == 4 and len(tris) == 852, (len(loops), len(tris))
    np.savez(
        OUT,
        shape=shape.astype(np.float32),
        triangles=tris,
        mirror=mirror_index(shape),
        outer_loop=outer,
        mouth_loop=mouth,
        right_eye_loop=right_eye,
        left_eye_loop=left_eye,
        sources=np.array([Path(p).name for p in paths]),
    )
    print(f"wrote {OUT}: {len(tris)} triangles, loops {[len(lp) for lp in loops]}")


if __name__ == "__main__":
    main(sys.argv[1:])
