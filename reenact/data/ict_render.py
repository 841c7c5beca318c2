"""Face-like renders of the ICT-FaceKit mesh, for the correspondence builder and the accuracy bench.

Orthographic, Lambert-shaded with a light from the camera and a little above, with a skin colour, white
eyeballs with a dark iris, red lips, dark mouth socket and white teeth, so mediapipe's tracker locks on.
Only the opaque regions are drawn (face, head, mouth, teeth, eyeballs); eyelashes and the transparent
eye layers are left out.
"""
from __future__ import annotations

import torch

from reenact.geometry import angles_to_matrix
from reenact.ict_basis import correspondence, ict_to_head
from reenact.raster import interpolate, rasterize

FACE_END, SOCKET_END, EYE_SOCKET_END, GUMS_END, TEETH_END, EYEBALL_END = 11248, 13294, 14062, 17039, 21451, 24591
SKIN = (0.86, 0.66, 0.54)
LIPS = (0.72, 0.36, 0.36)
BACKGROUND = 0.78
OUTER_LIPS = (5708, 5695, 2081, 0, 4275, 6200, 6213, 6346, 6461, 5518, 5957, 5841)  # 68-point landmarks 48-59


def triangulate(polygons: torch.Tensor) -> torch.Tensor:
    """Quads (and triangles with -1 as 4th index) [P, 4] -> triangles [F, 3]."""
    first = polygons[:, [0, 1, 2]]
    quads = polygons[polygons[:, 3] >= 0]
    return torch.cat([first, quads[:, [0, 2, 3]]]).long()


def opaque_triangles(polygons: torch.Tensor) -> torch.Tensor:
    """The triangles of the regions a render draws."""
    tris = triangulate(polygons)
    return tris[(tris < EYEBALL_END).all(1)]


def vertex_colours(neutral: torch.Tensor) -> torch.Tensor:
    """Albedo [V, 3] per vertex of the neutral mesh (cm): regions by index range, iris by direction."""
    n = len(neutral)
    idx = torch.arange(n)
    colour = torch.tensor(SKIN).expand(n, 3).clone()
    colour[lip_vertices(neutral)] = torch.tensor(LIPS)
    colour[(idx >= FACE_END) & (idx < EYE_SOCKET_END)] = torch.tensor((0.25, 0.08, 0.08))
    colour[(idx >= EYE_SOCKET_END) & (idx < GUMS_END)] = torch.tensor((0.55, 0.22, 0.22))
    colour[(idx >= GUMS_END) & (idx < TEETH_END)] = torch.tensor((0.93, 0.92, 0.86))
    eyes = (idx >= TEETH_END) & (idx < EYEBALL_END)
    side = neutral[:, 0] > 0
    for s in (True, False):
        ball = eyes & (side == s)
        centre = neutral[ball].mean(0)
        radius = (neutral[ball] - centre).norm(dim=-1).median()
        cos = (neutral[ball, 2] - centre[2]) / radius
        colour[ball] = torch.where((cos > 0.97)[:, None], torch.tensor((0.05, 0.04, 0.04)),
                                   torch.where((cos > 0.9)[:, None], torch.tensor((0.30, 0.20, 0.12)),
                                               torch.tensor((0.93, 0.92, 0.90))))
    return colour


def lip_vertices(neutral: torch.Tensor) -> torch.Tensor:
    """Face vertices within the outer lip contour, seen from the front."""
    contour = neutral[list(OUTER_LIPS), :2]
    pts = neutral[:FACE_END, :2]
    a, b = contour, contour.roll(-1, 0)
    crosses = ((a[:, 1] > pts[:, None, 1]) != (b[:, 1] > pts[:, None, 1])) & (
        pts[:, None, 0] < a[:, 0] + (pts[:, None, 1] - a[:, 1]) * (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1] + 1e-12))
    inside = crosses.sum(1) % 2 == 1
    front = neutral[:FACE_END, 2] > neutral[list(OUTER_LIPS), 2].min() - 1.0
    return torch.nonzero(inside & front).flatten()


def render(verts: torch.Tensor, triangles: torch.Tensor, colours: torch.Tensor, height: int, width: int):
    """Image-frame meshes [B, V, 3] (x right, y down, z away, px) -> (uint8 images [B, H, W, 3], Fragments)."""
    frags = rasterize(verts, triangles, height, width)
    tri = verts[:, triangles]
    normal = torch.linalg.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0])
    normal = normal / normal.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    light = torch.tensor([0.0, -0.35, -1.0])
    lambert = (normal @ (light / light.norm())).abs()  # [B, F]
    face = frags.pix_to_face.clamp_min(0)
    shade = 0.25 + 0.75 * torch.gather(lambert, 1, face.flatten(1)).view_as(face)
    albedo = interpolate(frags, colours.expand(len(verts), -1, -1).contiguous())
    rgb = torch.where((frags.pix_to_face >= 0)[..., None], albedo * shade[..., None], torch.tensor(BACKGROUND))
    return (rgb.clamp(0, 1) * 255 + 0.5).byte().numpy(), frags


def to_image(points: torch.Tensor, px_per_cm: float, centre: tuple[float, float]) -> torch.Tensor:
    """Model points (cm, y up, z to viewer) [..., 3] to a frontal image frame (x right, y down, z away)."""
    return torch.stack([points[..., 0] * px_per_cm + centre[0], -points[..., 1] * px_per_cm + centre[1],
                        -points[..., 2] * px_per_cm], -1)


def render_head(full: dict, identity: torch.Tensor, angles: torch.Tensor, distance: float = 0.0, size: int = 512,
                px_per_cm: float = 15.0):
    """A subject of the full model (identity weights [I], neutral expression) at head angles [B, 3] (yaw, pitch,
    roll in degrees, `reenact.geometry`), orthographic (distance 0) or through a pinhole `distance` cm away:
    uint8 images [B, size, size, 3], the head a little below the centre as a portrait frames it."""
    neutral = torch.from_numpy(full["neutral"])
    verts = neutral + torch.einsum("i,ivc->vc", identity, torch.from_numpy(full["identity_modes"]).float())
    _, head_from_ict, _ = ict_to_head(full, correspondence())
    cam = verts[None] @ (angles_to_matrix(angles) @ head_from_ict.float()).transpose(1, 2)  # x right, y down, z away
    if distance:
        cam = torch.cat([cam[..., :2] * distance / (cam[..., 2:] + distance), cam[..., 2:]], -1)
    images, _ = render(px_per_cm * cam + torch.tensor([size / 2, size / 2 + 20, 0.0]),
                       opaque_triangles(torch.from_numpy(full["polygons"])), vertex_colours(neutral), size, size)
    return images
