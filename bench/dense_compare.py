"""Look at the dense-face warp beside the 468-landmark one: a contact sheet, one row per driving frame.

    python bench/dense_compare.py SOURCE DRIVING OUT.png [--frames 6] [--size 256] [--ict PATH] [--work DIR]

Columns: source | driving frame | result with the landmark mesh | result with the dense ICT face, each zoomed to
a square around its face (the results share the source's square); both results come from one prepared scene
with the ICT face model.
"""
import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from reenact.cache import WorkDir
from reenact.expression import FaceModelConfig, load_face_model
from reenact.inputs import frames_to_tensor
from reenact.pipeline import RunConfig, prepare
from reenact.warp_render import make_renderer, render_range
from third_party_wrappers.image import write_image
from third_party_wrappers.video import open_video


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source")
    ap.add_argument("driving")
    ap.add_argument("out")
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--ict", default=None, help="ICT-FaceKit model (else $REENACT_FACE_MODEL or the cache)")
    ap.add_argument("--work", default=None, help="work folder for cached tracks")
    args = ap.parse_args()
    cfg = RunConfig(progress=False, face=FaceModelConfig("ict", args.ict))
    model = load_face_model(cfg.face)
    work = WorkDir(Path(args.work)) if args.work else WorkDir.temporary()
    device = torch.device("cpu")

    def zoom(x, verts):
        """The square around landmarks [478, 2+] (with a margin), resized to the sheet's cell size."""
        lo, hi = verts[:, :2].amin(0), verts[:, :2].amax(0)
        centre, half = (lo + hi) / 2, float((hi - lo).max()) * 0.65
        x0, y0 = (centre - half).round().int().tolist()
        side = int(round(2 * half))
        pad = F.pad(x, (side, side, side, side), mode="replicate")
        cell = pad[..., y0 + side:y0 + 2 * side, x0 + side:x0 + 2 * side]
        return F.interpolate(cell, size=(args.size, args.size), mode="bilinear", antialias=True, align_corners=False)

    with open_video(args.driving) as reader:
        scene = prepare(args.source, args.driving, reader, cfg, work, model)
        idx = np.linspace(0, reader.info.n_frames - 1, args.frames).round().astype(int).tolist()
        drv = frames_to_tensor(reader.read(idx))
    scenes = (replace(scene, dense=None), scene)  # the landmark mesh, the dense face
    renderers = [make_renderer(s, cfg.warp, device) for s in scenes]
    rows = []
    for k, i in enumerate(idx):
        outs = [render_range(r, s, i, 1, device, drv[k:k + 1]).image for r, s in zip(renderers, scenes)]
        cells = [zoom(x, scene.source_verts) for x in (scene.source_crop[None], *outs)]
        rows.append(torch.cat([cells[0], zoom(drv[k:k + 1], scene.driving_verts[i]), *cells[1:]], -1))
    sheet = torch.cat(rows, -2)[0].permute(1, 2, 0).mul(255).round().clamp(0, 255).byte().numpy()
    write_image(args.out, sheet)
    print(f"{args.out}: frames {idx}")


if __name__ == "__main__":
    main()
