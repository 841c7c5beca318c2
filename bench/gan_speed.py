"""Seconds per frame of the GAN path at the full FFHQ 512-128 architecture (random weights), extrapolated to a clip.

usage: python bench/gan_speed.py [--device cpu|cuda] [--repeats 1] [--seconds 10] [--fps 25]

Times one projection step (W, frame-0 kind with noise maps; later frames use the same step), one tuning step
(forward + backward + Adam over all weights) and one final frame (two renders + the reprojected mask) after a
warm-up call each, then extrapolates a clip of `seconds` at `fps` for the paper's step counts and for faster
settings. The default CPU run is 7 warm-up + 5 timed 512 px passes: ~2 min on an idle 2-core CPU, where one
fwd+bwd pass takes ~13 s; use `--device cuda` where there is a GPU.
"""
import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reenact.eg3d import TriPlaneGenerator, frontal_label, lookat_label  # noqa: E402
from reenact.gan_render import face_points, reproject_mask  # noqa: E402
from reenact.invert import project, render  # noqa: E402
from reenact.losses import ImageLoss  # noqa: E402
from reenact.tune import tune_generator  # noqa: E402

SETTINGS = {  # steps_first, steps_per_frame, keyframe_every, tune_steps, final depth x
    "paper": (2000, 100, 1, 2000, 4),
    "fast": (300, 20, 5, 300, 1),
}


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--fps", type=float, default=25)
    args = p.parse_args()
    dev = torch.device(args.device)
    torch.manual_seed(0)
    G = TriPlaneGenerator.from_config().eval().requires_grad_(False).to(dev)
    G.neural_rendering_resolution = 128
    s = G.img_resolution
    c = lookat_label([0.2], [0.0], device=dev)
    w = G.mapping(torch.randn(1, G.z_dim, device=dev), frontal_label(1, device=dev))[0]
    target, mask = torch.rand(1, 3, s, s, device=dev), torch.ones(1, 1, s, s, device=dev)
    loss_fn = ImageLoss()

    t_proj = timed(lambda: project(G, (target, mask, c), w, loss_fn, steps=1), args.repeats)
    t_tune = timed(lambda: tune_generator(G, w[None], target, c, loss_fn, steps=1), args.repeats)
    with torch.no_grad():
        depth = G.synthesis(w[None], c, noise_mode="const")["image_depth"]
    face = torch.zeros(1, 1, s, s, device=dev)
    face[..., s // 4:3 * s // 4, s // 4:3 * s // 4] = 1
    points = face_points(depth, c, face)

    def final():
        with torch.no_grad():
            fg, bg = render(G, w[None], c), render(G, w[None], c)
            return reproject_mask(points, c, s) * (fg - bg) + bg

    t_final = timed(final, args.repeats)
    rk = dict(G.rendering_kwargs)
    G.rendering_kwargs = {**rk, "depth_resolution": rk["depth_resolution"] * 4,
                          "depth_resolution_importance": rk["depth_resolution_importance"] * 4}
    t_final4 = timed(final, args.repeats)
    G.rendering_kwargs = rk

    n = int(round(args.seconds * args.fps))
    print(f"FFHQ 512-128 architecture (random weights), device {dev}, torch threads {torch.get_num_threads()}")
    print(f"projection step {t_proj:.2f} s | tuning step {t_tune:.2f} s | final frame {t_final:.2f} s "
          f"(depth x4: {t_final4:.2f} s)")
    print(f"{args.seconds:g} s clip at {args.fps:g} fps = {n} frames")
    print("setting | steps (first + per keyframe x keyframes) | tune | projection | tuning | final | total | s/frame")
    for name, (first, per, every, tune, mul) in SETTINGS.items():
        keys = len(set(range(0, n, every)) | {n - 1})
        proj = (first + per * (keys - 1)) * t_proj
        fin = n * (t_final4 if mul == 4 else t_final)
        total = proj + tune * t_tune + fin
        print(f"{name} | {first} + {per} x {keys - 1} | {tune} | {proj / 3600:.2f} h | {tune * t_tune / 3600:.2f} h | "
              f"{fin / 3600:.2f} h | {total / 3600:.2f} h | {total / n:.0f}")


if __name__ == "__main__":
    main()
