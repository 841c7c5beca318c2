"""Builds `ict_correspondence.npz`: where mediapipe's 478 landmarks lie on the ICT-FaceKit mesh (developer script).

    python -m reenact.data.build_ict_correspondence [MODEL]   # MODEL: npz or upstream folder (default: located)

The neutral ICT mesh, mouth slightly open so the inner lip points fall on the right lip, is rendered frontally
(`reenact.data.ict_render`) and tracked with the project's own tracker; each landmark is back-projected onto
the surface as (triangle vertices, barycentric weights). Iris points may land only on the eyeballs, all others
only on the skin of the face and head (the nearest such pixel where the tracker put them elsewhere).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from reenact.data.ict_render import EYEBALL_END, FACE_END, TEETH_END, opaque_triangles, render, to_image, vertex_colours
from reenact.track import track_image

OUT = Path(__file__).with_name("ict_correspondence.npz")
SIZE, PX_PER_CM, JAW_OPEN = 768, 24.0, 0.2
IRIS = slice(468, 478)


def backproject(points: torch.Tensor, verts: torch.Tensor, triangles: torch.Tensor, frags, allowed: torch.Tensor):
    """Image points [N, 2] -> (vertex triples [N, 3], barycentrics [N, 3]) on the allowed triangles ([N, F] bool)."""
    p2f = frags.pix_to_face[0]
    covered = torch.nonzero(p2f >= 0)  # [K, 2] (row, col)
    face = p2f[covered[:, 0], covered[:, 1]]
    centres = covered.flip(1).double() + 0.5
    dist = torch.cdist(points.double(), centres)
    dist[~allowed[:, face]] = float("inf")
    tri = face[dist.argmin(1)]
    corners = verts[triangles[tri], :2].double()  # [N, 3, 2]
    a, b, c = corners.unbind(1)
    m = torch.stack([b - a, c - a], -1)
    uv = torch.linalg.solve(m, (points.double() - a)[..., None])[..., 0]
    bary = torch.stack([1 - uv.sum(-1), uv[:, 0], uv[:, 1]], -1).clamp_min(0)
    return triangles[tri], (bary / bary.sum(-1, keepdim=True)).float()


def build(model: dict) -> dict:
    neutral = torch.from_numpy(model["neutral"])
    jaw = torch.from_numpy(model["expression_modes"][model["expression_names"].index("jawOpen")])
    triangles = opaque_triangles(torch.from_numpy(model["polygons"]))
    verts = to_image(neutral + JAW_OPEN * jaw, PX_PER_CM, (SIZE / 2, SIZE / 2 - 20))[None]
    image, frags = render(verts, triangles, vertex_colours(neutral), SIZE, SIZE)
    points = track_image(image[0], name="ICT render").landmarks[0, :, :2]
    skin = (triangles < FACE_END).all(1)
    eyeball = (triangles >= TEETH_END).all(1) & (triangles < EYEBALL_END).all(1)
    allowed = skin.expand(478, -1).clone()
    allowed[IRIS] = eyeball
    vertices, bary = backproject(points, verts[0], triangles, frags, allowed)
    return dict(vertices=vertices.int().numpy(), bary=bary.numpy(), n_vertices=np.int64(len(neutral)))


def main(argv: list[str]) -> None:
    from reenact.ict import locate_model, read_model

    path = Path(argv[0]) if argv else locate_model()
    np.savez(OUT, **build(read_model(path)))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main(sys.argv[1:])
