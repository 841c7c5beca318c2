"""StyleGAN2 building blocks in plain PyTorch, numerically equivalent to the official reference (CPU) paths.

The official code routes `bias_act`, `upfirdn2d` and `conv2d_resample` through custom CUDA plugins when it can and
through pure-PyTorch `_ref` paths otherwise; the oracles were made with the reference paths. The same maths is done
here with less memory traffic, which on CPU is most of the time outside the convolutions: feature maps are kept
channels-last (oneDNN's NHWC kernels), bias/activation/gain/clamp run in place on the fresh convolution output with a
backward pass computed from that output alone, and padding goes into the convolution instead of a padded copy.
Results differ from the reference by float rounding only (~1e-6; the oracle tests allow 1e-4).
"""
import math

import torch
import torch.nn.functional as F

SQRT2 = math.sqrt(2.0)


def channels_last(x):
    """A 4-D CPU tensor in NHWC layout (no copy if it already is); other tensors unchanged.

    oneDNN's NHWC convolutions run ~1.3x (3x3) to ~2x (stride-2 transposed) faster than NCHW on CPU. CUDA keeps its
    layout, which has not been measured here.
    """
    if x.ndim == 4 and x.device.type == 'cpu':
        return x.contiguous(memory_format=torch.channels_last)
    return x


def setup_filter(taps=(1, 3, 3, 1)):
    """Normalized separable FIR filter as a 2-D float32 tensor (outer product, sums to 1)."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    f = f.ger(f)
    return f / f.sum()


def normalize_2nd_moment(x, dim=1, eps=1e-8):
    """Scale each row to unit mean square."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def _reaches(x, limit):
    """Whether |x| reaches `limit` anywhere; reduced in memory order (an NHWC tensor reduces ~20x faster so)."""
    nhwc = x.ndim == 4 and not x.is_contiguous()
    low, high = torch.aminmax(x.permute(0, 2, 3, 1) if nhwc else x)
    return low.item() <= -limit or high.item() >= limit


class _BiasAct(torch.autograd.Function):
    """bias, leaky ReLU (alpha) or linear (alpha None), gain and clamp, in place; the backward needs only the output
    (and masks the clamped values only if the clamp was reached)."""

    @staticmethod
    def forward(ctx, x, b, alpha, gain, clamp):
        if b is not None:
            x.add_(b.reshape([-1 if i == 1 else 1 for i in range(x.ndim)]))
        if alpha is not None:
            F.leaky_relu_(x, alpha)
        if gain != 1:
            x.mul_(gain)
        if clamp is not None:
            x.clamp_(-clamp, clamp)
            if x.device.type == 'cpu' and not _reaches(x, clamp):  # on CUDA the check would stall the stream
                clamp = None
        ctx.mark_dirty(x)
        ctx.save_for_backward(x)
        ctx.alpha, ctx.gain, ctx.clamp = alpha, gain, clamp
        return x

    @staticmethod
    def backward(ctx, grad):
        y, = ctx.saved_tensors
        if ctx.alpha is not None:
            grad = torch.ops.aten.leaky_relu_backward(grad, y, ctx.alpha, True)
        elif ctx.gain != 1 or ctx.clamp is not None:
            grad = grad.clone()
        if ctx.gain != 1:
            grad.mul_(ctx.gain)
        if ctx.clamp is not None:
            grad.masked_fill_(y.abs() >= ctx.clamp, 0)
        grad_b = None
        if ctx.needs_input_grad[1]:
            grad_b = grad.sum([i for i in range(grad.ndim) if i != 1])
        return grad, grad_b, None, None, None


def bias_act(x, b=None, act='linear', gain=None, clamp=None, alpha=0.2):
    """Bias along dim 1, activation ('linear' | 'lrelu'), gain (default sqrt(2) for lrelu), optional symmetric clamp.

    Works in place: x must be a fresh result that nothing else holds (a convolution or matmul output).
    """
    if act not in ('linear', 'lrelu'):
        raise ValueError(f'unsupported activation {act!r}')
    gain = (SQRT2 if act == 'lrelu' else 1.0) if gain is None else float(gain)
    clamp = float(clamp) if clamp is not None and clamp >= 0 else None
    return _BiasAct.apply(x, b, alpha if act == 'lrelu' else None, gain, clamp)


def upfirdn2d(x, f, padding=(0, 0, 0, 0), gain=1):
    """Padding (x0, x1, y0, y1; negative crops), then depthwise FIR filtering (f is 2-D), as the official upfirdn2d
    without up/down-sampling."""
    c = x.shape[1]
    px0, px1, py0, py1 = padding
    conv_pad = 0
    if px0 == px1 == py0 == py1 >= 0:
        conv_pad = px0
    else:
        x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
        x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]
    f = (f * (gain ** (f.ndim / 2))).to(x.dtype).flip([0, 1])
    f = f[None, None].repeat([c, 1, 1, 1])
    return F.conv2d(x, f, padding=conv_pad, groups=c)


def upsample2d(x, f, up=2):
    """2x upsampling of the skip image (official `upfirdn2d.upsample2d` with an even-length filter).

    Zero insertion followed by the FIR filter is a stride-2 transposed depthwise convolution with the filter itself,
    which never materializes the zeros (4x fewer products, no padded copy).
    """
    fw = f.shape[-1]
    w = (f * (up * up)).to(x.dtype)[None, None].repeat([x.shape[1], 1, 1, 1])
    return F.conv_transpose2d(x, w, stride=up, padding=fw - 1 - (fw + up - 1) // 2, groups=x.shape[1])


def conv2d_resample(x, w, f=None, up=1, padding=0, flip_weight=True):
    """Convolution with optional 2x upsampling (transposed stride-2 conv followed by the FIR filter)."""
    kh, kw = w.shape[2:]
    if up == 1:
        if not flip_weight and (kh > 1 or kw > 1):
            w = w.flip([2, 3])
        return F.conv2d(x, w, padding=padding)
    fw = f.shape[-1]
    p0 = padding + (fw + up - 1) // 2 - (kw - 1)
    p1 = padding + (fw - up) // 2 - (kw - up)
    pt = max(min(-p0, -p1), 0)
    w = w.transpose(0, 1)
    if flip_weight and (kh > 1 or kw > 1):
        w = w.flip([2, 3])
    x = F.conv_transpose2d(x, w, stride=up, padding=pt)
    return upfirdn2d(x, f, padding=[p0 + pt, p1 + pt, p0 + pt, p1 + pt], gain=up * up)


def modulated_conv2d(x, weight, styles, noise=None, up=1, padding=0, resample_filter=None, demodulate=True,
                     flip_weight=True, fused=True):
    """Style-modulated convolution; `fused` modulates the weights per sample, otherwise the activations are scaled.

    Both variants are official and differ by ~1e-6; the official default is fused in eval, non-fused in training.
    The official fused form is one grouped convolution over the batch; here each sample has its own convolution (the
    same sums), which keeps the NHWC layout that a batch-into-channels reshape would break.
    """
    n = x.shape[0]
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
    if n == 1:  # no split: its backward would copy the whole input gradient
        x = conv2d_resample(x, wmod[0], f=resample_filter, up=up, padding=padding, flip_weight=flip_weight)
    else:
        x = torch.cat([conv2d_resample(xi, wi, f=resample_filter, up=up, padding=padding, flip_weight=flip_weight)
                       for xi, wi in zip(x.split(1), wmod)])
    if noise is not None:
        x.add_(noise)
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
