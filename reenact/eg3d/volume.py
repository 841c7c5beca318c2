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
PLANE_AXES = [axis for pair in PLANE_COORDS for axis in pair]
# Zero rows around each plane in `plane_rows`: corners of points off the plane (floor in [-2, size]) land there.
BORDER = 2


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


class _GatherRows(torch.autograd.Function):
    """out[p] = sum_k weights[p, k] * table[index[p, k]], a weighted row gather (embedding_bag).

    The table's gradient is the transposed gather: the entries sorted by table row, then one embedding_bag of the
    output gradient's rows per table row. On CPU that is ~4x faster than scattering with index_add_ (which contends
    on the rows that many points share) and than grid_sample's own backward.
    """

    @staticmethod
    def forward(ctx, table, index, weights):
        ctx.save_for_backward(table, index, weights)
        return F.embedding_bag(index, table, per_sample_weights=weights, mode='sum')

    @staticmethod
    def backward(ctx, grad):
        table, index, weights = ctx.saved_tensors
        grad_table = grad_weights = None
        if ctx.needs_input_grad[0]:
            rows, order = torch.sort(index.reshape(-1), stable=True)
            counts = torch.bincount(rows, minlength=table.shape[0])
            grad_table = F.embedding_bag(order // index.shape[1], grad, counts.cumsum(0) - counts,
                                         per_sample_weights=weights.reshape(-1)[order], mode='sum')
        if ctx.needs_input_grad[2]:
            grad_weights = torch.stack([(table[index[:, k]] * grad).sum(1) for k in range(index.shape[1])], 1)
        return grad_table, None, grad_weights


def plane_rows(planes):
    """Planes [N,3,C,H,W] -> [N,H+2B,W+2B,3,C]: channels last inside a zero border B wide, the layout that
    `sample_from_planes` reads (one copy per render, shared by both passes and all ray chunks)."""
    return F.pad(planes.permute(0, 3, 4, 1, 2), (0, 0, 0, 0, BORDER, BORDER, BORDER, BORDER))


def sample_from_planes(rows, coords, box_warp):
    """Plane-averaged bilinear features of `plane_rows` at points [N,P,3] -> [N,P,C] (zeros outside the box).

    The official lookup is grid_sample (align_corners=False, zero padding) per plane, then the mean over the planes.
    Here the same corner weights (ATen's formulas) gather the twelve corner rows of a point at once; a corner off the
    plane is clamped into the zero border instead of being masked, which gives the same zero contribution.
    """
    n, hb, wb, n_planes, c = rows.shape
    pix = coords[..., PLANE_AXES].view(n, -1, n_planes, 2) * (2 / box_warp)
    size = torch.tensor([wb - 2 * BORDER, hb - 2 * BORDER], dtype=pix.dtype, device=pix.device)
    pix = ((pix + 1) * size - 1) / 2
    low = pix.floor()
    frac = torch.stack([(low + 1) - pix, pix - low], dim=-1)
    ix, iy = (torch.nan_to_num(low, nan=-BORDER).clamp_min_(-BORDER).minimum(size) + BORDER).int().unbind(-1)
    batch = torch.arange(n, device=pix.device, dtype=torch.int32).view(n, 1, 1) * hb
    plane = torch.arange(n_planes, device=pix.device, dtype=torch.int32)
    cell = ((batch + iy) * wb + ix) * n_planes + plane
    corners = torch.tensor([0, 1, wb, wb + 1], device=pix.device, dtype=torch.int32) * n_planes
    index = cell.unsqueeze(-1) + corners
    weights = frac[..., 1, :, None] * frac[..., 0, None, :]
    per_point = 4 * n_planes
    out = _GatherRows.apply(rows.view(-1, c), index.view(-1, per_point), weights.reshape(-1, per_point))
    return out.view(n, -1, c).div_(n_planes)


def march_weights(densities, depths):
    """Compositing weights [..,S-1,1] of the intervals between S depth-sorted samples (mip-NeRF midpoints)."""
    deltas = depths[:, :, 1:] - depths[:, :, :-1]
    densities_mid = (densities[:, :, :-1] + densities[:, :, 1:]) / 2
    densities_mid = F.softplus(densities_mid - 1)
    alpha = 1 - torch.exp(-(densities_mid * deltas))
    alpha_shifted = torch.cat([torch.ones_like(alpha[:, :, :1]), 1 - alpha + 1e-10], -2)
    return alpha * torch.cumprod(alpha_shifted, -2)[:, :, :-1]


def march_rays(colors, densities, depths, white_back=False, order=None):
    """Composite S samples -> (rgb [..,C] in [-1,1], unclamped depth [..,1], weights [..,S-1,1]).

    densities and depths are depth-sorted; colors is a list of parts [..,S_i,C] whose concatenation, reordered by
    `order` [..,S,1] (None: already sorted), is. The official sum of weight x (colour midpoint) over the intervals
    equals a sum over samples weighted by half of each neighbouring interval's weight; those per-sample weights are
    scattered back to the parts' order so the colour tensors are never concatenated or gathered.
    """
    weights = march_weights(densities, depths)
    per_sample = (F.pad(weights, (0, 0, 0, 1)) + F.pad(weights, (0, 0, 1, 0))) / 2
    if order is not None:
        per_sample = torch.zeros_like(per_sample).scatter_(-2, order, per_sample)
    rgb = 0
    for part, w in zip(colors, per_sample.split([part.shape[-2] for part in colors], dim=-2)):
        rgb = rgb + (w.transpose(-1, -2) @ part).squeeze(-2)
    depths_mid = (depths[:, :, :-1] + depths[:, :, 1:]) / 2
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
        rows = plane_rows(planes)
        parts = [self._render_rays(rows, decoder, origins, dirs, opts, draws, slice(i, i + per_chunk))
                 for i in range(0, m, per_chunk)]
        out = {key: torch.cat([p[key] for p in parts], dim=1) for key in parts[0] if key != 'range'}
        lo = torch.stack([p['range'][0] for p in parts]).min()
        hi = torch.stack([p['range'][1] for p in parts]).max()
        out['depth'] = torch.clamp(out['depth'], lo, hi)
        return out

    @staticmethod
    def _run_model(rows, decoder, origins, dirs, depths, opts, noise):
        n, m, d, _ = depths.shape
        points = (origins.unsqueeze(-2) + depths * dirs.unsqueeze(-2)).reshape(n, -1, 3)
        out = decoder(sample_from_planes(rows, points, opts['box_warp']))
        sigma = out['sigma'] if noise is None else out['sigma'] + noise
        return out['rgb'].reshape(n, m, d, -1), sigma.reshape(n, m, d, 1)

    def _render_rays(self, rows, decoder, origins, dirs, opts, draws, sl):
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
        colors, densities = self._run_model(rows, decoder, origins, dirs, depths, opts, noise)
        out = {'depths_coarse': depths}
        s = opts['depth_resolution_importance']
        if s > 0:
            weights = march_weights(densities, depths)
            u = draws['importance'].reshape(n, -1, s)[:, sl].reshape(-1, s)
            fine = sample_importance(depths, weights, u)
            noise = draws.get('density_fine')
            noise = None if noise is None else noise.reshape(n, -1, s, 1)[:, sl].reshape(n, -1, 1)
            colors_f, densities_f = self._run_model(rows, decoder, origins, dirs, fine, opts, noise)
            out['depths_fine'] = fine
            depths, order = torch.sort(torch.cat([depths, fine], dim=-2), dim=-2)
            densities = torch.gather(torch.cat([densities, densities_f], dim=-2), -2, order)
            colors = [colors, colors_f]
        else:
            colors, order = [colors], None
        rgb, depth, weights = march_rays(colors, densities, depths, opts.get('white_back', False), order)
        out.update(features=rgb, depth=depth, weights_sum=weights.sum(2), range=(depths.min(), depths.max()))
        return out
