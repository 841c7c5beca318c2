"""Tests for reenact.raster against a naive loop rasterizer and geometric invariants."""

import math

import pytest
import torch

from reenact.raster import EDGE_EPS, face_mask, interpolate, rasterize


def naive_rasterize(verts, faces, height, width):
    """Reference: loop over batch, faces and pixels; nearest z, ties -> smaller face (float64).

    A centre is inside when its distance outside every edge is at most EDGE_EPS pixels.
    """
    B = verts.shape[0]
    p2f = torch.full((B, height, width), -1, dtype=torch.long)
    bary = torch.zeros(B, height, width, 3, dtype=torch.float64)
    zbuf = torch.full((B, height, width), float("inf"), dtype=torch.float64)
    for b in range(B):
        for f, (a, c, d) in enumerate(faces.tolist()):
            (x0, y0, z0), (x1, y1, z1), (x2, y2, z2) = (verts[b, k].double().tolist() for k in (a, c, d))
            area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
            if area == 0:
                continue
            for i in range(height):
                for j in range(width):
                    px, py = j + 0.5, i + 0.5
                    w0 = ((x2 - x1) * (py - y1) - (y2 - y1) * (px - x1)) / area
                    w1 = ((x0 - x2) * (py - y2) - (y0 - y2) * (px - x2)) / area
                    w2 = 1 - w0 - w1
                    edges = (((x1, y1), (x2, y2)), ((x2, y2), (x0, y0)), ((x0, y0), (x1, y1)))
                    heights = [abs(area) / math.dist(p, q) for p, q in edges]
                    if min(w * h for w, h in zip((w0, w1, w2), heights)) < -EDGE_EPS:
                        continue
                    z = w0 * z0 + w1 * z1 + w2 * z2
                    if z < zbuf[b, i, j]:
                        zbuf[b, i, j], p2f[b, i, j] = z, f
                        bary[b, i, j] = torch.tensor([w0, w1, w2], dtype=torch.float64)
    return p2f, bary, zbuf


def random_scene(B=2, F=7, H=20, W=24, seed=0):
    """Random overlapping triangles, each at its own well-separated constant-ish depth."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(B, F, 3, 2, generator=g) * torch.tensor([W * 1.2, H * 1.2]) - torch.tensor([W * 0.1, H * 0.1])
    depth = torch.randperm(F, generator=g).double()[None, :, None].expand(B, F, 3) * 10
    z = depth + torch.rand(B, F, 3, generator=g, dtype=torch.float64)
    verts = torch.cat((xy.double(), z[..., None]), -1).reshape(B, F * 3, 3)
    faces = torch.arange(F * 3).view(F, 3)
    return verts, faces


def pixel_centres(H, W):
    i, j = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    return torch.stack((j + 0.5, i + 0.5), -1).double()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_naive_reference(dtype, seed):
    verts, faces = random_scene(seed=seed)
    H, W = 20, 24
    ref_p2f, ref_bary, ref_z = naive_rasterize(verts, faces, H, W)
    frag = rasterize(verts.to(dtype), faces, H, W)
    assert frag.pix_to_face.dtype == torch.long and frag.bary.dtype == dtype and frag.zbuf.dtype == dtype
    assert torch.equal(frag.pix_to_face, ref_p2f)
    assert (ref_p2f >= 0).any() and (ref_p2f < 0).any()
    tol = 1e-4 if dtype == torch.float32 else 1e-9
    torch.testing.assert_close(frag.bary.double(), ref_bary, atol=tol, rtol=0)
    torch.testing.assert_close(frag.zbuf.double(), ref_z, atol=tol * 100, rtol=tol)


def test_chunking_does_not_change_result():
    verts, faces = random_scene(B=3, F=9, seed=3)
    a = rasterize(verts, faces, 20, 24)
    b = rasterize(verts, faces, 20, 24, max_candidates=37)
    for x, y in ((a.pix_to_face, b.pix_to_face), (a.bary, b.bary), (a.zbuf, b.zbuf)):
        assert torch.equal(x, y)


@pytest.mark.parametrize("split", ["diag", "antidiag"])
def test_shared_edge_has_no_holes(split):
    # Quad whose corners and diagonal pass exactly through pixel centres and edges.
    x0, y0, x1, y1 = 2.5, 3.0, 17.5, 14.0
    verts = torch.tensor([[[x0, y0, 1.0], [x1, y0, 1.0], [x1, y1, 1.0], [x0, y1, 1.0]]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]] if split == "diag" else [[0, 1, 3], [1, 2, 3]])
    frag = rasterize(verts, faces, 18, 20)
    c = pixel_centres(18, 20)
    inside = (c[..., 0] >= x0) & (c[..., 0] <= x1) & (c[..., 1] >= y0) & (c[..., 1] <= y1)
    assert torch.equal(frag.pix_to_face[0] >= 0, inside)


def test_fan_around_pixel_centre_has_no_holes():
    # Many thin triangles sharing a vertex on a pixel centre, on a float32 grid of odd slopes.
    n = 37
    ang = torch.linspace(0, 2 * torch.pi, n + 1)[:-1]
    centre = torch.tensor([[16.5, 16.5, 0.0]])
    rim = torch.stack((16.5 + 12 * ang.cos(), 16.5 + 12 * ang.sin(), torch.zeros(n)), -1)
    verts = torch.cat((centre, rim))[None]
    k = torch.arange(n)
    faces = torch.stack((torch.zeros(n, dtype=torch.long), 1 + k, 1 + (k + 1) % n), -1)
    frag = rasterize(verts, faces, 33, 33)
    c = pixel_centres(33, 33)
    r = (c - 16.5).norm(dim=-1)
    assert (frag.pix_to_face[0][r < 11.0] >= 0).all()


def test_bary_reproduces_pixel_centres():
    verts, faces = random_scene(seed=4)
    frag = rasterize(verts.float(), faces, 20, 24)
    xy = interpolate(frag, verts.float()[..., :2])
    covered = frag.pix_to_face >= 0
    c = pixel_centres(20, 24).float().expand(2, -1, -1, -1)
    torch.testing.assert_close(xy[covered], c[covered], atol=1e-4, rtol=0)
    assert (xy[~covered] == 0).all()
    torch.testing.assert_close(frag.bary.sum(-1)[covered], torch.ones(int(covered.sum())))


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_occlusion_independent_of_face_order(order):
    near = [[2.0, 2.0, 1.0], [14.0, 2.0, 1.0], [2.0, 14.0, 1.0]]
    far = [[0.0, 0.0, 5.0], [16.0, 0.0, 5.0], [0.0, 16.0, 5.0]]
    tris = [near, far]
    verts = torch.tensor([tris[order[0]] + tris[order[1]]])
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
    frag = rasterize(verts, faces, 16, 16)
    near_id = order.index(0)
    assert frag.pix_to_face[0, 5, 5] == near_id
    assert frag.pix_to_face[0, 0, 1] == 1 - near_id
    assert frag.zbuf[0, 5, 5] == 1.0 and frag.zbuf[0, 0, 1] == 5.0


def test_exact_depth_tie_picks_smallest_face():
    tri = [[0.0, 0.0, 2.0], [10.0, 0.0, 2.0], [0.0, 10.0, 2.0]]
    verts = torch.tensor([tri * 3])
    faces = torch.tensor([[6, 7, 8], [3, 5, 4], [0, 1, 2]])
    frag = rasterize(verts, faces, 10, 10)
    assert (frag.pix_to_face[frag.pix_to_face >= 0] == 0).all()


def test_batch_equals_separate_calls():
    verts, faces = random_scene(B=2, seed=5)
    both = rasterize(verts, faces, 20, 24)
    for b in range(2):
        one = rasterize(verts[b : b + 1], faces, 20, 24)
        assert torch.equal(both.pix_to_face[b], one.pix_to_face[0])
        assert torch.equal(both.bary[b], one.bary[0])
        assert torch.equal(both.zbuf[b], one.zbuf[0])
    assert not torch.equal(both.pix_to_face[0], both.pix_to_face[1])


def test_offscreen_and_degenerate_faces_give_empty_image():
    verts = torch.tensor(
        [[[-10.0, -10, 1], [-5, -10, 1], [-10, -5, 1],  # left of / above the image
          [30, 2, 1], [40, 2, 1], [30, 8, 1],  # right of it
          [2, 2, 1], [8, 8, 1], [14, 14, 1],  # collinear
          [3, 3, 1], [3, 3, 1], [9, 4, 1],  # repeated vertex
          [1e30, 1e30, 1], [-1e30, 1e30, 1], [0, -1e30, 1],  # huge, covers nothing finite
          [float("nan"), 2, 1], [8, 2, 1], [2, 8, 1]]]  # non-finite
    )
    faces = torch.arange(18).view(6, 3)[[0, 1, 2, 3, 5]]
    frag = rasterize(verts, faces, 16, 20)
    assert (frag.pix_to_face == -1).all() and (frag.bary == 0).all() and torch.isinf(frag.zbuf).all()
    assert (interpolate(frag, verts) == 0).all()
    empty = rasterize(verts, faces[:0], 16, 20)
    assert (empty.pix_to_face == -1).all()


def test_face_mask_selects_subset():
    verts, faces = random_scene(seed=6)
    frag = rasterize(verts, faces, 20, 24)
    subset = torch.zeros(len(faces), dtype=torch.bool)
    subset[[1, 4]] = True
    m = face_mask(frag, subset)
    assert m.shape == frag.pix_to_face.shape and m.dtype == torch.bool
    assert torch.equal(m, (frag.pix_to_face == 1) | (frag.pix_to_face == 4))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA unavailable")
def test_cuda_matches_cpu():
    verts, faces = random_scene(B=3, F=9, seed=7)
    verts = verts.float()
    cpu = rasterize(verts, faces, 20, 24)
    gpu = rasterize(verts.cuda(), faces.cuda(), 20, 24)
    assert gpu.pix_to_face.is_cuda
    assert torch.equal(gpu.pix_to_face.cpu(), cpu.pix_to_face)
    torch.testing.assert_close(gpu.bary.cpu(), cpu.bary, atol=1e-5, rtol=0)
    torch.testing.assert_close(gpu.zbuf.cpu(), cpu.zbuf, atol=1e-4, rtol=1e-6)
    attrs = torch.rand(3, verts.shape[1], 4)
    torch.testing.assert_close(interpolate(gpu, attrs.cuda()).cpu(), interpolate(cpu, attrs), atol=1e-5, rtol=0)


def test_jittered_grid_has_no_holes():
    # Interior vertices jittered (float32, irrational-ish coordinates), border kept on a rectangle.
    n, size = 12, 64
    g = torch.Generator().manual_seed(8)
    t = torch.linspace(4.3, 59.7, n + 1)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    jit = (torch.rand(2, n + 1, n + 1, generator=g) - 0.5) * 0.6 * (t[1] - t[0])
    jit[:, [0, -1], :] = 0
    jit[:, :, [0, -1]] = 0
    z = torch.rand(n + 1, n + 1, generator=g)
    verts = torch.stack((xx + jit[0], yy + jit[1], z), -1).view(1, -1, 3)
    v00 = (torch.arange(n)[:, None] * (n + 1) + torch.arange(n)).flatten()
    lower, upper = torch.stack((v00, v00 + 1, v00 + n + 1), -1), torch.stack((v00 + 1, v00 + n + 2, v00 + n + 1), -1)
    faces = torch.cat((lower, upper))
    frag = rasterize(verts, faces, size, size)
    c = pixel_centres(size, size)
    inside = ((c >= 4.3) & (c <= 59.7)).all(-1)
    assert torch.equal(frag.pix_to_face[0] >= 0, inside)
