"""The official EG3D super-resolution heads (two StyleGAN2 blocks driven by the last w).

All of them hard-code w_dim=512 and their channel counts; `num_fp16_res`, `conv_clamp`, `channel_base` and
`channel_max` are accepted and ignored as in the official classes, and the clamp is 256 iff `sr_num_fp16_res > 0`.
"""
import torch
import torch.nn.functional as F

from .layers import setup_filter
from .synthesis import SynthesisBlock, SynthesisBlockNoUp


class _SuperresolutionBase(torch.nn.Module):
    """Shared logic; subclasses set the table below (spec section 5)."""

    img_resolution = None       # asserted output resolution
    input_resolution = None     # features are resized to this
    resize_when_smaller = False  # resize test: `<` (True) or `!=` (False)
    block0_cls = SynthesisBlock
    block0_res = block0_out = block1_out = None
    has_filter = True
    antialias_arg = True

    def __init__(self, channels, img_resolution, sr_num_fp16_res, sr_antialias=True, num_fp16_res=4,
                 conv_clamp=None, channel_base=None, channel_max=None, **block_kwargs):
        super().__init__()
        if img_resolution != self.img_resolution:
            raise ValueError(f'{type(self).__name__} needs img_resolution {self.img_resolution}, '
                             f'not {img_resolution}')
        use_fp16 = sr_num_fp16_res > 0
        clamp = 256 if use_fp16 else None
        self.sr_antialias = bool(sr_antialias) and self.antialias_arg
        self.block0 = self.block0_cls(channels, self.block0_out, w_dim=512, resolution=self.block0_res,
                                      img_channels=3, is_last=False, use_fp16=use_fp16, conv_clamp=clamp,
                                      **block_kwargs)
        self.block1 = SynthesisBlock(self.block0_out, self.block1_out, w_dim=512, resolution=self.img_resolution,
                                     img_channels=3, is_last=True, use_fp16=use_fp16, conv_clamp=clamp,
                                     **block_kwargs)
        if self.has_filter:
            self.register_buffer('resample_filter', setup_filter([1, 3, 3, 1]))

    def forward(self, rgb, x, ws, noise_mode='none', fused_modconv=None):
        """rgb [N,3,R,R], x [N,32,R,R], ws [N,num_ws,512] -> (image, image_raw).

        image_raw is `rgb`, except where the official NoUp block0 adds its ToRGB output in place into the
        caller's rgb view (no resize happened): then it is that sum, exactly what the official G returns.
        """
        ws = ws[:, -1:, :].repeat(1, 3, 1)
        size = x.shape[-1]
        resize = size < self.input_resolution if self.resize_when_smaller else size != self.input_resolution
        raw = rgb
        if resize:
            shape = (self.input_resolution, self.input_resolution)
            x = F.interpolate(x, size=shape, mode='bilinear', align_corners=False, antialias=self.sr_antialias)
            rgb = F.interpolate(rgb, size=shape, mode='bilinear', align_corners=False, antialias=self.sr_antialias)
        x, rgb = self.block0(x, rgb, ws, noise_mode=noise_mode, fused_modconv=fused_modconv)
        if not resize and not self.block0.upsamples:
            raw = rgb
        x, rgb = self.block1(x, rgb, ws, noise_mode=noise_mode, fused_modconv=fused_modconv)
        return rgb, raw


class SuperresolutionHybrid8XDC(_SuperresolutionBase):
    """128 -> 512 (FFHQ 512 models)."""
    img_resolution, input_resolution = 512, 128
    block0_res, block0_out, block1_out = 256, 256, 128
    has_filter = False


class SuperresolutionHybrid8X(_SuperresolutionBase):
    """128 -> 512, narrower."""
    img_resolution, input_resolution = 512, 128
    block0_res, block0_out, block1_out = 256, 128, 64


class SuperresolutionHybrid4X(_SuperresolutionBase):
    """128 -> 256; block0 does not upsample."""
    img_resolution, input_resolution, resize_when_smaller = 256, 128, True
    block0_cls = SynthesisBlockNoUp
    block0_res, block0_out, block1_out = 128, 128, 64


class SuperresolutionHybrid2X(_SuperresolutionBase):
    """64 -> 128; block0 does not upsample."""
    img_resolution, input_resolution = 128, 64
    block0_cls = SynthesisBlockNoUp
    block0_res, block0_out, block1_out = 64, 128, 64


class SuperresolutionHybridDeepfp32(_SuperresolutionBase):
    """Legacy 128 -> 256 head; its resize never antialiases."""
    img_resolution, input_resolution, resize_when_smaller = 256, 128, True
    block0_cls = SynthesisBlockNoUp
    block0_res, block0_out, block1_out = 128, 128, 64
    antialias_arg = False


SUPERRESOLUTION_MODULES = {cls.__name__: cls for cls in (
    SuperresolutionHybrid8XDC, SuperresolutionHybrid8X, SuperresolutionHybrid4X, SuperresolutionHybrid2X,
    SuperresolutionHybridDeepfp32)}
