"""Closed-loop check of the GAN path: recover known latents through a hidden mouth region, then tune.

usage: python bench/gan_closed_loop.py [--device cpu|cuda] [--frames 4] [--steps-first 300] [--steps-per-frame 40]
                                       [--tune-steps 200] [--side-view]

The small oracle EG3D (128 px, random weights) renders targets at known latents (w* plus per-frame offsets) at
a source camera (yaw 0.25 rad). A mouth-shaped box is hidden from projection. The method then runs as in the
pipeline: W projection (frame 0 from w_avg, later frames warm-started), mouth inpainting from the projected
renders, pivotal tuning of a copy of G on the inpainted targets. PSNR against the truth renders is reported
inside and outside the hidden box at the source camera, and over the whole image at unseen cameras.

--side-view measures the symmetry prior (SPI, `--gan.symmetry`): one target rendered from yaw 0.55 rad is the
only view; frame 0 is projected (and tuned) with and without the mirrored pseudo view, as in the pipeline (face
region only, half weight), and PSNR is reported inside / outside the face region at the mirrored side, frontal
and the source side. A random-weight generator is not left/right symmetric, so SPI's assumption fails for it;
the experiment runs on two generators: the random one as is, and a mirror-symmetric copy (tri-planes averaged
with their x mirror, super-resolution kernels made left/right symmetric), for which flip(G(w, c)) = G(w,
mirror(c)) up to the renderer's depth jitter, as for a symmetric face.
"""
import argparse
import copy
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reenact.eg3d import frontal_label, load_generator, lookat_label, mirror_label  # noqa: E402
from reenact.gan_render import face_points, mirrored_views, reproject_mask  # noqa: E402
from reenact.invert import project, project_sequence, render, w_stats  # noqa: E402
from reenact.losses import ImageLoss  # noqa: E402
from reenact.tune import inpaint_mouth, tune_generator  # noqa: E402

TINY = ROOT.parent / "shared" / "oracles" / "eg3d" / "small" / "G_ema_state_dict.pt"
NOVEL = {"yaw -0.35": (-0.35, 0.0), "yaw +0.6": (0.6, 0.0), "pitch -0.25": (0.25, -0.25)}
SIDE_YAW = 0.55
SIDE_EVAL = {"mirrored (yaw -0.55)": -0.55, "frontal": 0.0, "source side (yaw +0.3)": 0.3}


def psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    m = torch.ones_like(a[:, :1]) if mask is None else mask
    mse = ((a - b).square() * m).sum() / (m.sum() * a.shape[1])
    return float(10 * torch.log10(1 / mse.clamp_min(1e-10)))


def symmetrize(G) -> None:
    """Make G mirror-symmetric in place: tri-plane features averaged with their x mirror (planes xy, xz: x is
    the width axis; zx: the height axis), super-resolution conv kernels averaged with their left/right flip."""
    def hook(module, inputs, planes):
        p = planes.view(len(planes), 3, -1, *planes.shape[-2:])
        flipped = torch.stack([p[:, 0].flip(-1), p[:, 1].flip(-1), p[:, 2].flip(-2)], 1)
        return ((p + flipped) / 2).view_as(planes)

    G.backbone.synthesis.register_forward_hook(hook)
    with torch.no_grad():
        for weight in G.superresolution.parameters():
            if weight.ndim == 4:
                weight.copy_((weight + weight.flip(-1)) / 2)


def side_view(args, dev: torch.device) -> None:
    """The SPI experiment of --side-view (see the module docstring)."""
    yaws = [*SIDE_EVAL.values(), SIDE_YAW]
    cams = lookat_label(yaws, [0.0] * len(yaws), device=dev)
    c_src = cams[-1:]
    loss_fn = ImageLoss()
    print(f"side view: one source at yaw {SIDE_YAW}, W projection {args.steps_first} steps, tuning "
          f"{args.tune_steps} steps; PSNR inside / outside the face region")
    print(" | ".join(["generator", "method", "flip(truth) vs truth at mirror camera", *SIDE_EVAL]))
    for kind in ("random", "mirror-symmetric"):
        G = load_generator(TINY, dev)
        if kind == "mirror-symmetric":
            symmetrize(G)
        r = G.img_resolution
        face = torch.zeros(1, 1, r, r, device=dev)  # the "face": a central box of the source view, lifted to 3D
        face[..., int(0.19 * r):int(0.88 * r), int(0.23 * r):int(0.77 * r)] = 1  # by the true depth
        torch.manual_seed(7)
        c_cond = frontal_label(1, device=dev)
        w_avg, w_std = w_stats(G, c_cond)
        w_true = G.mapping(torch.randn(1, G.z_dim, device=dev), c_cond, truncation_psi=0.7)
        with torch.no_grad():
            out = G.synthesis(w_true.expand(len(cams), -1, -1), cams, noise_mode="const")
            truth, depth = (out["image"] + 1) / 2, out["image_depth"][-1:]
            regions = reproject_mask(face_points(depth, c_src, face), cams, r)
            mirrored = render(G, w_true, mirror_label(c_src))
            sym = [psnr(mirrored, truth[-1:].flip(-1), m) for m in (face.flip(-1), 1 - face.flip(-1))]
        target = truth[-1:]
        for method in ("no prior", "SPI"):
            views = mirrored_views(target, face, c_src) if method == "SPI" else (target, face, c_src)
            weights = torch.tensor([1.0, 0.5]) if method == "SPI" else None
            torch.manual_seed(1)
            w, _ = project(G, views, w_avg, loss_fn, steps=args.steps_first, w_std=w_std, view_weights=weights)
            tuned = tune_generator(copy.deepcopy(G), w[None], target, c_src, loss_fn, steps=args.tune_steps)
            for stage, net in (("projected", G), ("+ tuned", tuned)):
                with torch.no_grad():
                    pred = render(net, w[None].expand(len(cams), -1, -1), cams)
                cells = [f"{psnr(pred[i:i + 1], truth[i:i + 1], regions[i:i + 1]):.1f} / "
                         f"{psnr(pred[i:i + 1], truth[i:i + 1], 1 - regions[i:i + 1]):.1f}"
                         for i in range(len(SIDE_EVAL))]
                print(" | ".join([kind, f"{method}, {stage}", f"{sym[0]:.1f} / {sym[1]:.1f}", *cells]), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--steps-first", type=int, help="default 300 (--side-view: 60)")
    p.add_argument("--steps-per-frame", type=int, default=40)
    p.add_argument("--tune-steps", type=int, help="default 200 (--side-view: 30)")
    p.add_argument("--side-view", action="store_true", help="measure the symmetry prior on a side-view source")
    args = p.parse_args()
    dev = torch.device(args.device)
    args.steps_first = args.steps_first or (60 if args.side_view else 300)
    args.tune_steps = args.tune_steps or (30 if args.side_view else 200)
    if args.side_view:
        side_view(args, dev)
        return
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
