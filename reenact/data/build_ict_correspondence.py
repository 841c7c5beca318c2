"""Builds `ict_correspondence.npz`: where mediapipe's 478 landmarks lie on the ICT-FaceKit mesh (developer script).

    python -m reenact.data.build_ict_correspondence [MODEL]   # MODEL: npz or upstream folder (default: located)

The neutral ICT mesh, mouth slightly open so the inner lip points fall on the right lip, is rendered frontally
(`reenact.data.ict_render`) and tracked with the project's own tracker; each landmark is back-projected onto
the surface as (triangle vertices, barycentric weights). Iris points may land only on the eyeballs, all others
only on the skin of the face and head (the nearest such pixel where the tracker put them elsewhere).

Then a calibration: random identities, sparse random expressions (eyeballs turned by the eyeLook weights,
`reenact.ict.with_gaze`) and head poses are rendered and tracked (seed 1001, apart from the accuracy bench's),
and the tracker's error against the exactly known model landmarks, taken into the head frame, is regressed per
landmark (ridge) on the blend-shape weights and the head angles (`reenact.pose.view_features`): `offset_neutral`,
`offset_expression` and `offset_view`, added to the landmark basis. They hold what one back-projected point
cannot: where mediapipe's points sit off the surface point, how far they follow an expression (eyelids that stay
apart in a blink, lips that lag a jaw opening, irises that follow the eyeball part-way) and how they drift as
the head turns (the outline sliding along the silhouette, the guessed depth). The blinks, which the tracker
follows late (lids that stay open half-way through a blink, then snap shut), get a `response` curve.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from reenact.data.ict_render import EYEBALL_END, FACE_END, TEETH_END, opaque_triangles, render, to_image, vertex_colours
from reenact.errors import InputError
from reenact.geometry import angles_to_matrix
from reenact.track import track_image

OUT = Path(__file__).with_name("ict_correspondence.npz")
SIZE, PX_PER_CM, JAW_OPEN = 768, 24.0, 0.2
IRIS = slice(468, 478)
CALIB_SUBJECTS, CALIB_FRAMES, CALIB_SIZE, CALIB_SEED = 100, 8, 512, 1001
CALIB_ON = 0.08  # chance of each blend shape being on in a calibration render (a few at once, as in real faces)
RESPONSE = ("eyeBlink_L", "eyeBlink_R")  # shapes the tracker follows non-linearly: their response curve is calibrated
RESPONSE_ON, KNOTS = 0.3, 5  # those shapes are on more often; their curve has KNOTS linear pieces
RIDGE = 2.0  # per blend shape, in units of frames at full weight: shrinks rarely seen shapes' offsets to 0


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
    table = dict(vertices=vertices.long(), bary=bary, n_vertices=torch.tensor(len(neutral)))
    table.update(regress(model, table, *calibration_errors(model, table)))
    return {k: v.numpy() for k, v in table.items()}


def random_expressions(names: list[str], n: int, g: torch.Generator) -> torch.Tensor:
    """[n, E] sparse weights: each shape on with probability CALIB_ON (the RESPONSE shapes RESPONSE_ON) at U(0, 1);
    half the time an _R shape copies its _L twin (faces are mostly symmetric)."""
    on = torch.tensor([RESPONSE_ON if name in RESPONSE else CALIB_ON for name in names])
    coeffs = torch.rand(n, len(names), generator=g) * (torch.rand(n, len(names), generator=g) < on)
    left = [i for i, name in enumerate(names) if name.endswith("_L")]
    right = [names.index(names[i][:-2] + "_R") for i in left]
    twin = torch.rand(n, len(left), generator=g) < 0.5
    coeffs[:, right] = torch.where(twin, coeffs[:, left], coeffs[:, right])
    return coeffs


def calibration_errors(model: dict, table: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Renders of random identities, expressions and poses, tracked: (weights [N, E], head rotations [N, 3, 3],
    the tracker's error against the table's landmarks [N, 478, 3] in the head frame, depth centred)."""
    from reenact.ict_basis import LandmarkBasis, ict_to_head, with_gaze

    names = model["expression_names"]
    zero = dict(table, offset_neutral=torch.zeros(478, 3), offset_expression=torch.zeros(len(names), 478, 3))
    basis = LandmarkBasis.from_model(model, zero)
    scale_h, rot_h, trans_h = (x.float() for x in ict_to_head(model, zero))
    neutral, triangles = torch.from_numpy(model["neutral"]), opaque_triangles(torch.from_numpy(model["polygons"]))
    id_modes, ex_modes = torch.from_numpy(model["identity_modes"]), torch.from_numpy(model["expression_modes"])
    colours = vertex_colours(neutral)
    g = torch.Generator().manual_seed(CALIB_SEED)
    weights, rotations, errors = [], [], []
    for _ in range(CALIB_SUBJECTS):
        identity = torch.randn(len(id_modes), generator=g) * 0.8
        coeffs = random_expressions(names, CALIB_FRAMES, g)
        rot = angles_to_matrix((torch.rand(CALIB_FRAMES, 3, generator=g) * 2 - 1) * torch.tensor([30.0, 15.0, 10.0]))
        px = 12 + 6 * torch.rand(CALIB_FRAMES, 1, 1, generator=g)  # pixels per cm
        centre = CALIB_SIZE / 2 + (torch.rand(CALIB_FRAMES, 1, 3, generator=g) * 2 - 1) * torch.tensor([15, 15, 0])
        verts = neutral + torch.einsum("i,ivc->vc", identity, id_modes) + torch.einsum("te,evc->tvc", coeffs, ex_modes)
        verts = with_gaze(verts, coeffs, names)
        images, _ = render(px * verts @ (rot @ rot_h).transpose(1, 2) + centre, triangles, colours,
                           CALIB_SIZE, CALIB_SIZE)
        truth = basis.neutral + torch.einsum("i,inc->nc", identity, basis.identity) + torch.einsum(
            "te,enc->tnc", coeffs, basis.expression)  # head frame; image = px / scale_h * rot head + t
        for i, image in enumerate(images):
            try:
                tracked = track_image(image).landmarks[0]
            except InputError:
                continue
            s = px[i, 0, 0] / scale_h
            error = tracked - s * truth[i] @ rot[i].T - (centre[i, 0] - s * rot[i] @ trans_h)
            error[:, 2] -= error[:, 2].mean()  # the tracker's depth has no absolute origin
            errors.append(error @ rot[i] / s)
            weights.append(coeffs[i])
            rotations.append(rot[i])
    return torch.stack(weights), torch.stack(rotations), torch.stack(errors)


def hats(x: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear interpolation weights [N, KNOTS - 1] of values [N] in [0, 1] at the interior knots."""
    knots = torch.linspace(0, 1, KNOTS + 1)[1:-1]
    return (1 - (x[:, None] - knots).abs() * KNOTS).clamp_min(0)


def regress(model: dict, table: dict, weights: torch.Tensor, rotations: torch.Tensor, errors: torch.Tensor) -> dict:
    """Ridge regression of the errors on [1, weights, view features, response hats], per landmark coordinate.

    A RESPONSE shape's tracked motion at weight w is w times (model + its linear offset) plus its hat terms; its
    response curve is that motion projected on the motion at weight 1 (landmarks weighted by how far the blend
    shape moves them), at the knots, made increasing."""
    from reenact.ict_basis import LandmarkBasis
    from reenact.pose import VIEW_FEATURES, view_features

    names = list(model["expression_names"])
    response = [names.index(name) for name in RESPONSE]
    n_e = len(names)
    x = torch.cat([torch.ones(len(weights), 1), weights, view_features(rotations)]
                  + [hats(weights[:, i]) for i in response], 1).double()
    y = errors.flatten(1).double()
    ridge = torch.full((x.shape[1],), RIDGE, dtype=torch.float64)
    ridge[0], ridge[1 + n_e:1 + n_e + VIEW_FEATURES] = 0, 0  # the mean and the view terms are seen in every render
    coef = torch.linalg.solve(x.T @ x + torch.diag(ridge), x.T @ y).float().unflatten(1, (478, 3))
    print(f"calibration: {len(x)} renders tracked; mean error {y.view(len(x), 478, 3).norm(dim=-1).mean():.4f} -> "
          f"{(y - x @ coef.flatten(1).double()).view(len(x), 478, 3).norm(dim=-1).mean():.4f} (head units)")
    offset_expression = coef[1:1 + n_e]
    bend = coef[1 + n_e + VIEW_FEATURES:].unflatten(0, (len(response), KNOTS - 1))
    zero = dict(table, offset_neutral=torch.zeros(478, 3), offset_expression=torch.zeros(n_e, 478, 3))
    geometric = LandmarkBasis.from_model(model, zero).expression
    curves = torch.linspace(0, 1, KNOTS + 1).repeat(n_e, 1)
    inner = torch.linspace(0, 1, KNOTS + 1)[1:-1, None, None]
    for j, i in enumerate(response):
        at_one = geometric[i] + offset_expression[i]
        along = geometric[i].square().sum(-1, keepdim=True) * at_one
        curves[i, 1:-1] = ((inner * at_one + bend[j]) * along).sum((1, 2)) / (at_one * along).sum()
        curves[i] = torch.cummax(curves[i].clamp(0, 1), 0).values
    return dict(offset_neutral=coef[0], offset_expression=offset_expression,
                offset_view=coef[1 + n_e:1 + n_e + VIEW_FEATURES], response=curves)


def main(argv: list[str]) -> None:
    from reenact.ict_basis import locate_model, read_model

    path = Path(argv[0]) if argv else locate_model()
    np.savez(OUT, **build(read_model(path)))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main(sys.argv[1:])
