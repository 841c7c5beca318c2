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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reenact.crop import apply_affine, eg3d_crop  # noqa: E402
from reenact.eg3d import frontal_label, load_generator  # noqa: E402
from reenact.eg3d.camera import label_from_rotation  # noqa: E402
from reenact.errors import InputError, ReenactError  # noqa: E402
from reenact.gan_render import GanConfig  # noqa: E402
from reenact.geometry import angles_to_matrix  # noqa: E402
from reenact.inputs import tensor_to_frames  # noqa: E402
from reenact.invert import render  # noqa: E402
from reenact.pipeline import RunConfig, resolve_device  # noqa: E402
from reenact.pose import estimate_pose  # noqa: E402
from reenact.track import track_image  # noqa: E402


@dataclass(frozen=True)
class Framing:
    """Per (seed, asked angle) [N, A]: NaN where no face was tracked in the render."""

    asked: torch.Tensor  # [A, 2] yaw, pitch in degrees (head angles, `reenact.geometry.head_angles`)
    offset: torch.Tensor  # [N, A, 2] the render's centre in the face's EG3D crop, minus the crop centre, / side
    scale: torch.Tensor  # [N, A] the EG3D crop's px per render px
    tracked: torch.Tensor  # [N, A, 3] tracked yaw, pitch, roll in degrees


@torch.no_grad()
def framing(G, asked: torch.Tensor, seeds: list[int], psi: float = 0.7) -> Framing:
    """Render seeds' faces (truncation psi, mapped with the frontal camera) at the cameras of the head angles
    `asked` [A, 2] (yaw, pitch, degrees) and measure how the EG3D crop of each tracked face sits on the render."""
    device = next(G.parameters()).device
    s = G.img_resolution
    rotation = angles_to_matrix(torch.cat([asked.float(), torch.zeros(len(asked), 1)], 1))
    cameras = label_from_rotation(rotation).to(device)
    offset = torch.full((len(seeds), len(asked), 2), float("nan"))
    scale = torch.full((len(seeds), len(asked)), float("nan"))
    tracked = torch.full((len(seeds), len(asked), 3), float("nan"))
    centre = torch.tensor([[s / 2, s / 2]])
    for i, seed in enumerate(seeds):
        z = torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(seed)).to(device)
        w = G.mapping(z, frontal_label(1, device=device), truncation_psi=psi)
        images = render(G, w.expand(len(asked), -1, -1), cameras)
        for j, frame in enumerate(tensor_to_frames(images)):
            try:
                tracks = track_image(np.ascontiguousarray(frame))
            except InputError:
                continue
            crop = eg3d_crop(tracks.landmarks[0], s).crop_from_image
            offset[i, j] = (apply_affine(crop, centre)[0] - s / 2) / s
            scale[i, j] = crop[0, 0]
            tracked[i, j] = estimate_pose(tracks).angles()[0]
    return Framing(asked, offset, scale, tracked)


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
