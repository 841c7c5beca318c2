"""Speed and memory of the default (warp) path, stage by stage.

    python bench/bm_pipeline.py [SOURCE] [DRIVING] [--face auto|mesh-offset|ict] [--mesh auto|landmarks|dense]

Prints frames/s of track (+ pose + smoothing) and of the whole run, and the peak resident memory,
against the targets of the spine issue (100 frames/s; 10 frames/s; 2 GB). `--face` and `--mesh` choose the face
model and the warp's mesh (`--face.model`, `--warp.mesh` of the command line) for the whole run.
"""
import argparse
import resource
import tempfile
import time
from pathlib import Path

import torch

from reenact.expression import FaceModelConfig, MeshOffsetModel, extract_motion
from reenact.pipeline import RunConfig, reenact_video
from reenact.smooth import smooth_motion
from reenact.track import track_image, track_video
from reenact.warp import WarpConfig
from third_party_wrappers.image import read_image
from third_party_wrappers.video import open_video

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "media"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", nargs="?", default=str(SHARED / "s42.jpg"))
    ap.add_argument("driving", nargs="?", default=str(SHARED / "d3.mp4"))
    ap.add_argument("--face", choices=("auto", "mesh-offset", "ict"), default="auto")
    ap.add_argument("--mesh", choices=("auto", "landmarks", "dense"), default="auto")
    args = ap.parse_args()
    source, driving = args.source, args.driving
    cfg = RunConfig(progress=False, face=FaceModelConfig(args.face), warp=WarpConfig(mesh=args.mesh))
    t0 = time.perf_counter()
    track_image(read_image(source))  # imports and mediapipe's model loading: a fixed start-up cost
    t_start = time.perf_counter() - t0
    with open_video(driving) as reader:
        n = reader.info.n_frames
        t0 = time.perf_counter()
        tracks = track_video(driving, n, reader.info.fps, cfg.track, progress=False)
        smooth_motion(extract_motion(tracks, MeshOffsetModel()), cfg.smooth)
        t_track = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        reenact_video(source, driving, Path(tmp) / "out.mp4", cfg)
        t_all = time.perf_counter() - t0
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"video {Path(driving).name}: {n} frames; source {Path(source).name}; face model {args.face}, "
          f"warp mesh {args.mesh}; torch threads {torch.get_num_threads()}")
    print(f"start-up (imports, model loading, source tracking): {t_start:.2f} s")
    print(f"{'stage':<28}{'seconds':>9}{'frames/s':>10}{'target':>8}{'ratio':>7}")
    for name, secs, target in (("track + pose + smooth", t_track, 100), ("whole run (default path)", t_all, 10)):
        print(f"{name:<28}{secs:>9.2f}{n / secs:>10.1f}{target:>8}{n / secs / target:>7.2f}")
    print(f"peak resident memory: {peak_gb:.2f} GB (target < 2 GB, ratio {peak_gb / 2:.2f})")


if __name__ == "__main__":
    main()
