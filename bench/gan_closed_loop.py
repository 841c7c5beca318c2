"""Closed-loop check of the GAN path: recover known latents through a hidden mouth region, then tune.

usage: python bench/gan_closed_loop.py [--device cpu|cuda] [--frames 4] [--steps-first 300] [--steps-per-frame 40]
                                       [--tune-steps 200] [--side-view [GENERATOR] [--seeds 4] [--blob]
                                       [--feature-gain 1] [--w-plus]]

The small oracle EG3D (128 px, random weights) renders targets at known latents (w* plus per-frame offsets) at
a source camera (yaw 0.25 rad). A mouth-shaped box is hidden from projection. The method then runs as in the
pipeline: W projection (frame 0 from w_avg, later frames warm-started), mouth inpainting from the projected
renders, pivotal tuning of a copy of G on the inpainted targets. PSNR against the truth renders is reported
inside and outside the hidden box at the source camera, and over the whole image at unseen cameras.

--side-view [GENERATOR] measures the symmetry prior (SPI, `--gan.symmetry`): one target rendered from yaw 0.55
rad is the only view; frame 0 is projected from w_avg as in the pipeline without the prior, with the mirrored
pseudo view (face region, SPI's weight) and with the pseudo view's asymmetric-region filter, for --seeds truths
(w* and the projection's randomness). PSNR inside / outside the face region at the mirrored side, frontal and
the source side: mean ± sd over seeds, and the differences to no prior paired by seed. Generators:
- symmetric-truth (default): w*'s head is exactly mirror-symmetric (tri-planes less the antisymmetric part of
  w*'s, super-resolution kernels made left/right symmetric), other latents as asymmetric as before: the prior
  holds and carries information;
- symmetric: every head is symmetric (tri-planes averaged with their mirror), so flip(G(w, c)) = G(w, mirror(c))
  for every w up to the renderer's depth jitter: the pseudo view repeats the source view, and SPI can change
  the result only by optimisation noise;
- random: the weights as they are; the prior is false.
--blob paints a one-sided red blob where the source also sees its mirror point, and reports PSNR where the
blob's mirror image lands at the mirrored camera, and the filter's pseudo-view weight there. The check lines
give the renderer's mirror consistency and how much the truth's views differ from each other at all.
--tune-steps N also tunes a copy of G at the source camera after each projection (default 0: SPI acts on the
projection only). --feature-gain K multiplies the tri-plane features by K: sharper, more opaque heads whose views
differ more (K = 3: ~20-26 dB between the source view and the others, against ~30-36 dB as they are), so that the
source view leaves more of the head unseen; --w-plus projects in W+ (more freedom to fit the source view alone).
"""
import argparse
import copy
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reenact.eg3d import frontal_label, load_generator, lookat_label, mirror_label  # noqa: E402
from reenact.gan_render import face_points, reproject_mask  # noqa: E402
from reenact.symmetry import filtered_masks, mirror_points, mirrored_views, spi_weight, symmetry_filter  # noqa: E402
from reenact.invert import project, project_sequence, render, w_stats  # noqa: E402
from reenact.losses import ImageLoss  # noqa: E402
from reenact.tune import inpaint_mouth, tune_generator  # noqa: E402

TINY = ROOT.parent / "shared" / "oracles" / "eg3d" / "small" / "G_ema_state_dict.pt"
NOVEL = {"yaw -0.35": (-0.35, 0.0), "yaw +0.6": (0.6, 0.0), "pitch -0.25": (0.25, -0.25)}
SIDE_YAW = 0.55
SIDE_EVAL = {"mirrored (yaw -0.55)": -0.55, "frontal": 0.0, "source side (yaw +0.3)": 0.3}
SIDE_GENERATORS = ("symmetric-truth", "symmetric", "random")


def psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    m = torch.ones_like(a[:, :1]) if mask is None else mask
    mse = ((a - b).square() * m).sum() / (m.sum() * a.shape[1])
    return float(10 * torch.log10(1 / mse.clamp_min(1e-10)))


def mirror_planes(planes: torch.Tensor) -> torch.Tensor:
    """Tri-planes [N, 96, H, W] of the x-mirrored head: planes xy and xz have x on the width axis, zx on the height."""
    p = planes.view(len(planes), 3, -1, *planes.shape[-2:])
    return torch.stack([p[:, 0].flip(-1), p[:, 1].flip(-1), p[:, 2].flip(-2)], 1).view_as(planes)


def symmetrize(G, w_star: torch.Tensor | None = None) -> None:
    """Make G's heads mirror-symmetric in place: super-resolution kernels averaged with their left/right flip, and
    tri-planes averaged with their mirror (every head symmetric) or, given w_star, less the antisymmetric part of
    w_star's planes (w_star's head symmetric, every other head as asymmetric as before)."""
    with torch.no_grad():
        for weight in G.superresolution.parameters():
            if weight.ndim == 4:
                weight.copy_((weight + weight.flip(-1)) / 2)
        if w_star is not None:
            planes = G.backbone.synthesis(w_star, noise_mode="const")
            anti = (planes - mirror_planes(planes)) / 2
    G.backbone.synthesis.register_forward_hook(
        lambda module, inputs, planes: (planes + mirror_planes(planes)) / 2 if w_star is None else planes - anti)


def paint_blob(target: torch.Tensor, camera: torch.Tensor, depth: torch.Tensor,
               face: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The target with a one-sided red blob, and the blob's footprint [1,1,S,S] (where it is over half strength).

    The blob sits where the source also sees the mirrored surface points of most of its footprint (ties: as far
    from them as possible): an asymmetry the source itself shows (a mole on one cheek), which SPI would copy.
    """
    s = target.shape[-1]
    sigma = 0.03 * s
    r = round(1.18 * sigma)  # the half-strength radius
    grid, visible = mirror_points(camera, depth, s)
    seen = F.avg_pool2d((visible & (face > 0.5)).float(), 2 * r + 1, 1, r, count_include_pad=True)
    pix = torch.stack(torch.meshgrid(torch.arange(s), torch.arange(s), indexing="xy"), -1).to(target)
    apart = ((grid + 1) * s / 2 - 0.5 - pix).norm(dim=-1)[:, None]
    y, x = divmod(int((seen.round(decimals=1) + apart / s ** 2).argmax()), s)
    blob = torch.exp(-((pix[..., 0] - x) ** 2 + (pix[..., 1] - y) ** 2) / (2 * sigma ** 2))[None, None]
    colour = torch.tensor([0.5, -0.25, -0.25], device=target.device).view(1, 3, 1, 1)
    return target + colour * blob, (blob > 0.5).float()


def side_view(args, dev: torch.device) -> None:
    """The SPI experiment of --side-view (see the module docstring)."""
    yaws = [*SIDE_EVAL.values(), SIDE_YAW]
    cams = lookat_label(yaws, [0.0] * len(yaws), device=dev)
    c_src, c_cond = cams[-1:], frontal_label(1, device=dev)
    loss_fn = ImageLoss()
    w_m = spi_weight(SIDE_YAW)
    methods = ("no prior", "SPI", "SPI + filter")
    cells = {m: [] for m in methods}
    checks, kept = [], []
    t0 = time.time()
    for seed in range(args.seeds):
        G = load_generator(TINY, dev)
        if args.feature_gain != 1:
            G.backbone.synthesis.register_forward_hook(lambda module, inputs, planes: planes * args.feature_gain)
        torch.manual_seed(seed)
        w_true = G.mapping(torch.randn(1, G.z_dim, device=dev), c_cond, truncation_psi=0.7)
        if args.side_view != "random":
            symmetrize(G, w_true if args.side_view == "symmetric-truth" else None)
        w_avg, w_std = w_stats(G, c_cond)
        r = G.img_resolution
        face = torch.zeros(1, 1, r, r, device=dev)  # the "face": a central box of the source view, lifted to 3D
        face[..., int(0.19 * r):int(0.88 * r), int(0.23 * r):int(0.77 * r)] = 1  # by the true depth
        with torch.no_grad():
            out = G.synthesis(w_true.expand(len(cams), -1, -1), cams, noise_mode="const")
            truth, depth = (out["image"] + 1) / 2, out["image_depth"][-1:]
            regions = reproject_mask(face_points(depth, c_src, face), cams, r)
            checks.append([psnr(render(G, w_true, mirror_label(c_src)), truth[-1:].flip(-1), face.flip(-1)),
                           psnr(render(G, w_true, c_src), truth[-1:], face),
                           *(psnr(truth[i:i + 1], truth[-1:], face) for i in range(len(SIDE_EVAL)))])
        target, blob = paint_blob(truth[-1:], c_src, depth, face) if args.blob else (truth[-1:], 0 * face)
        for method in methods:
            views = (target, face, c_src) if method == "no prior" else mirrored_views(target, face, c_src)
            torch.manual_seed(1000 + seed)
            w, _ = project(G, views, w_avg, loss_fn, steps=args.steps_first, w_std=w_std, w_plus=args.w_plus,
                           view_weights=None if method == "no prior" else torch.tensor([1.0, w_m]),
                           mask_fn=filtered_masks(target, views[1], c_src) if method == "SPI + filter" else None)
            net = tune_generator(copy.deepcopy(G), w[None], target, c_src, loss_fn, steps=args.tune_steps) \
                if args.tune_steps else G
            with torch.no_grad():
                pred = render(net, w[None].expand(len(cams), -1, -1), cams)
                if method == "SPI + filter":  # the filter with the true and the final depth, in pseudo-view pixels
                    elsewhere = face.flip(-1) * (1 - blob.flip(-1))
                    kept.append([float((symmetry_filter(target, c_src, d) * m).sum() / m.sum().clamp_min(1))
                                 for d in (depth, G.synthesis(w[None], c_src)["image_depth"])
                                 for m in (elsewhere, blob.flip(-1))])
            row = [psnr(pred[i:i + 1], truth[i:i + 1], m) for i in range(len(SIDE_EVAL))
                   for m in (regions[i:i + 1], 1 - regions[i:i + 1])]
            cells[method].append(row + ([psnr(pred[:1], truth[:1], blob.flip(-1))] if args.blob else []))
        print(f"seed {seed} done ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)

    def stat(x: torch.Tensor, digits: int = 1) -> str:
        return f"{float(x.mean()):.{digits}f} ± {float(x.std()) if len(x) > 1 else 0.0:.{digits}f}"

    def row(name: str, v: torch.Tensor) -> str:
        pairs = [f"{stat(v[:, 2 * i])} / {stat(v[:, 2 * i + 1])}" for i in range(len(SIDE_EVAL))]
        return " | ".join([name, *pairs, *([stat(v[:, -1])] if args.blob else [])])

    sym, kept = torch.tensor(checks), torch.tensor(kept)
    print(f"side view, {args.side_view} generator{', one-sided blob painted on the target' if args.blob else ''}: "
          f"source yaw {SIDE_YAW}, SPI weight {w_m:.2f}, {args.steps_first} projection steps, {args.tune_steps} "
          f"tuning steps, {'W+' if args.w_plus else 'W'}, feature gain {args.feature_gain:g}, {args.seeds} seeds, "
          f"{time.time() - t0:.0f} s; mean ± sd over seeds")
    print(f"face region, PSNR (dB) of flip(G(w*, c)) vs G(w*, mirror(c)): {stat(sym[:, 0])} (G(w*, c) rendered "
          f"twice: {stat(sym[:, 1])}); of the truth at the source camera vs at the "
          + ", ".join(f"{k}: {stat(sym[:, 2 + i])}" for i, k in enumerate(SIDE_EVAL)))
    for i, when in enumerate(("with the true depth", "with the depth at the end of the projection")):
        print(f"filter {when}: pseudo-view weight {stat(kept[:, 2 * i], 2)} in the rest of the face"
              + (f", {stat(kept[:, 2 * i + 1], 2)} where it would copy the blob" if args.blob else ""))
    print("PSNR (dB) inside / outside the face region; differences paired by seed")
    print(" | ".join(["method", *SIDE_EVAL, *(["mirrored camera where the blob's mirror lands"] if args.blob else [])]))
    v = {m: torch.tensor(cells[m]) for m in methods}
    for m in methods:
        print(row(m, v[m]))
    for m in methods[1:]:
        print(row(f"{m} - no prior", v[m] - v["no prior"]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--steps-first", type=int, help="default 300 (--side-view: 60)")
    p.add_argument("--steps-per-frame", type=int, default=40)
    p.add_argument("--tune-steps", type=int, help="default 200 (--side-view: 0)")
    p.add_argument("--side-view", nargs="?", const="symmetric-truth", choices=SIDE_GENERATORS,
                   help="measure the symmetry prior on a side-view source with this generator (default "
                        "symmetric-truth)")
    p.add_argument("--seeds", type=int, default=4, help="--side-view: truths and projections (seeds 0..N-1)")
    p.add_argument("--blob", action="store_true", help="--side-view: paint a one-sided blob on the target")
    p.add_argument("--feature-gain", type=float, default=1.0, help="--side-view: tri-plane features x K")
    p.add_argument("--w-plus", action="store_true", help="--side-view: project in W+")
    args = p.parse_args()
    dev = torch.device(args.device)
    if args.steps_first is None:
        args.steps_first = 60 if args.side_view else 300
    if args.tune_steps is None:
        args.tune_steps = 0 if args.side_view else 200
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
