"""Masked latent projection into EG3D (paper step 1, paper_pipeline.md §1.4).

Frame 0 starts from w_avg; every later keyframe warm-starts from the previous keyframe's w. Adam on w (W:
one w repeated over all layers, as the paper; W+ optional) and on the generator's constant noise maps,
with the StyleGAN2 schedule: linear LR warm-up over the first 5 %, cosine ramp-down over the last 25 %,
decaying latent noise on frame 0 only, and the multiscale noise autocorrelation penalty. The optimised
noise maps are discarded afterwards, as in the paper. Frames between keyframes get linearly interpolated w.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from reenact.structures import Latents

Views = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # targets [V,3,S,S] in [0,1], masks [V,1,S,S], cameras [V,25]


def lr_ramp(t: float, warmup: float = 0.05, rampdown: float = 0.25) -> float:
    """StyleGAN2 projector schedule at progress t in [0, 1]: linear warm-up times cosine ramp-down."""
    down = 0.5 - 0.5 * math.cos(math.pi * min(1.0, (1.0 - t) / rampdown))
    return down * min(1.0, t / warmup)


@torch.no_grad()
def w_stats(G, c: torch.Tensor, n: int = 600, seed: int = 1989) -> tuple[torch.Tensor, float]:
    """w_avg [num_ws, w_dim] and w_std (RMS distance to it) from n z samples mapped with camera c [1, 25]."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, G.z_dim, generator=gen).to(c.device)
    ws = G.mapping(z, c.expand(n, -1))
    w_avg = ws.mean(0)
    return w_avg, float((ws[:, 0] - w_avg[0]).square().sum(1).mean().sqrt())


def _noise_layers(G) -> list[torch.nn.Module]:
    return [m for m in G.backbone.synthesis.modules() if "noise_const" in m._buffers]


@contextmanager
def optimizable_noise(G) -> Iterator[list[torch.Tensor]]:
    """Swap G's constant noise maps for trainable copies, restoring the originals on exit."""
    layers = _noise_layers(G)
    originals = [m.noise_const for m in layers]
    maps = [n.detach().clone().requires_grad_(True) for n in originals]
    for m, n in zip(layers, maps):
        m.noise_const = n
    try:
        yield maps
    finally:
        for m, n in zip(layers, originals):
            m.noise_const = n


def noise_regularizer(maps: list[torch.Tensor]) -> torch.Tensor:
    """StyleGAN2 multiscale autocorrelation penalty of noise maps [H, W] (down to 8x8)."""
    reg = 0.0
    for n in maps:
        n = n[None, None]
        while True:
            reg = reg + (n * n.roll(1, 3)).mean().square() + (n * n.roll(1, 2)).mean().square()
            if n.shape[-1] <= 8:
                break
            n = F.avg_pool2d(n, 2)
    return reg


def render(G, ws: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """G's image for ws [N, num_ws, w_dim] at cameras c [N, 25], in [0, 1]."""
    return (G.synthesis(ws, c, noise_mode="const")["image"] + 1) / 2


def project(G, views: Views, w_init: torch.Tensor, loss_fn: Callable, *, steps: int, lr: float = 0.025,
            w_std: float = 0.0, w_plus: bool = False, noise_weight: float = 1e5,
            view_weights: torch.Tensor | None = None,
            mask_fn: Callable[[torch.Tensor], torch.Tensor] | None = None) -> tuple[torch.Tensor, float]:
    """Optimise one frame's w [num_ws, w_dim] against its views; returns (w, final masked loss).

    w_std > 0 adds the frame-0 latent noise 0.05 * w_std * (1 - t/0.75)^2. view_weights [V] weigh the views
    (e.g. a pseudo view lower than the real one). mask_fn, if given, maps each step's rendered depth [V,1,r,r]
    (detached) to that step's masks [V,1,S,S], for masks that follow the current geometry (SPI's filter).
    """
    targets, masks, cams = views
    v = len(targets)
    weights = torch.ones(v, device=targets.device) if view_weights is None else view_weights.to(targets.device)
    w = (w_init if w_plus else w_init[:1]).detach().clone().to(targets.device).requires_grad_(True)
    num_ws = w_init.shape[0]
    loss = torch.zeros(())
    with optimizable_noise(G) as maps:
        opt = torch.optim.Adam([w, *maps], betas=(0.9, 0.999), lr=lr)
        for step in range(steps):
            t = step / max(steps, 1)
            for group in opt.param_groups:
                group["lr"] = lr * lr_ramp(t)
            sigma = w_std * 0.05 * max(0.0, 1.0 - t / 0.75) ** 2
            w_in = w + torch.randn_like(w) * sigma if sigma > 0 else w
            ws = w_in.expand(num_ws, -1)[None].expand(v, -1, -1)
            out = G.synthesis(ws, cams, noise_mode="const")
            m = masks if mask_fn is None else mask_fn(out["image_depth"].detach())
            loss = (loss_fn((out["image"] + 1) / 2, targets, m) * weights).sum() / weights.sum()
            opt.zero_grad(set_to_none=True)
            (loss + noise_weight * noise_regularizer(maps)).backward()
            opt.step()
            with torch.no_grad():
                for n in maps:
                    n.sub_(n.mean()).div_(n.square().mean().sqrt())
    return w.detach().expand(num_ws, -1).clone(), float(loss.detach())


def project_sequence(G, keyframes: list[int], views: Callable[[int], Views], loss_fn: Callable, *,
                     w_avg: torch.Tensor, w_std: float, steps_first: int, steps_per_frame: int,
                     done: Latents | None = None, on_saved: Callable[[Latents], None] | None = None,
                     save_every: int = 10, view_weights: Callable[[int], torch.Tensor | None] = lambda i: None,
                     mask_fn: Callable[[int], Callable | None] = lambda i: None,
                     progress: Callable[[Iterator], Iterator] = iter, **kwargs) -> Latents:
    """Project keyframes in order, each warm-started from the one before (frame 0 from w_avg).

    `views(i)` gives keyframe i's (targets, masks, cameras), `view_weights(i)` and `mask_fn(i)` its arguments of
    `project`; `done` resumes a partial record; `on_saved` receives the partial record every `save_every`
    keyframes. kwargs go to `project`.
    """
    ws, losses = (list(done.w), list(done.loss.tolist())) if done is not None else ([], [])
    for k in progress(range(len(ws), len(keyframes))):
        first = k == 0
        w, loss = project(G, views(keyframes[k]), w_avg if first else ws[-1].to(w_avg.device), loss_fn,
                          steps=steps_first if first else steps_per_frame, w_std=w_std if first else 0.0,
                          view_weights=view_weights(keyframes[k]), mask_fn=mask_fn(keyframes[k]), **kwargs)
        ws.append(w.cpu())
        losses.append(loss)
        if on_saved is not None and ((k + 1) % save_every == 0 or k + 1 == len(keyframes)):
            on_saved(_latents(ws, keyframes, losses))
    return _latents(ws, keyframes, losses)


def _latents(ws: list[torch.Tensor], keyframes: list[int], losses: list[float]) -> Latents:
    return Latents(torch.stack(ws), torch.tensor(keyframes[:len(ws)], dtype=torch.int64),
                   torch.tensor(losses, dtype=torch.float32))


def keyframe_indices(n_frames: int, every: int) -> list[int]:
    """Every `every`-th frame plus the last one."""
    return sorted(set(range(0, n_frames, max(1, every))) | {n_frames - 1})


def interpolate_latents(latents: Latents, frames: torch.Tensor) -> torch.Tensor:
    """w [len(frames), num_ws, w_dim] linearly interpolated between the keyframes' latents."""
    keys = latents.frames.to(torch.float32)
    f = frames.to(torch.float32).clamp(keys[0], keys[-1])
    hi = torch.searchsorted(keys, f).clamp(1, max(len(keys) - 1, 1)) if len(keys) > 1 else torch.zeros_like(f).long()
    lo = (hi - 1).clamp_min(0)
    span = (keys[hi] - keys[lo]).clamp_min(1e-9)
    a = ((f - keys[lo]) / span).clamp(0, 1)[:, None, None]
    return latents.w[lo] * (1 - a) + latents.w[hi] * a
