"""Ray sampling, tri-plane feature lookup and two-pass (coarse + importance) volume rendering, as in EG3D.

Reproduces the official numerics including its quirks: the plane axes (xy, xz, zx: there is no yz plane),
jitter in [0, delta) past ray_end, `softplus(sigma - 1)`, and a depth clamp whose bounds are the min/max over
*all* samples of the whole batch. Rays are processed in chunks so memory stays bounded; the two random tensors are
drawn up front, in the official order and shapes, so a seed reproduces the official result at any chunk size.
"""
import torch
import torch.nn.functional as F

# Per-plane coordinate pairs of the official plane axes after inversion: (x, y), (x, z), (z, x).
PLANE_COORDS = ((0, 1), (0, 2), (2, 0))


def sample_rays(cam2world, intrinsics, resolution):
    """Pixel-center rays for a [N,4,4] OpenCV cam2world and normalized [N,3,3] intrinsics -> origins, dirs [N,R*R,3]."""
    n, m = cam2world.shape[0], resolution ** 2
    dev = cam2world.device
    cam_locs = cam2world[:, :3, 3]
    fx, fy = intrinsics[:, 0, 0, None], intrinsics[:, 1, 1, None]
    cx, cy, sk = intrinsics[:, 0, 2, None], intrinsics[:, 1, 2, None], intrinsics[:, 0, 1, None]
    ar = torch.arange(resolution, dtype=torch.float32, device=dev)
    uv = torch.stack(torch.meshgrid(ar, ar, indexing='ij')) * (1. / resolution) + (0.5 / resolution)
    uv = uv.flip(0).reshape(2, -1).transpose(1, 0).unsqueeze(0).repeat(n, 1, 1)
    x_cam, y_cam = uv[:, :, 0], uv[:, :, 1]
    z_cam = torch.ones((n, m), device=dev)
    x_lift = (x_cam - cx + cy * sk / fy - sk * y_cam / fy) / fx * z_cam
    y_lift = (y_cam - cy) / fy * z_cam
    cam_points = torch.stack((x_lift, y_lift, z_cam, torch.ones_like(z_cam)), dim=-1)
    world_points = torch.bmm(cam2world, cam_points.permute(0, 2, 1)).permute(0, 2, 1)[:, :, :3]
    dirs = F.normalize(world_points - cam_locs[:, None, :], dim=2)
    origins = cam_locs.unsqueeze(1).repeat(1, m, 1)
    return origins, dirs


def sample_from_planes(planes, coords, box_warp):
    """Bilinear lookup of planes [N,3,C,H,W] at points [N,P,3] -> features [N,3,P,C] (zeros outside the box)."""
    n, n_planes, c, h, w = planes.shape
    coords = (2 / box_warp) * coords
    grid = torch.stack([coords[..., list(pair)] for pair in PLANE_COORDS], dim=1)
    grid = grid.reshape(n * n_planes, 1, -1, 2)
    out = F.grid_sample(planes.reshape(n * n_planes, c, h, w), grid, mode='bilinear', padding_mode='zeros',
                        align_corners=False)
    return out.permute(0, 3, 2, 1).reshape(n, n_planes, -1, c)


def march_rays(colors, densities, depths, white_back=False):
    """Mip-NeRF style compositing of S samples -> (rgb [..,C] in [-1,1], unclamped depth [..,1], weights [..,S-1,1])."""
    deltas = depths[:, :, 1:] - depths[:, :, :-1]
    colors_mid = (colors[:, :, :-1] + colors[:, :, 1:]) / 2
    densities_mid = (densities[:, :, :-1] + densities[:, :, 1:]) / 2
    depths_mid = (depths[:, :, :-1] + depths[:, :, 1:]) / 2
    densities_mid = F.softplus(densities_mid - 1)
    alpha = 1 - torch.exp(-(densities_mid * deltas))
    alpha_shifted = torch.cat([torch.ones_like(alpha[:, :, :1]), 1 - alpha + 1e-10], -2)
    weights = alpha * torch.cumprod(alpha_shifted, -2)[:, :, :-1]
    rgb = torch.sum(weights * colors_mid, -2)
    weight_total = weights.sum(2)
    depth = torch.nan_to_num(torch.sum(weights * depths_mid, -2) / weight_total, float('inf'))
    if white_back:
        rgb = rgb + 1 - weight_total
    return rgb * 2 - 1, depth, weights


def sample_pdf(bins, weights, u, eps=1e-5):
    """Inverse-CDF sampling of bins [K,B+1] with weights [K,B] at uniform u [K,S] -> depths [K,S]."""
    n_bins = weights.shape[1]
    weights = weights + eps
    pdf = weights / torch.sum(weights, -1, keepdim=True)
    cdf = torch.cumsum(pdf, -1)
    cdf = torch.cat([torch.zeros_like(cdf[:, :1]), cdf], -1)
    u = u.contiguous()
    inds = torch.searchsorted(cdf, u, right=True)
    below = torch.clamp_min(inds - 1, 0)
    above = torch.clamp_max(inds, n_bins)
    inds_sampled = torch.stack([below, above], -1).view(u.shape[0], -1)
    cdf_g = torch.gather(cdf, 1, inds_sampled).view(u.shape[0], -1, 2)
    bins_g = torch.gather(bins, 1, inds_sampled).view(u.shape[0], -1, 2)
    denom = cdf_g[..., 1] - cdf_g[..., 0]
    denom = torch.where(denom < eps, torch.ones_like(denom), denom)
    return bins_g[..., 0] + (u - cdf_g[..., 0]) / denom * (bins_g[..., 1] - bins_g[..., 0])


def sample_importance(depths, weights, u):
    """Fine depths [N,M,S,1] from coarse depths [N,M,D,1], marcher weights [N,M,D-1,1] and u [N*M,S] (no grad)."""
    with torch.no_grad():
        n, m, d, _ = depths.shape
        z = depths.reshape(n * m, d)
        w = weights.reshape(n * m, -1).unsqueeze(1).float()
        w = F.avg_pool1d(F.max_pool1d(w, 2, 1, padding=1), 2, 1).squeeze(1) + 0.01
        z_mid = 0.5 * (z[:, :-1] + z[:, 1:])
        return sample_pdf(z_mid, w[:, 1:-1], u).reshape(n, m, -1, 1)


def draw_render_noise(n, m, opts, device, generator=None):
    """The renderer's random draws, in the official order: stratified jitter [N,M,D,1], then importance u [N*M,S].

    With FFHQ options these are the only draws; `density_noise` adds the official randn_like draws in between.
    """
    d, s = opts['depth_resolution'], opts['depth_resolution_importance']
    noise_std = opts.get('density_noise', 0)
    draws = {'stratified': torch.rand([n, m, d, 1], generator=generator, device=device)}
    if noise_std > 0:
        draws['density_coarse'] = torch.randn([n, m * d, 1], generator=generator, device=device) * noise_std
    if s > 0:
        draws['importance'] = torch.rand([n * m, s], generator=generator, device=device)
        if noise_std > 0:
            draws['density_fine'] = torch.randn([n, m * s, 1], generator=generator, device=device) * noise_std
    return draws


class ImportanceRenderer(torch.nn.Module):
    """Coarse stratified pass + importance-sampled fine pass over tri-plane features (no parameters)."""

    def forward(self, planes, decoder, origins, dirs, opts, generator=None, chunk_rays=None):
        """planes [N,3,C,H,W], origins/dirs [N,M,3] -> dict of features [N,M,C], depth [N,M,1], weights_sum [N,M,1],
        depths_coarse and depths_fine [N,M,D|S,1]. `chunk_rays` bounds the number of rays (over the batch) per pass."""
        if opts['ray_start'] == 'auto' or opts['ray_end'] == 'auto':
            raise ValueError("ray_start/ray_end 'auto' (ShapeNet box intersection) is not supported")
        if opts.get('clamp_mode', 'softplus') != 'softplus':
            raise ValueError("only clamp_mode 'softplus' is supported (as in the official MipRayMarcher2)")
        n, m, _ = origins.shape
        draws = draw_render_noise(n, m, opts, origins.device, generator)
        per_chunk = m if not chunk_rays else max(1, min(m, chunk_rays // n))
        parts = [self._render_rays(planes, decoder, origins, dirs, opts, draws, slice(i, i + per_chunk))
                 for i in range(0, m, per_chunk)]
        out = {key: torch.cat([p[key] for p in parts], dim=1) for key in parts[0] if key != 'range'}
        lo = torch.stack([p['range'][0] for p in parts]).min()
        hi = torch.stack([p['range'][1] for p in parts]).max()
        out['depth'] = torch.clamp(out['depth'], lo, hi)
        return out

    @staticmethod
    def _run_model(planes, decoder, origins, dirs, depths, opts, noise):
        n, m, d, _ = depths.shape
        points = (origins.unsqueeze(-2) + depths * dirs.unsqueeze(-2)).reshape(n, -1, 3)
        out = decoder(sample_from_planes(planes, points, opts['box_warp']))
        sigma = out['sigma'] if noise is None else out['sigma'] + noise
        return out['rgb'].reshape(n, m, d, -1), sigma.reshape(n, m, d, 1)

    def _render_rays(self, planes, decoder, origins, dirs, opts, draws, sl):
        n = origins.shape[0]
        origins, dirs = origins[:, sl], dirs[:, sl]
        mc = origins.shape[1]
        start, end, d = opts['ray_start'], opts['ray_end'], opts['depth_resolution']
        jitter = draws['stratified'][:, sl]
        base = torch.linspace(0, 1, d, device=origins.device) if opts['disparity_space_sampling'] else \
            torch.linspace(start, end, d, device=origins.device)
        depths = base.reshape(1, 1, d, 1).repeat(n, mc, 1, 1)
        if opts['disparity_space_sampling']:
            depths = depths + jitter * (1 / (d - 1))
            depths = 1. / (1. / start * (1. - depths) + 1. / end * depths)
        else:
            depths = depths + jitter * ((end - start) / (d - 1))
        noise = draws.get('density_coarse')
        noise = None if noise is None else noise.reshape(n, -1, d, 1)[:, sl].reshape(n, -1, 1)
        colors, densities = self._run_model(planes, decoder, origins, dirs, depths, opts, noise)
        out = {'depths_coarse': depths}
        s = opts['depth_resolution_importance']
        if s > 0:
            _, _, weights = march_rays(colors, densities, depths)
            u = draws['importance'].reshape(n, -1, s)[:, sl].reshape(-1, s)
            fine = sample_importance(depths, weights, u)
            noise = draws.get('density_fine')
            noise = None if noise is None else noise.reshape(n, -1, s, 1)[:, sl].reshape(n, -1, 1)
            colors_f, densities_f = self._run_model(planes, decoder, origins, dirs, fine, opts, noise)
            out['depths_fine'] = fine
            all_depths = torch.cat([depths, fine], dim=-2)
            _, idx = torch.sort(all_depths, dim=-2)
            depths = torch.gather(all_depths, -2, idx)
            colors = torch.gather(torch.cat([colors, colors_f], dim=-2), -2, idx.expand(-1, -1, -1, colors.shape[-1]))
            densities = torch.gather(torch.cat([densities, densities_f], dim=-2), -2, idx)
        rgb, depth, weights = march_rays(colors, densities, depths, opts.get('white_back', False))
        out.update(features=rgb, depth=depth, weights_sum=weights.sum(2), range=(depths.min(), depths.max()))
        return out
