"""StyleGAN2 building blocks in plain PyTorch, numerically identical to the official reference (CPU) paths.

The official code routes `bias_act`, `upfirdn2d` and `conv2d_resample` through custom CUDA plugins when it can and
through pure-PyTorch `_ref` paths otherwise; the oracles were made with the reference paths, so the same sequence
of torch ops is used here (same op order, same float32 scalar gains) to reproduce them bit for bit.
"""
import math

import torch
import torch.nn.functional as F

SQRT2 = math.sqrt(2.0)


def setup_filter(taps=(1, 3, 3, 1)):
    """Normalized separable FIR filter as a 2-D float32 tensor (outer product, sums to 1)."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    f = f.ger(f)
    return f / f.sum()


def normalize_2nd_moment(x, dim=1, eps=1e-8):
    """Scale each row to unit mean square."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def bias_act(x, b=None, act='linear', gain=None, clamp=None, alpha=0.2):
    """Bias along dim 1, activation ('linear' | 'lrelu'), gain (default sqrt(2) for lrelu), optional symmetric clamp."""
    if b is not None:
        x = x + b.reshape([-1 if i == 1 else 1 for i in range(x.ndim)])
    if act == 'lrelu':
        x = F.leaky_relu(x, alpha)
        gain = SQRT2 if gain is None else gain
    elif act != 'linear':
        raise ValueError(f'unsupported activation {act!r}')
    gain = 1.0 if gain is None else float(gain)
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def upfirdn2d(x, f, up=1, padding=(0, 0, 0, 0), gain=1):
    """Zero-insertion upsampling, padding (x0, x1, y0, y1), then depthwise FIR filtering (f is 2-D)."""
    n, c, h, w = x.shape
    px0, px1, py0, py1 = padding
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]
    f = (f * (gain ** (f.ndim / 2))).to(x.dtype).flip([0, 1])
    f = f[None, None].repeat([c, 1, 1, 1])
    return F.conv2d(x, f, groups=c)


def upsample2d(x, f, up=2):
    """2x upsampling of the skip image (official `upfirdn2d.upsample2d` with a 4-tap filter)."""
    fw = f.shape[-1]
    p = [(fw + up - 1) // 2, (fw - up) // 2, (fw + up - 1) // 2, (fw - up) // 2]
    return upfirdn2d(x, f, up=up, padding=p, gain=up * up)


def conv2d_resample(x, w, f=None, up=1, padding=0, groups=1, flip_weight=True):
    """Convolution with optional 2x upsampling (transposed stride-2 conv followed by the FIR filter)."""
    out_channels, in_per_group, kh, kw = w.shape
    if up == 1:
        if not flip_weight and (kh > 1 or kw > 1):
            w = w.flip([2, 3])
        return F.conv2d(x, w, padding=padding, groups=groups)
    fw = f.shape[-1]
    p0 = padding + (fw + up - 1) // 2 - (kw - 1)
    p1 = padding + (fw - up) // 2 - (kw - up)
    pt = max(min(-p0, -p1), 0)
    if groups == 1:
        w = w.transpose(0, 1)
    else:
        w = w.reshape(groups, out_channels // groups, in_per_group, kh, kw).transpose(1, 2)
        w = w.reshape(groups * in_per_group, out_channels // groups, kh, kw)
    if flip_weight and (kh > 1 or kw > 1):
        w = w.flip([2, 3])
    x = F.conv_transpose2d(x, w, stride=up, padding=pt, groups=groups)
    return upfirdn2d(x, f, padding=[p0 + pt, p1 + pt, p0 + pt, p1 + pt], gain=up * up)


def modulated_conv2d(x, weight, styles, noise=None, up=1, padding=0, resample_filter=None, demodulate=True,
                     flip_weight=True, fused=True):
    """Style-modulated convolution; `fused` uses one grouped conv, otherwise the activations are scaled.

    Both variants are official and differ by ~1e-6; the official default is fused in eval, non-fused in training.
    """
    n = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    wmod = None
    dcoefs = None
    if demodulate or fused:
        wmod = weight.unsqueeze(0) * styles.reshape(n, 1, -1, 1, 1)
    if demodulate:
        dcoefs = (wmod.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()
    if not fused:
        x = x * styles.reshape(n, -1, 1, 1)
        x = conv2d_resample(x, weight, f=resample_filter, up=up, padding=padding, flip_weight=flip_weight)
        if demodulate and noise is not None:
            return torch.addcmul(noise, x, dcoefs.reshape(n, -1, 1, 1))
        if demodulate:
            return x * dcoefs.reshape(n, -1, 1, 1)
        if noise is not None:
            return x + noise
        return x
    if demodulate:
        wmod = wmod * dcoefs.reshape(n, -1, 1, 1, 1)
    x = x.reshape(1, -1, *x.shape[2:])
    wmod = wmod.reshape(-1, in_channels, kh, kw)
    x = conv2d_resample(x, wmod, f=resample_filter, up=up, padding=padding, groups=n, flip_weight=flip_weight)
    x = x.reshape(n, -1, *x.shape[2:])
    if noise is not None:
        x = x + noise
    return x


class FullyConnectedLayer(torch.nn.Module):
    """Equalized-learning-rate linear layer (weight scaled by lr_multiplier/sqrt(in) at run time)."""

    def __init__(self, in_features, out_features, bias=True, activation='linear', lr_multiplier=1, bias_init=0):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = torch.nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = float(lr_multiplier)

    def forward(self, x):
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == 'linear' and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation)

    def extra_repr(self):
        return f'in={self.in_features}, out={self.out_features}, act={self.activation}'
