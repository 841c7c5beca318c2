"""Benchmark reenact.raster.rasterize: ms per frame for a face-mesh-sized mesh, batch 16.

The mesh has MediaPipe face-mesh sizes (468 vertices, 852 faces): a jittered grid with a smooth
depth bump covering about half of the image; each batch element is jittered differently.
Usage (from the repository root): python -m bench.bm_raster [--device cpu|cuda] [--batch 16] [--reps 10]
"""

import argparse
import math
import statistics
import time

import torch

from reenact.raster import interpolate, rasterize


def face_like_mesh(batch: int, size: int, seed: int = 0):
    """verts [batch, 468, 3] in pixels, faces [852, 3].

    An 18 x 26 vertex grid (468 vertices, 850 faces) over the central half of the image area, with
    jittered x/y and a smooth depth bump; the first two faces are repeated (exact depth ties) to
    reach 852 faces.
    """
    g = torch.Generator().manual_seed(seed)
    rows, cols = 18, 26
    yy, xx = torch.meshgrid(torch.linspace(0, 1, rows), torch.linspace(0, 1, cols), indexing="ij")
    v00 = (torch.arange(rows - 1)[:, None] * cols + torch.arange(cols - 1)).flatten()
    lower, upper = torch.stack((v00, v00 + 1, v00 + cols), -1), torch.stack((v00 + 1, v00 + cols + 1, v00 + cols), -1)
    faces = torch.cat((lower, upper))
    faces = torch.cat((faces, faces[:2]))
    side = size * math.sqrt(0.5)
    x = (size - side) / 2 + side * xx.flatten()
    y = (size - side) / 2 + side * yy.flatten()
    jitter = (torch.rand(batch, rows * cols, 2, generator=g) - 0.5) * 0.3 * side / cols
    z = 10 + torch.sin(3 * x / size) * torch.cos(2 * y / size) + 0.1 * torch.rand(batch, rows * cols, generator=g)
    verts = torch.stack((x + jitter[..., 0], y + jitter[..., 1], z), -1)
    return verts, faces


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--reps", type=int, default=10)
    args = ap.parse_args()
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    print(f"device={dev} threads={torch.get_num_threads()} batch={args.batch}")
    for size in (256, 512):
        verts, faces = face_like_mesh(args.batch, size)
        verts, faces = verts.to(dev), faces.to(dev)
        attrs = torch.rand(args.batch, verts.shape[1], 3, device=dev)
        cov = (rasterize(verts, faces, size, size).pix_to_face >= 0).float().mean().item()
        for label, fn in (
            ("rasterize", lambda: rasterize(verts, faces, size, size)),
            ("rasterize+interpolate(C=3)", lambda: interpolate(rasterize(verts, faces, size, size), attrs)),
        ):
            fn()
            times = []
            for _ in range(args.reps):
                sync()
                t0 = time.perf_counter()
                fn()
                sync()
                times.append((time.perf_counter() - t0) * 1000 / args.batch)
            print(
                f"{size}x{size} {label:28s} best {min(times):6.2f}  median {statistics.median(times):6.2f} ms/frame"
                f"  ({args.reps} reps, coverage {cov:.2f})"
            )


if __name__ == "__main__":
    main()
