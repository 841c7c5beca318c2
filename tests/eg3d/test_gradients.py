"""Differentiability, chunked rendering, train-mode (non-fused) path and torch.Generator RNG."""
import pytest
import torch

from reenact.eg3d import frontal_label, load_generator, lookat_label


@pytest.fixture(scope='module')
def G(oracle_dir):
    return load_generator(oracle_dir / 'G_ema_state_dict.pt')


def test_image_gradient_wrt_ws(G):
    z = torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(0))
    ws = G.mapping(z, frontal_label()).detach().requires_grad_(True)
    out = G.synthesis(ws, lookat_label(0.3, -0.1), noise_mode='const', generator=torch.Generator().manual_seed(1),
                      neural_rendering_resolution=16)
    G.neural_rendering_resolution = 32
    (out['image'].mean() + out['image_raw'].mean() + out['image_depth'].mean()).backward()
    assert torch.isfinite(ws.grad).all() and ws.grad.abs().sum() > 0


def test_weights_gradient_in_train_mode_with_in_place_quirk(G):
    """NoUp SR without resize (R=64) stays differentiable; train mode uses non-fused modconv."""
    G.train().requires_grad_(True)
    try:
        ws = G.mapping(torch.zeros(1, G.z_dim), frontal_label())
        out = G.synthesis(ws, frontal_label(), neural_rendering_resolution=64, noise_mode='const')
        out['image_raw'].sum().backward()
        grad = G.superresolution.block0.torgb.weight.grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    finally:
        G.eval().requires_grad_(False).zero_grad(set_to_none=True)
        G.neural_rendering_resolution = 32


def test_chunked_equals_unchunked(G):
    ws = G.mapping(torch.ones(2, G.z_dim), frontal_label(2))
    c = lookat_label([0.2, -0.3], [0.0, 0.1])
    with torch.no_grad():
        full = G.synthesis(ws, c, noise_mode='const', generator=torch.Generator().manual_seed(5), chunk_rays=0)
        part = G.synthesis(ws, c, noise_mode='const', generator=torch.Generator().manual_seed(5), chunk_rays=300)
    for key in full:
        assert (full[key] - part[key]).abs().max() <= 1e-5, key


def test_generator_matches_global_seed(G):
    ws = G.mapping(torch.ones(1, G.z_dim), frontal_label())
    with torch.no_grad():
        torch.manual_seed(9)
        a = G.synthesis(ws, frontal_label(), noise_mode='const')
        b = G.synthesis(ws, frontal_label(), noise_mode='const', generator=torch.Generator().manual_seed(9))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_plane_lookup_matches_grid_sample_with_both_gradients():
    """The tri-plane lookup (one weighted row gather) equals the official grid_sample per plane + mean, also in its
    gradients w.r.t. the planes and the points; points off the planes (|coord| > box / 2) read zeros."""
    import torch.nn.functional as F

    from reenact.eg3d.volume import PLANE_COORDS, plane_rows, sample_from_planes

    gen = torch.Generator().manual_seed(0)
    planes = torch.randn(2, 3, 5, 7, 9, generator=gen, dtype=torch.float64, requires_grad=True)
    coords = ((torch.rand(2, 400, 3, generator=gen, dtype=torch.float64) - 0.5) * 1.6).requires_grad_(True)

    def official(planes, coords):
        n, p, c, h, w = planes.shape
        grid = torch.stack([coords[..., list(pair)] for pair in PLANE_COORDS], dim=1).reshape(n * p, 1, -1, 2) * 2
        out = F.grid_sample(planes.reshape(n * p, c, h, w), grid, mode='bilinear', padding_mode='zeros',
                            align_corners=False)
        return out.permute(0, 3, 2, 1).reshape(n, p, -1, c).mean(1)

    ours, ref = sample_from_planes(plane_rows(planes), coords, 1.0), official(planes, coords)
    assert (coords.abs() > 0.5).any(-1).float().mean() > 0.2  # many points lie off some plane
    assert (ours - ref).abs().max() < 1e-12
    weight = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
    got = torch.autograd.grad((ours * weight).sum(), (planes, coords))
    want = torch.autograd.grad((ref * weight).sum(), (planes, coords))
    for a, b in zip(got, want):
        assert (a - b).abs().max() < 1e-10
