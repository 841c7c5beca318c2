"""Closed-loop check of the GAN path: recover known latents through a hidden mouth region, then tune.

usage: python bench/gan_closed_loop.py [--device cpu|cuda] [--frames 4] [--steps-first 300] [--steps-per-frame 40]
                                       [--tune-steps 200]

The small oracle EG3D (128 px, random weights) renders targets at known latents (w* plus per-frame offsets) at
a source camera (yaw 0.25 rad). A mouth-shaped box is hidden from projection. The method then runs as in the
pipeline: W projection (frame 0 from w_avg, later frames warm-started), mouth inpainting from the projected
renders, pivotal tuning of a copy of G on the inpainted targets. PSNR against the truth renders is reported
inside and outside the hidden box at the source camera, and over the whole image at unseen cameras.
"""
import argparse
import copy
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reenact.eg3d import frontal_label, load_generator, lookat_label  # noqa: E402
from reenact.invert import project_sequence, render, w_stats  # noqa: E402
from reenact.losses import ImageLoss  # noqa: E402
from reenact.tune import inpaint_mouth, tune_generator  # noqa: E402

TINY = ROOT.parent / "shared" / "oracles" / "eg3d" / "small" / "G_ema_state_dict.pt"
NOVEL = {"yaw -0.35": (-0.35, 0.0), "yaw +0.6": (0.6, 0.0), "pitch -0.25": (0.25, -0.25)}


def psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    m = torch.ones_like(a[:, :1]) if mask is None else mask
    mse = ((a - b).square() * m).sum() / (m.sum() * a.shape[1])
    return float(10 * torch.log10(1 / mse.clamp_min(1e-10)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--steps-first", type=int, default=300)
    p.add_argument("--steps-per-frame", type=int, default=40)
    p.add_argument("--tune-steps", type=int, default=200)
    args = p.parse_args()
    dev = torch.device(args.device)
    G = load_generator(TINY, dev)
    s = G.img_resolution
    torch.manual_seed(7)
    c_cond = frontal_label(1, device=dev)
    w_avg, w_std = w_stats(G, c_cond)
    w_star = G.mapping(torch.randn(1, G.z_dim, device=dev), c_cond, truncation_psi=0.7)[0]
    offsets = torch.randn(args.frames, 1, G.w_dim, device=dev) * 0.15 * w_std / G.w_dim ** 0.5
    offsets[0] = 0
    w_true = w_star[None] + offsets
    c_src = lookat_label([0.25], [0.0], device=dev)
    with torch.no_grad():
        truth = render(G, w_true, c_src.expand(args.frames, -1))
    hole = torch.zeros(1, 1, s, s, device=dev)
    hole[..., int(0.6 * s):int(0.78 * s), int(0.34 * s):int(0.66 * s)] = 1
    keep = 1 - hole
    loss_fn = ImageLoss()

    t0 = time.time()
    lat = project_sequence(G, list(range(args.frames)), lambda i: (truth[i:i + 1], keep, c_src), loss_fn,
                           w_avg=w_avg, w_std=w_std, steps_first=args.steps_first,
                           steps_per_frame=args.steps_per_frame)
    t_proj = time.time() - t0
    ws = lat.w.to(dev)
    with torch.no_grad():
        projected = render(G, ws, c_src.expand(args.frames, -1))
    holed = truth * keep  # what the method sees: the truth with the mouth hidden
    targets = inpaint_mouth(holed, hole.expand(args.frames, -1, -1, -1), projected, grow=round(32 * s / 512),
                            blur=(round(9 * s / 512), 3.0 * s / 512))
    tuned = copy.deepcopy(G)
    t0 = time.time()
    tune_generator(tuned, ws, targets, c_src, loss_fn, steps=args.tune_steps)
    t_tune = time.time() - t0

    rows = []
    for name, net in (("w_avg (start)", None), ("projected", G), ("projected + tuned", tuned)):
        with torch.no_grad():
            w = w_avg[None].expand(args.frames, -1, -1) if net is None else ws
            g = G if net is None else net
            out = render(g, w, c_src.expand(args.frames, -1))
            novel = [psnr(render(g, w, lookat_label([y], [pt], device=dev).expand(args.frames, -1)),
                          render(G, w_true, lookat_label([y], [pt], device=dev).expand(args.frames, -1)))
                     for y, pt in NOVEL.values()]
        rows.append((name, psnr(out, truth, keep.expand_as(out[:, :1])), psnr(out, truth, hole.expand_as(out[:, :1])),
                     *novel))
    print(f"small EG3D ({s} px), {args.frames} frames, device {dev}: projection {args.steps_first}+"
          f"{args.steps_per_frame}/frame steps in {t_proj:.0f} s, tuning {args.tune_steps} steps in {t_tune:.0f} s")
    head = ["stage", "PSNR outside hole", "PSNR inside hole", *(f"PSNR {k}" for k in NOVEL)]
    print(" | ".join(head))
    for r in rows:
        print(" | ".join([r[0], *(f"{v:.1f}" for v in r[1:])]))


if __name__ == "__main__":
    main()
