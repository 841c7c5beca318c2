"""Pivotal tuning of one generator shared by all frames, on mouth-inpainted targets (paper step 2, §1.5).

The per-frame latents stay frozen pivots; all generator weights are tuned with Adam (LR 1e-3 under the
projector's warm-up / ramp-down schedule), one shuffled frame per step, on the whole image at the source
camera. Options from PTI: the locality regulariser (renders at latents 30 units from the pivot toward a
random w must not move) and an early stop on the running loss. Checkpoints (weights, optimiser, step, RNG)
are written atomically every N steps, so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Callable, Iterator

import kornia.filters as kf
import torch
import torch.nn.functional as F

from reenact.errors import CacheError
from reenact.invert import lr_ramp, render
from reenact.structures import atomic_write

log = logging.getLogger("reenact")


def inpaint_mouth(target: torch.Tensor, hole: torch.Tensor, fill: torch.Tensor, grow: int = 32,
                  blur: tuple[int, float] = (9, 3.0)) -> torch.Tensor:
    """Complete targets [N,3,S,S]: the mouth hole [N,1,S,S] (grown by `grow` px, blurred) taken from `fill`.

    Paper: erode the valid region with a 32x32 kernel and blur 9x9 / sigma 3 at 512 px; sizes are given in
    pixels of the caller's resolution.
    """
    r = grow // 2
    valid = 1 - F.max_pool2d((hole > 0.5).float(), 2 * r + 1, stride=1, padding=r)
    k = blur[0] | 1
    m = kf.gaussian_blur2d(valid, (k, k), (blur[1], blur[1]))
    return target * m + fill * (1 - m)


def _save_checkpoint(path: Path, G, opt, step: int, rng: torch.Tensor) -> None:
    state = {"step": step, "G": G.state_dict(), "opt": opt.state_dict(), "rng": rng}
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def _load_checkpoint(path: Path | None, G, opt, gen: torch.Generator) -> int:
    """Restore a tuning checkpoint into G, opt and gen; returns the step to continue from (0: none)."""
    if path is None or not path.exists():
        return 0
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        G.load_state_dict(state["G"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["rng"])
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        log.warning("discarding a corrupt tuning checkpoint: %s", CacheError(f"{path}: {exc}"))
        path.unlink(missing_ok=True)
        return 0
    log.info("resuming generator tuning at step %d", int(state["step"]))
    return int(state["step"])


def tune_generator(G, ws: torch.Tensor, targets: torch.Tensor, c: torch.Tensor, loss_fn: Callable, *, steps: int,
                   lr: float = 1e-3, locality: float = 0.0, locality_alpha: float = 30.0,
                   checkpoint: Path | None = None, checkpoint_every: int = 100, seed: int = 1989,
                   progress: Callable[[Iterator], Iterator] = iter):
    """Tune G in place on (ws [K,num_ws,w_dim], targets [K,3,S,S] uint8 or [0,1]) at camera c [1,25]; returns G.

    Only generator parameters change: the pivots, targets and cameras are inputs.
    """
    device = c.device
    G.requires_grad_(True)
    frozen = copy.deepcopy(G).requires_grad_(False) if locality > 0 else None
    opt = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.9, 0.999))
    gen = torch.Generator().manual_seed(seed)
    start = _load_checkpoint(checkpoint, G, opt, gen)
    for step in progress(range(start, steps)):
        for group in opt.param_groups:
            group["lr"] = lr * lr_ramp(step / steps)
        i = int(torch.randint(len(ws), (1,), generator=gen))
        target = targets[i:i + 1].to(device)
        target = target.float() / 255 if target.dtype == torch.uint8 else target
        w = ws[i:i + 1].to(device)
        loss = loss_fn(render(G, w, c), target).mean()
        if frozen is not None:
            loss = loss + locality * _locality_loss(G, frozen, w, c, loss_fn, locality_alpha, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if checkpoint is not None and (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            _save_checkpoint(checkpoint, G, opt, step + 1, gen.get_state())
    return G.requires_grad_(False)


def _locality_loss(G, frozen, w_pivot: torch.Tensor, c: torch.Tensor, loss_fn: Callable, alpha: float,
                   gen: torch.Generator) -> torch.Tensor:
    """PTI locality regulariser: G and the untuned G agree at w_r = w_p + alpha * (w_z - w_p) / |w_z - w_p|."""
    z = torch.randn(1, G.z_dim, generator=gen).to(c.device)
    with torch.no_grad():
        w_z = frozen.mapping(z, c, truncation_psi=0.5)
        d = w_z - w_pivot
        w_r = w_pivot + alpha * d / d.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        reference = render(frozen, w_r, c)
    return loss_fn(render(G, w_r, c), reference).mean()
