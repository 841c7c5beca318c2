"""Does an EG3D checkpoint agree with the GAN path's crop and cameras? Figures from its own tracked renders.

usage: python bench/gan_framing.py CHECKPOINT [--device auto|cpu|cuda] [--seeds 8] [--yaw -30 -15 0 15 30] [--pitch -10 0 10]

For each head angle (degrees; every yaw at pitch 0 and every pitch at yaw 0) it renders `--seeds` random faces
(truncation 0.7) at the GAN path's camera for that angle, tracks them and prints the median over seeds of where
the face's EG3D crop puts the render's centre (% of the side, x and y), the crop's scale, and the tracked yaw
and pitch minus the asked ones. An agreeing generator gives offsets within ~2 %, scale within ~5 % of 1 and angle
errors of a few degrees (the tracker's own bias, `bench/ict_accuracy.py`); renders without a tracked face count
in `faces`. Needs real weights: random ones draw no faces.
"""
import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reenact.eg3d import load_generator  # noqa: E402
from reenact.errors import ReenactError  # noqa: E402
from reenact.gan_check import framing  # noqa: E402
from reenact.gan_render import GanConfig  # noqa: E402
from reenact.pipeline import RunConfig, resolve_device  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("--device", default="auto", help="auto: cuda when present, else cpu")
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--yaw", type=float, nargs="+", default=[-30, -15, 0, 15, 30])
    p.add_argument("--pitch", type=float, nargs="+", default=[-10, 10])
    args = p.parse_args()
    try:
        device = resolve_device(RunConfig(device=args.device, gan=GanConfig(generator=args.checkpoint)))
        G = load_generator(args.checkpoint, device)
    except ReenactError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    asked = torch.tensor([[y, 0.0] for y in args.yaw] + [[0.0, q] for q in args.pitch if q != 0])
    f = framing(G, asked, list(range(args.seeds)))
    print(f"{args.checkpoint}: {args.seeds} seeds, {G.img_resolution} px, device {device}")
    print("yaw | pitch | faces | centre x % | centre y % | scale | yaw error | pitch error")
    for a, (yaw, pitch) in enumerate(asked.tolist()):
        found = ~f.scale[:, a].isnan()
        med = (lambda x: float(x[found].median())) if found.any() else (lambda x: float("nan"))
        print(f"{yaw:+.0f} | {pitch:+.0f} | {int(found.sum())}/{args.seeds} | {100 * med(f.offset[:, a, 0]):+.1f} | "
              f"{100 * med(f.offset[:, a, 1]):+.1f} | {med(f.scale[:, a]):.3f} | "
              f"{med(f.tracked[:, a, 0]) - yaw:+.1f} | {med(f.tracked[:, a, 1]) - pitch:+.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
