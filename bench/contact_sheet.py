"""Contact sheet of a video: N evenly spaced frames stacked vertically into one PNG, for looking at results.

    python bench/contact_sheet.py VIDEO OUT.png [--frames 6] [--width 768]
"""
import argparse

import numpy as np
import torch
import torch.nn.functional as F

from third_party_wrappers.image import write_image
from third_party_wrappers.video import open_video


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("video")
    ap.add_argument("out")
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--width", type=int, default=768)
    args = ap.parse_args()
    with open_video(args.video) as reader:
        idx = np.linspace(0, reader.info.n_frames - 1, args.frames).round().astype(int)
        frames = torch.from_numpy(reader.read(idx)).permute(0, 3, 1, 2).float()
    h = round(frames.shape[-2] * args.width / frames.shape[-1])
    frames = F.interpolate(frames, size=(h, args.width), mode="bilinear", antialias=True, align_corners=False)
    sheet = torch.cat(list(frames), 1).permute(1, 2, 0).clamp(0, 255).byte().numpy()
    write_image(args.out, sheet)


if __name__ == "__main__":
    main()
