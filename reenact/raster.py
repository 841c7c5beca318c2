"""Pure-PyTorch, vectorized, batched triangle rasterizer (CPU and CUDA).

Conventions
-----------
* Pixel (row i, col j) has its centre at (x = j + 0.5, y = i + 0.5), in pixel units.
* Vertices are [..., 3]: (x, y) in those pixel units, z = depth; SMALLER z is NEARER to the viewer.
* Faces are int64 index triples into the vertices, either winding (no back-face culling).
* A pixel is covered by a face when its centre lies inside the face or within `EDGE_EPS` pixels of
  it (inclusive test), so adjacent faces leave no holes; overlaps are resolved by depth, exact
  depth ties by the smallest face index. Zero-area and non-finite faces are skipped.
* Barycentrics are affine in screen space (no perspective correction). Outputs are not
  differentiable (inputs are detached).

Algorithm (no Python loop over pixels or faces; cost ~ box rows + covered pixels, not pixels x
faces): per (batch, face), a pixel box clipped to the image; every box row of every face at once is
clipped to the exact span of pixel centres inside the three edges (float64 edge equations); the
span pixels are enumerated with repeat_interleave, their depth taken from the face's z plane, the
nearest per pixel found with scatter_reduce('amin') on z and ties broken by a second 'amin' on the
face index; finally barycentrics are evaluated for the winners only. Faces are processed in chunks
of at most about `max_candidates` box pixels to bound memory.
"""

from dataclasses import dataclass
from typing import Optional

import torch

EDGE_EPS = 1e-4
"""Tolerance (pixels) of the inside test: centres this close outside an edge still count."""


@dataclass(frozen=True)
class Fragments:
    """Rasterizer -> shader contract (one nearest face per pixel)."""

    pix_to_face: torch.Tensor  # [B, H, W] int64, -1 where no face covers the pixel centre
    bary: torch.Tensor  # [B, H, W, 3] float, barycentric weights of the pixel centre in that face (0 where empty)
    zbuf: torch.Tensor  # [B, H, W] float, interpolated z of the nearest face (+inf where empty)
    faces: Optional[torch.Tensor] = None  # [F, 3] int64, the face table rasterized (used by `interpolate`)


def _face_setup(verts: torch.Tensor, faces: torch.Tensor, height: int, width: int):
    """Per-(batch, face) "entries": boxes and edge equations of the rasterizable faces only.

    Entries are ordered by (batch, face), so for a given pixel a smaller entry id is a smaller face
    id. Entry e covers pixel rows [i0, i0 + bh) and cols [j0, j0 + bw); at box offset (di, dj) its
    signed distance (pixels, positive inside) to edge k (opposite vertex k) is
    coef[e, k, 2] + coef[e, k, 0] * dj + coef[e, k, 1] * di, and that times inv_h[e, k] is
    barycentric k. Everything is float64 (per-face work only) so the coverage test is exact enough
    to keep shared edges hole-free.
    """
    tri = verts[:, faces].double()  # [B, F, 3 vertices, 3 coords]
    x, y, z = tri.unbind(-1)  # each [B, F, 3]
    area2 = (x[..., 1] - x[..., 0]) * (y[..., 2] - y[..., 0]) - (x[..., 2] - x[..., 0]) * (y[..., 1] - y[..., 0])

    # Clamp to [-1, size] before the integer cast so far off-screen coordinates cannot overflow.
    j0 = torch.ceil(x.amin(-1) - 0.5 - EDGE_EPS).clamp(-1, width).long().clamp_min(0)
    j1 = torch.floor(x.amax(-1) - 0.5 + EDGE_EPS).clamp(-1, width).long().clamp_max(width - 1)
    i0 = torch.ceil(y.amin(-1) - 0.5 - EDGE_EPS).clamp(-1, height).long().clamp_min(0)
    i1 = torch.floor(y.amax(-1) - 0.5 + EDGE_EPS).clamp(-1, height).long().clamp_max(height - 1)
    ok = (area2 != 0) & torch.isfinite(tri).flatten(-2).all(-1) & torch.isfinite(area2) & (j1 >= j0) & (i1 >= i0)

    b_idx, f_idx = ok.nonzero(as_tuple=True)
    x, y, z, area2 = x[ok], y[ok], z[ok], area2[ok]
    j0, j1, i0, i1 = j0[ok], j1[ok], i0[ok], i1[ok]

    # Edge k runs from vertex k+1 to vertex k+2; its inward unit normal n_k gives the distance.
    xa, ya = x.roll(-1, -1), y.roll(-1, -1)
    ex, ey = x.roll(-2, -1) - xa, y.roll(-2, -1) - ya
    length = torch.sqrt(ex * ex + ey * ey)
    sgn = torch.sign(area2)[:, None]
    nx, ny = -ey * sgn / length, ex * sgn / length
    ox = (j0.double() + 0.5)[:, None] - xa
    oy = (i0.double() + 0.5)[:, None] - ya
    coef = torch.stack((nx, ny, nx * ox + ny * oy), -1)  # [E, 3, 3]
    inv_h = length / area2.abs()[:, None]  # [E, 3]: 1 / (distance of vertex k to edge k)
    zplane = ((coef * inv_h[..., None]) * z[..., None]).sum(1)  # [E, 3]: z = zx * dj + zy * di + z0

    return dict(
        face=f_idx, coef=coef, inv_h=inv_h, zplane=zplane, i0=i0, j0=j0,
        bh=i1 - i0 + 1, bw=j1 - j0 + 1, pix0=(b_idx * height + i0) * width + j0,
    )


def rasterize(
    verts: torch.Tensor, faces: torch.Tensor, height: int, width: int, max_candidates: int = 1 << 22
) -> Fragments:
    """Rasterize a batch of meshes sharing one face table.

    verts [B, V, 3] float (x, y in pixels, z depth, smaller nearer), faces [F, 3] int64 (shared by
    the batch). `max_candidates` bounds the bounding-box pixels handled at once (working memory is
    a few tens of bytes per such pixel). Returns Fragments of shape [B, height, width].
    """
    verts = verts.detach()
    faces = faces.to(device=verts.device, dtype=torch.long)
    B, dev, dt = verts.shape[0], verts.device, verts.dtype
    n_pix = B * height * width
    none = torch.iinfo(torch.long).max
    zbuf = torch.full((n_pix,), float("inf"), dtype=dt, device=dev)
    ent_buf = torch.full((n_pix,), none, dtype=torch.long, device=dev)

    ent = _face_setup(verts, faces, height, width)
    area = ent["bh"] * ent["bw"]
    if len(area):
        start = area.cumsum(0) - area
        # Contiguous runs of entries grouped by where their box pixels start: each run holds at
        # most max_candidates plus one entry's box.
        total = int(start[-1] + area[-1])
        bounds = torch.searchsorted(start, torch.arange(0, total, max_candidates, device=dev)).tolist() + [len(area)]
        for s, e in zip(bounds[:-1], bounds[1:]):
            if e > s:
                _raster_chunk(ent, s, e, width, zbuf, ent_buf, first=s == 0)

    # Barycentrics of the winners only, from their entry's edge equations.
    covered = (ent_buf != none).nonzero().squeeze(1)
    e = ent_buf.index_select(0, covered)
    pix_to_face = torch.full((n_pix,), -1, dtype=torch.long, device=dev)
    pix_to_face.index_copy_(0, covered, ent["face"].index_select(0, e))
    rc = covered % (height * width)
    di = (rc // width - ent["i0"].index_select(0, e)).to(dt)[:, None]
    dj = (rc % width - ent["j0"].index_select(0, e)).to(dt)[:, None]
    c = ent["coef"].to(dt).index_select(0, e)
    w = (c[..., 2] + c[..., 0] * dj + c[..., 1] * di) * ent["inv_h"].to(dt).index_select(0, e)
    bary = torch.zeros((n_pix, 3), dtype=dt, device=dev)
    bary.index_copy_(0, covered, w / w.sum(-1, keepdim=True))
    shape = (B, height, width)
    return Fragments(pix_to_face.view(shape), bary.view(*shape, 3), zbuf.view(shape), faces)


def _raster_chunk(ent: dict, s: int, e: int, width: int, zbuf: torch.Tensor, ent_buf: torch.Tensor, first: bool):
    """Scan-convert entries [s, e) and merge their nearest fragments into zbuf / ent_buf.

    Each box row is clipped to the exact pixel span inside all three edges (float64, per row), so
    only covered pixels are enumerated; their depth comes from the entry's z plane.
    """
    dev = zbuf.device
    bh = ent["bh"][s:e]
    row_ent = torch.repeat_interleave(torch.arange(s, e, device=dev), bh)
    row_start = bh.cumsum(0) - bh
    di = (torch.arange(len(row_ent), device=dev) - row_start[row_ent - s]).double()

    # Span of dj with coef_k0 * dj + (coef_k1 * di + coef_k2) >= -eps for all edges k.
    c = ent["coef"].index_select(0, row_ent)  # [R, 3, 3]
    nx, rhs = c[..., 0], -EDGE_EPS - (c[..., 1] * di[:, None] + c[..., 2])
    bound = rhs / nx
    inf = torch.tensor(float("inf"), dtype=bound.dtype, device=dev)
    lo = torch.where(nx > 0, bound, torch.where((nx == 0) & (rhs > 0), inf, -inf)).amax(-1)
    hi = torch.where(nx < 0, bound, torch.where((nx == 0) & (rhs > 0), -inf, inf)).amin(-1)
    bw = ent["bw"].index_select(0, row_ent)
    jl = torch.ceil(lo).clamp(0, 2**40).long()
    jr = torch.minimum(torch.floor(hi).clamp(-1, 2**40).long(), bw - 1)
    n = (jr - jl + 1).clamp_min(0)

    zp = ent["zplane"].index_select(0, row_ent)
    z0 = (zp[:, 0] * jl + zp[:, 1] * di + zp[:, 2]).to(zbuf.dtype)  # z at the span's first pixel
    zx = zp[:, 0].to(zbuf.dtype)
    pix0 = ent["pix0"].index_select(0, row_ent) + di.long() * width + jl

    row = torch.repeat_interleave(n)
    t = torch.arange(len(row), device=dev) - (n.cumsum(0) - n).index_select(0, row)  # offset in span
    pix = pix0.index_select(0, row) + t
    z = torch.addcmul(z0.index_select(0, row), zx.index_select(0, row), t.to(zbuf.dtype))

    # Nearest z wins; a pixel whose z improved forgets its old entry; exact ties -> smallest entry.
    if first:
        zbuf.scatter_reduce_(0, pix, z, "amin")
    else:
        z_old = zbuf.index_select(0, pix)
        zbuf.scatter_reduce_(0, pix, z, "amin")
        ent_buf[pix[zbuf.index_select(0, pix) < z_old]] = torch.iinfo(torch.long).max
    hit = (z == zbuf.index_select(0, pix)).nonzero().squeeze(1)
    eid = row_ent.index_select(0, row.index_select(0, hit))
    ent_buf.scatter_reduce_(0, pix.index_select(0, hit), eid, "amin")


def interpolate(fragments: Fragments, vert_attrs: torch.Tensor, faces: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Barycentric blend of per-vertex attributes of each pixel's face.

    vert_attrs [B, V, C] -> [B, H, W, C], 0 where no face. `faces` defaults to `fragments.faces`.
    Differentiable w.r.t. vert_attrs.
    """
    faces = fragments.faces if faces is None else faces
    p2f = fragments.pix_to_face
    B, V, C = vert_attrs.shape
    hit = (p2f >= 0).flatten().nonzero()[:, 0]  # covered pixels only: a face rarely fills its image
    vid = faces.to(p2f.device).index_select(0, p2f.flatten()[hit])  # [K, 3]
    vid = vid + (hit // p2f[0].numel() * V)[:, None]
    attrs = vert_attrs.reshape(B * V, C).index_select(0, vid.flatten()).view(-1, 3, C)
    (a0, a1, a2) = attrs.unbind(-2)
    (w0, w1, w2) = fragments.bary.reshape(-1, 3).index_select(0, hit).to(attrs.dtype)[..., None].unbind(-2)
    out = attrs.new_zeros(p2f.numel(), C).index_copy(0, hit, torch.addcmul(torch.addcmul(w0 * a0, w1, a1), w2, a2))
    return out.view(*p2f.shape, C)


def face_mask(fragments: Fragments, face_ids_subset: torch.Tensor) -> torch.Tensor:
    """Pixels whose nearest face is in a subset: face_ids_subset [F] bool -> [B, H, W] bool."""
    p2f = fragments.pix_to_face
    subset = face_ids_subset.to(device=p2f.device, dtype=torch.bool)
    return (p2f >= 0) & subset[p2f.clamp_min(0)]
