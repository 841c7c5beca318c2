"""EG3D TriPlaneGenerator: StyleGAN2 backbone -> three 32-channel planes -> volume rendering -> super-resolution.

Constructor signature, parameter and buffer names follow the official `training.triplane.TriPlaneGenerator`, so an
official G_ema state dict loads with strict=True. Deliberate differences, none of which changes a number:
everything runs in float32 (as the official CPU path), the renderer's RNG can come from a `torch.Generator`, rays
are rendered in chunks, and the official in-place `image_raw` aliasing of the NoUp SR heads is reproduced without
in-place ops so the generator stays differentiable.
"""
import copy

import torch

from .layers import FullyConnectedLayer
from .superres import SUPERRESOLUTION_MODULES
from .synthesis import Generator
from .volume import ImportanceRenderer, sample_rays

DEFAULT_CHUNK_RAYS = 8192

FFHQ512_128_CONFIG = {
    'init_kwargs': {
        'z_dim': 512, 'w_dim': 512, 'c_dim': 25, 'img_resolution': 512, 'img_channels': 3,
        'mapping_kwargs': {'num_layers': 2},
        'channel_base': 32768, 'channel_max': 512, 'fused_modconv_default': 'inference_only',
        'num_fp16_res': 0, 'conv_clamp': None, 'sr_num_fp16_res': 4,
        'sr_kwargs': {'channel_base': 32768, 'channel_max': 512, 'fused_modconv_default': 'inference_only'},
        'rendering_kwargs': {
            'image_resolution': 512, 'disparity_space_sampling': False, 'clamp_mode': 'softplus',
            'superresolution_module': 'training.superresolution.SuperresolutionHybrid8XDC',
            'c_gen_conditioning_zero': False, 'gpc_reg_prob': 0.5, 'c_scale': 1,
            'superresolution_noise_mode': 'none', 'density_reg': 0.25, 'density_reg_p_dist': 0.004,
            'reg_type': 'l1', 'decoder_lr_mul': 1, 'sr_antialias': True,
            'depth_resolution': 48, 'depth_resolution_importance': 48, 'ray_start': 2.25, 'ray_end': 3.3,
            'box_warp': 1, 'avg_camera_radius': 2.7, 'avg_camera_pivot': [0, 0, 0.2]},
    },
    'neural_rendering_resolution': 128,
}


class OSGDecoder(torch.nn.Module):
    """Tiny MLP on the plane-averaged feature [N,P,C] (the renderer averages the planes): -> raw density and 32
    color/feature channels."""

    def __init__(self, n_features, options):
        super().__init__()
        self.hidden_dim = 64
        lr = options['decoder_lr_mul']
        self.net = torch.nn.Sequential(
            FullyConnectedLayer(n_features, self.hidden_dim, lr_multiplier=lr),
            torch.nn.Softplus(),
            FullyConnectedLayer(self.hidden_dim, 1 + options['decoder_output_dim'], lr_multiplier=lr))

    def forward(self, x):
        n, m, c = x.shape
        x = self.net(x.view(n * m, c)).view(n, m, -1)
        sigma, rgb = x.split([1, x.shape[-1] - 1], dim=-1)
        return {'rgb': torch.sigmoid(rgb).mul(1 + 2 * 0.001).sub_(0.001), 'sigma': sigma}


class TriPlaneGenerator(torch.nn.Module):
    """(z, c) -> {'image', 'image_raw', 'image_depth'}; c is the 25-float camera label (see `reenact.eg3d.camera`)."""

    def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels, sr_num_fp16_res=0, mapping_kwargs=None,
                 rendering_kwargs=None, sr_kwargs=None, **synthesis_kwargs):
        super().__init__()
        rendering_kwargs = dict(rendering_kwargs or {})
        self.init_kwargs = copy.deepcopy(dict(
            z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
            sr_num_fp16_res=sr_num_fp16_res, mapping_kwargs=mapping_kwargs or {}, rendering_kwargs=rendering_kwargs,
            sr_kwargs=sr_kwargs or {}, **synthesis_kwargs))
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.renderer = ImportanceRenderer()
        self.backbone = Generator(z_dim, c_dim, w_dim, img_resolution=256, img_channels=32 * 3,
                                  mapping_kwargs=mapping_kwargs, **synthesis_kwargs)
        sr_name = str(rendering_kwargs.get('superresolution_module', '')).rsplit('.', 1)[-1]
        if sr_name not in SUPERRESOLUTION_MODULES:
            raise ValueError(f'unknown superresolution_module {sr_name!r} '
                             f'(known: {", ".join(SUPERRESOLUTION_MODULES)})')
        self.superresolution = SUPERRESOLUTION_MODULES[sr_name](
            channels=32, img_resolution=img_resolution, sr_num_fp16_res=sr_num_fp16_res,
            sr_antialias=rendering_kwargs.get('sr_antialias', True), **(sr_kwargs or {}))
        self.decoder = OSGDecoder(32, {'decoder_lr_mul': rendering_kwargs.get('decoder_lr_mul', 1),
                                       'decoder_output_dim': 32})
        self.neural_rendering_resolution = 64
        self.rendering_kwargs = rendering_kwargs
        self.chunk_rays = DEFAULT_CHUNK_RAYS
        self._last_planes = None

    @classmethod
    def from_config(cls, config=None):
        """Build from {'init_kwargs', 'rendering_kwargs'?, 'neural_rendering_resolution'?} (the oracle config.json
        layout); None gives the FFHQ 512-128 architecture with random weights."""
        config = FFHQ512_128_CONFIG if config is None else config
        G = cls(**copy.deepcopy(config['init_kwargs']))
        if config.get('rendering_kwargs') is not None:
            G.rendering_kwargs = copy.deepcopy(dict(config['rendering_kwargs']))
        if config.get('neural_rendering_resolution') is not None:
            G.neural_rendering_resolution = int(config['neural_rendering_resolution'])
        return G

    def config(self):
        """JSON-serializable description that `from_config` turns back into this architecture."""
        return {'init_kwargs': copy.deepcopy(self.init_kwargs),
                'rendering_kwargs': copy.deepcopy(self.rendering_kwargs),
                'neural_rendering_resolution': int(self.neural_rendering_resolution)}

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Official checkpoints carry `dataset_label_std` (registered by the training loop, unused in forward):
        # register it on demand so those state dicts load with strict=True.
        key = prefix + 'dataset_label_std'
        if key in state_dict and 'dataset_label_std' not in self._buffers:
            device = self.decoder.net[0].weight.device
            self.register_buffer('dataset_label_std', torch.zeros(state_dict[key].shape, device=device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def mapping(self, z, c, truncation_psi=1, truncation_cutoff=None):
        """ws [N, num_ws, w_dim]; c is scaled by c_scale (official default 0) or zeroed if c_gen_conditioning_zero."""
        if self.rendering_kwargs.get('c_gen_conditioning_zero', False):
            c = torch.zeros_like(c)
        return self.backbone.mapping(z, c * self.rendering_kwargs.get('c_scale', 0), truncation_psi=truncation_psi,
                                     truncation_cutoff=truncation_cutoff)

    def synthesis(self, ws, c, neural_rendering_resolution=None, noise_mode='random', fused_modconv=None,
                  generator=None, chunk_rays=None, cache_backbone=False, use_cached_backbone=False):
        """Render ws [N,num_ws,w_dim] from cameras c [N,25]. A given neural_rendering_resolution sticks (official).

        chunk_rays: rays (summed over the batch) rendered at once; None -> `self.chunk_rays`, 0 -> all at once.

        The renderer draws torch.rand [N,R*R,D,1] then [N*R*R,S] from `generator` (default: the global RNG of
        ws's device), so `torch.manual_seed(s)` reproduces the official outputs for the same seed.
        """
        cam2world = c[:, :16].view(-1, 4, 4)
        intrinsics = c[:, 16:25].view(-1, 3, 3)
        if neural_rendering_resolution is not None:
            self.neural_rendering_resolution = int(neural_rendering_resolution)
        res = self.neural_rendering_resolution
        origins, dirs = sample_rays(cam2world, intrinsics, res)
        n = origins.shape[0]
        if use_cached_backbone and self._last_planes is not None:
            planes = self._last_planes
        else:
            planes = self.backbone.synthesis(ws, noise_mode=noise_mode, fused_modconv=fused_modconv)
        if cache_backbone:
            self._last_planes = planes
        planes = planes.view(len(planes), 3, 32, planes.shape[-2], planes.shape[-1])
        out = self.renderer(planes, self.decoder, origins, dirs, self.rendering_kwargs, generator=generator,
                            chunk_rays=self.chunk_rays if chunk_rays is None else chunk_rays)
        feature_image = out['features'].permute(0, 2, 1).reshape(n, -1, res, res).contiguous()
        depth_image = out['depth'].permute(0, 2, 1).reshape(n, 1, res, res)
        image, image_raw = self.superresolution(
            feature_image[:, :3], feature_image, ws, noise_mode=self.rendering_kwargs['superresolution_noise_mode'],
            fused_modconv=fused_modconv)
        return {'image': image.contiguous(), 'image_raw': image_raw.contiguous(), 'image_depth': depth_image}

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, neural_rendering_resolution=None,
                **synthesis_kwargs):
        """Official G(z, c): the same c conditions the mapping and places the camera."""
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, c, neural_rendering_resolution=neural_rendering_resolution, **synthesis_kwargs)
